"""db_export: stream the source's metadata tables to gzip CSV in S3, manifest last."""
from __future__ import annotations

import datetime
import logging

from mwaa_migration import MIGRATION_DAG_IDS, convert, dbio, plan, rules, s3io

log = logging.getLogger("mwaa_migration.export")
FETCH = 5000


def keys(conf: dict) -> dict:
    base = f"{conf['prefix']}{conf['migration_id']}/"
    return {"base": base, "manifest": base + "manifest.json", "report": base + "report.json",
            "preflight": base + "preflight.json",
            "table": lambda t: base + f"tables/{t}.csv.gz"}


def preflight(s3, conf: dict) -> None:
    """Bucket reachable and writable (before anything is paused)."""
    k = keys(conf)
    try:
        s3io.put_json(s3, conf["bucket"], k["preflight"],
                      {"checked_at": datetime.datetime.now(datetime.timezone.utc).isoformat()})
    except Exception as exc:  # noqa: BLE001
        raise RuntimeError(f"preflight: cannot write to s3://{conf['bucket']}/{k['preflight']}: "
                           f"{exc}") from exc


def _csv_field(v) -> str:
    if v is None:
        return ""
    return '"' + v.replace('"', '""') + '"'


def _export_python(cur, table, columns, sql, source_types, writer, fernet, stats):
    """Row-by-row path for tables whose values are converted where the source runs."""
    spec = rules.TABLES[table]
    enc = {c: f for c, f in spec.get("encrypted", {}).items() if c in columns}
    extra = {n: (convert.CONVERTERS[fn], src) for n, (fn, src) in spec.get("export_extra", {}).items()
             if src in columns}
    out_cols = list(columns) + list(extra)
    idx = {c: i for i, c in enumerate(columns)}
    as_text = ", ".join(f'q."{c}"::text' for c in columns)
    inner = f"SELECT {as_text} FROM ({sql}) q"
    writer.write(",".join(out_cols).encode() + b"\n")
    n = 0
    failures = 0
    named = cur.connection.cursor(name=f"mig_export_{table}")
    named.itersize = FETCH
    try:
        named.execute(inner)
        while True:
            rows = named.fetchmany(FETCH)
            if not rows:
                break
            buf = []
            for row in rows:
                row = list(row)
                for col, flag in enc.items():
                    v = row[idx[col]]
                    if v is None:
                        continue
                    must = (flag == "target_text" and source_types.get(col) == "text") or \
                           (flag != "target_text" and flag in idx and convert.is_true(row[idx[flag]]))
                    if must:
                        if fernet is None:
                            raise RuntimeError(f"{table}.{col} holds encrypted values but no Fernet "
                                               "key is available to decrypt them")
                        try:
                            row[idx[col]] = fernet.decrypt(v.encode()).decode()
                        except Exception:  # noqa: BLE001 - never show the value
                            if flag == "target_text":
                                continue  # Airflow stores some trigger kwargs unencrypted
                            raise RuntimeError(f"{table}.{col}: a value cannot be decrypted with the "
                                               "source's Fernet key (row not exported)") from None
                for name, (fn, src) in extra.items():
                    try:
                        row.append(fn(row[idx[src]]))
                    except Exception:  # noqa: BLE001
                        failures += 1
                        row.append(None)
                buf.append(",".join(_csv_field(v) for v in row))
                n += 1
            writer.write(("\n".join(buf) + "\n").encode("utf-8"))
    finally:
        named.close()
    if failures:
        stats["conversion_failures"] = failures
    return out_cols, n


def export_table(conn, s3, conf, table, source_cols, fernet, progress=None, *, query=None,
                 subdir="") -> dict:
    """One table to ``{base}{subdir}tables/{table}.csv.gz``; ``query`` = (columns, SELECT)
    replaces the plan's full-table export (the short cutover's delta)."""
    k = keys(conf)
    columns, sql = query or plan.export_query(table, list(source_cols))
    types = {c: source_cols[c]["type"] for c in source_cols}
    for c in rules.TABLES[table].get("export_join", {}):
        types[c] = "text"
    key = k["base"] + f"{subdir}tables/{table}.csv.gz"
    sink = s3io.S3Writer(s3, conf["bucket"], key, progress=progress)
    gz = s3io.GzipWriter(sink)
    stats: dict = {}
    spec = rules.TABLES[table]
    try:
        with conn.cursor() as cur:
            if spec.get("encrypted") or spec.get("export_extra"):
                out_cols, rows = _export_python(cur, table, columns, sql, types, gz, fernet, stats)
                for n in spec.get("export_extra", {}):
                    if n in out_cols:
                        types[n] = "jsonb"
            else:
                cur.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)", gz)
                rows = cur.rowcount
                out_cols = columns
                if rows is None or rows < 0:
                    cur.execute(f"SELECT count(*) FROM ({sql}) q")
                    rows = cur.fetchone()[0]
        gz.close()
        sha = sink.close()
    except BaseException:
        sink.abort()
        raise
    entry = {"columns": out_cols, "types": {c: types[c] for c in out_cols}, "rows": rows,
             "sha256": sha, "bytes": sink.size, "key": f"{subdir}tables/{table}.csv.gz"}
    entry.update(stats)
    if spec["ids"] == "offset" and "id" in source_cols:
        with conn.cursor() as cur:
            cur.execute(f"SELECT max(q.id) FROM ({sql}) q")
            entry["max_id"] = cur.fetchone()[0] or 0
    if progress:
        progress(f"exported {table}: {rows} rows, {sink.size} bytes")
    return entry


