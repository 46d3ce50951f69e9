"""Stubbed MWAA / CloudFormation clients and a fake HTTP transport for the DAG runner.

Every stubbed request carries expected_params, so botocore validates it against the real
service model (and the stub checks we send exactly what we mean to).
"""

from __future__ import annotations

import base64
import json

import boto3
from botocore.stub import Stubber

ENV = "mwaa-target"
STACK_ID = "arn:aws:cloudformation:eu-west-1:111122223333:stack/migration/1b2c3d4e"


def aws_client(service):
    return boto3.client(service, region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing")


class Mwaa:
    """A stubbed MWAA client with helpers for Airflow answers."""

    def __init__(self):
        self.client = aws_client("mwaa")
        self.stub = Stubber(self.client)

    def rest(self, method, path, status=200, response=None, *, body=None, query=None, env=ENV):
        expected = {"Name": env, "Path": path, "Method": method}
        if body is not None:
            expected["Body"] = body
        if query is not None:
            expected["QueryParameters"] = query
        if status < 400:
            self.stub.add_response(
                "invoke_rest_api", {"RestApiStatusCode": status, "RestApiResponse": response or {}}, expected
            )
        else:
            code = "RestApiClientException" if status < 500 else "RestApiServerException"
            self.stub.add_client_error(
                "invoke_rest_api",
                code,
                f"Airflow answered {status}",
                400,
                modeled_fields={
                    "RestApiStatusCode": status,
                    "RestApiResponse": response or {"detail": "x", "status": status},
                },
                expected_params=expected,
            )

    def aws_error(self, code, message="denied", status=400, method="GET", path=None, env=ENV):
        expected = {"Name": env, "Method": method, "Path": path} if path else None
        self.stub.add_client_error("invoke_rest_api", code, message, status, expected_params=expected)

    def cli_token(self, host="abc123.c2.airflow.eu-west-1.on.aws", env=ENV, token="tok"):
        self.stub.add_response("create_cli_token", {"CliToken": token, "WebServerHostname": host}, {"Name": env})

    # Airflow REST shortcuts
    def get_run(self, dag, run_id, state=None, v2=False, status=200):
        if state is None:
            self.rest(
                "GET",
                f"/dags/{dag}/dagRuns/{run_id}",
                404,
                {"detail": "DAGRun not found", "status": 404, "title": "DAGRun not found"},
            )
            return
        resp = {
            "dag_id": dag,
            "dag_run_id": run_id,
            "state": state,
            "conf": {},
            "start_date": "2026-11-21T03:00:00+00:00",
            "end_date": None,
        }
        resp["logical_date" if v2 else "execution_date"] = None if v2 else "2026-11-21T03:00:00+00:00"
        self.rest("GET", f"/dags/{dag}/dagRuns/{run_id}", status, resp)

    def get_dag(self, dag, paused=False, missing=False):
        if missing:
            self.rest("GET", f"/dags/{dag}", 404, {"detail": f"Dag with id: {dag} was not found", "status": 404})
        else:
            self.rest("GET", f"/dags/{dag}", 200, {"dag_id": dag, "is_paused": paused})

    def unpause(self, dag):
        self.rest(
            "PATCH",
            f"/dags/{dag}",
            200,
            {"dag_id": dag, "is_paused": False},
            body={"is_paused": False},
            query={"update_mask": "is_paused"},
        )


class FakeHttp:
    """Records CLI POSTs; answers from a queue of (status, headers, stdout, stderr)."""

    def __init__(self):
        self.calls: list[dict] = []
        self.answers: list[tuple] = []

    def answer(self, stdout="", stderr="", status=200, headers=None):
        self.answers.append((status, headers or {}, stdout, stderr))

    def redirect(self, location, status=307):
        self.answers.append((status, {"Location": location}, None, None))

    def __call__(self, method, url, headers, body, timeout):
        self.calls.append({"method": method, "url": url, "headers": dict(headers), "body": body.decode()})
        if not self.answers:
            raise AssertionError(f"unexpected HTTP call {method} {url} {body!r}")
        status, hdrs, out, err = self.answers.pop(0)
        if out is None:
            return status, hdrs, b""
        payload = {"stdout": base64.b64encode(out.encode()).decode(), "stderr": base64.b64encode(err.encode()).decode()}
        return status, hdrs, json.dumps(payload).encode()


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


def conf(**extra):
    base = {"bucket": "mig-bucket", "prefix": "data/migration/2.10.3_to_3.0.6/export/"}
    base.update(extra)
    return base


def props(**overrides):
    p = {
        "ServiceToken": "arn:aws:lambda:eu-west-1:111122223333:function:fw",
        "EnvironmentName": ENV,
        "AirflowVersion": "2.10.3",
        "DagId": "db_export",
        "MigrationId": "2-10-3-to-3-0-6",
        "Step": "export",
        "Conf": json.dumps(conf()),
    }
    p.update(overrides)
    return {k: v for k, v in p.items() if v is not None}


def event(kind="Create", physical=None, old=None, **prop_overrides):
    e = {
        "RequestType": kind,
        "StackId": STACK_ID,
        "RequestId": "r-1",
        "LogicalResourceId": "ExportRun",
        "ResourceType": "Custom::MwaaDagRun",
        "ResourceProperties": props(**prop_overrides),
    }
    if physical is not None:
        e["PhysicalResourceId"] = physical
    if old is not None:
        e["OldResourceProperties"] = old
    return e
