"""CDK Pipelines stack: pipeline-driven upgrades.

Source: a CodeStar/CodeConnections connection to the repository branch. Synth: installs from
the pinned files (``make venv node``), runs the test suite, synthesizes with ``--no-lookups``
(the app's cdk-nag plugin fails synthesis on an unacknowledged finding) and lints every
template with cfn-lint. Then one pipeline stage per configured stage, in order: a manual
approval first when the stage is protected, the stage's stacks (built by the caller's
``stage_factory``), and a post-deployment check (``tools/post_deploy_check.py``): the target
MWAA environment is AVAILABLE and the migration report accounts for every row.

Upgrading is then: change the target Airflow version in ``config/<stage>.yaml``, push.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import pipelines
from constructs import Construct

from mwaa_common.names import ENV_NAME_RE, bucket_name_problem

StageFactory = Callable[[Construct, str, str], cdk.Stage]

CONNECTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:\d{12}:connection/[0-9a-f-]{36}$"
)
REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
STAGE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
MWAA_NAME = ENV_NAME_RE  # name rules: lambda/mwaa_common/names.py

DEFAULT_SYNTH_COMMANDS: tuple[str, ...] = (
    "make venv node",
    "make test",
    "node_modules/.bin/cdk synth --no-lookups",
    # W3005 (redundant DependsOn) is noise on CDK-generated roles.
    ".venv/bin/cfn-lint --ignore-checks W3005 -- 'cdk.out/**/*.template.json'",
)

# CodeBuild image and runtimes (the ones the pinned toolchain is tested with).
BUILD_IMAGE = codebuild.LinuxBuildImage.STANDARD_7_0
RUNTIME_VERSIONS = {"python": "3.11", "nodejs": "20"}


def _invalid(field: str, value: object, allowed: str) -> ValueError:
    return ValueError(f"{field}: {value!r} is not valid; allowed: {allowed}")


@dataclass(frozen=True, kw_only=True)
class PipelineStageSpec:
    """One deployment stage of the pipeline, in pipeline order.

    name: stage name (``config/<name>.yaml``); protected: deploy only after a manual approval;
    target_environment: MWAA environment the post-deployment check inspects; report_bucket and
    report_key: where ``db_import`` writes report.json (``{prefix}{migration_id}/report.json``);
    report_kms_key_arn: the bucket's customer KMS key, if any (the check may then decrypt
    through S3 with exactly that key); account/region: where that environment lives (default:
    the pipeline's own; the check runs with the pipeline's CodeBuild role, so it must be the
    same account).
    """

    name: str
    protected: bool = False
    target_environment: str
    report_bucket: str
    report_key: str
    report_kms_key_arn: str | None = None
    account: str | None = None
    region: str | None = None

    def __post_init__(self) -> None:
        if not STAGE_NAME.match(self.name or ""):
            raise _invalid("stage.name", self.name, "lowercase letters, digits and '-', starting with a letter")
        if not MWAA_NAME.match(self.target_environment or ""):
            raise _invalid(
                f"stage {self.name}: target_environment",
                self.target_environment,
                "an MWAA name: 1-80 chars, ^[a-zA-Z][0-9a-zA-Z-_]*$",
            )
        if bucket_name_problem(self.report_bucket or ""):
            raise _invalid(f"stage {self.name}: report_bucket", self.report_bucket, "an S3 bucket name")
        if not (self.report_key or "").endswith("/report.json") or self.report_key.startswith("/"):
            raise _invalid(
                f"stage {self.name}: report_key",
                self.report_key,
                "{prefix}{migration_id}/report.json (docs/contracts.md §3)",
            )


class PipelineStack(cdk.Stack):
    """The upgrade pipeline. All props are keyword-only; defaults are the secure ones."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        connection_arn: str,
        repository: str,
        branch: str,
        stages: Sequence[PipelineStageSpec],
        stage_factory: StageFactory,
        synth_commands: Sequence[str] = DEFAULT_SYNTH_COMMANDS,
        check_wait_seconds: int = 1800,
        self_mutation: bool = True,
        **kwargs,
    ) -> None:
        if not CONNECTION_ARN.match(connection_arn or ""):
            raise _invalid(
                "connection_arn",
                connection_arn,
                "arn:aws:codestar-connections|codeconnections:<region>:<account>:connection/<uuid>",
            )
        if not REPOSITORY.match(repository or ""):
            raise _invalid("repository", repository, "owner/name")
        if not branch or any(c in branch for c in " ~^:?*[\\"):
            raise _invalid("branch", branch, "a git branch name")
        if not stages:
            raise _invalid("stages", stages, "at least one PipelineStageSpec")
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise _invalid("stages", names, "unique stage names")
        if not synth_commands:
            raise _invalid("synth_commands", synth_commands, "at least one command")
        if not 0 <= check_wait_seconds <= 7200:
            raise _invalid("check_wait_seconds", check_wait_seconds, "0..7200")
        super().__init__(scope, construct_id, **kwargs)
        # Server access logs delivered through a bucket policy, not the legacy log-delivery ACL
        # (cfn-lint W3045), whatever the app's cdk.json says.
        self.node.set_context("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", True)

        self.artifact_key = kms.Key(
            self,
            "ArtifactKey",
            enable_key_rotation=True,
            description="Encrypts the upgrade pipeline's artifacts",
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.access_log_bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # server access logs accept SSE-S3 only
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        cdk.Validations.of(self.access_log_bucket).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-S1",
                reason="This is the access-log bucket of the artifact bucket; logging it into itself would loop",
            )
        )
        self.artifact_bucket = s3.Bucket(
            self,
            "Artifacts",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.artifact_key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_log_bucket,
            server_access_logs_prefix="artifacts/",
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )

        self.source = pipelines.CodePipelineSource.connection(
            repository, branch, connection_arn=connection_arn, trigger_on_push=True
        )
        self.synth_step = pipelines.CodeBuildStep(
            "Synth",
            input=self.source,
            install_commands=[],
            commands=list(synth_commands),
            primary_output_directory="cdk.out",
            partial_build_spec=codebuild.BuildSpec.from_object(
                {"phases": {"install": {"runtime-versions": RUNTIME_VERSIONS}}}
            ),
            env={
                "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
                "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
                "CDK_DISABLE_VERSION_CHECK": "1",
            },
        )
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            synth=self.synth_step,
            artifact_bucket=self.artifact_bucket,
            self_mutation=self_mutation,
            docker_enabled_for_synth=False,
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(build_image=BUILD_IMAGE, privileged=False)
            ),
        )

        self.stages: list[cdk.Stage] = []
        self.approvals: dict[str, pipelines.ManualApprovalStep] = {}
        self.checks: dict[str, pipelines.CodeBuildStep] = {}
        for spec in stages:
            stage = stage_factory(self, spec.name, spec.name)
            if not isinstance(stage, cdk.Stage):
                raise _invalid(f"stage_factory({spec.name!r})", stage, "a cdk.Stage")
            # cdk-nag: register AwsSolutionsChecks on the App (app.py). App-level validation
            # plugins reach these Stages; a plugin registered on a Stage nested in this Stack is
            # ignored by CDK 2.275 (tests/review/test_pipeline.py proves both).
            pre = []
            if spec.protected:
                approval = pipelines.ManualApprovalStep(
                    f"Approve-{spec.name}",
                    comment=(
                        f"Deploy to protected stage {spec.name}? Read the review (make review) "
                        f"and the previous stage's post-deployment check first."
                    ),
                )
                self.approvals[spec.name] = approval
                pre.append(approval)
            check = self._check_step(spec, check_wait_seconds)
            self.checks[spec.name] = check
            self.pipeline.add_stage(stage, pre=pre, post=[check])
            self.stages.append(stage)

        self.pipeline.build_pipeline()
        self._acknowledge_generated()
        # cfn-lint 1.58 E3703 rejects the Fn::Join that CDK Pipelines writes for every
        # CloudFormation action's RoleArn (CloudFormation resolves it; every CDK pipeline has it).
        # Ignored on this one resource only; the synth step lints everything else in full.
        cfn_pipeline = self.pipeline.pipeline.node.default_child
        cfn_pipeline.add_metadata("cfn-lint", {"config": {"ignore_checks": ["E3703"]}})

    def _check_step(self, spec: PipelineStageSpec, wait_seconds: int) -> pipelines.CodeBuildStep:
        account = spec.account or self.account
        region = spec.region or self.region
        env_arn = f"arn:{self.partition}:airflow:{region}:{account}:environment/{spec.target_environment}"
        report_arn = f"arn:{self.partition}:s3:::{spec.report_bucket}/{spec.report_key}"
        statements = [
            iam.PolicyStatement(actions=["airflow:GetEnvironment"], resources=[env_arn]),
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[report_arn]),
        ]
        if spec.report_kms_key_arn:
            statements.append(
                iam.PolicyStatement(
                    actions=["kms:Decrypt"],
                    resources=[spec.report_kms_key_arn],
                    conditions={"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
                )
            )
        return pipelines.CodeBuildStep(
            f"Check-{spec.name}",
            input=self.source,
            commands=[
                "make venv",
                '.venv/bin/python tools/post_deploy_check.py --environment "$TARGET_ENVIRONMENT"'
                ' --bucket "$REPORT_BUCKET" --key "$REPORT_KEY" --region "$TARGET_REGION"'
                ' --wait-seconds "$CHECK_WAIT_SECONDS"',
            ],
            env={
                "TARGET_ENVIRONMENT": spec.target_environment,
                "REPORT_BUCKET": spec.report_bucket,
                "REPORT_KEY": spec.report_key,
                "TARGET_REGION": region,
                "CHECK_WAIT_SECONDS": str(wait_seconds),
            },
            partial_build_spec=codebuild.BuildSpec.from_object(
                {"phases": {"install": {"runtime-versions": {"python": RUNTIME_VERSIONS["python"]}}}}
            ),
            role_policy_statements=statements,
        )

    def _acknowledge_generated(self) -> None:
        """Acknowledge, on each generated policy, exactly the AwsSolutions-IAM5 findings CDK
        Pipelines causes and that cannot be narrowed further; each reason says why. A finding
        not listed here (e.g. from a new CDK version) still fails synthesis."""
        region = "<AWS::Region>" if cdk.Token.is_unresolved(self.region) else self.region
        account = "<AWS::AccountId>" if cdk.Token.is_unresolved(self.account) else self.account
        # A literal with an explicit env and @aws-cdk/core:enablePartitionLiterals (cdk.json).
        partition = "<AWS::Partition>" if cdk.Token.is_unresolved(self.partition) else self.partition
        where = _Where(
            partition=partition,
            region=region,
            account=account,
            bucket_id=self.get_logical_id(self.artifact_bucket.node.default_child),
        )
        project_of_policy: dict[str, str] = {}
        for project in [c for c in self.pipeline.node.find_all() if isinstance(c, codebuild.Project)]:
            policy = project.role.node.try_find_child("DefaultPolicy") if project.role else None
            if policy is not None:
                project_of_policy[policy.node.path] = self.get_logical_id(project.node.default_child)
        for policy in [c for c in self.pipeline.node.find_all() if isinstance(c, iam.Policy)]:
            statements = self.resolve(policy.document.to_json()).get("Statement", [])
            actions = {a for st in statements for a in _as_list(st["Action"])}
            resources = [r for st in statements for r in _as_list(st["Resource"])]
            found = {
                **_artifact_findings(where, actions, resources),
                **_project_findings(where, project_of_policy.get(policy.node.path)),
                **_shared_role_findings(where, actions, resources),
            }
            for finding, reason in found.items():
                cdk.Validations.of(policy).acknowledge(
                    cdk.Acknowledgment(id=f"AwsSolutions-IAM5[{finding}]", reason=f"CDK Pipelines: {reason}")
                )


@dataclass(frozen=True)
class _Where:
    """How cdk-nag spells this pipeline stack's partition, region, account and artifact bucket."""

    partition: str
    region: str
    account: str
    bucket_id: str


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


# The artifact grants CDK Pipelines gives every role (finding -> reason).
_ARTIFACT_ACTIONS = {
    "s3:GetObject*": "read pipeline artifacts (grantRead of the pipeline's own artifact bucket)",
    "s3:GetBucket*": "read pipeline artifacts (grantRead of the pipeline's own artifact bucket)",
    "s3:List*": "list pipeline artifacts (grantRead of the pipeline's own artifact bucket)",
    "s3:DeleteObject*": "stages overwrite their own artifacts (grantReadWrite of the artifact bucket)",
    "s3:Abort*": "multipart uploads of artifacts (grantReadWrite of the artifact bucket)",
    "kms:ReEncrypt*": "artifact key only (resource is the pipeline's ArtifactKey ARN)",
    "kms:GenerateDataKey*": "artifact key only (resource is the pipeline's ArtifactKey ARN)",
}


def _artifact_findings(where: _Where, actions: set, resources: list) -> dict[str, str]:
    found = {f"Action::{a}": reason for a, reason in _ARTIFACT_ACTIONS.items() if a in actions}
    if {"Fn::Join": ["", [{"Fn::GetAtt": [where.bucket_id, "Arn"]}, "/*"]]} in resources:
        found[f"Resource::<{where.bucket_id}.Arn>/*"] = "objects of the pipeline's own artifact bucket"
    return found


def _project_findings(where: _Where, project_id: str | None) -> dict[str, str]:
    if not project_id:
        return {}
    arn = f"arn:{where.partition}:{{}}:{where.region}:{where.account}:"
    return {
        f"Resource::{arn.format('logs')}log-group:/aws/codebuild/<{project_id}>:*": (
            "log streams of this CodeBuild project's own log group"
        ),
        f"Resource::{arn.format('codebuild')}report-group/<{project_id}>-*": (
            "test report groups of this CodeBuild project (CodeBuild names them <project>-<name>)"
        ),
    }


def _shared_role_findings(where: _Where, actions: set, resources: list) -> dict[str, str]:
    """The asset-publishing role (stages with file assets, e.g. Lambda code) is shared by the
    asset projects, which CDK Pipelines creates after it: it names them by prefix. The
    self-mutation role assumes the bootstrap roles."""
    found: dict[str, str] = {}
    logs_any = f"arn:{where.partition}:logs:{where.region}:{where.account}:log-group:/aws/codebuild/*"
    if logs_any in resources:
        found[f"Resource::{logs_any}"] = (
            "asset publishing: the shared asset role writes the logs of "
            "the asset CodeBuild projects (log groups /aws/codebuild/...)"
        )
    reports_any = f"arn:{where.partition}:codebuild:{where.region}:{where.account}:report-group/*"
    if reports_any in resources:
        found[f"Resource::{reports_any}"] = (
            "asset publishing: report groups of the asset CodeBuild "
            "projects (none are written; granted by CDK Pipelines)"
        )
    if f"arn:*:iam::{where.account}:role/*" in resources:
        found[f"Resource::arn:*:iam::{where.account}:role/*"] = (
            "self-mutation assumes the CDK bootstrap roles; limited by the condition "
            "iam:ResourceTag/aws-cdk:bootstrap-role (deploy, file/image publishing)"
        )
    if "*" in resources and actions & {"cloudformation:DescribeStacks", "s3:ListBucket"}:
        found["Resource::*"] = (
            "self-mutation: cloudformation:DescribeStacks and s3:ListBucket "
            "take no narrower resource for the CDK CLI's bootstrap checks"
        )
    elif "*" in resources and actions & {"codebuild:StartBuild"} and logs_any in resources:
        found["Resource::*"] = (
            "asset publishing: codebuild:BatchGetBuilds/StartBuild/StopBuild "
            "of the asset projects, which are created after this shared role"
        )
    return found
