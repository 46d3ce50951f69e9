"""CloneEnvironment: a custom resource that creates the target MWAA environment by cloning
the live source during ``cdk deploy`` (see docs/clone.md and lambda/clone_env/handler.py).

Everything the handler's role may touch is derived from the typed props below, and those
props are also written into the CreateEnvironment overrides, so the request and the
permissions cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from constructs_lib.custom_resource_provider import MAX_TOTAL_TIMEOUT, CustomResourceProvider
from mwaa_common import retention
from mwaa_common.settings import DELETE_REPLACED_METADATA

TOTAL_TIMEOUT = MAX_TOTAL_TIMEOUT
MIN_QUERY_INTERVAL = cdk.Duration.seconds(30)
DEFAULT_QUERY_INTERVAL = cdk.Duration.seconds(60)
RESOURCE_TYPE = "Custom::MwaaEnvironmentClone"
_ENDPOINT_MODES = ("SERVICE", "CUSTOMER")

# Why each wildcard of the handler's policy is needed (cdk-nag AwsSolutions-IAM5).
WILDCARD_REASONS = {
    "DescribeNetwork": "ec2:Describe{SecurityGroups,Subnets,Vpcs,RouteTables} support no resource-level "
    "permissions; MWAA calls them with the caller's credentials to validate the network",
    "CreateServiceEndpoints": "the vpc-endpoint MWAA creates has no id before it exists; this account and region "
    "only, and the same statement names the target VPC, subnets and security groups",
    "CreateServiceInterfaces": "the network-interface MWAA creates has no id before it exists; this account and "
    "region only, and the same statement names the target subnets and security groups",
    "UseTargetKey": "the KMS action families of MWAA's documented full-API access policy, on the one customer "
    "managed key given to the construct",
}


class CloneEnvironment(CustomResourceProvider):
    """Creates ``target_name`` as a clone of ``source_environment_name``.

    ``overrides`` uses CreateEnvironment parameter names and may hold tokens; a ``None``
    value leaves that parameter out of the request (e.g. ``{"KmsKey": None}`` for an
    AWS-owned key). ``ExecutionRoleArn``, ``SourceBucketArn``, ``NetworkConfiguration``,
    ``KmsKey`` and ``EndpointManagement`` come from the typed props; an override that
    names one of them must agree with the prop.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        source_environment_name: str,
        target_name: str,
        migration_id: str,
        execution_role: iam.IRole,
        dag_bucket: s3.IBucket,
        vpc: ec2.IVpc,
        subnets: Sequence[ec2.ISubnet],
        security_groups: Sequence[ec2.ISecurityGroup],
        overrides: Mapping[str, Any] | None = None,
        kms_key: kms.IKey | None = None,
        endpoint_management: str | None = None,
        delete_on_stack_delete: bool = False,
        delete_replaced_target: str | None = None,
        lambda_runtime: lambda_.Runtime = lambda_.Runtime.PYTHON_3_14,
        query_interval: cdk.Duration = DEFAULT_QUERY_INTERVAL,
        log_retention_days: int = retention.CUSTOM_RESOURCE_LOG_DAYS,
    ) -> None:
        if len(subnets) != 2:
            raise ValueError(f"subnets: MWAA needs exactly 2 private subnets in 2 AZs, got {len(subnets)}")
        if not 1 <= len(security_groups) <= 5:
            raise ValueError(f"security_groups: MWAA takes 1-5 security groups, got {len(security_groups)}")
        if endpoint_management is not None and endpoint_management not in _ENDPOINT_MODES:
            raise ValueError(
                f"endpoint_management={endpoint_management!r} is not allowed; use one of {_ENDPOINT_MODES} "
                "or None (decided from the source)"
            )
        if query_interval.to_seconds() < MIN_QUERY_INTERVAL.to_seconds():
            raise ValueError(f"query_interval={query_interval.to_seconds()} s is below the 30 s minimum")
        if delete_replaced_target is not None and delete_replaced_target in (target_name, source_environment_name):
            raise ValueError(
                f"delete_replaced_target={delete_replaced_target!r} must name the previous target, "
                "neither the source nor the current target"
            )

        stack = cdk.Stack.of(scope)
        typed: dict[str, Any] = {
            "ExecutionRoleArn": execution_role.role_arn,
            "SourceBucketArn": dag_bucket.bucket_arn,
            "NetworkConfiguration": {
                "SubnetIds": [s.subnet_id for s in subnets],
                "SecurityGroupIds": [g.security_group_id for g in security_groups],
            },
        }
        if kms_key is not None:
            typed["KmsKey"] = kms_key.key_arn
        if endpoint_management is not None:
            typed["EndpointManagement"] = endpoint_management
        merged, omit = _merge_overrides(dict(overrides or {}), typed, target_name)

        environment_arn = _environment_arn(stack, target_name)
        statements = _handler_statements(
            stack,
            source_arn=_environment_arn(stack, source_environment_name),
            target_arn=environment_arn,
            execution_role=execution_role,
            dag_bucket=dag_bucket,
            vpc=vpc,
            subnets=subnets,
            security_groups=security_groups,
            kms_key=kms_key,
            service_endpoints=endpoint_management != "CUSTOMER",
            delete_on_stack_delete=delete_on_stack_delete,
            replaced_arn=_environment_arn(stack, delete_replaced_target) if delete_replaced_target else None,
        )
        environment = {"DELETE_REPLACED_TARGET": delete_replaced_target} if delete_replaced_target else {}
        super().__init__(
            scope,
            construct_id,
            handler_module="clone_env.handler",
            description=f"mwaa-upgrade clone of {source_environment_name} into {target_name}",
            statements=statements,
            wildcard_reasons=WILDCARD_REASONS,
            query_interval=query_interval,
            total_timeout=TOTAL_TIMEOUT,
            log_retention_days=log_retention_days,
            lambda_runtime=lambda_runtime,
            environment=environment,
        )
        self.environment_name = target_name
        self.environment_arn = environment_arn
        self.resource = self.add_resource(
            "Resource",
            resource_type=RESOURCE_TYPE,
            properties={
                "SourceEnvironmentName": source_environment_name,
                "TargetName": target_name,
                "MigrationId": migration_id,
                "Overrides": merged,
                "OmitFields": omit,
                "DeleteOnStackDelete": "true" if delete_on_stack_delete else "false",
                "WaitBudgetSeconds": str(self.wait_budget_seconds),
            },
        )
        if delete_replaced_target:
            # read by the review: a rename says the previous target will be deleted
            self.resource.node.default_child.add_metadata(  # type: ignore[union-attr]
                DELETE_REPLACED_METADATA, delete_replaced_target
            )


