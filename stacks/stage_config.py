"""Per-stage configuration: ``config/<stage>.yaml`` read into frozen, typed dataclasses.

Everything is validated here, before any construct exists, so a bad file never produces a
half-built app. Every problem raises :class:`ConfigError` whose message names the file, the
field path (``target.airflow_version``), the value and what is allowed. Unknown keys are
errors at every level (a typo must never be ignored). Version, class and upgrade rules come
from ``mwaa_common.versions`` (the one table); nothing version-specific is decided here.

The full key reference (defaults, allowed values) is in docs/foundation.md.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional

import yaml

from mwaa_common import versions

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"

# MWAA's CreateEnvironment constraints (botocore model: Name 1-80, this pattern).
ENV_NAME_RE = re.compile(r"^[a-zA-Z][0-9a-zA-Z\-_]*$")
ENV_NAME_MAX = 80
ACCOUNT_RE = re.compile(r"^\d{12}$")
REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
MIGRATION_ID_RE = re.compile(r"^[a-z0-9-]{1,40}$")
# AirflowConfigurationOptions key pattern from the MWAA API reference.
AIRFLOW_OPTION_KEY_RE = re.compile(r"^[a-z]+([a-z0-9._]*[a-z0-9_]+)?$")
MAINTENANCE_RE = re.compile(r"^(MON|TUE|WED|THU|FRI|SAT|SUN):([01]\d|2[0-3]):(00|30)$")
S3_KEY_RE = re.compile(r"^[\w!\-.*'()/]+$")
BUCKET_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
VPC_ID_RE = re.compile(r"^vpc-[0-9a-f]{8,17}$")
SUBNET_ID_RE = re.compile(r"^subnet-[0-9a-f]{8,17}$")
RTB_ID_RE = re.compile(r"^rtb-[0-9a-f]{8,17}$")
S3_BUCKET_ARN_RE = re.compile(r"^arn:aws[a-z-]*:s3:::([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])$")
KMS_KEY_ARN_RE = re.compile(r"^arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):key/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$")
# Metadata table names as the DAGs name them (conf "tables"; the DAGs check the list itself).
TABLE_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
RERUN_TOKEN_MAX = 64  # dag_runner.plan.RERUN_TOKEN_MAX
STAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
STACK_PREFIX_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,40}$")

LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
LOG_TYPES = ("dag_processing", "scheduler", "task", "webserver", "worker")
# CloudWatch Logs PutRetentionPolicy accepts exactly these day counts.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096,
                      1827, 2192, 2557, 2922, 3288, 3653)
WEBSERVER_ACCESS_MODES = ("PRIVATE_ONLY", "PUBLIC_ONLY")
REMOVAL_POLICIES = ("retain", "destroy")
IMPORT_STRATEGIES = ("skip_existing", "overwrite")
# Task-instance states a task-log copy can filter on (Airflow's TaskInstanceState values).
TASK_STATES = ("success", "failed", "upstream_failed", "skipped", "up_for_retry",
               "up_for_reschedule", "removed", "scheduled", "queued", "running",
               "restarting", "deferred")


class ConfigError(ValueError):
    """One bad value in a stage file: names the file, the field path, the value, what is allowed."""

    def __init__(self, file: Path | str, path: str, value: Any, allowed: str):
        self.file, self.path, self.value, self.allowed = str(file), path, value, allowed
        super().__init__(f"{_shown(file)}: {path}: {value!r} is not allowed; {allowed}")


def _shown(file: Path | str) -> str:
    """The file as the user would type it: relative to the working directory when it is below it."""
    try:
        return str(Path(file).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(file)


# ---------------------------------------------------------------------------- dataclasses

@dataclass(frozen=True)
class S3Object:
    """A file in the environment's DAG bucket (requirements, plugins, startup script)."""
    s3_path: str
    object_version: Optional[str] = None


@dataclass(frozen=True)
class LoggingSettings:
    levels: Mapping[str, str]  # LOG_TYPES -> LOG_LEVELS
    retention_days: int
    removal_policy: str  # "retain" | "destroy"


