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

from mwaa_migration import state

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
    "slot_pool",
    "variable",
    "connection",
    "job",
    "trigger",
    "log",
    "dag_run",
    "dag_run_note",
    "task_instance",
    "task_instance_note",
    "task_instance_history",
    "task_fail",
    "task_reschedule",
    "xcom",
    "rendered_task_instance_fields",
    "sla_miss",
)

# Every other table of an Airflow schema, with the reason it is not migrated (the manifest and
# the report list each one found in the source; a table in neither list is reported as
# unknown). Keyed by the 2.x name; 3.x names that differ are listed too.
_REBUILT = "rebuilt by the target from the DAG files (the DAG processor parses them again)"
_RUNTIME = "runtime state of the source's own components, not history"
_AUTH = "users, roles and permissions: the target environment manages its own (MWAA maps IAM to roles)"
NOT_MIGRATED = {
    "alembic_version": "schema version of the source; the target has its own",
    "dag": _REBUILT + "; is_paused is carried by the manifest's active_dags (cutover)",
    "dag_code": _REBUILT, "serialized_dag": _REBUILT, "dag_tag": _REBUILT, "dag_owner_attributes": _REBUILT,
    "dag_warning": _REBUILT, "dag_version": _REBUILT, "dag_bundle": _REBUILT,
    "dag_schedule_dataset_reference": _REBUILT, "dag_schedule_asset_reference": _REBUILT,
    "task_outlet_dataset_reference": _REBUILT, "task_outlet_asset_reference": _REBUILT,
    "dag_schedule_dataset_alias_reference": _REBUILT, "dag_schedule_asset_alias_reference": _REBUILT,
    "dag_schedule_asset_name_reference": _REBUILT, "dag_schedule_asset_uri_reference": _REBUILT,
    "task_inlet_asset_reference": _REBUILT, "asset_active": _REBUILT,
    "import_error": _REBUILT + " (errors of the source's files are not the target's)",
    "dag_priority_parsing_request": _RUNTIME, "callback_request": _RUNTIME, "dag_pickle": _RUNTIME,
    "session": "web sessions of the source's users (they log in again)",
    "log_template": "the target's own log templates (log_template_id is kept when the target has it)",
    "dataset_dag_run_queue": _RUNTIME + " (pending dataset-triggered runs are recomputed by the target)",
    "asset_dag_run_queue": _RUNTIME, "dataset_alias": "dataset aliases are re-registered by the DAGs that use them",
    "dataset_alias_dataset": "dataset aliases are re-registered by the DAGs that use them",
    "dataset_alias_dataset_event": "links of alias events (dataset events are not migrated yet)",
    "asset_alias": "asset aliases are re-registered by the DAGs that use them",
    "backfill": "Airflow 3 backfill bookkeeping (not in 2.x sources)",
    "backfill_dag_run": "Airflow 3 backfill bookkeeping",
    "task_map": "NOT migrated yet: lengths of mapped tasks (the target recomputes them for new runs; the "
                "grid view of migrated mapped runs shows the task instances, not the expansion)",
    "dataset": "NOT migrated yet: the target registers the datasets its DAGs declare when it parses them",
    "asset": "NOT migrated yet: the target registers the assets its DAGs declare when it parses them",
    "dataset_event": "NOT migrated yet: dataset event history stays in the source",
    "asset_event": "NOT migrated yet: asset event history stays in the source",
    "dagrun_dataset_event": "NOT migrated yet: links runs to dataset events (stays in the source)",
    "dagrun_asset_event": "NOT migrated yet: links runs to asset events (stays in the source)",
    "asset_alias_asset": "asset aliases are re-registered by the DAGs that use them",
    "asset_alias_asset_event": "links of alias events (asset events are not migrated yet)",
    "asset_trigger": _REBUILT, "hitl_detail": _RUNTIME, "dag_favorite": _AUTH, "team": _AUTH, "dag_bundle_team": _AUTH,
    "deadline": _RUNTIME, "_xcom_archive": "left behind by Airflow 3's own upgrade; not used by Airflow",
}  # fmt: skip
NOT_MIGRATED_PREFIXES = {"ab_": _AUTH, "mwaa_migration_": "this migration's own bookkeeping (state.py)"}


def not_migrated_reason(table: str) -> str:
    """Why a table of the source schema is not migrated."""
    if table in NOT_MIGRATED:
        return NOT_MIGRATED[table]
    for prefix, why in NOT_MIGRATED_PREFIXES.items():
        if table.startswith(prefix):
            return why
    return "unknown to the migration rules (not a table of a known Airflow schema): NOT migrated"


# TI states whose rows the export leaves out: still being worked on in the source.
SKIPPED_TI_STATES = ("running", "queued")