def _environment_arn(stack: cdk.Stack, name: str) -> str:
    return stack.format_arn(
        service="airflow", resource="environment", resource_name=name, arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME
    )


def _handler_statements(
    stack: cdk.Stack,
    *,
    source_arn: str,
    target_arn: str,
    execution_role: iam.IRole,
    dag_bucket: s3.IBucket,
    vpc: ec2.IVpc,
    subnets: Sequence[ec2.ISubnet],
    security_groups: Sequence[ec2.ISecurityGroup],
    kms_key: kms.IKey | None,
    service_endpoints: bool,
    delete_on_stack_delete: bool,
    replaced_arn: str | None,
) -> list[iam.PolicyStatement]:
    """The clone handler's permissions: every statement scoped as far as the API allows."""
    statements = [
        # Read the environment to clone (nothing else of the source).
        iam.PolicyStatement(sid="ReadSource", actions=["airflow:GetEnvironment"], resources=[source_arn]),
        # Create the target, wait for it, update it in place, (re)tag it. CreateEnvironment
        # with Tags also authorizes airflow:TagResource (service authorization reference).
        iam.PolicyStatement(
            sid="ManageTarget",
            resources=[target_arn],
            actions=[
                "airflow:GetEnvironment",
                "airflow:CreateEnvironment",
                "airflow:UpdateEnvironment",
                "airflow:TagResource",
            ],
        ),
        # CreateEnvironment passes the target's execution role to MWAA; only that role, only to MWAA.
        iam.PolicyStatement(
            sid="PassTargetRole",
            actions=["iam:PassRole"],
            resources=[execution_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "airflow.amazonaws.com"}},
        ),
        # MWAA validates the network with the caller's credentials. Describe* actions have no
        # resource-level permissions in EC2, hence "*".
        iam.PolicyStatement(
            sid="DescribeNetwork",
            resources=["*"],
            actions=[
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSubnets",
                "ec2:DescribeVpcs",
                "ec2:DescribeRouteTables",
            ],
        ),
        # MWAA checks the DAG bucket's encryption with the caller's credentials.
        iam.PolicyStatement(
            sid="ReadDagBucketEncryption", actions=["s3:GetEncryptionConfiguration"], resources=[dag_bucket.bucket_arn]
        ),
        # Tell a rollback or replacement from a real change / a stack deletion.
        iam.PolicyStatement(
            sid="ReadOwnStackStatus", actions=["cloudformation:DescribeStacks"], resources=[stack.stack_id]
        ),
    ]
    subnet_arns = [stack.format_arn(service="ec2", resource="subnet", resource_name=s.subnet_id) for s in subnets]
    sg_arns = [
        stack.format_arn(service="ec2", resource="security-group", resource_name=g.security_group_id)
        for g in security_groups
    ]
    if service_endpoints:
        # With SERVICE endpoint management MWAA creates the database/webserver VPC endpoints and
        # its ENIs in the target subnets on the caller's authority. Only these subnets, security
        # groups and VPC; the new endpoint's / ENI's id is unknown in advance (this account and region).
        statements.append(
            iam.PolicyStatement(
                sid="CreateServiceEndpoints",
                actions=["ec2:CreateVpcEndpoint"],
                resources=[
                    stack.format_arn(service="ec2", resource="vpc-endpoint", resource_name="*"),
                    stack.format_arn(service="ec2", resource="vpc", resource_name=vpc.vpc_id),
                    *subnet_arns,
                    *sg_arns,
                ],
            )
        )
        statements.append(
            iam.PolicyStatement(
                sid="CreateServiceInterfaces",
                actions=["ec2:CreateNetworkInterface"],
                resources=[
                    stack.format_arn(service="ec2", resource="network-interface", resource_name="*"),
                    *subnet_arns,
                    *sg_arns,
                ],
            )
        )
    if kms_key is not None:
        # A customer managed key: MWAA creates grants on it for the environment's resources with
        # the caller's credentials (grants are retired by MWAA on deletion).
        statements.append(
            iam.PolicyStatement(
                sid="UseTargetKey",
                resources=[kms_key.key_arn],
                actions=[
                    "kms:DescribeKey",
                    "kms:ListGrants",
                    "kms:CreateGrant",
                    "kms:RevokeGrant",
                    "kms:Decrypt",
                    "kms:Encrypt",
                    "kms:GenerateDataKey*",
                    "kms:ReEncrypt*",
                ],
            )
        )
    if delete_on_stack_delete:
        statements.append(
            iam.PolicyStatement(sid="DeleteTarget", actions=["airflow:DeleteEnvironment"], resources=[target_arn])
        )
    if replaced_arn is not None:
        # The stage opted in to deleting the previous target after a rename (only once the
        # update has succeeded, and only if it carries this migration's tags).
        statements.append(
            iam.PolicyStatement(
                sid="DeleteReplacedTarget",
                actions=["airflow:GetEnvironment", "airflow:DeleteEnvironment"],
                resources=[replaced_arn],
            )
        )
    # Not granted, on purpose: logs:* (MWAA's service-linked role creates the airflow-{env}-*
    # log groups) and iam:CreateServiceLinkedRole (the source environment in this account proves
    # AWSServiceRoleForAmazonMWAA exists).
    return statements


def _merge_overrides(overrides: dict, typed: dict, target_name: str) -> tuple[dict, list[str]]:
    """Overrides + the typed props; None values become OmitFields (CloudFormation cannot
    carry a null). Raise on a conflict between an override and a typed prop."""
    if "Name" in overrides and overrides["Name"] != target_name:
        raise ValueError(f"overrides['Name']={overrides['Name']!r} differs from target_name={target_name!r}")
    overrides.pop("Name", None)
    for key, value in typed.items():
        if key in overrides and overrides[key] != value:
            raise ValueError(
                f"overrides[{key!r}] conflicts with the construct's typed prop for it; pass it only once "
                "(the props also scope the handler's permissions)"
            )
        overrides[key] = value
    omit = sorted(k for k, v in overrides.items() if v is None)
    return {k: v for k, v in overrides.items() if v is not None}, omit
