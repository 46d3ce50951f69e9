"""Metadata integrity (issue 13): every row classified before it is written, nothing lost or
mixed silently, idempotency kept in the target database.

Real PostgreSQL, databases built and seeded by real Airflow (2.10.3 source, 2.11.0 target);
export and import run in-process as in test_metadata_failures.
"""

from __future__ import annotations

import json
import os

import pytest
from mig_harness import BUCKET, SOURCE_KEY, TARGET_KEY, connect, get_json

from mwaa_migration import convert, export, importer, s3io, state
from mwaa_migration.conf import validate

pytestmark = [pytest.mark.airflow]

PREFIX = "data/migration/integrity/"
TABLES = ("dag_run", "task_instance", "xcom", "dag_run_note", "job", "log", "trigger", "task_fail",
          "task_instance_history", "rendered_task_instance_fields", "slot_pool", "variable")  # fmt: skip


def _sql(db, sql, args=(), fetch=True):
    conn = connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            rows = cur.fetchall() if fetch else None
        conn.commit()
        return rows
    finally:
        conn.close()


def _counts(db):
    return {t: _sql(db, f'SELECT count(*) FROM "{t}"')[0][0] for t in TABLES}


def _clean(s3, mid, bucket=BUCKET, prefix=PREFIX):
    for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}{mid}/").get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=o["Key"])


def _export(db, s3, mid):
    _clean(s3, mid)
    conn = connect(db)
    try:
        c = validate({"bucket": BUCKET, "prefix": PREFIX, "migration_id": mid}, for_import=False)
        return export.run_export(conn, s3, c, airflow_version="2.10.3", fernet=convert.fernet_from_key(SOURCE_KEY),
                                 progress=lambda m: None)  # fmt: skip
    finally:
        conn.close()


def _import(db, s3, mid, bucket=BUCKET, **kw):
    conf = validate(dict({"bucket": bucket, "prefix": PREFIX, "migration_id": mid, "task_log_days": 0}, **kw),
                    for_import=True)  # fmt: skip
    conn = connect(db)
    try:
        return importer.run_import(conn, s3, conf, target_airflow_version="2.11.0",
                                   fernet=convert.fernet_from_key(TARGET_KEY), progress=lambda m: None)  # fmt: skip
    finally:
        conn.close()


def _two_runs(db):
    """(dag_id, run_id, execution_date) of two finished runs with task instances and xcoms, the
    first with a note (tools/seed.py: runs 4 and 5)."""
    return _sql(db, "SELECT dag_id, run_id, execution_date FROM dag_run ORDER BY execution_date DESC OFFSET 4 LIMIT 2")


@pytest.fixture
def src_dst(make_db):
    return make_db("2.10.3", seeded=True), make_db(os.environ.get("MIG_TEST_TARGET", "2.11.0"))


