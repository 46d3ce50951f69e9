"""Post-deployment check of one pipeline stage: is the target MWAA environment AVAILABLE, and
does the migration report say every row was accounted for?

    python tools/post_deploy_check.py --environment NAME --bucket BUCKET --key KEY [--region R]
        [--wait-seconds N] [--poll-seconds S]

The report is ``{prefix}{migration_id}/report.json`` written by ``db_import`` (docs/contracts.md
§3). The check does not trust ``all_rows_accounted`` alone: it recomputes, for every table,
``exported == inserted + already_present + rejected``. Exit 0 when everything holds, 1 with one
line per problem otherwise, 2 on bad arguments. ``--wait-seconds`` polls GetEnvironment while
the environment is in a transitional state (MWAA has no waiter); failures never wait.

IAM: airflow:GetEnvironment on the environment, s3:GetObject on the report (and kms:Decrypt
through S3 when the bucket uses a customer key).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

# Statuses from which the environment may still become AVAILABLE without anyone acting.
TRANSITIONAL_STATUSES = frozenset({"CREATING", "UPDATING", "PENDING", "CREATING_SNAPSHOT", "MAINTENANCE"})


def environment_problems(environment: dict) -> list[str]:
    """Problems with a GetEnvironment ``Environment`` dict (empty when AVAILABLE)."""
    status = environment.get("Status", "?")
    if status == "AVAILABLE":
        return []
    message = f"environment {environment.get('Name', '?')} is {status}, not AVAILABLE"
    error = (environment.get("LastUpdate") or {}).get("Error") or {}
    if error:
        message += f" (last update error {error.get('ErrorCode', '?')}: {error.get('ErrorMessage', '')})"
    return [message]


def report_problems(report: Any, *, expected_migration_id: str | None = None) -> list[str]:
    """Problems with a report.json document (empty when every row is accounted for)."""
    if not isinstance(report, dict):
        return [f"report is not a JSON object: {type(report).__name__}"]
    problems = []
    if expected_migration_id is not None and report.get("migration_id") != expected_migration_id:
        problems.append(f"report migration_id {report.get('migration_id')!r} is not {expected_migration_id!r}")
    if report.get("all_rows_accounted") is not True:
        problems.append(f"all_rows_accounted is {report.get('all_rows_accounted')!r}, not true")
    tables = report.get("tables")
    if not isinstance(tables, dict) or not tables:
        problems.append("report lists no tables")
        return problems
    for name, row in sorted(tables.items()):
        try:
            exported = int(row["exported"])
            accounted = int(row["inserted"]) + int(row["already_present"]) + int(row["rejected"])
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"table {name}: counts missing or not numbers ({exc})")
            continue
        if exported != accounted:
            problems.append(f"table {name}: exported {exported} != inserted + already_present + rejected = {accounted}")
    return problems


def check(
    *,
    mwaa,
    s3,
    environment: str,
    bucket: str,
    key: str,
    expected_migration_id: str | None = None,
    wait_seconds: float = 0,
    poll_seconds: float = 30,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[str]:
    """Run the check with the given boto3 clients; returns the problems (empty = pass)."""
    deadline = clock() + wait_seconds
    while True:
        env = mwaa.get_environment(Name=environment)["Environment"]
        print(f"environment {environment}: {env.get('Status')} (Airflow {env.get('AirflowVersion', '?')})", flush=True)
        if env.get("Status") not in TRANSITIONAL_STATUSES or clock() >= deadline:
            break
        sleep(poll_seconds)
    problems = environment_problems(env)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return problems + [f"no migration report at s3://{bucket}/{key} (db_import has not finished?)"]
    try:
        report = json.loads(body)
    except ValueError as exc:
        return problems + [f"s3://{bucket}/{key} is not valid JSON: {exc}"]
    return problems + report_problems(report, expected_migration_id=expected_migration_id)


def main(argv: list[str] | None = None, *, session=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--environment", required=True, help="target MWAA environment name")
    parser.add_argument("--bucket", required=True, help="migration bucket name")
    parser.add_argument("--key", required=True, help="key of report.json in the bucket")
    parser.add_argument("--migration-id", help="fail unless the report is of this migration")
    parser.add_argument("--region", help="AWS region (default: the SDK's)")
    parser.add_argument(
        "--wait-seconds",
        type=float,
        default=0,
        help="keep polling while the environment is CREATING/UPDATING/... (default 0)",
    )
    parser.add_argument("--poll-seconds", type=float, default=30)
    args = parser.parse_args(argv)
    if not args.key.endswith("report.json"):
        parser.error(f"--key: {args.key!r} must name a report.json ({{prefix}}{{migration_id}}/report.json)")
    if args.wait_seconds < 0 or args.poll_seconds <= 0:
        parser.error("--wait-seconds must be >= 0 and --poll-seconds > 0")

    import boto3  # imported here so the pure functions above need no SDK

    session = session or boto3.session.Session(region_name=args.region)
    problems = check(
        mwaa=session.client("mwaa"),
        s3=session.client("s3"),
        environment=args.environment,
        bucket=args.bucket,
        key=args.key,
        expected_migration_id=args.migration_id,
        wait_seconds=args.wait_seconds,
        poll_seconds=args.poll_seconds,
    )
    if problems:
        for problem in problems:
            print(f"FAIL: {problem}", file=sys.stderr)
        return 1
    print(f"OK: {args.environment} is AVAILABLE and s3://{args.bucket}/{args.key} accounts for every row")
    return 0


if __name__ == "__main__":
    sys.exit(main())
