"""Validation of the ``dag_run.conf`` of db_export / db_import (docs/contracts.md §2)."""

from __future__ import annotations

import re

from mwaa_migration import rules


class ConfError(ValueError):
    """Invalid configuration; the message names the field, the value and what is allowed."""


_MIGRATION_ID = re.compile(r"[a-z0-9-]{1,40}")
_STRATEGIES = ("skip_existing", "overwrite")
_TI_STATES = (
    "success",
    "failed",
    "upstream_failed",
    "skipped",
    "up_for_retry",
    "up_for_reschedule",
    "removed",
    "shutdown",
    "restarting",
    "deferred",
)

# key -> (type check description, default); None default with required=True means required
FIELDS = {
    "bucket": {"required": True},
    "prefix": {"required": True},
    "migration_id": {"required": True},
    "tables": {"default": None},
    # a deliberate re-run (the stage's rerun_token): its own export under {migration_id}/reruns/{rerun}/
    "rerun": {"default": None},
    # export only: KMS key (id, ARN or alias) whose data key encrypts the secret columns in the files
    "secrets_kms_key": {"default": None},
    # export only: the target's Airflow version; a 2.x target skips the Airflow 3 JSON columns
    "target_airflow_version": {"default": None},
    "source_environment": {"default": None},
    "target_environment": {"default": None},
    "task_log_days": {"default": 3},
    "task_log_states": {"default": ["failed"]},
    "variables_strategy": {"default": "skip_existing"},
    "connections_strategy": {"default": "skip_existing"},
    # default_pool exists in every new database: the source's settings win unless told otherwise
    "default_pool_strategy": {"default": "overwrite"},
    "cutover": {"default": False},
    "dry_run": {"default": False},
    # short cutover (docs/deploy.md): how long the freeze waits for in-flight task instances, what
    # happens then (abort | continue), how far before the snapshot the delta re-reads changes
    "drain_timeout_s": {"default": 300},
    "drain_policy": {"default": "abort"},
    "delta_margin_s": {"default": 600},
    "phase": {"default": "one_shot"},
}
EXPORT_KEYS = ("bucket", "prefix", "migration_id", "tables", "rerun", "target_airflow_version", "secrets_kms_key",
               "drain_timeout_s", "drain_policy", "delta_margin_s", "phase")  # fmt: skip
_RERUN = re.compile(r"[a-z0-9]{1,40}")
_DRAIN_POLICIES = ("abort", "continue")
# what one run of each DAG does: one_shot = today's export (pauses) / import (+ cutover);
# the others are the short cutover's steps (mwaa_migration.flow, docs/deploy.md)
EXPORT_PHASES = ("one_shot", "bulk", "freeze_delta", "resume_source")
IMPORT_PHASES = ("one_shot", "bulk", "delta", "cutover")


def _fail(field, value, allowed):
    raise ConfError(f"dag_run.conf field {field!r}: got {value!r}; allowed: {allowed}")


def _is_str(pattern: str):
    return lambda v: isinstance(v, str) and re.fullmatch(pattern, v) is not None


def _optional(check):
    return lambda v: v is None or check(v)


def _prefix_ok(p) -> bool:
    return isinstance(p, str) and p.endswith("/") and not p.startswith("/") and len(p) <= 900 and "//" not in p


def _states_ok(s) -> bool:
    return isinstance(s, list) and bool(s) and all(isinstance(x, str) and x in _TI_STATES for x in s)