@dataclass(frozen=True)
class EnvironmentSettings:
    """One MWAA environment. For a cloned target, None means "copy the source's value"."""
    name: str
    airflow_version: str
    environment_class: Optional[str] = None
    schedulers: Optional[int] = None
    min_workers: Optional[int] = None
    max_workers: Optional[int] = None
    min_webservers: Optional[int] = None
    max_webservers: Optional[int] = None
    webserver_access_mode: str = "PRIVATE_ONLY"
    dag_s3_path: str = "dags"
    airflow_configuration_options: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    requirements: Optional[S3Object] = None
    plugins: Optional[S3Object] = None
    startup_script: Optional[S3Object] = None
    secrets_manager_backend: bool = False
    customer_kms_key: bool = False
    weekly_maintenance_window_start: Optional[str] = None
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    logging: LoggingSettings = field(default_factory=lambda: LoggingSettings(
        MappingProxyType({t: "INFO" for t in LOG_TYPES}), 30, "retain"))


@dataclass(frozen=True)
class SourceConfig:
    mode: str  # "create" | "existing"
    environment: EnvironmentSettings  # for "existing": name, airflow_version, dag_s3_path, webserver_access_mode
    role_arn: Optional[str] = None  # "existing" only
    dag_bucket_arn: Optional[str] = None  # "existing" only: its SourceBucketArn (the DAGs are published there)
    dag_bucket_kms_key_arn: Optional[str] = None  # "existing" only: the DAG bucket's customer key, if any


@dataclass(frozen=True)
class TargetConfig:
    creation: str  # "clone" | "declared"
    environment: EnvironmentSettings


@dataclass(frozen=True)
class NetworkConfig:
    mode: str  # "create" | "existing"
    availability_zones: tuple[str, ...]
    vpc_cidr: str
    private_subnet_cidrs: tuple[str, ...] = ()  # create
    nat_gateway: bool = False  # create
    public_subnet_cidrs: tuple[str, ...] = ()  # create, with nat_gateway
    vpc_id: Optional[str] = None  # existing
    private_subnet_ids: tuple[str, ...] = ()  # existing
    route_table_ids: tuple[str, ...] = ()  # existing
    create_endpoints: bool = True
    sts_endpoint: bool = False
    flow_log_retention_days: int = 90
    reserved_cidrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class StorageConfig:
    bucket_name: Optional[str] = None
    termination_protection: bool = True
    noncurrent_version_days: int = 30
    access_log_retention_days: int = 365


@dataclass(frozen=True)
class MigrationConfig:
    id: str
    # True: publish the metadata DAGs and run export -> import (-> cutover). False: only the
    # environment (cloned or declared): e.g. the in-place step 2.11.x -> 3.x after a migration.
    metadata: bool = True
    task_log_days: int = 3
    task_log_states: tuple[str, ...] = ("failed",)
    variables_strategy: str = "skip_existing"
    connections_strategy: str = "skip_existing"
    cutover: bool = False
    delete_target_on_stack_delete: bool = False
    export_retention_days: int = 30
    tables: tuple[str, ...] = ()  # empty: every table the DAGs support (conf key left out)
    rerun_token: str = ""  # a new non-empty value re-runs the DAGs of the same migration id


@dataclass(frozen=True)
class StageConfig:
    stage: str
    file: Path
    account: str
    region: str
    stack_prefix: str
    tags: Mapping[str, str]
    network: NetworkConfig
    storage: StorageConfig
    source: SourceConfig
    target: TargetConfig
    migration: MigrationConfig

    @property
    def export_prefix(self) -> str:
        """The guide's export prefix: ``data/migration/{source}_to_{target}/export/``."""
        return export_prefix(self.source.environment.airflow_version,
                             self.target.environment.airflow_version)

    @property
    def migration_bucket_name(self) -> str:
        """storage.bucket_name, or ``mwaa-migration-{stack_prefix}-{account}-{region}``.

        A literal name keeps the bucket's ARN readable (and identical) in every stack's
        policies instead of a cross-stack token.
        """
        return self.storage.bucket_name or default_bucket_name(self.stack_prefix, self.account, self.region)

    @property
    def runner_in_vpc(self) -> bool:
        """The migration runner's Lambdas run in the VPC: the metadata is migrated and a
        webserver is PRIVATE_ONLY (without a runner the VPC needs no cloudformation endpoint)."""
        return self.migration.metadata and "PRIVATE_ONLY" in (
            self.source.environment.webserver_access_mode, self.target.environment.webserver_access_mode)

    @property
    def secrets_manager_endpoint(self) -> bool:
        envs = [self.target.environment]
        if self.source.mode == "create":
            envs.append(self.source.environment)
        return any(e.secrets_manager_backend for e in envs)


def export_prefix(source_version: str, target_version: str) -> str:
    return f"data/migration/{source_version}_to_{target_version}/export/"


def default_bucket_name(stack_prefix: str, account: str, region: str) -> str:
    return f"mwaa-migration-{stack_prefix.lower()}-{account}-{region}"


