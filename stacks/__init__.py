"""Stacks of the mwaa-upgrade app and the function that builds them for one stage."""
from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from constructs import Construct

from stacks.environment_stacks import SourceEnvironmentStack, TargetEnvironmentStack
from stacks.network_stack import NetworkStack
from stacks.stage_config import StageConfig
from stacks.storage_stack import MigrationStorageStack


@dataclass(frozen=True)
class StageStacks:
    network: NetworkStack
    storage: MigrationStorageStack
    source: SourceEnvironmentStack
    target: TargetEnvironmentStack


def build_stage(app: Construct, cfg: StageConfig) -> StageStacks:
    """All stacks of one stage, with ids ``{stack_prefix}-{network,migration-storage,source,target}``.

    ``app`` is the scope: the App (``cdk synth -c stage=NAME``; the ids are the stack names),
    or a ``cdk.Stage`` of the upgrade pipeline (same ids; CloudFormation names them
    ``<stage>-<id>``).
    """
    env = cdk.Environment(account=cfg.account, region=cfg.region)
    p = cfg.stack_prefix
    network = NetworkStack(app, f"{p}-network", env=env, config=cfg.network,
                           secrets_manager_endpoint=cfg.secrets_manager_endpoint,
                           cloudformation_endpoint=cfg.runner_in_vpc,
                           description=f"mwaa-upgrade {cfg.stage}: VPC and endpoints for private MWAA")
    storage = MigrationStorageStack(app, f"{p}-migration-storage", env=env, config=cfg.storage,
                                    migration=cfg.migration, export_prefix=cfg.export_prefix,
                                    bucket_name=cfg.migration_bucket_name,
                                    description=f"mwaa-upgrade {cfg.stage}: encrypted migration bucket (stateful)")
    source = SourceEnvironmentStack(app, f"{p}-source", env=env, config=cfg.source, network=network,
                                    storage=storage,
                                    description=f"mwaa-upgrade {cfg.stage}: source MWAA environment {cfg.source.environment.name}")
    target = TargetEnvironmentStack(app, f"{p}-target", env=env, config=cfg.target, migration=cfg.migration,
                                    network=network, storage=storage, source=source,
                                    runner_in_vpc=cfg.runner_in_vpc,
                                    description=f"mwaa-upgrade {cfg.stage}: target MWAA environment {cfg.target.environment.name}")
    for stack in (network, storage, source, target):
        for k, v in cfg.tags.items():
            cdk.Tags.of(stack).add(k, v)
    return StageStacks(network, storage, source, target)
