"""Full custom-resource sequences against stubbed MWAA (Airflow 2 and 3 answers)."""

from __future__ import annotations

import json

import pytest
from runner_fakes import ENV, STACK_ID, conf, event

from dag_runner import handler, plan
from dag_runner.airflow_api import PathTooLong

RUN = "mig-2-10-3-to-3-0-6-e"
DAG = "db_export"
PHYSICAL = f"{ENV}/{DAG}/{RUN}"
T0 = 1_800_000_000.0

AIRFLOW = {  # version -> is it the v2 (Airflow 3) family
    "2.10.3": False,
    "3.0.6": True,
}


def trigger_body(v2: bool, run_id=RUN, **conf_extra):
    body = {"dag_run_id": run_id, "conf": {**conf(**conf_extra), "migration_id": "2-10-3-to-3-0-6"}}
    if v2:
        body["logical_date"] = None
    return body


def run_answer(state, v2, run_id=RUN):
    answer = {"dag_id": DAG, "dag_run_id": run_id, "state": state, "conf": {}}
    answer["logical_date" if v2 else "execution_date"] = None if v2 else "2026-11-21T03:00:00+00:00"
    return answer


def call_on_event(ev, mwaa, **kw):
    kw.setdefault("now", lambda: T0)
    kw.setdefault("sleep", lambda s: None)
    return handler.on_event(ev, None, mwaa=mwaa.client, **kw)


def call_is_complete(ev, mwaa, now=T0 + 60, **kw):
    kw.setdefault("sleep", lambda s: None)
    return handler.is_complete(ev, None, mwaa=mwaa.client, now=lambda: now, **kw)


@pytest.mark.parametrize("version", sorted(AIRFLOW))
def test_trigger_then_poll_queued_running_success(version, mwaa):
    v2 = AIRFLOW[version]
    ev = event(AirflowVersion=version)
    # on_event: no run yet -> DAG paused -> unpause -> trigger
    mwaa.get_run(DAG, RUN, None)
    mwaa.get_dag(DAG, paused=True)
    mwaa.unpause(DAG)
    mwaa.rest("POST", f"/dags/{DAG}/dagRuns", 200, run_answer("queued", v2), body=trigger_body(v2))
    result = call_on_event(ev, mwaa)
    assert result["PhysicalResourceId"] == PHYSICAL
    data = result["Data"]
    assert data["RunId"] == RUN and data["State"] == "queued" and data["Action"] == "run"
    assert data["Channel"] == "rest" and data["StartedAt"] == str(int(T0))
    assert data["ReportLocation"] == (
        "s3://mig-bucket/data/migration/2.10.3_to_3.0.6/export/2-10-3-to-3-0-6/manifest.json"
    )
    assert all(isinstance(v, str) for v in data.values())

    waiting = {**ev, **result}
    # poll 1: queued (the DAG is active now)
    mwaa.get_run(DAG, RUN, "queued", v2=v2)
    mwaa.get_dag(DAG, paused=False)
    assert call_is_complete(waiting, mwaa) == {"IsComplete": False}
    # poll 2: running
    mwaa.get_run(DAG, RUN, "running", v2=v2)
    mwaa.get_dag(DAG, paused=False)
    assert call_is_complete(waiting, mwaa) == {"IsComplete": False}
    # poll 3: success
    mwaa.get_run(DAG, RUN, "success", v2=v2)
    done = call_is_complete(waiting, mwaa)
    assert done["IsComplete"] is True
    assert done["Data"]["State"] == "success" and done["Data"]["RunId"] == RUN
    assert len(json.dumps(done["Data"])) < 4096


