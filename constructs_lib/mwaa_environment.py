"""One Amazon MWAA environment with everything it needs, secure by default.

Creates the DAG bucket, the execution role (the documented baseline, scoped to this
environment), a self-referencing security group, the five log groups with managed retention
and, unless ``declare_environment=False``, the ``AWS::MWAA::Environment`` itself.

With ``declare_environment=False`` (a target that a custom resource clones from the live
source) everything but the environment is created, and :attr:`create_environment_parameters`
holds what this construct decides, in CreateEnvironment parameter names, for that custom
resource to apply over the source's settings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_mwaa as mwaa
from aws_cdk import aws_s3 as s3
from constructs import Construct

from constructs_lib.log_retention import retention
from constructs_lib.nag import acknowledge_wildcards
from mwaa_common import versions
from mwaa_common.settings import ALLOW_REPLACEMENT_METADATA, BY_API, LOG_TYPES, S3_FILES, SCALAR_PROPS, snake

__all__ = [
    "ALLOW_REPLACEMENT_METADATA",
    "LOG_TYPES",
    "MwaaEnvironment",
    "S3File",
    "create_environment_parameters",
    "retention",
]

# The guide's Secrets Manager layout: Airflow looks secrets up under these prefixes.
SECRETS_PREFIXES = {"connections_prefix": "airflow/connections", "variables_prefix": "airflow/variables"}


@dataclass(frozen=True)
class S3File:
    """An object in the DAG bucket, optionally pinned to an S3 object version."""

    s3_path: str
    object_version: str | None = None


class MwaaEnvironment(Construct):
    """An MWAA environment (or, with ``declare_environment=False``, all its parts but the environment)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        airflow_version: str,
        vpc: ec2.IVpc,
        subnets: Sequence[ec2.ISubnet],
        declare_environment: bool = True,
        environment_class: str | None = None,
        schedulers: int | None = None,
        min_workers: int | None = None,
        max_workers: int | None = None,
        min_webservers: int | None = None,
        max_webservers: int | None = None,
        webserver_access_mode: str = "PRIVATE_ONLY",
        dag_s3_path: str = "dags",
        airflow_configuration_options: Mapping[str, str] | None = None,
        requirements: S3File | None = None,
        plugins: S3File | None = None,
        startup_script: S3File | None = None,
        secrets_manager_backend: bool = False,
        kms_key: kms.IKey | None = None,
        weekly_maintenance_window_start: str | None = None,
        tags: Mapping[str, str] | None = None,
        log_levels: Mapping[str, str] | None = None,
        log_retention_days: int = 30,
        log_removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
        access_logs_bucket: s3.IBucket | None = None,
        endpoint_security_group: ec2.ISecurityGroup | None = None,
        webserver_clients: Sequence[ec2.ISecurityGroup] = (),
        allow_replacement: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        if len(subnets) != 2:
            raise ValueError(f"MWAA needs exactly 2 private subnets, got {len(subnets)}")
        if environment_class is not None:
            versions.check_class(
                environment_class,
                schedulers=schedulers,
                min_workers=min_workers,
                max_workers=max_workers,
                min_webservers=min_webservers,
                max_webservers=max_webservers,
            )
        stack = cdk.Stack.of(self)
        self.name = name
        self.airflow_version = airflow_version
        self.declared = declare_environment
        self.environment_arn = stack.format_arn(
            service="airflow", resource="environment", resource_name=name, arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME
        )
        self.subnet_ids = [s.subnet_id for s in subnets]
        self.kms_key = kms_key

        # -- DAG bucket: versioned (MWAA requires it for object versions), private, TLS only.
        self.bucket = s3.Bucket(
            self,
            "DagBucket",
            versioned=True,
            encryption=s3.BucketEncryption.KMS if kms_key else s3.BucketEncryption.S3_MANAGED,
            encryption_key=kms_key,
            bucket_key_enabled=bool(kms_key),
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            server_access_logs_bucket=access_logs_bucket,
            server_access_logs_prefix=f"dag-buckets/{name}/" if access_logs_bucket else None,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-old-versions",
                    noncurrent_version_expiration=cdk.Duration.days(90),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(7),
                )
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )

        # -- Log groups. MWAA writes to airflow-{name}-{Type} and creates the groups only when
        # they do not exist, without a retention policy (CloudFormation's LoggingConfiguration
        # has no retention and the group ARNs there are read-only). Creating the five groups
        # here first, with the names MWAA uses, is the common and cheapest way to own their
        # retention (and removal) in the template: no custom resource, no extra Lambda, and the
        # environment depends on them so they always exist before MWAA starts logging.
        self.log_groups: dict[str, logs.LogGroup] = {}
        for key, (_, suffix) in LOG_TYPES.items():
            self.log_groups[key] = logs.LogGroup(
                self,
                f"{suffix}Logs",
                log_group_name=f"airflow-{name}-{suffix}",
                retention=retention(log_retention_days),
                encryption_key=kms_key,
                removal_policy=log_removal_policy,
            )

        # -- Security group: MWAA's components talk to each other through it (self reference).
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            allow_all_outbound=True,
            description=f"MWAA environment {name}: self-referencing, 443 from listed clients",
        )
        self.security_group.add_ingress_rule(
            self.security_group, ec2.Port.all_traffic(), "MWAA components of this environment"
        )
        for client in webserver_clients:
            self.security_group.add_ingress_rule(client, ec2.Port.tcp(443), "HTTPS to the webserver")
        if endpoint_security_group is not None:
            # The rule lives in this stack (remote_rule) so the network stack never references us.
            endpoint_security_group.add_ingress_rule(
                self.security_group, ec2.Port.tcp(443), f"HTTPS from MWAA {name}", remote_rule=True
            )

        # -- Execution role.
        statements = execution_role_statements(
            stack=stack,
            name=name,
            environment_arn=self.environment_arn,
            bucket=self.bucket,
            kms_key=kms_key,
            secrets_manager_backend=secrets_manager_backend,
        )
        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("airflow.amazonaws.com"),
            description=f"Execution role of MWAA environment {name}",
            inline_policies={"execution": iam.PolicyDocument(statements=statements)},
        )
        self.acknowledged = acknowledge_wildcards(self.role.node.default_child, statements, EXECUTION_ROLE_REASONS)
        trust = self.role.assume_role_policy
        assert trust is not None
        # Replace the default trust with one statement for both MWAA principals, scoped to this
        # environment in this account (confused-deputy protection).
        trust_doc = iam.PolicyDocument(
            statements=[
                iam.PolicyStatement(
                    actions=["sts:AssumeRole"],
                    principals=[
                        iam.ServicePrincipal("airflow.amazonaws.com"),
                        iam.ServicePrincipal("airflow-env.amazonaws.com"),
                    ],
                    conditions={
                        "StringEquals": {"aws:SourceAccount": stack.account},
                        "ArnLike": {"aws:SourceArn": self.environment_arn},
                    },
                )
            ]
        )
        self.role.node.default_child.assume_role_policy_document = trust_doc  # type: ignore[union-attr]

        if kms_key is not None:
            # MWAA writes its logs and queues with the customer key (MWAA user guide, customer
            # managed keys): CloudWatch Logs must be allowed to use it for this environment only.
            kms_key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"LogsFor{name.replace('-', '').replace('_', '')}"[:64],
                    principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                    actions=[
                        "kms:Encrypt",
                        "kms:Decrypt",
                        "kms:ReEncryptFrom",
                        "kms:ReEncryptTo",
                        "kms:GenerateDataKey",
                        "kms:GenerateDataKeyWithoutPlaintext",
                        "kms:DescribeKey",
                    ],
                    resources=["*"],  # in a key policy "*" means this key
                    conditions={
                        "ArnLike": {
                            "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                                service="logs",
                                resource="log-group",
                                resource_name=f"airflow-{name}-*",
                                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                            )
                        }
                    },
                )
            )

        # -- CreateEnvironment parameters this construct decides (API names). A cloned target
        # applies these over the source's settings; a declared one renders them below.
        p = create_environment_parameters(
            name=name,
            airflow_version=airflow_version,
            execution_role_arn=self.role.role_arn,
            source_bucket_arn=self.bucket.bucket_arn,
            subnet_ids=self.subnet_ids,
            security_group_ids=[self.security_group.security_group_id],
            kms_key_arn=kms_key.key_arn if kms_key else None,
            environment_class=environment_class,
            schedulers=schedulers,
            min_workers=min_workers,
            max_workers=max_workers,
            min_webservers=min_webservers,
            max_webservers=max_webservers,
            webserver_access_mode=webserver_access_mode,
            dag_s3_path=dag_s3_path,
            airflow_configuration_options=airflow_configuration_options,
            requirements=requirements,
            plugins=plugins,
            startup_script=startup_script,
            secrets_manager_backend=secrets_manager_backend,
            weekly_maintenance_window_start=weekly_maintenance_window_start,
            tags=tags,
            log_levels=log_levels,
        )
        self.create_environment_parameters: dict = p

        self.environment: mwaa.CfnEnvironment | None = None
        if declare_environment:
            self.environment = _render(self, p)
            # A deleted stack or a replacing change (Name, KmsKey, subnets, endpoint management)
            # must never delete a live environment and its metadata database: both policies RETAIN.
            self.environment.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
            # Read by `make review` (and synth with a baseline): a replacing change is refused
            # unless the stage allows it (tools/review, docs/review.md).
            self.environment.add_metadata(ALLOW_REPLACEMENT_METADATA, bool(allow_replacement))
            for group in self.log_groups.values():
                self.environment.node.add_dependency(group)
            cdk.CfnOutput(
                self, "WebserverUrl", value=self.environment.attr_webserver_url, description=f"Webserver URL of {name}"
            )
        cdk.CfnOutput(self, "EnvironmentArn", value=self.environment_arn, description=f"ARN of MWAA environment {name}")
        cdk.CfnOutput(self, "ExecutionRoleArn", value=self.role.role_arn, description=f"Execution role of {name}")
        cdk.CfnOutput(self, "DagBucketName", value=self.bucket.bucket_name, description=f"DAG bucket of {name}")
        for key, group in self.log_groups.items():
            cdk.CfnOutput(
                self,
                f"{LOG_TYPES[key][1]}LogGroupArn",
                value=group.log_group_arn,
                description=f"{LOG_TYPES[key][1]} log group of {name}",
            )

    @property
    def log_group_names(self) -> dict[str, str]:
        return {k: f"airflow-{self.name}-{suffix}" for k, (_, suffix) in LOG_TYPES.items()}


