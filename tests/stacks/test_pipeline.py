"""The upgrade pipeline: stages in configured order, approvals only before protected stages,
a post-deployment check after each stage, secure nag-clean artifacts, and cdk-nag coverage of
the stacks inside pipeline stages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks

from stacks.pipeline_stack import PipelineStack, PipelineStageSpec
from tools.review.analysis import review
from tools.review.assembly import load_cloud_assembly

pytestmark = pytest.mark.synth

CONNECTION = "arn:aws:codestar-connections:eu-west-1:111111111111:connection/12345678-1234-1234-1234-123456789012"
ENV = cdk.Environment(account="111111111111", region="eu-west-1")


def _specs():
    return [
        PipelineStageSpec(
            name="dev",
            target_environment="mwaa-dev-target",
            report_bucket="mig-dev",
            report_key="data/migration/2.10.3_to_2.11.0/export/m1/report.json",
        ),
        PipelineStageSpec(
            name="staging",
            target_environment="mwaa-staging-target",
            report_bucket="mig-stg",
            report_key="data/migration/x/export/m1/report.json",
            protected=True,
        ),
        PipelineStageSpec(
            name="prod",
            target_environment="mwaa-prod-target",
            report_bucket="mig-prod",
            report_key="data/migration/x/export/m1/report.json",
            protected=True,
            report_kms_key_arn="arn:aws:kms:eu-west-1:111111111111:key/abcd",
        ),
    ]


def _factory(compliant: bool):
    """A stage holding one bucket: compliant (S1 acknowledged with a reason) or not."""

    def make(scope, construct_id, stage_name):
        stage = cdk.Stage(scope, construct_id, env=ENV)
        stack = cdk.Stack(stage, "Data")
        bucket = s3.Bucket(
            stack,
            "Bucket",
            enforce_ssl=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            versioned=True,
        )
        if compliant:
            cdk.Validations.of(bucket).acknowledge(
                cdk.Acknowledgment(
                    id="AwsSolutions-S1", reason=f"test bucket of stage {stage_name}, no access logs needed"
                )
            )
        return stage

    return make


def _build(outdir: Path, *, compliant: bool, nag_on: str = "app"):
    app = cdk.App(outdir=str(outdir))
    if nag_on == "app":
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    stack = PipelineStack(
        app,
        "Upgrade",
        env=ENV,
        connection_arn=CONNECTION,
        repository="acme/mwaa-upgrade",
        branch="main",
        stages=_specs(),
        stage_factory=_factory(compliant),
    )
    if nag_on == "stages":
        for stage in stack.stages:
            cdk.Validations.of(stage).add_plugins(AwsSolutionsChecks(stage))
    return app, stack


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("pipeline") / "cdk.out"
    app, stack = _build(outdir, compliant=True)
    app.synth()  # App-level cdk-nag: raises on any unacknowledged finding
    template = json.loads((outdir / "Upgrade.template.json").read_text())
    return outdir, stack, template


def _pipeline_stages(template):
    pipelines_ = [r for r in template["Resources"].values() if r["Type"] == "AWS::CodePipeline::Pipeline"]
    assert len(pipelines_) == 1
    return pipelines_[0]["Properties"]["Stages"]


def test_stages_follow_the_configured_order(synthesized):
    _, _, template = synthesized
    names = [s["Name"] for s in _pipeline_stages(template)]
    assert names[:3] == ["Source", "Build", "UpdatePipeline"]
    assert [n for n in names if n in ("dev", "staging", "prod")] == ["dev", "staging", "prod"]


def test_manual_approval_only_before_protected_stages(synthesized):
    _, stack, template = synthesized
    for stage in _pipeline_stages(template):
        approvals = [a for a in stage["Actions"] if a["ActionTypeId"]["Category"] == "Approval"]
        deploys = [a for a in stage["Actions"] if a["ActionTypeId"]["Provider"] == "CloudFormation"]
        if stage["Name"] in ("staging", "prod"):
            assert [a["Name"] for a in approvals] == [f"Approve-{stage['Name']}"]
            assert deploys and approvals[0]["RunOrder"] < min(a["RunOrder"] for a in deploys)
        else:
            assert approvals == []
    assert sorted(stack.approvals) == ["prod", "staging"]


def test_post_deployment_check_after_each_stage(synthesized):
    _, _, template = synthesized
    projects = {k: r for k, r in template["Resources"].items() if r["Type"] == "AWS::CodeBuild::Project"}
    for stage in _pipeline_stages(template):
        if stage["Name"] not in ("dev", "staging", "prod"):
            continue
        deploys = [a for a in stage["Actions"] if a["ActionTypeId"]["Provider"] == "CloudFormation"]
        checks = [a for a in stage["Actions"] if a["Name"] == f"Check-{stage['Name']}"]
        assert len(checks) == 1 and checks[0]["ActionTypeId"]["Provider"] == "CodeBuild"
        assert checks[0]["RunOrder"] > max(a["RunOrder"] for a in deploys)
        project = projects[checks[0]["Configuration"]["ProjectName"]["Ref"]]
        spec = project["Properties"]["Source"]["BuildSpec"]
        assert "tools/post_deploy_check.py" in spec
        env = {v["Name"]: v["Value"] for v in project["Properties"]["Environment"]["EnvironmentVariables"]}
        assert env["TARGET_ENVIRONMENT"] == f"mwaa-{stage['Name']}-target"
        assert env["REPORT_KEY"].endswith("/report.json")


def test_check_role_reads_only_its_environment_and_report(synthesized):
    outdir, _, _ = synthesized
    stacks, _ = load_cloud_assembly(outdir)
    result = review([s for s in stacks if s["name"] == "Upgrade"])
    granted: dict[str, set] = {}
    for row in result["iam"]["statements"]:
        if row["role"].startswith("Pipeline/Pipeline/prod/Check-prod/"):
            for action in row["actions"]:
                granted.setdefault(action, set()).update(row["resources"])
    assert granted["airflow:GetEnvironment"] == {
        "arn:${AWS::Partition}:airflow:eu-west-1:111111111111:environment/mwaa-prod-target"
    }
    assert "arn:${AWS::Partition}:s3:::mig-prod/data/migration/x/export/m1/report.json" in granted["s3:GetObject"]
    assert granted["kms:Decrypt"] >= {"arn:aws:kms:eu-west-1:111111111111:key/abcd"}
    # nothing of another stage's environment or bucket
    assert not any("dev" in r or "staging" in r for res in granted.values() for r in res)


def test_synth_step_installs_pinned_tests_synthesizes_offline_and_lints(synthesized):
    _, _, template = synthesized
    specs = [
        r["Properties"]["Source"]["BuildSpec"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CodeBuild::Project"
    ]
    synth = [s for s in specs if "cdk synth" in s]
    assert len(synth) == 1
    commands = json.loads(synth[0])["phases"]["build"]["commands"]
    assert commands[:2] == ["make venv node", "make test"]
    assert any("synth --no-lookups" in c for c in commands)
    assert any("cfn-lint" in c and "cdk.out/**/*.template.json" in c for c in commands)


def test_artifact_buckets_are_secure(synthesized):
    outdir, _, _ = synthesized
    stacks, _ = load_cloud_assembly(outdir)
    result = review([s for s in stacks if s["name"] == "Upgrade"])
    buckets = {b["bucket"]: b for b in result["buckets"]}
    assert set(buckets) == {"AccessLogs", "Artifacts"}
    assert buckets["Artifacts"]["encryption"].startswith("aws:kms ${ArtifactKey")
    assert all(b["problems"] == [] for b in buckets.values())
    assert [f for f in result["flags"] if f["category"] == "bucket"] == []
    # every acknowledgement carries a reason a reviewer can check; the IAM5 ones are ours
    assert [f for f in result["flags"] if f["category"] == "nag"] == []
    iam5 = [a for a in result["acknowledgements"] if a["rule"].startswith("AwsSolutions-IAM5")]
    assert iam5 and all(a["reason"].startswith("CDK Pipelines: ") for a in iam5)
    assert result["lint_ignores"] == [{"stack": "Upgrade", "resource": "Pipeline/Pipeline", "checks": ["E3703"]}]


def test_pipeline_templates_pass_the_synth_steps_cfn_lint(synthesized):
    """The pipeline lints everything it synthesizes, itself included."""
    outdir, _, _ = synthesized
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run(
        [str(cfn_lint), "--ignore-checks", "W3005", "--", f"{outdir}/**/*.template.json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_review_reads_stacks_inside_pipeline_stages(synthesized):
    outdir, _, _ = synthesized
    stacks, _ = load_cloud_assembly(outdir)
    names = {s["name"] for s in stacks}
    assert {"Upgrade", "Upgrade/dev/Data", "Upgrade/staging/Data", "Upgrade/prod/Data"} <= names
    acks = review(stacks)["acknowledgements"]
    assert any(a["stack"] == "Upgrade/prod/Data" and a["rule"] == "AwsSolutions-S1" for a in acks)


def test_nag_finding_inside_a_pipeline_stage_fails_synthesis(tmp_path):
    app, _ = _build(tmp_path / "cdk.out", compliant=False)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "cdk.out" / "validation-report.json").read_text())
    paths = {
        c["constructPath"]
        for p in report["pluginReports"]
        for v in p["violations"]
        for c in v["violatingConstructs"]
        if v["ruleName"] == "AwsSolutions-S1"
    }
    assert paths == {f"Upgrade/{s}/Data/Bucket/Resource" for s in ("dev", "staging", "prod")}


def test_plugin_on_a_stage_nested_in_the_pipeline_stack_is_not_enough(tmp_path):
    """Why nag must be registered on the App: CDK 2.275 ignores a validation plugin added to a
    Stage that lives inside a Stack. If this starts failing, CDK changed and stage-level
    registration became an option."""
    app, _ = _build(tmp_path / "cdk.out", compliant=False, nag_on="stages")
    app.synth()  # no ValidationFailed although every stage holds a bucket without access logs
    report_path = tmp_path / "cdk.out" / "validation-report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    assert not any(p.get("violations") for p in report.get("pluginReports", []))


@pytest.mark.parametrize(
    "change, field",
    [
        ({"connection_arn": "arn:aws:iam::111111111111:role/x"}, "connection_arn"),
        ({"repository": "no-slash"}, "repository"),
        ({"branch": "bad branch"}, "branch"),
        ({"stages": []}, "stages"),
    ],
)
def test_bad_props_name_the_field(change, field):
    props = dict(
        connection_arn=CONNECTION, repository="acme/x", branch="main", stages=_specs(), stage_factory=_factory(True)
    )
    props.update(change)
    with pytest.raises(ValueError, match=f"^{field}: "):
        PipelineStack(cdk.App(), "P", env=ENV, **props)


def test_duplicate_stage_names_are_refused():
    with pytest.raises(ValueError, match="^stages: .*unique"):
        PipelineStack(
            cdk.App(),
            "P",
            env=ENV,
            connection_arn=CONNECTION,
            repository="acme/x",
            branch="main",
            stages=_specs() + _specs()[:1],
            stage_factory=_factory(True),
        )


@pytest.mark.parametrize(
    "change, field",
    [
        ({"name": "Prod"}, "stage.name"),
        ({"target_environment": "1bad"}, "target_environment"),
        ({"report_bucket": "Bad_Bucket"}, "report_bucket"),
        ({"report_key": "data/report.csv"}, "report_key"),
    ],
)
def test_bad_stage_spec_names_the_field(change, field):
    props = dict(name="dev", target_environment="env", report_bucket="bucket", report_key="p/m/report.json")
    props.update(change)
    with pytest.raises(ValueError, match=field):
        PipelineStageSpec(**props)
