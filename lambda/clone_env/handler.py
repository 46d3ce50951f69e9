"""Custom-resource handler that clones an MWAA environment during ``cdk deploy``.

Runs behind ``aws_cdk.custom_resources.Provider`` (``on_event`` + ``is_complete``).
The physical resource id is the target environment's name.

Resource properties (CloudFormation hands every value over as a string; each one is
coerced here on purpose, unknown properties are an error):

``SourceEnvironmentName`` (required)
    Name of the environment to clone (same account and region).
``TargetName`` (required)
    Name of the new environment; changing it is a replacement.
``MigrationId`` (required, ``[a-z0-9-]{1,40}``)
    Tagged onto the target together with the source name; only an environment that
    carries these tags is ever adopted, updated or deleted.
``Overrides`` (object, CreateEnvironment parameter names)
    Applied over the source's settings (see ``planner``); integers and booleans are
    converted per the MWAA service model. ``Name`` is taken from ``TargetName``.
``OmitFields`` (list of CreateEnvironment parameter names)
    Parameters left out of the request on purpose (CloudFormation cannot carry a null),
    e.g. ``["KmsKey"]`` for an AWS-owned key.
``DeleteOnStackDelete`` (``"true"``/``"false"``, default false)
    Delete the environment when the stack is deleted (only if it carries our tags).
    Rollbacks and replacements never delete.
``WaitBudgetSeconds`` (integer 60..3600, default 3300)
    How long ``is_complete`` waits before it fails with a "redeploy resumes" message;
    the construct sets it below the Provider's total timeout.

Response ``Data`` (a few hundred bytes, never configuration values): ``EnvironmentName``,
``EnvironmentArn``, ``Action``, ``StartedAt``, ``WaitDeadline``, ``WebserverUrl``, and when done
``Status``, ``AirflowVersion``. ``WebserverUrl`` is in every Create/Update response (the stack
outputs it with GetAtt, which fails on a response without the key): the environment's host
name, or ``unknown`` until GetEnvironment shows one (the waiter then sets the real value).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from clone_env import planner
from clone_env.planner import PlanError
from mwaa_common import retry
from mwaa_common.cfn_event import EventError, number, parse_event, parse_waiter_event

log = logging.getLogger(__name__)
log.setLevel(os.environ.get("LOG_LEVEL", "INFO"))

DEFAULT_WAIT_BUDGET = 3300
RETRY_BUDGET_SECONDS = 150
NOT_FOUND_GRACE_SECONDS = 180  # GetEnvironment right after CreateEnvironment (eventual consistency)


# ValidationExceptions of CreateEnvironment/UpdateEnvironment that are IAM eventual
# consistency: the target's execution role (or its policy) is created by the same
# deployment moments before, and MWAA checks it by assuming the role. Such a request
# succeeds once IAM has propagated (seconds to a minute or two), so it is retried within
# RETRY_BUDGET_SECONDS and then reported with MWAA's message. Every other
# ValidationException (bad subnets, unknown version, name taken, pattern errors) is the
# request's fault and fails at once.
TRANSIENT_VALIDATION: tuple[tuple[re.Pattern, str], ...] = (
    (
        re.compile(r"failed to assume role|assumable by", re.I),
        "the execution role's trust policy has not propagated in IAM yet",
    ),
    (
        re.compile(r"does not have sufficient permissions", re.I),
        "the execution role's permissions have not propagated in IAM yet",
    ),
)
_MUTATING = frozenset({"create_environment", "update_environment"})

WAITING_ACTIONS = frozenset({"created", "adopted", "waiting", "updating", "deleting"})
SETTLED_OK = frozenset({"AVAILABLE"})
FAILED_STATES = frozenset({"CREATE_FAILED", "UNAVAILABLE"})
GONE_STATES = frozenset({"DELETING", "DELETED"})

_ALLOWED_PROPERTIES = frozenset(
    {
        "ServiceToken",
        "SourceEnvironmentName",
        "TargetName",
        "MigrationId",
        "Overrides",
        "OmitFields",
        "DeleteOnStackDelete",
        "WaitBudgetSeconds",
    }
)


class HandlerError(Exception):
    """Fails the custom resource; the message reaches the CloudFormation event."""


# --------------------------------------------------------------------------- properties


def _bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise HandlerError(f"{field}={value!r} is not allowed: use true or false")


def _names(raw: dict) -> dict:
    out: dict = {}
    for field in ("SourceEnvironmentName", "TargetName"):
        value = raw.get(field)
        if not isinstance(value, str) or not planner.NAME_PATTERN.match(value) or len(value) > 80:
            raise HandlerError(
                f"{field}={value!r} is not a valid MWAA environment name "
                "(1-80 characters, a letter first, then letters, digits, - or _)"
            )
        out[field] = value
    if out["SourceEnvironmentName"] == out["TargetName"]:
        raise HandlerError(f"TargetName={out['TargetName']!r} equals SourceEnvironmentName: the clone needs a new name")
    migration_id = raw.get("MigrationId")
    if not isinstance(migration_id, str) or not planner.MIGRATION_ID_PATTERN.match(migration_id):
        raise HandlerError(f"MigrationId={migration_id!r} is not allowed: use 1-40 of [a-z0-9-]")
    out["MigrationId"] = migration_id
    return out


def _overrides(raw: dict, target_name: str) -> dict:
    """Overrides typed per the model, OmitFields folded in as None, Name from TargetName."""
    overrides = raw.get("Overrides") or {}
    if isinstance(overrides, str):
        try:
            overrides = json.loads(overrides)
        except ValueError:
            raise HandlerError("Overrides is a string that is not JSON; pass an object") from None
    try:
        overrides = planner.coerce_overrides(overrides)
    except PlanError as exc:
        raise HandlerError(str(exc)) from None
    if overrides.get("Name") not in (None, target_name):
        raise HandlerError(
            f"Overrides.Name={overrides['Name']!r} differs from TargetName={target_name!r}; "
            "set the name only through TargetName"
        )
    omit = raw.get("OmitFields") or []
    if isinstance(omit, str):
        omit = [omit]
    allowed = planner.create_parameters()
    for field in omit:
        if field not in allowed or field == "Name":
            raise HandlerError(f"OmitFields entry {field!r} is not an optional CreateEnvironment parameter")
        if overrides.get(field) is not None:
            raise HandlerError(f"{field} is both in Overrides and in OmitFields; choose one")
        overrides[field] = None
    overrides["Name"] = target_name
    return overrides


def _wait_budget(raw: dict) -> int:
    budget = raw.get("WaitBudgetSeconds", DEFAULT_WAIT_BUDGET)
    try:
        seconds = int(str(budget).strip())
    except ValueError:
        raise HandlerError(f"WaitBudgetSeconds={budget!r} is not an integer") from None
    if not 60 <= seconds <= 3600:
        raise HandlerError(f"WaitBudgetSeconds={seconds} is outside 60..3600 (the Provider waits at most 1 h)")
    return seconds


def parse_properties(raw: dict | None) -> dict:
    """Normalized, typed resource properties; HandlerError names the bad field."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - _ALLOWED_PROPERTIES)
    if unknown:
        raise HandlerError(
            f"unknown resource properties {unknown}; allowed: {sorted(_ALLOWED_PROPERTIES - {'ServiceToken'})}"
        )
    out = _names(raw)
    out["Overrides"] = _overrides(raw, out["TargetName"])
    out["DeleteOnStackDelete"] = _bool(raw.get("DeleteOnStackDelete", False), "DeleteOnStackDelete")
    out["WaitBudgetSeconds"] = _wait_budget(raw)
    return out


