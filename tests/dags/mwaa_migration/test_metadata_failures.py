"""Failure handling, idempotency, pause state, dry run, strategies and the log-copy hand-off.

Export and import run in-process here (the library needs only psycopg2, boto3 and
cryptography); the CLI path is covered by the round trips.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import sys
import types

import pytest
from mig_harness import BUCKET, SOURCE_KEY, TARGET_KEY, connect, get_json

from mwaa_migration import convert, export, importer, s3io
from mwaa_migration.conf import validate

pytestmark = [pytest.mark.airflow]

TABLES = [
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
]


def _counts(db):
    conn = connect(db)
    try:
        with conn.cursor() as cur:
            out = {}
            for t in TABLES:
                cur.execute(f'SELECT count(*) FROM "{t}"')
                out[t] = cur.fetchone()[0]
            return out
    finally:
        conn.close()


def _pause_state(db):
    conn = connect(db)
    with conn.cursor() as cur:
        cur.execute("SELECT dag_id, is_paused FROM dag ORDER BY dag_id")
        rows = cur.fetchall()
    conn.close()
    return rows


def _conf(mid, **kw):
    return validate(
        dict({"bucket": BUCKET, "prefix": "data/migration/fail/", "migration_id": mid}, **kw), for_import=True
    )


def _export(db, s3, mid, s3_client=None):
    conn = connect(db)
    try:
        c = validate({"bucket": BUCKET, "prefix": "data/migration/fail/", "migration_id": mid}, for_import=False)
        return export.run_export(
            conn,
            s3_client or s3,
            c,
            airflow_version="2.10.3",
            fernet=convert.fernet_from_key(SOURCE_KEY),
            progress=lambda m: None,
        )
    finally:
        conn.close()


def _import(db, s3, conf):
    conn = connect(db)
    try:
        return importer.run_import(
            conn,
            s3,
            conf,
            target_airflow_version="2.11.0",
            fernet=convert.fernet_from_key(TARGET_KEY),
            progress=lambda m: None,
        )
    finally:
        conn.close()


def _clean(s3, mid):
    for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"data/migration/fail/{mid}/").get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=o["Key"])


@pytest.fixture
def exported(make_db, s3, request):
    mid = "f-" + request.node.name.replace("_", "-").lower()[-30:].strip("-")
    _clean(s3, mid)
    src = make_db("2.10.3", seeded=True)
    manifest = _export(src, s3, mid)
    return {
        "src": src,
        "dst": make_db("2.11.0"),
        "mid": mid,
        "manifest": manifest,
        "base": f"data/migration/fail/{mid}/",
    }


def test_corrupted_table_file_is_refused_and_target_unchanged(exported, s3):
    x = exported
    before = _counts(x["dst"])
    s3.put_object(Bucket=BUCKET, Key=x["base"] + "tables/task_instance.csv.gz", Body=b"\x1f\x8bgarbage")
    with pytest.raises(s3io.TableFileError, match="task_instance.csv.gz: sha256 .* refusing to import"):
        _import(x["dst"], s3, _conf(x["mid"], task_log_days=0))
    assert _counts(x["dst"]) == before


def test_missing_table_file_fails_clearly_and_target_unchanged(exported, s3):
    x = exported
    before = _counts(x["dst"])
    s3.delete_object(Bucket=BUCKET, Key=x["base"] + "tables/xcom.csv.gz")
    with pytest.raises(s3io.TableFileError, match="xcom.csv.gz: cannot read table file"):
        _import(x["dst"], s3, _conf(x["mid"], task_log_days=0))
    assert _counts(x["dst"]) == before


def test_checksum_mismatch_is_refused(exported, s3):
    """A well-formed file that differs from what the manifest recorded is not imported."""
    x = exported
    key = x["base"] + "tables/log.csv.gz"
    body = gzip.decompress(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(body + body.split(b"\n", 1)[1]))
    before = _counts(x["dst"])
    with pytest.raises(s3io.TableFileError, match="does not match the manifest"):
        _import(x["dst"], s3, _conf(x["mid"], task_log_days=0))
    assert _counts(x["dst"]) == before


def test_missing_manifest_names_the_location(s3, make_db):
    with pytest.raises(importer.ImportError_, match="manifest.json is missing"):
        _import(make_db("2.11.0"), s3, _conf("no-such-export", task_log_days=0))


def test_wrong_row_count_writes_nothing_and_the_rerun_completes(exported, s3):
    """A row count that does not match is caught while the files are verified: nothing is
    written (before: the tables loaded earlier were committed); the rerun completes."""
    x = exported
    mkey = x["base"] + "manifest.json"
    good = get_json(s3, mkey)
    bad = json.loads(json.dumps(good))
    bad["tables"]["task_instance"]["rows"] += 1  # checksum still matches; the row count does not
    s3io.put_json(s3, BUCKET, mkey, bad)
    with pytest.raises(s3io.TableFileError, match="task_instance: file holds"):
        _import(x["dst"], s3, _conf(x["mid"], task_log_days=0))
    mid_counts = _counts(x["dst"])
    assert mid_counts["task_instance"] == 0 and mid_counts["dag_run"] == 0  # nothing committed
    s3io.put_json(s3, BUCKET, mkey, good)
    report = _import(x["dst"], s3, _conf(x["mid"], task_log_days=0))
    assert report["all_rows_accounted"]
    assert report["tables"]["dag_run"]["inserted"] == good["tables"]["dag_run"]["rows"]
    assert report["tables"]["task_instance"]["inserted"] == good["tables"]["task_instance"]["rows"]
    again = _import(x["dst"], s3, _conf(x["mid"], task_log_days=0))
    assert again["tables"]["job"]["already_present"] == good["tables"]["job"]["rows"]


def test_dry_run_writes_nothing(exported, s3):
    x = exported
    before = _counts(x["dst"])
    r = _import(x["dst"], s3, _conf(x["mid"], task_log_days=0, dry_run=True))
    assert r["dry_run"] and {p["table"] for p in r["plans"]} >= {"dag_run", "task_instance"}
    assert _counts(x["dst"]) == before
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=x["base"] + "report.json")


def test_variables_strategy_overwrite_vs_skip_existing(exported, s3):
    x = exported
    _import(x["dst"], s3, _conf(x["mid"], task_log_days=0))
    conn = connect(x["dst"])
    with conn.cursor() as cur:
        cur.execute("UPDATE variable SET val = 'changed in target', is_encrypted = false WHERE key = 'seed_secret'")
    conn.commit()
    r = _import(x["dst"], s3, _conf(x["mid"], task_log_days=0))
    assert r["tables"]["variable"]["already_present"] == 2
    with conn.cursor() as cur:
        cur.execute("SELECT val FROM variable WHERE key = 'seed_secret'")
        assert cur.fetchone()[0] == "changed in target"
    r = _import(x["dst"], s3, _conf(x["mid"], task_log_days=0, variables_strategy="overwrite"))
    v = r["tables"]["variable"]
    # only the row that differs is overwritten; the identical one is left alone
    assert v["overwritten"] == 1 and v["classes"]["identical"] == 1
    assert v["exported"] == v["inserted"] + v["already_present"] + v["rejected"]
    with conn.cursor() as cur:
        cur.execute("SELECT val, is_encrypted FROM variable WHERE key = 'seed_secret'")
        val, enc = cur.fetchone()
    conn.close()
    assert enc and convert.fernet_from_key(TARGET_KEY).decrypt(val.encode()).decode().startswith("p@ss")


class _FailingS3:
    """Delegates to a real client but fails the upload of one table (mid-export failure)."""

    def __init__(self, real, fail_on):
        self.real, self.fail_on = real, fail_on
        self.exceptions = real.exceptions

    def put_object(self, **kw):
        if self.fail_on in kw["Key"]:
            raise RuntimeError(f"injected failure writing {kw['Key']}")
        return self.real.put_object(**kw)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_export_failure_restores_exact_pause_state(make_db, s3):
    src = make_db("2.10.3", seeded=True)
    _clean(s3, "f-pause")
    before = _pause_state(src)
    assert ("seed_paused", True) in before and ("seed_etl", False) in before
    with pytest.raises(RuntimeError, match="injected failure"):
        _export(src, s3, "f-pause", s3_client=_FailingS3(s3, "tables/task_instance"))
    assert _pause_state(src) == before
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="data/migration/fail/f-pause/manifest")


def test_preflight_failure_pauses_nothing(make_db, s3):
    src = make_db("2.10.3", seeded=True)
    before = _pause_state(src)
    conn = connect(src)
    c = validate({"bucket": "no-such-bucket-x", "prefix": "p/", "migration_id": "f-pre"}, for_import=False)
    with pytest.raises(RuntimeError, match="preflight: cannot write to s3://no-such-bucket-x"):
        export.run_export(conn, s3, c, airflow_version="2.10.3", progress=lambda m: None)
    conn.close()
    assert _pause_state(src) == before


def test_export_success_records_and_keeps_pause_and_rerun_is_noop(make_db, s3):
    src = make_db("2.10.3", seeded=True)
    _clean(s3, "f-ok")
    m = _export(src, s3, "f-ok")
    assert m["active_dags"] == ["seed_etl", "seed_mapped", "seed_sensor"]
    assert m["paused_for_export"] == m["active_dags"]
    assert all(p for _, p in _pause_state(src))
    conn = connect(src)
    with conn.cursor() as cur:
        cur.execute("UPDATE dag SET is_paused = false WHERE dag_id = 'seed_etl'")
    conn.commit()
    conn.close()
    again = _export(src, s3, "f-ok")  # same migration id: no-op, nothing paused
    assert again["exported_at"] == m["exported_at"]
    assert ("seed_etl", False) in _pause_state(src)


def test_task_log_copy_gets_the_selected_task_instances(exported, s3, monkeypatch):
    x = exported
    calls = []
    fake = types.ModuleType("mwaa_migration.task_logs")

    def copy_task_logs(
        logs_client, *, source_env, target_env, source_version, target_version, task_instances, progress=None
    ):
        calls.append(
            dict(
                client=logs_client,
                source_env=source_env,
                target_env=target_env,
                source_version=source_version,
                target_version=target_version,
                tis=list(task_instances),
            )
        )
        return {"streams_copied": 2, "streams_skipped": 0, "events_copied": 5, "errors": []}

    fake.copy_task_logs = copy_task_logs
    monkeypatch.setitem(sys.modules, "mwaa_migration.task_logs", fake)
    # once the real module was imported it is also an attribute of the package, which
    # `from mwaa_migration import task_logs` reads before sys.modules
    import mwaa_migration

    monkeypatch.setattr(mwaa_migration, "task_logs", fake, raising=False)
    conf = _conf(
        x["mid"],
        task_log_days=3,
        task_log_states=["failed"],
        source_environment="old-env",
        target_environment="new-env",
    )
    conn = connect(x["dst"])
    report = importer.run_import(
        conn,
        s3,
        conf,
        target_airflow_version="2.11.0",
        fernet=convert.fernet_from_key(TARGET_KEY),
        logs_client_factory=lambda: "LOGS",
        progress=lambda m: None,
    )
    conn.close()
    assert len(calls) == 1
    c = calls[0]
    assert (c["client"], c["source_env"], c["target_env"]) == ("LOGS", "old-env", "new-env")
    assert (c["source_version"], c["target_version"]) == ("2.10.3", "2.11.0")
    src = connect(x["src"])
    with src.cursor() as cur:
        cur.execute(
            "SELECT dag_id, task_id, run_id, map_index, try_number FROM task_instance "
            "WHERE state = 'failed' AND end_date >= now() - interval '3 days'"
        )
        want = set(cur.fetchall())
    src.close()
    got = {(t["dag_id"], t["task_id"], t["run_id"], t["map_index"], t["try_number"]) for t in c["tis"]}
    assert got == want and want
    assert all(t["state"] == "failed" and isinstance(t["end_date"], dt.datetime) for t in c["tis"])
    assert report["task_logs"]["events_copied"] == 5
    assert get_json(s3, x["base"] + "report.json")["task_logs"]["streams_copied"] == 2

    def boom(*a, **k):
        raise RuntimeError("log copy failed")

    fake.copy_task_logs = boom
    conn = connect(x["dst"])
    with pytest.raises(RuntimeError, match="log copy failed"):
        importer.run_import(
            conn,
            s3,
            conf,
            target_airflow_version="2.11.0",
            fernet=convert.fernet_from_key(TARGET_KEY),
            logs_client_factory=lambda: "LOGS",
            progress=lambda m: None,
        )
    conn.close()


def test_tables_subset_exports_and_imports_only_those(make_db, s3):
    src, dst = make_db("2.10.3", seeded=True), make_db("2.11.0")
    _clean(s3, "f-subset")
    conn = connect(src)
    c = validate(
        {
            "bucket": BUCKET,
            "prefix": "data/migration/fail/",
            "migration_id": "f-subset",
            "tables": ["connection", "variable", "dag_run"],
        },
        for_import=False,
    )
    m = export.run_export(
        conn, s3, c, airflow_version="2.10.3", fernet=convert.fernet_from_key(SOURCE_KEY), progress=lambda m: None
    )
    conn.close()
    assert sorted(m["tables"]) == ["connection", "dag_run", "variable"]
    r = _import(dst, s3, _conf("f-subset", task_log_days=0, tables=["variable"]))
    assert list(r["tables"]) == ["variable"] and r["tables"]["variable"]["inserted"] == 2
    assert _counts(dst)["dag_run"] == 0


def test_reexport_under_new_migration_id_never_duplicates_rows_without_natural_key(make_db, s3):
    """job/log/task_fail/... have no natural key: their ids are mapped per (source, target) DB
    pair, so a second export of the same source (new migration_id) adds only the new rows."""
    src, dst = make_db("2.10.3", seeded=True), make_db("2.11.0")
    for mid in ("f-re-1", "f-re-2"):
        _clean(s3, mid)
    first = _export(src, s3, "f-re-1")
    _import(dst, s3, _conf("f-re-1", task_log_days=0))
    conn = connect(src)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO log (dttm, event, dag_id) VALUES (now(), 'new-after-first', 'seed_etl')")
        cur.execute("INSERT INTO job (state, job_type, hostname) VALUES ('success', 'SchedulerJob', 'h2')")
    conn.commit()
    conn.close()
    _export(src, s3, "f-re-2")
    r = _import(dst, s3, _conf("f-re-2", task_log_days=0))
    for t, old in (("log", first["tables"]["log"]["rows"]), ("job", first["tables"]["job"]["rows"])):
        assert (r["tables"][t]["inserted"], r["tables"][t]["already_present"]) == (1, old), t
    assert r["tables"]["task_fail"]["inserted"] == 0 and r["tables"]["dag_run"]["inserted"] == 0
    s_counts, d_counts = _counts(src), _counts(dst)
    assert d_counts["log"] == s_counts["log"] and d_counts["job"] == s_counts["job"]
    conn = connect(dst)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM log WHERE event = 'new-after-first'")
        assert cur.fetchone()[0] == 1
        cur.execute(
            "SELECT count(*) FROM task_instance t LEFT JOIN job j ON j.id = t.job_id "
            "WHERE t.job_id IS NOT NULL AND j.id IS NULL"
        )
        assert cur.fetchone()[0] == 0
        cur.execute("INSERT INTO job (state, job_type) VALUES ('running', 'SchedulerJob') RETURNING id")
        new_id = cur.fetchone()[0]
        cur.execute("SELECT max(id) FROM job WHERE id <> %s", (new_id,))
        assert new_id > cur.fetchone()[0]  # the target's own new rows never collide
    conn.rollback()
    conn.close()
