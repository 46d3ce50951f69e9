"""The schema-mapping rule table: the one place that knows how Airflow's schema changed.

Keyed by schema family (the ``migration_schema`` of lambda/mwaa_common/versions.py; a family
is identified in a database by its alembic head revision). ``STEPS`` holds, for each pair of
consecutive families, what changed per table: column renames, dropped columns (with the
reason the data may go), new NOT NULL columns with the SQL that derives them, type
conversions (pickled bytes -> JSON), enum value renames, and dropped tables. A plan from
family A to family C applies the steps A->B, B->C in order (see ``plan.py``); columns that
only appear or disappear as nullable/defaulted are handled by reflection of the target and
need no rule, and anything the rules do not cover makes the plan fail instead of losing data.

``TABLES`` holds the family-independent facts of every migrated table: how ids are handled,
natural keys, which rows the export skips, references to remap, what must exist in the
target (rows without it are rejected with the reason), and values that are encrypted.

SQL templates: ``{col}`` is the current expression of a column (text from the staging table
or a derived expression), ``{migration_dags}`` the quoted ids of our own DAGs.
"""
from __future__ import annotations

# alembic head revision -> schema family (checked against real databases by the tests)
REVISIONS = {
    "405de8318b3a": "2.7.2",
    "88344c1d9134": "2.8.1",
    "686269002441": "2.9.2",
    # 2.10.1 stops at 2.10.0's last migration; its columns (names, types, nullability,
    # defaults: 304 of them) equal 2.10.3's, measured on databases built by both versions.
    # 2.10.3's one extra migration only renames constraints, which the rules never name.
    "22ed7efa9da2": "2.10.3",
    "5f2621c13b39": "2.10.3",
    "fe199e1abd77": "3.0.6",
}
FAMILIES = ("2.7.2", "2.8.1", "2.9.2", "2.10.3", "3.0.6")

# Tables we migrate, in foreign-key (load) order. Not migrated (rebuilt by the new
# environment): dag, dag_code, serialized_dag, dag_tag, import_error, permission tables.
MIGRATED_TABLES = (
    "slot_pool", "variable", "connection", "job", "trigger", "log",
    "dag_run", "dag_run_note", "task_instance", "task_instance_note",
    "task_instance_history", "task_fail", "task_reschedule", "xcom",
    "rendered_task_instance_fields", "sla_miss",
)

# TI states whose rows the export leaves out: still being worked on in the source.
SKIPPED_TI_STATES = ("running", "queued")

_NOT_MIGRATION_RUN = "t.dag_id NOT IN ({migration_dags})"
_TI_NOT_SKIPPED = (
    "NOT EXISTS (SELECT 1 FROM task_instance x WHERE x.dag_id = t.dag_id AND "
    "x.task_id = t.task_id AND x.run_id = t.run_id AND x.map_index = t.map_index AND "
    "x.state IN ({skipped_states}))")
_TI_EXISTS = ("EXISTS (SELECT 1 FROM task_instance p WHERE p.dag_id = {dag_id} AND "
              "p.task_id = {task_id} AND p.run_id = {run_id} AND p.map_index = {map_index})")
_RUN_EXISTS = "EXISTS (SELECT 1 FROM dag_run p WHERE p.dag_id = {dag_id} AND p.run_id = {run_id})"
_TI_KEY = ("dag_id", "task_id", "run_id", "map_index")


def uuid7_sql(ts_sql: str) -> str:
    """SQL for a version-7 UUID whose time part is ``ts_sql`` (as Airflow 3 assigns them)."""
    return ("encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
            f"substring(int8send(floor(extract(epoch from COALESCE(({ts_sql})::timestamptz, "
            "clock_timestamp())) * 1000)::bigint) from 3) from 1 for 6), 52, 1), 53, 1), "
            "'hex')::uuid")


def _ti_uuid_lookup() -> str:
    return ("(SELECT p.id FROM task_instance p WHERE p.dag_id = {dag_id} AND p.task_id = "
            "{task_id} AND p.run_id = {run_id} AND p.map_index = ({map_index})::integer)")


