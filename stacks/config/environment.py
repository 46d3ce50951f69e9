"""One MWAA environment's settings (``source`` with ``mode: create`` and every ``target``):
name, version, class and counts, options, S3 objects, logging, tags."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from mwaa_common import names, versions
from stacks.config.reader import ConfigError, Section, Shown
from stacks.config.schema import (
    AIRFLOW_OPTION_KEY_RE,
    COUNT_KINDS,
    ENVIRONMENT_LOG_DAYS,
    LOG_LEVELS,
    LOG_RETENTION_DAYS,
    LOG_TYPES,
    MAINTENANCE_RE,
    OPTION_VALUE_RE,
    REMOVAL_POLICIES,
    S3_KEY_RE,
    SECRET_OPTION_RE,
    WEBSERVER_ACCESS_MODES,
    EnvironmentSettings,
    LoggingSettings,
    S3Object,
)

ENV_SETTING_KEYS = (
    "environment_class",
    "schedulers",
    "min_workers",
    "max_workers",
    "min_webservers",
    "max_webservers",
    "webserver_access_mode",
    "dag_s3_path",
    "airflow_configuration_options",
    "requirements",
    "plugins",
    "startup_script",
    "secrets_manager_backend",
    "customer_kms_key",
    "weekly_maintenance_window_start",
    "tags",
    "logging",
)


def bucket_path_problem(value: str, what: str) -> str | None:
    """A key or folder in a bucket: S3's safe characters, relative, no '.'/'..' or empty parts
    (``../dags`` would reach outside the folder the grants and the publisher are scoped to)."""
    if not S3_KEY_RE.fullmatch(value) or value.startswith("/") or value.endswith("/"):
        return f"{what} (no leading or trailing '/')"
    parts = value.split("/")
    if any(p in (".", "..") for p in parts):
        return f"{what} (no '.' or '..' parts)"
    if "" in parts:
        return f"{what} (no empty parts: '//')"
    return None


def dag_s3_path(sec: Section) -> str:
    return sec.get(
        "dag_s3_path",
        str,
        "dags",
        lambda v: bucket_path_problem(v, "a folder in the DAG bucket such as dags"),
    )


def s3_object(sec: Section, key: str) -> S3Object | None:
    if not sec.has(key) or sec.data[key] is None:
        sec.seen.add(key)
        return None
    s = sec.section(key)
    obj = S3Object(
        s3_path=s.get(
            "s3_path",
            str,
            check=lambda v: bucket_path_problem(
                v, "an object key in the DAG bucket such as requirements/requirements.txt"
            ),
        ),
        object_version=s.get(
            "object_version", str, None, lambda v: None if 1 <= len(v) <= 1024 else "1..1024 characters"
        ),
    )
    s.done()
    return obj


def logging_settings(sec: Section) -> LoggingSettings:
    s = sec.section("logging")
    lv = s.section("levels")
    levels = {t: lv.choice(t, LOG_LEVELS, "INFO") for t in LOG_TYPES}
    lv.done()
    out = LoggingSettings(
        levels=MappingProxyType(levels),
        retention_days=s.get(
            "retention_days",
            int,
            ENVIRONMENT_LOG_DAYS,
            lambda v: (
                None
                if v in LOG_RETENTION_DAYS
                else f"allowed (CloudWatch Logs): {', '.join(map(str, LOG_RETENTION_DAYS))}"
            ),
        ),
        removal_policy=s.choice("removal_policy", REMOVAL_POLICIES, "retain"),
    )
    s.done()
    return out


def env_name(sec: Section) -> str:
    return sec.get("name", str, check=names.environment_name_problem)


def airflow_version(sec: Section, key: str = "airflow_version") -> str:
    def check(v: str) -> str | None:
        try:
            versions.info(v)
        except versions.VersionError as e:
            return str(e)
        return None

    return sec.get(key, str, check=check)


def _class_and_counts(sec: Section, *, resolve_defaults: bool) -> tuple[str | None, dict[str, int | None]]:
    """``environment_class`` and the five counts, checked against the class (or, for a cloned
    target without a class, against the range of every class)."""
    cls = sec.get(
        "environment_class",
        str,
        None,
        lambda v: None if v in versions.ENVIRONMENT_CLASSES else f"allowed: {', '.join(versions.ENVIRONMENT_CLASSES)}",
    )
    counts: dict[str, int | None] = {k: sec.int_range(k, 1, 1000, None) for k in COUNT_KINDS}
    if resolve_defaults:
        cls = cls or "mw1.small"
        limits = versions.ENVIRONMENT_CLASSES[cls]
        defaults = {
            "schedulers": limits["schedulers"][0],
            "min_workers": limits["workers"][0],
            "max_workers": min(10, limits["workers"][1]),
            "min_webservers": limits["webservers"][0],
            "max_webservers": limits["webservers"][0],
        }
        counts = {k: v if v is not None else defaults[k] for k, v in counts.items()}
    if cls is not None:
        try:
            versions.check_class(cls, **counts)
        except versions.VersionError as e:
            bad = next((k for k in counts if f"{k}=" in str(e)), "environment_class")
            raise sec.error(bad, counts.get(bad, cls), str(e)) from None
    else:
        _check_counts_without_class(sec, counts)
    return cls, counts


def _check_counts_without_class(sec: Section, counts: dict[str, int | None]) -> None:
    """Cloned target without a class: the clone re-checks against the source's class; here
    each count must at least fit some class, and min <= max."""
    for k, v in counts.items():
        if v is None:
            continue
        kind = COUNT_KINDS[k]
        lo = min(c[kind][0] for c in versions.ENVIRONMENT_CLASSES.values())
        hi = max(c[kind][1] for c in versions.ENVIRONMENT_CLASSES.values())
        if not lo <= v <= hi:
            raise sec.error(k, v, f"outside every environment class's {kind} range ({lo}..{hi})")
    for lo_key, hi_key in (("min_workers", "max_workers"), ("min_webservers", "max_webservers")):
        lo_v, hi_v = counts[lo_key], counts[hi_key]
        if lo_v is not None and hi_v is not None and lo_v > hi_v:
            raise sec.error(lo_key, lo_v, f"must not be greater than {hi_key}={hi_v}")


def secret_option_problem(key: str) -> str | None:
    """An option whose value would be a secret (issue 12 item 6): refused, because option values
    are plaintext in the CloudFormation template and, for a clone, in its deployment logs."""
    option = key.rsplit(".", 1)[-1]
    if option.endswith("_secret") or not SECRET_OPTION_RE.search(option):
        return None  # *_secret options hold the name of a secret, not the secret
    return (
        "a secret-like option: its value would be plaintext in the CloudFormation template and the deployment "
        "logs. Keep secrets in AWS Secrets Manager: set secrets_manager_backend: true and store it as a connection "
        "(airflow/connections/<conn_id>, e.g. smtp_default for SMTP's login and password) or a variable "
        "(airflow/variables/<name>); options ending in _secret, which name a secret, are accepted"
    )


def _options(sec: Section) -> tuple[Mapping[str, str], bool]:
    """``airflow_configuration_options`` (MWAA's key and value rules, no secrets) and
    ``secrets_manager_backend``."""
    key = "airflow_configuration_options"
    options = sec.str_map(
        key,
        lambda k: (
            None
            if AIRFLOW_OPTION_KEY_RE.fullmatch(k) and len(k) <= 64
            else f"option keys are section.name in lower case, matching {AIRFLOW_OPTION_KEY_RE.pattern}"
        ),
        lambda v: None if OPTION_VALUE_RE.fullmatch(v) else "1-65536 printable ASCII characters (MWAA's ConfigValue)",
    )
    for k in options:
        if problem := secret_option_problem(k):
            raise ConfigError(sec.file, sec.sub(f"{key}.{k}"), Shown("<value not shown>"), problem)
    secrets = sec.get("secrets_manager_backend", bool, False)
    if secrets:
        for k in ("secrets.backend", "secrets.backend_kwargs"):
            if k in options:
                raise ConfigError(
                    sec.file,
                    sec.sub(f"{key}.{k}"),
                    options[k],
                    "set by secrets_manager_backend: true; remove one of the two",
                )
    return options, secrets


def environment_settings(sec: Section, *, resolve_defaults: bool) -> EnvironmentSettings:
    """The settings of an environment we build (source ``create`` or any target).

    ``resolve_defaults``: fill class-dependent defaults (declared/created environments show
    every value in the template). A cloned target keeps None = take the source's value.
    """
    name = env_name(sec)
    version = airflow_version(sec)
    cls, counts = _class_and_counts(sec, resolve_defaults=resolve_defaults)
    options, secrets = _options(sec)
    tags = sec.tags("tags")
    return EnvironmentSettings(
        name=name,
        airflow_version=version,
        environment_class=cls,
        **counts,
        webserver_access_mode=sec.choice("webserver_access_mode", WEBSERVER_ACCESS_MODES, "PRIVATE_ONLY"),
        dag_s3_path=dag_s3_path(sec),
        airflow_configuration_options=options,
        requirements=s3_object(sec, "requirements"),
        plugins=s3_object(sec, "plugins"),
        startup_script=s3_object(sec, "startup_script"),
        secrets_manager_backend=secrets,
        customer_kms_key=sec.get("customer_kms_key", bool, False),
        weekly_maintenance_window_start=sec.get(
            "weekly_maintenance_window_start",
            str,
            None,
            lambda v: (
                None if MAINTENANCE_RE.fullmatch(v) else "DAY:HH:MM with DAY MON..SUN and MM 00 or 30, e.g. TUE:03:30"
            ),
        ),
        tags=tags,
        logging=logging_settings(sec),
    )
