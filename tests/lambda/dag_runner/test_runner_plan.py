"""The pure decisions of the DAG runner."""

from __future__ import annotations

import json

import pytest
from runner_fakes import conf, event, props

from dag_runner import plan


def test_run_ids_follow_the_contract_and_stay_short():
    assert plan.run_id("2-10-3-to-3-0-6", "export") == "mig-2-10-3-to-3-0-6-e"
    assert plan.run_id("2-10-3-to-3-0-6", "import") == "mig-2-10-3-to-3-0-6-i"
    assert plan.run_id("2-10-3-to-3-0-6", "cutover") == "mig-2-10-3-to-3-0-6-c"
    longest = plan.run_id("a" * 40, "import", "x" * 64)
    assert longest.startswith("mig-" + "a" * 17 + "-") and "-i-r" in longest and len(longest) == 38
    # the longest run path of the metadata DAGs fits InvokeRestApi's 64 characters
    assert len(f"/dags/db_import/dagRuns/{longest}") <= 64


def test_long_migration_ids_sharing_a_prefix_get_distinct_run_ids():
    one = "upgrade-2-10-3-to-2-11-0-attempt-1"
    two = "upgrade-2-10-3-to-2-11-0-attempt-2"
    assert plan.run_id(one, "import") != plan.run_id(two, "import")
    assert plan.run_id(one, "import") == plan.run_id(one, "import")
    assert len(plan.run_id(one, "import")) == len("mig--i") + 24


def test_rerun_token_is_deterministic_and_distinct():
    a = plan.run_id("m1", "export", "one")
    assert a == plan.run_id("m1", "export", "one")
    assert a != plan.run_id("m1", "export", "two") != plan.run_id("m1", "export")


def test_parse_props_fills_migration_id_and_defaults():
    p = plan.parse_props(props())
    assert p.conf["migration_id"] == "2-10-3-to-3-0-6" and p.role == "Op" and p.rerun_token == ""
    assert p.physical_id == "mwaa-target/db_export/mig-2-10-3-to-3-0-6-e"


@pytest.mark.parametrize(
    "override,message",
    [
        ({"Colour": "x"}, r"unknown properties \['Colour'\]"),
        ({"DagId": None}, "property DagId is required"),
        ({"EnvironmentName": "9env"}, "EnvironmentName='9env' is not an MWAA name"),
        ({"AirflowVersion": "2.6.3"}, r"AirflowVersion: unknown Airflow version '2\.6\.3'"),
        ({"AirflowVersion": "1.10.12"}, "has no Airflow REST API"),
        ({"MigrationId": "x" * 41}, "MigrationId=.* is not allowed"),
        ({"Step": "copy"}, "Step='copy' is not allowed; allowed: export, import, cutover"),
        ({"Role": "Viewer"}, "Role='Viewer' is not allowed; allowed: Op"),
        # issue 12 item 11: Admin was accepted before; the runner takes only the least role that works
        ({"Role": "Admin"}, "Role='Admin' is not allowed; allowed: Op"),
        ({"CliTokenFallback": "yes"}, "CliTokenFallback='yes' is not allowed; allowed: true, false"),
        ({"RerunToken": "t" * 65}, "RerunToken is 65 characters"),
        ({"Conf": "{not json"}, "Conf is not valid JSON"),
        ({"Conf": "[1]"}, "Conf must be a JSON object"),
        ({"Conf": json.dumps(conf(migration_id="other"))}, "Conf.migration_id='other' differs"),
        ({"Conf": json.dumps({"prefix": "p/"})}, "Conf.bucket is required"),
        ({"Conf": json.dumps(conf(prefix="no-slash"))}, "must end with '/'"),
        ({"Conf": json.dumps(conf(cutover=True))}, "only the cutover step sets cutover=true"),
        ({"Step": "cutover"}, "only the cutover step sets cutover=true"),
    ],
)
def test_bad_properties_name_field_and_value(override, message):
    with pytest.raises(plan.PropertyError, match=message):
        plan.parse_props(props(**override))


def test_report_location_per_step():
    exp = plan.parse_props(props())
    imp = plan.parse_props(props(Step="import", DagId="db_import"))
    assert plan.report_location(exp).endswith("/2-10-3-to-3-0-6/manifest.json")
    assert plan.report_location(imp) == (
        "s3://mig-bucket/data/migration/2.10.3_to_3.0.6/export/2-10-3-to-3-0-6/report.json"
    )


def test_decide():
    p = plan.parse_props(props())
    assert plan.decide(event("Create"), p)["action"] == "run"
    assert plan.decide(event("Delete", physical="x"), None)["action"] == "none"
    assert plan.decide(event("Update", physical=p.physical_id), p)["action"] == "none"
    assert plan.decide(event("Update", physical="old"), p)["action"] == "run"
    assert plan.decide(event("Update", physical="old"), p, stack_rolling_back=True)["action"] == "none"
    with pytest.raises(plan.PropertyError):
        plan.decide({"RequestType": "Replace"}, p)


@pytest.mark.parametrize(
    "run,expected",
    [
        (None, "wait"),
        ({"state": "queued"}, "wait"),
        ({"state": "running"}, "wait"),
        ({"state": "SUCCESS"}, "success"),
        ({"state": "failed"}, "failed"),
        ({"state": None}, "wait"),
    ],
)
def test_classify(run, expected):
    assert plan.classify(run) == expected


def test_log_location():
    ti = {"task_id": "t", "try_number": 3, "map_index": -1}
    assert plan.log_location("env", "d", "r", ti) == ("airflow-env-Task", "dag_id=d/run_id=r/task_id=t/attempt=3.log")
    assert plan.log_location("env", "d", "r", {**ti, "map_index": 0})[1] == (
        "dag_id=d/run_id=r/task_id=t/map_index=0/attempt=3.log"
    )


def test_response_data_stays_under_4kb_and_is_strings():
    data = plan.response_data({"A": "x" * 5000, "B": 7, "C": None, "D": "short"})
    assert len(json.dumps(data)) <= 4096
    assert data["B"] == "7" and data["C"] == "" and data["D"] == "short"
    assert data["A"].endswith("...")


def test_failure_message_is_bounded():
    p = plan.parse_props(props())
    tis = [{"task_id": f"task_{i}" * 20, "state": "failed", "try_number": 1} for i in range(200)]
    assert len(plan.failure_message(p, tis)) <= plan.REASON_LIMIT