_ENV_NAME = _optional(_is_str(r"[A-Za-z][0-9A-Za-z_-]{0,79}"))
# field -> (check, what is allowed); checked in this order, the first failure is reported
CHECKS = {
    "bucket": (_is_str(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"), "an S3 bucket name (3-63 characters: a-z 0-9 . -)"),
    "prefix": (_prefix_ok, "a key prefix ending in '/' (no leading '/', no '//')"),
    "migration_id": (lambda m: isinstance(m, str) and _MIGRATION_ID.fullmatch(m) is not None,
                     "1-40 characters of a-z, 0-9 and '-'"),
    "rerun": (_optional(lambda r: isinstance(r, str) and _RERUN.fullmatch(r) is not None),
              "null or 1-40 characters of a-z and 0-9 (derived from the stage's rerun_token)"),
    "target_airflow_version": (_optional(_is_str(r"[23]\.[0-9]+\.[0-9]+")),
                               "null or an Airflow version such as 2.11.0 or 3.0.6"),
    "secrets_kms_key": (_optional(_is_str(r"[A-Za-z0-9:/_+=.@-]{1,2048}")),
                        "null or a KMS key id, key ARN, alias name or alias ARN"),
    "task_log_days": (lambda d: not isinstance(d, bool) and isinstance(d, int) and 0 <= d <= 365,
                      "an integer 0..365 (0 = no log copy)"),
    "task_log_states": (_states_ok, f"a non-empty list of: {', '.join(_TI_STATES)}"),
    "source_environment": (_ENV_NAME, "an MWAA environment name (letter first, then letters, digits, - or _)"),
    "target_environment": (_ENV_NAME, "an MWAA environment name (letter first, then letters, digits, - or _)"),
    "variables_strategy": (lambda v: v in _STRATEGIES, " | ".join(_STRATEGIES)),
    "connections_strategy": (lambda v: v in _STRATEGIES, " | ".join(_STRATEGIES)),
    "default_pool_strategy": (lambda v: v in _STRATEGIES, " | ".join(_STRATEGIES)),
    "cutover": (lambda v: isinstance(v, bool), "true or false"),
    "dry_run": (lambda v: isinstance(v, bool), "true or false"),
}  # fmt: skip


def _with_defaults(conf, allowed_keys) -> dict:
    if conf is None:
        conf = {}
    if not isinstance(conf, dict):
        raise ConfError(f"dag_run.conf must be a JSON object, got {type(conf).__name__}")
    unknown = sorted(set(conf) - set(allowed_keys))
    if unknown:
        raise ConfError(
            f"dag_run.conf has unknown key(s) {', '.join(map(repr, unknown))}; allowed keys: {', '.join(allowed_keys)}"
        )
    out = {}
    for key, spec in allowed_keys.items():
        if key in conf:
            out[key] = conf[key]
        elif spec.get("required"):
            raise ConfError(f"dag_run.conf field {key!r} is required")
        else:
            d = spec["default"]
            out[key] = list(d) if isinstance(d, list) else d
    return out


def _validate_cutover_keys(out: dict, for_import: bool) -> None:
    allowed = IMPORT_PHASES if for_import else EXPORT_PHASES
    if out["phase"] not in allowed:
        _fail("phase", out["phase"], " | ".join(allowed))
    for key, hi in (("drain_timeout_s", 3600), ("delta_margin_s", 86400)):
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi:
            _fail(key, v, f"an integer 0..{hi} (seconds)")
    if out["drain_policy"] not in _DRAIN_POLICIES:
        _fail("drain_policy", out["drain_policy"], " | ".join(_DRAIN_POLICIES))


def _tables(t) -> list:
    """The selected tables in load (foreign-key) order; all when None."""
    if t is None:
        return list(rules.MIGRATED_TABLES)
    if not isinstance(t, list) or not t or not all(isinstance(x, str) for x in t):
        _fail("tables", t, f"a non-empty list of: {', '.join(rules.MIGRATED_TABLES)}")
    bad = [x for x in t if x not in rules.MIGRATED_TABLES]
    if bad:
        _fail("tables", bad, f"any of: {', '.join(rules.MIGRATED_TABLES)}")
    if len(set(t)) != len(t):
        _fail("tables", t, "each table at most once")
    return [x for x in rules.MIGRATED_TABLES if x in t]


def validate(conf, *, for_import: bool) -> dict:
    """Return the conf with defaults filled in, or raise ConfError naming the first bad field."""
    allowed_keys = FIELDS if for_import else {k: FIELDS[k] for k in EXPORT_KEYS}
    out = _with_defaults(conf, allowed_keys)
    for key, (check, allowed) in CHECKS.items():
        if key in out and not check(out[key]):
            _fail(key, out[key], allowed)
    out["tables"] = _tables(out["tables"])
    _validate_cutover_keys(out, for_import)
    if for_import and out["task_log_days"] > 0:
        for key in ("source_environment", "target_environment"):
            if out[key] is None:
                raise ConfError(
                    f"dag_run.conf field {key!r} is required when task_log_days > 0 "
                    f"(task_log_days={out['task_log_days']}); set it or set task_log_days to 0"
                )
    return out