def snapshot_facts(cur, tables) -> dict:
    """Inside the export's snapshot: its time and the highest id of the append-only tables (the
    short cutover's delta starts there; dags/mwaa_migration/delta_rules.py)."""
    from mwaa_migration import delta_rules
    cur.execute("SELECT statement_timestamp()")
    at = cur.fetchone()[0]
    present = dbio.reflect(cur, tables)
    max_ids = {}
    for t in tables:
        col = delta_rules.DELTA.get(t, {}).get("id")
        if col and col in present.get(t, {}):
            cur.execute(f'SELECT COALESCE(max("{col}"), 0) FROM "{t}"')
            max_ids[t] = int(cur.fetchone()[0])
    return {"at": at.isoformat(), "max_ids": max_ids}


def run_export(conn, s3, conf: dict, *, airflow_version: str, fernet=None, progress=None,
               pause: bool = True) -> dict:
    """Export; returns the manifest. ``conn`` is a psycopg2 connection to the source DB.

    ``pause=False`` (the short cutover's bulk phase) pauses nothing: the snapshot is a REPEATABLE
    READ transaction and the manifest's ``snapshot`` says where the delta starts."""
    progress = progress or log.info
    k = keys(conf)
    preflight(s3, conf)
    existing = s3io.get_json(s3, conf["bucket"], k["manifest"], missing_ok=True)
    if existing is not None:
        progress(f"migration {conf['migration_id']} already exported "
                 f"(s3://{conf['bucket']}/{k['manifest']} exists): nothing to do")
        return existing
    with conn.cursor() as cur:
        active = dbio.unpaused_dags(cur)
    conn.commit()
    paused = dbio.set_paused(conn, active, True) if pause else []
    progress(f"{len(active)} active DAGs recorded; paused {len(paused)} for the export" if pause else
             f"{len(active)} active DAGs; nothing paused (bulk export of a running source)")
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            snapshot = snapshot_facts(cur, conf["tables"])
            revision = dbio.schema_revision(cur)
            source_ident = dbio.db_identity(cur)
            rules.family_of_revision(revision)
            schema = dbio.reflect(cur, conf["tables"])
        tables = {}
        for table in conf["tables"]:
            if table not in schema:
                progress(f"{table}: not in this Airflow version's schema, skipped")
                continue
            tables[table] = export_table(conn, s3, conf, table, schema[table], fernet, progress)
        conn.commit()
        conn.set_session(isolation_level="READ COMMITTED", readonly=False)
        manifest = {
            "format": 1, "migration_id": conf["migration_id"],
            "source_airflow_version": airflow_version, "source_schema_revision": revision,
            "source_db_identity": source_ident,
            "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "tables": tables, "active_dags": active, "paused_for_export": paused,
            "migration_dags": list(MIGRATION_DAG_IDS), "snapshot": snapshot,
        }
        s3io.put_json(s3, conf["bucket"], k["manifest"], manifest)
    except BaseException:
        try:
            conn.rollback()
            conn.set_session(isolation_level="READ COMMITTED", readonly=False)
            restored = dbio.set_paused(conn, paused, False)
            progress(f"export failed: unpaused again the {len(restored)} DAGs it had paused")
        except Exception:  # noqa: BLE001
            log.exception("export failed AND restoring the pause state failed; DAGs to unpause: %s",
                          paused)
        raise
    progress(f"manifest written: s3://{conf['bucket']}/{k['manifest']} "
             f"({sum(t['rows'] for t in tables.values())} rows in {len(tables)} tables)")
    return manifest
