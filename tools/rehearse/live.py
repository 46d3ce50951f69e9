"""``--live-source``: the short cutover rehearsed against a source that keeps scheduling.

A real scheduler (LocalExecutor) of the source version runs on the source database during the
bulk phase, with DAGs that start a run every few seconds and tasks that take a few seconds, so
the freeze meets work in flight. The phases run as the library's CLI in each side's venv, in the
order the deploy runs them; the target's scheduler parse after the delta import is done with
``airflow dags reserialize`` of the target version (what a scheduler's DAG processor does to the
``dag`` table). Report keys (top level): ``pause_window_s`` and ``live_source``:
{runs_created_during_bulk, runs_in_target, tis_drained, tis_left_running} (+ details).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from . import checks, procs

LIVE_DAGS = ("live_fast", "live_chain")
TASK_SECONDS = 3
EVERY_SECONDS = 6
BULK_MIN_SECONDS = 25  # the bulk phase lasts at least this long, so runs are created meanwhile
START_TIMEOUT = 240


def dag_file() -> str:
    """Two DAGs: a run every EVERY_SECONDS, tasks of TASK_SECONDS (Airflow 2.x API)."""
    return textwrap.dedent(f"""\
        import datetime, time
        from airflow import DAG
        from airflow.operators.python import PythonOperator

        def work():
            time.sleep({TASK_SECONDS})

        for dag_id, n in (("live_fast", 1), ("live_chain", 2)):
            with DAG(dag_id, schedule=datetime.timedelta(seconds={EVERY_SECONDS}),
                     start_date=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1),
                     catchup=False, max_active_runs=2) as dag:
                prev = None
                for i in range(n):
                    t = PythonOperator(task_id=f"step_{{i}}", python_callable=work)
                    if prev is not None:
                        prev >> t
                    prev = t
            globals()[dag_id] = dag
        """)


def scheduler_env(base: dict, dags_dir: Path) -> dict:
    env = dict(base)
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_dir),
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__PARSING_PROCESSES": "1",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        }
    )
    return env


class Scheduler:
    """``airflow scheduler`` in its own process group; output to a log file."""

    def __init__(self, python: Path, env: dict, log_path: Path):
        self.python, self.env, self.log_path = python, env, log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> Scheduler:
        self._log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(self.python), "-m", "airflow", "scheduler"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        with procs._lock:
            procs._current[self.proc.pid] = self.proc
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            procs.terminate_group(self.proc)
        with procs._lock:
            procs._current.pop(self.proc.pid, None)
        self._log.close()
        self.proc = None


def _query(url: str, sql: str, args: tuple = ()) -> list:
    conn = checks.connect(url, flag="database")
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            rows = cur.fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def runs_of_live_dags(url: str, *, as_exported: bool = False) -> dict:
    """{(dag_id, run_id): {state, queued_at}}; ``as_exported``: a run whose task instances all
    ended while paused with the state the delta export gives it (delta_rules.finalized_run_exprs)."""
    state = "t.state"
    if as_exported:
        dags = str(Path(__file__).resolve().parents[2] / "dags")
        if dags not in sys.path:
            sys.path.insert(0, dags)
        from mwaa_migration import delta_rules

        state = delta_rules.finalized_run_exprs()["state"]
    rows = _query(
        url,
        f"SELECT t.dag_id, t.run_id, {state}, t.queued_at FROM dag_run t WHERE t.dag_id = ANY(%s)",
        (list(LIVE_DAGS),),
    )
    return {(r[0], r[1]): {"state": r[2], "queued_at": r[3]} for r in rows}


def wait_for_first_run(url: str, sched: Scheduler, out, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sched.alive():
            raise RuntimeError(f"the source's scheduler exited; see {sched.log_path}")
        done = _query(
            url, "SELECT count(*) FROM task_instance WHERE dag_id = ANY(%s) AND state = 'success'", (list(LIVE_DAGS),)
        )[0][0]
        if done:
            return
        time.sleep(2)
    raise RuntimeError(f"the source's scheduler ran no task within {timeout:.0f}s; see {sched.log_path}")


def live_summary(state: dict, src_runs: dict, tgt_runs: dict, bulk_started: dt.datetime) -> dict[str, Any]:
    """Pure: the report's ``live_source`` from the phase state and the runs on both sides."""
    paused_at = dt.datetime.fromisoformat(state["timings"]["paused_at"])
    during = {
        k: v for k, v in src_runs.items() if v["queued_at"] is not None and bulk_started <= v["queued_at"] < paused_at
    }
    same = [k for k, v in during.items() if k in tgt_runs and tgt_runs[k]["state"] == v["state"]]
    drain = state.get("drain") or {}
    return {
        "runs_created_during_bulk": len(during),
        "runs_in_target": len(same),
        "tis_drained": drain.get("drained", 0),
        "tis_left_running": drain.get("tis_left_running", 0),
        "missing_or_different": sorted(f"{d}/{r}" for (d, r) in during if (d, r) not in same)[:20],
        "drain_waited_s": drain.get("waited_s"),
        "in_flight_at_freeze": drain.get("in_flight_at_freeze"),
    }


