"""Log retention: the values CloudWatch Logs accepts and the defaults this project uses.

Pure Python, shared by the stage config (validation), the constructs (log groups) and the
tools. One place: a retention number anywhere else is a bug.
"""

from __future__ import annotations

# CloudWatch Logs PutRetentionPolicy accepts exactly these day counts.
LOG_RETENTION_DAYS: tuple[int, ...] = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)

# Defaults (days), each a member of LOG_RETENTION_DAYS (tests/lambda/mwaa_common checks it).
ENVIRONMENT_LOG_DAYS = 30  # the five airflow-{env}-* groups (stage key logging.retention_days)
FLOW_LOG_DAYS = 90  # VPC flow logs (network.flow_log_retention_days)
# Our custom resources' Lambdas and the Provider framework: long enough to investigate a
# failed deployment after a holiday, short enough not to keep request logs for a year.
CUSTOM_RESOURCE_LOG_DAYS = 90
DAG_PUBLISHER_LOG_DAYS = 90  # the DAG publisher's BucketDeployment Lambda


def check(days: int) -> int:
    """``days`` if CloudWatch Logs accepts it, else ValueError naming the allowed values."""
    if days not in LOG_RETENTION_DAYS:
        raise ValueError(
            f"log retention {days!r} days is not allowed; allowed (CloudWatch Logs): "
            f"{', '.join(map(str, LOG_RETENTION_DAYS))}"
        )
    return days
