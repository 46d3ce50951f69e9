"""db_import: verify the export, plan every table, classify every row, then load in one unit.

Order of work: the manifest and every table file are checked (sha256 and row count) before
the database is touched; id ranges for tables whose ids are kept are reserved and recorded
in the target (``state.py``); then ONE transaction stages each table, classifies each row
against the target (``classify.py``: new / identical / different / conflict / rejected),
inserts only the new rows, overwrites "different" rows only where a strategy says so, and
records the classification in the target. A failure anywhere rolls the whole import back;
a re-run repeats it and finds the rows it committed earlier "identical".
"""

from __future__ import annotations

import datetime
import logging
import os
import tempfile
import time
from typing import Any, Callable

from mwaa_migration import classify, convert, dbio, plan, rules, s3io, state
from mwaa_migration.export import keys

log = logging.getLogger("mwaa_migration.import")
SAMPLE = 3
COPY_CHUNK = 1024 * 1024
SAMPLE_COLUMNS = (
    "dag_id", "task_id", "run_id", "map_index", "try_number", "execution_date", "logical_date", "key",
    "pool", "conn_id", "id", "uri", "dag_run__dag_id", "dag_run__run_id", "state",
)  # fmt: skip
SAMPLE_CHARS = 200


class ImportError_(RuntimeError):  # noqa: N801 - "ImportError" is a builtin
    """The export cannot be imported; the message says why."""


def read_manifest(s3, conf) -> dict:
    k = keys(conf)
    m = s3io.get_json(s3, conf["bucket"], k["manifest"], missing_ok=True)
    if m is None:
        raise ImportError_(
            f"no complete export at s3://{conf['bucket']}/{k['base']}: manifest.json is "
            "missing (the export did not finish, or prefix/migration_id/rerun are wrong)"
        )
    if m.get("format") != 1:
        raise ImportError_(f"manifest format {m.get('format')!r} is not supported (expected 1)")
    if m.get("migration_id") != conf["migration_id"]:
        raise ImportError_(f"manifest migration_id {m.get('migration_id')!r} != conf {conf['migration_id']!r}")
    return m


def verify_files(s3, conf, manifest, tables, progress, spool_dir=None) -> dict:
    """Every selected table file exists, matches its sha256 and holds the manifest's number of
    rows, before the DB is touched.

    With ``spool_dir`` each file is also kept there (compressed, on local disk) so the load
    reads S3 only once; returns {table: local path}.
    """
    base = keys(conf)["base"]
    paths = {}
    for t in tables:
        if t not in manifest["tables"]:
            continue
        e = manifest["tables"][t]
        fh = None
        if spool_dir:
            paths[t] = os.path.join(spool_dir, f"{t}.csv.gz")
            fh = open(paths[t], "wb")  # noqa: SIM115
        try:
            counter = s3io.CsvRecordCounter()
            got = s3io.object_sha256(s3, conf["bucket"], base + e["key"], spool=fh, counter=counter)
        finally:
            if fh is not None:
                fh.close()
        where = f"s3://{conf['bucket']}/{base}{e['key']}"
        if got != e["sha256"]:
            raise s3io.TableFileError(
                f"{where}: sha256 {got} does not match the manifest's "
                f"{e['sha256']}: refusing to import (nothing was written to the database)"
            )
        if counter.records() != e["rows"]:
            raise s3io.TableFileError(
                f"{t}: file holds {counter.records()} rows, manifest says {e['rows']} ({where}): "
                "refusing to import (nothing was written to the database)"
            )
    progress(f"verified {len([t for t in tables if t in manifest['tables']])} table files against the manifest")
    return paths


class _Run:
    """What every table of one import needs."""

    def __init__(self, conn, s3, conf, manifest, *, fernet, progress, source_db, local, log_filter):
        self.conn, self.s3, self.conf, self.manifest = conn, s3, conf, manifest
        self.fernet, self.progress, self.source_db = fernet, progress, source_db
        self.local: dict[str, str] = local
        self.log_filter: dict | None = log_filter
        self.unseal: Any = None  # Fernet of the export's data key (secret columns), if sealed


