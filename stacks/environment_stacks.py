"""Source and target environment stacks.

Source: ``create`` builds an MWAA environment with the construct; ``existing`` adopts one by
name and role ARN and only attaches the export policy to that role. Target: always builds the
role, DAG bucket, security group and log groups; ``declared`` also renders the
``AWS::MWAA::Environment``, ``clone`` leaves it to the clone custom resource (issue 4), which
reads the attributes listed on :class:`TargetEnvironmentStack`.
"""
from __future__ import annotations

from typing import Any, Optional

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from constructs_lib.migration_policies import MigrationPolicy, source_export_statements, target_import_statements
from constructs_lib.mwaa_environment import MwaaEnvironment, S3File
from stacks.network_stack import NetworkStack
from stacks.stage_config import EnvironmentSettings, MigrationConfig, S3Object, SourceConfig, TargetConfig
from stacks.storage_stack import MigrationStorageStack

_REMOVAL = {"retain": cdk.RemovalPolicy.RETAIN, "destroy": cdk.RemovalPolicy.DESTROY}


def _file(o: Optional[S3Object]) -> Optional[S3File]:
    return None if o is None else S3File(o.s3_path, o.object_version)


def build_environment(scope: Construct, env: EnvironmentSettings, *, network: NetworkStack,
                      storage: MigrationStorageStack, declare: bool) -> MwaaEnvironment:
    key = None
    if env.customer_kms_key:
        key = kms.Key(scope, "EnvironmentKey", enable_key_rotation=True,
                      description=f"MWAA environment {env.name}: DAG bucket, logs, queues",
                      removal_policy=cdk.RemovalPolicy.RETAIN)
    return MwaaEnvironment(
        scope, "Environment",
        name=env.name, airflow_version=env.airflow_version,
        vpc=network.vpc, subnets=network.mwaa_subnets,
        declare_environment=declare,
        environment_class=env.environment_class, schedulers=env.schedulers,
        min_workers=env.min_workers, max_workers=env.max_workers,
        min_webservers=env.min_webservers, max_webservers=env.max_webservers,
        webserver_access_mode=env.webserver_access_mode, dag_s3_path=env.dag_s3_path,
        airflow_configuration_options=dict(env.airflow_configuration_options),
        requirements=_file(env.requirements), plugins=_file(env.plugins),
        startup_script=_file(env.startup_script),
        secrets_manager_backend=env.secrets_manager_backend, kms_key=key,
        weekly_maintenance_window_start=env.weekly_maintenance_window_start,
        tags=dict(env.tags),
        log_levels=dict(env.logging.levels), log_retention_days=env.logging.retention_days,
        log_removal_policy=_REMOVAL[env.logging.removal_policy],
        access_logs_bucket=storage.access_logs_bucket,
        endpoint_security_group=network.endpoint_security_group,
        webserver_clients=[network.lambda_security_group],
    )


class SourceEnvironmentStack(cdk.Stack):
    """Attributes: ``environment_name``, ``airflow_version``, ``execution_role`` (an IRole),
    ``mode``, ``mwaa`` (the MwaaEnvironment construct), ``dag_bucket`` and ``security_group``
    (the last three None when the source is adopted: read them from GetEnvironment)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: SourceConfig, network: NetworkStack,
                 storage: MigrationStorageStack, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.mode = config.mode
        self.environment_name = config.environment.name
        self.airflow_version = config.environment.airflow_version
        self.mwaa: Optional[MwaaEnvironment] = None
        self.dag_bucket: Optional[s3.IBucket] = None
        self.security_group = None
        if config.mode == "create":
            self.mwaa = build_environment(self, config.environment, network=network, storage=storage,
                                                 declare=True)
            self.execution_role: iam.IRole = self.mwaa.role
            self.dag_bucket = self.mwaa.bucket
            self.security_group = self.mwaa.security_group
        else:
            assert config.role_arn is not None
            # mutable: CDK attaches our policy to the adopted role; nothing else of it changes.
            self.execution_role = iam.Role.from_role_arn(self, "AdoptedExecutionRole", config.role_arn, mutable=True)
        bucket = s3.Bucket.from_bucket_name(self, "MigrationBucket", storage.bucket_name)
        self.export_policy = MigrationPolicy(
            self, "ExportPolicy", role=self.execution_role,
            statements=source_export_statements(stack=self, bucket=bucket, key=storage.key,
                                                prefix=storage.export_prefix))
        self.add_stack_dependency(storage, "the export policy names the migration bucket")


class TargetEnvironmentStack(cdk.Stack):
    """The target environment, or for ``clone`` everything but the environment.

    Seams for the clone custom resource (issue 4) and the DAG triggers (issue 5):
    ``environment_name``, ``airflow_version``, ``creation``, ``execution_role``, ``dag_bucket``,
    ``security_group``, ``subnet_ids``, ``planned_overrides`` (CreateEnvironment parameters,
    tokens resolved by CloudFormation), ``source_environment_name``, ``migration`` (the
    stage's MigrationConfig), ``migration_bucket`` (imported by name), ``migration_bucket_name``, ``migration_key``, ``export_prefix``,
    ``mwaa`` (the MwaaEnvironment construct; its ``.environment`` is the CfnEnvironment or None).
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: TargetConfig, migration: MigrationConfig,
                 network: NetworkStack, storage: MigrationStorageStack, source: SourceEnvironmentStack,
                 **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.creation = config.creation
        self.mwaa = build_environment(self, config.environment, network=network, storage=storage,
                                             declare=config.creation == "declared")
        self.environment_name = config.environment.name
        self.airflow_version = config.environment.airflow_version
        self.execution_role = self.mwaa.role
        self.dag_bucket = self.mwaa.bucket
        self.security_group = self.mwaa.security_group
        self.subnet_ids = list(self.mwaa.subnet_ids)
        self.planned_overrides: dict = self.mwaa.create_environment_parameters
        self.source_environment_name = source.environment_name
        self.migration = migration
        self.migration_bucket_name = storage.bucket_name
        self.migration_key = storage.key
        self.export_prefix = storage.export_prefix
        bucket = s3.Bucket.from_bucket_name(self, "MigrationBucket", storage.bucket_name)
        self.migration_bucket = bucket
        self.import_policy = MigrationPolicy(
            self, "ImportPolicy", role=self.execution_role,
            statements=target_import_statements(stack=self, bucket=bucket, key=storage.key,
                                                prefix=storage.export_prefix,
                                                source_environment=source.environment_name))
        # Two MWAA environments created in parallel in one account can be throttled.
        self.add_stack_dependency(source, "create the source environment before the target")
