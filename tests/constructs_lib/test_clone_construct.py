"""CloneEnvironment in a small purpose-built stack: Provider timeouts, every IAM statement of
the handler's role, no managed policies, cdk-nag (AwsSolutions) clean."""

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("CDK_VALIDATION", "false")

import aws_cdk as cdk  # noqa: E402
from aws_cdk import aws_ec2 as ec2  # noqa: E402
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from constructs_lib.clone_environment import CloneEnvironment  # noqa: E402

pytestmark = pytest.mark.synth

ACCOUNT, REGION = "111122223333", "eu-west-1"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/aaaabbbb-1111-2222-3333-444455556666"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/target-exec"


def arn(rest):
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, rest]]}


def network(stack):
    vpc = ec2.Vpc.from_vpc_attributes(
        stack,
        "Vpc",
        vpc_id="vpc-0123",
        availability_zones=[f"{REGION}a", f"{REGION}b"],
        private_subnet_ids=["subnet-a", "subnet-b"],
    )
    sg = ec2.SecurityGroup.from_security_group_id(stack, "Sg", "sg-0t")
    role = iam.Role.from_role_arn(stack, "Role", ROLE_ARN, mutable=False)
    bucket = s3.Bucket.from_bucket_name(stack, "Dags", "target-dags")
    return dict(execution_role=role, dag_bucket=bucket, vpc=vpc, subnets=vpc.private_subnets, security_groups=[sg])


def build(stack_id, **kw):
    app = cdk.App()
    stack = cdk.Stack(app, stack_id, env=cdk.Environment(account=ACCOUNT, region=REGION))
    props = dict(
        source_environment_name="orders-prod", target_name="orders-prod-2-11", migration_id="m1", **network(stack)
    )
    props.update(kw.pop("props", {}))
    if kw.pop("with_key", False):
        props["kms_key"] = kms.Key.from_key_arn(stack, "Key", KEY_ARN)
    clone = CloneEnvironment(stack, "Clone", **props, **kw)
    return app, stack, clone


@pytest.fixture(scope="module")
def full():
    app, stack, clone = build(
        "Full",
        with_key=True,
        delete_on_stack_delete=True,
        overrides={
            "AirflowVersion": "2.11.0",
            "MaxWorkers": 12,
            "KmsKey": KEY_ARN,
            "PluginsS3Path": None,
            "PluginsS3ObjectVersion": None,
        },
    )
    return app, stack, clone, Template.from_stack(stack).to_json()


@pytest.fixture(scope="module")
def minimal():
    app, stack, clone = build("Minimal", endpoint_management="CUSTOMER", overrides={"AirflowVersion": "2.11.0"})
    return app, stack, clone, Template.from_stack(stack).to_json()


def resources(template, kind):
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def policies_of(template, role_logical_id):
    return [
        v["Properties"]["PolicyDocument"]["Statement"]
        for v in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role_logical_id} in v["Properties"]["Roles"]
    ]


def handler_role_id(stack, clone):
    return stack.get_logical_id(clone.handler_role.node.default_child)