_NOT_MIGRATION_RUN = "t.dag_id NOT IN ({migration_dags})"
_OWN_RUN = ("a run of the migration's own DAGs (db_export / db_import)", _NOT_MIGRATION_RUN)
_TI_ACTIVE = (
    "task instance still running or queued in the source (not finished: the cutover's delta carries it)",
    "(t.state IS NULL OR t.state NOT IN ({skipped_states}))",
)
_TI_NOT_SKIPPED = (
    "NOT EXISTS (SELECT 1 FROM task_instance x WHERE x.dag_id = t.dag_id AND "
    "x.task_id = t.task_id AND x.run_id = t.run_id AND x.map_index = t.map_index AND "
    "x.state IN ({skipped_states}))"
)
_TI_EXISTS = (
    "EXISTS (SELECT 1 FROM task_instance p WHERE p.dag_id = {dag_id} AND "
    "p.task_id = {task_id} AND p.run_id = {run_id} AND p.map_index = {map_index})"
)
_RUN_EXISTS = "EXISTS (SELECT 1 FROM dag_run p WHERE p.dag_id = {dag_id} AND p.run_id = {run_id})"
_OF_ACTIVE_TI = ("belongs to a task instance still running or queued in the source", _TI_NOT_SKIPPED)
# children are never attached to a target dag_run that only shares (dag_id, run_id) with theirs
_RUN_NOT_CONFLICT = (
    "its dag_run conflicts with a different run of the target (same dag_id and run_id, "
    "other logical date): not attached to the target's run",
    state.conflict_sql("dag_run", ["{dag_id}", "{run_id}"]),
)
_NO_TI = ("no task_instance (dag_id, task_id, run_id, map_index) in the target", _TI_EXISTS)
_TI_KEY = ("dag_id", "task_id", "run_id", "map_index")


def uuid7_sql(ts_sql: str) -> str:
    """SQL for a version-7 UUID whose time part is ``ts_sql`` (as Airflow 3 assigns them)."""
    return (
        "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
        f"substring(int8send(floor(extract(epoch from COALESCE(({ts_sql})::timestamptz, "
        "clock_timestamp())) * 1000)::bigint) from 3) from 1 for 6), 52, 1), 53, 1), "
        "'hex')::uuid"
    )


