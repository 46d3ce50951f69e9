"""The one table of the converter: Data Pipeline object type -> what it becomes in Airflow.

``role`` says how the planner treats an object: ``activity`` (one or more tasks), ``precondition``
(a sensor task upstream of the activities that name it), ``action`` (a callback), ``resource``
(EMR: create / terminate tasks; EC2: folded into the tasks that run on it), ``datanode`` and
``database`` (folded into the tasks that read or write them; databases become Airflow
connections), ``schedule`` / ``default`` (DAG arguments) and ``format`` (folded, not converted).
``builder`` names the planner function; ``becomes`` is the report's one-line summary.

Operators are the Amazon / common-SQL provider classes (Airflow core classes for shell work);
``OPERATORS`` holds their import path per Airflow major version, the provider version that
introduced them and the constructor arguments Airflow renders as Jinja (an expression placed in
any other argument is flagged as a TODO).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class ObjectType:
    role: str
    builder: str = ""
    becomes: str = ""


OBJECT_TYPES: dict[str, ObjectType] = {
    "Default": ObjectType(role="default", becomes="DAG arguments and default_args"),
    "Schedule": ObjectType(role="schedule", becomes="DAG schedule, start_date, end_date"),
    "ShellCommandActivity": ObjectType(role="activity", builder="shell", becomes="BashOperator"),
    "CopyActivity": ObjectType(
        role="activity", builder="copy", becomes="S3CopyObjectOperator / SqlToS3Operator (by its data nodes)"
    ),
    "SqlActivity": ObjectType(
        role="activity", builder="sql", becomes="SQLExecuteQueryOperator (RedshiftDataOperator on Redshift)"
    ),
    "RedshiftCopyActivity": ObjectType(role="activity", builder="redshift_copy", becomes="S3ToRedshiftOperator"),
    "EmrActivity": ObjectType(role="activity", builder="emr", becomes="EmrAddStepsOperator + EmrStepSensor"),
    "HiveActivity": ObjectType(role="activity", builder="emr", becomes="EmrAddStepsOperator + EmrStepSensor (hive)"),
    "HiveCopyActivity": ObjectType(
        role="activity", builder="emr", becomes="EmrAddStepsOperator + EmrStepSensor (hive)"
    ),
    "PigActivity": ObjectType(role="activity", builder="emr", becomes="EmrAddStepsOperator + EmrStepSensor (pig)"),
    "HadoopActivity": ObjectType(role="activity", builder="emr", becomes="EmrAddStepsOperator + EmrStepSensor (jar)"),
    "S3KeyExists": ObjectType(role="precondition", builder="s3_key", becomes="S3KeySensor"),
    "S3PrefixNotEmpty": ObjectType(role="precondition", builder="s3_prefix", becomes="S3KeySensor (wildcard)"),
    "DynamoDBTableExists": ObjectType(
        role="precondition", builder="dynamodb_table", becomes="PythonSensor over DynamoDBHook"
    ),
    "DynamoDBDataExists": ObjectType(
        role="precondition", builder="dynamodb_data", becomes="PythonSensor over DynamoDBHook"
    ),
    "ShellCommandPrecondition": ObjectType(role="precondition", builder="shell_check", becomes="BashSensor"),
    "Exists": ObjectType(role="precondition", builder="exists", becomes="S3KeySensor on the data node"),
    "SnsAlarm": ObjectType(role="action", builder="sns", becomes="SnsNotifier callback"),
    "Terminate": ObjectType(role="action", becomes="not converted (Airflow has no late-cancel action)"),
    "Ec2Resource": ObjectType(role="resource", becomes="folded: its tasks run on the MWAA workers"),
    "EmrCluster": ObjectType(
        role="resource", builder="emr_cluster", becomes="EmrCreateJobFlowOperator + EmrTerminateJobFlowOperator"
    ),
    "S3DataNode": ObjectType(role="datanode", becomes="folded into the tasks that read or write it"),
    "SqlDataNode": ObjectType(role="datanode", becomes="folded into the tasks that read or write it"),
    "MySqlDataNode": ObjectType(role="datanode", becomes="folded into the tasks that read or write it"),
    "RedshiftDataNode": ObjectType(role="datanode", becomes="folded into the tasks that read or write it"),
    "DynamoDBDataNode": ObjectType(role="datanode", becomes="folded into the tasks that read or write it"),
    "RdsDatabase": ObjectType(role="database", becomes="Airflow connection"),
    "JdbcDatabase": ObjectType(role="database", becomes="Airflow connection"),
    "RedshiftDatabase": ObjectType(role="database", becomes="Airflow connection / Redshift Data API target"),
    "EmrConfiguration": ObjectType(role="format", becomes="folded into the EMR cluster's Configurations"),
    "Property": ObjectType(role="format", becomes="folded into its EmrConfiguration"),
    "ShellScriptConfig": ObjectType(role="format", becomes="not converted (pre/post activity scripts)"),
    "HttpProxy": ObjectType(role="format", becomes="not converted (proxy settings of Task Runner)"),
    "CSV": ObjectType(role="format", becomes="folded (data format of a data node)"),
    "TSV": ObjectType(role="format", becomes="folded (data format of a data node)"),
    "Custom": ObjectType(role="format", becomes="folded (data format of a data node)"),
    "JSON": ObjectType(role="format", becomes="folded (data format of a data node)"),
    "RegEx": ObjectType(role="format", becomes="folded (data format of a data node)"),
    "DynamoDBDataFormat": ObjectType(role="format", becomes="folded (data format of a data node)"),
    "DynamoDBExportDataFormat": ObjectType(role="format", becomes="folded (data format of a data node)"),
}


@dataclass(frozen=True, kw_only=True)
class Operator:
    module2: str  # import module on Airflow 2
    module3: str  # import module on Airflow 3
    templated: tuple[str, ...]  # constructor arguments rendered by Jinja
    amazon: str = "0"  # first Amazon provider version with it
    common_sql: str = "0"


_AWS = "airflow.providers.amazon.aws"
OPERATORS: dict[str, Operator] = {
    "BashOperator": Operator(
        module2="airflow.operators.bash",
        module3="airflow.providers.standard.operators.bash",
        templated=("bash_command", "env"),
    ),
    "EmptyOperator": Operator(
        module2="airflow.operators.empty", module3="airflow.providers.standard.operators.empty", templated=()
    ),
    "BashSensor": Operator(
        module2="airflow.sensors.bash", module3="airflow.providers.standard.sensors.bash", templated=("bash_command",)
    ),
    "PythonSensor": Operator(
        module2="airflow.sensors.python",
        module3="airflow.providers.standard.sensors.python",
        templated=("op_args", "op_kwargs"),
    ),
    "S3CopyObjectOperator": Operator(
        module2=f"{_AWS}.operators.s3",
        module3=f"{_AWS}.operators.s3",
        templated=("source_bucket_key", "dest_bucket_key", "source_bucket_name", "dest_bucket_name"),
    ),
    "S3KeySensor": Operator(
        module2=f"{_AWS}.sensors.s3", module3=f"{_AWS}.sensors.s3", templated=("bucket_key", "bucket_name")
    ),
    "SqlToS3Operator": Operator(
        module2=f"{_AWS}.transfers.sql_to_s3",
        module3=f"{_AWS}.transfers.sql_to_s3",
        templated=("s3_bucket", "s3_key", "query"),
    ),
    "S3ToRedshiftOperator": Operator(
        module2=f"{_AWS}.transfers.s3_to_redshift",
        module3=f"{_AWS}.transfers.s3_to_redshift",
        templated=("s3_bucket", "s3_key", "schema", "table", "column_list", "copy_options", "redshift_conn_id"),
        amazon="7.3.0",
    ),
    "RedshiftDataOperator": Operator(
        module2=f"{_AWS}.operators.redshift_data",
        module3=f"{_AWS}.operators.redshift_data",
        templated=("cluster_identifier", "database", "sql", "db_user", "parameters", "statement_name"),
    ),
    "SQLExecuteQueryOperator": Operator(
        module2="airflow.providers.common.sql.operators.sql",
        module3="airflow.providers.common.sql.operators.sql",
        templated=("conn_id", "sql", "parameters", "hook_params"),
        common_sql="1.3.1",
    ),
    "EmrCreateJobFlowOperator": Operator(
        module2=f"{_AWS}.operators.emr", module3=f"{_AWS}.operators.emr", templated=("job_flow_overrides",)
    ),
    "EmrAddStepsOperator": Operator(
        module2=f"{_AWS}.operators.emr", module3=f"{_AWS}.operators.emr", templated=("job_flow_id", "steps")
    ),
    "EmrTerminateJobFlowOperator": Operator(
        module2=f"{_AWS}.operators.emr", module3=f"{_AWS}.operators.emr", templated=("job_flow_id",)
    ),
    "EmrStepSensor": Operator(
        module2=f"{_AWS}.sensors.emr", module3=f"{_AWS}.sensors.emr", templated=("job_flow_id", "step_id")
    ),
    "DynamoDBToS3Operator": Operator(
        module2=f"{_AWS}.transfers.dynamodb_to_s3",
        module3=f"{_AWS}.transfers.dynamodb_to_s3",
        templated=("s3_bucket_name", "s3_key_prefix", "dynamodb_table_name"),
        amazon="8.0.0",
    ),
    "SnsNotifier": Operator(
        module2=f"{_AWS}.notifications.sns",
        module3=f"{_AWS}.notifications.sns",
        templated=("target_arn", "message", "subject"),
        amazon="8.7.0",
    ),
    "DynamoDBHook": Operator(module2=f"{_AWS}.hooks.dynamodb", module3=f"{_AWS}.hooks.dynamodb", templated=()),
}

# RedshiftCopyActivity insertMode -> S3ToRedshiftOperator method (None: no equivalent)
REDSHIFT_INSERT_MODES: dict[str, str | None] = {
    "APPEND": "APPEND",
    "TRUNCATE": "REPLACE",
    "OVERWRITE_EXISTING": "UPSERT",
    "KEEP_EXISTING": None,
}

# Joda-Time pattern letters (format()) -> strftime; longest first.
JODA_TO_STRFTIME: tuple[tuple[str, str], ...] = (
    ("YYYY", "%Y"),
    ("yyyy", "%Y"),
    ("MMMM", "%B"),
    ("EEEE", "%A"),
    ("MMM", "%b"),
    ("EEE", "%a"),
    ("DDD", "%j"),
    ("YY", "%y"),
    ("yy", "%y"),
    ("MM", "%m"),
    ("dd", "%d"),
    ("HH", "%H"),
    ("hh", "%I"),
    ("mm", "%M"),
    ("ss", "%S"),
    ("a", "%p"),
    ("Z", "%z"),
)

# Date functions of the expression language: name -> (kind, argument) for the translator.
DATE_SHIFTS: dict[str, str] = {
    "Minutes": "minutes",
    "Hours": "hours",
    "Days": "days",
    "Weeks": "weeks",
    "Months": "months",
    "Years": "years",
}
DATE_PARTS: dict[str, str] = {
    "day": "day",
    "hour": "hour",
    "minute": "minute",
    "month": "month",
    "year": "year",
    "dayOfYear": "day_of_year",
}
DATE_ROUNDING: dict[str, str] = {"firstOfMonth": "start_of('month')", "midnight": "start_of('day')"}

# Where FIRST_ACTIVATION_DATE_TIME schedules start (with catchup off, the first run is the
# latest interval before the DAG is unpaused, which is what "at first activation" means).
FIRST_ACTIVATION_START = "2024-01-01T00:00:00"
