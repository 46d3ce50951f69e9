"""The short cutover's delta: export what changed since the bulk snapshot, import it by row class.

Export (source, frozen): per table the bulk export's query (same columns, same rows left out)
restricted by ``delta_rules.delta_condition``, written next to the bulk export under
``{prefix}{migration_id}/delta/`` (``delta/manifest.json`` last, same format as the bulk's).

Import (target): per table the rows are staged and mapped by the same plan as the bulk import
(``plan.plan_table``), then classified against the target by the table's natural key:
  new            not in the target                                   -> inserted
  identical      in the target with the same values                  -> nothing
  changed        in the target as the bulk left it (its marker is not
                 after the snapshot)                                 -> updated to the delta row
  conflict       in the target but changed there after the snapshot  -> reported, never written
Tables without a marker only insert (present rows count as already present), except rows that
follow their task instance (rendered fields), updated unless that task instance is a conflict.
Whole tables (variables, connections, pools) go through the bulk importer with its strategy.
Each table is one transaction; the report is ``{prefix}{migration_id}/delta/report.json``.
"""

from __future__ import annotations

import datetime
import logging
import tempfile
import time

from mwaa_migration import MIGRATION_DAG_IDS, dbio, delta_rules, export, importer, plan, rules, s3io

log = logging.getLogger("mwaa_migration.delta")
SUBDIR = "delta/"
SAMPLE = 5
_CONFLICT_TI = "mig_delta_conflict_ti"


def manifest_key(conf: dict) -> str:
    return export.keys(conf)["base"] + SUBDIR + "manifest.json"


def report_key(conf: dict) -> str:
    return export.keys(conf)["base"] + SUBDIR + "report.json"


# ---- export (source) --------------------------------------------------------------------------
def delta_query(table: str, columns: list, schema: dict, since_sql: str, max_ids: dict):
    """(columns, SELECT) of the table's delta: the bulk export's query with the delta condition;
    a dag_run whose task instances all ended while paused is exported finished."""
    cols, sql = plan.export_query(table, list(columns))
    rule = delta_rules.DELTA[table]
    parent = rule.get("parent")
    cond = delta_rules.delta_condition(
        table, columns, parent_columns=schema.get(parent, {}), since_sql=since_sql, max_ids=max_ids
    )
    if rule.get("finalize"):
        for col, expr in delta_rules.finalized_run_exprs().items():
            if col in columns:
                sql = sql.replace(f't."{col}"', f'({expr}) AS "{col}"', 1)
    sql += (" AND " if " WHERE " in sql else " WHERE ") + cond
    return cols, sql


def since_sql(snapshot_at: str, margin_s: int) -> str:
    datetime.datetime.fromisoformat(snapshot_at)  # refuses anything but a timestamp
    return f"(timestamptz '{snapshot_at}' - make_interval(secs => {int(margin_s)}))"


def run_delta_export(
    conn, s3, conf: dict, snapshot: dict, *, airflow_version: str, fernet=None, margin_s: int = 600, progress=None
) -> dict:
    """Export the delta since ``snapshot`` (the bulk manifest's); returns the delta manifest."""
    progress = progress or log.info
    since = since_sql(snapshot["at"], margin_s)
    conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT statement_timestamp()")
            taken_at = cur.fetchone()[0].isoformat()
            revision = dbio.schema_revision(cur)
            ident = dbio.db_identity(cur)
            schema = dbio.reflect(cur, conf["tables"])
        tables = {}
        for table in conf["tables"]:
            if table not in schema:
                continue
            query = delta_query(table, list(schema[table]), schema, since, snapshot.get("max_ids", {}))
            tables[table] = export.export_table(
                conn, s3, conf, table, schema[table], fernet, progress, query=query, subdir=SUBDIR
            )
        conn.commit()
    finally:
        conn.rollback()
        conn.set_session(isolation_level="READ COMMITTED", readonly=False)
    manifest = {
        "format": 1,
        "migration_id": conf["migration_id"],
        "source_airflow_version": airflow_version,
        "source_schema_revision": revision,
        "source_db_identity": ident,
        "exported_at": taken_at,
        "tables": tables,
        "migration_dags": list(MIGRATION_DAG_IDS),
        "delta": {"snapshot_at": snapshot["at"], "margin_s": int(margin_s), "max_ids": snapshot.get("max_ids", {})},
    }
    s3io.put_json(s3, conf["bucket"], manifest_key(conf), manifest)
    progress(
        f"delta manifest written: s3://{conf['bucket']}/{manifest_key(conf)} "
        f"({sum(t['rows'] for t in tables.values())} rows in {len(tables)} tables)"
    )
    return manifest


