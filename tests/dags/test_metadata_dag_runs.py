"""The DAGs themselves, run by Airflow 2.x (`airflow dags test`) against real databases.

This is the MWAA path: conf from dag_run.conf, the DB through Airflow's own engine, the
Fernet key from Airflow's configuration, S3 through boto3 (here a moto server).
"""

from __future__ import annotations

import json

import airflow_envs
import pgcluster
import pytest
from mig_harness import BUCKET, REPO, SOURCE_KEY, TARGET_KEY, connect, get_json

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def _dags_test(version, dag_id, db, conf, key, aws_env):
    env = dict(aws_env, AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"))
    return airflow_envs.run_airflow(
        version,
        ["dags", "test", dag_id, "-c", json.dumps(conf)],
        db_url=pgcluster.url(db),
        fernet_key=key,
        env_extra=env,
        check=False,
    )


def _run_states(db, dag_id):
    conn = connect(db)
    with conn.cursor() as cur:
        cur.execute("SELECT task_id, state FROM task_instance WHERE dag_id = %s ORDER BY task_id", (dag_id,))
        rows = cur.fetchall()
    conn.close()
    return rows


def test_db_export_and_db_import_dags_run_in_airflow_2(make_db, s3, aws_env):
    src, dst = make_db("2.10.3", seeded=True), make_db("2.11.0")
    mid = "dagrun-2103-2110"
    for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"dagtest/{mid}/").get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=o["Key"])
    conf = {"bucket": BUCKET, "prefix": "dagtest/", "migration_id": mid}
    p = _dags_test("2.10.3", "db_export", src, conf, SOURCE_KEY, aws_env)
    assert _run_states(src, "db_export") == [("export_tables", "success"), ("preflight", "success")], (
        p.stdout[-3000:] + p.stderr[-3000:]
    )
    manifest = get_json(s3, f"dagtest/{mid}/manifest.json")
    assert manifest["tables"]["task_instance"]["rows"] > 10
    assert "seed_secret" not in (p.stdout + p.stderr) and "p@ss" not in (p.stdout + p.stderr)

    p = _dags_test("2.11.0", "db_import", dst, dict(conf, task_log_days=0), TARGET_KEY, aws_env)
    assert _run_states(dst, "db_import") == [
        ("cutover", "success"),
        ("import_tables", "success"),
        ("preflight", "success"),
    ], p.stdout[-3000:] + p.stderr[-3000:]
    report = get_json(s3, f"dagtest/{mid}/report.json")
    assert report["all_rows_accounted"] and report["tables"]["task_instance"]["inserted"] > 10
    # the migration DAGs' own runs were not exported: the target has only its own db_import run
    conn = connect(dst)
    with conn.cursor() as cur:
        cur.execute("SELECT dag_id, count(*) FROM dag_run WHERE dag_id LIKE 'db_%' GROUP BY 1")
        assert cur.fetchall() == [("db_import", 1)]
    conn.close()

    # a bad conf fails the run at the first task, naming the field
    p = _dags_test("2.11.0", "db_import", dst, dict(conf, task_log_days=0, migration_id="BAD"), TARGET_KEY, aws_env)
    assert "dag_run.conf field 'migration_id': got 'BAD'" in p.stdout + p.stderr
