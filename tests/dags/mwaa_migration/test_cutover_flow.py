"""Short cutover on real databases: bulk while the source runs, freeze, drain, delta, cutover.

The source is a seeded 2.10.3 database, the target a fresh 2.11.0 one; the library runs
in-process as the local orchestration does (both connections at hand). What the source's
scheduler and workers would do during the bulk phase and the drain is done here in SQL at the
same points, so each case is exact; the rehearsal's --live-source does it with a real scheduler.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from mig_harness import BUCKET, SOURCE_KEY, TARGET_KEY, connect

from mwaa_migration import convert, delta, export, flow, freeze, phases
from mwaa_migration import cutover as cut
from mwaa_migration.conf import validate

pytestmark = [pytest.mark.airflow]

SRC, TGT = "2.10.3", "2.11.0"
NOW = "now()"


def _conf(**kw):
    mid = "sc-" + uuid.uuid4().hex[:10]
    base = {
        "bucket": BUCKET,
        "prefix": "data/migration/short/",
        "migration_id": mid,
        "task_log_days": 0,
        "drain_timeout_s": 5,
    }
    return validate(dict(base, **kw), for_import=True)


def _one(db, sql, args=()):
    conn = connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None
    finally:
        conn.commit()
        conn.close()


def _parsed_dags(db, dag_ids):
    extra = _one(
        db,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'dag' "
        "AND column_name = 'max_consecutive_failed_dag_runs'",
    )
    cols, vals = ("max_consecutive_failed_dag_runs", "0") if extra else ("", "")
    for d in dag_ids:
        _one(
            db,
            f"INSERT INTO dag (dag_id, is_paused, is_active, last_parsed_time, max_active_tasks, "
            f"has_task_concurrency_limits{', ' + cols if cols else ''}) VALUES "
            f"(%s, true, true, now() - interval '1 hour', 16, false{', ' + vals if vals else ''})",
            (d,),
        )


class Pair:
    """Source and target connections, the conf, and the steps in order."""

    def __init__(self, make_db, s3, **conf):
        self.src_db, self.tgt_db = make_db(SRC, seeded=True), make_db(TGT)
        self.src, self.tgt = connect(self.src_db), connect(self.tgt_db)
        self.s3, self.conf = s3, _conf(**conf)
        self.active = sorted(r[0] for r in _one(self.src_db, "SELECT dag_id FROM dag WHERE NOT is_paused"))
        # the target's scheduler has parsed the DAG files: every DAG there, paused at creation
        _parsed_dags(self.tgt_db, [r[0] for r in _one(self.src_db, "SELECT dag_id FROM dag")])
        self.during_drain = []

    def close(self):
        self.src.close()
        self.tgt.close()

    def bulk(self):
        flow.bulk_export(
            self.src,
            self.s3,
            self.conf,
            airflow_version=SRC,
            fernet=convert.fernet_from_key(SOURCE_KEY),
            progress=_quiet,
        )
        flow.bulk_import(
            self.tgt,
            self.s3,
            self.conf,
            airflow_version=TGT,
            fernet=convert.fernet_from_key(TARGET_KEY),
            progress=_quiet,
        )

    def _drain_sleep(self, _s):
        while self.during_drain:
            self.during_drain.pop(0)()

    def _parse(self, _s):
        # the target's scheduler re-parses after the delta import and computes the next run
        _one(self.tgt_db, "UPDATE dag SET last_parsed_time = now(), next_dagrun = now() + interval '1 day'")

    def window(self, source_for_target=True):
        src = self.src if source_for_target else None
        flow.freeze_source(self.src, self.s3, self.conf, progress=_quiet, sleep=self._drain_sleep)
        flow.delta_export(
            self.src,
            self.s3,
            self.conf,
            airflow_version=SRC,
            fernet=convert.fernet_from_key(SOURCE_KEY),
            progress=_quiet,
        )
        flow.delta_import(
            self.tgt,
            self.s3,
            self.conf,
            airflow_version=TGT,
            fernet=convert.fernet_from_key(TARGET_KEY),
            source=src,
            progress=_quiet,
        )
        return flow.cutover(
            self.tgt, self.s3, self.conf, source=src, timeout_s=60, poll_s=0, progress=_quiet, sleep=self._parse
        )

    def unpaused(self, db):
        return sorted(
            r[0]
            for r in _one(db, "SELECT dag_id FROM dag WHERE NOT is_paused AND dag_id NOT IN ('db_export', 'db_import')")
        )


def _quiet(_m):
    pass


@pytest.fixture
def pair(make_db, s3):
    p = Pair(make_db, s3)
    yield p
    p.close()


def _finish_in_flight(db):
    # what the workers do meanwhile: every running or queued task instance ends
    _one(
        db,
        "UPDATE task_instance SET state = 'success', end_date = now(), updated_at = now() "
        "WHERE state IN ('running', 'queued')",
    )


def _insert(db, table, row):
    """INSERT of the columns this version's table has (NOW = now())."""
    have = {
        r[0] for r in _one(db, "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,))
    }
    cols = [c for c in row if c in have]
    vals = ", ".join("now()" if row[c] == NOW else "%s" for c in cols)
    _one(db, f'INSERT INTO "{table}" ({", ".join(cols)}) VALUES ({vals})', tuple(row[c] for c in cols if row[c] != NOW))


def _live_run(db, dag_id, run_id):
    """A run the scheduler created during the bulk phase: one task done, one running."""
    _insert(
        db,
        "dag_run",
        {
            "dag_id": dag_id,
            "run_id": run_id,
            "run_type": "scheduled",
            "execution_date": NOW,
            "state": "running",
            "external_trigger": False,
            "start_date": NOW,
            "queued_at": NOW,
            "data_interval_start": NOW,
            "data_interval_end": NOW,
            "clear_number": 0,
            "updated_at": NOW,
        },
    )
    for task, state in (("extract", "success"), ("load", "running")):
        _insert(
            db,
            "task_instance",
            {
                "dag_id": dag_id,
                "task_id": task,
                "run_id": run_id,
                "map_index": -1,
                "state": state,
                "try_number": 1,
                "max_tries": 0,
                "start_date": NOW,
                "end_date": NOW if state == "success" else None,
                "pool": "default_pool",
                "pool_slots": 1,
                "queue": "default",
                "priority_weight": 1,
                "updated_at": NOW,
            },
        )


def test_run_finishing_during_the_drain_arrives_finished_and_changes_carry_over(pair):
    pair.bulk()
    state = phases.load(pair.s3, pair.conf)
    assert state["completed"] == ["bulk_export", "bulk_import"] and state["snapshot"]["at"]
    assert pair.unpaused(pair.src_db) == pair.active  # nothing paused during the bulk phase
    # the source keeps running: a new run, a re-run task instance, new log rows
    _live_run(pair.src_db, "seed_etl", "live__1")
    ti = _one(
        pair.src_db,
        "SELECT dag_id, task_id, run_id, map_index FROM task_instance WHERE state = 'success' "
        "ORDER BY dag_id, run_id, task_id, map_index LIMIT 1",
    )[0]
    _one(
        pair.src_db,
        "UPDATE task_instance SET try_number = try_number + 1, state = 'success', end_date = now(), "
        "updated_at = now() WHERE dag_id = %s AND task_id = %s AND run_id = %s AND map_index = %s",
        ti,
    )
    _one(
        pair.src_db, "INSERT INTO log (dttm, dag_id, event) SELECT now(), 'seed_etl', 'live' FROM generate_series(1, 7)"
    )
    pair.during_drain.append(lambda: _finish_in_flight(pair.src_db))

    state = pair.window()

    assert state["completed"] == list(phases.PHASES)
    assert state["pause"]["active_dags"] == pair.active == state["pause"]["paused_by_us"]
    assert state["drain"]["in_flight_at_freeze"] == 3 and state["drain"]["drained"] == 3  # 2 seeded + live
    assert state["drain"]["tis_left_running"] == 0
    assert state["timings"]["pause_window_s"] is not None and state["timings"]["pause_window_s"] >= 0
    ((st, end),) = _one(pair.tgt_db, "SELECT state, end_date FROM dag_run WHERE run_id = 'live__1'")
    ((last_end,),) = _one(pair.src_db, "SELECT max(end_date) FROM task_instance WHERE run_id = 'live__1'")
    assert st == "success" and end == last_end
    assert _one(pair.tgt_db, "SELECT task_id, state FROM task_instance WHERE run_id = 'live__1' ORDER BY 1") == [
        ("extract", "success"),
        ("load", "success"),
    ]
    assert _one(
        pair.tgt_db,
        "SELECT try_number FROM task_instance WHERE dag_id = %s AND task_id = %s AND run_id = %s AND map_index = %s",
        ti,
    ) == _one(
        pair.src_db,
        "SELECT try_number FROM task_instance WHERE dag_id = %s AND task_id = %s AND run_id = %s AND map_index = %s",
        ti,
    )
    assert _one(pair.tgt_db, "SELECT count(*) FROM log WHERE event = 'live'") == [(7,)]
    # the in-flight task instances the bulk left out arrive in their final state
    assert _one(pair.tgt_db, "SELECT count(*) FROM task_instance WHERE state IN ('running', 'queued')") == [(0,)]
    assert pair.unpaused(pair.tgt_db) == pair.active and pair.unpaused(pair.src_db) == []
    acc = state["accounting"]  # both phases per table and the pause window
    assert acc["pause_window_s"] == state["timings"]["pause_window_s"] and acc["tis_drained"] == 3
    assert acc["tables"]["log"]["delta_inserted"] == 7 and acc["tables"]["task_instance"]["updated"] >= 1
    assert acc["tables"]["task_instance"]["bulk_rows"] > 0 and acc["totals"]["conflicts"] == 0
    rep = delta.read_manifest(pair.s3, pair.conf)
    assert rep["tables"]["dag_run"]["rows"] >= 1 and rep["tables"]["log"]["rows"] == 7
    # once cut over, the source is not unpaused by a late recovery
    with pytest.raises(phases.PhaseError, match="cutover completed"):
        flow.resume_source(pair.src, pair.s3, pair.conf, progress=_quiet)


@pytest.mark.parametrize("policy", ["abort", "continue"])
def test_task_outliving_the_drain_follows_the_policy(make_db, s3, policy):
    p = Pair(make_db, s3, drain_policy=policy, drain_timeout_s=0)
    try:
        p.bulk()
        _live_run(p.src_db, "seed_etl", "slow__1")  # its 'load' never ends in time
        if policy == "abort":
            with pytest.raises(freeze.DrainTimeout, match=r"still in flight.*seed_etl.load slow__1"):
                p.window()
            st = phases.load(s3, p.conf)
            assert st["completed"] == ["bulk_export", "bulk_import"] and st["recoveries"]
            assert p.unpaused(p.src_db) == p.active and p.unpaused(p.tgt_db) == []
            assert _one(p.tgt_db, "SELECT count(*) FROM dag_run WHERE run_id = 'slow__1'") == [(0,)]
            return
        state = p.window()
        assert state["drain"]["timed_out"] and state["drain"]["tis_left_running"] == 3
        assert {t["run_id"] for t in state["drain"]["left_running"]} >= {"slow__1"}
        # carried as running, without the task still running in the source: the target runs it again
        assert _one(p.tgt_db, "SELECT state FROM dag_run WHERE run_id = 'slow__1'") == [("running",)]
        assert _one(p.tgt_db, "SELECT task_id FROM task_instance WHERE run_id = 'slow__1'") == [("extract",)]
        assert p.unpaused(p.tgt_db) == p.active
    finally:
        p.close()


def test_conflict_in_the_target_is_reported_and_not_overwritten(pair):
    pair.bulk()
    key = _one(
        pair.src_db,
        "SELECT dag_id, task_id, run_id, map_index FROM task_instance WHERE state = 'success' "
        "ORDER BY dag_id, run_id, task_id, map_index LIMIT 1",
    )[0]
    where = "dag_id = %s AND task_id = %s AND run_id = %s AND map_index = %s"
    # re-run in the source during the bulk phase ...
    _one(pair.src_db, f"UPDATE task_instance SET try_number = 9, updated_at = now() WHERE {where}", key)
    # ... and something ran in the target meanwhile
    _one(pair.tgt_db, f"UPDATE task_instance SET state = 'failed', updated_at = now() WHERE {where}", key)
    pair.during_drain.append(lambda: _finish_in_flight(pair.src_db))
    pair.window()
    rep = pair.s3.get_object(Bucket=BUCKET, Key=delta.report_key(pair.conf))["Body"].read().decode()
    import json

    ti = json.loads(rep)["tables"]["task_instance"]
    assert ti["conflicts"] == 1 and ti["conflict_sample"] == [
        dict(zip(("dag_id", "task_id", "run_id", "map_index"), map(str, key), strict=True))
    ]
    assert _one(pair.tgt_db, f"SELECT state, try_number FROM task_instance WHERE {where}", key) != [("success", 9)]
    assert _one(pair.tgt_db, f"SELECT state FROM task_instance WHERE {where}", key) == [("failed",)]
    assert json.loads(rep)["all_rows_accounted"]


INJECT = {
    "freeze": (freeze, "drain"),
    "delta_export": (export, "export_table"),
    "delta_import": (delta, "load_delta_table"),
    "cutover": (cut, "readiness"),
}


@pytest.mark.parametrize("phase", list(INJECT))
def test_failure_in_each_window_phase_restores_the_source_and_a_rerun_completes(pair, monkeypatch, phase):
    pair.bulk()
    _live_run(pair.src_db, "seed_etl", "live__2")
    mod, name = INJECT[phase]
    real = getattr(mod, name)
    calls = {"n": 0}

    def boom(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 2 or (phase in ("freeze", "cutover") and calls["n"] == 1):
            raise RuntimeError(f"injected failure in {phase}")
        return real(*a, **kw)

    monkeypatch.setattr(mod, name, boom)
    pair.during_drain.append(lambda: _finish_in_flight(pair.src_db))
    with pytest.raises(RuntimeError, match=f"injected failure in {phase}"):
        pair.window()
    monkeypatch.setattr(mod, name, real)
    st = phases.load(pair.s3, pair.conf)
    assert st["failures"][-1]["phase"] == phase
    assert st["completed"] == ["bulk_export", "bulk_import"]
    assert pair.unpaused(pair.src_db) == pair.active  # the source runs as it did
    assert pair.unpaused(pair.tgt_db) == []  # every target DAG paused
    # the source ran on after the failure: another run arrives with the re-run's delta
    _live_run(pair.src_db, "seed_mapped", "live__3")
    pair.during_drain.append(lambda: _finish_in_flight(pair.src_db))
    state = pair.window()
    assert state["completed"] == list(phases.PHASES)
    assert _one(pair.tgt_db, "SELECT run_id, state FROM dag_run WHERE run_id LIKE 'live__%%' ORDER BY 1") == [
        ("live__2", "success"),
        ("live__3", "success"),
    ]
    assert pair.unpaused(pair.tgt_db) == pair.active and pair.unpaused(pair.src_db) == []


def test_target_side_failure_without_a_source_connection_leaves_the_restore_to_resume_source(pair, monkeypatch):
    pair.bulk()
    pair.during_drain.append(lambda: _finish_in_flight(pair.src_db))
    monkeypatch.setattr(cut, "readiness", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("injected")))
    with pytest.raises(RuntimeError, match="injected"):
        pair.window(source_for_target=False)
    assert pair.unpaused(pair.src_db) == [] and pair.unpaused(pair.tgt_db) == []
    st = phases.load(pair.s3, pair.conf)
    assert "delta_import" in st["completed"]  # a retry of the cutover alone could resume here
    out = flow.resume_source(pair.src, pair.s3, pair.conf, progress=_quiet)
    assert out["unpaused_in_source"] == pair.active
    assert pair.unpaused(pair.src_db) == pair.active
    assert phases.load(pair.s3, pair.conf)["completed"] == ["bulk_export", "bulk_import"]
    assert flow.resume_source(pair.src, pair.s3, pair.conf, progress=_quiet)["unpaused_in_source"] == []


def test_phases_refuse_to_run_out_of_order(pair):
    with pytest.raises(phases.PhaseError, match="bulk_export comes first"):
        flow.freeze_source(pair.src, pair.s3, pair.conf, progress=_quiet)
    assert pair.unpaused(pair.src_db) == pair.active
    _ = dt  # noqa: F841 - datetime kept for readability of assertions above


TASK = """
import json, sys
from mwaa_migration import dagtasks
class Run:
    conf = json.loads(sys.argv[2])
print(json.dumps(getattr(dagtasks, sys.argv[1])(dag_run=Run()), default=str))
"""


def test_the_dag_tasks_run_each_phase_in_its_environment(pair, aws_env):
    """What the deploy triggers: db_export / db_import runs with a ``phase`` in their conf."""
    import json

    import airflow_envs
    from mig_harness import REPO

    from tools.dev import pgcluster

    conf = {k: pair.conf[k] for k in ("bucket", "prefix", "migration_id")}
    env = dict(aws_env, PYTHONPATH=str(REPO / "dags"))

    def task(version, db, key, fn, **extra):
        p = airflow_envs.run_python(
            version,
            ["-c", TASK, fn, json.dumps(dict(conf, **extra))],
            db_url=pgcluster.url(db),
            fernet_key=key,
            env_extra=env,
        )
        return json.loads(p.stdout.strip().splitlines()[-1])

    imp = {"task_log_days": 0}
    assert task(SRC, pair.src_db, SOURCE_KEY, "export_tables", phase="bulk")["completed"] == ["bulk_export"]
    assert pair.unpaused(pair.src_db) == pair.active
    task(TGT, pair.tgt_db, TARGET_KEY, "import_tables", phase="bulk", **imp)
    _finish_in_flight(pair.src_db)
    out = task(SRC, pair.src_db, SOURCE_KEY, "export_tables", phase="freeze_delta", drain_timeout_s=30)
    assert out["completed"][-2:] == ["freeze", "delta_export"] and pair.unpaused(pair.src_db) == []
    task(TGT, pair.tgt_db, TARGET_KEY, "import_tables", phase="delta", **imp)
    pair._parse(None)
    out = task(TGT, pair.tgt_db, TARGET_KEY, "cutover", phase="cutover", **imp)
    assert out["completed"] == list(phases.PHASES) and out["pause_window_s"] > 0
    assert pair.unpaused(pair.tgt_db) == pair.active
    # one-shot is still the default, and a DAG run cannot resume the source after the cutover
    assert task(TGT, pair.tgt_db, TARGET_KEY, "import_tables", phase="cutover", **imp) is None
    with pytest.raises(RuntimeError, match="cutover completed"):
        task(SRC, pair.src_db, SOURCE_KEY, "export_tables", phase="resume_source")