def source_db_of(manifest: dict) -> str:
    """Identity of the exported database (ids are mapped per source DB)."""
    return manifest.get("source_db_identity") or f"migration:{manifest['migration_id']}"


def _id_maps(conn, manifest: dict, schema: dict, source_db: str) -> dict[str, list[list[int]]]:
    """Segments {table: [[source id upto, offset], ...]} for tables whose ids are kept.

    Read from and recorded in the TARGET (``mwaa_migration_idmap``): ranges are reserved in
    the target's sequences the first time a source id range is seen, and committed before
    any row is loaded, so every later import of the same source maps ids identically.
    """
    with conn.cursor() as cur:
        state.ensure(cur)
        segments = state.load_segments(cur, source_db)
        for t, spec in rules.TABLES.items():
            if spec["ids"] != "offset" or t not in schema or "id" not in schema[t]:
                continue
            segs = segments.setdefault(t, [])
            upto = segs[-1][0] if segs else 0
            src_max = int(manifest["tables"].get(t, {}).get("max_id") or 0)
            if src_max > upto:
                top = dbio.reserve_ids(cur, t, src_max - upto)
                segs.append([src_max, top - upto])
                state.add_segment(cur, source_db, t, src_max, top - upto)
    conn.commit()
    with conn.cursor() as cur:
        for t, segs in segments.items():
            cur.execute(plan.idmap_sql(t, segs))
        state.bind(cur, source_db)
    conn.commit()
    return segments


def _stage(cur, run: _Run, p: dict, e: dict, stg: str) -> int:
    t = p["table"]
    path = run.local.get(t)
    spool_fh = open(path, "rb") if path else None  # noqa: SIM115
    try:
        reader = s3io.S3GzipReader(
            run.s3, run.conf["bucket"], keys(run.conf)["base"] + e["key"], sha256=e["sha256"],
            columns=e["columns"], body=spool_fh, progress=run.progress,
        )  # fmt: skip
        cols = ", ".join(f'"{c}" text' for c in p["staging_columns"])
        cur.execute(f"CREATE TEMP TABLE {stg} ({cols}) ON COMMIT DROP")
        collist = ", ".join(f'"{c}"' for c in p["staging_columns"])
        cur.copy_expert(f"COPY {stg} ({collist}) FROM STDIN WITH (FORMAT csv, HEADER true)", reader, size=COPY_CHUNK)
        staged = cur.rowcount
        reader.verify()
    finally:
        if spool_fh is not None:
            spool_fh.close()
    if staged is None or staged < 0:
        cur.execute(f"SELECT count(*) FROM {stg}")
        staged = cur.fetchone()[0]
    if staged != e["rows"]:
        raise s3io.TableFileError(f"{t}: file holds {staged} rows, manifest says {e['rows']}")
    _unseal_staging(cur, run, t, stg)
    return staged


def _unseal_staging(cur, run: _Run, table: str, stg: str) -> None:
    """Decrypt the secret columns the export sealed with its KMS data key (see convert.seal_key)."""
    for col in (run.manifest.get("secrets") or {}).get("columns", {}).get(table, []):
        cur.execute(f'SELECT ctid::text, "{col}" FROM {stg} WHERE "{col}" IS NOT NULL')
        for ctid, val in cur.fetchall():
            try:
                plain = run.unseal.decrypt(val.encode("ascii")).decode("utf-8")
            except Exception:  # noqa: BLE001 - never show the value
                raise ImportError_(f"{table}.{col}: a value cannot be decrypted with the export's data key") from None
            cur.execute(f'UPDATE {stg} SET "{col}" = %s WHERE ctid = %s::tid', (plain, ctid))


def _select_tis(cur, stg: str, log_filter: dict) -> list[dict]:
    cur.execute(
        f"""SELECT dag_id, task_id, run_id, map_index::int, try_number::int, state,
                   end_date::timestamptz FROM {stg}
             WHERE state = ANY(%s) AND end_date IS NOT NULL
               AND end_date::timestamptz >= now() - make_interval(days => %s)""",
        (log_filter["states"], log_filter["days"]),
    )
    names = ("dag_id", "task_id", "run_id", "map_index", "try_number", "state", "end_date")
    return [dict(zip(names, r)) for r in cur.fetchall()]


