"""The short cutover's pure parts: phase order, recorded pause state, recovery, delta rules, conf."""

from __future__ import annotations

import pytest

from mwaa_migration import delta, delta_rules, phases, rules
from mwaa_migration.conf import ConfError, validate

AT = "2026-01-01T12:00:00+00:00"


def _through(state, *names):
    for n in names:
        state = phases.complete(phases.begin(state, n, AT), n, AT)
    return state


def test_phases_run_in_order_once():
    st = phases.new_state("m1")
    assert phases.next_phase(st) == "bulk_export"
    with pytest.raises(phases.PhaseError, match="freeze cannot run yet: bulk_export comes first"):
        phases.begin(st, "freeze", AT)
    st = _through(st, *phases.PHASES)
    assert phases.next_phase(st) is None and st["completed"] == list(phases.PHASES)
    with pytest.raises(phases.PhaseError, match="already completed"):
        phases.begin(st, "bulk_import", AT)
    with pytest.raises(phases.PhaseError, match="unknown phase"):
        phases.begin(st, "switch_back", AT)


def test_pause_record_comes_before_the_pause_and_drives_recovery():
    st = _through(phases.new_state("m1"), "bulk_export", "bulk_import")
    st = phases.begin(st, "freeze", AT)
    st = phases.record_pause(st, active=["b", "a"], at=AT)
    # died between the record and the pause's own record: restore every recorded active DAG
    assert phases.recovery(st) == {"restore_source": ["a", "b"], "pause_target": True, "refused": None}
    st = phases.paused(st, dags=["a"], at="2026-01-01T12:00:05+00:00")  # 'b' was paused meanwhile by a user
    assert phases.recovery(st)["restore_source"] == ["a"]
    st = phases.failed(st, "freeze", "boom", AT)
    back = phases.recovered(st, restored=["a"], target_paused=[], at=AT)
    assert back["completed"] == ["bulk_export", "bulk_import"] and back["pause"]["restored_at"] == AT
    assert phases.next_phase(back) == "freeze" and "paused_at" not in back["timings"]
    # a second recovery after the restore unpauses nothing more
    assert phases.recovery(back)["restore_source"] == []


def test_no_recovery_unpauses_the_source_after_the_cutover():
    st = _through(phases.new_state("m1"), *phases.PHASES[:2])
    st = phases.begin(st, "freeze", AT)
    st = phases.paused(phases.record_pause(st, active=["a"], at=AT), dags=["a"], at="2026-01-01T12:00:00+00:00")
    st = phases.complete(st, "freeze", AT)
    st = _through(st, "delta_export", "delta_import", "cutover")
    st["timings"]["unpaused_at"] = "2026-01-01T12:00:42.5+00:00"
    assert phases.pause_window_s(st) == 42.5
    rec = phases.recovery(st)
    assert rec["restore_source"] == [] and "switch back" in rec["refused"]


def test_every_migrated_table_has_one_delta_rule_and_conditions_render():
    assert set(delta_rules.DELTA) == set(rules.MIGRATED_TABLES)
    cols = {
        "task_instance": ["dag_id", "task_id", "run_id", "map_index", "state", "updated_at", "end_date"],
        "dag_run": ["id", "dag_id", "run_id", "state", "updated_at", "end_date"],
    }
    since = delta.since_sql(AT, 600)
    assert "make_interval(secs => 600)" in since
    ti = delta_rules.delta_condition("task_instance", cols["task_instance"], since_sql=since, max_ids={})
    assert 't."updated_at" >' in ti and "t.state IN ('running', 'queued', 'restarting')" in ti
    xc = delta_rules.delta_condition(
        "xcom",
        ["dag_run_id", "task_id", "map_index", "key", "dag_id", "run_id", "timestamp"],
        parent_columns=cols["task_instance"],
        since_sql=since,
        max_ids={},
    )
    assert 'EXISTS (SELECT 1 FROM "task_instance" p' in xc and 't."timestamp" >' in xc
    log = delta_rules.delta_condition("log", ["id", "dttm"], since_sql=since, max_ids={"log": 41})
    assert log == '(t."id" > 41)'
    assert delta_rules.delta_condition("variable", ["key", "val"], since_sql=since, max_ids={}) == "TRUE"
    with pytest.raises(ValueError, match="selects nothing"):
        delta_rules.delta_condition("sla_miss", ["task_id"], since_sql=since, max_ids={})
    with pytest.raises(ValueError):
        delta.since_sql("yesterday'; DROP TABLE dag; --", 1)


def test_delta_query_finalizes_runs_and_keeps_the_bulk_filters():
    schema = {"task_instance": {"dag_id": {}, "run_id": {}, "state": {}, "updated_at": {}}}
    cols, sql = delta.delta_query(
        "dag_run", ["id", "dag_id", "run_id", "state", "end_date", "updated_at"], schema, "X", {}
    )
    assert cols[:4] == ["id", "dag_id", "run_id", "state"]
    assert "NOT IN ('db_export', 'db_import')" in sql and " AND (" in sql
    assert "THEN 'failed' ELSE 'success' END ELSE t.state END) AS \"state\"" in sql
    assert "(SELECT max(x.end_date)" in sql


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("drain_timeout_s", -1, "an integer 0..3600"),
        ("drain_timeout_s", True, "an integer 0..3600"),
        ("drain_policy", "wait", "abort | continue"),
        ("delta_margin_s", "600", "an integer 0..86400"),
    ],
)
def test_cutover_conf_fields_are_checked(field, value, allowed):
    base = {"bucket": "bkt-1", "prefix": "p/", "migration_id": "m1", "task_log_days": 0}
    with pytest.raises(ConfError, match=f"field '{field}'.*allowed: {allowed}"):
        validate(dict(base, **{field: value}), for_import=True)
    out = validate({k: base[k] for k in ("bucket", "prefix", "migration_id")}, for_import=False)
    assert (out["drain_timeout_s"], out["drain_policy"], out["delta_margin_s"]) == (300, "abort", 600)
