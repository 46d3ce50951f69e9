"""Per-stage configuration: ``config/<stage>.yaml`` read into frozen, typed dataclasses.

Everything is validated here, before any construct exists, so a bad file never produces a
half-built app. Every problem raises :class:`ConfigError` whose message names the file, the
field path (``target.airflow_version``), the value and what is allowed. Unknown keys are
errors at every level (a typo must never be ignored). Version, class and upgrade rules come
from ``mwaa_common.versions`` (the one table); nothing version-specific is decided here.

Modules, one concern each:

- :mod:`~stacks.config.schema`: the dataclasses, allowed values and derived names;
- :mod:`~stacks.config.reader`: YAML reading, :class:`ConfigError`, :class:`Section`;
- :mod:`~stacks.config.environment` and :mod:`~stacks.config.sections`: each section;
- :mod:`~stacks.config.rules`: rules across sections;
- :mod:`~stacks.config.loader`: :func:`load_stage`, the order of it all.

This module is the public API (stacks, ``stacks.pipeline_config``, tools and tests import
from here). The full key reference (defaults, allowed values) is in docs/foundation.md.
"""

from stacks.config.loader import load_stage
from stacks.config.reader import (
    CONFIG_DIR,
    ConfigError,
    Section,
    account_and_region,
    cidr,
    read_config_file,
    regex,
)
from stacks.config.rules import metadata_stepping_stones
from stacks.config.schema import (
    EnvironmentSettings,
    LoggingSettings,
    MigrationConfig,
    NetworkConfig,
    S3Object,
    SourceConfig,
    StageConfig,
    StorageConfig,
    TargetConfig,
    default_bucket_name,
    default_migration_id,
    export_prefix,
)

__all__ = [
    "CONFIG_DIR",
    "ConfigError",
    "EnvironmentSettings",
    "LoggingSettings",
    "MigrationConfig",
    "NetworkConfig",
    "S3Object",
    "Section",
    "SourceConfig",
    "StageConfig",
    "StorageConfig",
    "TargetConfig",
    "account_and_region",
    "cidr",
    "default_bucket_name",
    "default_migration_id",
    "export_prefix",
    "load_stage",
    "metadata_stepping_stones",
    "read_config_file",
    "regex",
]
