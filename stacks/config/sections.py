"""The top-level sections of a stage file, each read on its own: ``network``, ``storage``,
``source``, ``target``, ``migration``. Rules across sections are in :mod:`stacks.config.rules`."""

from __future__ import annotations

import ipaddress
from typing import Any

from mwaa_common import names, versions
from stacks.config.environment import ENV_SETTING_KEYS, airflow_version, dag_s3_path, env_name, environment_settings
from stacks.config.reader import ConfigError, Section, cidr, regex
from stacks.config.schema import (
    AZ_RE,
    FLOW_LOG_DAYS,
    IMPORT_STRATEGIES,
    KMS_KEY_ARN_RE,
    LOG_RETENTION_DAYS,
    RERUN_TOKEN_MAX,
    ROLE_ARN_RE,
    RTB_ID_RE,
    S3_BUCKET_ARN_RE,
    SUBNET_ID_RE,
    TABLE_NAME_RE,
    TASK_STATES,
    VPC_ID_RE,
    WEBSERVER_ACCESS_MODES,
    EnvironmentSettings,
    MigrationConfig,
    NetworkConfig,
    SourceConfig,
    StorageConfig,
    TargetConfig,
    default_migration_id,
)


def network_section(top: Section) -> NetworkConfig:
    s = top.section("network", required=True)
    mode = s.choice("mode", ("create", "existing"))
    azs = s.str_list("availability_zones", item=regex(AZ_RE, "an availability zone name such as eu-west-1a"))
    if len(azs) != 2 or len(set(azs)) != 2:
        raise s.error(
            "availability_zones", list(azs), "exactly 2 different availability zones (MWAA uses 2 subnets in 2 AZs)"
        )
    vpc_cidr = s.get("vpc_cidr", str, check=cidr)
    vpc_net = ipaddress.IPv4Network(vpc_cidr)
    if not 16 <= vpc_net.prefixlen <= 28:
        raise s.error("vpc_cidr", vpc_cidr, "a VPC CIDR between /16 and /28")
    reserved = s.str_list("reserved_cidrs", (), cidr)
    for i, r in enumerate(reserved):
        if vpc_net.overlaps(ipaddress.IPv4Network(r)):
            raise ConfigError(
                s.file, s.sub("vpc_cidr"), vpc_cidr, f"must not overlap network.reserved_cidrs[{i}] = {r}"
            )
    common: dict[str, Any] = dict(
        mode=mode,
        availability_zones=azs,
        vpc_cidr=vpc_cidr,
        create_endpoints=s.get("create_endpoints", bool, True),
        sts_endpoint=s.get("sts_endpoint", bool, False),
        flow_log_retention_days=s.get(
            "flow_log_retention_days",
            int,
            FLOW_LOG_DAYS,
            lambda v: (
                None
                if v in LOG_RETENTION_DAYS
                else f"allowed (CloudWatch Logs): {', '.join(map(str, LOG_RETENTION_DAYS))}"
            ),
        ),
        reserved_cidrs=reserved,
    )
    cfg = _created_network(s, vpc_net, common) if mode == "create" else _existing_network(s, common)
    s.done()
    return cfg


def _created_network(s: Section, vpc_net: ipaddress.IPv4Network, common: dict[str, Any]) -> NetworkConfig:
    """``network.mode: create``: the subnets' CIDRs (2 private, 2 public with NAT gateways)."""
    s.forbid(("vpc_id", "private_subnet_ids", "route_table_ids"), "only with network.mode: existing")
    nat = s.get("nat_gateway", bool, False)
    private = s.str_list("private_subnet_cidrs", item=cidr)
    if len(private) != 2:
        raise s.error("private_subnet_cidrs", list(private), "exactly 2 subnets (one per availability zone)")
    public = s.str_list("public_subnet_cidrs", (), cidr)
    if nat and len(public) != 2:
        raise s.error("public_subnet_cidrs", list(public), "exactly 2 subnets when nat_gateway is true")
    if not nat and public:
        raise s.error("public_subnet_cidrs", list(public), "only with nat_gateway: true (no public subnets otherwise)")
    _check_subnets(s, vpc_net, (("private_subnet_cidrs", private), ("public_subnet_cidrs", public)))
    return NetworkConfig(private_subnet_cidrs=private, nat_gateway=nat, public_subnet_cidrs=public, **common)


