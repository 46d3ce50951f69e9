"""One MWAA environment's settings (``source`` with ``mode: create`` and every ``target``):
name, version, class and counts, options, S3 objects, logging, tags."""

from __future__ import annotations

from types import MappingProxyType

from mwaa_common import versions

from stacks.config.reader import ConfigError, Section
from stacks.config.schema import (
    AIRFLOW_OPTION_KEY_RE,
    ENV_NAME_MAX,
    ENV_NAME_RE,
    LOG_LEVELS,
    LOG_RETENTION_DAYS,
    LOG_TYPES,
    MAINTENANCE_RE,
    REMOVAL_POLICIES,
    S3_KEY_RE,
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


def dag_s3_path(sec: Section) -> str:
    return sec.get(
        "dag_s3_path",
        str,
        "dags",
        lambda v: (
            None
            if S3_KEY_RE.match(v) and not v.startswith("/") and not v.endswith("/")
            else "a folder in the DAG bucket such as dags (no leading or trailing '/')"
        ),
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
            check=lambda v: (
                None
                if S3_KEY_RE.match(v) and not v.startswith("/")
                else "an object key in the DAG bucket such as requirements/requirements.txt"
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
            30,
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
    return sec.get(
        "name",
        str,
        check=lambda v: (
            None
            if ENV_NAME_RE.match(v) and len(v) <= ENV_NAME_MAX
            else f"MWAA names are 1-{ENV_NAME_MAX} characters matching {ENV_NAME_RE.pattern}"
        ),
    )


def airflow_version(sec: Section, key: str = "airflow_version") -> str:
    def check(v: str) -> str | None:
        try:
            versions.info(v)
        except versions.VersionError as e:
            return str(e)
        return None

    return sec.get(key, str, check=check)


def environment_settings(sec: Section, *, resolve_defaults: bool) -> EnvironmentSettings:
    """The settings of an environment we build (source ``create`` or any target).

    ``resolve_defaults``: fill class-dependent defaults (declared/created environments show
    every value in the template). A cloned target keeps None = take the source's value.
    """
    name = env_name(sec)
    version = airflow_version(sec)
    cls = sec.get(
        "environment_class",
        str,
        None,
        lambda v: None if v in versions.ENVIRONMENT_CLASSES else f"allowed: {', '.join(versions.ENVIRONMENT_CLASSES)}",
    )
    counts = {
        k: sec.int_range(k, 1, 1000, None)
        for k in ("schedulers", "min_workers", "max_workers", "min_webservers", "max_webservers")
    }
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
        # Cloned target without a class: the clone re-checks against the source's class; here
        # each count must at least fit some class.
        kinds = {
            "schedulers": "schedulers",
            "min_workers": "workers",
            "max_workers": "workers",
            "min_webservers": "webservers",
            "max_webservers": "webservers",
        }
        for k, v in counts.items():
            if v is None:
                continue
            lo = min(c[kinds[k]][0] for c in versions.ENVIRONMENT_CLASSES.values())
            hi = max(c[kinds[k]][1] for c in versions.ENVIRONMENT_CLASSES.values())
            if not lo <= v <= hi:
                raise sec.error(k, v, f"outside every environment class's {kinds[k]} range ({lo}..{hi})")
        for lo, hi in (("min_workers", "max_workers"), ("min_webservers", "max_webservers")):
            if counts[lo] is not None and counts[hi] is not None and counts[lo] > counts[hi]:
                raise sec.error(lo, counts[lo], f"must not be greater than {hi}={counts[hi]}")

    options = sec.str_map(
        "airflow_configuration_options",
        lambda k: (
            None
            if AIRFLOW_OPTION_KEY_RE.match(k) and len(k) <= 64
            else f"option keys are section.name in lower case, matching {AIRFLOW_OPTION_KEY_RE.pattern}"
        ),
    )
    secrets = sec.get("secrets_manager_backend", bool, False)
    if secrets:
        for k in ("secrets.backend", "secrets.backend_kwargs"):
            if k in options:
                raise ConfigError(
                    sec.file,
                    sec.sub(f"airflow_configuration_options.{k}"),
                    options[k],
                    "set by secrets_manager_backend: true; remove one of the two",
                )
    tags = sec.str_map(
        "tags",
        lambda k: (
            None
            if not k.startswith("aws:") and 1 <= len(k) <= 128
            else "tag keys are 1-128 characters and must not start with aws:"
        ),
    )
    if len(tags) > 50:
        raise sec.error("tags", dict(tags), "at most 50 tags")
    env = EnvironmentSettings(
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
                None if MAINTENANCE_RE.match(v) else "DAY:HH:MM with DAY MON..SUN and MM 00 or 30, e.g. TUE:03:30"
            ),
        ),
        tags=tags,
        logging=logging_settings(sec),
    )
    return env
