"""Pure parts of the integrity work: row classes, the planner's identity/compare columns,
the record counter that checks row counts before anything is written, the table lists."""

from __future__ import annotations

import gzip

import pytest

from mwaa_migration import classify, plan, rules, s3io

RUN = {"dag_id": "d", "run_id": "r1", "execution_date": "2024-01-01", "state": "success"}


@pytest.mark.parametrize(
    "target,want",
    [
        (None, "new"),
        (dict(RUN), "identical"),
        (dict(RUN, state="running"), "different"),
        (dict(RUN, execution_date="2024-02-02"), "conflict"),
        (dict(RUN, execution_date="2024-02-02", state="running"), "conflict"),
    ],
)
def test_classify_row(target, want):
    got = classify.classify_row(RUN, target, identity=["execution_date"], compare=["execution_date", "state"])
    assert got == want


def test_classify_row_rejected_wins_and_differing_columns():
    assert classify.classify_row(RUN, None, identity=[], compare=[], rejected_by="no parent") == "rejected"
    assert classify.differing_columns(RUN, dict(RUN, state="x"), ["execution_date", "state"]) == ["state"]


def _cols(names, **types):
    return {c: {"type": types.get(c, "text"), "nullable": True, "default": None} for c in names}


def test_plan_names_identity_and_leaves_made_up_values_out_of_the_comparison():
    src = {"columns": ["id", "dag_id", "run_id", "execution_date", "state", "conf"], "types": {}}
    tgt = _cols(["id", "dag_id", "run_id", "execution_date", "state", "conf"])
    p = plan.plan_table("dag_run", src, "2.10.3", "2.10.3", tgt)
    assert p["key"] == ["dag_id", "run_id"] and p["identity"] == ["execution_date"]
    assert p["compare"] == ["execution_date", "state", "conf"]
    ti_cols = ["dag_id", "task_id", "run_id", "map_index", "state", "queued_dttm", "start_date"]
    ti = plan.plan_table("task_instance", {"columns": ti_cols, "types": {}}, "2.10.3", "3.0.6",
                         _cols(ti_cols + ["id"]))  # fmt: skip
    assert "id" in ti["insert_columns"] and "id" not in ti["compare"]  # a fresh uuid7 per run
    var = plan.plan_table(
        "variable", {"columns": ["key", "val", "is_encrypted"], "types": {}}, "2.10.3", "2.10.3",
        _cols(["id", "key", "val", "is_encrypted"], is_encrypted="boolean"),
    )  # fmt: skip
    assert var["encrypt"] == {"val": "is_encrypted"} and "val" not in var["compare"]


def test_children_of_a_conflicting_run_are_rejected_first():
    cols = ["dag_id", "task_id", "run_id", "map_index", "key", "value", "dag_run_id"]
    p = plan.plan_table("xcom", {"columns": cols, "types": {}}, "2.10.3", "2.10.3",
                        _cols(cols, dag_run_id="integer"))  # fmt: skip
    assert p["require"][0][0].startswith("its dag_run conflicts")
    assert "mwaa_migration_conflict" in p["require"][0][1] and 's."run_id"' in p["require"][0][1]


def test_classification_sql_is_one_statement_over_staging():
    src = {"columns": ["dag_id", "run_id", "execution_date", "conf"], "types": {}}
    p = plan.plan_table("dag_run", src, "2.10.3", "2.10.3",
                        _cols(["id", "dag_id", "run_id", "execution_date", "conf"], conf="json"))  # fmt: skip
    sql = classify.rows_sql(p, "stg", "rows")
    assert sql.startswith("CREATE TEMP TABLE rows AS") and 'LEFT JOIN "dag_run" k' in sql
    assert 'k."conf"::text IS NOT DISTINCT FROM r."conf"::text' in sql  # json has no "="


@pytest.mark.parametrize(
    "body,rows",
    [
        (b"a,b\n", 0),
        (b"a,b\n1,2\n3,4\n", 2),
        (b'a,b\n1,"x\ny"\n2,"say ""hi""\n, there"\n', 2),
        (b'a,b\n1,""\n2,"\n"\n', 2),
    ],
)
def test_record_counter_ignores_newlines_inside_quotes(body, rows):
    c = s3io.CsvRecordCounter()
    packed = gzip.compress(body)
    for i in range(0, len(packed), 3):  # fed in small pieces: state crosses chunk borders
        c.feed(packed[i : i + 3])
    assert c.records() == rows


def test_skipped_at_source_query_counts_each_reason_once():
    reasons, sql = plan.skipped_query("task_instance")
    assert reasons[0].startswith("a run of the migration's own DAGs") and "running or queued" in reasons[1]
    assert sql.count("count(*) FILTER") == 2
    assert plan.skipped_query("variable") is None


def test_every_known_table_is_migrated_or_has_a_reason():
    families = ["dataset", "dataset_event", "task_map", "serialized_dag", "ab_user", "mwaa_migration_idmap"]
    for t in families:
        assert t in rules.MIGRATED_TABLES or not rules.not_migrated_reason(t).startswith("unknown"), t
    assert rules.not_migrated_reason("my_plugin_table").startswith("unknown")
    assert not set(rules.NOT_MIGRATED) & set(rules.MIGRATED_TABLES)
