"""cdk-nag 3 (AwsSolutions): every shipped stage has zero unacknowledged findings, through
the same plugin registration app.py uses, and the acknowledgements are exact."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks

from constructs_lib.nag import acknowledge_wildcards, wildcard_findings
from stacks import build_stage
from stacks.config import load_stage
from tests.cdk_stages import CONTEXT, STAGES


def _violations(report) -> list[str]:
    return [f"{v.rule_name} {r.construct_path}" for v in report.violations for r in v.violating_resources]


@pytest.mark.synth
@pytest.mark.parametrize("stage_name", STAGES)
def test_real_nag_plugin_passes_every_stage(stage_name, tmp_path):
    """A fresh app per stage with the plugin registered exactly as app.py does; synth raises
    ValidationFailed (and writes validation-report.json) on any unacknowledged finding."""
    app = cdk.App(context=dict(CONTEXT, stage=stage_name), outdir=str(tmp_path))
    build_stage(app, load_stage(stage_name))
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
    assert not (tmp_path / "validation-report.json").exists() or json.loads(
        (tmp_path / "validation-report.json").read_text()
    ).get("success", True)


def test_validate_scope_is_clean(stage):
    report = AwsSolutionsChecks(stage.app).validate_scope(stage.app)
    assert _violations(report) == []


def test_a_wildcard_without_acknowledgement_is_reported(tmp_path):
    """The check can fail: the same kind of policy, unacknowledged, is a finding, and synth
    with the plugin registered refuses to finish."""
    app = cdk.App(context=CONTEXT, outdir=str(tmp_path))
    stack = cdk.Stack(app, "Probe", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("airflow.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(sid="Wild", actions=["s3:Get*"], resources=["arn:aws:s3:::b/*"]))
    report = AwsSolutionsChecks(app).validate_scope(app)
    assert any(v.rule_name.startswith("AwsSolutions-IAM5") for v in report.violations)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(Exception, match="(?i)validation"):
        app.synth()


def test_acknowledge_wildcards_requires_a_reason():
    app = cdk.App(context=CONTEXT)
    stack = cdk.Stack(app, "Probe", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    st = iam.PolicyStatement(sid="NoReason", actions=["s3:GetObject"], resources=["arn:aws:s3:::b/*"])
    with pytest.raises(KeyError, match="NoReason"):
        acknowledge_wildcards(stack, [st], {})
    assert wildcard_findings(stack, st) == ["AwsSolutions-IAM5[Resource::arn:aws:s3:::b/*]"]
    deny = iam.PolicyStatement(effect=iam.Effect.DENY, actions=["s3:*"], resources=["*"])
    assert wildcard_findings(stack, deny) == []


def test_acknowledgements_sit_on_the_policy_resources(dev):
    """Each IAM5 acknowledgement is on the CfnRole/CfnPolicy that holds the wildcard, with the
    statement's reason; nothing is acknowledged on a stack or the app."""
    src = dev.stacks.source
    acked = src.mwaa.acknowledged
    assert "AwsSolutions-IAM5[Action::s3:GetObject*]" in acked
    assert "AwsSolutions-IAM5[Resource::arn:aws:sqs:eu-west-1:*:airflow-celery-*]" in acked
    # no action wildcard any more, and the one resource wildcard is this migration's own folder
    assert src.export_policy.acknowledged == [
        "AwsSolutions-IAM5[Resource::arn:aws:s3:::mwaa-migration-dev-111111111111-eu-west-1/"
        "data/migration/2.10.3_to_2.11.0/export/2-10-3-to-2-11-0/*]",
    ]
