"""Every pattern of issue 19, converted and loaded by a real Airflow DagBag in a venv with the
Amazon and common-SQL providers MWAA pins for the target (dp_airflow): tasks, operators,
dependencies, schedule, retries, callbacks, and templates rendered with a fixed data interval
(2024-03-01T03:30 -> 2024-03-02T03:30 UTC)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dp_airflow import load_dags
from dp_helpers import FIXTURES, large_definition

from tools.datapipeline import main

pytestmark = [pytest.mark.airflow, pytest.mark.slow]
TARGETS = ["2.11.0", "3.0.6"]


@pytest.fixture(scope="module", params=TARGETS)
def bag(request, tmp_path_factory) -> dict:
    target = request.param
    folder = tmp_path_factory.mktemp(f"dags-{target}")
    for definition in sorted(FIXTURES.glob("*.json")):
        assert main(["convert", str(definition), "--out", str(folder), "--target-version", target]) == 0
    big = folder.parent / f"large-{target}.json"
    big.write_text(json.dumps(large_definition(100)))
    assert main(["convert", str(big), "--out", str(folder), "--target-version", target]) == 0
    for report in folder.glob("*.report.*"):  # the DAG folder gets only DAG files
        report.unlink()
    loaded = load_dags(target, Path(folder), tmp_path_factory.mktemp(f"home-{target}"))
    assert loaded["import_errors"] == {}
    return {"target": target, **loaded}


def _upstream(dag: dict) -> dict[str, list[str]]:
    return {tid: t["upstream"] for tid, t in dag["tasks"].items()}


def test_airflow_3_dags_import_nothing_removed_in_3(bag):
    for dag in bag["dags"].values():
        for task in dag["tasks"].values():
            if bag["target"].startswith("3."):
                assert not task["module"].startswith(("airflow.operators.", "airflow.sensors.")), task["module"]


def test_no_jinja_outside_template_fields(bag):
    for dag_id, dag in bag["dags"].items():
        for tid, task in dag["tasks"].items():
            assert task["jinja_outside_templates"] == [], (dag_id, tid)


def test_shell_activities_on_ec2_with_default_retries_alarm_and_params(bag):
    dag = bag["dags"]["shell_on_ec2"]
    assert {t: v["operator"] for t, v in dag["tasks"].items()} == {
        "extract": "BashOperator",
        "transform": "BashOperator",
        "publish": "BashOperator",
    }
    assert _upstream(dag) == {"extract": [], "transform": ["extract"], "publish": ["transform"]}
    assert dag["timetable"] == "CronTriggerTimetable" and dag["schedule"] == "30 3 * * *"
    assert dag["start_date"].startswith("2024-03-01T03:30:00") and dag["end_date"].startswith("2025-03-01T03:30:00")
    assert dag["catchup"] is False
    extract, transform = dag["tasks"]["extract"], dag["tasks"]["transform"]
    assert (extract["retries"], extract["retry_delay"]) == (2, 600.0)
    assert (transform["retries"], transform["execution_timeout"]) == (4, 7200.0)
    assert all(t["on_failure_callback"] for t in dag["tasks"].values())
    assert dag["params"] == {"myBatchSize": 500, "myDataset": "orders_eu"}
    assert extract["rendered"]["bash_command"] == "echo extracting orders_eu for 2024-03-01"
    # cron style: @scheduledEndTime is one period after the run's start
    assert transform["rendered"]["bash_command"] == "echo transforming until 2024-03-01 03:30"


def test_s3_copy_with_key_and_prefix_preconditions_hourly_timeseries(bag):
    dag = bag["dags"]["s3_copy_hourly"]
    ops = {t: v["operator"] for t, v in dag["tasks"].items()}
    assert ops == {
        "archive_prefix_exists": "S3KeySensor",
        "incoming_file_ready": "S3KeySensor",
        "copy_to_archive": "S3CopyObjectOperator",
    }
    assert _upstream(dag)["copy_to_archive"] == ["archive_prefix_exists", "incoming_file_ready"]
    assert dag["timetable"] == "CronDataIntervalTimetable" and dag["schedule"] == "15 * * * *"
    # 48 occurrences: the last period starts 47 hours after the first
    assert dag["start_date"].startswith("2024-01-01T00:15:00") and dag["end_date"].startswith("2024-01-02T23:15:00")
    copy = dag["tasks"]["copy_to_archive"]
    assert (copy["retries"], copy["retry_delay"]) == (1, 300.0)
    assert copy["rendered"]["source_bucket_key"] == "s3://example-landing/orders/2024/03/01/03/orders.csv"
    assert copy["rendered"]["dest_bucket_key"] == "s3://example-archive/orders/2024-03-01-03.csv"
    ready = dag["tasks"]["incoming_file_ready"]
    assert (ready["timeout"], ready["mode"]) == (1800, "reschedule")
    assert dag["tasks"]["archive_prefix_exists"]["rendered"]["bucket_key"] == "s3://example-archive/orders/*"


def test_sql_activities_on_rds_and_jdbc_and_sql_to_s3_copy_ondemand(bag):
    dag = bag["dags"]["sql_rds_jdbc"]
    ops = {t: v["operator"] for t, v in dag["tasks"].items()}
    assert ops == {
        "db_is_up": "BashSensor",
        "refresh_summary": "SQLExecuteQueryOperator",
        "export_summary": "SqlToS3Operator",
        "mark_done": "SQLExecuteQueryOperator",
    }
    assert _upstream(dag) == {
        "db_is_up": [],
        "refresh_summary": ["db_is_up"],
        "export_summary": ["refresh_summary"],
        "mark_done": ["refresh_summary"],
    }
    assert dag["timetable"] == "NullTimetable" and dag["start_date"] is None
    refresh = dag["tasks"]["refresh_summary"]
    assert (refresh["retries"], refresh["execution_timeout"]) == (3, 2700.0)
    assert refresh["rendered"]["conn_id"] == "orders_db"
    assert dag["tasks"]["mark_done"]["rendered"]["conn_id"] == "legacy_db"
    assert dag["tasks"]["export_summary"]["rendered"]["s3_bucket"] == "example-exports"


def test_redshift_copy_upsert_with_sla_and_alarms_weekly(bag):
    dag = bag["dags"]["redshift_copy_weekly"]
    ops = {t: v["operator"] for t, v in dag["tasks"].items()}
    assert ops == {
        "sales_staged": "S3KeySensor",
        "load_sales": "S3ToRedshiftOperator",
        "vacuum": "RedshiftDataOperator",
        "keep_old": "EmptyOperator",
    }
    assert _upstream(dag) == {
        "sales_staged": [],
        "load_sales": ["sales_staged"],
        "vacuum": ["load_sales"],
        "keep_old": ["sales_staged", "vacuum"],
    }
    assert dag["timetable"] == "CronDataIntervalTimetable" and dag["schedule"] == "0 6 * * 0"
    load = dag["tasks"]["load_sales"]
    assert (load["retries"], load["retry_delay"]) == (2, 900.0)
    assert load["on_success_callback"] and load["on_failure_callback"]
    if bag["target"].startswith("2."):
        assert (load["sla"], dag["sla_miss_callback"]) == (7200.0, True)
    else:  # Airflow 3.0 has no SLAs: a TODO in the DAG and the report instead
        assert (load["sla"], dag["sla_miss_callback"]) == (None, False)
    assert dag["tasks"]["vacuum"]["retries"] == 0
    rendered = load["rendered"]
    assert (rendered["schema"], rendered["table"], rendered["s3_bucket"]) == (
        "sales",
        "weekly_sales",
        "example-staging",
    )
    assert rendered["s3_key"] == "sales/2024-03-01/"


def test_emr_cluster_with_emr_hive_pig_hadoop_steps(bag):
    dag = bag["dags"]["emr_cluster_api"]
    ops = {t: v["operator"] for t, v in dag["tasks"].items()}
    assert ops["cluster_create"] == "EmrCreateJobFlowOperator"
    assert ops["cluster_terminate"] == "EmrTerminateJobFlowOperator"
    for act in ("ingest", "aggregate", "score", "publish"):
        assert ops[f"{act}_add_steps"] == "EmrAddStepsOperator" and ops[f"{act}_watch_step"] == "EmrStepSensor"
    up = _upstream(dag)
    assert up["ingest_add_steps"] == ["cluster_create"]
    assert up["aggregate_add_steps"] == ["cluster_create", "ingest_watch_step"]
    assert up["publish_add_steps"] == ["aggregate_watch_step", "cluster_create", "score_watch_step"]
    watches = sorted(f"{a}_watch_step" for a in ("ingest", "aggregate", "score", "publish"))
    assert up["cluster_terminate"] == sorted(["cluster_create", *watches])  # job_flow_id=cluster_create.output
    assert up["cluster_steps_done"] == watches
    assert dag["tasks"]["cluster_terminate"]["trigger_rule"] == "all_done"
    assert dag["timetable"] == "CronTriggerTimetable" and dag["schedule"] == "0 2-23/6 * * *"
    publish = dag["tasks"]["publish_add_steps"]
    assert (publish["retries"], publish["retry_delay"]) == (3, 1200.0)
    assert dag["tasks"]["ingest_add_steps"]["retries"] == 1
    steps = dag["tasks"]["ingest_add_steps"]["rendered"]["steps"]
    assert steps[0]["HadoopJarStep"]["Args"] == ["--date", "2024-03-01"]
    assert steps[1]["HadoopJarStep"]["Args"][-1] == "a,b"
    hive = dag["tasks"]["aggregate_add_steps"]["rendered"]["steps"][0]["HadoopJarStep"]["Args"]
    assert hive[:2] == ["hive-script", "--run-hive-script"] and hive[-1] == "DAY=2024-03-01"
    hadoop = dag["tasks"]["publish_add_steps"]["rendered"]["steps"][0]["HadoopJarStep"]
    assert hadoop["MainClass"] == "com.example.Publish" and hadoop["Args"][-1] == "s3://example-out/2024-03-01-03/"
    watch = dag["tasks"]["aggregate_watch_step"]["rendered"]
    assert "cluster_create" in watch["job_flow_id"]  # the create task's XComArg (.output)
    assert watch["step_id"] == "s-STEP2"
    overrides = dag["tasks"]["cluster_create"]["rendered"]["job_flow_overrides"]
    assert overrides["ReleaseLabel"] == "emr-6.15.0"
    assert overrides["Configurations"][0]["Properties"] == {"spark.executor.memory": "4g"}


def test_dynamodb_export_import_templates_and_dynamodb_preconditions(bag):
    dag = bag["dags"]["dynamodb_templates"]
    ops = {t: v["operator"] for t, v in dag["tasks"].items()}
    assert ops["table_exists"] == ops["table_has_data"] == "PythonSensor"
    assert ops["table_backup_activity"] == "DynamoDBToS3Operator"
    assert ops["table_load_activity_add_steps"] == "EmrAddStepsOperator"
    assert "export_cluster_create" not in ops  # the export needs no cluster
    up = _upstream(dag)
    assert up["table_backup_activity"] == ["table_exists", "table_has_data"]
    assert up["table_load_activity_add_steps"] == ["import_cluster_create", "table_backup_activity"]
    export = dag["tasks"]["table_backup_activity"]["rendered"]
    assert export["dynamodb_table_name"] == "orders" and export["s3_bucket_name"] == "example-backups"
    assert export["s3_key_prefix"] == "orders/2024-03-01-03-30-00"
    args = dag["tasks"]["table_load_activity_add_steps"]["rendered"]["steps"][0]["HadoopJarStep"]
    assert args["Jar"].startswith("s3://dynamodb-dpl-us-east-1/")
    assert args["Args"] == [
        "org.apache.hadoop.dynamodb.tools.DynamoDBImport",
        "s3://example-backups/orders/2024-01-01-00-00-00",
        "orders_restore",
        "0.5",
    ]
    assert dag["tasks"]["table_exists"]["rendered"]["op_kwargs"] == {"table_name": "orders"}
    # FIRST_ACTIVATION_DATE_TIME: a fixed past start with catchup off
    assert dag["start_date"].startswith("2024-01-01T00:00:00") and dag["catchup"] is False


def test_large_definition_loads(bag):
    dag = bag["dags"]["large-" + bag["target"]]
    assert len(dag["tasks"]) == 100
    assert dag["tasks"]["step015"]["upstream"] == ["step005", "step006"]
    assert dag["timetable"] == "CronDataIntervalTimetable" and dag["schedule"] == "0-59/15 * * * *"
    assert all(t["retries"] == 2 and t["retry_delay"] == 120.0 for t in dag["tasks"].values())
