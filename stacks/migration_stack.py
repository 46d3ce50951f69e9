"""The migration stack ``{prefix}-migration``: every custom resource that runs the migration.

It holds the clone of the target (``target.creation: clone``), the export -> import ->
cutover DAG runs and the outputs, and depends on the source and target stacks. The
environments' long-lived parts (execution roles and policies, DAG buckets, security
groups, log groups, keys, a declared environment) stay in those stacks, so when a step fails on
the first deployment CloudFormation rolls back only this stack: its custom
resources trigger, re-run and delete nothing during a rollback, the cloned environment is
kept, and everything it uses is still there. A redeploy creates this stack again and every
step adopts what exists (docs/deploy.md).

The DAG publishers stay in the source and target stacks (``dag_publisher``): this stack
depends on both, so "DAGs published -> Export / Import" needs no resource-level edge, each
publisher's role touches one DAG bucket, and their nag acknowledgements name that bucket
literally (a cross-stack reference would put a generated ``Fn::GetStackOutput`` into them).
A failed upload rolls back only what CloudFormation owns: the clone is not in those stacks.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from constructs_lib.clone_environment import CloneEnvironment
from constructs_lib.migration_run import MigrationRunner
from mwaa_common import export_layout
from stacks.config import MigrationConfig
from stacks.environment_stacks import SourceEnvironmentStack, TargetEnvironmentStack, clone_overrides
from stacks.network_stack import NetworkStack
from stacks.storage_stack import MigrationStorageStack


def needs_migration_stack(*, creation: str, metadata: bool) -> bool:
    """A stage has a migration stack when it clones the target or migrates the metadata; a
    declared target without the metadata migration has no custom resource to hold."""
    return creation == "clone" or metadata


class MigrationStack(cdk.Stack):
    """Seams (contracts §7): ``clone`` (CloneEnvironment, None when ``declared``),
    ``environment_ready`` (the clone's CustomResource, or the target stack's CfnEnvironment),
    ``webserver_url``; with ``migration.metadata`` (else None): ``runner`` (MigrationRunner),
    ``export``, ``import_run``, ``cutover`` (None unless ``migration.cutover``),
    ``report_location``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        migration: MigrationConfig,
        network: NetworkStack,
        storage: MigrationStorageStack,
        source: SourceEnvironmentStack,
        target: TargetEnvironmentStack,
        runner_in_vpc: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        if not needs_migration_stack(creation=target.creation, metadata=migration.metadata):
            raise ValueError(
                "a declared target without migration.metadata has no migration custom resource: "
                "build no migration stack (needs_migration_stack)"
            )
        self.migration = migration
        # Explicit, not only implied by references: the clone needs the target's role with its
        # policies, log groups (with our retention) and security group rules in place (MWAA
        # checks them at create time); Export needs the source's DAGs, Import the target's
        # DAGs and a declared environment AVAILABLE. All of that is in these two stacks.
        self.add_stack_dependency(source, "the source environment and its published DAGs exist")
        self.add_stack_dependency(
            target,
            "the target's role, policies, log groups, security group, "
            "published DAGs (and a declared environment) exist",
        )

        # ---- 1. the target environment (clone) ---------------------------------------------
        self.clone: CloneEnvironment | None = None
        if target.creation == "clone":
            # The clone Lambda stays OUT of the VPC on purpose: it only calls the MWAA control
            # plane (api.airflow: Get/Create/Update/TagResource) and CloudFormation
            # DescribeStacks, public regional endpoints; MWAA itself creates the environment's
            # ENIs and endpoints in the target subnets.
            # Strong references (Fn::ImportValue; the app's default is weak): CloudFormation then
            # refuses to delete the target stack's role or security group while the migration stack,
            # which created the environment that runs with them, still uses them.
            role, security_group = _strong_target_refs(self, target)
            self.clone = CloneEnvironment(
                self,
                "Clone",
                source_environment_name=source.environment_name,
                target_name=target.environment_name,
                migration_id=migration.id,
                execution_role=role,
                dag_bucket=target.dag_bucket,
                vpc=network.vpc,
                subnets=network.mwaa_subnets,
                security_groups=[security_group],
                overrides=_without(clone_overrides(target.planned_overrides), TYPED_BY_REFERENCE),
                kms_key=target.mwaa.kms_key,
                endpoint_management="SERVICE",
                delete_on_stack_delete=migration.delete_target_on_stack_delete,
            )
            self.environment_ready: Any = self.clone.resource
            self.webserver_url = self.clone.resource.get_att_string("WebserverUrl")
        else:
            assert target.mwaa.environment is not None
            self.environment_ready = target.mwaa.environment  # in the target stack (a dependency)
            self.webserver_url = target.mwaa.environment.attr_webserver_url
        cdk.CfnOutput(
            self,
            "TargetWebserverUrl",
            value=self.webserver_url,
            description=f"Webserver host name of the target environment {target.environment_name}",
        )

        self.runner: MigrationRunner | None = None
        self.export = self.import_run = self.cutover = None
        self.report_location: str | None = None
        if not migration.metadata:
            return  # the environment only (e.g. the in-place step 2.11 -> 3.x): no DAG runs

        # ---- 2. the migration run: Export (source) || clone -> Import -> Cutover ------------
        network_props: dict = {}
        if runner_in_vpc:
            # A PRIVATE_ONLY webserver is reachable only from inside the VPC (CLI fallback);
            # InvokeRestApi goes through the airflow.env endpoint and DescribeStacks through
            # the cloudformation endpoint (both admit 443 from lambda_security_group).
            network_props = dict(
                private_webserver=True,
                vpc=network.vpc,
                vpc_subnets=ec2.SubnetSelection(subnets=network.mwaa_subnets),
                security_group=network.lambda_security_group,
            )
        self.runner = MigrationRunner(
            self, "MigrationRun", environment_names=[source.environment_name, target.environment_name], **network_props
        )
        base_conf = export_conf(
            migration, bucket=storage.bucket_name, prefix=storage.export_prefix, secrets_kms_key=storage.key.key_arn
        )
        # Export waits for nothing in this stack: it runs while the clone is created (the
        # source's DAGs are published by the source stack, deployed before this one).
        self.export = self.runner.add_dag_run(
            "Export",
            environment_name=source.environment_name,
            airflow_version=source.airflow_version,
            dag_id="db_export",
            migration_id=migration.id,
            step="export",
            conf=base_conf,
            rerun_token=migration.rerun_token,
        )
        conf = import_conf(
            migration,
            bucket=storage.bucket_name,
            prefix=storage.export_prefix,
            source_environment=source.environment_name,
            target_environment=target.environment_name,
        )
        import_after: list = [self.export]
        if self.clone is not None:
            import_after.append(self.clone.resource)  # declared: the stack dependency on the target
        self.import_run = self.runner.add_dag_run(
            "Import",
            environment_name=target.environment_name,
            airflow_version=target.airflow_version,
            dag_id="db_import",
            migration_id=migration.id,
            step="import",
            conf=conf,
            rerun_token=migration.rerun_token,
            depends_on=import_after,
        )
        if migration.cutover:
            self.cutover = self.runner.add_dag_run(
                "Cutover",
                environment_name=target.environment_name,
                airflow_version=target.airflow_version,
                dag_id="db_import",
                migration_id=migration.id,
                step="cutover",
                conf={**conf, "cutover": True},
                rerun_token=migration.rerun_token,
                depends_on=[self.import_run],
            )

        # ---- 3. where to look afterwards ------------------------------------------------------
        base = export_layout.export_base(storage.export_prefix, migration.id, base_conf.get("rerun", ""))
        self.report_location = f"s3://{storage.bucket_name}/{base}report.json"
        cdk.CfnOutput(
            self,
            "MigrationReportLocation",
            value=self.report_location,
            description="db_import's per-table accounting (contracts section 3), written by the Import step",
        )
        cdk.CfnOutput(
            self,
            "MigrationExportLocation",
            value=f"s3://{storage.bucket_name}/{base}manifest.json",
            description="db_export's manifest: present once the export is complete",
        )
        cdk.CfnOutput(
            self,
            "ImportRunId",
            value=self.import_run.get_att_string("RunId"),
            description="DAG run id of db_import in the target (Airflow UI, task logs)",
        )


