"""Private network for MWAA: a VPC (created, or an existing one by explicit IDs) and the
VPC endpoints a private environment needs. Synth never looks anything up."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from constructs_lib.log_retention import retention
from stacks.config import NetworkConfig

# Interface endpoints a private MWAA environment needs (MWAA user guide, "private network").
REQUIRED_ENDPOINTS = {
    "Sqs": ec2.InterfaceVpcEndpointAwsService.SQS,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "Monitoring": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
    "Kms": ec2.InterfaceVpcEndpointAwsService.KMS,
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDkr": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "AirflowApi": ec2.InterfaceVpcEndpointAwsService.AIRFLOW_API,
    "AirflowEnv": ec2.InterfaceVpcEndpointAwsService.AIRFLOW_ENV,
    "AirflowOps": ec2.InterfaceVpcEndpointAwsService.AIRFLOW_OPS,
}


class NetworkStack(cdk.Stack):
    """``cloudformation_endpoint``: add the CloudFormation interface endpoint (in-VPC Lambdas
    that call DescribeStacks). Attributes for the other stacks: ``vpc``, ``mwaa_subnets`` (exactly 2),
    ``endpoint_security_group`` (443 is opened to it per client by the client's stack) and
    ``lambda_security_group`` (for our in-VPC Lambdas; already admitted by the endpoints)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: NetworkConfig,
        secrets_manager_endpoint: bool,
        cloudformation_endpoint: bool = False,
        **kwargs: Any,
    ) -> None:
        self._azs = list(config.availability_zones)
        super().__init__(scope, construct_id, **kwargs)
        self.config = config

        if config.mode == "create":
            self.vpc = self._create_vpc(config)
            subnet_type = ec2.SubnetType.PRIVATE_WITH_EGRESS if config.nat_gateway else ec2.SubnetType.PRIVATE_ISOLATED
            self.mwaa_subnets = list(self.vpc.select_subnets(subnet_type=subnet_type).subnets)
        else:
            self.vpc = ec2.Vpc.from_vpc_attributes(
                self,
                "Vpc",
                vpc_id=config.vpc_id,
                vpc_cidr_block=config.vpc_cidr,
                availability_zones=list(config.availability_zones),
                private_subnet_ids=list(config.private_subnet_ids),
                private_subnet_route_table_ids=list(config.route_table_ids),
            )
            self.mwaa_subnets = list(self.vpc.private_subnets)

        # Flow logs (all traffic) for the VPC, created or existing.
        flow_group = logs.LogGroup(
            self,
            "FlowLogGroup",
            retention=retention(config.flow_log_retention_days),
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        # Confused-deputy protection: only flow logs of this account (and region) may use the role.
        flow_logs_principal = iam.ServicePrincipal(
            "vpc-flow-logs.amazonaws.com",
            conditions={
                "StringEquals": {"aws:SourceAccount": self.account},
                "ArnLike": {
                    "aws:SourceArn": self.format_arn(service="ec2", resource="vpc-flow-log", resource_name="*")
                },
            },
        )
        flow_role = iam.Role(
            self,
            "FlowLogRole",
            assumed_by=flow_logs_principal,
            description="VPC flow logs delivery to the flow log group",
        )
        ec2.FlowLog(
            self,
            "FlowLog",
            resource_type=ec2.FlowLogResourceType.from_vpc(self.vpc),
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_group, flow_role),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )

        # Endpoints admit 443 only from the security groups of the environments and our
        # Lambdas; each client's stack adds its own rule (see MwaaEnvironment).
        self.endpoint_security_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            allow_all_outbound=False,
            description="VPC interface endpoints: HTTPS from MWAA environments and migration Lambdas only",
        )
        self.lambda_security_group = ec2.SecurityGroup(
            self,
            "LambdaSecurityGroup",
            vpc=self.vpc,
            allow_all_outbound=False,
            description="Migration Lambdas inside the VPC: HTTPS out to endpoints and MWAA webservers",
        )
        self.endpoint_security_group.add_ingress_rule(
            self.lambda_security_group, ec2.Port.tcp(443), "HTTPS from migration Lambdas"
        )
        # 443 to anywhere: inside the VPC that reaches the interface endpoints and private
        # webservers; S3 is reached through the gateway endpoint, whose regional prefix list
        # cannot be named without a lookup. Without NAT there is no other route out.
        self.lambda_security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS endpoints and private webservers"
        )

        self.endpoints: dict[str, ec2.InterfaceVpcEndpoint] = {}
        if config.create_endpoints:
            ec2.GatewayVpcEndpoint(
                self,
                "S3Endpoint",
                vpc=self.vpc,
                service=ec2.GatewayVpcEndpointAwsService.S3,
                subnets=[ec2.SubnetSelection(subnets=self.mwaa_subnets)],
            )
            services = dict(REQUIRED_ENDPOINTS)
            if secrets_manager_endpoint:
                services["SecretsManager"] = ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER
            if config.sts_endpoint:
                services["Sts"] = ec2.InterfaceVpcEndpointAwsService.STS
            if cloudformation_endpoint:
                # The migration runner's Lambdas run in the VPC (a PRIVATE_ONLY webserver) and
                # call DescribeStacks to tell a rollback from an update.
                services["CloudFormation"] = ec2.InterfaceVpcEndpointAwsService.CLOUDFORMATION
            for name, service in services.items():
                self.endpoints[name] = ec2.InterfaceVpcEndpoint(
                    self,
                    f"{name}Endpoint",
                    vpc=self.vpc,
                    service=service,
                    private_dns_enabled=True,
                    subnets=ec2.SubnetSelection(subnets=self.mwaa_subnets),
                    security_groups=[self.endpoint_security_group],
                    open=False,
                )

        self.subnet_ids = [s.subnet_id for s in self.mwaa_subnets]
        # An adopted PRIVATE_ONLY source's security group is not ours: its owner admits 443 from
        # this group so the migration runner's CLI fallback reaches the webserver (docs/deploy.md).
        cdk.CfnOutput(
            self,
            "LambdaSecurityGroupId",
            value=self.lambda_security_group.security_group_id,
            description="Security group of the migration Lambdas in the VPC (allow 443 from it)",
        )

    @property
    def availability_zones(self) -> list[str]:
        # The configured AZs, so ec2.Vpc never asks the account (no context lookup at synth).
        return self._azs

    def _create_vpc(self, config: NetworkConfig) -> ec2.Vpc:
        private_type = ec2.SubnetType.PRIVATE_WITH_EGRESS if config.nat_gateway else ec2.SubnetType.PRIVATE_ISOLATED
        subnet_configuration = [ec2.SubnetConfiguration(name="Private", subnet_type=private_type, cidr_mask=24)]
        if config.nat_gateway:
            subnet_configuration.append(
                ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=28)
            )
        vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(config.vpc_cidr),
            availability_zones=list(config.availability_zones),
            subnet_configuration=subnet_configuration,
            nat_gateways=2 if config.nat_gateway else 0,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            restrict_default_security_group=True,
        )
        # aws-cdk-lib's built-in template check warns on literal AZs (W3010, also ignored in
        # .cfnlintrc.yaml): deliberate, the stage file names them so synth never looks them up.
        cdk.Validations.of(vpc).acknowledge(
            cdk.Acknowledgment(
                id="CloudFormation-Validate::W3010",
                reason="the two availability zones come from the stage file on purpose: synth runs with "
                "--no-lookups and never asks the account (.cfnlintrc.yaml ignores W3010 for the same reason)",
            )
        )
        # Exact subnet CIDRs from the stage file (validated there: inside the VPC, no
        # overlap); ec2.Vpc only knows masks, so its computed blocks are replaced here.
        groups = [
            (vpc.isolated_subnets or vpc.private_subnets, config.private_subnet_cidrs),
            (vpc.public_subnets, config.public_subnet_cidrs),
        ]
        for subnets, cidrs in groups:
            for subnet, cidr in zip(subnets, cidrs, strict=False):  # the stage file may name fewer
                subnet.node.default_child.cidr_block = cidr  # type: ignore[union-attr]
        return vpc
