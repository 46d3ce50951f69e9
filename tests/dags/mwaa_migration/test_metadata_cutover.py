"""Cutover unpauses exactly the source's active DAGs, only after the target re-parsed them."""

from __future__ import annotations

import datetime as dt

import pytest
from mig_harness import connect

from mwaa_migration import cutover

pytestmark = [pytest.mark.airflow]


def _dag(cur, dag_id, parsed, paused=True, active=True):
    cur.execute(
        "INSERT INTO dag (dag_id, is_paused, is_active, last_parsed_time, max_active_tasks, "
        "has_task_concurrency_limits, max_consecutive_failed_dag_runs) "
        "VALUES (%s, %s, %s, %s, 16, false, 0)",
        (dag_id, paused, active, parsed),
    )


def test_cutover_waits_for_parsing_then_unpauses_exactly_the_active_dags(make_db):
    db = make_db("2.11.0")
    imported = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    conn = connect(db)
    with conn.cursor() as cur:
        _dag(cur, "a", imported - dt.timedelta(minutes=1))  # parsed before the import
        _dag(cur, "b", imported + dt.timedelta(minutes=1))  # ready
        _dag(cur, "gone", imported + dt.timedelta(minutes=1), active=False)
        _dag(cur, "other", imported + dt.timedelta(minutes=1))  # not active in the source
    conn.commit()
    ticks = iter(range(0, 10_000, 10))
    slept = []
    with pytest.raises(TimeoutError) as err:
        cutover.run_cutover(
            conn,
            ["a", "b", "c", "gone"],
            imported,
            timeout_s=25,
            poll_s=10,
            progress=lambda m: None,
            sleep=slept.append,
            clock=lambda: next(ticks),
        )
    msg = str(err.value)
    assert "3 DAG(s) not ready" in msg and "none unpaused" in msg
    assert "a: not re-parsed since the import" in msg and "c: not parsed by the target" in msg
    assert "gone: not active" in msg and slept == [10, 10]
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM dag WHERE NOT is_paused")
        assert cur.fetchone()[0] == 0
        cur.execute("UPDATE dag SET last_parsed_time = %s, is_active = true", (imported + dt.timedelta(minutes=2),))
        _dag(cur, "c", imported + dt.timedelta(minutes=2), paused=False)
    conn.commit()
    # a DAG whose next run still lies inside the migrated history would create catch-up runs
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO dag_run (dag_id, run_id, run_type, execution_date, clear_number) "
            "VALUES ('b', 'scheduled__x', 'scheduled', %s, 0)",
            (imported,),
        )
        cur.execute("UPDATE dag SET next_dagrun = %s WHERE dag_id = 'b'", (imported - dt.timedelta(days=1),))
    conn.commit()
    with pytest.raises(TimeoutError, match="b: next run not yet computed past the migrated runs"):
        cutover.run_cutover(
            conn,
            ["a", "b", "c", "gone"],
            imported,
            timeout_s=0,
            progress=lambda m: None,
            sleep=slept.append,
            clock=lambda: 0,
        )
    with conn.cursor() as cur:
        cur.execute("UPDATE dag SET next_dagrun = %s WHERE dag_id = 'b'", (imported + dt.timedelta(days=1),))
    conn.commit()
    out = cutover.run_cutover(
        conn,
        ["a", "b", "c", "gone"],
        imported,
        timeout_s=0,
        progress=lambda m: None,
        sleep=slept.append,
        clock=lambda: 0,
    )
    assert out == {"unpaused": ["a", "b", "gone"], "already_unpaused": ["c"]}
    with conn.cursor() as cur:
        cur.execute("SELECT dag_id FROM dag WHERE is_paused ORDER BY 1")
        assert cur.fetchall() == [("other",)]
    conn.close()
