"""Plan the clone of an MWAA environment: pure functions over plain dicts.

Nothing here calls AWS. The rules come from two places only:

* the botocore MWAA service model installed next to this code (which parameters
  CreateEnvironment / UpdateEnvironment accept, their types, which values are sensitive).
  Whatever GetEnvironment returns that CreateEnvironment does not accept is read-only and
  dropped; nested read-only members (``LoggingConfiguration.<Type>.CloudWatchLogGroupArn``)
  go the same way because every copied value is fitted to the input shape;
* ``mwaa_common.versions`` (allowed version pairs, creatable versions, class limits).

Override semantics (``overrides`` uses CreateEnvironment parameter names):

* a value replaces the source's value; ``None`` leaves the parameter out of the request
  (for ``KmsKey``: an AWS-owned key; for ``PluginsS3Path``: no plugins);
* ``AirflowConfigurationOptions`` and ``Tags`` are merged key by key into the source's
  maps; a ``None`` value removes that key, ``None`` for the whole map drops all of the
  source's entries (the migration tags are always added);
* ``LoggingConfiguration`` is merged per log type (``{"TaskLogs": {"LogLevel": "INFO"}}``);
* ``NetworkConfiguration`` is replaced whole (subnets and security groups belong together).
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable
from typing import Any

import botocore.session
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters

from mwaa_common import names, versions
from mwaa_common.settings import CLASS_LIMITED

REDACTED = "***redacted***"

# Tags that mark an environment as created by this tool for one migration. Adoption and
# deletion only ever happen to an environment that carries all three with our values.
TAG_MANAGED_BY = "mwaa-upgrade:managed-by"
TAG_MANAGED_BY_VALUE = "mwaa-upgrade/clone"
TAG_MIGRATION_ID = "mwaa-upgrade:migration-id"
TAG_SOURCE = "mwaa-upgrade:source-environment"

# the migration-id and environment-name rules (mwaa_common/names.py, written once)
MIGRATION_ID_PATTERN, NAME_PATTERN = names.MIGRATION_ID_RE, names.ENV_NAME_RE

# Configuration option values that must change when the Airflow major version changes.
# One row per rename; a row applies when the source's major version is ``source_major``
# and the target's major version is at least ``target_min_major``.
OPTION_VALUE_RENAMES: tuple[dict, ...] = (
    {
        "source_major": 1,
        "target_min_major": 2,
        "key": "secrets.backend",
        "old": "airflow.contrib.secrets.aws_secrets_manager.SecretsManagerBackend",
        "new": "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend",
    },
)

# Option keys whose values are class paths, never secrets: shown in reviews unredacted.
PUBLIC_OPTION_KEYS = frozenset({"secrets.backend"})

# A source is cloned only in these statuses: anything else is being created, changed, deleted
# or repaired (UPDATING, MAINTENANCE, ...) or broken (UNAVAILABLE, CREATE_FAILED), and its
# settings are not the ones it runs with. UPDATE_FAILED is excluded too: MWAA rolled the
# update back, but GetEnvironment may still show the refused settings.
CLONEABLE_SOURCE_STATUSES: frozenset[str] = frozenset({"AVAILABLE"})

# Maps merged key by key (None removes a key) instead of being replaced.
_MERGED_MAPS = ("AirflowConfigurationOptions", "Tags")


class PlanError(ValueError):
    """The clone cannot be planned as asked; the message names the field and what is allowed."""


# --------------------------------------------------------------------------- model access


@functools.lru_cache(maxsize=1)
def service_model():
    return botocore.session.get_session().get_service_model("mwaa")


def input_shape(operation: str):
    return service_model().operation_model(operation).input_shape


def environment_shape():
    return service_model().operation_model("GetEnvironment").output_shape.members["Environment"]


def create_parameters() -> frozenset[str]:
    """Every parameter CreateEnvironment accepts, from the installed service model."""
    return frozenset(input_shape("CreateEnvironment").members)


def update_parameters() -> frozenset[str]:
    return frozenset(input_shape("UpdateEnvironment").members)


def create_only_parameters() -> frozenset[str]:
    """Parameters CreateEnvironment takes and UpdateEnvironment does not (or takes in
    another form): they can only be set when the environment is created."""
    create, update = input_shape("CreateEnvironment"), input_shape("UpdateEnvironment")
    out = set()
    for name, shape in create.members.items():
        if name not in update.members or update.members[name].type_name != shape.type_name:
            out.add(name)
    return frozenset(out)


def read_only_fields(environment: dict) -> list[str]:
    """Top-level GetEnvironment fields that CreateEnvironment does not accept."""
    allowed = create_parameters()
    return sorted(k for k in environment if k not in allowed)


def _is_sensitive(shape) -> bool:
    return bool(shape.metadata.get("sensitive") or shape.serialization.get("sensitive"))


# --------------------------------------------------------------------------- coercion


def coerce(value: Any, shape, path: str, *, allow_none: bool = True) -> Any:
    """Return ``value`` converted to the model type of ``shape``.

    CloudFormation hands every custom-resource property over as a string ("10", "true");
    this turns them back into the model's types deliberately (integers and booleans only
    from their exact spellings) and rejects unknown members, naming the path.
    """
    if value is None:
        if allow_none:
            return None
        raise PlanError(f"{path} must not be null")
    convert = _COERCERS.get(shape.type_name)
    if convert is None:  # pragma: no cover - no other types in CreateEnvironment's input
        return value
    return convert(value, shape, path, allow_none)


def _coerce_structure(value: Any, shape, path: str, allow_none: bool) -> dict:
    if not isinstance(value, dict):
        raise PlanError(f"{path} must be an object with members {sorted(shape.members)}, got {type(value).__name__}")
    out = {}
    for key, item in value.items():
        if key not in shape.members:
            raise PlanError(f"{path}.{key} is not a parameter here; allowed: {', '.join(sorted(shape.members))}")
        out[key] = coerce(item, shape.members[key], f"{path}.{key}", allow_none=allow_none)
    return out


def _coerce_list(value: Any, shape, path: str, allow_none: bool) -> list:
    if not isinstance(value, (list, tuple)):
        raise PlanError(f"{path} must be a list, got {type(value).__name__}")
    return [coerce(item, shape.member, f"{path}[{i}]", allow_none=False) for i, item in enumerate(value)]


def _coerce_map(value: Any, shape, path: str, allow_none: bool) -> dict:
    if not isinstance(value, dict):
        raise PlanError(f"{path} must be an object (a map), got {type(value).__name__}")
    return {str(k): coerce(v, shape.value, f"{path}[{k!r}]", allow_none=allow_none) for k, v in value.items()}


def _coerce_integer(value: Any, shape, path: str, allow_none: bool) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
        return int(value.strip())
    raise PlanError(f"{path} must be an integer, got {value!r}")


def _coerce_boolean(value: Any, shape, path: str, allow_none: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise PlanError(f"{path} must be true or false, got {value!r}")


def _coerce_string(value: Any, shape, path: str, allow_none: bool) -> str:
    if not isinstance(value, str):
        raise PlanError(f"{path} must be a string, got {value!r}")
    return value


# model type -> converter (the types CreateEnvironment's input uses)
_COERCERS: dict[str, Callable[[Any, Any, str, bool], Any]] = {
    "structure": _coerce_structure,
    "list": _coerce_list,
    "map": _coerce_map,
    "integer": _coerce_integer,
    "long": _coerce_integer,
    "boolean": _coerce_boolean,
    "string": _coerce_string,
}


def coerce_overrides(overrides: dict | None) -> dict:
    """Overrides typed per CreateEnvironment's input shape (None values kept: they omit)."""
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise PlanError(f"Overrides must be an object of CreateEnvironment parameters, got {type(overrides).__name__}")
    shape = input_shape("CreateEnvironment")
    out = {}
    for key, value in overrides.items():
        if key not in shape.members:
            raise PlanError(
                f"Overrides.{key} is not a CreateEnvironment parameter; allowed: {', '.join(sorted(shape.members))}"
            )
        out[key] = coerce(value, shape.members[key], f"Overrides.{key}")
    return out