def create_environment_parameters(
    *,
    name: str,
    airflow_version: str,
    execution_role_arn: str,
    source_bucket_arn: str,
    subnet_ids: Sequence[str],
    security_group_ids: Sequence[str],
    kms_key_arn: str | None = None,
    environment_class: str | None = None,
    schedulers: int | None = None,
    min_workers: int | None = None,
    max_workers: int | None = None,
    min_webservers: int | None = None,
    max_webservers: int | None = None,
    webserver_access_mode: str = "PRIVATE_ONLY",
    dag_s3_path: str = "dags",
    airflow_configuration_options: Mapping[str, str] | None = None,
    requirements: S3File | None = None,
    plugins: S3File | None = None,
    startup_script: S3File | None = None,
    secrets_manager_backend: bool = False,
    weekly_maintenance_window_start: str | None = None,
    tags: Mapping[str, str] | None = None,
    log_levels: Mapping[str, str] | None = None,
) -> dict:
    """The CreateEnvironment parameters (API names) an environment with these settings gets.

    The one mapping from settings to parameters: :class:`MwaaEnvironment` calls it with its
    resources' tokens (and renders the declared environment from the result), and
    ``tools.plan_clone`` calls it offline with literal stand-ins for the deploy-time ARNs and
    IDs. ``None`` settings are left out (a cloned target then keeps the source's value).
    """
    options = dict(airflow_configuration_options or {})
    if secrets_manager_backend:
        options["secrets.backend"] = versions.VERSIONS[airflow_version]["secrets_backend"]
        options["secrets.backend_kwargs"] = json.dumps(SECRETS_PREFIXES, separators=(", ", ": "))
    p: dict = {
        "Name": name,
        "AirflowVersion": airflow_version,
        "ExecutionRoleArn": execution_role_arn,
        "SourceBucketArn": source_bucket_arn,
        "DagS3Path": dag_s3_path,
        "NetworkConfiguration": {"SubnetIds": list(subnet_ids), "SecurityGroupIds": list(security_group_ids)},
        "WebserverAccessMode": webserver_access_mode,
        "LoggingConfiguration": {
            member: {"Enabled": True, "LogLevel": (log_levels or {}).get(key, "INFO")}
            for key, (member, _) in LOG_TYPES.items()
        },
    }
    scalars = {
        "environment_class": environment_class,
        "schedulers": schedulers,
        "min_workers": min_workers,
        "max_workers": max_workers,
        "min_webservers": min_webservers,
        "max_webservers": max_webservers,
        "kms_key_arn": kms_key_arn,
        "weekly_maintenance_window_start": weekly_maintenance_window_start,
    }
    optional: dict = {SCALAR_PROPS[prop]: value for prop, value in scalars.items()}
    optional["AirflowConfigurationOptions"] = options or None
    optional["Tags"] = dict(tags) if tags else None
    files = {"requirements": requirements, "plugins": plugins, "startup_script": startup_script}
    for prop, f in files.items():
        if f is not None:
            path_param, version_param = S3_FILES[prop]
            optional[path_param] = f.s3_path
            optional[version_param] = f.object_version
    p.update({k: v for k, v in optional.items() if v is not None})
    return p


