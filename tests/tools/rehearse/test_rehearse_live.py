"""--live-source: the report's live_source block from the phase state and both sides' runs."""

from __future__ import annotations

import datetime as dt

from tools.rehearse import live

T0 = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)


def _at(s):
    return T0 + dt.timedelta(seconds=s)


def test_live_summary_counts_runs_created_during_bulk_and_finds_them_in_the_target():
    state = {
        "timings": {"paused_at": _at(60).isoformat()},
        "drain": {"drained": 4, "tis_left_running": 1, "waited_s": 3.5, "in_flight_at_freeze": 5},
    }
    src = {
        ("live_fast", "r_before"): {"state": "success", "queued_at": _at(-5)},
        ("live_fast", "r1"): {"state": "success", "queued_at": _at(10)},
        ("live_chain", "r2"): {"state": "running", "queued_at": _at(50)},
        ("live_chain", "r3"): {"state": "success", "queued_at": _at(55)},
        ("live_fast", "r_after"): {"state": "queued", "queued_at": _at(61)},
    }
    tgt = {
        ("live_fast", "r1"): {"state": "success"},
        ("live_chain", "r2"): {"state": "running"},
        ("live_chain", "r3"): {"state": "running"},
    }
    out = live.live_summary(state, src, tgt, T0)
    assert {k: out[k] for k in ("runs_created_during_bulk", "runs_in_target", "tis_drained", "tis_left_running")} == {
        "runs_created_during_bulk": 3,
        "runs_in_target": 2,
        "tis_drained": 4,
        "tis_left_running": 1,
    }
    assert out["missing_or_different"] == ["live_chain/r3"]


def test_the_live_dag_file_compiles_and_the_scheduler_runs_the_local_executor():
    compile(live.dag_file(), "live_dags.py", "exec")
    env = live.scheduler_env({"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"}, live.Path("/tmp/x"))
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor" and env["AIRFLOW__CORE__DAGS_FOLDER"] == "/tmp/x"
