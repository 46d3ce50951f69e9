"""``load_stage``: ``config/<stage>.yaml`` read, every section validated, then the rules
across sections; the first problem raises :class:`~stacks.config.reader.ConfigError`."""

from __future__ import annotations

import re
from pathlib import Path

from stacks.config.reader import CONFIG_DIR, ConfigError, account_and_region, read_config_file, regex
from stacks.config.rules import cross_checks
from stacks.config.schema import STACK_PREFIX_RE, STAGE_RE, StageConfig
from stacks.config.sections import (
    migration_section,
    network_section,
    source_section,
    storage_section,
    target_section,
)


def load_stage(stage: str, config_dir: Path | None = None) -> StageConfig:
    """Read and validate ``config/<stage>.yaml``; raise ConfigError on the first problem."""
    config_dir = Path(config_dir) if config_dir is not None else CONFIG_DIR
    file = config_dir / f"{stage}.yaml"
    if not isinstance(stage, str) or not STAGE_RE.fullmatch(stage):
        raise ConfigError(
            file, "stage", stage, "a stage name of letters, digits, '.', '_' and '-' (config/<stage>.yaml)"
        )
    top = read_config_file(file, "stage", stage, "a stage")
    account, region = account_and_region(top)
    default_prefix = re.sub(r"[^A-Za-z0-9-]+", "-", stage).strip("-")
    stack_prefix = top.get(
        "stack_prefix",
        str,
        default_prefix,
        regex(STACK_PREFIX_RE, "1-41 characters: a letter, then letters, digits and '-'"),
    )
    tags = top.tags("tags")
    network = network_section(top)
    if any(not az.startswith(region) for az in network.availability_zones):
        raise ConfigError(
            file,
            "network.availability_zones",
            list(network.availability_zones),
            f"availability zones of region {region}",
        )
    storage = storage_section(top, stage)
    source = source_section(top)
    target = target_section(top)
    migration = migration_section(top, source.environment.airflow_version, target.environment.airflow_version)
    top.done()
    cfg = StageConfig(
        stage=stage,
        file=file,
        account=account,
        region=region,
        stack_prefix=stack_prefix,
        tags=tags,
        network=network,
        storage=storage,
        source=source,
        target=target,
        migration=migration,
    )
    cross_checks(file, cfg)
    return cfg