# --------------------------------------------------------------------------- helpers


def _fit(value: Any, shape) -> Any:
    """Keep only what ``shape`` (an input shape) accepts; structures missing a required
    member become None (left out)."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return None
        out = {}
        for key, item in value.items():
            if key in shape.members and item is not None:
                fitted = _fit(item, shape.members[key])
                if fitted is not None:
                    out[key] = fitted
        if any(req not in out for req in shape.required_members):
            return None
        return out
    if kind == "list":
        return [_fit(item, shape.member) for item in value]
    if kind == "map":
        return {k: _fit(v, shape.value) for k, v in value.items()}
    return copy.deepcopy(value)


def _major(version: str | None) -> int | None:
    try:
        return versions.parse(version)[0] if version else None
    except versions.VersionError:
        return None


def apply_option_renames(options: dict, source_version: str | None, target_version: str | None) -> dict:
    """Rename configuration values per OPTION_VALUE_RENAMES (e.g. 1.10 contrib -> providers)."""
    out = dict(options)
    s, t = _major(source_version), _major(target_version)
    for row in OPTION_VALUE_RENAMES:
        if s == row["source_major"] and t is not None and t >= row["target_min_major"]:
            if out.get(row["key"]) == row["old"]:
                out[row["key"]] = row["new"]
    return out


def check_source_status(source_env: dict) -> None:
    """PlanError unless the source is in a status it may be cloned in (CLONEABLE_SOURCE_STATUSES)."""
    status = source_env.get("Status")
    if status not in CLONEABLE_SOURCE_STATUSES:
        error = (source_env.get("LastUpdate") or {}).get("Error") or {}
        detail = f" ({error.get('ErrorCode')}: {error.get('ErrorMessage')})" if error else ""
        raise PlanError(
            f"source environment {source_env.get('Name')!r} is {status or 'of unknown status'}{detail}; "
            f"it is cloned only when {' or '.join(sorted(CLONEABLE_SOURCE_STATUSES))}: wait for it "
            "(or repair it), then deploy again"
        )


def migration_tags(source_name: str, migration_id: str) -> dict:
    if not MIGRATION_ID_PATTERN.match(migration_id or ""):
        raise PlanError(f"MigrationId={migration_id!r} is not allowed: use 1-40 of [a-z0-9-]")
    return {TAG_MANAGED_BY: TAG_MANAGED_BY_VALUE, TAG_MIGRATION_ID: migration_id, TAG_SOURCE: source_name}


def owned_by(environment: dict, *, source_name: str, migration_id: str) -> bool:
    """True only when the environment carries all of this migration's tags."""
    tags = environment.get("Tags") or {}
    return all(tags.get(k) == v for k, v in migration_tags(source_name, migration_id).items())