@pytest.mark.parametrize("version", sorted(AIRFLOW))
def test_failed_run_names_task_try_and_log(version, mwaa):
    v2 = AIRFLOW[version]
    ev = {
        **event(AirflowVersion=version),
        "PhysicalResourceId": PHYSICAL,
        "Data": {"Action": "run", "StartedAt": str(int(T0))},
    }
    mwaa.get_run(DAG, RUN, "failed", v2=v2)
    mwaa.rest(
        "POST",
        "/dags/~/dagRuns/~/taskInstances/list",
        200,
        {
            "task_instances": [
                {
                    "task_id": "write_manifest",
                    "state": "failed",
                    "try_number": 1,
                    "map_index": -1,
                    "end_date": "2026-11-21T03:20:00+00:00",
                },
                {
                    "task_id": "export_tables",
                    "state": "failed",
                    "try_number": 2,
                    "map_index": 3,
                    "end_date": "2026-11-21T03:10:00+00:00",
                },
            ],
            "total_entries": 2,
        },
        body={"dag_ids": [DAG], "dag_run_ids": [RUN], "page_offset": 0, "page_limit": 100, "state": ["failed"]},
    )
    with pytest.raises(handler.RunFailed) as err:
        call_is_complete(ev, mwaa)
    msg = str(err.value)
    assert f"DAG {DAG} run {RUN} in MWAA environment {ENV} failed" in msg
    assert "Failed task: export_tables (try 2)" in msg  # earliest failure first
    assert f"log group airflow-{ENV}-Task" in msg
    assert f"stream dag_id={DAG}/run_id={RUN}/task_id=export_tables/map_index=3/attempt=2.log" in msg
    assert "Also failed: write_manifest" in msg
    assert "RerunToken" in msg


def test_task_instances_are_paged(mwaa):
    from dag_runner.airflow_api import AirflowClient

    client = AirflowClient(mwaa.client, ENV, "3.0.6")
    client.family = {**client.family, "page_limit": 2}
    path = "/dags/~/dagRuns/~/taskInstances/list"

    def ti(n):
        return {"task_id": f"t{n}", "state": "success", "try_number": 1, "map_index": -1}

    mwaa.rest(
        "POST",
        path,
        200,
        {"task_instances": [ti(1), ti(2)], "total_entries": 3},
        body={"dag_ids": [DAG], "dag_run_ids": [RUN], "page_offset": 0, "page_limit": 2},
    )
    mwaa.rest(
        "POST",
        path,
        200,
        {"task_instances": [ti(3)], "total_entries": 3},
        body={"dag_ids": [DAG], "dag_run_ids": [RUN], "page_offset": 2, "page_limit": 2},
    )
    assert [t["task_id"] for t in client.task_instances(DAG, RUN)] == ["t1", "t2", "t3"]


@pytest.mark.parametrize("version", sorted(AIRFLOW))
def test_existing_running_run_is_adopted_not_triggered(version, mwaa):
    v2 = AIRFLOW[version]
    mwaa.get_run(DAG, RUN, "running", v2=v2)
    mwaa.get_dag(DAG, paused=False)  # checked, no PATCH, no POST
    result = call_on_event(event(AirflowVersion=version), mwaa)
    assert result["Data"]["State"] == "running"


def test_existing_successful_run_is_accepted(mwaa):
    mwaa.get_run(DAG, RUN, "success")
    result = call_on_event(event(), mwaa)
    assert result["Data"]["State"] == "success"
    mwaa.get_run(DAG, RUN, "success")
    assert call_is_complete({**event(), **result}, mwaa)["IsComplete"] is True


def test_existing_failed_run_is_reported(mwaa):
    mwaa.get_run(DAG, RUN, "failed")
    mwaa.rest(
        "POST",
        "/dags/~/dagRuns/~/taskInstances/list",
        200,
        {"task_instances": [], "total_entries": 0},
        body={"dag_ids": [DAG], "dag_run_ids": [RUN], "page_offset": 0, "page_limit": 100, "state": ["failed"]},
    )
    with pytest.raises(handler.RunFailed, match="No failed task instance was found"):
        call_on_event(event(), mwaa)


def test_trigger_conflict_adopts_the_run_that_won(mwaa):
    mwaa.get_run(DAG, RUN, None)
    mwaa.get_dag(DAG)
    mwaa.rest(
        "POST",
        f"/dags/{DAG}/dagRuns",
        409,
        {"detail": "DAGRun with DAG ID: 'db_export' and DAGRun ID: '...' already exists", "status": 409},
        body=trigger_body(False),
    )
    mwaa.get_run(DAG, RUN, "running")
    assert call_on_event(event(), mwaa)["Data"]["State"] == "running"