def _decrypted(fernet, value: str | None, encrypted: bool) -> str | None:
    if value is None or not encrypted:
        return value
    try:
        return fernet.decrypt(value.encode()).decode()
    except Exception:  # noqa: BLE001 - never show the value
        return "\0undecryptable"


def _compare_encrypted(cur, run: _Run, p: dict, rows: str) -> None:
    """Encrypted columns are compared decrypted (ciphertexts differ every time)."""
    if not p["encrypt"]:
        return
    if run.fernet is None:
        raise ImportError_(f"{p['table']}: values are encrypted but the target has no Fernet key")
    match = classify.key_match(p)
    for col, flag in p["encrypt"].items():
        tflag = f'k."{flag}"' if flag else "TRUE"
        cur.execute(
            f'SELECT r.ctid::text, r."{col}", k."{col}", {tflag} FROM {rows} r JOIN "{p["table"]}" k ON {match} '
            f"WHERE r._class IN ('{classify.IDENTICAL}', '{classify.DIFFERENT}')"
        )
        for ctid, mine, theirs, tenc in cur.fetchall():
            if mine == _decrypted(run.fernet, theirs, bool(tenc)):
                continue
            cur.execute(
                f"UPDATE {rows} SET _class = %s, _why = concat_ws('; ', _why, %s) WHERE ctid = %s::tid",
                (classify.DIFFERENT, f"{col} differs (compared decrypted)", ctid),
            )


def _encrypt_rows(cur, run: _Run, p: dict, rows: str) -> None:
    """Encrypt secret columns with the target's Fernet key in the rows about to be written."""
    for col, flag in p["encrypt"].items():
        cond = f' AND "{flag}" IS TRUE' if flag else ""
        cur.execute(
            f'SELECT ctid::text, "{col}" FROM {rows} WHERE "{col}" IS NOT NULL{cond} '
            f"AND _class IN ('{classify.NEW}', '{classify.DIFFERENT}')"
        )
        for ctid, val in cur.fetchall():
            cur.execute(
                f'UPDATE {rows} SET "{col}" = %s WHERE ctid = %s::tid',
                (run.fernet.encrypt(val.encode("utf-8")).decode(), ctid),
            )


def _classify(cur, run: _Run, p: dict, stg: str, rows: str, staged: int) -> dict[tuple[str, int], int]:
    """Build ``rows`` (target form + class) and return {(class, rule index): count}."""
    cur.execute(classify.rows_sql(p, stg, rows))
    if cur.rowcount != staged:
        raise ImportError_(
            f"{p['table']}: {cur.rowcount} classified rows for {staged} staged: the natural key "
            f"{p['key']} is not unique in the target"
        )
    for cols in p.get("unique_checks", []):
        cur.execute(classify.unique_clash_sql(p, rows, cols))
    _compare_encrypted(cur, run, p, rows)
    state.record_conflicts(
        cur, run.source_db, p["table"], f"SELECT * FROM {rows} WHERE _class = '{classify.CONFLICT}'", p["key"]
    )
    cur.execute(f"SELECT _class, _rej, count(*) FROM {rows} GROUP BY 1, 2")
    return {(c, int(i)): int(n) for c, i, n in cur.fetchall()}