def _ti_uuid_lookup() -> str:
    return (
        "(SELECT p.id FROM task_instance p WHERE p.dag_id = {dag_id} AND p.task_id = "
        "{task_id} AND p.run_id = {run_id} AND p.map_index = ({map_index})::integer)"
    )


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
#   export_keep: [(reason, SQL condition)] rows failing a condition are left out by the export
#         and counted per reason in the manifest's skipped_at_source (t = the table)
#   identity: candidate lists of identifying columns besides the natural key (target names):
#         a target row with the same key but other identifying values is a conflict
#   export_extra: extra columns the export computes in Python where the source runs
#         (name -> (converter, source column))
#   source_exprs: expressions replacing a source column before the family steps
#   offset_refs: column -> table whose id offset it gets
#   optional_fks: column -> (table, column): kept when the row exists in the target, else NULL
#   null_columns: columns the import sets NULL (references the target cannot resolve)
#   require: [(reason, SQL condition)] rows failing a condition are rejected with the reason
#   encrypted: column -> flag column (or None = always) holding Fernet-encrypted values;
#         the export decrypts with the source key, the import encrypts with the target key
#   upsert: conf key of the strategy (skip_existing | overwrite) for rows classified
#         "different", and None or {column: value} limiting it to those rows
# ---------------------------------------------------------------------------------------
TABLES: dict[str, dict] = {
    "slot_pool": {"ids": "target", "keys": [["pool"]], "upsert": ("default_pool_strategy", {"pool": "default_pool"})},
    "variable": {
        "ids": "target",
        "keys": [["key"]],
        "encrypted": {"val": "is_encrypted"},
        "upsert": ("variables_strategy", None),
    },
    "connection": {
        "ids": "target",
        "keys": [["conn_id"]],
        "encrypted": {"password": "is_encrypted", "extra": "is_extra_encrypted"},
        "upsert": ("connections_strategy", None),
    },
    "job": {"ids": "offset", "keys": [["id"]]},
    "trigger": {
        "ids": "offset",
        "keys": [["id"]],
        "offset_refs": {"triggerer_id": "job"},
        "encrypted": {"kwargs": "target_text"},
    },
    "log": {"ids": "offset", "keys": [["id"]]},
    "dag_run": {
        "ids": "target",
        "keys": [["dag_id", "run_id"]],
        "identity": [["execution_date"], ["logical_date"]],
        "export_keep": [_OWN_RUN],
        "export_extra": {"conf__json": ("pickle_to_json", "conf")},
        "offset_refs": {"creating_job_id": "job"},
        "optional_fks": {"log_template_id": ("log_template", "id")},
    },
    "dag_run_note": {
        "ids": None,
        "keys": [["dag_run_id"]],
        "export_keep": [
            (_OWN_RUN[0], "t.dag_run_id IN (SELECT id FROM dag_run WHERE dag_id NOT IN ({migration_dags}))")
        ],
        "export_join": {
            "dag_run__dag_id": "(SELECT d.dag_id FROM dag_run d WHERE d.id = t.dag_run_id)",
            "dag_run__run_id": "(SELECT d.run_id FROM dag_run d WHERE d.id = t.dag_run_id)",
        },
        "source_exprs": {
            "dag_run_id": "(SELECT d.id FROM dag_run d WHERE d.dag_id = {dag_run__dag_id} "
            "AND d.run_id = {dag_run__run_id})"
        },
        "null_columns": ["user_id"],
        "require": [
            (_RUN_NOT_CONFLICT[0], state.conflict_sql("dag_run", ["{dag_run__dag_id}", "{dag_run__run_id}"])),
            ("no dag_run (dag_id, run_id) in the target", "{dag_run_id} IS NOT NULL"),
        ],
    },
    "task_instance": {
        "ids": None,
        "keys": [list(_TI_KEY)],
        "export_keep": [_OWN_RUN, _TI_ACTIVE],
        "offset_refs": {"job_id": "job", "queued_by_job_id": "job", "trigger_id": "trigger"},
        "optional_fks": {"trigger_id": ("trigger", "id")},
        "require": [_RUN_NOT_CONFLICT, ("no dag_run (dag_id, run_id) in the target", _RUN_EXISTS)],
        "log_selection": True,
    },
    "task_instance_note": {
        "ids": None,
        "keys": [list(_TI_KEY), ["ti_id"]],
        "export_keep": [_OWN_RUN, _OF_ACTIVE_TI],
        "null_columns": ["user_id"],
        "require": [_RUN_NOT_CONFLICT, _NO_TI],
    },
    "task_instance_history": {
        "ids": "target",
        "keys": [list(_TI_KEY) + ["try_number"]],
        "export_keep": [_OWN_RUN, _OF_ACTIVE_TI],
        "offset_refs": {"job_id": "job", "queued_by_job_id": "job", "trigger_id": "trigger"},
        "optional_fks": {"trigger_id": ("trigger", "id")},
        "require": [_RUN_NOT_CONFLICT, _NO_TI],
    },
    "task_fail": {
        "ids": "offset",
        "keys": [["id"]],
        "export_keep": [_OWN_RUN, _OF_ACTIVE_TI],
        "require": [_RUN_NOT_CONFLICT, _NO_TI],
    },
    "task_reschedule": {
        "ids": "offset",
        "keys": [["id"]],
        "export_keep": [_OWN_RUN, _OF_ACTIVE_TI],
        "require": [_RUN_NOT_CONFLICT, _NO_TI],
    },
    "xcom": {
        "ids": None,
        "keys": [["dag_run_id", "task_id", "map_index", "key"]],
        "export_keep": [_OWN_RUN, _OF_ACTIVE_TI],
        "export_extra": {"value__json": ("xcom_to_json", "value")},
        "source_exprs": {
            "dag_run_id": "(SELECT d.id FROM dag_run d WHERE d.dag_id = {dag_id} AND d.run_id = {run_id})"
        },
        "require": [_RUN_NOT_CONFLICT, _NO_TI],
    },
    "rendered_task_instance_fields": {
        "ids": None,
        "keys": [list(_TI_KEY)],
        "export_keep": [_OWN_RUN, _OF_ACTIVE_TI],
        "require": [_RUN_NOT_CONFLICT, _NO_TI],
    },
    "sla_miss": {"ids": None, "keys": [["task_id", "dag_id", "execution_date"]], "export_keep": [_OWN_RUN]},
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
            "drop": {
                "external_trigger": "Airflow 3 has no external_trigger; run_type/triggered_by say how a run started",
                "dag_hash": "Airflow 3 tracks DAG versions in dag_version instead of dag_hash",
            },
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
            "drop": {
                "id": "Airflow 3 keys history rows by the task instance UUID of that try",
                "job_id": "Airflow 3 task instances no longer reference the job that ran them",
            },
            "derive": {
                "task_instance_id": uuid7_sql("COALESCE(({queued_dttm})::timestamptz, ({start_date})::timestamptz)")
            },
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
            f"known: {', '.join(f'{r} (Airflow {f})' for r, f in REVISIONS.items())}"
        ) from None


def step_path(source: str, target: str) -> list[tuple[str, str]]:
    """The consecutive steps from family ``source`` to ``target`` (empty when equal)."""
    for fam in (source, target):
        if fam not in FAMILIES:
            raise ValueError(f"unknown schema family {fam!r}; known: {', '.join(FAMILIES)}")
    i, j = FAMILIES.index(source), FAMILIES.index(target)
    if j < i:
        raise ValueError(
            f"moving metadata from schema {source} down to {target} is not supported "
            "(MWAA only allows upgrades, and 3.x -> 2.11 in place)"
        )
    return [(FAMILIES[k], FAMILIES[k + 1]) for k in range(i, j)]
