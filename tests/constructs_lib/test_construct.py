"""MwaaEnvironment on its own: optional features render as documented, bad props fail early."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Template

from constructs_lib.mwaa_environment import MwaaEnvironment, S3File
from mwaa_common.versions import VersionError
from tests.cdk_stages import CONTEXT


def _stack():
    app = cdk.App(context=CONTEXT)
    stack = cdk.Stack(app, "S", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    vpc = ec2.Vpc.from_vpc_attributes(
        stack,
        "Vpc",
        vpc_id="vpc-0123456789abcdef0",
        vpc_cidr_block="10.0.0.0/16",
        availability_zones=["eu-west-1a", "eu-west-1b"],
        private_subnet_ids=["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    )
    return stack, vpc


def test_optional_features_render():
    stack, vpc = _stack()
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    env = MwaaEnvironment(
        stack,
        "Env",
        name="feat",
        airflow_version="2.10.3",
        vpc=vpc,
        subnets=vpc.private_subnets,
        environment_class="mw1.small",
        requirements=S3File("requirements.txt", "v1"),
        plugins=S3File("plugins.zip", "v2"),
        startup_script=S3File("startup.sh", "v3"),
        secrets_manager_backend=True,
        kms_key=key,
        weekly_maintenance_window_start="TUE:03:30",
        tags={"team": "data"},
        log_levels={"task": "DEBUG"},
        webserver_access_mode="PUBLIC_ONLY",
    )
    t = Template.from_stack(stack).to_json()
    (props,) = [r["Properties"] for r in t["Resources"].values() if r["Type"] == "AWS::MWAA::Environment"]
    assert props["RequirementsS3Path"] == "requirements.txt" and props["RequirementsS3ObjectVersion"] == "v1"
    assert props["PluginsS3ObjectVersion"] == "v2" and props["StartupScriptS3ObjectVersion"] == "v3"
    assert (
        props["AirflowConfigurationOptions"]["secrets.backend"]
        == "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
    )
    assert json.loads(props["AirflowConfigurationOptions"]["secrets.backend_kwargs"]) == {
        "connections_prefix": "airflow/connections",
        "variables_prefix": "airflow/variables",
    }
    assert props["KmsKey"] == {"Fn::GetAtt": [stack.get_logical_id(key.node.default_child), "Arn"]}
    assert props["WeeklyMaintenanceWindowStart"] == "TUE:03:30"
    assert props["Tags"] == {"team": "data"}
    assert props["WebserverAccessMode"] == "PUBLIC_ONLY"  # only when asked for
    assert props["LoggingConfiguration"]["TaskLogs"]["LogLevel"] == "DEBUG"
    # the key lets CloudWatch Logs encrypt this environment's groups only
    key_policy = next(r for r in t["Resources"].values() if r["Type"] == "AWS::KMS::Key")["Properties"]["KeyPolicy"]
    logs_st = [
        s for s in key_policy["Statement"] if s.get("Principal", {}).get("Service") == "logs.eu-west-1.amazonaws.com"
    ]
    assert (
        logs_st
        and logs_st[0]["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
        == "arn:aws:logs:eu-west-1:111111111111:log-group:airflow-feat-*"
    )
    groups = [r["Properties"] for r in t["Resources"].values() if r["Type"] == "AWS::Logs::LogGroup"]
    assert all("KmsKeyId" in g for g in groups) and len(groups) == 5
    assert env.create_environment_parameters["PluginsS3Path"] == "plugins.zip"


def test_defaults_are_private_and_minimal():
    stack, vpc = _stack()
    env = MwaaEnvironment(stack, "Env", name="plain", airflow_version="3.0.6", vpc=vpc, subnets=vpc.private_subnets)
    p = env.create_environment_parameters
    assert p["WebserverAccessMode"] == "PRIVATE_ONLY"
    assert "AirflowConfigurationOptions" not in p and "KmsKey" not in p and "EnvironmentClass" not in p


def test_rejects_wrong_subnet_count_and_class_limits():
    stack, vpc = _stack()
    with pytest.raises(ValueError, match="exactly 2 private subnets, got 1"):
        MwaaEnvironment(stack, "A", name="a", airflow_version="3.0.6", vpc=vpc, subnets=vpc.private_subnets[:1])
    with pytest.raises(VersionError, match=r"schedulers=3 is outside mw1\.micro"):
        MwaaEnvironment(
            stack,
            "B",
            name="b",
            airflow_version="3.0.6",
            vpc=vpc,
            subnets=vpc.private_subnets,
            environment_class="mw1.micro",
            schedulers=3,
        )


def test_props_are_keyword_only():
    stack, vpc = _stack()
    with pytest.raises(TypeError):
        MwaaEnvironment(stack, "C", "c", "3.0.6", vpc, vpc.private_subnets)  # type: ignore[misc]