def _write(cur, run: _Run, p: dict, rows: str, n_new: int, n_diff: int) -> tuple[int, int]:
    """Insert the new rows, overwrite "different" ones where the strategy says so."""
    t = p["table"]
    ins = ", ".join(f'"{c}"' for c in p["insert_columns"])
    inserted = 0
    if n_new:
        cur.execute(
            f"INSERT INTO \"{t}\" ({ins}) SELECT {ins} FROM {rows} WHERE _class = '{classify.NEW}' "
            "ON CONFLICT DO NOTHING"
        )
        inserted = cur.rowcount
    up = p["upsert"]
    if not (up and n_diff and run.conf.get(up["strategy_key"]) == "overwrite"):
        return inserted, 0
    sets = ", ".join(f'"{c}" = r."{c}"' for c in p["insert_columns"] if c not in p["key"])
    only = "".join(f" AND r.\"{c}\" = '{v}'" for c, v in (up["only"] or {}).items())
    cur.execute(
        f"UPDATE \"{t}\" k SET {sets} FROM {rows} r WHERE r._class = '{classify.DIFFERENT}' "
        f"AND {classify.key_match(p)}{only}"
    )
    return inserted, cur.rowcount


def _sample_rows(cur, p: dict, stg: str, sctids: list[str]) -> list[dict]:
    """The staged (exported) form of some rows: enough columns to find them, never a secret."""
    if not sctids:
        return []
    cols = [c for c in SAMPLE_COLUMNS if c in p["staging_columns"] and c not in p["encrypt"]]
    cols = cols or [c for c in p["staging_columns"] if c not in p["encrypt"]][:4]
    sel = ", ".join(f'left("{c}", {SAMPLE_CHARS})' for c in cols)
    cur.execute(f"SELECT {sel} FROM {stg} WHERE ctid = ANY(%s::tid[])", (sctids,))
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _rejections(cur, p: dict, stg: str, rows: str) -> list[dict]:
    out = []
    reasons = [why for why, _ in p["require"]]
    cur.execute(
        f"SELECT _class, _rej, _why, count(*), (array_agg(_sctid::text))[1:{SAMPLE}] FROM {rows} "
        f"WHERE _class IN ('{classify.REJECTED}', '{classify.CONFLICT}') GROUP BY 1, 2, 3 ORDER BY 4 DESC"
    )
    for cls, rej, why, n, sctids in cur.fetchall():
        reason = reasons[rej - 1] if cls == classify.REJECTED else f"conflict: {why}"
        out.append({"reason": reason, "count": n, "class": cls, "sample": _sample_rows(cur, p, stg, sctids)})
    return out


def _diff_samples(cur, p: dict, stg: str, rows: str) -> list[dict]:
    cur.execute(classify.diff_sample_sql(p, rows, SAMPLE))
    out = []
    for sctid, cols, why in cur.fetchall():
        row = _sample_rows(cur, p, stg, [sctid])
        out.append({"row": row[0] if row else {}, "differs": list(cols) + ([why] if why else [])})
    return out


def _entry(e: dict, p: dict) -> dict:
    entry: dict[str, Any] = {"exported": e["rows"], "inserted": 0, "already_present": 0, "rejected": 0,
                             "rejections": []}  # fmt: skip
    for k in ("skipped_at_source", "rejected_at_source", "conversions"):
        if e.get(k):
            entry[k] = e[k]
    if p.get("notes"):
        entry["notes"] = p["notes"]  # columns the rule table deliberately does not carry over
    return entry


