"""Seed a migrated Airflow metadata DB with a realistic history (run INSIDE a 2.x Airflow venv).

    python tools/dev/seed.py --rows 200 [--fernet-key K]    (DB from AIRFLOW__DATABASE__SQL_ALCHEMY_CONN)

Uses the running version's own models (their tables and column types: PickleType conf,
dill executor_config, Fernet-encrypting Variable/Connection/Trigger) and fills any NOT NULL
column it does not know with a typed placeholder, so it works for every 2.x schema without a
hard-coded column list. Covers: run conf with newlines/quotes/non-ASCII text, several tries,
mapped tasks, pickled executor_config, xcom (JSON and one pickled), task_reschedule,
task_fail, task_instance_history, log, job, rendered fields, encrypted variables and
connections, pools with the newer NOT NULL columns, run and TI notes, sla_miss, trigger, and
TIs still running/queued (which the export must skip). Prints a JSON summary of row counts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import pickle
import sys

UTC = dt.UTC
CONF_TEXT = "line one\nline two with \"double\" and 'single' quotes, a comma, ünïcødé — 日本語 ✓"
SECRET = 'p@ss "wörd"\nwith newline, comma'
DAGS = ("seed_etl", "seed_mapped", "seed_sensor")


def _fill(table, row: dict) -> dict:
    """Keep known columns; give required unknown ones a typed placeholder."""
    import sqlalchemy as sa

    out = {k: v for k, v in row.items() if k in table.c}
    for col in table.columns:
        if col.name in out or col.nullable or col.server_default is not None or col.default is not None:
            continue
        if col.primary_key and isinstance(col.type, sa.Integer):
            continue
        t = col.type
        if isinstance(t, sa.Boolean):
            out[col.name] = False
        elif isinstance(t, sa.Integer):
            out[col.name] = 0
        elif isinstance(t, sa.DateTime):
            out[col.name] = dt.datetime.now(UTC)
        elif isinstance(t, (sa.JSON,)):
            out[col.name] = {}
        elif isinstance(t, sa.LargeBinary):
            out[col.name] = b""
        else:
            out[col.name] = "x"
    return out


def seed(rows: int) -> dict:  # noqa: C901 (a linear script of fixture rows, one block per table)
    from airflow import settings
    from airflow.jobs.job import Job
    from airflow.models import (
        Connection,
        DagModel,
        DagRun,
        Log,
        TaskFail,
        TaskInstance,
        TaskReschedule,
        Trigger,
        Variable,
    )
    from airflow.models.dagrun import DagRunNote
    from airflow.models.pool import Pool
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.models.slamiss import SlaMiss
    from airflow.models.taskinstance import TaskInstanceNote
    from airflow.models.xcom import BaseXCom

    try:
        from airflow.models.taskinstancehistory import TaskInstanceHistory
    except ImportError:
        TaskInstanceHistory = None

    settings.configure_orm()
    session = settings.Session()
    counts: dict[str, int] = {}

    def ins(model_or_table, row, returning=False):
        table = getattr(model_or_table, "__table__", model_or_table)
        stmt = table.insert().values(**_fill(table, row))
        if returning:
            stmt = stmt.returning(table.c.id)
        res = session.execute(stmt)
        counts[table.name] = counts.get(table.name, 0) + 1
        return res.scalar() if returning else None

    now = dt.datetime.now(UTC).replace(microsecond=0)
    # DAG rows: the export records which are active/unpaused
    for d in DAGS + ("seed_paused",):
        ins(
            DagModel,
            {
                "dag_id": d,
                "is_paused": d == "seed_paused",
                "is_active": True,
                "fileloc": f"/dags/{d}.py",
                "max_active_tasks": 16,
                "max_active_runs": 16,
                "has_task_concurrency_limits": False,
                "max_consecutive_failed_dag_runs": 0,
                "schedule_interval": json.dumps("@daily"),
                "owners": "seed",
            },
        )
    jobs = [
        ins(
            Job,
            {
                "dag_id": None,
                "state": "success",
                "job_type": "SchedulerJob",
                "start_date": now - dt.timedelta(days=9),
                "end_date": now,
                "latest_heartbeat": now,
                "executor_class": "CeleryExecutor",
                "hostname": "worker-1",
                "unixname": "airflow",
            },
            returning=True,
        )
        for _ in range(3)
    ]
    trig = Trigger(
        classpath="airflow.triggers.temporal.DateTimeTrigger",
        kwargs={"moment": now + dt.timedelta(hours=1), "note": CONF_TEXT},
    )
    session.add(trig)
    session.flush()
    counts["trigger"] = 1

    n_runs = max(4, rows // 8)
    runs = []
    for r in range(n_runs):
        dag_id = DAGS[r % len(DAGS)]
        logical = now - dt.timedelta(days=2, hours=r)
        run_type = ("scheduled", "manual", "dataset_triggered", "backfill")[r % 4]
        run_id = f"{run_type}__{logical.isoformat()}"
        conf = {"text": CONF_TEXT, "n": r, "nested": {"list": [1, 2.5, None, True]}} if r % 3 else None
        rid = ins(
            DagRun,
            {
                "dag_id": dag_id,
                "run_id": run_id,
                "run_type": run_type,
                "execution_date": logical,
                "queued_at": logical,
                "start_date": logical,
                "end_date": logical + dt.timedelta(minutes=5),
                "state": "failed" if r % 5 == 1 else "success",
                "external_trigger": run_type == "manual",
                "conf": conf,
                "data_interval_start": logical - dt.timedelta(days=1),
                "data_interval_end": logical,
                "last_scheduling_decision": logical,
                "dag_hash": "abc",
                "creating_job_id": jobs[0],
                "clear_number": r % 2,
                "updated_at": logical,
                "log_template_id": None,
            },
            returning=True,
        )
        runs.append((rid, dag_id, run_id, logical))
        if r % 4 == 0:
            ins(
                DagRunNote,
                {
                    "dag_run_id": rid,
                    "user_id": None,
                    "content": f"run note {CONF_TEXT}",
                    "created_at": logical,
                    "updated_at": logical,
                },
            )

    ti_rows = 0
    for k, (rid, dag_id, run_id, logical) in enumerate(runs):
        tasks = [("extract", -1, 3 if k % 2 else 1), ("load", -1, 1)]
        tasks += [("mapped", m, 1 + (m % 2)) for m in range(3)]
        for task_id, mi, tries in tasks:
            state = "failed" if (k % 5 == 1 and task_id == "load") else "success"
            if k == 0 and task_id == "load":
                state = "running"
            if k == 1 and task_id == "extract":
                state = "queued"
            if k == 2 and task_id == "load":
                state = "deferred"
            if k == 3 and task_id == "load":
                state = "shutdown"  # legacy state: Airflow 3 has none, the import maps it
            start = logical + dt.timedelta(minutes=1)
            end = None if state in ("running", "queued", "deferred") else now - dt.timedelta(hours=k)
            ti = {
                "dag_id": dag_id,
                "task_id": task_id,
                "run_id": run_id,
                "map_index": mi,
                "try_number": tries,
                "max_tries": 3,
                "state": state,
                "start_date": start,
                "end_date": end,
                "duration": 12.5,
                "hostname": "worker-1",
                "unixname": "airflow",
                "job_id": jobs[1],
                "pool": "default_pool",
                "pool_slots": 1,
                "queue": "default",
                "priority_weight": 3,
                "operator": "PythonOperator",
                "custom_operator_name": None,
                "queued_dttm": start,
                "queued_by_job_id": jobs[0],
                "pid": 4242,
                "executor_config": {"KubernetesExecutor": {"image": "x"}, "note": CONF_TEXT},
                "updated_at": end or start,
                "external_executor_id": "celery-id",
                "trigger_id": trig.id if state == "deferred" else None,
                "next_method": "execute_complete" if state == "deferred" else None,
                "next_kwargs": {"k": CONF_TEXT} if state == "deferred" else None,
                "rendered_map_index": f"item {mi}" if mi >= 0 else None,
                "task_display_name": task_id,
            }
            ins(TaskInstance, ti)
            ti_rows += 1
            if TaskInstanceHistory is not None and tries > 1:
                for t in range(1, tries):
                    h = dict(ti, try_number=t, state="failed")
                    ins(TaskInstanceHistory, h)
            if state == "failed":
                ins(
                    TaskFail,
                    {
                        "dag_id": dag_id,
                        "task_id": task_id,
                        "run_id": run_id,
                        "map_index": mi,
                        "start_date": start,
                        "end_date": end,
                        "duration": 3,
                    },
                )
            if state in ("running", "queued"):
                continue
            ins(
                BaseXCom,
                {
                    "dag_run_id": rid,
                    "task_id": task_id,
                    "map_index": mi,
                    "key": "return_value",
                    "dag_id": dag_id,
                    "run_id": run_id,
                    "value": json.dumps({"rows": k, "text": CONF_TEXT}).encode(),
                    "timestamp": start,
                },
            )
            ins(
                RTIF,
                {
                    "dag_id": dag_id,
                    "task_id": task_id,
                    "run_id": run_id,
                    "map_index": mi,
                    "rendered_fields": {"sql": f"SELECT '{CONF_TEXT}'"},
                    "k8s_pod_yaml": None,
                },
            )
            if task_id == "extract" and k % 3 == 0:
                ins(
                    TaskInstanceNote,
                    {
                        "dag_id": dag_id,
                        "task_id": task_id,
                        "run_id": run_id,
                        "map_index": mi,
                        "user_id": None,
                        "content": "ti note ✓",
                        "created_at": start,
                        "updated_at": start,
                    },
                )
                ins(
                    TaskReschedule,
                    {
                        "dag_id": dag_id,
                        "task_id": task_id,
                        "run_id": run_id,
                        "map_index": mi,
                        "try_number": tries,
                        "start_date": start,
                        "end_date": start,
                        "duration": 1,
                        "reschedule_date": start + dt.timedelta(minutes=5),
                    },
                )
        if k % 7 == 0:
            ins(
                SlaMiss,
                {
                    "task_id": "load",
                    "dag_id": dag_id,
                    "execution_date": logical,
                    "email_sent": False,
                    "timestamp": logical,
                    "description": CONF_TEXT,
                    "notification_sent": False,
                },
            )
    # one pickled xcom (enable_xcom_pickling): converted to JSON for Airflow 3
    rid, dag_id, run_id, logical = runs[-1]
    ins(
        BaseXCom,
        {
            "dag_run_id": rid,
            "task_id": "extract",
            "map_index": -1,
            "key": "pickled",
            "dag_id": dag_id,
            "run_id": run_id,
            "value": pickle.dumps({"when": "2024-01-01", "n": 1}),
            "timestamp": logical,
        },
    )
    for i in range(rows):
        ins(
            Log,
            {
                "dttm": now - dt.timedelta(seconds=i),
                "dag_id": DAGS[i % 3],
                "task_id": "extract",
                "map_index": -1,
                "event": ("cli_task_run", "running", "success")[i % 3],
                "execution_date": now,
                "owner": "seed",
                "owner_display_name": "Seed Ö",
                "extra": json.dumps({"i": i, "text": CONF_TEXT}),
                "run_id": runs[i % len(runs)][2],
                "try_number": 1,
            },
        )
    ins(Pool, {"pool": "seed_pool", "slots": 7, "description": "pool ü", "include_deferred": True})
    session.commit()

    Variable.set("seed_secret", SECRET, session=session)
    Variable.set("seed_json", {"a": [1, 2], "text": CONF_TEXT}, serialize_json=True, session=session)
    session.add(
        Connection(
            conn_id="seed_conn",
            conn_type="postgres",
            host="db.example",
            login="u",
            password=SECRET,
            port=5432,
            schema="s",
            extra=json.dumps({"token": SECRET}),
        )
    )
    session.commit()
    counts["variable"] = 2
    counts["connection"] = 1
    counts["task_instance"] = ti_rows
    session.close()
    return counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100)
    a = ap.parse_args(argv)
    print(json.dumps(seed(a.rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