def test_trigger_rejected_by_airflow_is_a_clear_error(mwaa):
    mwaa.get_run(
        DAG,
        RUN,
        None,
    )
    mwaa.get_dag(DAG)
    mwaa.rest(
        "POST",
        f"/dags/{DAG}/dagRuns",
        400,
        {"detail": "DAG with dag_id: 'db_export' has import errors and cannot be triggered", "status": 400},
        body=trigger_body(False),
    )
    with pytest.raises(Exception, match=r"trigger DAG db_export run .* answered 400: .*import errors"):
        call_on_event(event(), mwaa)


def test_path_over_64_characters_fails_before_any_call(mwaa):
    long_dag = "db_export_for_the_finance_team_v2"  # 33 chars: run path is 69
    with pytest.raises(PathTooLong) as err:
        call_on_event(event(DagId=long_dag), mwaa)
    msg = str(err.value)
    assert f"/dags/{long_dag}/dagRuns/{RUN}" in msg and "69 characters" in msg and "64" in msg


def test_dag_not_parsed_yet_waits_then_explains(mwaa, monkeypatch):
    monkeypatch.setenv(handler.WAIT_BUDGET_ENV, "600")
    mwaa.get_run(DAG, RUN, None)
    mwaa.get_dag(DAG, missing=True)
    result = call_on_event(event(), mwaa)
    assert result["Data"]["State"] == "waiting-for-dag"
    waiting = {**event(), **result}
    mwaa.get_run(DAG, RUN, None)
    mwaa.get_dag(DAG, missing=True)
    assert call_is_complete(waiting, mwaa, now=T0 + 60) == {"IsComplete": False}
    mwaa.get_run(DAG, RUN, None)
    mwaa.get_dag(DAG, missing=True)
    with pytest.raises(handler.RunTimeout, match="is not known to MWAA environment"):
        call_is_complete(waiting, mwaa, now=T0 + 601)


def test_run_still_going_at_the_limit_says_redeploy_resumes(mwaa, monkeypatch):
    monkeypatch.setenv(handler.WAIT_BUDGET_ENV, "3300")
    ev = {**event(), "PhysicalResourceId": PHYSICAL, "Data": {"Action": "run", "StartedAt": str(int(T0))}}
    mwaa.get_run(DAG, RUN, "running")
    mwaa.get_dag(DAG)
    with pytest.raises(handler.RunTimeout) as err:
        call_is_complete(ev, mwaa, now=T0 + 3300)
    msg = str(err.value)
    assert f"run {RUN}" in msg and "still running after 55 min" in msg
    assert "Redeploy with the same MigrationId to resume waiting on the same run" in msg


def test_throttling_is_retried_with_backoff(mwaa, sleeps):
    mwaa.aws_error("ThrottlingException", "Rate exceeded", method="GET", path=f"/dags/{DAG}/dagRuns/{RUN}")
    mwaa.aws_error("TooManyRequestsException", "slow down", method="GET", path=f"/dags/{DAG}/dagRuns/{RUN}")
    mwaa.get_run(DAG, RUN, "running")
    mwaa.rest("GET", f"/dags/{DAG}", 429, {"detail": "Too many requests", "status": 429})
    mwaa.get_dag(DAG)
    result = call_on_event(event(), mwaa, sleep=sleeps)
    assert result["Data"]["State"] == "running"
    assert sleeps == [1.0, 2.0, 1.0]


def test_throttling_gives_up_after_max_attempts(mwaa, sleeps):
    for _ in range(5):
        mwaa.aws_error("ThrottlingException", "Rate exceeded", method="GET", path=f"/dags/{DAG}/dagRuns/{RUN}")
    with pytest.raises(Exception, match="ThrottlingException"):
        call_on_event(event(), mwaa, sleep=sleeps)
    assert sleeps == [1.0, 2.0, 4.0, 8.0]


def test_other_aws_errors_are_not_retried(mwaa, sleeps):
    mwaa.stub.add_client_error("invoke_rest_api", "ResourceNotFoundException", "Environment mwaa-target not found", 404)
    with pytest.raises(Exception, match="ResourceNotFoundException.*not found"):
        call_on_event(event(), mwaa, sleep=sleeps)
    assert sleeps == []


# ---- rollback, update, delete ------------------------------------------------------------


