"""Review a clone before deploying it: print the planned CreateEnvironment request
(secret-bearing values redacted) and how it differs from the source.

Offline, from a saved ``aws mwaa get-environment --name SRC`` output::

    python -m tools.plan_clone --source-json src.json --overrides-json overrides.json

Live, with read-only credentials (airflow:GetEnvironment on the source only)::

    python -m tools.plan_clone --source-name orders-prod --region eu-west-1 --overrides-json overrides.json

With a stage's overrides, exactly as the migration stack passes them (values created at deploy
time are shown as ``<deploy-time: ...>``; the migration id is the stage's)::

    python -m tools.plan_clone --stage dev --source-json saved.json
    python -m tools.plan_clone --stage dev --source-name mwaa-dev-source --region eu-west-1

Exit status: 0 the plan passes every check, 2 it does not (the reason is printed),
1 bad usage or the source cannot be read. Nothing is ever created or changed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lambda"))
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))  # stacks/ and constructs_lib/ for --stage

from clone_env import planner  # noqa: E402

DEPLOY_TIME = "<deploy-time: {}>"


def overrides_from_stage(stage_config) -> dict:
    """The overrides the migration stack passes to CloneEnvironment for ``stage_config`` (a
    ``stacks.config.StageConfig``), as a plain dict (CreateEnvironment names; None =
    leave the parameter out).

    Built by the same functions the stack uses (``environment_settings`` ->
    ``create_environment_parameters`` -> ``clone_overrides``), so the two cannot drift. What
    only exists after deployment (the target's execution role, DAG bucket, security group,
    KMS key, and subnets the network stack creates) is a ``<deploy-time: ...>`` stand-in;
    every other value is the stage's literal one.
    """
    from constructs_lib.mwaa_environment import create_environment_parameters
    from stacks.environment_stacks import clone_overrides, environment_settings

    cfg = stage_config
    if cfg.target.creation != "clone":
        raise ValueError(
            f"{cfg.file}: target.creation is {cfg.target.creation!r}: the target is declared in "
            "CloudFormation, there is no clone to review"
        )
    env = cfg.target.environment
    target_stack, network_stack = f"{cfg.stack_prefix}-target", f"{cfg.stack_prefix}-network"
    if cfg.network.mode == "existing":
        subnets = list(cfg.network.private_subnet_ids)
    else:
        subnets = [DEPLOY_TIME.format(f"private subnet {i} of stack {network_stack}") for i in (1, 2)]
    planned = create_environment_parameters(
        **environment_settings(env),
        execution_role_arn=DEPLOY_TIME.format(f"execution role of stack {target_stack}"),
        source_bucket_arn=DEPLOY_TIME.format(f"DAG bucket of stack {target_stack}"),
        subnet_ids=subnets,
        security_group_ids=[DEPLOY_TIME.format(f"security group of stack {target_stack}")],
        kms_key_arn=DEPLOY_TIME.format(f"KMS key of stack {target_stack}") if env.customer_kms_key else None,
    )
    return clone_overrides(planned)


def _mwaa_client(region: str):
    import boto3

    return boto3.client("mwaa", region_name=region)


def _read_json(path: str, what: str) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: cannot read {what} {path}: {exc}") from None
    if not isinstance(data, dict):
        raise SystemExit(f"error: {what} {path} must hold a JSON object")
    return data


def load_source(args) -> dict:
    if args.source_json:
        data = _read_json(args.source_json, "--source-json")
        env = data.get("Environment", data)
    else:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            env = _mwaa_client(args.region).get_environment(Name=args.source_name)["Environment"]
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "ResourceNotFoundException":
                raise SystemExit(
                    f"error: source environment {args.source_name!r} not found in region {args.region}"
                ) from None
            raise SystemExit(
                f"error: GetEnvironment {args.source_name!r} in {args.region}: "
                f"{error.get('Code')}: {error.get('Message')}"
            ) from None
        except BotoCoreError as exc:
            raise SystemExit(f"error: GetEnvironment {args.source_name!r} in {args.region}: {exc}") from None
    if args.source_version:
        env = {**env, "AirflowVersion": args.source_version}
    return env


def render(source: dict, request: dict, out) -> None:
    print("# Planned CreateEnvironment request (secret-bearing values redacted)", file=out)
    print(json.dumps(planner.redact(request), indent=2, default=str), file=out)
    print("\n# Differences from the source", file=out)
    for entry in planner.diff(source, request):
        before = json.dumps(entry["source"], default=str) if entry["source"] is not None else "-"
        after = json.dumps(entry["planned"], default=str) if entry["planned"] is not None else "-"
        print(f"{entry['change']:<34} {entry['path']}: {before} -> {after}", file=out)
    warnings = planner.plan_warnings(source, request)
    if warnings:
        print("\n# Review notes", file=out)
        for warning in warnings:
            print(f"- {warning}", file=out)


def main(argv: Sequence[str] | None = None, out=None) -> int:
    out = out or sys.stdout
    parser = argparse.ArgumentParser(prog="mwaa-upgrade plan-clone", description=__doc__.splitlines()[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--source-json", help="saved GetEnvironment output ({'Environment': {...}} or the inner object)")
    src.add_argument("--source-name", help="read the source live with GetEnvironment (read-only credentials)")
    parser.add_argument("--region", help="region of --source-name")
    parser.add_argument("--source-version", help="override the source's AirflowVersion (e.g. a hand-made JSON)")
    parser.add_argument(
        "--overrides-json", help="CreateEnvironment overrides as a JSON object (null omits a parameter)"
    )
    parser.add_argument("--stage", help="take the overrides from this stage's config (stacks.config)")
    parser.add_argument("--target-name", help="target environment name (else Overrides.Name)")
    parser.add_argument("--migration-id", default="review", help="migration id for the tags (default: review)")
    args = parser.parse_args(argv)
    if args.source_name and not args.region:
        parser.error("--source-name needs --region")
    if bool(args.overrides_json) == bool(args.stage):
        parser.error("give exactly one of --overrides-json and --stage")

    if args.stage:
        # stacks import aws_cdk: no jsii banner about this machine's Node version
        os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
        os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
        from stacks.config import ConfigError, load_stage

        try:
            cfg = load_stage(args.stage)
            overrides = overrides_from_stage(cfg)
        except (ConfigError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if args.migration_id == parser.get_default("migration_id"):
            args.migration_id = cfg.migration.id
    else:
        overrides = _read_json(args.overrides_json, "--overrides-json")
    if args.target_name:
        overrides = {**overrides, "Name": args.target_name}

    try:
        source = load_source(args)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 1
    if "Status" in source:
        try:
            planner.check_source_status(source)
        except planner.PlanError as exc:
            print(f"plan refused: {exc}", file=out)
            return 2
    try:
        request = planner.plan_create(
            source, overrides, migration_tags=planner.migration_tags(source.get("Name", "source"), args.migration_id)
        )
    except planner.PlanError as exc:
        print(f"plan refused: {exc}", file=out)
        return 2
    render(source, request, out)
    try:
        path = planner.check_plan(request, source.get("AirflowVersion", ""))
    except planner.PlanError as exc:
        print(f"\n# Check\nREFUSED: {exc}", file=out)
        return 2
    print(
        f"\n# Check\nOK: Airflow {path.source} -> {path.target} into a new environment "
        f"(the version table's rule for this pair: {path.path}, {path.reason})",
        file=out,
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