COMMON_STATEMENTS = [
    {
        "Sid": "ReadSource",
        "Effect": "Allow",
        "Action": "airflow:GetEnvironment",
        "Resource": arn(f":airflow:{REGION}:{ACCOUNT}:environment/orders-prod"),
    },
    {
        "Sid": "ManageTarget",
        "Effect": "Allow",
        "Action": [
            "airflow:GetEnvironment",
            "airflow:CreateEnvironment",
            "airflow:UpdateEnvironment",
            "airflow:TagResource",
        ],
        "Resource": arn(f":airflow:{REGION}:{ACCOUNT}:environment/orders-prod-2-11"),
    },
    {
        "Sid": "PassTargetRole",
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": ROLE_ARN,
        "Condition": {"StringEquals": {"iam:PassedToService": "airflow.amazonaws.com"}},
    },
    {
        "Sid": "DescribeNetwork",
        "Effect": "Allow",
        "Resource": "*",
        "Action": ["ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs", "ec2:DescribeRouteTables"],
    },
    {
        "Sid": "ReadDagBucketEncryption",
        "Effect": "Allow",
        "Action": "s3:GetEncryptionConfiguration",
        "Resource": arn(":s3:::target-dags"),
    },
    {
        "Sid": "ReadOwnStackStatus",
        "Effect": "Allow",
        "Action": "cloudformation:DescribeStacks",
        "Resource": {"Ref": "AWS::StackId"},
    },
]
SCOPED_NETWORK = [
    arn(f":ec2:{REGION}:{ACCOUNT}:subnet/subnet-a"),
    arn(f":ec2:{REGION}:{ACCOUNT}:subnet/subnet-b"),
    arn(f":ec2:{REGION}:{ACCOUNT}:security-group/sg-0t"),
]
FULL_EXTRA = [
    {
        "Sid": "CreateServiceEndpoints",
        "Effect": "Allow",
        "Action": "ec2:CreateVpcEndpoint",
        "Resource": [
            arn(f":ec2:{REGION}:{ACCOUNT}:vpc-endpoint/*"),
            arn(f":ec2:{REGION}:{ACCOUNT}:vpc/vpc-0123"),
            *SCOPED_NETWORK,
        ],
    },
    {
        "Sid": "CreateServiceInterfaces",
        "Effect": "Allow",
        "Action": "ec2:CreateNetworkInterface",
        "Resource": [arn(f":ec2:{REGION}:{ACCOUNT}:network-interface/*"), *SCOPED_NETWORK],
    },
    {
        "Sid": "UseTargetKey",
        "Effect": "Allow",
        "Resource": KEY_ARN,
        "Action": [
            "kms:DescribeKey",
            "kms:ListGrants",
            "kms:CreateGrant",
            "kms:RevokeGrant",
            "kms:Decrypt",
            "kms:Encrypt",
            "kms:GenerateDataKey*",
            "kms:ReEncrypt*",
        ],
    },
    {
        "Sid": "DeleteTarget",
        "Effect": "Allow",
        "Action": "airflow:DeleteEnvironment",
        "Resource": arn(f":airflow:{REGION}:{ACCOUNT}:environment/orders-prod-2-11"),
    },
]


def log_statement(stack, clone):
    return {
        "Sid": "WriteOwnLogs",
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": {"Fn::GetAtt": [stack.get_logical_id(clone.log_group.node.default_child), "Arn"]},
    }


def canonical(policies):
    """Policies as comparable text: statement order inside a policy kept, key order not."""
    return sorted(json.dumps(statements, sort_keys=True) for statements in policies)


def test_every_statement_of_the_handler_role(full):
    _, stack, clone, template = full
    assert canonical(policies_of(template, handler_role_id(stack, clone))) == canonical(
        [COMMON_STATEMENTS + FULL_EXTRA + [log_statement(stack, clone)]]
    )


def test_minimal_role_has_no_endpoint_kms_or_delete_rights(minimal):
    _, stack, clone, template = minimal
    assert canonical(policies_of(template, handler_role_id(stack, clone))) == canonical(
        [COMMON_STATEMENTS + [log_statement(stack, clone)]]
    )


@pytest.mark.parametrize("fixture", ["full", "minimal"])
def test_no_managed_policies_and_only_our_roles(fixture, request):
    _, _, _, template = request.getfixturevalue(fixture)
    roles = resources(template, "AWS::IAM::Role")
    assert roles and all("ManagedPolicyArns" not in r["Properties"] for r in roles.values())
    assert not resources(template, "AWS::IAM::ManagedPolicy")


def test_framework_lambdas_use_our_roles(full):
    _, stack, clone, template = full
    ours = {
        stack.get_logical_id(r.node.default_child)
        for r in (clone.handler_role, clone.framework_on_event_role, clone.framework_complete_role)
    }
    for fn in resources(template, "AWS::Lambda::Function").values():
        assert fn["Properties"]["Role"]["Fn::GetAtt"][0] in ours