def run_live(rh, src_url: str, tgt_url: str) -> dict:
    """The phases against a live source; ``rh`` is the Rehearsal (steps, children, envs, moto)."""
    dags_dir = rh.run_dir / "live-dags"
    dags_dir.mkdir(exist_ok=True)
    (dags_dir / "live_dags.py").write_text(dag_file())
    src_env = scheduler_env(rh.airflow_env(rh.source, src_url, rh.plan["source_key"], "source"), dags_dir)
    tgt_env = rh.airflow_env(rh.target, tgt_url, rh.target_key, "target")
    tgt_env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags_dir)
    conf = rh.conf(
        source_environment=rh.source_env,
        target_environment=rh.target_env,
        task_log_days=0,
        drain_timeout_s=rh.plan.get("drain_timeout_s", 120),
    )

    def phase(name: str, version: str, url: str, env: dict) -> None:
        with rh.step(name):
            rh.child(
                name,
                [
                    str(rh._python(version)),
                    "-m",
                    "mwaa_migration",
                    name.replace(" ", "-"),
                    f"--sql-alchemy-conn={url}",
                    f"--bucket={rh.moto.bucket}",
                    f"--prefix={rh.prefix}",
                    f"--conf-json={conf}",
                ],
                env,
            )

    # the generated history's running/queued task instances have no worker behind them (the
    # drain would wait for them in vain): they end as failed, as zombie detection would end them
    _query(
        src_url,
        "UPDATE task_instance SET state = 'failed', end_date = now(), updated_at = now() "
        "WHERE state IN ('running', 'queued') AND dag_id <> ALL(%s) RETURNING 1",
        (list(LIVE_DAGS),),
    )
    sched = Scheduler(rh._python(rh.source), src_env, rh.run_dir / "source-scheduler.log")
    with rh.step("source scheduler (LocalExecutor)"):
        sched.start()
        wait_for_first_run(src_url, sched, rh.out)
    try:
        bulk_started = dt.datetime.now(dt.UTC)
        phase("bulk export", rh.source, src_url, src_env)
        phase("bulk import", rh.target, tgt_url, tgt_env)
        rest = BULK_MIN_SECONDS - (dt.datetime.now(dt.UTC) - bulk_started).total_seconds()
        if rest > 0:
            rh.out(f"  source keeps scheduling for {rest:.0f}s more (bulk phase)", flush=True)
            time.sleep(rest)
        phase("freeze", rh.source, src_url, src_env)
        phase("delta export", rh.source, src_url, src_env)
        # the source's scheduler keeps running (paused DAGs) until the cutover, as in AWS
        phase("delta import", rh.target, tgt_url, tgt_env)
        with rh.step("target parses the DAGs"):
            rh.child("target parse", [str(rh._python(rh.target)), "-m", "airflow", "dags", "reserialize"], tgt_env)
        phase("cutover", rh.target, tgt_url, tgt_env)
    finally:
        with rh.step("stop source scheduler"):
            sched.stop()
    state = rh.moto.get_json(f"{rh.prefix}{rh.migration_id}/cutover/state.json")
    live = live_summary(state, runs_of_live_dags(src_url, as_exported=True), runs_of_live_dags(tgt_url), bulk_started)
    live["unpaused_in_target"] = [
        r[0] for r in _query(tgt_url, "SELECT dag_id FROM dag WHERE NOT is_paused ORDER BY 1")
    ]
    live["recorded_active"] = state["pause"]["active_dags"]
    live["ok"] = live["runs_in_target"] == live["runs_created_during_bulk"] > 0 and sorted(
        live["unpaused_in_target"]
    ) == sorted(live["recorded_active"])
    delta_rep = rh.moto.get_json(f"{rh.prefix}{rh.migration_id}/delta/report.json") or {}
    return {
        "pause_window_s": state["timings"].get("pause_window_s"),
        "live_source": live,
        "phases": {"completed": state["completed"], "timings": state["timings"]},
        "delta": {
            t: {k: e.get(k) for k in ("exported", "inserted", "updated", "already_present", "conflicts", "rejected")}
            for t, e in delta_rep.get("tables", {}).items()
        },
        "state": json.loads(json.dumps(state, default=str))["drain"],
    }


def rehearse(rh) -> dict:
    """The whole ``--live-source`` rehearsal on a Rehearsal ``rh`` (generated history): fresh
    databases, a live source, the phases, and the verdict. Returns the report."""
    p = rh.plan
    r = rh.report
    r["rehearsal"] = {
        "run_id": rh.run_id,
        "source_version": rh.source,
        "target_version": rh.target,
        "mode": f"--live-source, generated history, {p.get('rows')} rows",
        "migration_id": rh.migration_id,
        "log_dir": str(rh.run_dir),
        "error": None,
    }
    r["steps"] = rh.steps
    rh.ensure_postgres()
    rh.ensure_venv(rh.source)
    rh.ensure_venv(rh.target)
    rh.start_moto()
    src_url = rh.fresh_db("source", rh.source)
    rh.seed(src_url)
    tgt_url = rh.fresh_db("target", rh.target)
    r.update(run_live(rh, src_url, tgt_url))
    ok = bool(r["live_source"]["ok"]) and r["pause_window_s"] is not None
    r["verdict"] = {
        "ok": ok,
        "problems": []
        if ok
        else [
            f"runs created during the bulk phase: {r['live_source']['runs_created_during_bulk']}, in the target "
            f"with the same state: {r['live_source']['runs_in_target']}; unpaused in the target: "
            f"{r['live_source']['unpaused_in_target']} (recorded: {r['live_source']['recorded_active']})"
        ],
    }
    return r
