"""Pure parts: conf validation, the rule table and the planner, the runtime guard."""

from __future__ import annotations

import pytest

from mwaa_common import versions
from mwaa_migration import conf, plan, rules, runtime

BASE = {"bucket": "mwaa-migration-1234", "prefix": "data/migration/2.10.3_to_2.11.0/export/", "migration_id": "m-1"}


def test_conf_defaults_for_import():
    c = conf.validate(dict(BASE, source_environment="a", target_environment="b"), for_import=True)
    assert c["task_log_days"] == 3 and c["task_log_states"] == ["failed"]
    assert c["variables_strategy"] == "skip_existing" and c["cutover"] is False
    assert c["tables"] == list(rules.MIGRATED_TABLES)


@pytest.mark.parametrize(
    "patch,field",
    [
        ({"migration_id": "Bad_ID"}, "migration_id"),
        ({"prefix": "no/slash"}, "prefix"),
        ({"bucket": "UPPER"}, "bucket"),
        ({"tables": ["dag"]}, "tables"),
        ({"tables": []}, "tables"),
        ({"task_log_days": 400}, "task_log_days"),
        ({"task_log_days": True}, "task_log_days"),
        ({"task_log_states": ["nope"]}, "task_log_states"),
        ({"variables_strategy": "replace"}, "variables_strategy"),
        ({"cutover": "yes"}, "cutover"),
    ],
)
def test_conf_errors_name_field_value_and_allowed(patch, field):
    with pytest.raises(conf.ConfError, match=f"'{field}': got .*; allowed: "):
        conf.validate(dict(BASE, source_environment="a", target_environment="b", **patch), for_import=True)


def test_conf_unknown_keys_and_required():
    with pytest.raises(conf.ConfError, match="unknown key.*'tabels'"):
        conf.validate(dict(BASE, tabels=["log"]), for_import=False)
    with pytest.raises(conf.ConfError, match="unknown key.*'cutover'"):
        conf.validate(dict(BASE, cutover=True), for_import=False)  # import-only key
    with pytest.raises(conf.ConfError, match="'bucket' is required"):
        conf.validate({}, for_import=False)
    with pytest.raises(conf.ConfError, match="'source_environment' is required when task_log_days > 0"):
        conf.validate(BASE, for_import=True)
    assert conf.validate(dict(BASE, task_log_days=0), for_import=True)["source_environment"] is None


def test_conf_tables_are_put_in_load_order():
    c = conf.validate(dict(BASE, tables=["xcom", "dag_run", "task_instance"]), for_import=False)
    assert c["tables"] == ["dag_run", "task_instance", "xcom"]


def test_every_migration_schema_in_versions_is_a_rule_family():
    fams = {row["migration_schema"] for row in versions.VERSIONS.values() if row["migration_schema"]}
    assert fams <= set(rules.FAMILIES)
    assert set(rules.REVISIONS.values()) == set(rules.FAMILIES)
    for a, b in zip(rules.FAMILIES, rules.FAMILIES[1:], strict=False):
        assert (a, b) in rules.STEPS


def test_every_recorded_alembic_head_maps_to_the_same_family_in_both_tables():
    # versions.py (what MWAA runs) and rules.REVISIONS (what the DAGs recognise in a live DB)
    # must agree, or a supported version is refused at export time (2.10.1 once was).
    for version, row in versions.VERSIONS.items():
        if row["migration_schema"] and row["alembic_head"]:
            assert rules.REVISIONS.get(row["alembic_head"]) == row["migration_schema"], version


def test_downgrade_and_unknown_revision_are_refused():
    with pytest.raises(ValueError, match="down to"):
        rules.step_path("3.0.6", "2.10.3")
    with pytest.raises(ValueError, match="not a schema family the migration rules know"):
        rules.family_of_revision("deadbeef")


def _col(typ, nullable=True, default=None):
    return {
        "type": typ,
        "nullable": nullable,
        "default": default,
        "serial": bool(default and default.startswith("nextval")),
    }