def _check_subnets(s: Section, vpc_net: ipaddress.IPv4Network, groups: tuple[tuple[str, tuple[str, ...]], ...]) -> None:
    """Each subnet inside the VPC, /27 or larger, overlapping no other."""
    nets: list[tuple[str, ipaddress.IPv4Network]] = []
    for key, cidrs in groups:
        for i, c in enumerate(cidrs):
            net = ipaddress.IPv4Network(c)
            path = f"{key}[{i}]"
            if not net.subnet_of(vpc_net):
                raise ConfigError(s.file, s.sub(path), c, f"must lie inside network.vpc_cidr {vpc_net}")
            if net.prefixlen > 27:
                raise ConfigError(s.file, s.sub(path), c, "a subnet of /27 or larger (MWAA needs addresses)")
            for other_path, other in nets:
                if net.overlaps(other):
                    raise ConfigError(s.file, s.sub(path), c, f"overlaps network.{other_path} {other}")
            nets.append((path, net))


def _existing_network(s: Section, common: dict[str, Any]) -> NetworkConfig:
    """``network.mode: existing``: explicit ids, nothing is looked up."""
    s.forbid(("private_subnet_cidrs", "public_subnet_cidrs", "nat_gateway"), "only with network.mode: create")
    vpc_id = s.get("vpc_id", str, check=regex(VPC_ID_RE, "a VPC id such as vpc-0123456789abcdef0"))
    subnets = s.str_list("private_subnet_ids", item=regex(SUBNET_ID_RE, "a subnet id such as subnet-0123456789abcdef0"))
    if len(subnets) != 2 or len(set(subnets)) != 2:
        raise s.error(
            "private_subnet_ids", list(subnets), "exactly 2 different private subnets in the 2 availability zones"
        )
    rtbs = s.str_list("route_table_ids", item=regex(RTB_ID_RE, "a route table id such as rtb-0123456789abcdef0"))
    if len(rtbs) != 2:
        raise s.error(
            "route_table_ids", list(rtbs), "exactly 2: the route table of each private subnet, in the same order"
        )
    return NetworkConfig(vpc_id=vpc_id, private_subnet_ids=subnets, route_table_ids=rtbs, **common)


def storage_section(top: Section, stage: str) -> StorageConfig:
    s = top.section("storage")
    cfg = StorageConfig(
        bucket_name=s.get("bucket_name", str, None, names.bucket_name_problem),
        termination_protection=s.get("termination_protection", bool, stage != "dev"),
        noncurrent_version_days=s.int_range("noncurrent_version_days", 1, 3650, 30),
        access_log_retention_days=s.int_range("access_log_retention_days", 1, 3650, 365),
    )
    s.done()
    return cfg


def _dag_bucket_arn_problem(value: str) -> str | None:
    m = S3_BUCKET_ARN_RE.fullmatch(value)
    if m is None:
        return (
            "the environment's DAG bucket ARN (its SourceBucketArn), e.g. arn:aws:s3:::my-mwaa-dags; "
            "the migration DAGs are published there"
        )
    return names.bucket_name_problem(m.group(1))


