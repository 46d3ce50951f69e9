#!/usr/bin/env python3
"""mwaa-upgrade CDK app.

- ``cdk synth -c stage=NAME`` (default dev): the stacks of config/NAME.yaml.
- ``cdk synth -c pipeline=NAME``: the upgrade pipeline of config/pipelines/NAME.yaml, whose
  stages hold the stacks of each configured stage (stacks/pipeline_app.py).
- ``-c config_dir=DIR``: read the stage (and pipeline) files from DIR instead of config/.

Configuration is loaded and validated before any construct exists; a bad file stops here
with one message naming the file, field, value and what is allowed. cdk-nag (AwsSolutions)
runs as a validation plugin on every synth; registered on the App, it also covers the stacks
inside the pipeline's stages.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# before aws_cdk starts jsii: no banner about Node 20 being past its end of life
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")  # Node 20 is past end of life
sys.path.insert(0, str(ROOT / "lambda"))  # import mwaa_common.versions (contracts.md, section 1)
sys.path.insert(0, str(ROOT))

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from stacks import build_stage  # noqa: E402
from stacks.config import ConfigError, load_stage  # noqa: E402


def build(app: cdk.App) -> None:
    """Everything the context asks for, into ``app`` (raises ConfigError on bad config)."""
    pipeline = app.node.try_get_context("pipeline")
    config_dir = app.node.try_get_context("config_dir")
    config_dir = Path(config_dir) if config_dir else None
    if pipeline:
        from stacks.pipeline_app import UpgradePipeline
        from stacks.pipeline_config import load_pipeline

        UpgradePipeline(app, load_pipeline(str(pipeline), config_dir))
    else:
        build_stage(app, load_stage(str(app.node.try_get_context("stage") or "dev"), config_dir))
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def main() -> None:
    app = cdk.App()
    try:
        build(app)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    app.synth()


if __name__ == "__main__":
    main()