def default_migration_id(source_version: str, target_version: str) -> str:
    """``{source}-to-{target}`` made safe for ``[a-z0-9-]{1,40}`` (dots become dashes)."""
    raw = f"{source_version}-to-{target_version}".lower()
    return re.sub(r"[^a-z0-9-]+", "-", raw).strip("-")[:40]


# ---------------------------------------------------------------------------- reader

_MISSING = object()


class _Section:
    """A mapping being read: tracks the field path and rejects keys nobody asked for."""

    def __init__(self, file: Path, path: str, data: Any):
        self.file, self.path = file, path
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(file, path or "(top level)", data, "expected a mapping of keys to values")
        self.data = data
        self.seen: set[str] = set()

    def sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, value: Any, allowed: str) -> ConfigError:
        return ConfigError(self.file, self.sub(key), value, allowed)

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, kind: type | tuple, default: Any = _MISSING,
            check: Optional[Callable[[Any], Optional[str]]] = None) -> Any:
        """Value of ``key``; ``kind`` its type; ``check`` returns an 'allowed' text when bad."""
        self.seen.add(key)
        if key not in self.data or self.data[key] is None and default is not _MISSING:
            if default is _MISSING:
                raise self.error(key, None, "this key is required")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python: never accept true/false where a number is meant.
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            hint = " (quote it in YAML)" if str in kinds and isinstance(value, (int, float)) else ""
            raise self.error(key, value, f"expected {names}{hint}")
        if check is not None:
            problem = check(value)
            if problem:
                raise self.error(key, value, problem)
        return value

    def choice(self, key: str, allowed: tuple, default: Any = _MISSING) -> Any:
        return self.get(key, str, default,
                        lambda v: None if v in allowed else f"allowed: {', '.join(map(str, allowed))}")

    def int_range(self, key: str, lo: int, hi: int, default: Any = _MISSING) -> Any:
        return self.get(key, int, default, lambda v: None if lo <= v <= hi else f"allowed: {lo}..{hi}")

    def section(self, key: str, required: bool = False) -> "_Section":
        self.seen.add(key)
        if required and key not in self.data:
            raise self.error(key, None, "this section is required")
        return _Section(self.file, self.sub(key), self.data.get(key))

    def str_list(self, key: str, default: Any = _MISSING,
                 item: Optional[Callable[[str], Optional[str]]] = None) -> tuple[str, ...]:
        value = self.get(key, list, default)
        for i, v in enumerate(value):
            if not isinstance(v, str):
                raise ConfigError(self.file, f"{self.sub(key)}[{i}]", v, "expected str (quote it in YAML)")
            if item is not None and (problem := item(v)):
                raise ConfigError(self.file, f"{self.sub(key)}[{i}]", v, problem)
        return tuple(value)

    def str_map(self, key: str, key_check: Optional[Callable[[str], Optional[str]]] = None) -> Mapping[str, str]:
        value = self.get(key, dict, {})
        for k, v in value.items():
            if not isinstance(k, str) or (key_check is not None and key_check(k)):
                raise ConfigError(self.file, f"{self.sub(key)}", k,
                                  (key_check(k) if isinstance(k, str) and key_check else "keys must be strings"))
            if not isinstance(v, str) or isinstance(v, bool):
                raise ConfigError(self.file, f"{self.sub(key)}.{k}", v, "expected str (quote it in YAML)")
        return MappingProxyType(dict(value))

    def done(self) -> None:
        unknown = [k for k in self.data if k not in self.seen]
        if unknown:
            raise self.error(str(unknown[0]), self.data[unknown[0]],
                             f"unknown key; allowed keys here: {', '.join(sorted(self.seen))}")

    def forbid(self, keys: tuple[str, ...], why: str) -> None:
        for k in keys:
            if k in self.data:
                raise self.error(k, self.data[k], why)


def _regex(rx: re.Pattern, what: str) -> Callable[[str], Optional[str]]:
    return lambda v: None if rx.match(v) else what


def _cidr(v: str) -> Optional[str]:
    try:
        ipaddress.IPv4Network(v, strict=True)
    except ValueError as e:
        return f"expected an IPv4 network in CIDR notation ({e})"
    return None


# ---------------------------------------------------------------------------- sections

ENV_SETTING_KEYS = ("environment_class", "schedulers", "min_workers", "max_workers",
                    "min_webservers", "max_webservers", "webserver_access_mode", "dag_s3_path",
                    "airflow_configuration_options", "requirements", "plugins", "startup_script",
                    "secrets_manager_backend", "customer_kms_key",
                    "weekly_maintenance_window_start", "tags", "logging")