def source_section(top: Section) -> SourceConfig:
    s = top.section("source", required=True)
    mode = s.choice("mode", ("create", "existing"), "create")
    if mode == "existing":
        described = ("dag_s3_path", "webserver_access_mode")  # facts about it, not settings
        s.forbid(
            tuple(k for k in ENV_SETTING_KEYS if k not in described),
            "source.mode: existing adopts the environment as it is; settings are only for source.mode: create",
        )
        env = EnvironmentSettings(
            name=env_name(s),
            airflow_version=airflow_version(s),
            dag_s3_path=dag_s3_path(s),
            webserver_access_mode=s.choice("webserver_access_mode", WEBSERVER_ACCESS_MODES, "PRIVATE_ONLY"),
        )
        role = s.get(
            "role_arn", str, check=regex(ROLE_ARN_RE, "an IAM role ARN such as arn:aws:iam::123456789012:role/name")
        )
        bucket = s.get(
            "dag_bucket_arn",
            str,
            check=_dag_bucket_arn_problem,
        )
        key = s.get(
            "dag_bucket_kms_key_arn",
            str,
            None,
            regex(
                KMS_KEY_ARN_RE,
                "a KMS key ARN such as arn:aws:kms:eu-west-1:123456789012:key/"
                "1234abcd-12ab-34cd-56ef-1234567890ab (only when the DAG bucket uses SSE-KMS "
                "with a customer managed key)",
            ),
        )
        cfg = SourceConfig(mode=mode, environment=env, role_arn=role, dag_bucket_arn=bucket, dag_bucket_kms_key_arn=key)
    else:
        s.forbid(
            ("role_arn", "dag_bucket_arn", "dag_bucket_kms_key_arn"),
            "only with source.mode: existing (a created source gets its own role and DAG bucket)",
        )
        env = environment_settings(s, resolve_defaults=True)
        try:
            versions.check_creatable(env.airflow_version)
        except versions.VersionError as e:
            raise s.error("airflow_version", env.airflow_version, str(e)) from None
        cfg = SourceConfig(mode=mode, environment=env)
    s.done()
    return cfg


def target_section(top: Section) -> TargetConfig:
    s = top.section("target", required=True)
    creation = s.choice("creation", ("clone", "declared"), "clone")
    env = environment_settings(s, resolve_defaults=creation == "declared")
    try:
        versions.check_creatable(env.airflow_version)
    except versions.VersionError as e:
        raise s.error("airflow_version", env.airflow_version, str(e)) from None
    s.done()
    return TargetConfig(creation=creation, environment=env)


def migration_section(top: Section, source_version: str, target_version: str) -> MigrationConfig:
    s = top.section("migration")
    cfg = MigrationConfig(
        metadata=s.get("metadata", bool, True),
        id=s.get(
            "id",
            str,
            default_migration_id(source_version, target_version),
            names.migration_id_problem,
        ),
        task_log_days=s.int_range("task_log_days", 0, 365, 3),
        task_log_states=s.str_list(
            "task_log_states", ("failed",), lambda v: None if v in TASK_STATES else f"allowed: {', '.join(TASK_STATES)}"
        ),
        variables_strategy=s.choice("variables_strategy", IMPORT_STRATEGIES, "skip_existing"),
        connections_strategy=s.choice("connections_strategy", IMPORT_STRATEGIES, "skip_existing"),
        cutover=s.get("cutover", bool, False),
        delete_target_on_stack_delete=s.get("delete_target_on_stack_delete", bool, False),
        export_retention_days=s.int_range("export_retention_days", 1, 3650, 30),
        tables=s.str_list("tables", (), regex(TABLE_NAME_RE, "an Airflow metadata table name such as dag_run")),
        rerun_token=s.get(
            "rerun_token",
            str,
            "",
            lambda v: (
                None
                if 1 <= len(v) <= RERUN_TOKEN_MAX and v.isprintable()
                else f"1-{RERUN_TOKEN_MAX} printable characters (any new value re-runs the DAGs)"
            ),
        ),
    )
    if len(set(cfg.tables)) != len(cfg.tables):
        raise s.error("tables", list(cfg.tables), "each table at most once")
    s.done()
    return cfg