def test_overlapping_runs_are_conflicts_and_their_children_are_not_attached(src_dst, s3):
    """A target that already has runs with the source's run_id (another date), or another run on
    the source run's (dag_id, execution_date): those source runs are conflicts, and their task
    instances, xcoms and notes are rejected, never attached to the target's runs."""
    src, dst = src_dst
    _export(src, s3, "i-overlap")
    (d1, r1, _), (d2, r2, e2) = _two_runs(src)
    _import(dst, s3, "i-overlap")
    # make the target's own history: run r1 of another date with a task of its own, and a run
    # with another run_id on r2's execution date (the source's children are gone with them)
    _sql(
        dst,
        """
        CREATE TEMP TABLE x AS SELECT * FROM dag_run WHERE dag_id = %(d1)s AND run_id = %(r1)s;
        CREATE TEMP TABLE y AS SELECT * FROM task_instance WHERE dag_id = %(d1)s AND run_id = %(r1)s
            AND task_id = 'load';
        CREATE TEMP TABLE z AS SELECT * FROM dag_run WHERE dag_id = %(d2)s AND run_id = %(r2)s;
        DELETE FROM dag_run WHERE (dag_id, run_id) IN ((%(d1)s, %(r1)s), (%(d2)s, %(r2)s));
        UPDATE x SET execution_date = execution_date - interval '400 days', id = nextval('dag_run_id_seq');
        UPDATE y SET state = 'upstream_failed', try_number = 0, job_id = NULL;
        UPDATE z SET run_id = 'manual__target_own', id = nextval('dag_run_id_seq');
        INSERT INTO dag_run SELECT * FROM x; INSERT INTO task_instance SELECT * FROM y;
        INSERT INTO dag_run SELECT * FROM z;""",
        {"d1": d1, "r1": r1, "d2": d2, "r2": r2},
        fetch=False,
    )
    before = _counts(dst)

    r = _import(dst, s3, "i-overlap")

    runs = r["tables"]["dag_run"]
    assert runs["classes"]["conflict"] == 2 and runs["rejected"] == 2
    assert runs["already_present"] == runs["exported"] - 2 and runs["inserted"] == 0
    conflicts = [x for x in runs["rejections"] if x["class"] == "conflict"]
    samples = {s["run_id"] for x in conflicts for s in x["sample"]}
    assert samples == {r1, r2}  # the rejection sample shows the row
    assert any("execution_date" in x["reason"] for x in conflicts)
    ti = r["tables"]["task_instance"]
    n_ti = _sql(src, "SELECT count(*) FROM task_instance WHERE (dag_id, run_id) IN ((%s, %s), (%s, %s))",
                (d1, r1, d2, r2))[0][0]  # fmt: skip
    rej = [x for x in ti["rejections"] if x["reason"].startswith("its dag_run conflicts")]
    assert rej and rej[0]["count"] == n_ti and ti["inserted"] == 0
    assert _counts(dst) == before  # nothing attached anywhere
    assert _sql(dst, "SELECT state, try_number FROM task_instance WHERE dag_id = %s AND run_id = %s",
                (d1, r1)) == [("upstream_failed", 0)]  # fmt: skip
    assert _sql(dst, "SELECT count(*) FROM xcom WHERE run_id IN (%s, %s, 'manual__target_own')", (r1, r2)) == [(0,)]
    assert _sql(dst, "SELECT count(*) FROM dag_run_note n JOIN dag_run d ON d.id = n.dag_run_id "
                     "WHERE d.run_id IN (%s, 'manual__target_own')", (r1,)) == [(0,)]  # fmt: skip
    assert r["all_rows_accounted"] and not r["all_rows_identical_in_target"]
    assert _sql(dst, "SELECT natural_key FROM mwaa_migration_conflict WHERE tbl = 'dag_run' ORDER BY 1") == sorted(
        [([d1, r1],), ([d2, r2],)]
    )
    assert e2  # the clash on (dag_id, execution_date) alone is a conflict too


def test_source_that_moved_on_is_reported_present_but_different(src_dst, s3):
    src, dst = src_dst
    _export(src, s3, "i-stale-1")
    _import(dst, s3, "i-stale-1")
    key = _sql(src, "SELECT dag_id, task_id, run_id, map_index FROM task_instance WHERE state = 'failed' "
                    "ORDER BY run_id LIMIT 1")[0]  # fmt: skip
    _sql(src, "UPDATE task_instance SET state = 'success', try_number = try_number + 1 WHERE dag_id = %s AND "
              "task_id = %s AND run_id = %s AND map_index = %s", key, fetch=False)  # fmt: skip
    _export(src, s3, "i-stale-2")

    r = _import(dst, s3, "i-stale-2")

    ti = r["tables"]["task_instance"]
    assert ti["classes"]["different"] == 1 and ti["inserted"] == 0
    sample = ti["samples_different"][0]
    assert {"state", "try_number"} <= set(sample["differs"]) and sample["row"]["run_id"] == key[2]
    assert r["summary"]["different"] >= 1 and not r["all_rows_identical_in_target"]
    # the target keeps its row (updating it is the cutover delta's job), and says so
    assert _sql(dst, "SELECT state FROM task_instance WHERE dag_id = %s AND task_id = %s AND run_id = %s "
                     "AND map_index = %s", key) == [("failed",)]  # fmt: skip


def test_import_state_lives_in_the_target_so_a_fresh_bucket_never_duplicates(src_dst, s3):
    """The same export imported again from another bucket (no S3 state at all): nothing doubles."""
    src, dst = src_dst
    m = _export(src, s3, "i-fresh")
    first = _import(dst, s3, "i-fresh")
    after_first = _counts(dst)
    other = "mig-test-bucket-fresh"
    try:
        s3.create_bucket(Bucket=other)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    _clean(s3, "i-fresh", bucket=other)
    for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}i-fresh/")["Contents"]:
        s3.copy_object(Bucket=other, Key=o["Key"], CopySource={"Bucket": BUCKET, "Key": o["Key"]})

    again = _import(dst, s3, "i-fresh", bucket=other)

    assert _counts(dst) == after_first
    for t, e in again["tables"].items():
        assert e["inserted"] == 0 and e["classes"]["identical"] + e["classes"]["rejected"] == e["exported"], t
    assert first["tables"]["job"]["inserted"] == m["tables"]["job"]["rows"] > 0
    segs = _sql(dst, "SELECT tbl, count(*) FROM mwaa_migration_idmap GROUP BY 1 ORDER BY 1")
    assert ("job", 1) in segs and ("log", 1) in segs  # one reserved range, reused
    done = _sql(dst, "SELECT DISTINCT migration_id FROM mwaa_migration_import")
    assert done == [("i-fresh",)]