def _dag_s3_path(sec: _Section) -> str:
    return sec.get("dag_s3_path", str, "dags",
                   lambda v: None if S3_KEY_RE.match(v) and not v.startswith("/") and not v.endswith("/")
                   else "a folder in the DAG bucket such as dags (no leading or trailing '/')")


def _s3_object(sec: _Section, key: str) -> Optional[S3Object]:
    if not sec.has(key) or sec.data[key] is None:
        sec.seen.add(key)
        return None
    s = sec.section(key)
    obj = S3Object(
        s3_path=s.get("s3_path", str, check=lambda v: None if S3_KEY_RE.match(v) and not v.startswith("/")
                      else "an object key in the DAG bucket such as requirements/requirements.txt"),
        object_version=s.get("object_version", str, None,
                             lambda v: None if 1 <= len(v) <= 1024 else "1..1024 characters"))
    s.done()
    return obj


def _logging(sec: _Section) -> LoggingSettings:
    s = sec.section("logging")
    lv = s.section("levels")
    levels = {t: lv.choice(t, LOG_LEVELS, "INFO") for t in LOG_TYPES}
    lv.done()
    out = LoggingSettings(
        levels=MappingProxyType(levels),
        retention_days=s.get("retention_days", int, 30,
                             lambda v: None if v in LOG_RETENTION_DAYS
                             else f"allowed (CloudWatch Logs): {', '.join(map(str, LOG_RETENTION_DAYS))}"),
        removal_policy=s.choice("removal_policy", REMOVAL_POLICIES, "retain"))
    s.done()
    return out


def _env_name(sec: _Section) -> str:
    return sec.get("name", str, check=lambda v: None if ENV_NAME_RE.match(v) and len(v) <= ENV_NAME_MAX else
                   f"MWAA names are 1-{ENV_NAME_MAX} characters matching {ENV_NAME_RE.pattern}")


def _version(sec: _Section, key: str = "airflow_version") -> str:
    def check(v: str) -> Optional[str]:
        try:
            versions.info(v)
        except versions.VersionError as e:
            return str(e)
        return None
    return sec.get(key, str, check=check)


def _environment(sec: _Section, *, resolve_defaults: bool) -> EnvironmentSettings:
    """The settings of an environment we build (source ``create`` or any target).

    ``resolve_defaults``: fill class-dependent defaults (declared/created environments show
    every value in the template). A cloned target keeps None = take the source's value.
    """
    name = _env_name(sec)
    version = _version(sec)
    cls = sec.get("environment_class", str, None,
                  lambda v: None if v in versions.ENVIRONMENT_CLASSES
                  else f"allowed: {', '.join(versions.ENVIRONMENT_CLASSES)}")
    counts = {k: sec.int_range(k, 1, 1000, None) for k in
              ("schedulers", "min_workers", "max_workers", "min_webservers", "max_webservers")}
    if resolve_defaults:
        cls = cls or "mw1.small"
        limits = versions.ENVIRONMENT_CLASSES[cls]
        defaults = {"schedulers": limits["schedulers"][0], "min_workers": limits["workers"][0],
                    "max_workers": min(10, limits["workers"][1]),
                    "min_webservers": limits["webservers"][0],
                    "max_webservers": limits["webservers"][0]}
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
        kinds = {"schedulers": "schedulers", "min_workers": "workers", "max_workers": "workers",
                 "min_webservers": "webservers", "max_webservers": "webservers"}
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

    options = sec.str_map("airflow_configuration_options",
                          lambda k: None if AIRFLOW_OPTION_KEY_RE.match(k) and len(k) <= 64
                          else f"option keys are section.name in lower case, matching {AIRFLOW_OPTION_KEY_RE.pattern}")
    secrets = sec.get("secrets_manager_backend", bool, False)
    if secrets:
        for k in ("secrets.backend", "secrets.backend_kwargs"):
            if k in options:
                raise ConfigError(sec.file, sec.sub(f"airflow_configuration_options.{k}"), options[k],
                                  "set by secrets_manager_backend: true; remove one of the two")
    tags = sec.str_map("tags", lambda k: None if not k.startswith("aws:") and 1 <= len(k) <= 128
                       else "tag keys are 1-128 characters and must not start with aws:")
    if len(tags) > 50:
        raise sec.error("tags", dict(tags), "at most 50 tags")
    env = EnvironmentSettings(
        name=name, airflow_version=version, environment_class=cls, **counts,
        webserver_access_mode=sec.choice("webserver_access_mode", WEBSERVER_ACCESS_MODES, "PRIVATE_ONLY"),
        dag_s3_path=_dag_s3_path(sec),
        airflow_configuration_options=options,
        requirements=_s3_object(sec, "requirements"),
        plugins=_s3_object(sec, "plugins"),
        startup_script=_s3_object(sec, "startup_script"),
        secrets_manager_backend=secrets,
        customer_kms_key=sec.get("customer_kms_key", bool, False),
        weekly_maintenance_window_start=sec.get(
            "weekly_maintenance_window_start", str, None,
            lambda v: None if MAINTENANCE_RE.match(v) else "DAY:HH:MM with DAY MON..SUN and MM 00 or 30, e.g. TUE:03:30"),
        tags=tags,
        logging=_logging(sec),
    )
    return env