SRC = {
    "columns": [
        "id",
        "dag_id",
        "run_id",
        "execution_date",
        "run_type",
        "conf",
        "external_trigger",
        "data_interval_end",
        "conf__json",
    ],
    "types": {
        "id": "integer",
        "dag_id": "character varying(250)",
        "run_id": "character varying(250)",
        "execution_date": "timestamp with time zone",
        "run_type": "character varying(50)",
        "conf": "bytea",
        "external_trigger": "boolean",
        "data_interval_end": "timestamp with time zone",
        "conf__json": "jsonb",
    },
}


def test_plan_dag_run_2_to_3_applies_renames_derivations_conversions_and_enums():
    target = {
        "id": _col("integer", False, "nextval('dag_run_id_seq'::regclass)"),
        "dag_id": _col("character varying(250)", False),
        "run_id": _col("character varying(250)", False),
        "logical_date": _col("timestamp with time zone"),
        "run_type": _col("character varying(50)", False),
        "conf": _col("jsonb"),
        "data_interval_end": _col("timestamp with time zone"),
        "run_after": _col("timestamp with time zone", False),
        "triggered_by": _col("character varying(50)"),
        "clear_number": _col("integer", False, "0"),
    }
    p = plan.plan_table("dag_run", SRC, "2.10.3", "3.0.6", target)
    sel = dict(zip(p["insert_columns"], p["select"], strict=True))
    assert "id" not in sel  # the target assigns ids; references follow the natural key
    assert 's."execution_date"' in sel["logical_date"]
    assert 's."conf__json"' in sel["conf"] and 's."conf"' not in sel["conf"]
    assert "'dataset_triggered' THEN 'asset_triggered'" in sel["run_type"]
    assert "COALESCE" in sel["run_after"] and "clear_number" not in sel
    assert p["key"] == ["dag_id", "run_id"]
    assert any("external_trigger" in n for n in p["notes"])


def test_plan_refuses_what_the_rules_do_not_cover():
    target = {
        "id": _col("integer", False, "nextval('x')"),
        "dag_id": _col("text", False),
        "run_id": _col("text", False),
        "execution_date": _col("timestamp with time zone", False),
        "run_type": _col("text", False),
        "conf": _col("bytea"),
        "data_interval_end": _col("text"),
        "brand_new": _col("integer", False),
    }
    with pytest.raises(plan.PlanError, match="brand_new are NOT NULL without a default"):
        plan.plan_table("dag_run", SRC, "2.10.3", "2.10.3", dict(target, external_trigger=_col("boolean")))
    del target["brand_new"]
    with pytest.raises(plan.PlanError, match="external_trigger have no column in the target"):
        plan.plan_table("dag_run", SRC, "2.10.3", "2.10.3", target)
    with pytest.raises(plan.PlanError, match="no table 'dag_run'"):
        plan.plan_table("dag_run", SRC, "2.10.3", "2.10.3", None)


def test_dropped_tables_are_rejected_with_the_reason():
    p = plan.plan_table("task_fail", {"columns": ["id"], "types": {}}, "2.10.3", "3.0.6", None)
    assert p["action"] == "reject_all" and "removed the task_fail table" in p["reason"]


def test_runtime_guard():
    runtime.check_db_access(in_task=False, version="3.0.6")  # the CLI may
    runtime.check_db_access(in_task=True, version="2.11.0")
    with pytest.raises(runtime.UnsupportedRuntime, match="an MWAA Airflow 3.0.6 task"):
        runtime.check_db_access(in_task=True, version="3.0.6", environ={"MWAA_AIRFLOW_COMPONENT": "worker"})
    with pytest.raises(runtime.UnsupportedRuntime, match="python -m mwaa_migration import"):
        runtime.check_db_access(in_task=True, version="3.1.8", environ={})


def test_dags_import_only_what_mwaa_images_ship():
    import ast
    import sys
    from pathlib import Path

    allowed = set(sys.stdlib_module_names) | {
        "airflow",
        "sqlalchemy",
        "psycopg2",
        "boto3",
        "botocore",
        "cryptography",
        "mwaa_migration",
    }
    root = Path(__file__).resolve().parents[3] / "dags"
    seen = {}
    for f in root.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods = [node.module]
            else:
                continue
            for m in mods:
                seen.setdefault(m.split(".")[0], set()).add(f.name)
    assert {m: sorted(fs) for m, fs in seen.items() if m not in allowed} == {}
    assert "mwaa_migration" in seen and "airflow" in seen
