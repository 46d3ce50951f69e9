"""Thin PostgreSQL I/O: connections, reflection from pg_catalog, pause state, sequences."""

from __future__ import annotations

from contextlib import contextmanager

from mwaa_migration import rules


def connect(url: str):
    """psycopg2 connection from a SQLAlchemy URL (the CLI path)."""
    import psycopg2
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if not u.drivername.startswith("postgresql"):
        raise ValueError(f"--sql-alchemy-conn: only PostgreSQL is supported, got {u.drivername!r}")
    kw = {"host": u.host, "port": u.port, "user": u.username, "password": u.password, "dbname": u.database}
    kw.update({k: v for k, v in (u.query or {}).items() if isinstance(v, str)})
    return psycopg2.connect(**{k: v for k, v in kw.items() if v is not None})


@contextmanager
def airflow_connection():
    """psycopg2 connection of the running Airflow (inside a 2.x task), from its engine's pool."""
    from airflow import settings

    if settings.engine is None:
        settings.configure_orm()
    if settings.engine.dialect.name != "postgresql":
        raise RuntimeError(f"metadata database is {settings.engine.dialect.name}, only PostgreSQL is supported")
    fairy = settings.engine.raw_connection()
    try:
        yield getattr(fairy, "dbapi_connection", None) or fairy.connection
    finally:
        fairy.close()  # back to the pool (rolled back there)


def schema_revision(cur) -> str:
    cur.execute("SELECT version_num FROM alembic_version")
    rows = cur.fetchall()
    if len(rows) != 1:
        raise RuntimeError(f"alembic_version has {len(rows)} rows; expected one (a migrated Airflow DB)")
    return rows[0][0]


def reflect(cur, tables) -> dict:
    """{table: {column: {type, nullable, default, serial}}} in column order, for existing tables."""
    cur.execute(
        """
        SELECT c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
               NOT a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
         WHERE c.relkind IN ('r', 'p') AND c.relname = ANY(%s)
         ORDER BY c.relname, a.attnum""",
        (list(tables),),
    )
    out: dict[str, dict] = {}
    for rel, col, typ, nullable, default in cur.fetchall():
        out.setdefault(rel, {})[col] = {
            "type": typ,
            "nullable": nullable,
            "default": default,
            "serial": bool(default and default.startswith("nextval(")),
        }
    return out


def db_identity(cur) -> str:
    cur.execute(
        "SELECT (SELECT system_identifier FROM pg_control_system())::text || '/' || "
        "(SELECT oid FROM pg_database WHERE datname = current_database())::text"
    )
    return cur.fetchone()[0]


def active_column(columns: dict) -> str:
    """SQL for "the DAG still exists in the DAG folder" across versions."""
    if "is_active" in columns:
        return "is_active"
    if "is_stale" in columns:
        return "NOT is_stale"
    return "TRUE"


def unpaused_dags(cur) -> list[str]:
    cols = reflect(cur, ["dag"]).get("dag")
    if not cols:
        return []
    cur.execute(
        f"SELECT dag_id FROM dag WHERE NOT is_paused AND {active_column(cols)} AND dag_id <> ALL(%s) ORDER BY dag_id",
        (list(_migration_dags()),),
    )
    return [r[0] for r in cur.fetchall()]


def _migration_dags():
    from mwaa_migration import MIGRATION_DAG_IDS

    return MIGRATION_DAG_IDS


def set_paused(conn, dag_ids, paused: bool) -> list[str]:
    """Set is_paused for exactly these DAGs (committed at once); return those changed."""
    if not dag_ids:
        return []
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE dag SET is_paused = %s WHERE dag_id = ANY(%s) AND is_paused <> %s RETURNING dag_id",
            (paused, list(dag_ids), paused),
        )
        changed = sorted(r[0] for r in cur.fetchall())
    conn.commit()
    return changed


def reset_sequence(cur, table: str, column: str) -> None:
    cur.execute("SELECT pg_get_serial_sequence(%s, %s)", (f'"{table}"', column))
    seq = cur.fetchone()[0]
    if not seq:
        return
    cur.execute(
        f'SELECT setval(%s, GREATEST(COALESCE((SELECT max("{column}") FROM "{table}"), 0), '
        f"(SELECT last_value FROM {seq}), 1), true)",
        (seq,),
    )


def reserve_ids(cur, table: str, count: int) -> int:
    """Reserve ``count`` ids in the table's sequence; return the id just below the range."""
    cur.execute("SELECT pg_get_serial_sequence(%s, 'id')", (f'"{table}"',))
    seq = cur.fetchone()[0]
    cur.execute(f'SELECT COALESCE(max(id), 0) FROM "{table}"')
    top = cur.fetchone()[0]
    if seq:
        cur.execute("SELECT nextval(%s)", (seq,))
        top = max(top, cur.fetchone()[0])
        cur.execute("SELECT setval(%s, %s, true)", (seq, top + max(int(count), 0) + 1))
    return int(top)


def migrated_tables_present(cur) -> list[str]:
    present = reflect(cur, rules.MIGRATED_TABLES)
    return [t for t in rules.MIGRATED_TABLES if t in present]


def unique_keys(cur, tables) -> dict:
    """{table: [[column, ...], ...]}: plain unique indexes (no predicate, no expression)."""
    cur.execute(
        """SELECT c.relname, array_agg(a.attname::text ORDER BY k.ord)
             FROM pg_index i
             JOIN pg_class c ON c.oid = i.indrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
             CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL AND c.relname = ANY(%s)
            GROUP BY c.relname, i.indexrelid ORDER BY c.relname, i.indexrelid""",
        (list(tables),),
    )
    out: dict = {}
    for rel, cols in cur.fetchall():
        out.setdefault(rel, []).append(list(cols))
    return out
