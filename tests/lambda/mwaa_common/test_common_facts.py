"""Retention values, retryable error codes and the custom-resource event checks of mwaa_common."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from mwaa_common import cfn_event, retention, retry

STACK = "arn:aws:cloudformation:eu-west-1:111122223333:stack/dev-migration/0a1b2c3d-0000"


def test_defaults_are_allowed_retention_values():
    for days in (
        retention.ENVIRONMENT_LOG_DAYS,
        retention.FLOW_LOG_DAYS,
        retention.CUSTOM_RESOURCE_LOG_DAYS,
        retention.DAG_PUBLISHER_LOG_DAYS,
    ):
        assert retention.check(days) == days
    with pytest.raises(ValueError, match=r"log retention 2 days is not allowed; allowed \(CloudWatch Logs\): 1, 3"):
        retention.check(2)


def test_cdk_knows_every_retention_value():
    from constructs_lib.log_retention import _NAMES
    from constructs_lib.log_retention import retention as cdk_retention

    assert tuple(sorted(_NAMES)) == retention.LOG_RETENTION_DAYS
    assert cdk_retention(90).value == "THREE_MONTHS"


def _error(code):
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "GetEnvironment")


@pytest.mark.parametrize(
    "code,expected",
    [
        ("ThrottlingException", True),
        ("TooManyRequestsException", True),
        ("InternalServerException", True),
        ("ServiceUnavailable", True),
        ("ValidationException", False),
        ("AccessDeniedException", False),
        ("ResourceNotFoundException", False),
    ],
)
def test_retryable_codes(code, expected):
    assert retry.is_retryable(_error(code)) is expected


def test_both_handlers_use_the_one_set():
    from clone_env import handler as clone
    from dag_runner import airflow_api

    assert not hasattr(clone, "RETRYABLE_CODES") and not hasattr(airflow_api, "RETRY_CODES")
    assert clone.transient_reason(_error("ThrottledException"), "get_environment")


def _event(**changes):
    e = {
        "RequestType": "Update",
        "StackId": STACK,
        "LogicalResourceId": "R",
        "PhysicalResourceId": "p",
        "ResourceProperties": {},
        "OldResourceProperties": {},
    }
    e.update(changes)
    return {k: v for k, v in e.items() if v is not None}


def test_a_good_event_parses():
    ev = cfn_event.parse_event(_event(Data={"A": "1"}))
    assert (ev.request_type, ev.stack_id, ev.physical_id, ev.data) == ("Update", STACK, "p", {"A": "1"})
    assert (
        cfn_event.parse_event(
            _event(RequestType="Create", PhysicalResourceId=None, OldResourceProperties=None)
        ).physical_id
        is None
    )
    # is_complete needs no OldResourceProperties
    assert cfn_event.parse_waiter_event(_event(OldResourceProperties=None)).physical_id == "p"


@pytest.mark.parametrize(
    "event,message",
    [
        ("text", "expected an object, got str"),
        (_event(RequestType=None), "RequestType is missing"),
        (_event(StackId="arn:aws:s3:::bucket"), "is not a CloudFormation stack ARN"),
        (_event(StackId=STACK + "\n"), "is not a CloudFormation stack ARN"),
        (_event(LogicalResourceId=None), "LogicalResourceId is missing"),
        (_event(PhysicalResourceId=7), "PhysicalResourceId must be a string, got int"),
        (_event(RequestType="Delete", PhysicalResourceId=None), "PhysicalResourceId is missing"),
        (_event(ResourceProperties=None), "ResourceProperties is missing"),
        (_event(Data=[1]), "Data must be an object, got list"),
    ],
)
def test_malformed_events_name_the_field(event, message):
    with pytest.raises(cfn_event.EventError, match=message):
        cfn_event.parse_event(event)


@pytest.mark.parametrize("value,expected", [("12", 12.0), (" 3 ", 3.0), (None, 5.0), ("", 5.0)])
def test_numbers_in_data(value, expected):
    assert cfn_event.number({"X": value}, "X", default=5) == expected


@pytest.mark.parametrize("value", ["x", "nan", "-inf", "1e999"])
def test_bad_numbers_in_data(value):
    with pytest.raises(cfn_event.EventError, match="Data.X="):
        cfn_event.number({"X": value}, "X", default=0)