def _merge_map(base: dict | None, changes: dict) -> dict:
    out = dict(base or {})
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def _merge_logging(base: dict | None, changes: dict) -> dict:
    out = {k: dict(v) for k, v in (base or {}).items()}
    for log_type, settings in changes.items():
        if settings is None:
            out.pop(log_type, None)
        else:
            merged = dict(out.get(log_type, {}))
            merged.update({k: v for k, v in settings.items() if v is not None})
            out[log_type] = merged
    return out


# --------------------------------------------------------------------------- create


def _check_create_overrides(source_env: dict, overrides: dict) -> None:
    """The overrides a clone cannot do without, and the create-only settings that must be
    decided on purpose, never inherited silently."""
    source_name = source_env.get("Name")
    target_name = overrides.get("Name")
    if not target_name:
        raise PlanError("Overrides.Name (the target environment's name) is required")
    if target_name == source_name:
        raise PlanError(f"Name={target_name!r} is the source environment's own name; the clone needs a new name")
    if "ExecutionRoleArn" not in overrides or not overrides["ExecutionRoleArn"]:
        raise PlanError("Overrides.ExecutionRoleArn is required: the target runs with its own execution role")
    if "AirflowVersion" in overrides and overrides["AirflowVersion"] is None:
        raise PlanError("Overrides.AirflowVersion=null is not allowed: name the target version explicitly")
    if source_env.get("KmsKey") and "KmsKey" not in overrides:
        raise PlanError(
            f"source {source_name!r} encrypts with a customer managed KMS key (KmsKey), which can only be set at "
            "creation: set Overrides.KmsKey to the key for the target (it may be the same key; the clone "
            "Lambda must be allowed to use it) or to null for an AWS-owned key"
        )
    if source_env.get("EndpointManagement") == "CUSTOMER" and "EndpointManagement" not in overrides:
        raise PlanError(
            f"source {source_name!r} uses EndpointManagement=CUSTOMER: the target would wait in PENDING (up to "
            "72 h, then CREATE_FAILED) until you create its VPC endpoints yourself; set "
            "Overrides.EndpointManagement to CUSTOMER (and create the endpoints) or SERVICE"
        )


