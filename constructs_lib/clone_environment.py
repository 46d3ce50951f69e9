"""CloneEnvironment: a custom resource that creates the target MWAA environment by cloning
the live source during ``cdk deploy`` (see docs/clone.md and lambda/clone_env/handler.py).

Everything the handler's role may touch is derived from the typed props below, and those
props are also written into the CreateEnvironment overrides, so the request and the
permissions cannot drift apart.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import custom_resources as cr
from constructs import Construct

LAMBDA_ROOT = Path(__file__).resolve().parents[1] / "lambda"
ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/.pytest_cache", "**/tests", "**/*.egg-info"]
TOTAL_TIMEOUT = cdk.Duration.hours(1)  # the Provider framework's maximum
MIN_QUERY_INTERVAL = cdk.Duration.seconds(30)
RESOURCE_TYPE = "Custom::MwaaEnvironmentClone"
_ENDPOINT_MODES = ("SERVICE", "CUSTOMER")


class CloneEnvironment(Construct):
    """Creates ``target_name`` as a clone of ``source_environment_name``.

    ``overrides`` uses CreateEnvironment parameter names and may hold tokens; a ``None``
    value leaves that parameter out of the request (e.g. ``{"KmsKey": None}`` for an
    AWS-owned key). ``ExecutionRoleArn``, ``SourceBucketArn``, ``NetworkConfiguration``,
    ``KmsKey`` and ``EndpointManagement`` come from the typed props; an override that
    names one of them must agree with the prop.
    """

    def __init__(self, scope: Construct, construct_id: str, *,
                 source_environment_name: str,
                 target_name: str,
                 migration_id: str,
                 execution_role: iam.IRole,
                 dag_bucket: s3.IBucket,
                 vpc: ec2.IVpc,
                 subnets: Sequence[ec2.ISubnet],
                 security_groups: Sequence[ec2.ISecurityGroup],
                 overrides: Optional[Mapping[str, Any]] = None,
                 kms_key: Optional[kms.IKey] = None,
                 endpoint_management: Optional[str] = None,
                 delete_on_stack_delete: bool = False,
                 lambda_runtime: lambda_.Runtime = lambda_.Runtime.PYTHON_3_14,
                 query_interval: cdk.Duration = cdk.Duration.seconds(60),
                 log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR) -> None:
        super().__init__(scope, construct_id)
        if len(subnets) != 2:
            raise ValueError(f"subnets: MWAA needs exactly 2 private subnets in 2 AZs, got {len(subnets)}")
        if not 1 <= len(security_groups) <= 5:
            raise ValueError(f"security_groups: MWAA takes 1-5 security groups, got {len(security_groups)}")
        if endpoint_management is not None and endpoint_management not in _ENDPOINT_MODES:
            raise ValueError(f"endpoint_management={endpoint_management!r} is not allowed; use one of {_ENDPOINT_MODES} "
                             "or None (decided from the source)")
        if query_interval.to_seconds() < MIN_QUERY_INTERVAL.to_seconds():
            raise ValueError(f"query_interval={query_interval.to_seconds()} s is below the 30 s minimum")

        stack = cdk.Stack.of(self)
        typed: dict[str, Any] = {
            "ExecutionRoleArn": execution_role.role_arn,
            "SourceBucketArn": dag_bucket.bucket_arn,
            "NetworkConfiguration": {"SubnetIds": [s.subnet_id for s in subnets],
                                     "SecurityGroupIds": [g.security_group_id for g in security_groups]},
        }
        if kms_key is not None:
            typed["KmsKey"] = kms_key.key_arn
        if endpoint_management is not None:
            typed["EndpointManagement"] = endpoint_management
        merged, omit = _merge_overrides(dict(overrides or {}), typed, target_name)

        self.environment_name = target_name
        self.environment_arn = stack.format_arn(service="airflow", resource="environment", resource_name=target_name,
                                                arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME)
        source_arn = stack.format_arn(service="airflow", resource="environment",
                                      resource_name=source_environment_name,
                                      arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME)

        # ---- the handler's own role: every statement scoped as far as the API allows
        self.handler_role = iam.Role(self, "HandlerRole",
                                     assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                                     description=f"mwaa-upgrade clone of {source_environment_name} into {target_name}")
        statements = [
            # Read the environment to clone (nothing else of the source).
            iam.PolicyStatement(sid="ReadSource", actions=["airflow:GetEnvironment"], resources=[source_arn]),
            # Create the target, wait for it, update it in place, (re)tag it. CreateEnvironment
            # with Tags also authorizes airflow:TagResource (service authorization reference).
            iam.PolicyStatement(sid="ManageTarget", resources=[self.environment_arn], actions=[
                "airflow:GetEnvironment", "airflow:CreateEnvironment", "airflow:UpdateEnvironment",
                "airflow:TagResource"]),
            # CreateEnvironment passes the target's execution role to MWAA; only that role,
            # only to MWAA.
            iam.PolicyStatement(sid="PassTargetRole", actions=["iam:PassRole"], resources=[execution_role.role_arn],
                                conditions={"StringEquals": {"iam:PassedToService": "airflow.amazonaws.com"}}),
            # MWAA validates the network with the caller's credentials. Describe* actions have
            # no resource-level permissions in EC2, hence "*".
            iam.PolicyStatement(sid="DescribeNetwork", resources=["*"], actions=[
                "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs", "ec2:DescribeRouteTables"]),
            # MWAA checks the DAG bucket's encryption with the caller's credentials.
            iam.PolicyStatement(sid="ReadDagBucketEncryption", actions=["s3:GetEncryptionConfiguration"],
                                resources=[dag_bucket.bucket_arn]),
            # Tell a rollback or replacement from a real change / a stack deletion.
            iam.PolicyStatement(sid="ReadOwnStackStatus", actions=["cloudformation:DescribeStacks"],
                                resources=[stack.stack_id]),
        ]
        subnet_arns = [stack.format_arn(service="ec2", resource="subnet", resource_name=s.subnet_id) for s in subnets]
        sg_arns = [stack.format_arn(service="ec2", resource="security-group", resource_name=g.security_group_id)
                   for g in security_groups]
        if endpoint_management != "CUSTOMER":
            # With SERVICE endpoint management MWAA creates the database/webserver VPC endpoints
            # and its ENIs in the target subnets on the caller's authority. Only these subnets,
            # security groups and VPC; the new endpoint's / ENI's id is unknown in advance, so
            # vpc-endpoint/* and network-interface/* (this account and region only).
            statements.append(iam.PolicyStatement(sid="CreateServiceEndpoints", actions=["ec2:CreateVpcEndpoint"],
                                                  resources=[stack.format_arn(service="ec2", resource="vpc-endpoint",
                                                                              resource_name="*"),
                                                             stack.format_arn(service="ec2", resource="vpc",
                                                                              resource_name=vpc.vpc_id),
                                                             *subnet_arns, *sg_arns]))
            statements.append(iam.PolicyStatement(sid="CreateServiceInterfaces", actions=["ec2:CreateNetworkInterface"],
                                                  resources=[stack.format_arn(service="ec2",
                                                                              resource="network-interface",
                                                                              resource_name="*"),
                                                             *subnet_arns, *sg_arns]))
        if kms_key is not None:
            # A customer managed key: MWAA creates grants on it for the environment's resources
            # with the caller's credentials (grants are retired by MWAA on deletion).
            statements.append(iam.PolicyStatement(sid="UseTargetKey", resources=[kms_key.key_arn], actions=[
                "kms:DescribeKey", "kms:ListGrants", "kms:CreateGrant", "kms:RevokeGrant", "kms:Decrypt",
                "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"]))
        if delete_on_stack_delete:
            statements.append(iam.PolicyStatement(sid="DeleteTarget", actions=["airflow:DeleteEnvironment"],
                                                  resources=[self.environment_arn]))
        # Not granted, on purpose: logs:* (MWAA's service-linked role creates the
        # airflow-{env}-* log groups) and iam:CreateServiceLinkedRole (the source
        # environment in this account proves AWSServiceRoleForAmazonMWAA exists).
        self.handler_policy = iam.Policy(self, "HandlerPolicy", statements=statements, roles=[self.handler_role])

        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention,
                                       removal_policy=cdk.RemovalPolicy.RETAIN)
        self.log_group.grant_write(self.handler_role)

        code = lambda_.Code.from_asset(str(LAMBDA_ROOT), exclude=ASSET_EXCLUDES)
        common = dict(code=code, runtime=lambda_runtime, role=self.handler_role, log_group=self.log_group,
                      memory_size=256, environment={"LOG_LEVEL": "INFO"})
        self.on_event_function = lambda_.Function(
            self, "OnEvent", handler="clone_env.handler.on_event", timeout=cdk.Duration.minutes(5),
            description="mwaa-upgrade: plan and start the environment clone", **common)
        self.is_complete_function = lambda_.Function(
            self, "IsComplete", handler="clone_env.handler.is_complete", timeout=cdk.Duration.minutes(2),
            description="mwaa-upgrade: wait for the cloned environment", **common)
        for fn in (self.on_event_function, self.is_complete_function):
            fn.node.add_dependency(self.handler_policy)

        # ---- the framework: our own roles, no managed policies
        self.framework_on_event_role = iam.Role(self, "FrameworkOnEventRole",
                                                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        self.framework_complete_role = iam.Role(self, "FrameworkCompleteRole",
                                                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        framework_logs = logs.LogGroup(self, "FrameworkLogs", retention=log_retention,
                                       removal_policy=cdk.RemovalPolicy.RETAIN)
        for role in (self.framework_on_event_role, self.framework_complete_role):
            framework_logs.grant_write(role)
        self.provider = cr.Provider(
            self, "Provider",
            on_event_handler=self.on_event_function,
            is_complete_handler=self.is_complete_function,
            query_interval=query_interval,
            total_timeout=TOTAL_TIMEOUT,
            framework_on_event_role=self.framework_on_event_role,
            framework_complete_and_timeout_role=self.framework_complete_role,
            log_group=framework_logs,
            # Waiter logging stays off: turning it on makes aws-cdk-lib give the waiter role
            # logs:PutResourcePolicy / CreateLogDelivery on "*" (see _acknowledge).
            disable_waiter_state_machine_logging=True,
        )
        wait_budget = int(TOTAL_TIMEOUT.to_seconds() - 2 * query_interval.to_seconds())
        self.resource = cdk.CustomResource(self, "Resource", service_token=self.provider.service_token,
                                           resource_type=RESOURCE_TYPE, properties={
            "SourceEnvironmentName": source_environment_name,
            "TargetName": target_name,
            "MigrationId": migration_id,
            "Overrides": merged,
            "OmitFields": omit,
            "DeleteOnStackDelete": "true" if delete_on_stack_delete else "false",
            "WaitBudgetSeconds": str(wait_budget),
        })
        self._uses_kms = kms_key is not None
        self._service_endpoints = endpoint_management != "CUSTOMER"
        self._acknowledge(stack)

    def _acknowledge(self, stack: cdk.Stack) -> None:
        """cdk-nag findings that are inherent, acknowledged on the narrowest construct with a
        reason a reviewer can check against the synthesized template."""
        def ack(scope, rule, reason):
            cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule, reason=reason))

        region = "<AWS::Region>" if cdk.Token.is_unresolved(stack.region) else stack.region
        account = "<AWS::AccountId>" if cdk.Token.is_unresolved(stack.account) else stack.account
        # a stack in a known region renders the partition as a literal (cdk.json feature flags)
        partition = "<AWS::Partition>" if cdk.Token.is_unresolved(stack.partition) else stack.partition
        ack(self.handler_policy, "AwsSolutions-IAM5[Resource::*]",
            "statement DescribeNetwork only: ec2:Describe{SecurityGroups,Subnets,Vpcs,RouteTables} support no "
            "resource-level permissions; MWAA calls them with the caller's credentials to validate the network")
        if self._service_endpoints:
            for kind in ("vpc-endpoint", "network-interface"):
                ack(self.handler_policy,
                    f"AwsSolutions-IAM5[Resource::arn:{partition}:ec2:{region}:{account}:{kind}/*]",
                    f"statements CreateServiceEndpoints/CreateServiceInterfaces: the {kind} MWAA creates has no id "
                    "before it exists; this account and region only, and the same statement names the target "
                    "VPC, subnets and security groups")
        if self._uses_kms:
            for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
                ack(self.handler_policy, f"AwsSolutions-IAM5[Action::{action}]",
                    "statement UseTargetKey: the KMS action families of MWAA's documented full-API access policy, "
                    "on the one customer managed key given to the construct")
        functions = {"on_event": self.on_event_function, "is_complete": self.is_complete_function}
        for role in (self.framework_on_event_role, self.framework_complete_role):
            for label, fn in functions.items():
                ack(role, f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(fn.node.default_child)}.Arn>:*]",
                    f"added by aws-cdk-lib's Provider: lambda:InvokeFunction on any version of our own {label} "
                    "function (the ARN plus ':*' for versions)")
        waiter = self.provider.node.find_child("waiter-state-machine")
        for child in ("framework-isComplete", "framework-onTimeout"):
            fn = self.provider.node.find_child(child)
            ack(waiter, f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(fn.node.default_child)}.Arn>:*]",
                f"added by aws-cdk-lib's Provider: the waiter invokes any version of its own {child} function")
        ack(waiter, "AwsSolutions-SF1",
            "the waiter only loops our is-complete Lambda, whose log group records every decision; enabling waiter "
            "logging makes aws-cdk-lib grant logs:PutResourcePolicy and CreateLogDelivery on '*' to its role")
        ack(waiter, "AwsSolutions-SF2",
            "custom_resources.Provider exposes no X-Ray option for its waiter state machine")


def _merge_overrides(overrides: dict, typed: dict, target_name: str) -> tuple[dict, list[str]]:
    """Overrides + the typed props; None values become OmitFields (CloudFormation cannot
    carry a null). Raise on a conflict between an override and a typed prop."""
    if "Name" in overrides and overrides["Name"] != target_name:
        raise ValueError(f"overrides['Name']={overrides['Name']!r} differs from target_name={target_name!r}")
    overrides.pop("Name", None)
    for key, value in typed.items():
        if key in overrides and overrides[key] != value:
            raise ValueError(f"overrides[{key!r}] conflicts with the construct's typed prop for it; pass it only once "
                             "(the props also scope the handler's permissions)")
        overrides[key] = value
    omit = sorted(k for k, v in overrides.items() if v is None)
    return {k: v for k, v in overrides.items() if v is not None}, omit
