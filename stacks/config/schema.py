"""The stage configuration's shape: frozen dataclasses, the allowed values, and the names
derived from them (export prefix, default bucket name, default migration id).

Nothing here reads a file; :mod:`stacks.config.loader` fills these from YAML. The full key
reference (defaults, allowed values) is in docs/foundation.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from mwaa_common.retention import ENVIRONMENT_LOG_DAYS, FLOW_LOG_DAYS, LOG_RETENTION_DAYS

__all__ = ["ENVIRONMENT_LOG_DAYS", "FLOW_LOG_DAYS", "LOG_RETENTION_DAYS"]  # re-exported to the section readers

# Patterns are used with fullmatch (stacks.config.reader.regex): "$" alone would accept a
# trailing newline. Names shared with the Lambdas and tools (environment name, migration id,
# bucket names, tags) are in lambda/mwaa_common/names.py.
ACCOUNT_RE = re.compile(r"^\d{12}$")
REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
# AirflowConfigurationOptions key pattern from the MWAA API reference.
AIRFLOW_OPTION_KEY_RE = re.compile(r"^[a-z]+([a-z0-9._]*[a-z0-9_]+)?$")
# ... and its value (ConfigValue): printable ASCII, 1-65536 characters.
OPTION_VALUE_RE = re.compile(r"[ -~]{1,65536}")
# Option names (the part after the section) whose values are secrets: refused in the stage file,
# whose option values end up in plaintext in the template (names ending in _secret are accepted:
# Airflow reads those from the secrets backend).
SECRET_OPTION_RE = re.compile(
    r"password|passwd|secret|token|credential|private_key|fernet_key|api_key|access_key|sql_alchemy_conn|"
    r"broker_url|result_backend|connection_string"
)
MAINTENANCE_RE = re.compile(r"^(MON|TUE|WED|THU|FRI|SAT|SUN):([01]\d|2[0-3]):(00|30)$")
S3_KEY_RE = re.compile(r"^[\w!\-.*'()/]+$")
AZ_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$")
VPC_ID_RE = re.compile(r"^vpc-[0-9a-f]{8,17}$")
SUBNET_ID_RE = re.compile(r"^subnet-[0-9a-f]{8,17}$")
RTB_ID_RE = re.compile(r"^rtb-[0-9a-f]{8,17}$")
S3_BUCKET_ARN_RE = re.compile(r"^arn:aws[a-z-]*:s3:::([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])$")
KMS_KEY_ARN_RE = re.compile(r"^arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):key/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$")
# Metadata table names as the DAGs name them (conf "tables"; the DAGs check the list itself).
TABLE_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
RERUN_TOKEN_MAX = 64  # dag_runner.plan.RERUN_TOKEN_MAX
STAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
STACK_PREFIX_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,40}$")

# The counts of an environment and the class limit (mwaa_common.versions) each is checked against.
COUNT_KINDS = {
    "schedulers": "schedulers",
    "min_workers": "workers",
    "max_workers": "workers",
    "min_webservers": "webservers",
    "max_webservers": "webservers",
}
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
LOG_TYPES = ("dag_processing", "scheduler", "task", "webserver", "worker")
# CloudWatch Logs' retention values and this project's defaults: lambda/mwaa_common/retention.py
WEBSERVER_ACCESS_MODES = ("PRIVATE_ONLY", "PUBLIC_ONLY")
REMOVAL_POLICIES = ("retain", "destroy")
IMPORT_STRATEGIES = ("skip_existing", "overwrite")
# Task-instance states a task-log copy can filter on (Airflow's TaskInstanceState values).
TASK_STATES = (
    "success",
    "failed",
    "upstream_failed",
    "skipped",
    "up_for_retry",
    "up_for_reschedule",
    "removed",
    "scheduled",
    "queued",
    "running",
    "restarting",
    "deferred",
)


# ---------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class S3Object:
    """A file in the environment's DAG bucket (requirements, plugins, startup script)."""

    s3_path: str
    object_version: str | None = None


@dataclass(frozen=True)
class LoggingSettings:
    levels: Mapping[str, str]  # LOG_TYPES -> LOG_LEVELS
    retention_days: int
    removal_policy: str  # "retain" | "destroy"


@dataclass(frozen=True)
class EnvironmentSettings:
    """One MWAA environment. For a cloned target, None means "copy the source's value"."""

    name: str
    airflow_version: str
    environment_class: str | None = None
    schedulers: int | None = None
    min_workers: int | None = None
    max_workers: int | None = None
    min_webservers: int | None = None
    max_webservers: int | None = None
    webserver_access_mode: str = "PRIVATE_ONLY"
    dag_s3_path: str = "dags"
    airflow_configuration_options: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    requirements: S3Object | None = None
    plugins: S3Object | None = None
    startup_script: S3Object | None = None
    secrets_manager_backend: bool = False
    customer_kms_key: bool = False
    weekly_maintenance_window_start: str | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    logging: LoggingSettings = field(
        default_factory=lambda: LoggingSettings(
            MappingProxyType({t: "INFO" for t in LOG_TYPES}), ENVIRONMENT_LOG_DAYS, "retain"
        )
    )


