"""Validation of the ``dag_run.conf`` of db_export / db_import (docs/contracts.md §2)."""
from __future__ import annotations

import re

from mwaa_migration import rules


class ConfError(ValueError):
    """Invalid configuration; the message names the field, the value and what is allowed."""


_MIGRATION_ID = re.compile(r"^[a-z0-9-]{1,40}$")
_STRATEGIES = ("skip_existing", "overwrite")
_TI_STATES = ("success", "failed", "upstream_failed", "skipped", "up_for_retry",
              "up_for_reschedule", "removed", "shutdown", "restarting", "deferred")

# key -> (type check description, default); None default with required=True means required
FIELDS = {
    "bucket": {"required": True},
    "prefix": {"required": True},
    "migration_id": {"required": True},
    "tables": {"default": None},
    "source_environment": {"default": None},
    "target_environment": {"default": None},
    "task_log_days": {"default": 3},
    "task_log_states": {"default": ["failed"]},
    "variables_strategy": {"default": "skip_existing"},
    "connections_strategy": {"default": "skip_existing"},
    "cutover": {"default": False},
    "dry_run": {"default": False},
    # short cutover (docs/deploy.md): how long the freeze waits for in-flight task instances, what
    # happens then (abort | continue), how far before the snapshot the delta re-reads changes
    "drain_timeout_s": {"default": 300},
    "drain_policy": {"default": "abort"},
    "delta_margin_s": {"default": 600},
    "phase": {"default": "one_shot"},
}
EXPORT_KEYS = ("bucket", "prefix", "migration_id", "tables", "drain_timeout_s", "drain_policy",
               "delta_margin_s", "phase")
_DRAIN_POLICIES = ("abort", "continue")
# what one run of each DAG does: one_shot = today's export (pauses) / import (+ cutover);
# the others are the short cutover's steps (mwaa_migration.flow, docs/deploy.md)
EXPORT_PHASES = ("one_shot", "bulk", "freeze_delta", "resume_source")
IMPORT_PHASES = ("one_shot", "bulk", "delta", "cutover")


def _fail(field, value, allowed):
    raise ConfError(f"dag_run.conf field {field!r}: got {value!r}; allowed: {allowed}")


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


def validate(conf, *, for_import: bool) -> dict:
    """Return the conf with defaults filled in, or raise ConfError naming the first bad field."""
    if conf is None:
        conf = {}
    if not isinstance(conf, dict):
        raise ConfError(f"dag_run.conf must be a JSON object, got {type(conf).__name__}")
    allowed_keys = FIELDS if for_import else {k: FIELDS[k] for k in EXPORT_KEYS}
    unknown = sorted(set(conf) - set(allowed_keys))
    if unknown:
        raise ConfError(f"dag_run.conf has unknown key(s) {', '.join(map(repr, unknown))}; "
                        f"allowed keys: {', '.join(allowed_keys)}")
    out = {}
    for key, spec in allowed_keys.items():
        if key in conf:
            out[key] = conf[key]
        elif spec.get("required"):
            raise ConfError(f"dag_run.conf field {key!r} is required")
        else:
            d = spec["default"]
            out[key] = list(d) if isinstance(d, list) else d

    b = out["bucket"]
    if not isinstance(b, str) or not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", b):
        _fail("bucket", b, "an S3 bucket name (3-63 characters: a-z 0-9 . -)")
    p = out["prefix"]
    if not isinstance(p, str) or not p.endswith("/") or p.startswith("/") or len(p) > 900 \
            or "//" in p:
        _fail("prefix", p, "a key prefix ending in '/' (no leading '/', no '//')")
    m = out["migration_id"]
    if not isinstance(m, str) or not _MIGRATION_ID.match(m):
        _fail("migration_id", m, "1-40 characters of a-z, 0-9 and '-'")
    t = out["tables"]
    if t is not None:
        if not isinstance(t, list) or not t or not all(isinstance(x, str) for x in t):
            _fail("tables", t, f"a non-empty list of: {', '.join(rules.MIGRATED_TABLES)}")
        bad = [x for x in t if x not in rules.MIGRATED_TABLES]
        if bad:
            _fail("tables", bad, f"any of: {', '.join(rules.MIGRATED_TABLES)}")
        if len(set(t)) != len(t):
            _fail("tables", t, "each table at most once")
        out["tables"] = [x for x in rules.MIGRATED_TABLES if x in t]  # FK order
    else:
        out["tables"] = list(rules.MIGRATED_TABLES)
    _validate_cutover_keys(out, for_import)
    if not for_import:
        return out

    d = out["task_log_days"]
    if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 365:
        _fail("task_log_days", d, "an integer 0..365 (0 = no log copy)")
    s = out["task_log_states"]
    if not isinstance(s, list) or not s or not all(isinstance(x, str) for x in s) \
            or any(x not in _TI_STATES for x in s):
        _fail("task_log_states", s, f"a non-empty list of: {', '.join(_TI_STATES)}")
    for key in ("source_environment", "target_environment"):
        v = out[key]
        if v is not None and (not isinstance(v, str)
                              or not re.fullmatch(r"[A-Za-z][0-9A-Za-z_-]{0,79}", v)):
            _fail(key, v, "an MWAA environment name (letter first, then letters, digits, - or _)")
        if v is None and d > 0:
            raise ConfError(f"dag_run.conf field {key!r} is required when task_log_days > 0 "
                            f"(task_log_days={d}); set it or set task_log_days to 0")
    for key in ("variables_strategy", "connections_strategy"):
        if out[key] not in _STRATEGIES:
            _fail(key, out[key], " | ".join(_STRATEGIES))
    for key in ("cutover", "dry_run"):
        if not isinstance(out[key], bool):
            _fail(key, out[key], "true or false")
    return out
