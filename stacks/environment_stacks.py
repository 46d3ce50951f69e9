"""Source and target environment stacks: the long-lived parts of the two environments.

Source: ``create`` builds an MWAA environment with the construct; ``existing`` adopts one by
name and role ARN and only attaches the export policy to that role. Target: always builds the
role, DAG bucket, security group and log groups; ``declared`` also renders the
``AWS::MWAA::Environment``, ``clone`` leaves it to the clone custom resource, which lives in
the migration stack (stacks/migration_stack.py) with the DAG runs: a failed migration step
rolls back only that stack, never the role, security group and log groups a kept
environment uses. Each stack also publishes ``dags/`` into its environment's DAG folder
(``dag_publisher``); the migration stack depends on both, so the DAGs are there before
Export and Import run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from constructs_lib.dag_publisher import DagPublisher
from constructs_lib.migration_policies import MigrationPolicy, source_export_statements, target_import_statements
from constructs_lib.mwaa_environment import MwaaEnvironment, S3File
from stacks.config import EnvironmentSettings, MigrationConfig, S3Object, SourceConfig, TargetConfig
from stacks.network_stack import NetworkStack
from stacks.storage_stack import MigrationStorageStack

_REMOVAL = {"retain": cdk.RemovalPolicy.RETAIN, "destroy": cdk.RemovalPolicy.DESTROY}


def _file(o: S3Object | None) -> S3File | None:
    return None if o is None else S3File(o.s3_path, o.object_version)


def environment_settings(env: EnvironmentSettings) -> dict:
    """The settings part of MwaaEnvironment's props (and of ``create_environment_parameters``)
    from a stage's EnvironmentSettings: the one mapping from stage keys to environment settings."""
    return dict(
        name=env.name,
        airflow_version=env.airflow_version,
        environment_class=env.environment_class,
        schedulers=env.schedulers,
        min_workers=env.min_workers,
        max_workers=env.max_workers,
        min_webservers=env.min_webservers,
        max_webservers=env.max_webservers,
        webserver_access_mode=env.webserver_access_mode,
        dag_s3_path=env.dag_s3_path,
        airflow_configuration_options=dict(env.airflow_configuration_options),
        requirements=_file(env.requirements),
        plugins=_file(env.plugins),
        startup_script=_file(env.startup_script),
        secrets_manager_backend=env.secrets_manager_backend,
        weekly_maintenance_window_start=env.weekly_maintenance_window_start,
        tags=dict(env.tags),
        log_levels=dict(env.logging.levels),
    )


def clone_overrides(planned: Mapping[str, Any]) -> dict:
    """What the clone applies over the source: the target's planned CreateEnvironment
    parameters plus an explicit decision on the two create-only parameters the stack owns.

    ``KmsKey``: the target's own key, or None (left out: an AWS-owned key), never the source's
    key by inheritance. ``EndpointManagement``: SERVICE, because the stack gives the target its
    own subnets and security group and creates no webserver/database endpoints itself; a source
    with CUSTOMER endpoints would otherwise leave the target PENDING.
    """
    out = dict(planned)
    out.setdefault("KmsKey", None)
    out.setdefault("EndpointManagement", "SERVICE")
    return out