# --------------------------------------------------------------------------- retries


def transient_reason(exc: ClientError, operation: str) -> str | None:
    """Why this error is worth retrying, or None when it is final."""
    error = exc.response.get("Error", {})
    code, message = error.get("Code", ""), error.get("Message", "")
    if code in retry.RETRYABLE_CODES:
        return f"{code} (throttled or a transient service error)"
    if code == "ValidationException" and operation in _MUTATING:
        for pattern, reason in TRANSIENT_VALIDATION:
            if pattern.search(message):
                return reason
    return None


class Caller:
    """Calls an AWS operation, retrying transient errors with capped exponential backoff
    inside a time budget (botocore's own retries stay on for throttling; this adds the
    ValidationExceptions above and an overall bound that fits the Lambda's timeout)."""

    def __init__(
        self,
        *,
        budget_seconds: float = RETRY_BUDGET_SECONDS,
        base_delay: float = 2.0,
        max_delay: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.budget, self.base, self.max = budget_seconds, base_delay, max_delay
        self.sleep, self.clock = sleep, clock

    def call(self, client, operation: str, **params):
        start, attempt = self.clock(), 0
        while True:
            try:
                return getattr(client, operation)(**params)
            except ClientError as exc:
                reason = transient_reason(exc, operation)
                delay = min(self.max, self.base * (2**attempt))
                if reason is None or self.clock() - start + delay > self.budget:
                    if reason is not None:
                        exc.retry_note = f"retried for {int(self.clock() - start)} s: {reason}"
                    raise
                attempt += 1
                log.warning("%s: %s; retry %d in %.0f s", operation, reason, attempt, delay)
                self.sleep(delay)


def _describe(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    note = getattr(exc, "retry_note", "")
    return f"{error.get('Code', 'Error')}: {error.get('Message', '')}" + (f" ({note})" if note else "")


# --------------------------------------------------------------------------- handler


class CloneHandler:
    """``replaced_target``: the previous target's name when the stage opted in to deleting it after a
    successful rename (the construct's ``delete_replaced_target``, env ``DELETE_REPLACED_TARGET``)."""

    def __init__(
        self,
        mwaa,
        cfn,
        *,
        caller: Caller | None = None,
        now: Callable[[], float] = time.time,
        replaced_target: str | None = None,
    ):
        self.mwaa, self.cfn = mwaa, cfn
        self.replaced_target = replaced_target or None
        self.caller = caller or Caller()
        self.now = now

    # ---- AWS reads

    @property
    def region(self) -> str:
        return self.mwaa.meta.region_name

    def get_environment(self, name: str) -> dict | None:
        try:
            return self.caller.call(self.mwaa, "get_environment", Name=name)["Environment"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise HandlerError(f"GetEnvironment {name!r} in {self.region} failed: {_describe(exc)}") from None

    def stack_status(self, stack_id: str) -> str:
        try:
            stacks = self.caller.call(self.cfn, "describe_stacks", StackName=stack_id)["Stacks"]
        except ClientError as exc:
            raise HandlerError(
                f"DescribeStacks of the owning stack failed: {_describe(exc)}; the handler needs it "
                "to tell a rollback or replacement from a real change"
            ) from None
        return stacks[0]["StackStatus"] if stacks else ""

    # ---- dispatch

    def on_event(self, event: dict) -> dict:
        try:
            ev = parse_event(event)
        except EventError as exc:
            raise HandlerError(str(exc)) from None
        log.info("%s %s (physical id %s)", ev.request_type, ev.logical_id, ev.physical_id)
        if ev.request_type == "Create":
            return self.create(parse_properties(ev.properties))
        if ev.request_type == "Update":
            return self.update(event, stack_id=ev.stack_id)
        return self.delete(event, stack_id=ev.stack_id)

    def _data(self, name: str, action: str, props: dict, arn: str | None = None, env: dict | None = None) -> dict:
        data = {
            "EnvironmentName": name,
            "Action": action,
            "StartedAt": str(int(self.now())),
            "WaitDeadline": str(int(self.now()) + props["WaitBudgetSeconds"]),
            "WebserverUrl": _webserver_url(env),
        }
        if arn:
            data["EnvironmentArn"] = arn
        return data

    # ---- create

    def create(self, props: dict, *, adopt_only: bool = False) -> dict:
        name, source_name = props["TargetName"], props["SourceEnvironmentName"]
        existing = self.get_environment(name)
        if existing is not None:
            return self._adopt(existing, props)
        if adopt_only:
            raise HandlerError(
                f"rollback to TargetName {name!r}: no environment of that name exists and a rollback "
                "never creates one; redeploy to create it"
            )
        source = self.get_environment(source_name)
        if source is None:
            raise HandlerError(
                f"source environment {source_name!r} not found in region {self.region}: check "
                "SourceEnvironmentName and that the stack deploys to the source's account and region"
            )
        try:
            planner.check_source_status(source)
            request = planner.plan_create(
                source, props["Overrides"], migration_tags=planner.migration_tags(source_name, props["MigrationId"])
            )
            path = planner.check_plan(request, source.get("AirflowVersion", ""))
        except PlanError as exc:
            raise HandlerError(f"cannot clone {source_name!r} into {name!r}: {exc}") from None
        log.info("clone %s -> %s (%s): %s", source_name, name, path.path, path.reason)
        log.info("planned CreateEnvironment (redacted): %s", json.dumps(planner.redact(request), default=str))
        for entry in planner.diff(source, request):
            log.info("difference from the source: %s", json.dumps(entry, default=str))
        for warning in planner.plan_warnings(source, request):
            log.warning("review: %s", warning)
        try:
            response = self.caller.call(self.mwaa, "create_environment", **request)
        except ClientError as exc:
            again = self.get_environment(name)  # an attempt may have gone through before the error
            if again is not None and planner.owned_by(
                again, source_name=source_name, migration_id=props["MigrationId"]
            ):
                log.warning(
                    "CreateEnvironment answered %s but %s exists with our tags: adopting it", _describe(exc), name
                )
                return self._adopt(again, props)
            raise HandlerError(f"CreateEnvironment {name!r} failed: {_describe(exc)}") from None
        return {"PhysicalResourceId": name, "Data": self._data(name, "created", props, response.get("Arn"))}

    def _foreign(self, env: dict, props: dict) -> HandlerError:
        tags = env.get("Tags") or {}
        other = tags.get(planner.TAG_MIGRATION_ID)
        detail = (
            f"it was created by migration {other!r} of source {tags.get(planner.TAG_SOURCE)!r}"
            if tags.get(planner.TAG_MANAGED_BY) == planner.TAG_MANAGED_BY_VALUE
            else f"it lacks the tags {planner.TAG_MIGRATION_ID}={props['MigrationId']} and "
            f"{planner.TAG_SOURCE}={props['SourceEnvironmentName']}"
        )
        return HandlerError(
            f"target name {env.get('Name')!r} is taken by an environment this migration did not "
            f"create ({detail}); it is never adopted, changed or deleted: choose another TargetName"
        )

    def _adopt(self, env: dict, props: dict) -> dict:
        name = env["Name"]
        if not planner.owned_by(env, source_name=props["SourceEnvironmentName"], migration_id=props["MigrationId"]):
            raise self._foreign(env, props)
        status = env.get("Status")
        if status in FAILED_STATES or status in GONE_STATES:
            error = (env.get("LastUpdate") or {}).get("Error") or {}
            raise HandlerError(
                f"{name!r} (created by this migration) is {status}"
                + (f": {error.get('ErrorCode')}: {error.get('ErrorMessage')}" if error else "")
                + f"; delete it (aws mwaa delete-environment --name {name}) and deploy again"
            )
        wanted = props["Overrides"].get("AirflowVersion")
        if wanted and env.get("AirflowVersion") and env["AirflowVersion"] != wanted:
            raise HandlerError(
                f"{name!r} (created by this migration) runs Airflow {env['AirflowVersion']} but the "
                f"properties ask for {wanted}; let the deployment finish first, then change the version"
            )
        log.info("adopting %s (status %s): it carries this migration's tags", name, status)
        return {"PhysicalResourceId": name, "Data": self._data(name, "adopted", props, env.get("Arn"), env)}

    # ---- update

    def update(self, event: dict, *, stack_id: str) -> dict:
        old = parse_properties(event.get("OldResourceProperties"))
        new = parse_properties(event.get("ResourceProperties"))
        rollback = "ROLLBACK" in self.stack_status(stack_id)
        name = event["PhysicalResourceId"]
        if old["TargetName"] != new["TargetName"]:
            decision = planner.plan_update(old, new, {}, rollback=rollback)
            log.info("%s", decision["reason"])
            return self.create(new, adopt_only=rollback)
        current = self.get_environment(name)
        if current is None:
            if rollback:
                return {"PhysicalResourceId": name, "Data": self._data(name, "unchanged", new)}
            raise HandlerError(
                f"environment {name!r} no longer exists in {self.region}; to create it again, change "
                "TargetName (or delete and redeploy the stack)"
            )
        if not any(
            planner.owned_by(current, source_name=p["SourceEnvironmentName"], migration_id=p["MigrationId"])
            for p in (old, new)
        ):
            raise self._foreign(current, new)
        decision = planner.plan_update(old, new, current, rollback=rollback)
        log.info("update %s: %s: %s", name, decision["action"], decision["reason"])
        if decision["action"] == "refuse":
            raise HandlerError(f"cannot update {name!r}: {decision['reason']}")
        if decision["action"] == "none":
            busy = not rollback and current.get("Status") not in ("AVAILABLE", "UPDATE_FAILED")
            # nothing to change, but an earlier deployment's operation may still be running
            action = "waiting" if busy else "unchanged"
            return {"PhysicalResourceId": name, "Data": self._data(name, action, new, current.get("Arn"), current)}
        status = current.get("Status")
        if decision["request"] and status not in ("AVAILABLE", "UPDATE_FAILED"):
            raise HandlerError(
                f"{name!r} is {status}: it can be updated only when AVAILABLE; deploy again when the "
                "running operation has finished"
            )
        if decision["tags"]:
            try:
                self.caller.call(self.mwaa, "tag_resource", ResourceArn=current["Arn"], Tags=decision["tags"])
            except ClientError as exc:
                raise HandlerError(f"TagResource {name!r} failed: {_describe(exc)}") from None
        if not decision["request"]:
            return {"PhysicalResourceId": name, "Data": self._data(name, "retagged", new, current.get("Arn"), current)}
        requested_at = int(self.now())
        try:
            self.caller.call(self.mwaa, "update_environment", **decision["request"])
        except ClientError as exc:
            raise HandlerError(f"UpdateEnvironment {name!r} failed: {_describe(exc)}") from None
        data = self._data(name, "updating", new, current.get("Arn"), current)
        data["UpdateRequestedAt"] = str(requested_at)
        return {"PhysicalResourceId": name, "Data": data}

    # ---- delete

    def delete(self, event: dict, *, stack_id: str) -> dict:
        name = event.get("PhysicalResourceId") or ""
        try:
            props = parse_properties(event.get("ResourceProperties"))
        except HandlerError as exc:
            log.warning("Delete with unusable properties (%s): keeping whatever exists", exc)
            return {"PhysicalResourceId": name, "Data": {"Action": "retained"}}

        def keep(why: str) -> dict:
            log.info("keeping %s: %s", name, why)
            return {"PhysicalResourceId": name, "Data": {"EnvironmentName": name, "Action": "retained"}}

        if not planner.NAME_PATTERN.match(name):
            return keep("the physical id is not an environment name (the create never got that far)")
        replaced = name == self.replaced_target
        if not props["DeleteOnStackDelete"] and not replaced:
            return keep("DeleteOnStackDelete is false (the default)")
        status = self.stack_status(stack_id)
        cleanup = replaced and status == "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"
        if not cleanup and not props["DeleteOnStackDelete"]:
            return keep(f"the stack is {status}: only a successful rename deletes the replaced target")
        if not cleanup and status != "DELETE_IN_PROGRESS":
            return keep(f"the stack is {status}, not being deleted: rollbacks and replacements never delete")
        env = self.get_environment(name)
        if env is None:
            return {"PhysicalResourceId": name, "Data": {"EnvironmentName": name, "Action": "gone"}}
        if not planner.owned_by(env, source_name=props["SourceEnvironmentName"], migration_id=props["MigrationId"]):
            return keep("it does not carry this migration's tags (never touch a foreign environment)")
        if env.get("Status") not in GONE_STATES:
            try:
                self.caller.call(self.mwaa, "delete_environment", Name=name)
            except ClientError as exc:
                raise HandlerError(
                    f"DeleteEnvironment {name!r} (status {env.get('Status')}) failed: {_describe(exc)}; "
                    "delete the stack again when the environment is AVAILABLE or failed"
                ) from None
        if cleanup:
            # A successful rename (the stage opted in to deleting the old target): the update is
            # done, so its cleanup is not held for the 20+ minutes a deletion takes.
            log.info("%s was replaced by a successful update: deletion requested", name)
            return {"PhysicalResourceId": name, "Data": {"EnvironmentName": name, "Action": "deletion-requested"}}
        return {"PhysicalResourceId": name, "Data": self._data(name, "deleting", props, env.get("Arn"))}

    # ---- wait

    def is_complete(self, event: dict) -> dict:
        try:
            ev = parse_waiter_event(event)
            data = ev.data
            deadline = int(number(data, "WaitDeadline", default=0))
            started = int(number(data, "StartedAt", default=0))
            number(data, "UpdateRequestedAt", default=0)
        except EventError as exc:
            raise HandlerError(str(exc)) from None
        action = data.get("Action")
        if action not in WAITING_ACTIONS:
            return {"IsComplete": True}
        name = ev.physical_id or ""
        env = self.get_environment(name)
        if action == "deleting":
            if env is None or env.get("Status") == "DELETED":
                return {"IsComplete": True, "Data": {"Status": "DELETED"}}
            return self._not_yet(
                name, env, deadline, "deleted", "the deletion continues; delete the stack again to wait for it"
            )
        if env is None:
            if action == "created" and self.now() - started < NOT_FOUND_GRACE_SECONDS:
                return {"IsComplete": False}  # a just-created environment may not be readable yet
            raise HandlerError(f"environment {name!r} disappeared while waiting for it to become AVAILABLE")
        status = env.get("Status")
        error = (env.get("LastUpdate") or {}).get("Error") or {}
        reason = f": {error.get('ErrorCode')}: {error.get('ErrorMessage')}" if error else ""
        if status in FAILED_STATES or (status == "UPDATE_FAILED" and action == "updating"):
            hint = (
                "MWAA rolled the update back; the environment keeps its previous settings"
                if status == "UPDATE_FAILED"
                else f"fix the cause, delete the environment (aws mwaa delete-environment --name {name}) and "
                "deploy again"
            )
            raise HandlerError(f"{name!r} is {status}{reason}; {hint}")
        if status in GONE_STATES:
            raise HandlerError(f"{name!r} is {status} while waiting for it to become AVAILABLE")
        if status in SETTLED_OK or status == "UPDATE_FAILED":
            if action == "updating" and not self._update_finished(env, data):
                return self._not_yet(name, env, deadline, "updated", "a redeploy resumes waiting")
            done = {
                "Status": status,
                "AirflowVersion": env.get("AirflowVersion", ""),
                "WebserverUrl": _webserver_url(env),
            }
            return {"IsComplete": True, "Data": done}
        hint = "a redeploy adopts it and resumes waiting"
        if status == "PENDING":
            hint = (
                "with EndpointManagement=CUSTOMER it waits for you to create its VPC endpoints (up to 72 h); "
                "create them, then redeploy to resume waiting"
            )
        return self._not_yet(name, env, deadline, "ready", hint)

    @staticmethod
    def _update_finished(env: dict, data: dict) -> bool:
        last = env.get("LastUpdate") or {}
        if last.get("Status") == "PENDING":
            return False
        requested = int(data.get("UpdateRequestedAt") or 0)
        created = last.get("CreatedAt")
        if isinstance(created, datetime):
            # MWAA stamps the update it accepted; one older than our request (minus clock
            # tolerance) means ours has not shown up yet.
            return created.astimezone(UTC).timestamp() >= requested - 60
        return True

    def _not_yet(self, name: str, env: dict, deadline: int, goal: str, hint: str) -> dict:
        if deadline and self.now() >= deadline:
            status = env.get("Status") if env else "unknown"
            raise HandlerError(
                f"{name!r} is still {status} and not yet {goal} when this deployment's wait budget "
                f"(the custom-resource framework allows at most 1 h) ran out; MWAA keeps working on it: "
                f"{hint}"
            )
        log.info("%s is %s; waiting", name, env.get("Status") if env else "unknown")
        return {"IsComplete": False}


def _webserver_url(env: dict | None) -> str:
    """The environment's webserver host name, or ``unknown`` (never empty: it is a stack output)."""
    return (env or {}).get("WebserverUrl") or "unknown"


# --------------------------------------------------------------------------- entry points


def _clients():
    config = Config(retries={"mode": "standard", "max_attempts": 4}, user_agent_extra="mwaa-upgrade-clone")
    return boto3.client("mwaa", config=config), boto3.client("cloudformation", config=config)


def _handler(context) -> CloneHandler:
    mwaa, cfn = _clients()
    budget = RETRY_BUDGET_SECONDS
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        budget = max(0.0, min(budget, context.get_remaining_time_in_millis() / 1000 - 30))
    return CloneHandler(
        mwaa, cfn, caller=Caller(budget_seconds=budget), replaced_target=os.environ.get("DELETE_REPLACED_TARGET")
    )


def on_event(event, context=None):
    return _handler(context).on_event(event)


def is_complete(event, context=None):
    return _handler(context).is_complete(event)