def test_default_pool_from_the_source_wins_and_differing_pools_are_reported(src_dst, s3):
    src, dst = src_dst
    _sql(src, "UPDATE slot_pool SET slots = 77 WHERE pool = 'default_pool'", fetch=False)
    _sql(dst, "INSERT INTO slot_pool (pool, slots, description, include_deferred) VALUES ('seed_pool', 3, 'x', "
              "false)", fetch=False)  # fmt: skip
    _export(src, s3, "i-pool")

    kept = _import(dst, s3, "i-pool", default_pool_strategy="skip_existing")
    assert _sql(dst, "SELECT slots FROM slot_pool WHERE pool = 'default_pool'") == [(128,)]
    assert kept["tables"]["slot_pool"]["classes"]["different"] == 2

    r = _import(dst, s3, "i-pool")  # the default: the source's default_pool wins
    pools = r["tables"]["slot_pool"]
    assert _sql(dst, "SELECT slots FROM slot_pool WHERE pool = 'default_pool'") == [(77,)]
    assert pools["overwritten"] == 1 and pools["classes"]["different"] == 2
    diff = {s["row"]["pool"]: s["differs"] for s in pools["samples_different"]}
    assert "slots" in diff["seed_pool"] and "slots" in diff["default_pool"]
    assert _sql(dst, "SELECT slots FROM slot_pool WHERE pool = 'seed_pool'") == [(3,)]  # other pools: reported


def test_raised_row_count_is_refused_before_anything_is_written(src_dst, s3):
    src, dst = src_dst
    _export(src, s3, "i-count")
    key = f"{PREFIX}i-count/manifest.json"
    man = get_json(s3, key)
    man["tables"]["xcom"]["rows"] += 1  # a late table: before, eight tables were committed first
    s3io.put_json(s3, BUCKET, key, man)
    before = _counts(dst)
    with pytest.raises(s3io.TableFileError, match="xcom: file holds .* manifest says .*nothing was written"):
        _import(dst, s3, "i-count")
    assert _counts(dst) == before


def test_a_failure_mid_import_leaves_nothing_and_the_rerun_completes(src_dst, s3, monkeypatch):
    src, dst = src_dst
    _export(src, s3, "i-unit")
    before = _counts(dst)
    real = importer._write

    def failing(cur, run, p, rows, n_new, n_diff):
        if p["table"] == "xcom":
            raise RuntimeError("injected failure in xcom")
        return real(cur, run, p, rows, n_new, n_diff)

    monkeypatch.setattr(importer, "_write", failing)
    with pytest.raises(RuntimeError, match="injected failure"):
        _import(dst, s3, "i-unit")
    assert _counts(dst) == before  # the whole import is one unit
    monkeypatch.setattr(importer, "_write", real)
    r = _import(dst, s3, "i-unit")
    assert r["all_rows_accounted"] and r["tables"]["xcom"]["inserted"] == r["tables"]["xcom"]["exported"]


def test_rows_left_out_at_the_source_and_tables_not_migrated_are_reported(src_dst, s3):
    src, dst = src_dst
    m = _export(src, s3, "i-skip")
    running = _sql(src, "SELECT count(*) FROM task_instance WHERE state IN ('running', 'queued')")[0][0]
    assert running == 2
    ti = m["tables"]["task_instance"]
    assert [(x["count"], "running or queued" in x["reason"]) for x in ti["skipped_at_source"]] == [(2, True)]
    tih = m["tables"]["task_instance_history"]["skipped_at_source"]
    assert tih and tih[0]["count"] == _sql(
        src, "SELECT count(*) FROM task_instance_history h JOIN task_instance t USING (dag_id, task_id, run_id, "
             "map_index) WHERE t.state IN ('running', 'queued')")[0][0]  # fmt: skip
    left = m["not_migrated"]
    for t in ("dataset", "dataset_event", "task_map", "serialized_dag", "ab_user", "dag"):
        assert left[t]["reason"] and not left[t]["reason"].startswith("unknown"), t
    assert left["dag"]["rows"] == 4
    r = _import(dst, s3, "i-skip")
    assert r["tables"]["task_instance"]["skipped_at_source"] == ti["skipped_at_source"]
    assert r["summary"]["skipped_at_source"] >= 2 and r["not_migrated"]["dataset"]["reason"]
    assert r["all_rows_identical_in_target"] is True