# ---- import (target) --------------------------------------------------------------------------
def read_manifest(s3, conf: dict) -> dict:
    m = s3io.get_json(s3, conf["bucket"], manifest_key(conf), missing_ok=True)
    if m is None:
        raise importer.ImportError_(
            f"no delta export at s3://{conf['bucket']}/{manifest_key(conf)} (the delta export did not finish)"
        )
    if m.get("format") != 1 or m.get("migration_id") != conf["migration_id"] or "delta" not in m:
        raise importer.ImportError_(
            f"s3://{conf['bucket']}/{manifest_key(conf)} is not a delta manifest of migration {conf['migration_id']!r}"
        )
    return m


def _stage(cur, s3, conf, manifest, p, local_path):
    t = p["table"]
    e = manifest["tables"][t]
    stg = f"mig_stg_{t}"
    with open(local_path, "rb") as fh:
        reader = s3io.S3GzipReader(
            s3, conf["bucket"], export.keys(conf)["base"] + e["key"], sha256=e["sha256"], columns=e["columns"], body=fh
        )
        cols = ", ".join(f'"{c}" text' for c in p["staging_columns"])
        cur.execute(f"CREATE TEMP TABLE {stg} ({cols}) ON COMMIT DROP")
        collist = ", ".join(f'"{c}"' for c in p["staging_columns"])
        cur.copy_expert(f"COPY {stg} ({collist}) FROM STDIN WITH (FORMAT csv, HEADER true)", reader)
        reader.verify()
    cur.execute(f"SELECT count(*) FROM {stg}")
    staged = cur.fetchone()[0]
    if staged != e["rows"]:
        raise s3io.TableFileError(f"{t}: delta file holds {staged} rows, manifest says {e['rows']}")
    return stg, staged


def _rejections(cur, stg, conds, entry):
    prior = []
    for why, c in conds:
        w = " AND ".join([f"({x})" for x in prior] + [f"NOT ({c})"])
        cur.execute(f"SELECT count(*) FROM {stg} s WHERE {w}")
        n = cur.fetchone()[0]
        if n:
            entry["rejections"].append({"reason": why, "count": n, "sample": []})
            entry["rejected"] += n
        prior.append(c)


def _classify_sql(t: str, p: dict, marker, with_parent: bool, snapshot_at: str) -> dict:
    """SQL of the four row classes of staged, mapped rows ``n`` against target rows ``k``."""
    key = p["key"]
    upd = [c for c in p["insert_columns"] if c not in key and c != "id"]
    match = " AND ".join(f'k."{c}" = n."{c}"' for c in key)
    differs = " OR ".join(f'k."{c}"::text IS DISTINCT FROM n."{c}"::text' for c in upd) or "FALSE"
    snap = f"timestamptz '{snapshot_at}'"
    if marker:
        conflict = f"COALESCE(({marker}) > {snap}, FALSE)"
    elif with_parent:
        conflict = (
            f"EXISTS (SELECT 1 FROM {_CONFLICT_TI} c WHERE c.dag_id = k.dag_id AND c.task_id = "
            "k.task_id AND c.run_id = k.run_id AND c.map_index = k.map_index)"
        )
    else:
        conflict = None
    return {"upd": upd, "match": match, "differs": differs, "conflict": conflict}


def _apply_classified(cur, t, p, new, q, entry, snapshot_at):
    cols = ", ".join(f'"{c}"' for c in p["insert_columns"])
    if q["conflict"] is not None and q["upd"]:
        keycols = [c for c in ("dag_id", "task_id", "run_id", "map_index", "key", "id") if c in p["key"]]
        keysel = ", ".join(f'n."{c}"::text' for c in keycols) or "1"
        cur.execute(
            f'SELECT {keysel} FROM {new} n JOIN "{t}" k ON {q["match"]} WHERE ({q["differs"]}) AND {q["conflict"]}'
        )
        rows = cur.fetchall()
        entry["conflicts"] = len(rows)
        entry["conflict_sample"] = [dict(zip(keycols, r)) for r in rows[:SAMPLE]]
        if t == "task_instance" and rows:
            cur.executemany(f"INSERT INTO {_CONFLICT_TI} VALUES (%s, %s, %s, %s::int)", rows)
        sets = ", ".join(f'"{c}" = n."{c}"' for c in q["upd"])
        cur.execute(
            f'UPDATE "{t}" k SET {sets} FROM {new} n WHERE {q["match"]} AND ({q["differs"]}) AND NOT ({q["conflict"]})'
        )
        entry["updated"] = cur.rowcount
    cur.execute(
        f'INSERT INTO "{t}" ({cols}) SELECT {cols} FROM {new} n WHERE NOT EXISTS '
        f'(SELECT 1 FROM "{t}" k WHERE {q["match"]}) ON CONFLICT DO NOTHING'
    )
    entry["inserted"] = cur.rowcount