def test_provider_timeouts(full):
    _, _, _, template = full
    (machine,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    definition = "".join(
        p if isinstance(p, str) else "<ref>" for p in machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    )
    retry = json.loads(definition.replace("<ref>", ""))["States"]["framework-isComplete-task"]["Retry"][0]
    assert retry["IntervalSeconds"] >= 30
    assert retry["IntervalSeconds"] * retry["MaxAttempts"] == 3600 and retry["BackoffRate"] == 1
    (custom,) = resources(template, "Custom::MwaaEnvironmentClone").values()
    # the handler gives up (with its resume message) before the framework would: one poll, one
    # is_complete run (2 min) and 30 s of slack earlier
    assert int(custom["Properties"]["WaitBudgetSeconds"]) == 3600 - retry["IntervalSeconds"] - 120 - 30


def test_custom_resource_properties(full):
    _, _, _, template = full
    (custom,) = resources(template, "Custom::MwaaEnvironmentClone").values()
    props = custom["Properties"]
    assert props["Overrides"]["ExecutionRoleArn"] == ROLE_ARN
    assert props["Overrides"]["NetworkConfiguration"] == {
        "SubnetIds": ["subnet-a", "subnet-b"],
        "SecurityGroupIds": ["sg-0t"],
    }
    assert props["Overrides"]["KmsKey"] == KEY_ARN
    assert props["OmitFields"] == ["PluginsS3ObjectVersion", "PluginsS3Path"]
    assert props["DeleteOnStackDelete"] == "true"
    assert {props["SourceEnvironmentName"], props["TargetName"], props["MigrationId"]} == {
        "orders-prod",
        "orders-prod-2-11",
        "m1",
    }


def test_handler_functions(full):
    _, _, _, template = full
    handlers = {
        f["Properties"]["Handler"]: f["Properties"]
        for f in resources(template, "AWS::Lambda::Function").values()
        if f["Properties"]["Runtime"].startswith("python")
    }
    assert set(handlers) == {"clone_env.handler.on_event", "clone_env.handler.is_complete"}
    assert all(p["Runtime"] == "python3.14" and "VpcConfig" not in p for p in handlers.values())


@pytest.mark.parametrize("fixture", ["full", "minimal"])
def test_cdk_nag_clean(fixture, request):
    app, _, _, _ = request.getfixturevalue(fixture)
    report = AwsSolutionsChecks(app).validate_scope(app)
    assert [v.rule_name for v in report.violations] == []
    assert report.success


def test_asset_is_the_lambda_folder_without_caches(full):
    app, stack, _, _ = full
    out = Path(app.synth().directory)
    dirs = [d for d in out.iterdir() if d.is_dir() and d.name.startswith("asset.") and (d / "clone_env").is_dir()]
    assert len(dirs) == 1
    files = {str(p.relative_to(dirs[0])) for p in dirs[0].rglob("*") if p.is_file()}
    assert {"clone_env/handler.py", "clone_env/planner.py", "mwaa_common/versions.py"} <= files
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc") or "/tests/" in f]


@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(props={"subnets": []}), r"exactly 2 private subnets"),
        (dict(query_interval=cdk.Duration.seconds(10)), r"below the 30 s minimum"),
        (dict(endpoint_management="HYBRID"), r"endpoint_management='HYBRID' is not allowed"),
        (
            dict(overrides={"ExecutionRoleArn": "arn:aws:iam::111122223333:role/other"}),
            r"overrides\['ExecutionRoleArn'\] conflicts with the construct's typed prop",
        ),
        (dict(overrides={"Name": "other"}), r"overrides\['Name'\]='other' differs from target_name"),
    ],
)
def test_bad_props(kw, message):
    with pytest.raises(ValueError, match=message):
        build("Bad", **kw)


def test_override_with_the_same_token_as_the_prop_is_fine():
    app = cdk.App()
    stack = cdk.Stack(app, "Tokens", env=cdk.Environment(account=ACCOUNT, region=REGION))
    net = network(stack)
    role = iam.Role(stack, "TargetRole", assumed_by=iam.ServicePrincipal("airflow-env.amazonaws.com"))
    net["execution_role"] = role
    CloneEnvironment(
        stack,
        "Clone",
        source_environment_name="a",
        target_name="b",
        migration_id="m1",
        overrides={"ExecutionRoleArn": role.role_arn},
        **net,
    )