def load_table(run: _Run, p: dict) -> tuple[dict, list[dict]]:
    """Stage, classify and write one table inside the import's transaction."""
    t = p["table"]
    e = run.manifest["tables"][t]
    entry = _entry(e, p)
    if p["action"] == "reject_all":
        entry["rejected"] = e["rows"]
        entry["classes"] = dict.fromkeys(classify.CLASSES, 0)
        entry["classes"][classify.REJECTED] = e["rows"]
        if e["rows"]:
            entry["rejections"].append({"reason": p["reason"], "count": e["rows"], "sample": []})
        return entry, []
    started = time.monotonic()
    stg, rows = f"mig_stg_{t}", f"mig_rows_{t}"
    with run.conn.cursor() as cur:
        staged = _stage(cur, run, p, e, stg)
        selected = (
            _select_tis(cur, stg, run.log_filter) if run.log_filter and rules.TABLES[t].get("log_selection") else []
        )
        counts = _classify(cur, run, p, stg, rows, staged)
        by_class = {c: sum(n for (k, _), n in counts.items() if k == c) for c in classify.CLASSES}
        entry["rejections"] = _rejections(cur, p, stg, rows)
        if by_class[classify.DIFFERENT]:  # before anything is overwritten
            entry["samples_different"] = _diff_samples(cur, p, stg, rows)
        if p["encrypt"]:
            _encrypt_rows(cur, run, p, rows)
        inserted, overwritten = _write(cur, run, p, rows, by_class[classify.NEW], by_class[classify.DIFFERENT])
        lost = by_class[classify.NEW] - inserted
        if lost:  # a concurrent writer took the key between classification and insert
            entry["rejections"].append({"reason": "clashed on a unique constraint while inserting", "count": lost,
                                        "class": classify.CONFLICT, "sample": []})  # fmt: skip
            by_class[classify.NEW] -= lost
            by_class[classify.CONFLICT] += lost
        for col in p["serial_columns"]:
            dbio.reset_sequence(cur, t, col)
        state.record_table(cur, run.source_db, run.conf["migration_id"], t, e["sha256"], by_class)
        cur.execute(f"DROP TABLE {rows}, {stg}")
    entry.update(
        inserted=by_class[classify.NEW],
        already_present=by_class[classify.IDENTICAL] + by_class[classify.DIFFERENT],
        rejected=by_class[classify.REJECTED] + by_class[classify.CONFLICT],
        classes=by_class,
    )
    if overwritten:
        entry["overwritten"] = overwritten
    run.progress(
        f"{t}: exported {entry['exported']}: "
        + ", ".join(f"{c} {by_class[c]}" for c in classify.CLASSES if by_class[c])
        + (f" (overwritten {overwritten})" if overwritten else "")
        + f" ({time.monotonic() - started:.1f}s)"
    )
    return entry, selected


def run_import(
    conn, s3, conf: dict, *, target_airflow_version: str, fernet=None, logs_client_factory=None, progress=None,
    kms=None,
) -> dict:  # fmt: skip
    progress = progress or log.info
    manifest = read_manifest(s3, conf)
    tables = [t for t in conf["tables"] if t in manifest["tables"]]
    with tempfile.TemporaryDirectory(prefix="mwaa-migration-") as spool:
        local = verify_files(s3, conf, manifest, tables, progress, spool)
        return _run_import(
            conn, s3, conf, manifest, tables, local, target_airflow_version=target_airflow_version,
            fernet=fernet, logs_client_factory=logs_client_factory, progress=progress, kms=kms,
        )  # fmt: skip


def _plans(conn, manifest: dict, tables: list[str]) -> tuple[str, dict, list[dict]]:
    with conn.cursor() as cur:
        revision = dbio.schema_revision(cur)
        target_family = rules.family_of_revision(revision)
        schema = dbio.reflect(cur, rules.MIGRATED_TABLES + ("log_template",))
        uniques = dbio.unique_keys(cur, rules.MIGRATED_TABLES)
    conn.commit()
    plans = plan.plan_import(manifest, target_family, schema, tables)
    for p in plans:
        if p["action"] == "load":
            p["unique_checks"] = [
                u for u in uniques.get(p["table"], []) if u != p["key"] and all(c in p["insert_columns"] for c in u)
            ]
    return target_family, schema, plans


def summarize(report: dict, manifest: dict) -> None:
    """Totals per class, what was not migrated, and the two verdicts."""
    tables = report["tables"]
    totals = {c: sum(e.get("classes", {}).get(c, 0) for e in tables.values()) for c in classify.CLASSES}
    totals["overwritten"] = sum(e.get("overwritten", 0) for e in tables.values())
    totals["skipped_at_source"] = sum(
        x["count"] for e in manifest["tables"].values() for x in e.get("skipped_at_source", [])
    )
    totals["rejected_at_source"] = sum(
        x["count"] for e in manifest["tables"].values() for x in e.get("rejected_at_source", [])
    )
    report["summary"] = totals
    report["not_migrated"] = manifest.get("not_migrated", {})
    report["all_rows_accounted"] = all(
        e["exported"] == e["inserted"] + e["already_present"] + e["rejected"] for e in tables.values()
    )
    # every exported row is now in the target with the source's values
    report["all_rows_identical_in_target"] = (
        report["all_rows_accounted"]
        and totals[classify.CONFLICT] == 0
        and totals[classify.REJECTED] == 0
        and totals[classify.DIFFERENT] == totals["overwritten"]
        and totals["rejected_at_source"] == 0
    )