@dataclass(frozen=True)
class SourceConfig:
    mode: str  # "create" | "existing"
    environment: EnvironmentSettings  # for "existing": name, airflow_version, dag_s3_path, webserver_access_mode
    role_arn: str | None = None  # "existing" only
    dag_bucket_arn: str | None = None  # "existing" only: its SourceBucketArn (the DAGs are published there)
    dag_bucket_kms_key_arn: str | None = None  # "existing" only: the DAG bucket's customer key, if any


@dataclass(frozen=True)
class TargetConfig:
    creation: str  # "clone" | "declared"
    environment: EnvironmentSettings


@dataclass(frozen=True)
class NetworkConfig:
    mode: str  # "create" | "existing"
    availability_zones: tuple[str, ...]
    vpc_cidr: str
    private_subnet_cidrs: tuple[str, ...] = ()  # create
    nat_gateway: bool = False  # create
    public_subnet_cidrs: tuple[str, ...] = ()  # create, with nat_gateway
    vpc_id: str | None = None  # existing
    private_subnet_ids: tuple[str, ...] = ()  # existing
    route_table_ids: tuple[str, ...] = ()  # existing
    create_endpoints: bool = True
    sts_endpoint: bool = False
    flow_log_retention_days: int = FLOW_LOG_DAYS
    reserved_cidrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class StorageConfig:
    bucket_name: str | None = None
    termination_protection: bool = True
    noncurrent_version_days: int = 30
    access_log_retention_days: int = 365


@dataclass(frozen=True)
class MigrationConfig:
    id: str
    # True: publish the metadata DAGs and run export -> import (-> cutover). False: only the
    # environment (cloned or declared): e.g. the in-place step 2.11.x -> 3.x after a migration.
    metadata: bool = True
    task_log_days: int = 3
    task_log_states: tuple[str, ...] = ("failed",)
    variables_strategy: str = "skip_existing"
    connections_strategy: str = "skip_existing"
    cutover: bool = False
    delete_target_on_stack_delete: bool = False
    export_retention_days: int = 30
    tables: tuple[str, ...] = ()  # empty: every table the DAGs support (conf key left out)
    rerun_token: str = ""  # a new non-empty value re-runs the DAGs of the same migration id


@dataclass(frozen=True)
class StageConfig:
    stage: str
    file: Path
    account: str
    region: str
    stack_prefix: str
    tags: Mapping[str, str]
    network: NetworkConfig
    storage: StorageConfig
    source: SourceConfig
    target: TargetConfig
    migration: MigrationConfig

    @property
    def export_prefix(self) -> str:
        """The guide's export prefix: ``data/migration/{source}_to_{target}/export/``."""
        return export_prefix(self.source.environment.airflow_version, self.target.environment.airflow_version)

    @property
    def migration_bucket_name(self) -> str:
        """storage.bucket_name, or ``mwaa-migration-{stack_prefix}-{account}-{region}``.

        A literal name keeps the bucket's ARN readable (and identical) in every stack's
        policies instead of a cross-stack token.
        """
        return self.storage.bucket_name or default_bucket_name(self.stack_prefix, self.account, self.region)

    @property
    def runner_in_vpc(self) -> bool:
        """The migration runner's Lambdas run in the VPC: the metadata is migrated and a
        webserver is PRIVATE_ONLY (without a runner the VPC needs no cloudformation endpoint)."""
        return self.migration.metadata and "PRIVATE_ONLY" in (
            self.source.environment.webserver_access_mode,
            self.target.environment.webserver_access_mode,
        )

    @property
    def secrets_manager_endpoint(self) -> bool:
        envs = [self.target.environment]
        if self.source.mode == "create":
            envs.append(self.source.environment)
        return any(e.secrets_manager_backend for e in envs)


def export_prefix(source_version: str, target_version: str) -> str:
    return f"data/migration/{source_version}_to_{target_version}/export/"


def default_bucket_name(stack_prefix: str, account: str, region: str) -> str:
    return f"mwaa-migration-{stack_prefix.lower()}-{account}-{region}"


def default_migration_id(source_version: str, target_version: str) -> str:
    """``{source}-to-{target}`` made safe for ``[a-z0-9-]{1,40}`` (dots become dashes)."""
    raw = f"{source_version}-to-{target_version}".lower()
    return re.sub(r"[^a-z0-9-]+", "-", raw).strip("-")[:40]
