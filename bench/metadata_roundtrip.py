"""Benchmark: export + import of task_instance, dag_run and log next to plain COPY.

    python bench/metadata_roundtrip.py [--scale 100000 --scale 1000000] [--version 2.10.3]
    python bench/metadata_roundtrip.py --xcom-mb 10 --xcom-mb 50     (export peak memory)

``--xcom-mb M``: one JSON and one pickled XCom of M MB each; the export's peak memory is
measured for a 2.x target (no Airflow 3 JSON form) and for a 3.x target, and printed as a
multiple of M (before the byte-bounded fetch it was ~35x).

Per scale N: N task_instance rows, N/10 dag_run rows, N log rows are generated in a DB
migrated by the given Airflow version (real schema, indexes and FKs). Measured in the same
run, each phase in its own child process (so peak memory is that phase's alone):
plain ``COPY ... TO`` into a local file, plain ``COPY ... FROM`` that file into an empty
migrated DB, our export (to a moto S3 server in another process) and our import into
another empty migrated DB. Prints rows/s and peak RSS; never asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tools" / "dev"), str(REPO / "dags")]
TABLES = ("dag_run", "task_instance", "log")
BUCKET = "bench-bucket"


def _populate(db, n):
    import pgcluster
    import psycopg2

    runs = max(1, n // 10)
    conn = psycopg2.connect(**pgcluster.params(db))
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO dag_run (dag_id, run_id, run_type, execution_date, state, external_trigger,
                                 conf, data_interval_start, data_interval_end, start_date, end_date,
                                 queued_at, clear_number, updated_at)
            SELECT 'bench_' || (g %% 50), 'scheduled__' || g, 'scheduled',
                   timestamptz '2020-01-01' + g * interval '1 minute', 'success', false,
                   decode('80049510000000000000007d948c01619468014b01738c0162944b02752e', 'hex'),
                   timestamptz '2020-01-01' + (g - 1) * interval '1 minute',
                   timestamptz '2020-01-01' + g * interval '1 minute', now(), now(), now(), 0, now()
              FROM generate_series(1, %s) g""",
            (runs,),
        )
        cur.execute(
            """
            INSERT INTO task_instance (dag_id, task_id, run_id, map_index, start_date, end_date,
                   duration, state, try_number, max_tries, hostname, unixname, job_id, pool,
                   pool_slots, queue, priority_weight, operator, queued_dttm, pid, executor_config,
                   updated_at)
            SELECT 'bench_' || (r %% 50), 'task_' || t, 'scheduled__' || r, -1, now(), now(), 1.5,
                   'success', 1, 0, 'worker-1.example', 'airflow', 1, 'default_pool', 1, 'default',
                   1, 'PythonOperator', now(), 4242, decode('80047d942e', 'hex'), now()
              FROM generate_series(1, %s) r, generate_series(1, 10) t""",
            (runs,),
        )
        cur.execute(
            """
            INSERT INTO log (dttm, dag_id, task_id, map_index, event, execution_date, owner, extra)
            SELECT now() - g * interval '1 second', 'bench_' || (g %% 50), 'task_1', -1,
                   'cli_task_run', now(), 'airflow', '{"host_name": "worker-1", "full_command": "x"}'
              FROM generate_series(1, %s) g""",
            (n,),
        )
        cur.execute(
            "SELECT (SELECT count(*) FROM dag_run), (SELECT count(*) FROM task_instance), (SELECT count(*) FROM log)"
        )
        counts = cur.fetchone()
    conn.commit()
    conn.close()
    return dict(zip(TABLES, counts, strict=False))


