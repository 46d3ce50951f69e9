"""The verdict: every exported row accounted for, checked three ways (pure functions)."""

from tools.rehearse.report import render, rerun_check, secrets_check, table_accounting, verdict

MANIFEST = {"tables": {"dag_run": {"rows": 10}, "slot_pool": {"rows": 2}}}


def rep(**tables):
    return {"tables": tables, "all_rows_accounted": True}


def test_accounted_tables_pass():
    r = rep(
        dag_run={
            "exported": 10,
            "inserted": 9,
            "already_present": 0,
            "rejected": 1,
            "rejections": [{"reason": "no matching dag_run", "count": 1, "sample": "x"}],
        },
        slot_pool={"exported": 2, "inserted": 1, "already_present": 1, "rejected": 0},
    )
    t = table_accounting(r, MANIFEST, {"dag_run": 0, "slot_pool": 1}, {"dag_run": 9, "slot_pool": 2})
    assert all(x["ok"] for x in t.values()), t
    assert verdict(t, {}, r)["all_rows_accounted"] is True


def test_unaccounted_rows_fail():
    r = rep(
        dag_run={"exported": 10, "inserted": 8, "already_present": 0, "rejected": 1},
        slot_pool={"exported": 2, "inserted": 1, "already_present": 1, "rejected": 0},
    )
    t = table_accounting(r, MANIFEST, {}, {})
    assert t["dag_run"]["problems"] == ["1 rows unaccounted"]
    assert verdict(t, {}, r)["ok"] is False


def test_target_growth_must_match_inserted():
    r = rep(
        dag_run={"exported": 10, "inserted": 10, "already_present": 0, "rejected": 0},
        slot_pool={"exported": 2, "inserted": 2, "already_present": 0, "rejected": 0},
    )
    t = table_accounting(r, MANIFEST, {"dag_run": 0}, {"dag_run": 7})
    assert "target grew by 7 rows, the importer says 10 inserted" in t["dag_run"]["problems"]


def test_table_missing_from_import_report_or_count_mismatch():
    r = rep(dag_run={"exported": 9, "inserted": 9, "already_present": 0, "rejected": 0})
    t = table_accounting(r, MANIFEST, {}, {})
    assert t["slot_pool"]["problems"] == ["not in the import report"]
    assert t["dag_run"]["problems"] == ["import saw 9 rows, the manifest lists 10"]


def test_importer_flag_alone_is_not_trusted_nor_ignored():
    r = {
        "tables": {"dag_run": {"exported": 10, "inserted": 10, "already_present": 0, "rejected": 0}},
        "all_rows_accounted": False,
    }
    t = table_accounting(r, {"tables": {"dag_run": {"rows": 10}}}, {}, {})
    assert verdict(t, {}, r)["all_rows_accounted"] is False


def test_secrets_compared_with_source():
    src = {"variables": {"a": "1", "b": "2", "c": "3"}, "unreadable": {"variables": []}}
    tgt = {"variables": {"a": "1", "b": "X"}, "unreadable": {"variables": ["c"]}}
    s = secrets_check("variables", 3, tgt, src)
    assert s["ok"] is False
    assert s["different"] == ["b"] and s["unreadable"] == ["c"] and s["identical_to_source"] == 1
    good = secrets_check("variables", 3, src, src)
    assert good["ok"] and good["identical_to_source"] == 3


def test_secrets_without_source_count_readable():
    tgt = {"connections": {"a": "1"}, "unreadable": {"connections": []}}
    assert secrets_check("connections", 2, tgt, None)["problems"] == ["1 exported but not readable in the target"]
    assert secrets_check("connections", 1, tgt, None)["ok"]