# ---------------------------------------------------------------------------------------
# Family-independent facts per table.
#   ids: "target"  - the target assigns a new id (natural key below is unique); references
#                    to it are remapped by natural key
#        "offset"  - the source id mapped into a range reserved in the target's sequence
#                    (remembered per source/target DB pair, so reruns and re-exports give
#                    the same ids); references to it are mapped the same way
#        None      - no generated id
#   keys: candidate natural keys in target column names; the first whose columns all exist
#         in the target is used to tell "already present" apart from other conflicts
#   export_where: rows the export leaves out (t = the table)
#   export_extra: extra columns the export computes in Python where the source runs
#         (name -> (converter, source column))
#   source_exprs: expressions replacing a source column before the family steps
#   offset_refs: column -> table whose id offset it gets
#   optional_fks: column -> (table, column): kept when the row exists in the target, else NULL
#   null_columns: columns the import sets NULL (references the target cannot resolve)
#   require: [(reason, SQL condition)] rows failing a condition are rejected with the reason
#   encrypted: column -> flag column (or None = always) holding Fernet-encrypted values;
#         the export decrypts with the source key, the import encrypts with the target key
#   upsert: conf key of the strategy (skip_existing | overwrite) and the conflict column
# ---------------------------------------------------------------------------------------
TABLES: dict[str, dict] = {
    "slot_pool": {"ids": "target", "keys": [["pool"]]},
    "variable": {"ids": "target", "keys": [["key"]], "encrypted": {"val": "is_encrypted"},
                 "upsert": ("variables_strategy", "key")},
    "connection": {"ids": "target", "keys": [["conn_id"]],
                   "encrypted": {"password": "is_encrypted", "extra": "is_extra_encrypted"},
                   "upsert": ("connections_strategy", "conn_id")},
    "job": {"ids": "offset", "keys": [["id"]]},
    "trigger": {"ids": "offset", "keys": [["id"]], "offset_refs": {"triggerer_id": "job"},
                "encrypted": {"kwargs": "target_text"}},
    "log": {"ids": "offset", "keys": [["id"]]},
    "dag_run": {
        "ids": "target", "keys": [["dag_id", "run_id"]],
        "export_where": _NOT_MIGRATION_RUN,
        "export_extra": {"conf__json": ("pickle_to_json", "conf")},
        "offset_refs": {"creating_job_id": "job"},
        "optional_fks": {"log_template_id": ("log_template", "id")},
    },
    "dag_run_note": {
        "ids": None, "keys": [["dag_run_id"]],
        "export_where": "t.dag_run_id IN (SELECT id FROM dag_run WHERE dag_id NOT IN ({migration_dags}))",
        "export_join": {"dag_run__dag_id": "(SELECT d.dag_id FROM dag_run d WHERE d.id = t.dag_run_id)",
                        "dag_run__run_id": "(SELECT d.run_id FROM dag_run d WHERE d.id = t.dag_run_id)"},
        "source_exprs": {"dag_run_id": "(SELECT d.id FROM dag_run d WHERE d.dag_id = {dag_run__dag_id} "
                                       "AND d.run_id = {dag_run__run_id})"},
        "null_columns": ["user_id"],
        "require": [("no dag_run (dag_id, run_id) in the target", "{dag_run_id} IS NOT NULL")],
    },
    "task_instance": {
        "ids": None, "keys": [list(_TI_KEY)],
        "export_where": _NOT_MIGRATION_RUN + " AND (t.state IS NULL OR t.state NOT IN ({skipped_states}))",
        "offset_refs": {"job_id": "job", "queued_by_job_id": "job", "trigger_id": "trigger"},
        "optional_fks": {"trigger_id": ("trigger", "id")},
        "require": [("no dag_run (dag_id, run_id) in the target", _RUN_EXISTS)],
        "log_selection": True,
    },
    "task_instance_note": {
        "ids": None, "keys": [list(_TI_KEY), ["ti_id"]],
        "export_where": _NOT_MIGRATION_RUN + " AND " + _TI_NOT_SKIPPED,
        "null_columns": ["user_id"],
        "require": [("no task_instance (dag_id, task_id, run_id, map_index) in the target", _TI_EXISTS)],
    },
    "task_instance_history": {
        "ids": "target", "keys": [list(_TI_KEY) + ["try_number"]],
        "export_where": _NOT_MIGRATION_RUN + " AND " + _TI_NOT_SKIPPED,
        "offset_refs": {"job_id": "job", "queued_by_job_id": "job", "trigger_id": "trigger"},
        "optional_fks": {"trigger_id": ("trigger", "id")},
        "require": [("no task_instance (dag_id, task_id, run_id, map_index) in the target", _TI_EXISTS)],
    },
    "task_fail": {
        "ids": "offset", "keys": [["id"]],
        "export_where": _NOT_MIGRATION_RUN + " AND " + _TI_NOT_SKIPPED,
        "require": [("no task_instance (dag_id, task_id, run_id, map_index) in the target", _TI_EXISTS)],
    },
    "task_reschedule": {
        "ids": "offset", "keys": [["id"]],
        "export_where": _NOT_MIGRATION_RUN + " AND " + _TI_NOT_SKIPPED,
        "require": [("no task_instance (dag_id, task_id, run_id, map_index) in the target", _TI_EXISTS)],
    },
    "xcom": {
        "ids": None, "keys": [["dag_run_id", "task_id", "map_index", "key"]],
        "export_where": _NOT_MIGRATION_RUN + " AND " + _TI_NOT_SKIPPED,
        "export_extra": {"value__json": ("xcom_to_json", "value")},
        "source_exprs": {"dag_run_id": "(SELECT d.id FROM dag_run d WHERE d.dag_id = {dag_id} "
                                       "AND d.run_id = {run_id})"},
        "require": [("no task_instance (dag_id, task_id, run_id, map_index) in the target", _TI_EXISTS)],
    },
    "rendered_task_instance_fields": {
        "ids": None, "keys": [list(_TI_KEY)],
        "export_where": _NOT_MIGRATION_RUN + " AND " + _TI_NOT_SKIPPED,
        "require": [("no task_instance (dag_id, task_id, run_id, map_index) in the target", _TI_EXISTS)],
    },
    "sla_miss": {"ids": None, "keys": [["task_id", "dag_id", "execution_date"]],
                 "export_where": _NOT_MIGRATION_RUN},
}