def _copy_source(source_env: dict, create) -> dict:
    """What of the source CreateEnvironment accepts (read-only fields dropped, shapes fitted)."""
    request: dict = {}
    for key, value in source_env.items():
        if key not in create.members or value is None:
            continue  # read-only (Arn, Status, LastUpdate, ...) or absent
        fitted = _fit(value, create.members[key])
        if fitted is not None:
            request[key] = fitted
    return request


def _apply_override(request: dict, key: str, value: Any, create) -> None:
    if key in _MERGED_MAPS:
        request[key] = {} if value is None else _merge_map(request.get(key), value)
    elif key == "LoggingConfiguration" and value is not None:
        request[key] = _fit(_merge_logging(request.get(key), value), create.members[key]) or {}
    elif value is None:
        request.pop(key, None)
    else:
        request[key] = copy.deepcopy(value)


def plan_create(source_env: dict, overrides: dict | None, *, migration_tags: dict) -> dict:
    """The CreateEnvironment request that clones ``source_env`` (GetEnvironment's
    ``Environment``) with ``overrides`` applied, tagged with ``migration_tags``."""
    create = input_shape("CreateEnvironment")
    overrides = coerce_overrides(overrides)
    _check_create_overrides(source_env, overrides)
    source_version = source_env.get("AirflowVersion")
    target_version = overrides.get("AirflowVersion", source_version)

    request = _copy_source(source_env, create)
    tags = {k: v for k, v in (request.pop("Tags", None) or {}).items() if not k.lower().startswith("aws:")}
    if request.get("AirflowConfigurationOptions"):
        request["AirflowConfigurationOptions"] = apply_option_renames(
            request["AirflowConfigurationOptions"], source_version, target_version
        )

    for key, value in overrides.items():
        if key == "Tags":
            tags = {} if value is None else _merge_map(tags, value)  # None: none of the source's tags
        else:
            _apply_override(request, key, value, create)

    tags.update(migration_tags)
    if tags:
        request["Tags"] = tags
    for key in ("AirflowConfigurationOptions", "LoggingConfiguration"):
        if key in request and not request[key]:
            del request[key]
    return request


def check_plan(request: dict, source_version: str) -> versions.UpgradePath:
    """Raise PlanError unless the planned request is allowed by the version table, the
    class limits and the service model; return the upgrade path on success."""
    target = request.get("AirflowVersion")
    if not target:
        raise PlanError("AirflowVersion is missing from the plan: name the target version explicitly")
    try:
        path = versions.upgrade_path(source_version, target)
    except versions.VersionError as exc:
        raise PlanError(f"AirflowVersion: {exc}") from None
    if not path.allowed:
        raise PlanError(f"AirflowVersion {source_version} -> {target} is not allowed: {path.reason}")
    try:
        versions.check_creatable(target)
    except versions.VersionError as exc:
        raise PlanError(f"AirflowVersion: {exc}") from None
    _check_class(request, where="the plan")
    tags = request.get("Tags") or {}
    if len(tags) > 50:
        raise PlanError(f"Tags: {len(tags)} tags after adding the migration tags; MWAA allows at most 50")
    try:
        validate_parameters(request, input_shape("CreateEnvironment"))
    except ParamValidationError as exc:
        raise PlanError(f"the planned CreateEnvironment request does not match the MWAA service model: {exc}") from None
    return path


