"""Import state kept in the TARGET database, in tables of ours (``mwaa_migration_*``).

Idempotency must not rest on an object in S3: a fresh bucket or a deleted prefix would make
the same rows look new. These tables live next to Airflow's in the target's metadata DB
(Airflow ignores tables it does not know; ``airflow db reset`` does not drop them) and are
written in the same transaction as the rows they describe.

``mwaa_migration_idmap``
    one row per (source DB, table, segment): source ids ``<= upto`` (and above the previous
    segment) are stored in the target as ``source id + id_offset``. Tables whose ids are kept
    (job, log, trigger, task_fail, 2.x task_reschedule, dataset_event) get a range reserved in
    the target's sequence once per new segment; every later import of the same source DB (a
    re-run, a re-export under a new migration id, an export copied to another bucket) maps
    the same source row to the same target id, so the classification sees it as present.
``mwaa_migration_conflict``
    natural keys of rows of the last import of a source DB that were classified ``conflict``
    (a target row with that natural key but other identifying columns, or a clash on another
    unique constraint). Children of such a row (e.g. the task instances of a conflicting
    dag_run) are rejected instead of being attached to the target's row.
``mwaa_migration_import``
    one row per (source DB, migration id, table): the file's sha256 and the classification
    counts of the last committed import of that table; ``finished_at`` is set when the whole
    import committed. Read it to see what was imported into this target, and from where.
"""

from __future__ import annotations

import json
from typing import Any

IDMAP = "mwaa_migration_idmap"
CONFLICT = "mwaa_migration_conflict"
IMPORT = "mwaa_migration_import"
TABLES = (IDMAP, CONFLICT, IMPORT)

DDL = (
    f"""CREATE TABLE IF NOT EXISTS {IDMAP} (
        source_db text NOT NULL, tbl text NOT NULL, upto bigint NOT NULL, id_offset bigint NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (source_db, tbl, upto))""",
    f"""CREATE TABLE IF NOT EXISTS {CONFLICT} (
        source_db text NOT NULL, tbl text NOT NULL, natural_key text[] NOT NULL,
        reason text NOT NULL, PRIMARY KEY (source_db, tbl, natural_key))""",
    f"""CREATE TABLE IF NOT EXISTS {IMPORT} (
        source_db text NOT NULL, migration_id text NOT NULL, tbl text NOT NULL,
        sha256 text NOT NULL, classes jsonb NOT NULL, imported_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (source_db, migration_id, tbl))""",
)

SOURCE_DB_FN = "pg_temp.mig_source_db()"
"""SQL for the source DB identity of the running import (a session function, see ``bind``)."""


def ensure(cur) -> None:
    """Create our tables if missing (serialized by a transaction-level advisory lock)."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext('mwaa_migration_state'))")
    for ddl in DDL:
        cur.execute(ddl)


def bind(cur, source_db: str) -> None:
    """Define ``pg_temp.mig_source_db()`` for this session (used by the rule conditions)."""
    lit = "'" + source_db.replace("'", "''") + "'"
    cur.execute(
        f"CREATE OR REPLACE FUNCTION {SOURCE_DB_FN} RETURNS text LANGUAGE sql IMMUTABLE AS $mig$ SELECT {lit} $mig$"
    )


def load_segments(cur, source_db: str) -> dict[str, list[list[int]]]:
    cur.execute(f"SELECT tbl, upto, id_offset FROM {IDMAP} WHERE source_db = %s ORDER BY tbl, upto", (source_db,))
    out: dict[str, list[list[int]]] = {}
    for tbl, upto, off in cur.fetchall():
        out.setdefault(tbl, []).append([int(upto), int(off)])
    return out


def add_segment(cur, source_db: str, table: str, upto: int, offset: int) -> None:
    cur.execute(
        f"INSERT INTO {IDMAP} (source_db, tbl, upto, id_offset) VALUES (%s, %s, %s, %s)",
        (source_db, table, upto, offset),
    )


def conflict_sql(table: str, key_exprs: list[str]) -> str:
    """SQL condition: the row with this natural key was NOT classified a conflict."""
    arr = ", ".join(f"({x})::text" for x in key_exprs)
    return (
        f"NOT EXISTS (SELECT 1 FROM {CONFLICT} c WHERE c.source_db = {SOURCE_DB_FN} "
        f"AND c.tbl = '{table}' AND c.natural_key = ARRAY[{arr}])"
    )


def record_conflicts(cur, source_db: str, table: str, rows_sql: str, key: list[str]) -> None:
    """Replace the recorded conflicts of ``table`` with the rows of ``rows_sql`` (columns _why + key)."""
    cur.execute(f"DELETE FROM {CONFLICT} WHERE source_db = %s AND tbl = %s", (source_db, table))
    arr = ", ".join(f'r."{c}"::text' for c in key)
    cur.execute(
        f"INSERT INTO {CONFLICT} (source_db, tbl, natural_key, reason) "
        f"SELECT %s, %s, ARRAY[{arr}], min(r._why) FROM ({rows_sql}) r GROUP BY 3",
        (source_db, table),
    )


def record_table(cur, source_db: str, migration_id: str, table: str, sha256: str, classes: dict[str, Any]) -> None:
    cur.execute(
        f"INSERT INTO {IMPORT} (source_db, migration_id, tbl, sha256, classes) VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT (source_db, migration_id, tbl) DO UPDATE SET sha256 = EXCLUDED.sha256, "
        "classes = EXCLUDED.classes, imported_at = now()",
        (source_db, migration_id, table, sha256, json.dumps(classes, sort_keys=True)),
    )