def _network(top: _Section) -> NetworkConfig:
    s = top.section("network", required=True)
    mode = s.choice("mode", ("create", "existing"))
    azs = s.str_list("availability_zones", item=_regex(re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$"),
                                                         "an availability zone name such as eu-west-1a"))
    if len(azs) != 2 or len(set(azs)) != 2:
        raise s.error("availability_zones", list(azs), "exactly 2 different availability zones (MWAA uses 2 subnets in 2 AZs)")
    vpc_cidr = s.get("vpc_cidr", str, check=_cidr)
    vpc_net = ipaddress.IPv4Network(vpc_cidr)
    if not 16 <= vpc_net.prefixlen <= 28:
        raise s.error("vpc_cidr", vpc_cidr, "a VPC CIDR between /16 and /28")
    reserved = s.str_list("reserved_cidrs", (), _cidr)
    for i, r in enumerate(reserved):
        if vpc_net.overlaps(ipaddress.IPv4Network(r)):
            raise ConfigError(s.file, s.sub("vpc_cidr"), vpc_cidr,
                              f"must not overlap network.reserved_cidrs[{i}] = {r}")
    common = dict(
        create_endpoints=s.get("create_endpoints", bool, True),
        sts_endpoint=s.get("sts_endpoint", bool, False),
        flow_log_retention_days=s.get("flow_log_retention_days", int, 90,
                                      lambda v: None if v in LOG_RETENTION_DAYS
                                      else f"allowed (CloudWatch Logs): {', '.join(map(str, LOG_RETENTION_DAYS))}"),
        reserved_cidrs=reserved,
    )
    if mode == "create":
        s.forbid(("vpc_id", "private_subnet_ids", "route_table_ids"), "only with network.mode: existing")
        nat = s.get("nat_gateway", bool, False)
        private = s.str_list("private_subnet_cidrs", item=_cidr)
        if len(private) != 2:
            raise s.error("private_subnet_cidrs", list(private), "exactly 2 subnets (one per availability zone)")
        public = s.str_list("public_subnet_cidrs", (), _cidr)
        if nat and len(public) != 2:
            raise s.error("public_subnet_cidrs", list(public), "exactly 2 subnets when nat_gateway is true")
        if not nat and public:
            raise s.error("public_subnet_cidrs", list(public), "only with nat_gateway: true (no public subnets otherwise)")
        nets: list[tuple[str, ipaddress.IPv4Network]] = []
        for key, cidrs in (("private_subnet_cidrs", private), ("public_subnet_cidrs", public)):
            for i, c in enumerate(cidrs):
                net = ipaddress.IPv4Network(c)
                path = f"{key}[{i}]"
                if not net.subnet_of(vpc_net):
                    raise ConfigError(s.file, s.sub(path), c, f"must lie inside network.vpc_cidr {vpc_cidr}")
                if net.prefixlen > 27:
                    raise ConfigError(s.file, s.sub(path), c, "a subnet of /27 or larger (MWAA needs addresses)")
                for other_path, other in nets:
                    if net.overlaps(other):
                        raise ConfigError(s.file, s.sub(path), c, f"overlaps network.{other_path} {other}")
                nets.append((path, net))
        cfg = NetworkConfig(mode=mode, availability_zones=azs, vpc_cidr=vpc_cidr,
                            private_subnet_cidrs=private, nat_gateway=nat, public_subnet_cidrs=public, **common)
    else:
        s.forbid(("private_subnet_cidrs", "public_subnet_cidrs", "nat_gateway"), "only with network.mode: create")
        vpc_id = s.get("vpc_id", str, check=_regex(VPC_ID_RE, "a VPC id such as vpc-0123456789abcdef0"))
        subnets = s.str_list("private_subnet_ids", item=_regex(SUBNET_ID_RE, "a subnet id such as subnet-0123456789abcdef0"))
        if len(subnets) != 2 or len(set(subnets)) != 2:
            raise s.error("private_subnet_ids", list(subnets), "exactly 2 different private subnets in the 2 availability zones")
        rtbs = s.str_list("route_table_ids", item=_regex(RTB_ID_RE, "a route table id such as rtb-0123456789abcdef0"))
        if len(rtbs) != 2:
            raise s.error("route_table_ids", list(rtbs), "exactly 2: the route table of each private subnet, in the same order")
        cfg = NetworkConfig(mode=mode, availability_zones=azs, vpc_cidr=vpc_cidr, vpc_id=vpc_id,
                            private_subnet_ids=subnets, route_table_ids=rtbs, **common)
    s.done()
    return cfg