def _check_class(settings: dict, *, where: str) -> None:
    cls = settings.get("EnvironmentClass") or "mw1.small"  # MWAA's default class
    kwargs = {arg: settings.get(param) for param, arg in CLASS_LIMITED.items()}
    try:
        versions.check_class(cls, **kwargs)
    except versions.VersionError as exc:
        message = str(exc)
        for param, arg in CLASS_LIMITED.items():
            message = re.sub(rf"\b{arg}=", f"{param}=", message)
        raise PlanError(f"EnvironmentClass {cls} in {where}: {message}; set it in the overrides") from None


def plan_warnings(source_env: dict, request: dict) -> list[str]:
    """Things a reviewer should look at; they do not stop the plan."""
    out = []
    s, t = source_env.get("AirflowVersion"), request.get("AirflowVersion")
    if s != t:
        for path, version in (
            ("RequirementsS3Path", "RequirementsS3ObjectVersion"),
            ("PluginsS3Path", "PluginsS3ObjectVersion"),
            ("StartupScriptS3Path", "StartupScriptS3ObjectVersion"),
        ):
            if (
                request.get(path)
                and request.get(path) == source_env.get(path)
                and request.get(version) == source_env.get(version)
            ):
                out.append(
                    f"{path}/{version} are the source's while AirflowVersion changes {s} -> {t}: "
                    "they must be valid for the new version (its constraints file)"
                )
    if request.get("SourceBucketArn") != source_env.get("SourceBucketArn") and request.get("Teams"):
        out.append("Teams are copied from the source and point at DAG locations in the source's bucket")
    if t in versions.VERSIONS and versions.VERSIONS[t].get("migration_schema") is None:
        out.append(f"Airflow {t}: the metadata DAGs have no schema for it (no metadata import into this target)")
    if t in versions.VERSIONS and versions.VERSIONS[t]["status"] == "image-only":
        out.append(f"Airflow {t} is not in the API's documented list yet: CreateEnvironment may refuse it")
    return out


# --------------------------------------------------------------------------- update

_MISSING = object()


class _Refuse(Exception):
    """An update that cannot be done in place; the message is the reason."""


def _update_network(before: Any, after: dict, current: Any, current_env: dict) -> dict | None:
    if sorted(after.get("SubnetIds") or []) != sorted((current or {}).get("SubnetIds") or []):
        raise _Refuse(
            "NetworkConfiguration.SubnetIds can only be set at creation: moving the environment to other "
            "subnets needs a new environment (change TargetName)"
        )
    wanted = sorted(after.get("SecurityGroupIds") or [])
    if wanted != sorted((current or {}).get("SecurityGroupIds") or []):
        return {"SecurityGroupIds": after["SecurityGroupIds"]}
    return None


def _update_options(before: Any, after: dict, current: Any, current_env: dict) -> dict | None:
    changed = {k: v for k, v in after.items() if (before or {}).get(k, _MISSING) != v}
    dropped = [k for k in (before or {}) if k not in after]
    if dropped:
        raise _Refuse(
            f"AirflowConfigurationOptions keys {dropped} were removed from the overrides: set them to null "
            "to remove them from the environment, or keep them"
        )
    wanted = _merge_map(current, changed)
    return wanted if wanted != (current or {}) else None


def _update_logging(before: Any, after: dict, current: Any, current_env: dict) -> dict | None:
    key = "LoggingConfiguration"
    base = _fit(current or {}, input_shape("CreateEnvironment").members[key]) or {}
    wanted = _fit(_merge_logging(base, after), input_shape("UpdateEnvironment").members[key]) or {}
    return wanted if wanted != base else None


def _update_version(before: Any, after: str, current: Any, current_env: dict) -> str | None:
    have = str(current_env.get("AirflowVersion") or "")
    if after == have:
        return None
    try:
        path = versions.upgrade_path(have, after)
    except versions.VersionError as exc:
        raise _Refuse(f"AirflowVersion: {exc}") from None
    if not path.allows_in_place:
        raise _Refuse(
            f"AirflowVersion {have} -> {after} cannot be done in place ({path.reason}); clone into a new "
            "environment (change TargetName)"
        )
    return after