def load_delta_table(conn, s3, conf, manifest, p, local_path, snapshot_at, progress) -> dict:
    """One table of the delta in one transaction, classified (see the module docstring)."""
    t = p["table"]
    rule = delta_rules.DELTA[t]
    entry = {
        "exported": manifest["tables"][t]["rows"],
        "inserted": 0,
        "updated": 0,
        "already_present": 0,
        "conflicts": 0,
        "rejected": 0,
        "rejections": [],
        "conflict_sample": [],
    }
    started = time.monotonic()
    try:
        with conn.cursor() as cur:
            stg, staged = _stage(cur, s3, conf, manifest, p, local_path)
            where = " AND ".join(f"({c})" for _, c in p["require"]) or "TRUE"
            new = f"mig_new_{t}"
            sel = ", ".join(f'{x} AS "{c}"' for c, x in zip(p["insert_columns"], p["select"]))
            cur.execute(f"CREATE TEMP TABLE {new} ON COMMIT DROP AS SELECT {sel} FROM {stg} s WHERE {where}")
            cur.execute(f"SELECT count(*) FROM {new}")
            mapped = cur.fetchone()[0]
            if staged - mapped:
                _rejections(cur, stg, p["require"], entry)
            q = _classify_sql(t, p, rule.get("marker"), bool(rule.get("update_with_parent")), snapshot_at)
            _apply_classified(cur, t, p, new, q, entry, snapshot_at)
            for col in p["serial_columns"]:
                dbio.reset_sequence(cur, t, col)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    entry["already_present"] = (
        entry["exported"] - entry["inserted"] - entry["updated"] - entry["conflicts"] - entry["rejected"]
    )
    progress(
        f"delta {t}: {entry['exported']} rows: inserted {entry['inserted']}, updated {entry['updated']}, "
        f"already present {entry['already_present']}, conflicts {entry['conflicts']}, rejected "
        f"{entry['rejected']} ({time.monotonic() - started:.1f}s)"
    )
    return entry


def run_delta_import(conn, s3, conf: dict, *, target_airflow_version: str, fernet=None, progress=None) -> dict:
    """Import the delta export; returns (and writes) its report."""
    progress = progress or log.info
    manifest = read_manifest(s3, conf)
    tables = [t for t in conf["tables"] if t in manifest["tables"]]
    snapshot_at = manifest["delta"]["snapshot_at"]
    datetime.datetime.fromisoformat(snapshot_at)
    with tempfile.TemporaryDirectory(prefix="mwaa-delta-") as spool:
        local = importer.verify_files(s3, conf, manifest, tables, progress, spool)
        with conn.cursor() as cur:
            target_family = rules.family_of_revision(dbio.schema_revision(cur))
            schema = dbio.reflect(cur, rules.MIGRATED_TABLES + ("log_template",))
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {_CONFLICT_TI} (dag_id text, task_id text, "
                "run_id text, map_index int)"
            )
            cur.execute(f"TRUNCATE {_CONFLICT_TI}")
        conn.commit()
        plans = plan.plan_import(manifest, target_family, schema, tables)
        source_db = importer.source_db_of(manifest)
        importer._id_maps(conn, manifest, schema, source_db)  # id maps live in the target (state.py)
        run = importer._Run(
            conn,
            s3,
            conf,
            manifest,
            fernet=fernet,
            progress=progress,
            source_db=source_db,
            local=local,
            log_filter=None,
        )
        run.unseal = importer._open_data_key(manifest, None)
        report = {
            "migration_id": conf["migration_id"],
            "snapshot_at": snapshot_at,
            "target_airflow_version": target_airflow_version,
            "tables": {},
            "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        }
        for p in plans:
            t = p["table"]
            whole = delta_rules.DELTA[t]["how"] == delta_rules.WHOLE or p["action"] != "load"
            if whole:
                entry, _ = importer.load_table(run, p)
                conn.commit()  # load_table leaves the commit to its caller
                entry.setdefault("updated", entry.pop("overwritten", 0))
                entry.setdefault("conflicts", 0)
            else:
                entry = load_delta_table(conn, s3, conf, manifest, p, local[t], snapshot_at, progress)
            report["tables"][t] = entry
    report["conflicts"] = sum(e.get("conflicts", 0) for e in report["tables"].values())
    report["all_rows_accounted"] = all(
        e["exported"]
        == e["inserted"]
        + e["already_present"]
        + e["rejected"]
        + e.get("conflicts", 0)
        + (e["updated"] if "conflict_sample" in e else 0)
        for e in report["tables"].values()
    )
    report["finished_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    s3io.put_json(s3, conf["bucket"], report_key(conf), report)
    if not report["all_rows_accounted"]:
        raise importer.ImportError_(
            f"delta row accounting does not add up; see s3://{conf['bucket']}/{report_key(conf)}"
        )
    return report