# Why each wildcard of the execution role is needed (cdk-nag AwsSolutions-IAM5 acknowledgements).
EXECUTION_ROLE_REASONS = {
    "ReadDagBucket": "MWAA execution-role baseline (MWAA user guide): the service reads DAGs, plugins, "
    "requirements and bucket settings with s3:GetObject*/GetBucket*/List*; resources are "
    "this environment's DAG bucket and its objects only.",
    "WriteOwnLogs": "baseline: MWAA writes streams into its five log groups; resources are limited to this "
    "environment's airflow-{name}-* log groups.",
    "DescribeLogGroups": "logs:DescribeLogGroups has no resource-level permission (Service Authorization "
    "Reference); baseline statement.",
    "CheckAccountPublicAccessBlock": "s3:GetAccountPublicAccessBlock is account-level and takes no resource "
    "ARN; MWAA checks that the DAG bucket cannot be public.",
    "PutMetrics": "cloudwatch:PutMetricData supports no resource-level permission; MWAA publishes the "
    "environment's metrics.",
    "CeleryQueues": "MWAA creates its Celery queues airflow-celery-* in a service-owned account whose id is "
    "not known in advance; baseline scopes them by name and region.",
    "QueueEncryption": "kms:GenerateDataKey* (GenerateDataKey and ...WithoutPlaintext) for the AWS-owned key "
    "of MWAA's SQS queues; usable only through SQS in this region (kms:ViaService). "
    "NotResource this account's keys: the AWS-owned key lives in a service account whose "
    "id is not known (MWAA's documented execution-role policy does the same).",
    "CustomerKeyViaSqsAndS3": "kms:GenerateDataKey* on this environment's customer key, only through SQS "
    "and S3 in this region (kms:ViaService).",
    "ReadAirflowSecrets": "the guide's Secrets Manager backend reads any secret under airflow/connections/ "
    "and airflow/variables/ (the wildcard also covers the random suffix of secret ARNs).",
    "ListSecrets": "secretsmanager:ListSecrets supports no resource-level permission (guide, execution role).",
}