def _storage(top: _Section, stage: str) -> StorageConfig:
    s = top.section("storage")
    cfg = StorageConfig(
        bucket_name=s.get("bucket_name", str, None,
                          lambda v: None if BUCKET_NAME_RE.match(v) and ".." not in v
                          else "3-63 characters: lower-case letters, digits, dots and hyphens"),
        termination_protection=s.get("termination_protection", bool, stage != "dev"),
        noncurrent_version_days=s.int_range("noncurrent_version_days", 1, 3650, 30),
        access_log_retention_days=s.int_range("access_log_retention_days", 1, 3650, 365),
    )
    s.done()
    return cfg


def _source(top: _Section) -> SourceConfig:
    s = top.section("source", required=True)
    mode = s.choice("mode", ("create", "existing"), "create")
    if mode == "existing":
        described = ("dag_s3_path", "webserver_access_mode")  # facts about it, not settings
        s.forbid(tuple(k for k in ENV_SETTING_KEYS if k not in described),
                 "source.mode: existing adopts the environment as it is; "
                 "settings are only for source.mode: create")
        env = EnvironmentSettings(
            name=_env_name(s), airflow_version=_version(s),
            dag_s3_path=_dag_s3_path(s),
            webserver_access_mode=s.choice("webserver_access_mode", WEBSERVER_ACCESS_MODES, "PRIVATE_ONLY"))
        role = s.get("role_arn", str, check=_regex(ROLE_ARN_RE, "an IAM role ARN such as arn:aws:iam::123456789012:role/name"))
        bucket = s.get("dag_bucket_arn", str, check=_regex(
            S3_BUCKET_ARN_RE, "the environment's DAG bucket ARN (its SourceBucketArn), e.g. arn:aws:s3:::my-mwaa-dags; "
                              "the migration DAGs are published there"))
        key = s.get("dag_bucket_kms_key_arn", str, None, _regex(
            KMS_KEY_ARN_RE, "a KMS key ARN such as arn:aws:kms:eu-west-1:123456789012:key/"
                            "1234abcd-12ab-34cd-56ef-1234567890ab (only when the DAG bucket uses SSE-KMS "
                            "with a customer managed key)"))
        cfg = SourceConfig(mode=mode, environment=env, role_arn=role, dag_bucket_arn=bucket,
                           dag_bucket_kms_key_arn=key)
    else:
        s.forbid(("role_arn", "dag_bucket_arn", "dag_bucket_kms_key_arn"),
                 "only with source.mode: existing (a created source gets its own role and DAG bucket)")
        env = _environment(s, resolve_defaults=True)
        try:
            versions.check_creatable(env.airflow_version)
        except versions.VersionError as e:
            raise s.error("airflow_version", env.airflow_version, str(e)) from None
        cfg = SourceConfig(mode=mode, environment=env)
    s.done()
    return cfg


def _target(top: _Section) -> TargetConfig:
    s = top.section("target", required=True)
    creation = s.choice("creation", ("clone", "declared"), "clone")
    env = _environment(s, resolve_defaults=creation == "declared")
    try:
        versions.check_creatable(env.airflow_version)
    except versions.VersionError as e:
        raise s.error("airflow_version", env.airflow_version, str(e)) from None
    s.done()
    return TargetConfig(creation=creation, environment=env)


