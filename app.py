#!/usr/bin/env python3
"""mwaa-upgrade CDK app: ``cdk synth -c stage=NAME`` (default dev) builds config/NAME.yaml.

The stage file is loaded and validated before any construct exists; a bad file stops here
with one message naming the file, field, value and what is allowed. cdk-nag (AwsSolutions)
runs as a validation plugin on every synth.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "lambda"))  # import mwaa_common.versions (contracts.md, section 1)
sys.path.insert(0, str(ROOT))

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from stacks import build_stage  # noqa: E402
from stacks.stage_config import ConfigError, load_stage  # noqa: E402


def main() -> None:
    app = cdk.App()
    stage = app.node.try_get_context("stage") or "dev"
    try:
        cfg = load_stage(str(stage))
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    build_stage(app, cfg)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()


if __name__ == "__main__":
    main()