def _populate_xcom(db, mb):
    """One run with a JSON XCom and a pickled XCom (with a NaN) of ``mb`` MB each."""
    import pickle

    import pgcluster
    import psycopg2

    size = mb * 1024 * 1024
    conn = psycopg2.connect(**pgcluster.params(db))
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO dag_run (dag_id, run_id, run_type, execution_date, state, external_trigger,
                                    clear_number, updated_at)
               VALUES ('bench_x', 'manual__x', 'manual', now(), 'success', true, 0, now()) RETURNING id"""
        )
        rid = cur.fetchone()[0]
        cur.execute(
            """INSERT INTO task_instance (dag_id, task_id, run_id, map_index, state, try_number, max_tries,
                                         pool, pool_slots, queue, priority_weight, updated_at)
               VALUES ('bench_x', 't', 'manual__x', -1, 'success', 1, 0, 'default_pool', 1, 'default', 1, now())"""
        )
        values = [
            ("json", psycopg2.Binary(('{"s": "' + "x" * (size - 10) + '"}').encode())),
            ("pickled", psycopg2.Binary(pickle.dumps({"s": "y" * (size - 40), "n": float("nan")}))),
        ]
        for key, value in values:
            cur.execute(
                "INSERT INTO xcom (dag_run_id, task_id, map_index, key, dag_id, run_id, value, timestamp) "
                "VALUES (%s, 't', -1, %s, 'bench_x', 'manual__x', %s, now())",
                (rid, key, value),
            )
    conn.commit()
    conn.close()


def _xcom_bench(args, env, template) -> list:
    import pgcluster

    results = []
    for mb in args.xcom_mb:
        src = pgcluster.create_database(template=template, prefix="bench_xcom")
        try:
            _populate_xcom(src, mb)
            for target in ("2.11.0", "3.0.6"):
                mid = f"bench-xcom-{mb}-{target.replace('.', '')}-{int(time.time())}"
                r = _child("export", src, env, mid=mid, version=args.version, tables="xcom", target=target)
                r.update(xcom_mb=mb, target=target, peak_per_xcom_mb=round(r["peak_rss_mb"] / mb, 1))
                results.append(r)
                print(
                    f"xcom {mb} MB (x2), export for a {target} target: {r['seconds']}s, peak {r['peak_rss_mb']} MB "
                    f"= {r['peak_per_xcom_mb']}x one XCom",
                    flush=True,
                )
        finally:
            pgcluster.drop_database(src)
    return results


def _columns(cur, table):
    cur.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position", (table,)
    )
    return [r[0] for r in cur.fetchall() if not (table in ("dag_run", "log") and r[0] == "id")]


def phase(args) -> dict:
    """One measured phase (runs in a child process)."""
    import pgcluster
    import psycopg2

    t0 = time.perf_counter()
    rows = 0
    if args.phase in ("copy_to", "copy_from"):
        conn = psycopg2.connect(**pgcluster.params(args.db))
        with conn.cursor() as cur:
            for t in TABLES:
                cols = ", ".join(f'"{c}"' for c in _columns(cur, t))
                path = Path(args.dir) / f"{t}.csv"
                if args.phase == "copy_to":
                    with open(path, "wb") as fh:
                        cur.copy_expert(f'COPY (SELECT {cols} FROM "{t}") TO STDOUT WITH (FORMAT csv, HEADER true)', fh)
                    rows += cur.rowcount
                else:
                    with open(path, "rb") as fh:
                        cur.copy_expert(f'COPY "{t}" ({cols}) FROM STDIN WITH (FORMAT csv, HEADER true)', fh)
                    rows += cur.rowcount
        conn.commit()
        conn.close()
    else:
        import boto3

        from mwaa_migration import conf as confmod
        from mwaa_migration import export, importer

        s3 = boto3.client("s3")
        tables = args.tables.split(",") if args.tables else list(TABLES)
        raw = {"bucket": BUCKET, "prefix": "bench/", "migration_id": args.mid, "tables": tables}
        if args.phase == "import":
            raw["task_log_days"] = 0
        elif args.target:
            raw["target_airflow_version"] = args.target
        c = confmod.validate(raw, for_import=args.phase == "import")
        conn = psycopg2.connect(**pgcluster.params(args.db))
        if args.phase == "export":
            m = export.run_export(conn, s3, c, airflow_version=args.version, progress=lambda m: None)
            rows = sum(e["rows"] for e in m["tables"].values())
        else:
            r = importer.run_import(conn, s3, c, target_airflow_version=args.version, progress=lambda m: None)
            rows = sum(e["inserted"] for e in r["tables"].values())
            assert r["all_rows_accounted"]
        conn.close()
    secs = time.perf_counter() - t0
    return {
        "phase": args.phase,
        "rows": rows,
        "seconds": round(secs, 2),
        "rows_per_s": int(rows / secs) if secs else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _child(phase_name, db, extra_env, **kw):
    cmd = [sys.executable, __file__, "--phase", phase_name, "--db", db]
    for k, v in kw.items():
        cmd += [f"--{k}", str(v)]
    p = subprocess.run(cmd, env=dict(os.environ, **extra_env), capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"{phase_name} failed:\n{p.stderr[-4000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, action="append")
    ap.add_argument("--version", default="2.10.3")
    ap.add_argument("--phase")
    ap.add_argument("--db")
    ap.add_argument("--dir")
    ap.add_argument("--mid")
    ap.add_argument("--tables")
    ap.add_argument("--target")
    ap.add_argument("--xcom-mb", type=int, action="append")
    args = ap.parse_args(argv)
    if args.phase:
        print(json.dumps(phase(args)))
        return 0

    import airflow_envs
    import pgcluster

    pgcluster.ensure()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    moto = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    dbs = []
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.2)
        import boto3

        boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        ).create_bucket(Bucket=BUCKET)
        template = pgcluster.create_database(prefix="bench_tpl")
        dbs.append(template)
        airflow_envs.migrate(args.version, pgcluster.url(template))
        if args.xcom_mb:
            print(json.dumps(_xcom_bench(args, env, template)))
            return 0
        results = []
        for n in args.scale or [100_000]:
            src = pgcluster.create_database(template=template, prefix="bench_src")
            plain = pgcluster.create_database(template=template, prefix="bench_plain")
            ours = pgcluster.create_database(template=template, prefix="bench_ours")
            dbs += [src, plain, ours]
            counts = _populate(src, n)
            with tempfile.TemporaryDirectory() as d:
                r = {"scale": n, "rows": counts}
                r["copy_to"] = _child("copy_to", src, env, dir=d)
                r["copy_from"] = _child("copy_from", plain, env, dir=d)
            mid = f"bench-{n}-{int(time.time())}"
            r["export"] = _child("export", src, env, mid=mid, version=args.version)
            r["import"] = _child("import", ours, env, mid=mid, version=args.version)
            plain_s = r["copy_to"]["seconds"] + r["copy_from"]["seconds"]
            ours_s = r["export"]["seconds"] + r["import"]["seconds"]
            r["ratio_vs_plain_copy"] = round(ours_s / plain_s, 2) if plain_s else None
            results.append(r)
            for db in (src, plain, ours):
                pgcluster.drop_database(db)
                dbs.remove(db)
            print(f"\nscale {n}: rows {counts}")
            print(f"{'phase':10} {'rows':>9} {'seconds':>8} {'rows/s':>9} {'peak MB':>8}")
            for ph in ("copy_to", "copy_from", "export", "import"):
                x = r[ph]
                print(f"{ph:10} {x['rows']:>9} {x['seconds']:>8} {x['rows_per_s']:>9} {x['peak_rss_mb']:>8}")
            print(
                f"export+import {ours_s:.1f}s vs plain COPY to+from {plain_s:.1f}s: ratio {r['ratio_vs_plain_copy']}",
                flush=True,
            )
        print(json.dumps(results))
    finally:
        for db in dbs:
            pgcluster.drop_database(db)
        moto.terminate()
        moto.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