def _migration(top: _Section, source_version: str, target_version: str) -> MigrationConfig:
    s = top.section("migration")
    cfg = MigrationConfig(
        metadata=s.get("metadata", bool, True),
        id=s.get("id", str, default_migration_id(source_version, target_version),
                 _regex(MIGRATION_ID_RE, f"1-40 characters from a-z, 0-9 and '-' ({MIGRATION_ID_RE.pattern})")),
        task_log_days=s.int_range("task_log_days", 0, 365, 3),
        task_log_states=s.str_list("task_log_states", ("failed",),
                                   lambda v: None if v in TASK_STATES else f"allowed: {', '.join(TASK_STATES)}"),
        variables_strategy=s.choice("variables_strategy", IMPORT_STRATEGIES, "skip_existing"),
        connections_strategy=s.choice("connections_strategy", IMPORT_STRATEGIES, "skip_existing"),
        cutover=s.get("cutover", bool, False),
        delete_target_on_stack_delete=s.get("delete_target_on_stack_delete", bool, False),
        export_retention_days=s.int_range("export_retention_days", 1, 3650, 30),
        tables=s.str_list("tables", (), _regex(TABLE_NAME_RE, "an Airflow metadata table name such as dag_run")),
        rerun_token=s.get("rerun_token", str, "",
                          lambda v: None if 1 <= len(v) <= RERUN_TOKEN_MAX and v.isprintable()
                          else f"1-{RERUN_TOKEN_MAX} printable characters (any new value re-runs the DAGs)"),
    )
    if len(set(cfg.tables)) != len(cfg.tables):
        raise s.error("tables", list(cfg.tables), "each table at most once")
    s.done()
    return cfg


def _cross_checks(file: Path, cfg: StageConfig) -> None:
    src, tgt = cfg.source.environment, cfg.target.environment
    if cfg.storage.bucket_name is None and len(cfg.migration_bucket_name) > 63:
        raise ConfigError(file, "storage.bucket_name", None,
                          f"a name (the default {cfg.migration_bucket_name} is longer than S3's 63 characters; "
                          f"set storage.bucket_name or a shorter stack_prefix)")
    if src.name == tgt.name:
        raise ConfigError(file, "target.name", tgt.name, "a name different from source.name (blue/green needs two environments)")
    path = versions.upgrade_path(src.airflow_version, tgt.airflow_version)
    if not path.allowed:
        raise ConfigError(file, "target.airflow_version", tgt.airflow_version,
                          f"{path.reason} (source is {src.airflow_version})")
    if cfg.migration.metadata:
        _check_metadata_migration(file, cfg)
    elif cfg.migration.cutover:
        raise ConfigError(file, "migration.cutover", True,
                          "only with migration.metadata: true (the cutover is a step of the metadata import); "
                          "remove it or set it to false")
    if cfg.source.mode == "existing":
        m = ROLE_ARN_RE.match(cfg.source.role_arn or "")
        if m and m.group(1) != cfg.account:
            raise ConfigError(file, "source.role_arn", cfg.source.role_arn,
                              f"a role in this stage's account {cfg.account}")
        b = S3_BUCKET_ARN_RE.match(cfg.source.dag_bucket_arn or "")
        if b and b.group(1) == cfg.migration_bucket_name:
            raise ConfigError(file, "source.dag_bucket_arn", cfg.source.dag_bucket_arn,
                              "the source's DAG bucket, not the migration bucket")
        k = KMS_KEY_ARN_RE.match(cfg.source.dag_bucket_kms_key_arn or "")
        if k and (k.group(1), k.group(2)) != (cfg.region, cfg.account):
            raise ConfigError(file, "source.dag_bucket_kms_key_arn", cfg.source.dag_bucket_kms_key_arn,
                              f"a key in this stage's region {cfg.region} and account {cfg.account}")