# ---------------------------------------------------------------------------------------
# Steps between consecutive families. Per table:
#   rename:  {old: new}                       column renamed (same data)
#   drop:    {column: reason}                 column gone in the newer family
#   derive:  {column: SQL template}           new NOT NULL column (or new meaning) and its value
#   convert: {column: export_extra column}    take the converted value the export computed
#   enum:    {column: {old value: new value}} renamed enum values
#   require: [(reason, SQL)]                  extra conditions in the newer family
# and "dropped_tables": {table: reason} (rows are accounted as rejected with that reason).
# ---------------------------------------------------------------------------------------
_TI_ID_DROP = {c: "Airflow 3 references the task instance by its UUID (ti_id)" for c in _TI_KEY}

STEPS: dict[tuple[str, str], dict] = {
    ("2.7.2", "2.8.1"): {
        "dag_run": {"derive": {"clear_number": "0"}},
    },
    ("2.8.1", "2.9.2"): {},
    ("2.9.2", "2.10.3"): {},
    ("2.10.3", "3.0.6"): {
        "dropped_tables": {
            "task_fail": "Airflow 3.0 removed the task_fail table (its migration drops the data too)",
            "sla_miss": "Airflow 3.0 removed SLAs and the sla_miss table",
        },
        "dag_run": {
            "rename": {"execution_date": "logical_date"},
            "drop": {"external_trigger": "Airflow 3 has no external_trigger; run_type/triggered_by say how a run started",
                     "dag_hash": "Airflow 3 tracks DAG versions in dag_version instead of dag_hash"},
            "derive": {
                "run_after": "COALESCE(({data_interval_end})::timestamptz, ({logical_date})::timestamptz)",
                # SQLAlchemy stores DagRunTriggeredByType by member NAME (native_enum=False)
                "triggered_by": "CASE {run_type} WHEN 'scheduled' THEN 'TIMETABLE' "
                                "WHEN 'dataset_triggered' THEN 'ASSET' WHEN 'backfill' THEN 'BACKFILL' END",
            },
            "convert": {"conf": "conf__json"},
            "enum": {"run_type": {"dataset_triggered": "asset_triggered"}},
        },
        "task_instance": {
            "drop": {"job_id": "Airflow 3 task instances no longer reference the job that ran them"},
            "derive": {"id": uuid7_sql("COALESCE(({queued_dttm})::timestamptz, ({start_date})::timestamptz)")},
            "enum": {"state": {"shutdown": "failed"}},
        },
        "task_instance_history": {
            "drop": {"id": "Airflow 3 keys history rows by the task instance UUID of that try",
                     "job_id": "Airflow 3 task instances no longer reference the job that ran them"},
            "derive": {"task_instance_id": uuid7_sql(
                "COALESCE(({queued_dttm})::timestamptz, ({start_date})::timestamptz)")},
            "enum": {"state": {"shutdown": "failed"}},
        },
        "task_reschedule": {
            "drop": dict(_TI_ID_DROP, try_number="Airflow 3 keeps reschedules of the current try only, keyed by ti_id"),
            "derive": {"ti_id": _ti_uuid_lookup()},
        },
        "task_instance_note": {
            "drop": _TI_ID_DROP,
            "derive": {"ti_id": _ti_uuid_lookup()},
        },
        "xcom": {"convert": {"value": "value__json"}},
        "log": {"rename": {"execution_date": "logical_date"}},
    },
}


def family_of_revision(revision: str) -> str:
    try:
        return REVISIONS[revision]
    except KeyError:
        raise ValueError(
            f"alembic revision {revision!r} is not a schema family the migration rules know; "
            f"known: {', '.join(f'{r} (Airflow {f})' for r, f in REVISIONS.items())}") from None


def step_path(source: str, target: str) -> list[tuple[str, str]]:
    """The consecutive steps from family ``source`` to ``target`` (empty when equal)."""
    for fam in (source, target):
        if fam not in FAMILIES:
            raise ValueError(f"unknown schema family {fam!r}; known: {', '.join(FAMILIES)}")
    i, j = FAMILIES.index(source), FAMILIES.index(target)
    if j < i:
        raise ValueError(f"moving metadata from schema {source} down to {target} is not supported "
                         "(MWAA only allows upgrades, and 3.x -> 2.11 in place)")
    return [(FAMILIES[k], FAMILIES[k + 1]) for k in range(i, j)]
