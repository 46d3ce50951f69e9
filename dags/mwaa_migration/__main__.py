"""CLI: ``python -m mwaa_migration export|import`` with the Python of an Airflow venv.

Runs the same export/import as the DAGs, without Airflow's DAG machinery (the local
rehearsal, or an import from outside an Airflow 3 environment). S3 is reached with the
normal boto3 chain (AWS_ENDPOINT_URL for a moto server). Secret values are never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

SHORT_CUTOVER = (
    "bulk-export",
    "bulk-import",
    "freeze",
    "delta-export",
    "delta-import",
    "cutover",
    "resume-source",
    "pause-target",
)


def _conf(args, for_import: bool) -> dict:
    from mwaa_migration import conf as confmod

    try:
        raw = json.loads(args.conf_json) if args.conf_json else {}
    except ValueError as exc:
        raise confmod.ConfError(f"--conf-json is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise confmod.ConfError("--conf-json must be a JSON object")
    for key in ("bucket", "prefix"):
        v = getattr(args, key)
        if v is not None:
            if key in raw and raw[key] != v:
                raise confmod.ConfError(f"--{key} {v!r} differs from conf {key} {raw[key]!r}")
            raw[key] = v
    return confmod.validate(raw, for_import=for_import)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m mwaa_migration", description=__doc__.splitlines()[0])
    ap.add_argument(
        "command",
        choices=("export", "import") + SHORT_CUTOVER,
        help="export/import: one-shot; bulk-export .. cutover: the short cutover's phases "
        "(docs/deploy.md); resume-source: restore the source's recorded pause state; "
        "pause-target: pause every DAG of the target",
    )
    ap.add_argument("--sql-alchemy-conn", required=True, help="metadata DB URL (PostgreSQL)")
    ap.add_argument("--bucket")
    ap.add_argument("--prefix")
    ap.add_argument("--conf-json", default="{}")
    ap.add_argument(
        "--fernet-key",
        default=os.environ.get("AIRFLOW__CORE__FERNET_KEY"),
        help="Fernet key(s) of this database's environment (default: AIRFLOW__CORE__FERNET_KEY; "
        "prefer the variable, a flag is visible in the process list)",
    )
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import boto3

    from mwaa_migration import convert, dbio, export, importer, runtime

    conf = _conf(args, for_import=args.command != "export")
    version = runtime.airflow_version()
    runtime.check_db_access(in_task=False, version=version)
    fernet = convert.fernet_from_key(args.fernet_key)
    s3 = boto3.client("s3")
    conn = dbio.connect(args.sql_alchemy_conn)
    try:
        if args.command in SHORT_CUTOVER:
            from mwaa_migration import short_cli

            print(json.dumps(short_cli.run(args.command, conn, s3, conf, version=version, fernet=fernet)))
        elif args.command == "export":
            m = export.run_export(conn, s3, conf, airflow_version=version, fernet=fernet, progress=print)
            print(json.dumps({"tables": {t: e["rows"] for t, e in m["tables"].items()}}))
        else:
            r = importer.run_import(
                conn,
                s3,
                conf,
                target_airflow_version=version,
                fernet=fernet,
                logs_client_factory=lambda: boto3.client("logs"),
                progress=print,
            )
            print(json.dumps({"all_rows_accounted": r.get("all_rows_accounted"), "dry_run": r.get("dry_run", False)}))
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
