"""Which AWS error codes and HTTP statuses are worth retrying: one set for every Lambda and tool.

Throttling and the services' own transient 5xx answers are retried with backoff; everything
else is the request's fault and fails at once. (``dags/mwaa_migration`` runs inside Airflow,
without ``lambda/``: its CloudWatch Logs copy keeps its own list, which adds Logs-specific codes.)
"""

from __future__ import annotations

from typing import Any

THROTTLING_CODES: frozenset[str] = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
    }
)
SERVER_ERROR_CODES: frozenset[str] = frozenset(
    {
        "InternalServerException",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailableException",
        "ServiceUnavailable",
    }
)
RETRYABLE_CODES: frozenset[str] = THROTTLING_CODES | SERVER_ERROR_CODES

# Airflow answers through InvokeRestApi (RestApiStatusCode) that mean "try again".
RETRYABLE_HTTP_STATUS: frozenset[int] = frozenset({429, 502, 503, 504})


def error_code(exc: Any) -> str:
    """The ``Error.Code`` of a botocore ClientError (empty for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str((response.get("Error") or {}).get("Code") or "")


def is_retryable(exc: Any) -> bool:
    """True for throttling and transient service errors (never for a client mistake)."""
    return error_code(exc) in RETRYABLE_CODES
