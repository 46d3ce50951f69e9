"""Custom resource: run one metadata DAG on MWAA during ``cdk deploy`` and wait for it.

Handlers for ``aws_cdk.custom_resources.Provider``: ``on_event`` (starts or adopts the run)
and ``is_complete`` (polls it). Neither PUTs to the ResponseURL: they return or raise.

Resource properties (CloudFormation passes scalars as strings):

=================  ========  ==========================================================
EnvironmentName    required  MWAA environment that runs the DAG
AirflowVersion     required  its Airflow version (a row of ``mwaa_common.versions``;
                             picks REST API v1 or v2 and whether InvokeRestApi exists)
DagId              required  ``db_export`` or ``db_import`` (any Airflow DAG id)
MigrationId        required  ``[a-z0-9-]{1,40}``; names the run id (contracts §4)
Step               required  ``export`` | ``import`` | ``cutover`` (run id letter e/i/c)
Conf               required  JSON object string: the run conf (contracts §2);
                             ``migration_id`` is filled in from MigrationId or must match
Role               optional  Airflow role of the InvokeRestApi call, the one IAM grants
                             (only ``Op``, the default); informative here
RerunToken         optional  a changed non-empty value names, and so starts, a new run
CliTokenFallback   optional  ``true``: fall back to a CLI token when InvokeRestApi is denied
                             or missing (default ``false``: fail and say so)
=================  ========  ==========================================================

Response Data (strings, under 4 KB): RunId, DagId, EnvironmentName, State, Action
(``run`` | ``none``), Reason, Channel (``rest`` | ``cli``), FallbackReason,
ReportLocation (``s3://...``), LogGroup, StartedAt (epoch seconds, used by is_complete).

Environment: ``WAIT_BUDGET_SECONDS``: how long is_complete waits before it fails with the
"redeploy resumes" message; set by the construct a little under the Provider's
total_timeout so our message, not the framework's, reaches CloudFormation.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

import boto3
from botocore.config import Config
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError

from dag_runner import plan
from dag_runner.airflow_api import AirflowClient, run_path, urllib_http
from mwaa_common.cfn_event import number, parse_event, parse_waiter_event

log = logging.getLogger()
log.setLevel(logging.INFO)

WAIT_BUDGET_ENV = "WAIT_BUDGET_SECONDS"
DEFAULT_WAIT_BUDGET = 55 * 60
_BOTO_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 2}, connect_timeout=5, read_timeout=30)


class RunFailed(RuntimeError):
    """The DAG run failed; the message names the task and its log."""


class RunVanished(RuntimeError):
    """The run this resource waited on is gone from Airflow (deleted)."""


class RunTimeout(RuntimeError):
    """The run is still going at the time limit; a redeploy resumes waiting on it."""


def _mwaa():
    return boto3.client("mwaa", config=_BOTO_CONFIG)


def _cfn():
    return boto3.client("cloudformation", config=_BOTO_CONFIG)


def _budget() -> float:
    raw = os.environ.get(WAIT_BUDGET_ENV) or str(DEFAULT_WAIT_BUDGET)
    try:
        return float(raw)
    except ValueError:
        raise RuntimeError(f"environment variable {WAIT_BUDGET_ENV}={raw!r} is not a number of seconds") from None


def _client(props: plan.Props, mwaa, http, sleep) -> AirflowClient:
    client = AirflowClient(
        mwaa if mwaa is not None else _mwaa(),
        props.environment_name,
        props.airflow_version,
        http=http,
        sleep=sleep,
        allow_cli=props.cli_token_fallback,
    )
    client.check_path(run_path(props.dag_id, props.run_id))  # fail before any call
    return client


def _base_data(props: plan.Props, client: AirflowClient) -> dict:
    return {
        "RunId": props.run_id,
        "DagId": props.dag_id,
        "EnvironmentName": props.environment_name,
        "ReportLocation": plan.report_location(props),
        "LogGroup": f"airflow-{props.environment_name}-Task",
        "Channel": client.channel,
        "FallbackReason": client.fallback_reason,
    }


def _stack_rolling_back(client: AirflowClient, cfn, stack_id: str) -> bool:
    try:
        resp = client.aws_call((cfn if cfn is not None else _cfn()).describe_stacks, StackName=stack_id)
    except (EndpointConnectionError, ConnectTimeoutError) as exc:
        raise RuntimeError(
            f"cannot reach CloudFormation to tell a rollback from an update ({exc}); a runner "
            "inside a VPC without NAT needs a cloudformation interface endpoint"
        ) from None
    status = resp["Stacks"][0]["StackStatus"]
    log.info("stack status %s", status)
    return "ROLLBACK" in status and status.endswith("_IN_PROGRESS")


def advance(client: AirflowClient, props: plan.Props, *, may_trigger: bool = True) -> tuple[dict | None, bool]:
    """Make sure the run exists and can make progress: (run or None if the DAG is not
    known yet, created now). Idempotent: an existing run is adopted, never re-triggered.
    ``may_trigger`` False (is_complete after a run was seen): a missing run is an error."""
    run = client.get_run(props.dag_id, props.run_id)
    if run is None and not may_trigger:
        raise RunVanished(
            f"DAG {props.dag_id} run {props.run_id} is gone from MWAA environment "
            f"{props.environment_name} (deleted while the deployment waited); redeploy to start it again"
        )
    if run is None:
        if client.ensure_unpaused(props.dag_id) is None:
            log.info("DAG %s not known to %s yet", props.dag_id, props.environment_name)
            return None, False
        run, created = client.trigger(props.dag_id, props.run_id, props.conf)
        log.info(
            "%s run %s of %s on %s (%s)",
            "triggered" if created else "adopted",
            props.run_id,
            props.dag_id,
            props.environment_name,
            client.channel,
        )
        return run, created
    log.info("run %s of %s exists: %s", props.run_id, props.dag_id, run.get("state"))
    if plan.classify(run) == "wait":
        # a paused DAG leaves its runs queued (and stops scheduling a running one)
        client.ensure_unpaused(props.dag_id)
    return run, False


def _raise_failed(client: AirflowClient, props: plan.Props) -> None:
    try:
        tis = client.task_instances(props.dag_id, props.run_id, states=["failed"])
    except Exception as exc:  # the failure itself matters more than its detail
        log.warning("could not list failed tasks of %s: %s", props.run_id, exc)
        tis = []
    raise RunFailed(plan.failure_message(props, tis))


def _raise_unexpected(client: AirflowClient, props: plan.Props, run: dict | None) -> None:
    """Fail now when the run failed or is in a state Airflow does not define."""
    outcome = plan.classify(run)
    if outcome == "failed":
        _raise_failed(client, props)
    if outcome == "unknown":
        raise RunFailed(plan.unknown_state_message(props, (run or {}).get("state") or ""))


def on_event(
    event: dict,
    context=None,
    *,
    mwaa=None,
    cfn=None,
    http=urllib_http,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], float] = time.time,
) -> dict:
    ev = parse_event(event)
    log.info("%s %s", ev.request_type, ev.logical_id)
    if ev.request_type == "Delete":
        # the run and its data stay; nothing to stop or remove (bad properties never block a delete)
        return {
            "PhysicalResourceId": ev.physical_id,
            "Data": plan.response_data({"Action": "none", "Reason": "delete"}),
        }
    props = plan.parse_props(ev.properties)
    client = _client(props, mwaa, http, sleep)
    rolling_back = False
    if ev.request_type == "Update" and ev.physical_id != props.physical_id:
        rolling_back = _stack_rolling_back(client, cfn, ev.stack_id)
    decision = plan.decide(event, props, stack_rolling_back=rolling_back)
    log.info("decision: %s", decision)
    data = _base_data(props, client)
    data.update(Action=decision["action"], Reason=decision["reason"], StartedAt=str(int(now())))
    if decision["action"] == "none":
        # keep the id CloudFormation has (no replacement during a rollback)
        physical = ev.physical_id or props.physical_id
        return {"PhysicalResourceId": physical, "Data": plan.response_data({**data, "State": ""})}
    run, _created = advance(client, props)
    _raise_unexpected(client, props, run)
    data.update(
        Channel=client.channel,
        FallbackReason=client.fallback_reason,
        State=(run or {}).get("state") or "waiting-for-dag",
    )
    return {"PhysicalResourceId": props.physical_id, "Data": plan.response_data(data)}


def is_complete(
    event: dict,
    context=None,
    *,
    mwaa=None,
    http=urllib_http,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], float] = time.time,
) -> dict:
    ev = parse_waiter_event(event)
    if ev.request_type == "Delete":
        return {"IsComplete": True}
    data = ev.data
    if data.get("Action") == "none":
        return {"IsComplete": True}
    started = number(data, "StartedAt", default=now())
    props = plan.parse_props(ev.properties)
    client = _client(props, mwaa, http, sleep)
    # only a resource still waiting for its DAG to be parsed may trigger from here
    run, _created = advance(client, props, may_trigger=data.get("State") == "waiting-for-dag")
    waited = now() - started
    if plan.classify(run) == "success":
        assert run is not None
        log.info("run %s of %s succeeded", props.run_id, props.dag_id)
        done = {**data, **_base_data(props, client), "State": "success", "EndDate": run.get("end_date") or ""}
        return {"IsComplete": True, "Data": plan.response_data(done)}
    _raise_unexpected(client, props, run)
    if waited >= _budget():
        if run is None:
            raise RunTimeout(plan.dag_missing_message(props, waited))
        raise RunTimeout(plan.timeout_message(props, run.get("state") or "", waited))
    log.info(
        "run %s of %s on %s: %s after %d s",
        props.run_id,
        props.dag_id,
        props.environment_name,
        (run or {}).get("state") or "DAG not known yet",
        waited,
    )
    return {"IsComplete": False}
