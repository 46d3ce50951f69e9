"""Benchmark: the short cutover's pause window next to its bulk time, at growing history sizes.

    python bench/cutover_window.py [--scale 10000 --scale 100000 --scale 1000000] [--version 2.10.3]

Per scale N: N task instances, N/10 runs and N log rows of history (bench/metadata_roundtrip.py's
generator) in a database migrated by the given Airflow version, 50 active DAGs. Measured in one
run: the bulk phase (export of the running source + import into an empty target), then, after
the source made new runs and re-ran task instances meanwhile (ACTIVITY_RUNS runs, some in
flight), the pause window: freeze + drain + delta export + delta import + cutover. The drain's and
the target parse's waits are instant here (their real length depends on the workload and the
scheduler: the rehearsal's --live-source measures them); what is measured is the work the window
does, which must not grow with the history. Prints seconds and the window/bulk ratio; never
asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tools"), str(REPO / "dags"), str(REPO / "bench")]
BUCKET = "bench-cutover"
ACTIVITY_RUNS = 20
DAG_IDS = [f"bench_{i}" for i in range(50)]


def _sql(db, sql, args=()):
    import pgcluster
    import psycopg2

    conn = psycopg2.connect(**pgcluster.params(db))
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            out = cur.fetchall() if cur.description else None
        conn.commit()
        return out
    finally:
        conn.close()


def _dags(db, paused):
    _sql(
        db,
        "INSERT INTO dag (dag_id, is_paused, is_active, last_parsed_time, max_active_tasks, "
        "has_task_concurrency_limits, max_consecutive_failed_dag_runs) "
        "SELECT d, %s, true, now() - interval '1 hour', 16, false, 0 FROM unnest(%s::text[]) d",
        (paused, DAG_IDS),
    )


def _activity(db):
    """What the running source does during the bulk phase: new runs (half still running, with a
    task instance in flight), re-run task instances of old runs, new log rows."""
    _sql(
        db,
        """INSERT INTO dag_run (dag_id, run_id, run_type, execution_date, state, external_trigger,
                    start_date, queued_at, data_interval_start, data_interval_end, clear_number, updated_at)
                SELECT 'bench_' || g, 'live__' || g, 'scheduled', now() + g * interval '1 second', 'running',
                       false, now(), now(), now(), now(), 0, now() FROM generate_series(1, %s) g""",
        (ACTIVITY_RUNS,),
    )
    _sql(
        db,
        """INSERT INTO task_instance (dag_id, task_id, run_id, map_index, state, try_number, max_tries,
                    start_date, end_date, pool, pool_slots, queue, priority_weight, updated_at)
                SELECT 'bench_' || g, 'task_' || t, 'live__' || g, -1,
                       CASE WHEN t = 2 AND g %% 2 = 0 THEN 'running' ELSE 'success' END, 1, 0, now(),
                       CASE WHEN t = 2 AND g %% 2 = 0 THEN NULL ELSE now() END, 'default_pool', 1, 'default', 1,
                       now() FROM generate_series(1, %s) g, generate_series(1, 2) t""",
        (ACTIVITY_RUNS,),
    )
    _sql(
        db,
        "UPDATE task_instance SET try_number = try_number + 1, updated_at = now() WHERE run_id IN "
        "(SELECT run_id FROM dag_run WHERE run_id LIKE 'scheduled__%%' ORDER BY id LIMIT 5)",
    )
    _sql(db, "INSERT INTO log (dttm, dag_id, event) SELECT now(), 'bench_1', 'live' FROM generate_series(1, 100)")


def one_scale(n, template, s3, version):
    import pgcluster
    import psycopg2
    from metadata_roundtrip import _populate

    from mwaa_migration import conf as confmod
    from mwaa_migration import flow, phases

    src = pgcluster.create_database(template=template, prefix="bench_cs")
    tgt = pgcluster.create_database(template=template, prefix="bench_ct")
    try:
        counts = _populate(src, n)
        # the generated history was written seconds before the snapshot; a real one is older than the
        # delta's margin, so the margin is 0 here (it only re-reads the last minutes' changes)
        _sql(src, "ANALYZE")
        _dags(src, False)
        _dags(tgt, True)
        conf = confmod.validate(
            {
                "bucket": BUCKET,
                "prefix": "bench/",
                "migration_id": f"cw-{n}-{int(time.time())}",
                "task_log_days": 0,
                "drain_timeout_s": 60,
                "delta_margin_s": 0,
            },
            for_import=True,
        )
        s, t = psycopg2.connect(**pgcluster.params(src)), psycopg2.connect(**pgcluster.params(tgt))
        from airflow_envs import FERNET_KEY_DEFAULT

        from mwaa_migration import convert

        key = convert.fernet_from_key(FERNET_KEY_DEFAULT)
        quiet = {"progress": lambda m: None}
        t0 = time.perf_counter()
        flow.bulk_export(s, s3, conf, airflow_version=version, fernet=key, **quiet)
        flow.bulk_import(t, s3, conf, airflow_version=version, fernet=key, **quiet)
        bulk_s = time.perf_counter() - t0
        _activity(src)

        def finish(_):
            _sql(
                src,
                "UPDATE task_instance SET state = 'success', end_date = now(), updated_at = now() "
                "WHERE state = 'running'",
            )

        def parse(_):
            _sql(tgt, "UPDATE dag SET last_parsed_time = now(), next_dagrun = now() + interval '1 day'")

        marks = {}
        t1 = time.perf_counter()
        flow.freeze_source(s, s3, conf, sleep=finish, **quiet)
        marks["freeze"] = time.perf_counter() - t1
        flow.delta_export(s, s3, conf, airflow_version=version, fernet=key, **quiet)
        marks["delta_export"] = time.perf_counter() - t1 - sum(marks.values())
        flow.delta_import(t, s3, conf, airflow_version=version, fernet=key, source=s, **quiet)
        marks["delta_import"] = time.perf_counter() - t1 - sum(marks.values())
        state = flow.cutover(t, s3, conf, source=s, poll_s=0, sleep=parse, **quiet)
        marks["cutover"] = time.perf_counter() - t1 - sum(marks.values())
        s.close()
        t.close()
        window = phases.pause_window_s(state)
        delta_rows = sum(state["delta_export"]["rows"].values())
        return {
            "scale": n,
            "rows": counts,
            "bulk_s": round(bulk_s, 2),
            "pause_window_s": window,
            "window_steps_s": {k: round(v, 2) for k, v in marks.items()},
            "delta_rows": delta_rows,
            "window_over_bulk": round(window / bulk_s, 3) if bulk_s else None,
        }
    finally:
        pgcluster.drop_database(src)
        pgcluster.drop_database(tgt)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, action="append")
    ap.add_argument("--version", default="2.10.3")
    args = ap.parse_args(argv)
    import airflow_envs
    import boto3
    import pgcluster
    from moto.server import ThreadedMotoServer

    pgcluster.ensure()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server._server.server_address[1]
    import os

    os.environ.update(
        {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    template = pgcluster.create_database(prefix="bench_cw_tpl")
    results = []
    try:
        airflow_envs.migrate(args.version, pgcluster.url(template))
        print(f"{'task instances':>15} {'bulk s':>8} {'window s':>9} {'window/bulk':>12} {'delta rows':>11}  steps")
        for n in args.scale or [10_000, 100_000, 1_000_000]:
            r = one_scale(n, template, s3, args.version)
            results.append(r)
            print(
                f"{n:>15} {r['bulk_s']:>8} {r['pause_window_s']:>9} {r['window_over_bulk']:>12} "
                f"{r['delta_rows']:>11}  {r['window_steps_s']}",
                flush=True,
            )
        if len(results) > 1:
            a, b = results[0], results[-1]
            print(
                f"history x{b['scale'] / a['scale']:.0f}: bulk x{b['bulk_s'] / a['bulk_s']:.1f}, "
                f"pause window x{b['pause_window_s'] / a['pause_window_s']:.1f}"
            )
        print(json.dumps(results))
    finally:
        pgcluster.drop_database(template)
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