def _update_plain(before: Any, after: Any, current: Any, current_env: dict) -> Any:
    return copy.deepcopy(after) if after != current else None


# Parameters whose update is more than "set the new value" (the rest: _update_plain).
_UPDATERS: dict[str, Callable[[Any, Any, Any, dict], Any]] = {
    "NetworkConfiguration": _update_network,
    "AirflowConfigurationOptions": _update_options,
    "LoggingConfiguration": _update_logging,
    "AirflowVersion": _update_version,
}


def _update_request(old_ov: dict, new_ov: dict, current_env: dict) -> dict:
    """The UpdateEnvironment changes (without Name); _Refuse when one cannot be done in place."""
    create_only = create_only_parameters()
    request: dict = {}
    for key in sorted(set(old_ov) | set(new_ov)):
        before, after = old_ov.get(key, _MISSING), new_ov.get(key, _MISSING)
        if before == after or key == "Name":
            continue
        if after is _MISSING or after is None:
            raise _Refuse(
                f"Overrides.{key} was removed or set to null: an existing environment keeps its {key}; "
                "set the value you want explicitly"
            )
        if key in create_only:
            raise _Refuse(
                f"{key} can only be set when the environment is created: changing it needs a new "
                "environment (change TargetName)"
            )
        value = _UPDATERS.get(key, _update_plain)(before, after, current_env.get(key), current_env)
        if value is not None:
            request[key] = value
    effective = {k: current_env.get(k) for k in CLASS_LIMITED}
    effective["EnvironmentClass"] = current_env.get("EnvironmentClass")
    effective.update({k: v for k, v in request.items() if k in effective})
    try:
        _check_class(effective, where="the update")
    except PlanError as exc:
        raise _Refuse(str(exc)) from None
    return request


def _identity_change(old_props: dict, new_props: dict, rollback: bool) -> tuple[str, str] | None:
    """(action, reason) when the update is decided by the resource's identity alone."""
    if old_props.get("TargetName") != new_props.get("TargetName"):
        return "replace", (
            f"TargetName changed {old_props.get('TargetName')!r} -> {new_props.get('TargetName')!r}: "
            "that is a new environment (replacement); the old one is kept unless its deletion is "
            "requested"
        )
    if rollback:
        return "none", (
            "CloudFormation is rolling back: the environment is left as it is and nothing is started in "
            "reverse; the next deployment reconciles it"
        )
    if old_props.get("SourceEnvironmentName") != new_props.get("SourceEnvironmentName"):
        return "refuse", (
            f"SourceEnvironmentName changed {old_props.get('SourceEnvironmentName')!r} -> "
            f"{new_props.get('SourceEnvironmentName')!r}: a clone of another source is a new "
            "environment; change TargetName too"
        )
    return None


def plan_update(old_props: dict, new_props: dict, current_env: dict, *, rollback: bool = False) -> dict:
    """Decide what an Update of the custom resource does to the existing target.

    ``old_props``/``new_props``: normalized resource properties (``SourceEnvironmentName``,
    ``TargetName``, ``MigrationId``, ``Overrides`` with None for omitted parameters).
    ``current_env``: GetEnvironment of the target as it is now. ``rollback``: CloudFormation
    is rolling back (old and new swapped after a failure).

    Returns ``{"action": "none" | "update" | "replace" | "refuse", "reason": str,
    "request": UpdateEnvironment request or None, "tags": TagResource tags or None}``.
    Changes are computed against the environment as it is, so a retried update that
    already took effect plans nothing.
    """

    def result(action, reason, request=None, tags=None):
        return {"action": action, "reason": reason, "request": request, "tags": tags}

    decided = _identity_change(old_props, new_props, rollback)
    if decided is not None:
        return result(*decided)
    try:
        request = _update_request(old_props.get("Overrides") or {}, new_props.get("Overrides") or {}, current_env)
    except _Refuse as exc:
        return result("refuse", str(exc))
    tags = None
    if old_props.get("MigrationId") != new_props.get("MigrationId"):
        tags = {TAG_MIGRATION_ID: new_props["MigrationId"]}
    if not request and not tags:
        return result("none", "nothing to change: the environment already matches the properties")
    if request:
        request = {"Name": new_props["TargetName"], **request}
        try:
            validate_parameters(request, input_shape("UpdateEnvironment"))
        except ParamValidationError as exc:
            return result("refuse", f"the UpdateEnvironment request does not match the MWAA service model: {exc}")
    changed = sorted(k for k in (request or {}) if k != "Name") + (["tags"] if tags else [])
    return result("update", f"changes {', '.join(changed)}", request or None, tags)