def test_an_undecryptable_variable_is_named_and_the_rest_exported(src_dst, s3):
    src, dst = src_dst
    _sql(src, "INSERT INTO variable (key, val, is_encrypted) VALUES ('broken_var', 'gAAAAAnot-a-token', true)",
         fetch=False)  # fmt: skip
    m = _export(src, s3, "i-undecryptable")
    v = m["tables"]["variable"]
    assert v["rows"] == 2
    assert v["rejected_at_source"] == [
        {
            "reason": "variable.val cannot be decrypted with the source's Fernet key (row not exported)",
            "count": 1,
            "sample": ["broken_var"],
        }
    ]
    r = _import(dst, s3, "i-undecryptable")
    assert r["tables"]["variable"]["inserted"] == 2 and r["summary"]["rejected_at_source"] == 1
    assert not r["all_rows_identical_in_target"]


def test_state_tables_are_documented_and_created_once(src_dst):
    _, dst = src_dst
    conn = connect(dst)
    with conn.cursor() as cur:
        state.ensure(cur)
        state.ensure(cur)
    conn.commit()
    conn.close()
    got = {r[0] for r in _sql(dst, "SELECT tablename FROM pg_tables WHERE tablename LIKE 'mwaa_migration_%%'")}
    assert got == set(state.TABLES)
    assert json.dumps(state.__doc__).count("mwaa_migration_") >= 3


def test_a_rerun_exports_afresh_under_its_own_key_and_the_import_reads_that_one(src_dst, s3):
    """Issue 12 item 3: a new rerun_token must not find the old manifest and import stale data."""
    src, dst = src_dst
    _clean(s3, "i-rerun")
    conn = connect(src)
    first = export.run_export(conn, s3, validate({"bucket": BUCKET, "prefix": PREFIX, "migration_id": "i-rerun"},
                                                 for_import=False),
                              airflow_version="2.10.3", fernet=convert.fernet_from_key(SOURCE_KEY),
                              progress=lambda m: None)  # fmt: skip
    conn.close()
    _sql(src, "INSERT INTO log (dttm, event, dag_id) VALUES (now(), 'after-first-export', 'seed_etl')", fetch=False)
    conn = connect(src)
    again = export.run_export(conn, s3, validate({"bucket": BUCKET, "prefix": PREFIX, "migration_id": "i-rerun",
                                                  "rerun": "a1b2c3"}, for_import=False),
                              airflow_version="2.10.3", fernet=convert.fernet_from_key(SOURCE_KEY),
                              progress=lambda m: None)  # fmt: skip
    conn.close()
    assert again["tables"]["log"]["rows"] == first["tables"]["log"]["rows"] + 1
    assert get_json(s3, f"{PREFIX}i-rerun/reruns/a1b2c3/manifest.json")["exported_at"] == again["exported_at"]
    r = _import(dst, s3, "i-rerun", rerun="a1b2c3")
    assert r["tables"]["log"]["inserted"] == again["tables"]["log"]["rows"]
    assert get_json(s3, f"{PREFIX}i-rerun/reruns/a1b2c3/report.json")["migration_id"] == "i-rerun"
    assert _sql(dst, "SELECT count(*) FROM log WHERE event = 'after-first-export'") == [(1,)]