def execution_role_statements(
    *,
    stack: cdk.Stack,
    name: str,
    environment_arn: str,
    bucket: s3.IBucket,
    kms_key: kms.IKey | None,
    secrets_manager_backend: bool,
) -> list[iam.PolicyStatement]:
    """The MWAA execution-role baseline (MWAA user guide), scoped to one environment.

    Every statement says what it is for in its Sid; docs/foundation.md lists them.
    """
    region, account = stack.region, stack.account
    log_groups = stack.format_arn(
        service="logs",
        resource="log-group",
        resource_name=f"airflow-{name}-*",
        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
    )
    st = [
        iam.PolicyStatement(sid="PublishMetrics", actions=["airflow:PublishMetrics"], resources=[environment_arn]),
        iam.PolicyStatement(
            sid="NoBucketListing",
            effect=iam.Effect.DENY,
            actions=["s3:ListAllMyBuckets"],
            resources=[bucket.bucket_arn, bucket.arn_for_objects("*")],
        ),
        iam.PolicyStatement(
            sid="ReadDagBucket",
            actions=["s3:GetObject*", "s3:GetBucket*", "s3:List*"],
            resources=[bucket.bucket_arn, bucket.arn_for_objects("*")],
        ),
        iam.PolicyStatement(
            sid="WriteOwnLogs",
            actions=[
                "logs:CreateLogStream",
                "logs:CreateLogGroup",
                "logs:PutLogEvents",
                "logs:GetLogEvents",
                "logs:GetLogRecord",
                "logs:GetLogGroupFields",
                "logs:GetQueryResults",
            ],
            resources=[log_groups],
        ),
        iam.PolicyStatement(sid="DescribeLogGroups", actions=["logs:DescribeLogGroups"], resources=["*"]),
        iam.PolicyStatement(
            sid="CheckAccountPublicAccessBlock", actions=["s3:GetAccountPublicAccessBlock"], resources=["*"]
        ),
        iam.PolicyStatement(sid="PutMetrics", actions=["cloudwatch:PutMetricData"], resources=["*"]),
        iam.PolicyStatement(
            sid="CeleryQueues",
            actions=[
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
                "sqs:ReceiveMessage",
                "sqs:SendMessage",
            ],
            resources=[f"arn:{stack.partition}:sqs:{region}:*:airflow-celery-*"],
        ),
    ]
    if kms_key is None:
        # AWS-owned key of MWAA's SQS queues: it lives outside this account, hence NotResource.
        st.append(
            iam.PolicyStatement(
                sid="QueueEncryption",
                actions=["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey*", "kms:Encrypt"],
                not_resources=[f"arn:{stack.partition}:kms:*:{account}:key/*"],
                conditions={"StringLike": {"kms:ViaService": [f"sqs.{region}.amazonaws.com"]}},
            )
        )
    else:
        st.append(
            iam.PolicyStatement(
                sid="CustomerKeyViaSqsAndS3",
                actions=["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey*", "kms:Encrypt"],
                resources=[kms_key.key_arn],
                conditions={
                    "StringLike": {"kms:ViaService": [f"sqs.{region}.amazonaws.com", f"s3.{region}.amazonaws.com"]}
                },
            )
        )
    if secrets_manager_backend:
        secret = lambda prefix: stack.format_arn(  # noqa: E731
            service="secretsmanager",
            resource="secret",
            resource_name=f"{prefix}/*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        st.append(
            iam.PolicyStatement(
                sid="ReadAirflowSecrets",
                actions=[
                    "secretsmanager:GetResourcePolicy",
                    "secretsmanager:GetSecretValue",
                    "secretsmanager:DescribeSecret",
                    "secretsmanager:ListSecretVersionIds",
                ],
                resources=[
                    secret(SECRETS_PREFIXES["connections_prefix"]),
                    secret(SECRETS_PREFIXES["variables_prefix"]),
                ],
            )
        )
        st.append(iam.PolicyStatement(sid="ListSecrets", actions=["secretsmanager:ListSecrets"], resources=["*"]))
    return st


def _render(scope: Construct, p: dict) -> mwaa.CfnEnvironment:
    """CreateEnvironment parameters -> AWS::MWAA::Environment (names from mwaa_common.settings)."""
    E = mwaa.CfnEnvironment
    props = {BY_API[k].cdk: v for k, v in p.items()}
    net = p["NetworkConfiguration"]
    props["network_configuration"] = E.NetworkConfigurationProperty(
        subnet_ids=net["SubnetIds"], security_group_ids=net["SecurityGroupIds"]
    )
    props["logging_configuration"] = E.LoggingConfigurationProperty(
        **{
            snake(member): E.ModuleLoggingConfigurationProperty(enabled=v["Enabled"], log_level=v["LogLevel"])
            for member, v in p["LoggingConfiguration"].items()
        }
    )
    return E(scope, "Environment", **props)