def test_rollback_update_after_own_failure_triggers_nothing(mwaa):
    # the failed Update kept the old physical id; the rollback sends the old properties back
    ev = event("Update", physical=PHYSICAL, old=event(MigrationId="2-10-3-to-3-0-6b")["ResourceProperties"])
    result = call_on_event(ev, mwaa)  # no stubbed call: any MWAA call would fail the test
    assert result["PhysicalResourceId"] == PHYSICAL
    assert result["Data"]["Action"] == "none"
    assert call_is_complete({**ev, **result}, mwaa) == {"IsComplete": True}


def test_rollback_update_while_stack_rolls_back_triggers_nothing(mwaa, cfn):
    client, stub = cfn
    newer = f"{ENV}/{DAG}/mig-2-10-3-to-3-0-6b-e"
    stub.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "migration",
                    "StackId": STACK_ID,
                    "CreationTime": "2026-11-20T00:00:00Z",
                    "StackStatus": "UPDATE_ROLLBACK_IN_PROGRESS",
                }
            ]
        },
        {"StackName": STACK_ID},
    )
    ev = event("Update", physical=newer, old=event(MigrationId="2-10-3-to-3-0-6b")["ResourceProperties"])
    result = call_on_event(ev, mwaa, cfn=client)
    assert result["PhysicalResourceId"] == newer  # no replacement during a rollback
    assert result["Data"]["Action"] == "none" and "rollback" in result["Data"]["Reason"]


def test_update_to_a_new_migration_id_starts_a_new_run(mwaa, cfn):
    client, stub = cfn
    stub.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "migration",
                    "StackId": STACK_ID,
                    "CreationTime": "2026-11-20T00:00:00Z",
                    "StackStatus": "UPDATE_IN_PROGRESS",
                }
            ]
        },
        {"StackName": STACK_ID},
    )
    new_run = "mig-2-11-0-to-3-0-6-e"
    ev = event("Update", physical=PHYSICAL, old=event()["ResourceProperties"], MigrationId="2-11-0-to-3-0-6")
    mwaa.get_run(DAG, new_run, None)
    mwaa.get_dag(DAG)
    mwaa.rest(
        "POST",
        f"/dags/{DAG}/dagRuns",
        200,
        run_answer("queued", False, new_run),
        body={"dag_run_id": new_run, "conf": {**conf(), "migration_id": "2-11-0-to-3-0-6"}},
    )
    result = call_on_event(ev, mwaa, cfn=client)
    assert result["PhysicalResourceId"] == f"{ENV}/{DAG}/{new_run}"
    assert result["Data"]["State"] == "queued"


def test_rerun_token_names_a_new_run(mwaa, cfn):
    client, stub = cfn
    stub.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "migration",
                    "StackId": STACK_ID,
                    "CreationTime": "2026-11-20T00:00:00Z",
                    "StackStatus": "UPDATE_IN_PROGRESS",
                }
            ]
        },
        {"StackName": STACK_ID},
    )
    rerun = plan.run_id("2-10-3-to-3-0-6", "export", "retry-1")
    assert rerun.startswith(RUN + "-r") and len(rerun) == len(RUN) + 8
    ev = event("Update", physical=PHYSICAL, old=event()["ResourceProperties"], RerunToken="retry-1")
    mwaa.get_run(DAG, rerun, None)
    mwaa.get_dag(DAG)
    mwaa.rest(
        "POST", f"/dags/{DAG}/dagRuns", 200, run_answer("queued", False, rerun), body=trigger_body(False, run_id=rerun)
    )
    assert call_on_event(ev, mwaa, cfn=client)["Data"]["RunId"] == rerun


def test_delete_triggers_nothing(mwaa):
    ev = event("Delete", physical=PHYSICAL)
    result = call_on_event(ev, mwaa)
    assert result["PhysicalResourceId"] == PHYSICAL and result["Data"]["Action"] == "none"
    assert call_is_complete({**ev, **result}, mwaa) == {"IsComplete": True}


def test_delete_with_broken_properties_still_succeeds(mwaa):
    ev = event("Delete", physical=PHYSICAL, MigrationId="NOT VALID")
    assert call_on_event(ev, mwaa)["PhysicalResourceId"] == PHYSICAL


