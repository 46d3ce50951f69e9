"""Post-deployment check: MWAA through botocore's Stubber (moto has no MWAA), S3 through moto."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from tools import post_deploy_check as pdc

REGION = "eu-west-1"
BUCKET = "mig-bucket"
KEY = "data/migration/2.10.3_to_2.11.0/export/m1/report.json"


def _report(**overrides):
    report = {
        "migration_id": "m1",
        "target_airflow_version": "2.11.0",
        "tables": {
            "dag_run": {
                "exported": 10,
                "inserted": 7,
                "already_present": 2,
                "rejected": 1,
                "rejections": [{"reason": "dag missing", "count": 1, "sample": []}],
            },
            "variable": {"exported": 3, "inserted": 3, "already_present": 0, "rejected": 0, "rejections": []},
        },
        "all_rows_accounted": True,
        "task_logs": {},
    }
    report.update(overrides)
    return report


def _environment(status, **extra):
    env = {"Name": "target", "Status": status, "AirflowVersion": "2.11.0"}
    env.update(extra)
    return {"Environment": env}


@pytest.fixture
def aws(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        mwaa = boto3.client("mwaa", region_name=REGION)
        with Stubber(mwaa) as stub:
            yield s3, mwaa, stub
            stub.assert_no_pending_responses()


# ---------------------------------------------------------------- pure rules


def test_available_environment_has_no_problem():
    assert pdc.environment_problems({"Name": "t", "Status": "AVAILABLE"}) == []


def test_failed_environment_reports_the_service_error():
    problems = pdc.environment_problems(
        {
            "Name": "t",
            "Status": "UPDATE_FAILED",
            "LastUpdate": {"Error": {"ErrorCode": "INCORRECT_CONFIGURATION", "ErrorMessage": "requirements failed"}},
        }
    )
    assert problems == [
        "environment t is UPDATE_FAILED, not AVAILABLE (last update error INCORRECT_CONFIGURATION: requirements failed)"
    ]


def test_complete_report_passes():
    assert pdc.report_problems(_report(), expected_migration_id="m1") == []


def test_report_flag_false_fails():
    assert pdc.report_problems(_report(all_rows_accounted=False)) == ["all_rows_accounted is False, not true"]


def test_counts_are_recomputed_not_trusted():
    report = _report()
    report["tables"]["dag_run"]["inserted"] = 6  # one row vanished, flag still says true
    assert pdc.report_problems(report) == ["table dag_run: exported 10 != inserted + already_present + rejected = 9"]


@pytest.mark.parametrize(
    "report, expected",
    [
        ([], "report is not a JSON object: list"),
        (_report(tables={}), "report lists no tables"),
        (_report(tables={"x": {"exported": 1}}), "table x: counts missing"),
        (_report(migration_id="other"), "report migration_id 'other' is not 'm1'"),
    ],
)
def test_malformed_reports_fail_with_a_reason(report, expected):
    problems = pdc.report_problems(report, expected_migration_id="m1")
    assert any(p.startswith(expected) for p in problems), problems


# ---------------------------------------------------------------- with clients


def test_check_passes_when_available_and_accounted(aws):
    s3, mwaa, stub = aws
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=json.dumps(_report()).encode())
    stub.add_response("get_environment", _environment("AVAILABLE"), expected_params={"Name": "target"})
    assert pdc.check(mwaa=mwaa, s3=s3, environment="target", bucket=BUCKET, key=KEY) == []


def test_check_fails_without_report(aws):
    s3, mwaa, stub = aws
    stub.add_response("get_environment", _environment("AVAILABLE"), expected_params={"Name": "target"})
    assert pdc.check(mwaa=mwaa, s3=s3, environment="target", bucket=BUCKET, key=KEY) == [
        f"no migration report at s3://{BUCKET}/{KEY} (db_import has not finished?)"
    ]


def test_check_waits_while_updating_then_passes(aws):
    s3, mwaa, stub = aws
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=json.dumps(_report()).encode())
    stub.add_response("get_environment", _environment("UPDATING"), expected_params={"Name": "target"})
    stub.add_response("get_environment", _environment("AVAILABLE"), expected_params={"Name": "target"})
    sleeps = []
    assert (
        pdc.check(
            mwaa=mwaa,
            s3=s3,
            environment="target",
            bucket=BUCKET,
            key=KEY,
            wait_seconds=600,
            poll_seconds=30,
            sleep=sleeps.append,
            clock=lambda: 0.0,
        )
        == []
    )
    assert sleeps == [30]


def test_check_does_not_wait_on_a_failed_environment(aws):
    s3, mwaa, stub = aws
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=json.dumps(_report()).encode())
    stub.add_response(
        "get_environment",
        _environment("CREATE_FAILED", LastUpdate={"Error": {"ErrorCode": "E", "ErrorMessage": "boom"}}),
        expected_params={"Name": "target"},
    )
    problems = pdc.check(
        mwaa=mwaa,
        s3=s3,
        environment="target",
        bucket=BUCKET,
        key=KEY,
        wait_seconds=600,
        sleep=lambda s: pytest.fail("must not wait"),
        clock=lambda: 0.0,
    )
    assert problems == ["environment target is CREATE_FAILED, not AVAILABLE (last update error E: boom)"]


class _Session:
    def __init__(self, clients):
        self.clients = clients

    def client(self, name):
        return self.clients[name]


def test_main_exit_codes_and_messages(aws, capsys):
    s3, mwaa, stub = aws
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=json.dumps(_report(all_rows_accounted=False)).encode())
    stub.add_response("get_environment", _environment("AVAILABLE"), expected_params={"Name": "target"})
    argv = ["--environment", "target", "--bucket", BUCKET, "--key", KEY, "--region", REGION]
    assert pdc.main(argv, session=_Session({"s3": s3, "mwaa": mwaa})) == 1
    assert "FAIL: all_rows_accounted is False, not true" in capsys.readouterr().err

    s3.put_object(Bucket=BUCKET, Key=KEY, Body=json.dumps(_report()).encode())
    stub.add_response("get_environment", _environment("AVAILABLE"), expected_params={"Name": "target"})
    assert pdc.main(argv, session=_Session({"s3": s3, "mwaa": mwaa})) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("OK: target is AVAILABLE")


def test_main_refuses_a_key_that_is_not_a_report(capsys):
    with pytest.raises(SystemExit) as exit_info:
        pdc.main(["--environment", "t", "--bucket", "b", "--key", "data/manifest.json"])
    assert exit_info.value.code == 2
    assert "--key: 'data/manifest.json' must name a report.json" in capsys.readouterr().err