def _check_metadata_migration(file: Path, cfg: StageConfig) -> None:
    """``migration.metadata: true`` needs both versions in the DAGs' schema table and both
    environments' tasks able to open the metadata database (``metadata_db_from_tasks``:
    db_export runs in the source's tasks, db_import in the target's)."""
    src, tgt = cfg.source.environment.airflow_version, cfg.target.environment.airflow_version
    for side, version in (("source", src), ("target", tgt)):
        if versions.VERSIONS[version]["migration_schema"] is None:
            known = [v for v in versions.known_versions() if versions.VERSIONS[v]["migration_schema"]]
            raise ConfigError(file, f"{side}.airflow_version", version,
                              f"the metadata DAGs have no schema for it; supported: {', '.join(known)} "
                              "(or set migration.metadata: false to create the environment without its metadata)")
    if not versions.VERSIONS[src]["metadata_db_from_tasks"]:
        raise ConfigError(
            file, "migration.metadata", True,
            f"db_export runs in the source's tasks, and on MWAA {src} (source.airflow_version) tasks cannot reach "
            "the metadata database. Set migration.metadata: false to create the target without the metadata "
            "(clone or declared environment only)")
    if versions.VERSIONS[tgt]["metadata_db_from_tasks"]:
        return
    via = metadata_stepping_stones(src, tgt)
    if via:
        step = via[-1]
        path = (f"The supported path to {tgt}: migrate blue/green to {step} with this tool "
                f"(target.airflow_version: {step}, migration.metadata: true), then upgrade that environment in place "
                f"({step} -> {tgt} is an in-place upgrade, and MWAA migrates its own metadata database during it): "
                f"in the same stage file change target.airflow_version to {tgt} and set migration.metadata: false "
                f"(config/inplace-3x.example.yaml). Rehearse the {step} -> {tgt} schema mapping locally first: "
                f'make rehearse ARGS="--source-version {step} --target-version {tgt}"')
        if versions.upgrade_path(src, tgt).allows_in_place:
            path += (f". The source {src} itself can also be upgraded in place to {tgt} (outside this tool; MWAA "
                     "keeps its metadata)")
    else:
        path = (f"No version in lambda/mwaa_common/versions.py can both receive the metadata and be upgraded in "
                f"place to {tgt}; set migration.metadata: false to create the target without the metadata")
    raise ConfigError(
        file, "migration.metadata", True,
        f"db_import runs in the target's tasks, and on MWAA {tgt} (target.airflow_version) tasks cannot reach "
        f"the metadata database. {path}")


def metadata_stepping_stones(source: str, target: str) -> list[str]:
    """Versions (oldest first) a metadata migration from ``source`` can go to (MWAA creates them,
    the DAGs know their schema, their tasks reach the metadata database) and from which
    ``target`` is an in-place upgrade. Read from the version table only."""
    out = []
    for v in versions.known_versions():
        row = versions.VERSIONS[v]
        if v == target or row["status"] != "available" or not row["metadata_db_from_tasks"] \
                or row["migration_schema"] is None:
            continue
        if versions.upgrade_path(source, v).allowed and versions.upgrade_path(v, target).allows_in_place:
            out.append(v)
    return out


def read_config_file(file: Path, field: str, name: str, kind: str) -> "_Section":
    """The top section of one YAML config file (a stage or a pipeline): the file must exist
    (else the error lists the files beside it) and parse."""
    if not file.is_file():
        known = sorted(p.stem for p in file.parent.glob("*.yaml"))
        raise ConfigError(file, field, name, f"{kind} with a file in {file.parent}: {', '.join(known) or 'none'}")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(file, "(file)", getattr(e, "problem", str(e)), f"valid YAML ({e})") from None
    return _Section(file, "", data)


def account_and_region(top: "_Section") -> tuple[str, str]:
    """The ``account`` and ``region`` keys every config file starts with."""
    account = top.get("account", str, check=_regex(ACCOUNT_RE, "a 12-digit AWS account id in quotes"))
    region = top.get("region", str, check=_regex(REGION_RE, "a region name such as eu-west-1"))
    return account, region


def load_stage(stage: str, config_dir: Path | None = None) -> StageConfig:
    """Read and validate ``config/<stage>.yaml``; raise ConfigError on the first problem."""
    config_dir = Path(config_dir) if config_dir is not None else CONFIG_DIR
    file = config_dir / f"{stage}.yaml"
    if not STAGE_RE.match(stage):
        raise ConfigError(file, "stage", stage, "a stage name of letters, digits, '.', '_' and '-' (config/<stage>.yaml)")
    top = read_config_file(file, "stage", stage, "a stage")
    account, region = account_and_region(top)
    default_prefix = re.sub(r"[^A-Za-z0-9-]+", "-", stage).strip("-")
    stack_prefix = top.get("stack_prefix", str, default_prefix,
                           _regex(STACK_PREFIX_RE, "1-41 characters: a letter, then letters, digits and '-'"))
    tags = top.str_map("tags", lambda k: None if not k.startswith("aws:") and 1 <= len(k) <= 128
                       else "tag keys are 1-128 characters and must not start with aws:")
    network = _network(top)
    if any(not az.startswith(region) for az in network.availability_zones):
        raise ConfigError(file, "network.availability_zones", list(network.availability_zones),
                          f"availability zones of region {region}")
    storage = _storage(top, stage)
    source = _source(top)
    target = _target(top)
    migration = _migration(top, source.environment.airflow_version, target.environment.airflow_version)
    top.done()
    cfg = StageConfig(stage=stage, file=file, account=account, region=region, stack_prefix=stack_prefix,
                      tags=tags, network=network, storage=storage, source=source, target=target,
                      migration=migration)
    _cross_checks(file, cfg)
    return cfg
