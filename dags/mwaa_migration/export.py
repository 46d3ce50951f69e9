"""db_export: stream the source's metadata tables to gzip CSV in S3, manifest last."""

from __future__ import annotations

import binascii
import datetime
import logging

from mwaa_migration import MIGRATION_DAG_IDS, convert, dbio, plan, rules, s3io

log = logging.getLogger("mwaa_migration.export")
FETCH = 5000


def keys(conf: dict) -> dict:
    """Where one export lives; a re-run (conf ``rerun``) gets its own, fresh export."""
    base = f"{conf['prefix']}{conf['migration_id']}/"
    if conf.get("rerun"):
        base += f"reruns/{conf['rerun']}/"
    return {
        "base": base,
        "manifest": base + "manifest.json",
        "report": base + "report.json",
        "preflight": base + "preflight.json",
        "table": lambda t: base + f"tables/{t}.csv.gz",
    }


def preflight(s3, conf: dict) -> None:
    """Bucket reachable and writable (before anything is paused)."""
    k = keys(conf)
    try:
        s3io.put_json(
            s3, conf["bucket"], k["preflight"], {"checked_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}
        )
    except Exception as exc:  # noqa: BLE001
        raise RuntimeError(f"preflight: cannot write to s3://{conf['bucket']}/{k['preflight']}: {exc}") from exc


def _csv_field(v) -> str:
    if v is None:
        return ""
    if not isinstance(v, str):  # bytea fetched as bytes
        return '"\\x' + binascii.hexlify(v).decode("ascii") + '"'
    return '"' + (v.replace('"', '""') if '"' in v else v) + '"'


PIECE = 4 * 1024 * 1024


def _row_size(row) -> int:
    return sum(len(v) * (2 if not isinstance(v, str) else 1) for v in row if v is not None)


def _flush(writer, buf) -> None:
    if buf:
        writer.write("".join(buf).encode("utf-8"))


def _write_wide_row(writer, row) -> None:
    """One CSV record whose fields are written in PIECE-sized parts (no whole-row copies)."""
    for i, v in enumerate(row):
        if i:
            writer.write(b",")
        if v is None:
            continue
        writer.write(b'"\\x' if not isinstance(v, str) else b'"')
        if isinstance(v, str):
            v = v.replace('"', '""') if '"' in v else v
            for k in range(0, len(v), PIECE):
                writer.write(v[k : k + PIECE].encode("utf-8"))
        else:
            mv = memoryview(v)
            for k in range(0, len(mv), PIECE // 2):
                writer.write(binascii.hexlify(mv[k : k + PIECE // 2]))
        writer.write(b'"')
    writer.write(b"\n")


FETCH_BYTES = 32 * 1024 * 1024  # most bytes of rows fetched at once (estimated from the widest row)
FLUSH_BYTES = 4 * 1024 * 1024  # CSV text buffered before it is compressed


def _width(col: str, typ: str) -> str:
    """SQL for the bytes of one value in its text form (octet_length reads no TOAST data)."""
    if typ == "bytea":
        return f'2 * COALESCE(octet_length(q."{col}"), 0)'
    if typ == "text" or typ.startswith(("character", "varchar")):
        return f'COALESCE(octet_length(q."{col}"), 0)'
    if typ in ("json", "jsonb"):
        return f'COALESCE(octet_length(q."{col}"::text), 0)'
    return "32"


def fetch_rows(cur, sql: str, columns, types) -> int:
    """Rows per fetch so that one batch stays under FETCH_BYTES: the widest row of the table
    (text form: bytea doubles as hex) decides; 1 row at a time for 50 MB values."""
    widths = " + ".join(_width(c, types.get(c, "text")) for c in columns) or "0"
    cur.execute(f"SELECT COALESCE(max({widths}), 0) FROM ({sql}) q")
    widest = int(cur.fetchone()[0] or 0)
    return max(1, min(FETCH, FETCH_BYTES // max(widest, 1)))


def _decrypt_row(row, enc, idx, source_types, fernet, table, stats, raw) -> bool:
    """Decrypt the row's encrypted values in place; False (row rejected, named) if one fails."""
    for col, flag in enc.items():
        v = row[idx[col]]
        if v is None:
            continue
        if flag == "target_text":
            must = source_types.get(col) == "text"
        else:
            must = flag in idx and convert.is_true(row[idx[flag]])
        if not must:
            continue
        if fernet is None:
            raise RuntimeError(f"{table}.{col} holds encrypted values but no Fernet key is available to decrypt them")
        try:
            row[idx[col]] = fernet.decrypt(v.encode()).decode()
        except Exception:  # noqa: BLE001 - never show the value
            if flag == "target_text":
                continue  # Airflow stores some trigger kwargs unencrypted
            _reject_at_source(stats, table, col, idx, rows_key(table, list(idx), raw))
            return False
    return True


def _convert_row(row, extra, idx, counts) -> int:
    failures = 0
    for name, (fn, src) in extra.items():
        try:
            row.append(fn(row[idx[src]], counts.setdefault(name, {})))
        except Exception:  # noqa: BLE001
            failures += 1
            row.append(None)
    return failures


def _seal_row(row, enc, idx, seal) -> None:
    """Encrypt the (decrypted) secret values with the export's data key."""
    for col in enc:
        v = row[idx[col]]
        if v is not None:
            row[idx[col]] = seal.encrypt(v.encode("utf-8")).decode("ascii")


def _export_python(cur, table, columns, sql, source_types, writer, fernet, stats, json3=True, seal=None):
    """Row-by-row path for tables whose values are converted where the source runs.

    Memory: batches bounded by bytes (``fetch_rows``), CSV text flushed every FLUSH_BYTES.
    ``json3``: also compute the Airflow 3 JSON form of pickled/bytes columns.
    """
    spec = rules.TABLES[table]
    enc = {c: f for c, f in spec.get("encrypted", {}).items() if c in columns}
    extra = {}
    if json3:
        extra = {n: (convert.CONVERTERS[fn], src) for n, (fn, src) in spec.get("export_extra", {}).items()
                 if src in columns}  # fmt: skip
    out_cols = list(columns) + list(extra)
    idx = {c: i for i, c in enumerate(columns)}
    # bytea arrives as bytes (no hex str copy) and is written as \x hex in pieces
    as_text = ", ".join(f'q."{c}"' if source_types.get(c) == "bytea" else f'q."{c}"::text' for c in columns)
    batch = fetch_rows(cur, sql, columns, source_types)
    writer.write(",".join(out_cols).encode() + b"\n")
    n = failures = pending = 0
    buf: list = []
    counts: dict = {}
    named = cur.connection.cursor(name=f"mig_export_{table}")
    try:
        named.execute(f"SELECT {as_text} FROM ({sql}) q")
        while True:
            rows = named.fetchmany(batch)
            if not rows:
                break
            for raw in rows:
                row = list(raw)
                if not _decrypt_row(row, enc, idx, source_types, fernet, table, stats, raw):
                    continue
                if seal is not None:
                    _seal_row(row, enc, idx, seal)
                failures += _convert_row(row, extra, idx, counts)
                if _row_size(row) >= FLUSH_BYTES:  # a wide row: written field by field, in pieces
                    _flush(writer, buf)
                    buf, pending = [], 0
                    _write_wide_row(writer, row)
                else:
                    line = ",".join(_csv_field(v) for v in row) + "\n"
                    buf.append(line)
                    pending += len(line)
                del row
                n += 1
                if pending >= FLUSH_BYTES:
                    _flush(writer, buf)
                    buf, pending = [], 0
            del rows
        _flush(writer, buf)
    finally:
        named.close()
    if failures:
        stats["conversion_failures"] = failures
    conv = {f"{extra[name][1]}: {convert.RULES[k]}": c for name, per in counts.items() for k, c in per.items()}
    if conv:
        stats["conversions"] = conv
    return out_cols, n


# the column naming a row of the tables whose values are decrypted (never the value itself)
NAME_COLUMNS = {"variable": "key", "connection": "conn_id", "trigger": "id"}


def rows_key(table, columns, raw):
    col = NAME_COLUMNS.get(table)
    return raw[list(columns).index(col)] if col in columns else None


def _reject_at_source(stats, table, col, idx, name):
    """A value the source's Fernet key cannot decrypt: that row stays behind, named."""
    reason = f"{table}.{col} cannot be decrypted with the source's Fernet key (row not exported)"
    rej = stats.setdefault("rejected_at_source", [])
    for r in rej:
        if r["reason"] == reason:
            r["count"] += 1
            if len(r["sample"]) < 20:
                r["sample"].append(name)
            return
    rej.append({"reason": reason, "count": 1, "sample": [name]})


def needs_airflow3_json(conf: dict) -> bool:
    """The Airflow 3 JSON form of pickled columns is computed only when the target may be 3.x."""
    target = conf.get("target_airflow_version")
    return not target or int(str(target).split(".")[0]) >= 3


def export_table(
    conn, s3, conf, table, source_cols, fernet, progress=None, seal=None, *, query=None, subdir=""
) -> dict:
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
            json3 = needs_airflow3_json(conf)
            if spec.get("encrypted") or (spec.get("export_extra") and json3):
                out_cols, rows = _export_python(
                    cur, table, columns, sql, types, gz, fernet, stats, json3=json3, seal=seal
                )
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
    entry = {
        "columns": out_cols,
        "types": {c: types[c] for c in out_cols},
        "rows": rows,
        "sha256": sha,
        "bytes": sink.size,
        "key": f"{subdir}tables/{table}.csv.gz",
    }
    entry.update(stats)
    if spec["ids"] == "offset" and "id" in source_cols:
        with conn.cursor() as cur:
            cur.execute(f"SELECT max(q.id) FROM ({sql}) q")
            entry["max_id"] = cur.fetchone()[0] or 0
    skipped = skipped_at_source(conn, table)
    if skipped:
        entry["skipped_at_source"] = skipped
    if progress:
        progress(f"exported {table}: {rows} rows, {sink.size} bytes")
    return entry


def skipped_at_source(conn, table) -> list:
    """[{reason, count}] of the rows the export leaves out of ``table`` (same snapshot)."""
    q = plan.skipped_query(table)
    if q is None:
        return []
    reasons, sql = q
    with conn.cursor() as cur:
        cur.execute(sql)
        counts = cur.fetchone()
    return [{"reason": why, "count": int(n)} for why, n in zip(reasons, counts) if n]


def not_migrated(cur, selected) -> dict:
    """{table: {reason, rows}} for every table of the source schema that is not exported."""
    cur.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "AND n.nspname = current_schema() WHERE c.relkind IN ('r', 'p') ORDER BY 1"
    )
    out = {}
    for (t,) in cur.fetchall():
        if t in selected:
            continue
        why = "not selected (conf tables)" if t in rules.MIGRATED_TABLES else rules.not_migrated_reason(t)
        cur.execute(f'SELECT count(*) FROM "{t}"')
        out[t] = {"reason": why, "rows": cur.fetchone()[0]}
    return out


def _data_key(conf: dict, kms):
    """(Fernet, manifest entry) of a fresh KMS data key when conf names secrets_kms_key."""
    key_id = conf.get("secrets_kms_key")
    if not key_id:
        return None, None
    if kms is None:
        import boto3

        kms = boto3.client("kms")
    try:
        return convert.seal_key(kms, key_id, conf["migration_id"])
    except Exception as exc:  # noqa: BLE001 - re-raised naming the key
        raise RuntimeError(f"secrets_kms_key {key_id!r}: cannot generate a data key: {exc}") from exc


def _sealed_columns(tables: dict) -> dict:
    out = {}
    for t, e in tables.items():
        cols = [c for c in rules.TABLES[t].get("encrypted", {}) if c in e["columns"]]
        if cols:
            out[t] = cols
    return out


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


def run_export(
    conn, s3, conf: dict, *, airflow_version: str, fernet=None, progress=None, kms=None, pause: bool = True
) -> dict:
    """Export; returns the manifest. ``conn`` is a psycopg2 connection to the source DB.

    ``pause=False`` (the short cutover's bulk phase) pauses nothing: the snapshot is a REPEATABLE
    READ transaction and the manifest's ``snapshot`` says where the delta starts."""
    progress = progress or log.info
    k = keys(conf)
    preflight(s3, conf)
    existing = s3io.get_json(s3, conf["bucket"], k["manifest"], missing_ok=True)
    if existing is not None:
        progress(
            f"migration {conf['migration_id']} already exported "
            f"(s3://{conf['bucket']}/{k['manifest']} exists): nothing to do"
        )
        return existing
    seal, sealed = _data_key(conf, kms)  # before anything is paused
    with conn.cursor() as cur:
        active = dbio.unpaused_dags(cur)
    conn.commit()
    paused = dbio.set_paused(conn, active, True) if pause else []
    progress(
        f"{len(active)} active DAGs recorded; paused {len(paused)} for the export"
        if pause
        else f"{len(active)} active DAGs; nothing paused (bulk export of a running source)"
    )
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            snapshot = snapshot_facts(cur, conf["tables"])
            revision = dbio.schema_revision(cur)
            source_ident = dbio.db_identity(cur)
            rules.family_of_revision(revision)
            schema = dbio.reflect(cur, conf["tables"])
            left_out = not_migrated(cur, [t for t in conf["tables"] if t in schema])
        tables = {}
        for table in conf["tables"]:
            if table not in schema:
                progress(f"{table}: not in this Airflow version's schema, skipped")
                continue
            tables[table] = export_table(conn, s3, conf, table, schema[table], fernet, progress, seal=seal)
        conn.commit()
        conn.set_session(isolation_level="READ COMMITTED", readonly=False)
        manifest = {
            "format": 1,
            "migration_id": conf["migration_id"],
            "source_airflow_version": airflow_version,
            "source_schema_revision": revision,
            "source_db_identity": source_ident,
            "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "tables": tables,
            "not_migrated": left_out,
            "active_dags": active,
            "paused_for_export": paused,
            "migration_dags": list(MIGRATION_DAG_IDS),
            "snapshot": snapshot,
        }
        if sealed is not None:
            manifest["secrets"] = dict(sealed, columns=_sealed_columns(tables))
        s3io.put_json(s3, conf["bucket"], k["manifest"], manifest)
    except BaseException:
        try:
            conn.rollback()
            conn.set_session(isolation_level="READ COMMITTED", readonly=False)
            restored = dbio.set_paused(conn, paused, False)
            progress(f"export failed: unpaused again the {len(restored)} DAGs it had paused")
        except Exception:  # noqa: BLE001
            log.exception("export failed AND restoring the pause state failed; DAGs to unpause: %s", paused)
        raise
    progress(
        f"manifest written: s3://{conf['bucket']}/{k['manifest']} "
        f"({sum(t['rows'] for t in tables.values())} rows in {len(tables)} tables)"
    )
    return manifest
