"""The upgrade pipeline of one ``config/pipelines/<name>.yaml``: ``cdk synth -c pipeline=NAME``.

Each configured stage becomes a ``cdk.Stage`` (explicit env from its stage file) holding the
same stacks ``cdk synth -c stage=NAME`` builds (``build_stage``), followed by a
post-deployment check of that stage's target environment and migration report.

The report is encrypted with the stage's migration key, which the storage stack creates
inside the stage: the pipeline stack cannot name it (a Stage nested in the pipeline cannot
export tokens to it, and the key id is random). The check role therefore gets ``kms:Decrypt``
on the account's keys **only through S3** (``kms:ViaService``), while its ``s3:GetObject`` is
limited to the one report object: S3 asks KMS to decrypt only what the caller may read, so the
role can decrypt nothing but that report. Acknowledged on that one policy with this reason.
"""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from constructs import Construct

from stacks import StageStacks, build_stage
from stacks.pipeline_config import PipelineConfig, PipelineStage
from stacks.pipeline_stack import PipelineStack, PipelineStageSpec


def synth_commands(name: str) -> tuple[str, ...]:
    """The synth step: pinned installs, the test suite, an offline synth of this pipeline's app
    (cdk-nag runs inside it), cfn-lint of every template with the repository's .cfnlintrc.yaml."""
    return (
        "make venv node",
        "make test",
        f"node_modules/.bin/cdk synth --no-lookups --no-notices -c pipeline={name}",
        ".venv/bin/cfn-lint -- 'cdk.out/**/*.template.json'",
    )


def _report_key_arn(stage: PipelineStage) -> str:
    cfg = stage.config
    return f"arn:{cdk.Aws.PARTITION}:kms:{cfg.region}:{cfg.account}:key/*"


def stage_spec(stage: PipelineStage) -> PipelineStageSpec:
    """What the post-deployment check of ``stage`` inspects (target environment, report)."""
    cfg = stage.config
    return PipelineStageSpec(
        name=stage.stage,
        protected=stage.protected,
        target_environment=cfg.target.environment.name,
        report_bucket=cfg.migration_bucket_name,
        report_key=stage.report_key,
        report_kms_key_arn=_report_key_arn(stage),
        account=cfg.account,
        region=cfg.region,
    )


class UpgradePipeline:
    """Builds the pipeline stack into ``app``; ``stages`` maps stage name -> its StageStacks."""

    def __init__(self, app: cdk.App, pcfg: PipelineConfig) -> None:
        self.config = pcfg
        self.stages: dict[str, StageStacks] = {}
        by_name: Mapping[str, PipelineStage] = {s.stage: s for s in pcfg.stages}

        def stage_factory(scope: Construct, construct_id: str, stage_name: str) -> cdk.Stage:
            cfg = by_name[stage_name].config
            stage = cdk.Stage(scope, construct_id, env=cdk.Environment(account=cfg.account, region=cfg.region))
            self.stages[stage_name] = build_stage(stage, cfg)
            return stage

        self.stack = PipelineStack(
            app,
            pcfg.stack_name,
            env=cdk.Environment(account=pcfg.account, region=pcfg.region),
            description=f"mwaa-upgrade pipeline {pcfg.name}: {pcfg.repository}@{pcfg.branch} -> "
            + ", ".join(s.stage + (" (approval)" if s.protected else "") for s in pcfg.stages),
            connection_arn=pcfg.connection_arn,
            repository=pcfg.repository,
            branch=pcfg.branch,
            stages=[stage_spec(s) for s in pcfg.stages],
            stage_factory=stage_factory,
            synth_commands=synth_commands(pcfg.name),
        )
        for s in pcfg.stages:
            self._acknowledge_report_key(s)

    def _acknowledge_report_key(self, stage: PipelineStage) -> None:
        check = self.stack.checks[stage.stage]
        policy = check.project.role.node.try_find_child("DefaultPolicy")
        cfg = stage.config
        cdk.Validations.of(policy).acknowledge(
            cdk.Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:kms:{cfg.region}:{cfg.account}:key/*]",
                reason=(
                    f"kms:Decrypt only via s3.{cfg.region}.amazonaws.com (kms:ViaService) and s3:GetObject "
                    f"only on {cfg.migration_bucket_name}/{stage.report_key}: the migration key is created "
                    f"inside stage {stage.stage} and its id cannot be known by the pipeline stack"
                ),
            )
        )
