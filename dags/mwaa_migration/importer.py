"""db_import: verify the export, plan every table through the rule table, load idempotently."""
from __future__ import annotations

import datetime
import hashlib
import logging
import os
import tempfile
import time

from mwaa_migration import dbio, plan, rules, s3io
from mwaa_migration.export import keys

log = logging.getLogger("mwaa_migration.import")
SAMPLE = 3
COPY_CHUNK = 1024 * 1024


class ImportError_(RuntimeError):  # noqa: N801 - "ImportError" is a builtin
    """The export cannot be imported; the message says why."""


def read_manifest(s3, conf) -> dict:
    k = keys(conf)
    m = s3io.get_json(s3, conf["bucket"], k["manifest"], missing_ok=True)
    if m is None:
        raise ImportError_(f"no complete export at s3://{conf['bucket']}/{k['base']}: manifest.json is "
                           "missing (the export did not finish, or prefix/migration_id are wrong)")
    if m.get("format") != 1:
        raise ImportError_(f"manifest format {m.get('format')!r} is not supported (expected 1)")
    if m.get("migration_id") != conf["migration_id"]:
        raise ImportError_(f"manifest migration_id {m.get('migration_id')!r} != conf "
                           f"{conf['migration_id']!r}")
    return m


def verify_files(s3, conf, manifest, tables, progress, spool_dir=None) -> dict:
    """Every selected table file exists and matches its sha256, before the DB is touched.

    With ``spool_dir`` each file is also kept there (compressed, on local disk) so the load
    reads S3 only once; returns {table: local path}.
    """
    base = keys(conf)["base"]
    paths = {}
    for t in tables:
        if t not in manifest["tables"]:
            continue
        e = manifest["tables"][t]
        if spool_dir:
            paths[t] = os.path.join(spool_dir, f"{t}.csv.gz")
            with open(paths[t], "wb") as fh:
                got = s3io.object_sha256(s3, conf["bucket"], base + e["key"], spool=fh)
        else:
            got = s3io.object_sha256(s3, conf["bucket"], base + e["key"])
        if got != e["sha256"]:
            raise s3io.TableFileError(
                f"s3://{conf['bucket']}/{base}{e['key']}: sha256 {got} does not match the manifest's "
                f"{e['sha256']}: refusing to import (nothing was written to the database)")
    progress(f"verified {len([t for t in tables if t in manifest['tables']])} table files against the manifest")
    return paths


def _state_key(conf, manifest, target_ident) -> str:
    """One id-map state per (source DB, target DB): a re-export of the same source under a new
    migration_id reuses the ids already given, so rows are never imported twice."""
    source = manifest.get("source_db_identity") or f"migration:{manifest['migration_id']}"
    h = hashlib.sha256(f"{source}|{target_ident}".encode()).hexdigest()[:24]
    return f"{conf['prefix']}import-state/{h}.json"


def _id_maps(conn, s3, conf, manifest, schema) -> dict:
    """Segments {table: [[source id upto, offset], ...]} for tables whose ids are kept; ids are
    reserved in the target's sequences before anything is loaded, and remembered in S3."""
    with conn.cursor() as cur:
        ident = dbio.db_identity(cur)
    key = _state_key(conf, manifest, ident)
    state = s3io.get_json(s3, conf["bucket"], key, missing_ok=True) or {}
    segments = {t: [list(x) for x in v] for t, v in state.get("segments", {}).items()}
    changed = False
    with conn.cursor() as cur:
        for t, spec in rules.TABLES.items():
            if spec["ids"] != "offset" or t not in schema or "id" not in schema[t]:
                continue
            segs = segments.setdefault(t, [])
            upto = segs[-1][0] if segs else 0
            src_max = int(manifest["tables"].get(t, {}).get("max_id") or 0)
            if src_max > upto:
                top = dbio.reserve_ids(cur, t, src_max - upto)
                segs.append([src_max, top - upto])
                changed = True
    conn.commit()
    if changed:
        s3io.put_json(s3, conf["bucket"], key, {"target_db_identity": ident,
                                                "source_db_identity": manifest.get("source_db_identity"),
                                                "segments": segments})
    with conn.cursor() as cur:
        for t, segs in segments.items():
            cur.execute(plan.idmap_sql(t, segs))
    conn.commit()
    return segments


def _encrypt_staging(cur, p, fernet, stg):
    if not p["encrypt"]:
        return
    if fernet is None:
        raise ImportError_(f"{p['table']}: values must be encrypted but the target has no Fernet key")
    for col, flag in p["encrypt"].items():
        where = f' AND "{flag}" IN (\'t\', \'true\')' if flag else ""
        cur.execute(f'SELECT ctid::text, "{col}" FROM {stg} WHERE "{col}" IS NOT NULL{where}')
        rows = cur.fetchall()
        for ctid, val in rows:
            cur.execute(f'UPDATE {stg} SET "{col}" = %s WHERE ctid = %s::tid',
                        (fernet.encrypt(val.encode("utf-8")).decode(), ctid))


