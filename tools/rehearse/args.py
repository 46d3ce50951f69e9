"""Argument parsing and validation of ``mwaa-upgrade rehearse``: the flags, then a check of
everything they point at (versions, a source database, an export folder) before anything is
started. The result is the plan :class:`tools.rehearse.orchestrate.Rehearsal` runs."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

from mwaa_common import versions as V

from . import checks
from .checks import UsageError

DEFAULT_SOURCE, DEFAULT_TARGET = "2.10.3", "2.11.0"
DEFAULT_ROWS = 1000
DEFAULT_REPORT = "reports/rehearsal.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    supported = ", ".join(checks.supported_versions())
    ap = argparse.ArgumentParser(
        prog="mwaa-upgrade rehearse",
        description="Rehearse an MWAA metadata migration locally (real Airflow + PostgreSQL, "
        "S3/Logs on moto) and verify that every exported row is accounted for.",
        epilog=f"supported versions: {supported}",
    )
    ap.add_argument(
        "--source-version",
        help=f"Airflow version of the source (default {DEFAULT_SOURCE}; with --from-export: the manifest's)",
    )
    ap.add_argument(
        "--target-version", default=DEFAULT_TARGET, help=f"Airflow version of the target (default {DEFAULT_TARGET})"
    )
    src = ap.add_mutually_exclusive_group()
    src.add_argument(
        "--source-db", metavar="URL", help="existing source metadata DB (postgresql+psycopg2://USER@HOST:PORT/DB)"
    )
    src.add_argument(
        "--from-export",
        metavar="PATH",
        help="folder downloaded from s3://BUCKET/PREFIX/MIGRATION_ID/ (manifest.json + tables/)",
    )
    ap.add_argument(
        "--source-fernet-key",
        metavar="KEY",
        help="Fernet key of the --source-db environment (default: $AIRFLOW__CORE__FERNET_KEY)",
    )
    ap.add_argument("--rows", type=int, metavar="N", help=f"size of the generated history (default {DEFAULT_ROWS})")
    ap.add_argument(
        "--keep",
        action="store_true",
        help="keep the databases (print their URLs and the target's Fernet key) "
        "and save the export under .cache/rehearse/RUN/export",
    )
    ap.add_argument(
        "--report",
        metavar="PATH",
        default=DEFAULT_REPORT,
        help=f"where to write the JSON report (default {DEFAULT_REPORT})",
    )
    return ap.parse_args(argv)


def validate(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> dict:
    """Check the flags (and what they point at) before anything is started.

    Returns the plan: mode, versions, rows, source key, manifest (for --from-export).
    Raises UsageError with one clear message.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    plan: dict = {"keep": args.keep, "report": args.report, "target": args.target_version}
    if args.rows is not None and (args.source_db or args.from_export):
        raise UsageError(
            f"--rows {args.rows}: only for a generated history; it cannot be "
            f"combined with {'--source-db' if args.source_db else '--from-export'}"
        )
    if args.rows is not None and not 1 <= args.rows <= 10_000_000:
        raise UsageError(f"--rows {args.rows}: must be between 1 and 10000000")
    key = args.source_fernet_key
    if key is not None and not args.source_db:
        raise UsageError(
            "--source-fernet-key: only used with --source-db (a generated source "
            "gets its own key; an export folder holds decrypted values)"
        )
    if args.from_export:
        manifest = checks.check_export_folder(args.from_export)
        msrc = manifest["source_airflow_version"]
        if args.source_version and args.source_version != msrc:
            raise UsageError(
                f"--source-version {args.source_version}: the export in {args.from_export} was made by Airflow {msrc}"
            )
        plan.update(
            mode="from-export", source=msrc, manifest=manifest, export_dir=str(Path(args.from_export).resolve())
        )
        checks.check_version("--target-version", args.target_version)
        try:
            checks.check_pair(msrc, args.target_version)
        except UsageError as exc:
            raise UsageError(
                f"--from-export {args.from_export}: the export was made by Airflow {msrc} ({exc})"
            ) from None
        return plan
    source = args.source_version or DEFAULT_SOURCE
    checks.check_pair(source, args.target_version)
    plan["source"] = source
    if args.source_db:
        key = key if key is not None else env.get("AIRFLOW__CORE__FERNET_KEY") or None
        conn = checks.connect(args.source_db)
        try:
            checks.check_revision("--source-version", source, checks.alembic_revision(conn), url=args.source_db)
            enc = checks.encrypted_counts(conn)
            if key:
                checks.check_key_decrypts(conn, key)
            elif enc["variable"] or enc["connection"]:
                raise UsageError(
                    f"--source-db {checks.mask_url(args.source_db)} holds {enc['variable']} "
                    f"encrypted variables and {enc['connection']} encrypted connections: pass "
                    f"the source environment's key with --source-fernet-key or "
                    f"AIRFLOW__CORE__FERNET_KEY"
                )
        finally:
            conn.close()
        plan.update(mode="source-db", source_db=args.source_db, source_key=key or checks.generate_fernet_key())
    else:
        if V.parse(source)[0] >= 3:
            raise UsageError(
                f"--source-version {source}: the generated history (tools/dev/seed.py) "
                f"is Airflow 2.x only; for a 3.x source use --source-db or "
                f"--from-export"
            )
        plan.update(mode="generated", rows=args.rows or DEFAULT_ROWS, source_key=checks.generate_fernet_key())
    return plan
