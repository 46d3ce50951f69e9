"""Stacks of the mwaa-upgrade app and the function that builds them for one stage."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from constructs import Construct

from stacks.config import StageConfig
from stacks.environment_stacks import SourceEnvironmentStack, TargetEnvironmentStack
from stacks.migration_stack import MigrationStack, needs_migration_stack
from stacks.network_stack import NetworkStack
from stacks.storage_stack import MigrationStorageStack


@dataclass(frozen=True)
class StageStacks:
    network: NetworkStack
    storage: MigrationStorageStack
    source: SourceEnvironmentStack
    target: TargetEnvironmentStack
    migration: MigrationStack | None = None  # None: a declared target without migration.metadata


def build_stage(app: Construct, cfg: StageConfig) -> StageStacks:
    """All stacks of one stage, named ``{stack_prefix}-{network,migration-storage,source,target,migration}``.

    ``app`` is the scope: the App (``cdk synth -c stage=NAME``) or a ``cdk.Stage`` of the
    upgrade pipeline. The CloudFormation stack names are set explicitly, so a stage deployed
    by hand and the same stage deployed by the pipeline are the same stacks.
    ``-migration`` holds the custom resources that run the migration (clone, DAG runs) apart
    from the environments' long-lived parts: a failed step rolls back only it. A declared
    target without ``migration.metadata`` has none, so no migration stack (``None``).
    """
    env = cdk.Environment(account=cfg.account, region=cfg.region)
    p = cfg.stack_prefix
    network = NetworkStack(
        app,
        f"{p}-network",
        stack_name=f"{p}-network",
        env=env,
        config=cfg.network,
        secrets_manager_endpoint=cfg.secrets_manager_endpoint,
        cloudformation_endpoint=cfg.runner_in_vpc,
        description=f"mwaa-upgrade {cfg.stage}: VPC and endpoints for private MWAA",
    )
    storage = MigrationStorageStack(
        app,
        f"{p}-migration-storage",
        stack_name=f"{p}-migration-storage",
        env=env,
        config=cfg.storage,
        migration=cfg.migration,
        export_prefix=cfg.export_prefix,
        bucket_name=cfg.migration_bucket_name,
        description=f"mwaa-upgrade {cfg.stage}: encrypted migration bucket (stateful)",
    )
    source = SourceEnvironmentStack(
        app,
        f"{p}-source",
        stack_name=f"{p}-source",
        env=env,
        config=cfg.source,
        network=network,
        storage=storage,
        migration_id=cfg.migration.id,
        metadata=cfg.migration.metadata,
        description=f"mwaa-upgrade {cfg.stage}: source MWAA environment {cfg.source.environment.name}",
    )
    target = TargetEnvironmentStack(
        app,
        f"{p}-target",
        stack_name=f"{p}-target",
        env=env,
        config=cfg.target,
        migration=cfg.migration,
        network=network,
        storage=storage,
        source=source,
        description=f"mwaa-upgrade {cfg.stage}: target MWAA environment {cfg.target.environment.name}",
    )
    migration = None
    if needs_migration_stack(creation=cfg.target.creation, metadata=cfg.migration.metadata):
        migration = MigrationStack(
            app,
            f"{p}-migration",
            stack_name=f"{p}-migration",
            env=env,
            migration=cfg.migration,
            network=network,
            storage=storage,
            source=source,
            target=target,
            runner_in_vpc=cfg.runner_in_vpc,
            description=f"mwaa-upgrade {cfg.stage}: migration {cfg.migration.id} (custom resources only)",
        )
    for stack in (network, storage, source, target, migration):
        for k, v in cfg.tags.items():
            if stack is not None:  # no migration stack
                cdk.Tags.of(stack).add(k, v)
    return StageStacks(network, storage, source, target, migration)