def load_table(conn, s3, conf, manifest, p, idmaps, fernet, log_filter=None, progress=None,
               local_path=None):
    """One table in one transaction. Returns its report entry (and selected TIs for log copy)."""
    t = p["table"]
    e = manifest["tables"][t]
    entry = {"exported": e["rows"], "inserted": 0, "already_present": 0, "rejected": 0,
             "rejections": []}
    if p.get("notes"):
        entry["notes"] = p["notes"]  # columns the rule table deliberately does not carry over
    if p["action"] == "reject_all":
        entry["rejected"] = e["rows"]
        if e["rows"]:
            entry["rejections"].append({"reason": p["reason"], "count": e["rows"], "sample": []})
        return entry, []
    stg = f"mig_stg_{t}"
    started = time.monotonic()
    spool_fh = open(local_path, "rb") if local_path else None  # noqa: SIM115
    selected = []
    try:
        reader = s3io.S3GzipReader(s3, conf["bucket"], keys(conf)["base"] + e["key"],
                                   sha256=e["sha256"], columns=e["columns"], body=spool_fh,
                                   progress=progress)
        with conn.cursor() as cur:
            cols = ", ".join(f'"{c}" text' for c in p["staging_columns"])
            cur.execute(f"CREATE TEMP TABLE {stg} ({cols}) ON COMMIT DROP")
            collist = ", ".join(f'"{c}"' for c in p["staging_columns"])
            cur.copy_expert(f"COPY {stg} ({collist}) FROM STDIN WITH (FORMAT csv, HEADER true)", reader,
                            size=COPY_CHUNK)
            staged = cur.rowcount
            reader.verify()
            if staged is None or staged < 0:
                cur.execute(f"SELECT count(*) FROM {stg}")
                staged = cur.fetchone()[0]
            if staged != e["rows"]:
                raise s3io.TableFileError(f"{t}: file holds {staged} rows, manifest says {e['rows']}")
            _encrypt_staging(cur, p, fernet, stg)
            if log_filter and p["table"] == "task_instance":
                cur.execute(f"""SELECT dag_id, task_id, run_id, map_index::int, try_number::int, state,
                                       end_date::timestamptz FROM {stg}
                                 WHERE state = ANY(%s) AND end_date IS NOT NULL
                                   AND end_date::timestamptz >= now() - make_interval(days => %s)""",
                            (log_filter["states"], log_filter["days"]))
                selected = [dict(zip(("dag_id", "task_id", "run_id", "map_index", "try_number",
                                      "state", "end_date"), r)) for r in cur.fetchall()]
            missing = [t for t in p["idmaps_needed"] if t not in idmaps]
            if missing:
                raise ImportError_(f"{t}: no id map for {missing} (table absent in the target?)")
            sel = p["select"]
            conds = p["require"]
            where = (" WHERE " + " AND ".join(f"({c})" for _, c in conds)) if conds else ""
            ins = ", ".join(f'"{c}"' for c in p["insert_columns"])
            body = f'INSERT INTO "{t}" ({ins}) SELECT {", ".join(sel)} FROM {stg} s{where}'
            overwritten = 0
            up = p["upsert"]
            if up and conf[up["strategy_key"]] == "overwrite":
                kc = up["conflict"]
                kexpr = sel[p["insert_columns"].index(kc)]
                cur.execute(f'SELECT count(*) FROM {stg} s{where}{" AND" if where else " WHERE"} '
                            f'EXISTS (SELECT 1 FROM "{t}" k WHERE k."{kc}" = {kexpr})')
                overwritten = cur.fetchone()[0]
                sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in p["insert_columns"] if c != kc)
                cur.execute(body + f' ON CONFLICT ("{kc}") DO UPDATE SET {sets}')
                inserted = cur.rowcount - overwritten
            else:
                cur.execute(body + " ON CONFLICT DO NOTHING")
                inserted = cur.rowcount
            rejected = 0
            if staged - inserted - overwritten:
                # only when something was not inserted: say why, row by row class
                prior = []
                for why, c in conds:
                    w = " AND ".join([f"({x})" for x in prior] + [f"NOT ({c})"])
                    cur.execute(f"SELECT count(*) FROM {stg} s WHERE {w}")
                    n = cur.fetchone()[0]
                    if n:
                        kcols = [x for x in ("dag_id", "task_id", "run_id", "map_index", "key", "id")
                                 if x in p["staging_columns"]][:4]
                        cur.execute(f"SELECT {', '.join(f's.{chr(34)}{x}{chr(34)}' for x in kcols) or '1'} "
                                    f"FROM {stg} s WHERE {w} LIMIT {SAMPLE}")
                        sample = [dict(zip(kcols, r)) for r in cur.fetchall()]
                        entry["rejections"].append({"reason": why, "count": n, "sample": sample})
                        rejected += n
                    prior.append(c)
            present = staged - rejected - inserted
            if present and not overwritten:
                kx = p["key_exprs"]
                match = " AND ".join(f'k."{c}" = {x}' for c, x in zip(p["key"], kx))
                cur.execute(f"SELECT count(*) FROM {stg} s{where}{' AND' if where else ' WHERE'} "
                            f'EXISTS (SELECT 1 FROM "{t}" k WHERE {match})')
                truly = min(cur.fetchone()[0], present)
                if truly < present:
                    entry["rejections"].append({
                        "reason": "conflicts with a different row of the target on a unique constraint",
                        "count": present - truly, "sample": []})
                    rejected += present - truly
                    present = truly
            for col in p["serial_columns"]:
                dbio.reset_sequence(cur, t, col)
            entry.update(inserted=inserted, already_present=present, rejected=rejected)
            if overwritten:
                entry["overwritten"] = overwritten
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        if spool_fh is not None:
            spool_fh.close()
    if progress:
        progress(f"{t}: exported {entry['exported']}, inserted {entry['inserted']}, already present "
                 f"{entry['already_present']}, rejected {entry['rejected']} "
                 f"({time.monotonic() - started:.1f}s)")
    return entry, selected


