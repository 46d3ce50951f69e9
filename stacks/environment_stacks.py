"""Source and target environment stacks.

Source: ``create`` builds an MWAA environment with the construct; ``existing`` adopts one by
name and role ARN and only attaches the export policy to that role. Target: always builds the
role, DAG bucket, security group and log groups; ``declared`` also renders the
``AWS::MWAA::Environment``, ``clone`` leaves it to the clone custom resource (issue 4), which
reads the attributes listed on :class:`TargetEnvironmentStack`.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from constructs_lib.clone_environment import CloneEnvironment
from constructs_lib.dag_publisher import DagPublisher
from constructs_lib.migration_run import MigrationRunner
from constructs_lib.migration_policies import MigrationPolicy, source_export_statements, target_import_statements
from constructs_lib.mwaa_environment import MwaaEnvironment, S3File
from stacks.network_stack import NetworkStack
from stacks.stage_config import EnvironmentSettings, MigrationConfig, S3Object, SourceConfig, TargetConfig
from stacks.storage_stack import MigrationStorageStack

_REMOVAL = {"retain": cdk.RemovalPolicy.RETAIN, "destroy": cdk.RemovalPolicy.DESTROY}


def _file(o: Optional[S3Object]) -> Optional[S3File]:
    return None if o is None else S3File(o.s3_path, o.object_version)


def environment_settings(env: EnvironmentSettings) -> dict:
    """The settings part of MwaaEnvironment's props (and of ``create_environment_parameters``)
    from a stage's EnvironmentSettings: the one mapping from stage keys to environment settings."""
    return dict(
        name=env.name, airflow_version=env.airflow_version,
        environment_class=env.environment_class, schedulers=env.schedulers,
        min_workers=env.min_workers, max_workers=env.max_workers,
        min_webservers=env.min_webservers, max_webservers=env.max_webservers,
        webserver_access_mode=env.webserver_access_mode, dag_s3_path=env.dag_s3_path,
        airflow_configuration_options=dict(env.airflow_configuration_options),
        requirements=_file(env.requirements), plugins=_file(env.plugins),
        startup_script=_file(env.startup_script),
        secrets_manager_backend=env.secrets_manager_backend,
        weekly_maintenance_window_start=env.weekly_maintenance_window_start,
        tags=dict(env.tags), log_levels=dict(env.logging.levels),
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


def build_environment(scope: Construct, env: EnvironmentSettings, *, network: NetworkStack,
                      storage: MigrationStorageStack, declare: bool) -> MwaaEnvironment:
    key = None
    if env.customer_kms_key:
        key = kms.Key(scope, "EnvironmentKey", enable_key_rotation=True,
                      description=f"MWAA environment {env.name}: DAG bucket, logs, queues",
                      removal_policy=cdk.RemovalPolicy.RETAIN)
    return MwaaEnvironment(
        scope, "Environment",
        **environment_settings(env),
        vpc=network.vpc, subnets=network.mwaa_subnets,
        declare_environment=declare, kms_key=key,
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
    bucket: the one the stack creates, or ``source.dag_bucket_arn`` when adopted)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: SourceConfig, network: NetworkStack,
                 storage: MigrationStorageStack, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.mode = config.mode
        self.environment_name = config.environment.name
        self.airflow_version = config.environment.airflow_version
        self.webserver_access_mode = config.environment.webserver_access_mode
        self.mwaa: Optional[MwaaEnvironment] = None
        self.dag_bucket: Optional[s3.IBucket] = None
        self.security_group = None
        if config.mode == "create":
            self.mwaa = build_environment(self, config.environment, network=network, storage=storage,
                                                 declare=True)
            self.execution_role: iam.IRole = self.mwaa.role
            self.dag_bucket = self.mwaa.bucket
            self.security_group = self.mwaa.security_group
            publish_bucket: s3.IBucket = self.mwaa.bucket
            publish_key: Optional[kms.IKey] = self.mwaa.kms_key
        else:
            assert config.role_arn is not None and config.dag_bucket_arn is not None
            # mutable: CDK attaches our policy to the adopted role; nothing else of it changes.
            self.execution_role = iam.Role.from_role_arn(self, "AdoptedExecutionRole", config.role_arn, mutable=True)
            # Named in the stage file (source.dag_bucket_arn), never looked up: only the DAG
            # publisher writes to it, and only under the environment's DagS3Path.
            publish_key = (kms.Key.from_key_arn(self, "AdoptedDagBucketKey", config.dag_bucket_kms_key_arn)
                           if config.dag_bucket_kms_key_arn else None)
            publish_bucket = s3.Bucket.from_bucket_attributes(
                self, "AdoptedDagBucket", bucket_arn=config.dag_bucket_arn, encryption_key=publish_key)
        # The migration DAGs in the source's DAG folder: the Export step (target stack) runs
        # db_export there, so this stack (which the target stack depends on) publishes first.
        self.dag_publisher = DagPublisher(self, "PublishDags", bucket=publish_bucket,
                                          prefix=f"{config.environment.dag_s3_path}/", kms_key=publish_key)
        bucket = s3.Bucket.from_bucket_name(self, "MigrationBucket", storage.bucket_name)
        self.export_policy = MigrationPolicy(
            self, "ExportPolicy", role=self.execution_role,
            statements=source_export_statements(stack=self, bucket=bucket, key=storage.key,
                                                prefix=storage.export_prefix))
        self.add_stack_dependency(storage, "the export policy names the migration bucket")


class TargetEnvironmentStack(cdk.Stack):
    """The target environment (declared, or cloned by a custom resource) and the migration run.

    Seams (contracts §7): ``environment_name``, ``airflow_version``, ``creation``,
    ``execution_role``, ``dag_bucket``, ``security_group``, ``subnet_ids``,
    ``planned_overrides`` (CreateEnvironment parameters, tokens resolved by CloudFormation),
    ``source_environment_name``, ``migration`` (the stage's MigrationConfig),
    ``migration_bucket`` (imported by name), ``migration_bucket_name``, ``migration_key``,
    ``export_prefix``, ``mwaa`` (the MwaaEnvironment construct; its ``.environment`` is the
    CfnEnvironment or None).

    Wiring (docs/deploy.md): ``dag_publisher`` (dags/ into the target's DAG bucket),
    ``clone`` (CloneEnvironment, ``clone`` only), ``environment_ready`` (what "the target is
    AVAILABLE" means in the template: the clone's custom resource or the CfnEnvironment),
    ``runner`` (MigrationRunner) with ``export``, ``import_run`` and ``cutover`` (None unless
    ``migration.cutover``), ``webserver_url``, ``report_location``.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: TargetConfig, migration: MigrationConfig,
                 network: NetworkStack, storage: MigrationStorageStack, source: SourceEnvironmentStack,
                 runner_in_vpc: bool, **kwargs: Any) -> None:
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

        # ---- 1. the migration DAGs in the target's DAG folder (before Import runs)
        self.dag_publisher = DagPublisher(self, "PublishDags", bucket=self.dag_bucket,
                                          prefix=f"{config.environment.dag_s3_path}/", kms_key=self.mwaa.kms_key)

        # ---- 2. the target environment
        self.clone: Optional[CloneEnvironment] = None
        if config.creation == "clone":
            # The clone Lambda stays OUT of the VPC on purpose: it only calls the MWAA control
            # plane (api.airflow: Get/Create/Update/TagResource) and CloudFormation
            # DescribeStacks, public regional endpoints; MWAA itself creates the environment's
            # ENIs and endpoints in the target subnets. Inside a VPC without NAT it would need
            # the airflow.api and cloudformation endpoints for nothing.
            self.clone = CloneEnvironment(
                self, "Clone",
                source_environment_name=source.environment_name, target_name=config.environment.name,
                migration_id=migration.id, execution_role=self.execution_role, dag_bucket=self.dag_bucket,
                vpc=network.vpc, subnets=network.mwaa_subnets, security_groups=[self.security_group],
                overrides=clone_overrides(self.planned_overrides), kms_key=self.mwaa.kms_key,
                endpoint_management="SERVICE",
                delete_on_stack_delete=migration.delete_target_on_stack_delete)
            # MWAA checks the execution role (by assuming it) and its log groups at create time:
            # the whole MwaaEnvironment (role with its inline policy, DAG bucket, log groups with
            # retention, security group and its rules) and the import policy on the role exist
            # first. The handler also retries IAM-propagation ValidationExceptions for 150 s.
            self.clone.resource.node.add_dependency(self.mwaa, self.import_policy)
            self.environment_ready: Any = self.clone.resource
            self.webserver_url = self.clone.resource.get_att_string("WebserverUrl")
        else:
            assert self.mwaa.environment is not None
            self.environment_ready = self.mwaa.environment
            self.mwaa.environment.node.add_dependency(self.import_policy)
            self.webserver_url = self.mwaa.environment.attr_webserver_url

        # ---- 3. the migration run: Export (source) || target creation -> Import -> Cutover
        # runner_in_vpc: StageConfig.runner_in_vpc (a webserver is PRIVATE_ONLY); the network
        # stack adds the cloudformation endpoint on the same condition.
        network_props: dict = {}
        if runner_in_vpc:
            # A PRIVATE_ONLY webserver is reachable only from inside the VPC (CLI fallback);
            # InvokeRestApi goes through the airflow.env endpoint and DescribeStacks through
            # the cloudformation endpoint (both admit 443 from lambda_security_group).
            network_props = dict(private_webserver=True, vpc=network.vpc,
                                 vpc_subnets=ec2.SubnetSelection(subnets=network.mwaa_subnets),
                                 security_group=network.lambda_security_group)
        self.runner = MigrationRunner(self, "MigrationRun",
                                      environment_names=[source.environment_name, config.environment.name],
                                      **network_props)
        base_conf = export_conf(migration, bucket=storage.bucket_name, prefix=storage.export_prefix)
        # Export runs while the target is created: it waits only for the source's DAGs.
        self.export = self.runner.add_dag_run(
            "Export", environment_name=source.environment_name, airflow_version=source.airflow_version,
            dag_id="db_export", migration_id=migration.id, step="export", conf=base_conf,
            rerun_token=migration.rerun_token, depends_on=[source.dag_publisher])
        conf = import_conf(migration, bucket=storage.bucket_name, prefix=storage.export_prefix,
                           source_environment=source.environment_name, target_environment=config.environment.name)
        self.import_run = self.runner.add_dag_run(
            "Import", environment_name=config.environment.name, airflow_version=config.environment.airflow_version,
            dag_id="db_import", migration_id=migration.id, step="import", conf=conf,
            rerun_token=migration.rerun_token,
            depends_on=[self.export, self.environment_ready, self.dag_publisher])
        self.cutover = None
        if migration.cutover:
            self.cutover = self.runner.add_dag_run(
                "Cutover", environment_name=config.environment.name,
                airflow_version=config.environment.airflow_version, dag_id="db_import",
                migration_id=migration.id, step="cutover", conf={**conf, "cutover": True},
                rerun_token=migration.rerun_token, depends_on=[self.import_run])

        # ---- 4. where to look afterwards
        self.report_location = (f"s3://{storage.bucket_name}/{storage.export_prefix}{migration.id}/report.json")
        cdk.CfnOutput(self, "MigrationReportLocation", value=self.report_location,
                      description="db_import's per-table accounting (contracts section 3), written by the Import step")
        cdk.CfnOutput(self, "MigrationExportLocation",
                      value=f"s3://{storage.bucket_name}/{storage.export_prefix}{migration.id}/manifest.json",
                      description="db_export's manifest: present once the export is complete")
        cdk.CfnOutput(self, "TargetWebserverUrl", value=self.webserver_url,
                      description=f"Webserver host name of the target environment {config.environment.name}")
        cdk.CfnOutput(self, "ImportRunId", value=self.import_run.get_att_string("RunId"),
                      description="DAG run id of db_import in the target (Airflow UI, task logs)")


def export_conf(migration: MigrationConfig, *, bucket: str, prefix: str) -> dict:
    """db_export's run conf (contracts §2) from the stage's migration settings."""
    conf: dict = {"bucket": bucket, "prefix": prefix, "migration_id": migration.id}
    if migration.tables:
        conf["tables"] = list(migration.tables)
    return conf


def import_conf(migration: MigrationConfig, *, bucket: str, prefix: str, source_environment: str,
                target_environment: str) -> dict:
    """db_import's run conf (contracts §2); the cutover step adds ``cutover: true``."""
    return {**export_conf(migration, bucket=bucket, prefix=prefix),
            "source_environment": source_environment, "target_environment": target_environment,
            "task_log_days": migration.task_log_days, "task_log_states": list(migration.task_log_states),
            "variables_strategy": migration.variables_strategy,
            "connections_strategy": migration.connections_strategy}