def test_bad_property_is_named_before_any_call(mwaa):
    with pytest.raises(plan.PropertyError, match=r"MigrationId='Bad_Id' is not allowed"):
        call_on_event(event(MigrationId="Bad_Id"), mwaa)


def test_run_deleted_while_waiting_is_not_retriggered(mwaa):
    ev = {
        **event(),
        "PhysicalResourceId": PHYSICAL,
        "Data": {"Action": "run", "State": "running", "StartedAt": str(int(T0))},
    }
    mwaa.get_run(DAG, RUN, None)
    with pytest.raises(handler.RunVanished, match=f"run {RUN} is gone"):
        call_is_complete(ev, mwaa)


def test_waiting_for_dag_triggers_from_is_complete_once_parsed(mwaa):
    ev = {
        **event(),
        "PhysicalResourceId": PHYSICAL,
        "Data": {"Action": "run", "State": "waiting-for-dag", "StartedAt": str(int(T0))},
    }
    mwaa.get_run(DAG, RUN, None)
    mwaa.get_dag(DAG, paused=True)
    mwaa.unpause(DAG)
    mwaa.rest("POST", f"/dags/{DAG}/dagRuns", 200, run_answer("queued", False), body=trigger_body(False))
    assert call_is_complete(ev, mwaa) == {"IsComplete": False}


def test_unreachable_cloudformation_is_explained(mwaa):
    from botocore.exceptions import EndpointConnectionError

    class NoRoute:
        def describe_stacks(self, **kw):
            raise EndpointConnectionError(endpoint_url="https://cloudformation.eu-west-1.amazonaws.com/")

    ev = event("Update", physical="other/physical/id", old=event()["ResourceProperties"])
    with pytest.raises(RuntimeError, match="needs a cloudformation interface endpoint"):
        call_on_event(ev, mwaa, cfn=NoRoute())


# ---- hardening (issue 12 item 14) ---------------------------------------------------------


def test_unknown_run_state_fails_at_once(mwaa):
    """Before, a state Airflow does not define ("restarting", a patched Airflow) was waited on
    until the one-hour budget ran out."""
    ev = {
        **event(),
        "PhysicalResourceId": PHYSICAL,
        "Data": {"Action": "run", "State": "running", "StartedAt": str(int(T0))},
    }
    mwaa.get_run(DAG, RUN, "restarting")
    with pytest.raises(
        handler.RunFailed,
        match=r"state 'restarting', which this runner does not know \(known: "
        r"success, failed, queued, running\)",
    ):
        call_is_complete(ev, mwaa)


def test_unknown_run_state_on_create_fails_at_once(mwaa):
    mwaa.get_run(DAG, RUN, "archived")
    with pytest.raises(handler.RunFailed, match="state 'archived'"):
        call_on_event(event(), mwaa)


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda e: e.pop("StackId"), "StackId is missing"),
        (lambda e: e.pop("PhysicalResourceId"), "PhysicalResourceId is missing"),
        (lambda e: e.pop("RequestType"), "RequestType is missing"),
        (lambda e: e.update(OldResourceProperties=["x"]), "OldResourceProperties must be an object, got list"),
    ],
)
def test_malformed_update_event_is_refused_before_any_call(mwaa, change, message):
    ev = event("Update", physical=PHYSICAL, old=event()["ResourceProperties"])
    change(ev)
    with pytest.raises(ValueError, match=rf"malformed custom-resource event: {message}"):
        call_on_event(ev, mwaa)


def test_delete_without_physical_id_is_refused(mwaa):
    ev = event("Delete")
    with pytest.raises(ValueError, match="malformed custom-resource event: PhysicalResourceId is missing"):
        call_on_event(ev, mwaa)


@pytest.mark.parametrize("started", ["yesterday", "inf"])
def test_non_numeric_started_at_is_refused(mwaa, started):
    ev = {
        **event(),
        "PhysicalResourceId": PHYSICAL,
        "Data": {"Action": "run", "State": "running", "StartedAt": started},
    }
    with pytest.raises(ValueError, match=rf"Data.StartedAt='{started}' is not a (finite )?number"):
        call_is_complete(ev, mwaa)