def test_render_lists_tables_rejections_steps_and_kept():
    r = rep(
        dag_run={
            "exported": 10,
            "inserted": 9,
            "already_present": 0,
            "rejected": 1,
            "rejections": [{"reason": "dangling run", "count": 1, "sample": "r1"}],
        }
    )
    t = table_accounting(r, {"tables": {"dag_run": {"rows": 10}}}, {"dag_run": 0}, {"dag_run": 9})
    report = {
        "rehearsal": {
            "source_version": "2.10.3",
            "target_version": "2.11.0",
            "mode": "generated history, 10 rows",
            "error": None,
        },
        "tables": t,
        "secrets": {},
        "verdict": verdict(t, {}, r),
        "steps": [{"name": "export", "seconds": 1.5, "peak_memory_mb": 120.0, "status": "ok"}],
        "kept": {"target_db": "postgresql+psycopg2://postgres@127.0.0.1:55432/x", "target_fernet_key": "KEY"},
    }
    text = render(report)
    assert "OK, every exported row accounted for" in text
    assert "dag_run: dangling run x 1  e.g. r1" in text
    assert "export" in text and "120 MB" in text
    assert "target_fernet_key: KEY" in text


def test_second_import_must_be_a_noop():
    second = rep(dag_run={"exported": 10, "inserted": 0, "already_present": 10, "rejected": 0})
    ok = rerun_check(second, {"dag_run": 10}, {"dag_run": 10})
    assert ok["ok"] and ok["target_unchanged"] and ok["inserted"] == 0
    again = rep(dag_run={"exported": 10, "inserted": 2, "already_present": 8, "rejected": 0})
    bad = rerun_check(again, {"dag_run": 10}, {"dag_run": 12})
    assert bad["ok"] is False
    assert bad["problems"] == ["dag_run: 2 rows inserted again", "dag_run: target went from 10 to 12 rows"]
    assert verdict({}, {}, {"all_rows_accounted": True}, None, bad)["ok"] is False


def test_second_import_must_not_copy_task_logs_again():
    second = rep(dag_run={"exported": 1, "inserted": 0, "already_present": 1, "rejected": 0})
    second["task_logs"] = {"streams_copied": 3, "streams_skipped": 2}
    assert rerun_check(second, {}, {})["problems"] == ["task logs: 3 streams copied again"]


def test_render_prints_row_classes_left_out_rows_and_tables_not_migrated():
    r = rep(
        dag_run={
            "exported": 10,
            "inserted": 7,
            "already_present": 2,
            "rejected": 1,
            "classes": {"new": 7, "identical": 1, "different": 1, "conflict": 1, "rejected": 0},
            "rejections": [
                {
                    "reason": "conflict: a target row has this natural key",
                    "count": 1,
                    "class": "conflict",
                    "sample": [{"run_id": "r1"}],
                }
            ],
            "samples_different": [{"row": {"run_id": "r2"}, "differs": ["state"]}],
            "skipped_at_source": [{"reason": "a run of the migration's own DAGs", "count": 3}],
            "conversions": {"conf: NaN/Infinity -> null (JSON has no such numbers)": 2},
        }
    )
    r["not_migrated"] = {"dataset": {"reason": "not migrated yet", "rows": 1}}
    r["all_rows_identical_in_target"] = False
    t = table_accounting(r, {"tables": {"dag_run": {"rows": 10}}}, {"dag_run": 0}, {"dag_run": 7})
    assert (t["dag_run"]["identical"], t["dag_run"]["different"], t["dag_run"]["conflict"]) == (1, 1, 1)
    assert t["dag_run"]["skipped_at_source"] == 3 and t["dag_run"]["ok"]
    from tools.rehearse.report import integrity

    text = render(
        {
            "rehearsal": {"source_version": "2.10.3", "target_version": "2.11.0", "mode": "m", "error": None},
            "tables": t,
            "integrity": integrity(r),
        }
    )
    assert "identical" in text and "different" in text and "conflict" in text and "skipped@src" in text
    assert "dag_run: {'run_id': 'r2'} differs in state" in text
    assert "dag_run: a run of the migration's own DAGs x 3" in text
    assert "dataset (1 rows): not migrated yet" in text
    assert "every exported row identical in the target: NO" in text
    assert "conf: NaN/Infinity -> null" in text
