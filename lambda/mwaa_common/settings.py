"""Environment settings spelled four ways, in one table.

Each row names one MWAA environment setting as the stage file writes it (``config``: a key of
a ``source``/``target`` section), as ``MwaaEnvironment`` and ``create_environment_parameters``
take it (``prop``), as CreateEnvironment names it (``api``), as ``AWS::MWAA::Environment``
names it (``cfn``) and as ``aws_mwaa.CfnEnvironment`` takes it (``cdk``). The stacks render a
declared environment from it, the clone planner reads class limits through it, and the review
takes the replacement-causing properties from it. ``tests/lambda/mwaa_common`` checks every
name against the botocore model, the CloudFormation schema cfn-lint ships and aws-cdk-lib.

Pure Python (bundled with the Lambdas).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    api: str  # CreateEnvironment parameter
    cfn: str  # AWS::MWAA::Environment property
    cdk: str  # aws_mwaa.CfnEnvironment keyword
    prop: str | None  # MwaaEnvironment / create_environment_parameters keyword (None: derived)
    config: str | None  # stage-file key in source/target (None: not configurable there)
    replaces: tuple[str, ...] = ()  # paths under ``cfn`` whose change replaces the environment
    class_limit: str | None = None  # mwaa_common.versions.check_class keyword


SETTINGS: tuple[Setting, ...] = (
    Setting("Name", "Name", "name", "name", "name", replaces=("Name",)),
    Setting("AirflowVersion", "AirflowVersion", "airflow_version", "airflow_version", "airflow_version"),
    Setting("ExecutionRoleArn", "ExecutionRoleArn", "execution_role_arn", "execution_role_arn", None),
    Setting("SourceBucketArn", "SourceBucketArn", "source_bucket_arn", "source_bucket_arn", None),
    Setting("DagS3Path", "DagS3Path", "dag_s3_path", "dag_s3_path", "dag_s3_path"),
    Setting(
        "NetworkConfiguration",
        "NetworkConfiguration",
        "network_configuration",
        None,
        None,
        replaces=("NetworkConfiguration.SubnetIds",),
    ),
    Setting(
        "WebserverAccessMode",
        "WebserverAccessMode",
        "webserver_access_mode",
        "webserver_access_mode",
        "webserver_access_mode",
    ),
    Setting("EnvironmentClass", "EnvironmentClass", "environment_class", "environment_class", "environment_class"),
    Setting("Schedulers", "Schedulers", "schedulers", "schedulers", "schedulers", class_limit="schedulers"),
    Setting("MinWorkers", "MinWorkers", "min_workers", "min_workers", "min_workers", class_limit="min_workers"),
    Setting("MaxWorkers", "MaxWorkers", "max_workers", "max_workers", "max_workers", class_limit="max_workers"),
    Setting(
        "MinWebservers",
        "MinWebservers",
        "min_webservers",
        "min_webservers",
        "min_webservers",
        class_limit="min_webservers",
    ),
    Setting(
        "MaxWebservers",
        "MaxWebservers",
        "max_webservers",
        "max_webservers",
        "max_webservers",
        class_limit="max_webservers",
    ),
    Setting("KmsKey", "KmsKey", "kms_key", "kms_key_arn", "customer_kms_key", replaces=("KmsKey",)),
    Setting(
        "WeeklyMaintenanceWindowStart",
        "WeeklyMaintenanceWindowStart",
        "weekly_maintenance_window_start",
        "weekly_maintenance_window_start",
        "weekly_maintenance_window_start",
    ),
    Setting(
        "AirflowConfigurationOptions",
        "AirflowConfigurationOptions",
        "airflow_configuration_options",
        "airflow_configuration_options",
        "airflow_configuration_options",
    ),
    Setting("Tags", "Tags", "tags", "tags", "tags"),
    Setting("RequirementsS3Path", "RequirementsS3Path", "requirements_s3_path", "requirements", "requirements.s3_path"),
    Setting(
        "RequirementsS3ObjectVersion",
        "RequirementsS3ObjectVersion",
        "requirements_s3_object_version",
        "requirements",
        "requirements.object_version",
    ),
    Setting("PluginsS3Path", "PluginsS3Path", "plugins_s3_path", "plugins", "plugins.s3_path"),
    Setting(
        "PluginsS3ObjectVersion",
        "PluginsS3ObjectVersion",
        "plugins_s3_object_version",
        "plugins",
        "plugins.object_version",
    ),
    Setting(
        "StartupScriptS3Path",
        "StartupScriptS3Path",
        "startup_script_s3_path",
        "startup_script",
        "startup_script.s3_path",
    ),
    Setting(
        "StartupScriptS3ObjectVersion",
        "StartupScriptS3ObjectVersion",
        "startup_script_s3_object_version",
        "startup_script",
        "startup_script.object_version",
    ),
    Setting("LoggingConfiguration", "LoggingConfiguration", "logging_configuration", "log_levels", "logging.levels"),
    Setting(
        "EndpointManagement", "EndpointManagement", "endpoint_management", None, None, replaces=("EndpointManagement",)
    ),
)

BY_API: dict[str, Setting] = {s.api: s for s in SETTINGS}

# The integer settings whose range depends on the environment class (API name -> check_class keyword).
CLASS_LIMITED: dict[str, str] = {s.api: s.class_limit for s in SETTINGS if s.class_limit}

# Property paths of AWS::MWAA::Environment whose change replaces the environment (its schema's
# createOnlyProperties). A replacement deletes the old environment unless it is retained.
REPLACEMENT_PATHS: tuple[str, ...] = tuple(p for s in SETTINGS for p in s.replaces)

# Settings that are a scalar value of a create_environment_parameters keyword of the same meaning.
SCALAR_PROPS: dict[str, str] = {
    s.prop: s.api
    for s in SETTINGS
    if s.prop
    and s.api
    in (
        "EnvironmentClass",
        "Schedulers",
        "MinWorkers",
        "MaxWorkers",
        "MinWebservers",
        "MaxWebservers",
        "KmsKey",
        "WeeklyMaintenanceWindowStart",
    )
}

# S3 files (requirements, plugins, startup script): prop -> (path parameter, object-version parameter).
S3_FILES: dict[str, tuple[str, str]] = {
    prop: (f"{label}S3Path", f"{label}S3ObjectVersion")
    for prop, label in (("requirements", "Requirements"), ("plugins", "Plugins"), ("startup_script", "StartupScript"))
}

# The five MWAA log types: stage key (logging.levels.<key>) -> (LoggingConfiguration member,
# suffix of the log group MWAA writes: airflow-{env}-{suffix}).
LOG_TYPES: dict[str, tuple[str, str]] = {
    "dag_processing": ("DagProcessingLogs", "DAGProcessing"),
    "scheduler": ("SchedulerLogs", "Scheduler"),
    "task": ("TaskLogs", "Task"),
    "webserver": ("WebserverLogs", "WebServer"),
    "worker": ("WorkerLogs", "Worker"),
}

# Template metadata written by the constructs and read by the review (tools/review): on an
# AWS::MWAA::Environment, true when the stage allows a change that replaces it; on the clone's
# custom resource, the previous target the stage opted in to deleting after a rename.
ALLOW_REPLACEMENT_METADATA = "mwaa-upgrade:allow-replacement"
DELETE_REPLACED_METADATA = "mwaa-upgrade:delete-replaced-target"


def config_key(api: str) -> str:
    """The stage-file key of a CreateEnvironment parameter (for messages), or the API name."""
    setting = BY_API.get(api)
    return setting.config if setting and setting.config else api


def snake(name: str) -> str:
    """``DagProcessingLogs`` -> ``dag_processing_logs`` (CDK's L1 keyword casing)."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
