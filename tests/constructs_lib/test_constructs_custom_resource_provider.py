"""CustomResourceProvider on its own: what every Provider-backed resource of the project gets."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("CDK_VALIDATION", "false")

import aws_cdk as cdk  # noqa: E402
from aws_cdk import aws_ec2 as ec2  # noqa: E402
from aws_cdk import aws_iam as iam  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from constructs_lib.custom_resource_provider import CustomResourceProvider  # noqa: E402

pytestmark = pytest.mark.synth
ENV = cdk.Environment(account="111122223333", region="eu-west-1")


def _statements():
    return [
        iam.PolicyStatement(
            sid="ReadThing",
            actions=["airflow:GetEnvironment"],
            resources=["arn:aws:airflow:eu-west-1:111122223333:environment/x"],
        ),
        iam.PolicyStatement(sid="DescribeAll", actions=["ec2:DescribeVpcs"], resources=["*"]),
    ]


def build(**kw):
    app = cdk.App()
    stack = cdk.Stack(app, "Crp", env=ENV)
    props = dict(
        handler_module="dag_runner.handler",
        description="test handlers",
        statements=_statements(),
        wildcard_reasons={"DescribeAll": "ec2:DescribeVpcs has no resource-level permission"},
    )
    props.update(kw)
    provider = CustomResourceProvider(stack, "P", **props)
    resource = provider.add_resource("R", resource_type="Custom::Thing", properties={"A": "1"})
    return app, stack, provider, resource, Template.from_stack(stack).to_json()


@pytest.fixture(scope="module")
def built():
    return build()


def _of_type(t, kind):
    return {k: r for k, r in t["Resources"].items() if r["Type"] == kind}


def test_one_role_one_policy_with_exactly_the_statements(built):
    _, stack, provider, _, t = built
    policies = [
        p
        for p in _of_type(t, "AWS::IAM::Policy").values()
        if {"Ref": stack.get_logical_id(provider.handler_role.node.default_child)} in p["Properties"]["Roles"]
    ]
    (policy,) = policies
    sids = [s["Sid"] for s in policy["Properties"]["PolicyDocument"]["Statement"]]
    assert sids == ["ReadThing", "DescribeAll", "WriteOwnLogs"]
    assert all("ManagedPolicyArns" not in r["Properties"] for r in _of_type(t, "AWS::IAM::Role").values())


def test_log_groups_retained_with_the_shared_default_retention(built):
    _, _, _, _, t = built
    groups = _of_type(t, "AWS::Logs::LogGroup")
    assert len(groups) == 2  # handlers, framework: no waiter log group
    for g in groups.values():
        assert g["Properties"]["RetentionInDays"] == 90
        assert g["DeletionPolicy"] == "Retain" and g["UpdateReplacePolicy"] == "Retain"


def test_waiter_logging_is_off_and_budget_is_under_the_timeout(built):
    _, _, provider, _, t = built
    (machine,) = _of_type(t, "AWS::StepFunctions::StateMachine").values()
    assert "LoggingConfiguration" not in machine["Properties"]
    # 3600 - 30 (poll) - 120 (is_complete run) - 30 (slack)
    assert provider.wait_budget_seconds == 3420
    fns = [
        f
        for f in _of_type(t, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler", "").startswith("dag_runner.handler.")
    ]
    assert len(fns) == 2
    assert all(f["Properties"]["Environment"]["Variables"]["WAIT_BUDGET_SECONDS"] == "3420" for f in fns)


def test_no_waiter_role_wildcards_for_logs(built):
    _, _, _, _, t = built
    text = json.dumps(_of_type(t, "AWS::IAM::Policy"))
    assert "logs:CreateLogDelivery" not in text and "logs:PutResourcePolicy" not in text


def test_resource_type_and_properties(built):
    _, stack, _, resource, t = built
    r = t["Resources"][stack.get_logical_id(resource.node.default_child)]
    assert r["Type"] == "Custom::Thing" and r["Properties"]["A"] == "1"


def test_nag_clean(built):
    app, *_ = built
    report = AwsSolutionsChecks(app).validate_scope(app)
    assert [v.rule_name for v in report.violations] == []


def test_without_is_complete_there_is_no_waiter():
    app, _, provider, _, t = build(is_complete=False)
    assert provider.is_complete_function is None
    assert not _of_type(t, "AWS::StepFunctions::StateMachine")
    assert AwsSolutionsChecks(app).validate_scope(app).violations == []


def test_in_a_vpc_the_eni_statement_is_inline_and_acknowledged():
    app = cdk.App()
    stack = cdk.Stack(app, "CrpVpc", env=ENV)
    vpc = ec2.Vpc(
        stack,
        "Vpc",
        availability_zones=["eu-west-1a", "eu-west-1b"],
        nat_gateways=0,
        subnet_configuration=[ec2.SubnetConfiguration(name="p", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)],
        flow_logs={"all": ec2.FlowLogOptions()},
    )
    sg = ec2.SecurityGroup(stack, "Sg", vpc=vpc, allow_all_outbound=False, description="handlers")
    provider = CustomResourceProvider(
        stack,
        "P",
        handler_module="dag_runner.handler",
        description="d",
        statements=[],
        vpc=vpc,
        security_group=sg,
        vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
    )
    assert "AwsSolutions-IAM5[Resource::*]" in provider.acknowledged
    t = Template.from_stack(stack).to_json()
    in_vpc = [f for f in _of_type(t, "AWS::Lambda::Function").values() if "VpcConfig" in f["Properties"]]
    assert len(in_vpc) == 2  # the handlers; the framework stays outside
    assert AwsSolutionsChecks(app).validate_scope(app).violations == []


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"total_timeout": cdk.Duration.minutes(61)}, "exceeds the Provider framework's limit of 1 hour"),
        ({"query_interval": cdk.Duration.seconds(5)}, "query_interval=5 seconds is below 10 seconds"),
        ({"total_timeout": cdk.Duration.minutes(3)}, "leaves no time to wait"),
        ({"handler_module": "nope.handler"}, r"no lambda/nope/handler.py"),
        ({"log_retention_days": 2}, "log retention 2 days is not allowed"),
        (
            {"statements": [iam.PolicyStatement(sid="Wild", actions=["s3:*"], resources=["*"])]},
            "statement 'Wild' has wildcards",
        ),
        ({"vpc": "x"}, "give all three"),
    ],
)
def test_bad_props(kw, message):
    with pytest.raises((ValueError, KeyError), match=message):
        build(**kw)


def test_bad_resource_type(built):
    _, _, provider, _, _ = built
    with pytest.raises(ValueError, match="use 'Custom::Name'"):
        provider.add_resource("X", resource_type="AWS::S3::Bucket", properties={})