def run_import(conn, s3, conf: dict, *, target_airflow_version: str, fernet=None,
               logs_client_factory=None, progress=None) -> dict:
    progress = progress or log.info
    manifest = read_manifest(s3, conf)
    tables = [t for t in conf["tables"] if t in manifest["tables"]]
    with tempfile.TemporaryDirectory(prefix="mwaa-migration-") as spool:
        return _run_import(conn, s3, conf, manifest, tables,
                           verify_files(s3, conf, manifest, tables, progress, spool),
                           target_airflow_version=target_airflow_version, fernet=fernet,
                           logs_client_factory=logs_client_factory, progress=progress)


def _run_import(conn, s3, conf, manifest, tables, local, *, target_airflow_version, fernet,
                logs_client_factory, progress):
    with conn.cursor() as cur:
        revision = dbio.schema_revision(cur)
        target_family = rules.family_of_revision(revision)
        schema = dbio.reflect(cur, rules.MIGRATED_TABLES + ("log_template",))
    conn.commit()
    plans = plan.plan_import(manifest, target_family, schema, tables)
    progress(f"plan: {manifest['source_airflow_version']} (schema "
             f"{rules.family_of_revision(manifest['source_schema_revision'])}) -> "
             f"{target_airflow_version} (schema {target_family}), {len(plans)} tables")
    if conf.get("dry_run"):
        return {"dry_run": True, "plans": [{k: p.get(k) for k in ("table", "action", "reason",
                                                                  "insert_columns", "notes")}
                                           for p in plans]}
    idmaps = _id_maps(conn, s3, conf, manifest, schema)
    log_filter = None
    if conf.get("task_log_days", 0) > 0:
        log_filter = {"states": conf["task_log_states"], "days": conf["task_log_days"]}
    report = {"migration_id": conf["migration_id"], "target_airflow_version": target_airflow_version,
              "source_airflow_version": manifest["source_airflow_version"],
              "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
              "tables": {}, "task_logs": None}
    selected = []
    for p in plans:
        entry, sel = load_table(conn, s3, conf, manifest, p, idmaps, fernet, log_filter, progress,
                                local_path=local.get(p["table"]))
        report["tables"][p["table"]] = entry
        selected.extend(sel)
    report["all_rows_accounted"] = all(
        e["exported"] == e["inserted"] + e["already_present"] + e["rejected"]
        for e in report["tables"].values())
    report["finished_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    k = keys(conf)
    s3io.put_json(s3, conf["bucket"], k["report"], report)
    if log_filter:
        from mwaa_migration import task_logs  # imported only when logs are copied
        client = logs_client_factory() if logs_client_factory else None
        report["task_logs"] = task_logs.copy_task_logs(
            client, source_env=conf["source_environment"], target_env=conf["target_environment"],
            source_version=manifest["source_airflow_version"], target_version=target_airflow_version,
            task_instances=selected, progress=progress)
        s3io.put_json(s3, conf["bucket"], k["report"], report)
    if not report["all_rows_accounted"]:
        raise ImportError_(f"row accounting does not add up; see s3://{conf['bucket']}/{k['report']}")
    progress(f"report written: s3://{conf['bucket']}/{k['report']}")
    return report