@pytest.mark.slow
def test_airflow3_target_converts_nan_and_nul_by_rule_and_reports_each(make_db, cli, s3):
    """Into 3.0.6 a NaN in conf, a NUL in conf and a pickled XCom holding NaN used to abort the
    import after six tables were committed; now each value is converted by its rule, counted in
    the manifest and the report, and the whole import commits."""
    import pickle

    import psycopg2

    src, dst = make_db("2.10.3", seeded=True), make_db("3.0.6")
    run = _sql(src, "SELECT id, dag_id, run_id FROM dag_run ORDER BY execution_date DESC OFFSET 4 LIMIT 1")[0]
    conf = pickle.dumps({"ratio": float("nan"), "text": "a\x00b", "when": {1, 2}})
    xcom = pickle.dumps({"score": float("inf"), "rows": [1.5, float("nan")]})
    _sql(src, "UPDATE dag_run SET conf = %s WHERE id = %s", (psycopg2.Binary(conf), run[0]), fetch=False)
    _sql(src, "INSERT INTO xcom (dag_run_id, task_id, map_index, key, dag_id, run_id, value, timestamp) "
              "VALUES (%s, 'load', -1, 'nan_pickle', %s, %s, %s, now())",
         (run[0], run[1], run[2], psycopg2.Binary(xcom)), fetch=False)  # fmt: skip
    _clean(s3, "i-nan3")
    c = {"bucket": BUCKET, "prefix": PREFIX, "migration_id": "i-nan3"}
    cli.run("2.10.3", "export", src, c, SOURCE_KEY)
    man = get_json(s3, f"{PREFIX}i-nan3/manifest.json")
    assert man["tables"]["dag_run"]["conversions"] == {
        "conf: NaN/Infinity -> null (JSON has no such numbers)": 1,
        "conf: NUL character removed from text (PostgreSQL text and jsonb cannot hold it)": 1,
        "conf: set/tuple -> list": 1,
    }
    assert man["tables"]["xcom"]["conversions"]["value: NaN/Infinity -> null (JSON has no such numbers)"] == 2

    cli.run("3.0.6", "import", dst, dict(c, task_log_days=0), TARGET_KEY)

    rep = get_json(s3, f"{PREFIX}i-nan3/report.json")
    assert (
        rep["all_rows_accounted"] and rep["tables"]["dag_run"]["conversions"] == man["tables"]["dag_run"]["conversions"]
    )
    got = _sql(dst, "SELECT conf FROM dag_run WHERE dag_id = %s AND run_id = %s", (run[1], run[2]))[0][0]
    assert got == {"ratio": None, "text": "ab", "when": [1, 2]}
    assert _sql(dst, "SELECT value FROM xcom WHERE key = 'nan_pickle'")[0][0] == {"score": None, "rows": [1.5, None]}


def test_secret_columns_are_envelope_encrypted_with_a_kms_data_key(src_dst, s3):
    """Issue 12 item 7: the export files never hold a decrypted secret; only a role that may
    kms:Decrypt with the export's encryption context (the import) can read them."""
    import gzip

    import boto3
    from mig_harness import SECRET

    src, dst = src_dst
    kms = boto3.client("kms")
    key = kms.create_key(Description="migration secrets (test)")["KeyMetadata"]["Arn"]
    _clean(s3, "i-sealed")
    conn = connect(src)
    c = validate({"bucket": BUCKET, "prefix": PREFIX, "migration_id": "i-sealed", "secrets_kms_key": key},
                 for_import=False)  # fmt: skip
    m = export.run_export(conn, s3, c, airflow_version="2.10.3", fernet=convert.fernet_from_key(SOURCE_KEY),
                          progress=lambda m: None)  # fmt: skip
    conn.close()
    assert m["secrets"]["columns"] == {"variable": ["val"], "connection": ["password", "extra"], "trigger": ["kwargs"]}
    assert m["secrets"]["encryption_context"] == {"mwaa-migration-secrets": "i-sealed"}
    for t in ("variable", "connection"):
        body = gzip.decompress(s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}i-sealed/tables/{t}.csv.gz")["Body"].read())
        assert SECRET.split("\n")[0].encode() not in body and "wörd".encode() not in body, t

    # a manifest whose data key is presented with another context is refused before any write
    key_m = f"{PREFIX}i-sealed/manifest.json"
    bad = json.loads(json.dumps(m))
    bad["secrets"]["encryption_context"] = {"mwaa-migration-secrets": "other"}
    s3io.put_json(s3, BUCKET, key_m, bad)
    before = _counts(dst)
    with pytest.raises(importer.ImportError_, match="cannot decrypt"):
        _import(dst, s3, "i-sealed")
    assert _counts(dst) == before
    s3io.put_json(s3, BUCKET, key_m, m)

    r = _import(dst, s3, "i-sealed")
    assert r["tables"]["variable"]["inserted"] == 2 and r["all_rows_identical_in_target"]
    val = _sql(dst, "SELECT val FROM variable WHERE key = 'seed_secret'")[0][0]
    assert convert.fernet_from_key(TARGET_KEY).decrypt(val.encode()).decode() == SECRET