# Parameters the clone takes from its typed props here (the strong references above), not from
# the planned overrides (which hold the target stack's weak references to the same values).
TYPED_BY_REFERENCE = ("ExecutionRoleArn", "NetworkConfiguration")


def _without(values: dict, keys: tuple[str, ...]) -> dict:
    return {k: v for k, v in values.items() if k not in keys}


def _strong_target_refs(scope: Construct, target: TargetEnvironmentStack) -> tuple[iam.IRole, ec2.ISecurityGroup]:
    """The target's execution role and security group through CloudFormation exports of the target
    stack (strong references), for the clone that creates an environment running with them."""
    prefix = target.stack_name
    role_arn = target.export_value(target.execution_role.role_arn, name=f"{prefix}:ExecutionRoleArn")
    sg_id = target.export_value(target.security_group.security_group_id, name=f"{prefix}:SecurityGroupId")
    role = iam.Role.from_role_arn(scope, "TargetExecutionRole", role_arn, mutable=False)
    group = ec2.SecurityGroup.from_security_group_id(scope, "TargetSecurityGroup", sg_id, mutable=False)
    return role, group


def export_conf(migration: MigrationConfig, *, bucket: str, prefix: str, secrets_kms_key: str | None = None) -> dict:
    """db_export's run conf (contracts §2) from the stage's migration settings; ``secrets_kms_key``:
    the key whose data key seals the secret columns of the export (the migration bucket's key)."""
    conf: dict = {"bucket": bucket, "prefix": prefix, "migration_id": migration.id}
    if secrets_kms_key:
        conf["secrets_kms_key"] = secrets_kms_key
    if migration.rerun_token:  # a re-run exports afresh under its own key and imports that one
        conf["rerun"] = export_layout.rerun_key(migration.rerun_token)
    if migration.tables:
        conf["tables"] = list(migration.tables)
    return conf


def import_conf(
    migration: MigrationConfig, *, bucket: str, prefix: str, source_environment: str, target_environment: str
) -> dict:
    """db_import's run conf (contracts §2); the cutover step adds ``cutover: true``."""
    return {
        **export_conf(migration, bucket=bucket, prefix=prefix),
        "source_environment": source_environment,
        "target_environment": target_environment,
        "task_log_days": migration.task_log_days,
        "task_log_states": list(migration.task_log_states),
        "variables_strategy": migration.variables_strategy,
        "connections_strategy": migration.connections_strategy,
    }