def build_environment(
    scope: Construct, env: EnvironmentSettings, *, network: NetworkStack, storage: MigrationStorageStack, declare: bool
) -> MwaaEnvironment:
    key = None
    if env.customer_kms_key:
        key = kms.Key(
            scope,
            "EnvironmentKey",
            enable_key_rotation=True,
            description=f"MWAA environment {env.name}: DAG bucket, logs, queues",
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
    return MwaaEnvironment(
        scope,
        "Environment",
        **environment_settings(env),
        vpc=network.vpc,
        subnets=network.mwaa_subnets,
        declare_environment=declare,
        kms_key=key,
        log_retention_days=env.logging.retention_days,
        log_removal_policy=_REMOVAL[env.logging.removal_policy],
        access_logs_bucket=storage.access_logs_bucket,
        endpoint_security_group=network.endpoint_security_group,
        webserver_clients=[network.lambda_security_group],
    )


class SourceEnvironmentStack(cdk.Stack):
    """Attributes: ``environment_name``, ``airflow_version``, ``execution_role`` (an IRole),
    ``mode``, ``mwaa`` (the MwaaEnvironment construct), ``dag_bucket`` and ``security_group``
    (the last three None when the source is adopted: read them from GetEnvironment),
    ``webserver_access_mode``, ``dag_publisher`` (publishes ``dags/`` into the source's DAG
    bucket: the one the stack creates, or ``source.dag_bucket_arn`` when adopted) and
    ``export_policy`` (the guide's policy on the source role); the last two only with
    ``metadata`` (``migration.metadata``), else None."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: SourceConfig,
        network: NetworkStack,
        storage: MigrationStorageStack,
        migration_id: str,
        metadata: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.mode = config.mode
        self.environment_name = config.environment.name
        self.airflow_version = config.environment.airflow_version
        self.webserver_access_mode = config.environment.webserver_access_mode
        self.mwaa: MwaaEnvironment | None = None
        self.dag_bucket: s3.IBucket | None = None
        self.security_group = None
        if config.mode == "create":
            self.mwaa = build_environment(self, config.environment, network=network, storage=storage, declare=True)
            self.execution_role: iam.IRole = self.mwaa.role
            self.dag_bucket = self.mwaa.bucket
            self.security_group = self.mwaa.security_group
            publish_bucket: s3.IBucket = self.mwaa.bucket
            publish_key: kms.IKey | None = self.mwaa.kms_key
        else:
            assert config.role_arn is not None and config.dag_bucket_arn is not None
            # mutable: CDK attaches our policy to the adopted role; nothing else of it changes.
            self.execution_role = iam.Role.from_role_arn(self, "AdoptedExecutionRole", config.role_arn, mutable=True)
            # Named in the stage file (source.dag_bucket_arn), never looked up: only the DAG
            # publisher writes to it, and only under the environment's DagS3Path.
            publish_key = (
                kms.Key.from_key_arn(self, "AdoptedDagBucketKey", config.dag_bucket_kms_key_arn)
                if config.dag_bucket_kms_key_arn
                else None
            )
            publish_bucket = s3.Bucket.from_bucket_attributes(
                self, "AdoptedDagBucket", bucket_arn=config.dag_bucket_arn, encryption_key=publish_key
            )
        self.add_stack_dependency(storage, "the migration bucket exists before the environments")
        self.dag_publisher: DagPublisher | None = None
        self.export_policy: MigrationPolicy | None = None
        if not metadata:
            return  # no metadata migration: the source needs neither the DAGs nor the bucket
        # The migration DAGs in the source's DAG folder: the Export step (migration stack) runs
        # db_export there, so this stack (which the migration stack depends on) publishes first.
        self.dag_publisher = DagPublisher(
            self, "PublishDags", bucket=publish_bucket, prefix=f"{config.environment.dag_s3_path}/", kms_key=publish_key
        )
        bucket = s3.Bucket.from_bucket_name(self, "MigrationBucket", storage.bucket_name)
        self.export_policy = MigrationPolicy(
            self,
            "ExportPolicy",
            role=self.execution_role,
            statements=source_export_statements(
                stack=self, bucket=bucket, key=storage.key, prefix=storage.export_prefix, migration_id=migration_id
            ),
        )


class TargetEnvironmentStack(cdk.Stack):
    """The target environment's long-lived parts, and the environment itself when ``declared``.

    Seams (contracts §7): ``environment_name``, ``airflow_version``, ``creation``,
    ``execution_role``, ``dag_bucket``, ``dag_s3_path``, ``security_group``, ``subnet_ids``,
    ``planned_overrides`` (CreateEnvironment parameters, tokens resolved by CloudFormation),
    ``source_environment_name``, ``migration`` (the stage's MigrationConfig),
    ``migration_bucket`` (imported by name), ``migration_bucket_name``, ``migration_key``,
    ``export_prefix``, ``mwaa`` (the MwaaEnvironment construct; its ``.environment`` is the
    CfnEnvironment or None); with ``migration.metadata`` (else None): ``import_policy`` (the
    guide's policy on the target role) and ``dag_publisher`` (``dags/`` into the target's DAG
    folder).

    Nothing here runs the migration: the clone and the DAG runs are in
    :class:`stacks.migration_stack.MigrationStack`, which depends on this stack. A failure
    here rolls back only what CloudFormation owns (with ``clone`` no environment exists yet).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: TargetConfig,
        migration: MigrationConfig,
        network: NetworkStack,
        storage: MigrationStorageStack,
        source: SourceEnvironmentStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.creation = config.creation
        self.mwaa = build_environment(
            self, config.environment, network=network, storage=storage, declare=config.creation == "declared"
        )
        self.environment_name = config.environment.name
        self.airflow_version = config.environment.airflow_version
        self.dag_s3_path = config.environment.dag_s3_path
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
        # Two MWAA environments created in parallel in one account can be throttled.
        self.add_stack_dependency(source, "create the source environment before the target")
        self.import_policy: MigrationPolicy | None = None
        self.dag_publisher: DagPublisher | None = None
        if not migration.metadata:
            return  # only the environment: no import policy, no migration DAGs
        self.import_policy = MigrationPolicy(
            self,
            "ImportPolicy",
            role=self.execution_role,
            statements=target_import_statements(
                stack=self,
                bucket=bucket,
                key=storage.key,
                prefix=storage.export_prefix,
                migration_id=migration.id,
                source_environment=source.environment_name,
            ),
        )
        if self.mwaa.environment is not None:
            # MWAA reads the role's policies at create time
            self.mwaa.environment.node.add_dependency(self.import_policy)
        # The migration DAGs in the target's DAG folder (before the migration stack's Import).
        self.dag_publisher = DagPublisher(
            self, "PublishDags", bucket=self.dag_bucket, prefix=f"{self.dag_s3_path}/", kms_key=self.mwaa.kms_key
        )