def _open_data_key(manifest: dict, kms):
    entry = manifest.get("secrets")
    if not entry:
        return None
    if kms is None:
        import boto3

        kms = boto3.client("kms")
    try:
        return convert.open_key(kms, entry)
    except Exception as exc:  # noqa: BLE001 - re-raised naming the key
        raise ImportError_(
            f"the export's secret columns are encrypted with a data key of KMS key {entry.get('kms_key_id')!r} "
            f"that this role cannot decrypt (kms:Decrypt with encryption context {entry.get('encryption_context')}): "
            f"{exc}"
        ) from exc


def _run_import(conn, s3, conf, manifest, tables, local, *, target_airflow_version, fernet, logs_client_factory,
                progress, kms=None):  # fmt: skip
    target_family, schema, plans = _plans(conn, manifest, tables)
    progress(
        f"plan: {manifest['source_airflow_version']} (schema "
        f"{rules.family_of_revision(manifest['source_schema_revision'])}) -> "
        f"{target_airflow_version} (schema {target_family}), {len(plans)} tables"
    )
    if conf.get("dry_run"):
        fields = ("table", "action", "reason", "insert_columns", "notes")
        return {"dry_run": True, "plans": [{k: p.get(k) for k in fields} for p in plans]}
    unseal = _open_data_key(manifest, kms)  # before anything is written
    source_db = source_db_of(manifest)
    _id_maps(conn, manifest, schema, source_db)
    log_filter = None
    if conf.get("task_log_days", 0) > 0:
        log_filter = {"states": conf["task_log_states"], "days": conf["task_log_days"]}
    run = _Run(conn, s3, conf, manifest, fernet=fernet, progress=progress, source_db=source_db, local=local,
               log_filter=log_filter)  # fmt: skip
    run.unseal = unseal
    report: dict[str, Any] = {
        "migration_id": conf["migration_id"], "target_airflow_version": target_airflow_version,
        "source_airflow_version": manifest["source_airflow_version"],
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(), "tables": {}, "task_logs": None,
    }  # fmt: skip
    selected: list[dict] = []
    try:
        for p in plans:
            entry, sel = load_table(run, p)
            report["tables"][p["table"]] = entry
            selected.extend(sel)
        conn.commit()  # the whole import is one unit
    except BaseException:
        conn.rollback()
        raise
    summarize(report, manifest)
    report["finished_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    return _finish(run, report, selected, target_airflow_version, logs_client_factory)


def _finish(run: _Run, report: dict, selected: list[dict], target_version: str,
            logs_client_factory: Callable[[], Any] | None) -> dict:  # fmt: skip
    conf, k = run.conf, keys(run.conf)
    s3io.put_json(run.s3, conf["bucket"], k["report"], report)
    if run.log_filter:
        from mwaa_migration import task_logs  # imported only when logs are copied

        client = logs_client_factory() if logs_client_factory else None
        report["task_logs"] = task_logs.copy_task_logs(
            client, source_env=conf["source_environment"], target_env=conf["target_environment"],
            source_version=run.manifest["source_airflow_version"], target_version=target_version,
            task_instances=selected, progress=run.progress,
        )  # fmt: skip
        s3io.put_json(run.s3, conf["bucket"], k["report"], report)
    if not report["all_rows_accounted"]:
        raise ImportError_(f"row accounting does not add up; see s3://{conf['bucket']}/{k['report']}")
    run.progress(
        f"report written: s3://{conf['bucket']}/{k['report']} ("
        + ", ".join(f"{c} {n}" for c, n in report["summary"].items() if n)
        + ")"
    )
    return report
