"""Task callables of the db_export / db_import DAGs (kept out of the DAG files)."""

from __future__ import annotations

import datetime
import logging

log = logging.getLogger("mwaa_migration")

# What db_export and db_import share: started only by a trigger with a run conf, one run at a
# time, unpaused on arrival (a triggered run must start), no retries (a failed step is re-run
# deliberately, with a new run id).
DAG_ARGS = dict(
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,
    tags=["mwaa-migration"],
    default_args={"retries": 0},
)


def python_operator():
    """This Airflow's PythonOperator (the standard provider's from 3.0 on)."""
    try:
        from airflow.providers.standard.operators.python import PythonOperator
    except ImportError:  # Airflow 2.x
        from airflow.operators.python import PythonOperator
    return PythonOperator


def _conf(context, for_import):
    from mwaa_migration import conf

    return conf.validate(context["dag_run"].conf or {}, for_import=for_import)


def _guard():
    from mwaa_migration import runtime

    runtime.check_db_access(in_task=True, version=runtime.airflow_version())


def export_preflight(**context):
    _guard()
    import boto3

    from mwaa_migration import export

    c = _conf(context, False)
    export.preflight(boto3.client("s3"), c)
    log.info("conf valid, bucket writable: s3://%s/%s%s/", c["bucket"], c["prefix"], c["migration_id"])


def export_tables(**context):
    _guard()
    import boto3

    from mwaa_migration import convert, dbio, export, runtime

    c = _conf(context, False)
    if c["phase"] != "one_shot":
        return _short_cutover_source(c)
    with dbio.airflow_connection() as conn:
        m = export.run_export(
            conn,
            boto3.client("s3"),
            c,
            airflow_version=runtime.airflow_version(),
            fernet=convert.airflow_fernet(),
            progress=log.info,
        )
    return {t: e["rows"] for t, e in m["tables"].items()}


def _short_cutover_source(c):
    """The short cutover's source steps (docs/deploy.md): bulk, freeze_delta, resume_source."""
    import boto3

    from mwaa_migration import convert, dbio, flow, runtime

    s3 = boto3.client("s3")
    version = runtime.airflow_version()
    with dbio.airflow_connection() as conn:
        if c["phase"] == "bulk":
            st = flow.bulk_export(
                conn, s3, c, airflow_version=version, fernet=convert.airflow_fernet(), progress=log.info
            )
        elif c["phase"] == "freeze_delta":
            flow.freeze_source(conn, s3, c, progress=log.info)
            st = flow.delta_export(
                conn, s3, c, airflow_version=version, fernet=convert.airflow_fernet(), progress=log.info
            )
        else:
            return flow.resume_source(conn, s3, c, progress=log.info)
    return {"completed": st["completed"], "drain": st.get("drain")}


def _short_cutover_target(c, step):
    """The short cutover's target steps: bulk (import), delta (import), cutover."""
    import boto3

    from mwaa_migration import convert, dbio, flow, runtime

    s3 = boto3.client("s3")
    version = runtime.airflow_version()
    with dbio.airflow_connection() as conn:
        if step == "bulk":
            st = flow.bulk_import(
                conn,
                s3,
                c,
                airflow_version=version,
                fernet=convert.airflow_fernet(),
                logs_client_factory=lambda: boto3.client("logs"),
                progress=log.info,
            )
        elif step == "delta":
            st = flow.delta_import(
                conn, s3, c, airflow_version=version, fernet=convert.airflow_fernet(), progress=log.info
            )
        else:
            st = flow.cutover(conn, s3, c, progress=log.info)
    return {"completed": st["completed"], "pause_window_s": st["timings"].get("pause_window_s")}


def import_preflight(**context):
    _guard()  # first: on Airflow 3 nothing else is attempted
    import boto3

    from mwaa_migration import importer

    c = _conf(context, True)
    m = importer.read_manifest(boto3.client("s3"), c)
    importer.verify_files(boto3.client("s3"), c, m, c["tables"], log.info)


def import_tables(**context):
    _guard()
    import boto3

    from mwaa_migration import convert, dbio, importer, runtime

    c = _conf(context, True)
    if c["phase"] in ("bulk", "delta"):
        return _short_cutover_target(c, c["phase"])
    if c["phase"] == "cutover":
        log.info("phase cutover: nothing to import (the delta was imported by the delta step)")
        return None
    with dbio.airflow_connection() as conn:
        r = importer.run_import(
            conn,
            boto3.client("s3"),
            c,
            target_airflow_version=runtime.airflow_version(),
            fernet=convert.airflow_fernet(),
            logs_client_factory=lambda: boto3.client("logs"),
            progress=log.info,
        )
    return {"all_rows_accounted": r.get("all_rows_accounted"), "finished_at": r.get("finished_at")}


def cutover(**context):
    _guard()
    c = _conf(context, True)
    if c["phase"] == "cutover":
        return _short_cutover_target(c, "cutover")
    if c["phase"] != "one_shot":
        log.info("phase %s: the cutover is its own step (phase cutover)", c["phase"])
        return None
    if not c["cutover"] or c["dry_run"]:
        log.info("cutover not requested (conf cutover=false or dry_run): nothing unpaused")
        return None
    import boto3

    from mwaa_migration import cutover as cut
    from mwaa_migration import dbio, importer

    m = importer.read_manifest(boto3.client("s3"), c)
    ti = context["ti"]
    done = ti.xcom_pull(task_ids="import_tables") or {}
    imported_at = (
        datetime.datetime.fromisoformat(done["finished_at"])
        if done.get("finished_at")
        else datetime.datetime.now(datetime.timezone.utc)
    )
    with dbio.airflow_connection() as conn:
        return cut.run_cutover(conn, m["active_dags"], imported_at, progress=log.info)
