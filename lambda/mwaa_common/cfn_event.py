"""The CloudFormation custom-resource event, checked once at the handler's boundary.

Every Provider-backed handler of this project (clone, DAG runs, and later ones) starts with
:func:`parse_event` (``on_event``) or :func:`parse_waiter_event` (``is_complete``): a malformed
event fails with one clear message naming the field, never a traceback from deep inside.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

REQUEST_TYPES = ("Create", "Update", "Delete")
# arn:{partition}:cloudformation:{region}:{account}:stack/{name}/{uuid}
STACK_ID_RE = re.compile(r"arn:aws[a-z-]*:cloudformation:[a-z0-9-]+:\d{12}:stack/[A-Za-z][A-Za-z0-9-]*/[0-9a-f-]+")


class EventError(ValueError):
    """The event is not a well-formed custom-resource request; the message names the field."""


@dataclass(frozen=True)
class Event:
    request_type: str
    stack_id: str
    logical_id: str
    physical_id: str | None  # None on Create
    properties: dict = field(default_factory=dict)
    old_properties: dict | None = None  # Update only
    data: dict = field(default_factory=dict)  # is_complete: what on_event returned


def _text(event: dict, key: str, *, required: bool) -> str | None:
    value = event.get(key)
    if value is None or value == "":
        if required:
            raise EventError(f"malformed custom-resource event: {key} is missing")
        return None
    if not isinstance(value, str):
        raise EventError(f"malformed custom-resource event: {key} must be a string, got {type(value).__name__}")
    return value


def _mapping(event: dict, key: str, *, required: bool) -> dict | None:
    value = event.get(key)
    if value is None:
        if required:
            raise EventError(f"malformed custom-resource event: {key} is missing")
        return None
    if not isinstance(value, dict):
        raise EventError(f"malformed custom-resource event: {key} must be an object, got {type(value).__name__}")
    return value


def parse_event(event: Any, *, waiter: bool = False) -> Event:
    """The fields a request needs: RequestType, StackId, LogicalResourceId; ResourceProperties on
    Create and Update; PhysicalResourceId on Update and Delete (and always for ``waiter``);
    OldResourceProperties on Update (not for ``waiter``: is_complete never needs them)."""
    if not isinstance(event, dict):
        raise EventError(f"malformed custom-resource event: expected an object, got {type(event).__name__}")
    kind = _text(event, "RequestType", required=True)
    if kind not in REQUEST_TYPES:
        raise EventError(f"malformed custom-resource event: RequestType={kind!r}; allowed: {', '.join(REQUEST_TYPES)}")
    stack_id = _text(event, "StackId", required=True) or ""
    if not STACK_ID_RE.fullmatch(stack_id):
        raise EventError(f"malformed custom-resource event: StackId={stack_id!r} is not a CloudFormation stack ARN")
    return Event(
        request_type=kind,
        stack_id=stack_id,
        logical_id=_text(event, "LogicalResourceId", required=True) or "",
        physical_id=_text(event, "PhysicalResourceId", required=waiter or kind != "Create"),
        properties=_mapping(event, "ResourceProperties", required=kind != "Delete") or {},
        old_properties=_mapping(event, "OldResourceProperties", required=kind == "Update" and not waiter),
        data=_mapping(event, "Data", required=False) or {},
    )


def parse_waiter_event(event: Any) -> Event:
    """An is_complete event: an on_event event plus its PhysicalResourceId and Data."""
    return parse_event(event, waiter=True)


def number(data: dict, key: str, *, default: float | None = None) -> float:
    """A numeric value of the response Data (strings there, by CloudFormation's rules)."""
    value = data.get(key)
    if value in (None, ""):
        if default is None:
            raise EventError(f"malformed custom-resource event: Data.{key} is missing")
        return default
    try:
        result = float(str(value).strip())
    except ValueError:
        raise EventError(f"malformed custom-resource event: Data.{key}={value!r} is not a number") from None
    if result != result or result in (float("inf"), float("-inf")):
        raise EventError(f"malformed custom-resource event: Data.{key}={value!r} is not a finite number")
    return result