# --------------------------------------------------------------------------- review


def redact(value: Any, shape=None) -> Any:
    """A copy of ``value`` with every sensitive value (per the model) replaced.

    Map keys stay visible (a reviewer sees which options are set); values of
    PUBLIC_OPTION_KEYS (class paths) stay visible too. ``shape`` defaults to
    CreateEnvironment's input; pass ``environment_shape()`` for GetEnvironment output.
    """
    shape = shape if shape is not None else input_shape("CreateEnvironment")
    return _redact(value, shape, parent_sensitive=False)


def _redact(value, shape, *, parent_sensitive: bool, key: str | None = None):
    sensitive = parent_sensitive or _is_sensitive(shape)
    kind = shape.type_name
    if value is None:
        return None
    if kind == "structure" and isinstance(value, dict):
        return {
            k: (_redact(v, shape.members[k], parent_sensitive=sensitive) if k in shape.members else copy.deepcopy(v))
            for k, v in value.items()
        }
    if kind == "list" and isinstance(value, list):
        return [_redact(v, shape.member, parent_sensitive=sensitive) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _redact(v, shape.value, parent_sensitive=sensitive, key=k) for k, v in value.items()}
    if sensitive and key not in PUBLIC_OPTION_KEYS:
        return REDACTED
    return copy.deepcopy(value)


def _flatten(value, shape, prefix: str, sensitive: bool, out: dict) -> None:
    """path -> (leaf value, sensitive?, known to this shape?)."""
    sensitive = sensitive or (shape is not None and _is_sensitive(shape))
    kind = shape.type_name if shape is not None else None
    if isinstance(value, dict) and kind in ("structure", "map", None):
        if not value:
            out[prefix] = ({}, sensitive, shape is not None)
        for k, v in value.items():
            if kind == "map":
                child, path = shape.value, f"{prefix}[{k!r}]"
            else:
                child = shape.members.get(k) if kind == "structure" else None
                path = f"{prefix}.{k}" if prefix else k
            _flatten(v, child, path, sensitive or (kind == "map" and _is_sensitive(shape.value)), out)
            if kind == "map" and k in PUBLIC_OPTION_KEYS:
                leaf = out[path]
                out[path] = (leaf[0], False, leaf[2])
        return
    out[prefix] = (value, sensitive, shape is not None)


def diff(source_env: dict, request: dict) -> list[dict]:
    """Differences between the source (GetEnvironment) and the planned request, values
    redacted where the model marks them sensitive. Each entry: path, change
    (``dropped (read-only)`` | ``removed`` | ``added`` | ``changed``), source, planned."""
    src: dict = {}
    dst: dict = {}
    _flatten(source_env, environment_shape(), "", False, src)
    _flatten(request, input_shape("CreateEnvironment"), "", False, dst)
    create = input_shape("CreateEnvironment")
    probe: dict = {}
    _flatten(source_env, create, "", False, probe)  # which source paths CreateEnvironment knows

    def show(entry):
        if entry is None:
            return None
        value, sensitive, _ = entry
        if sensitive:
            return REDACTED
        return value if isinstance(value, (str, int, float, bool, list, dict)) or value is None else str(value)

    out = []
    for path in sorted(set(src) | set(dst)):
        a, b = src.get(path), dst.get(path)
        if a is not None and b is None:
            known = probe.get(path, (None, False, False))[2]
            change = "removed" if known else "dropped (read-only)"
            if path.startswith("Tags['aws:"):
                change = "dropped (aws: tags are reserved)"
        elif a is None:
            change = "added"
        elif b is None or a[0] != b[0]:
            change = "changed"
        else:
            continue
        out.append({"path": path, "change": change, "source": show(a), "planned": show(b)})
    return out
