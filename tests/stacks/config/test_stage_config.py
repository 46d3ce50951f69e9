"""Stage files: every bad input fails with one message naming file, field, value, allowed."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from stacks.config import ConfigError, default_migration_id, load_stage
from tests.confighelpers import MINIMAL_STAGE, with_key

CONFIG_DIR = Path(__file__).resolve().parents[3] / "config"

BASE = MINIMAL_STAGE

EXISTING_NET = {
    "mode": "existing",
    "vpc_id": "vpc-0123456789abcdef0",
    "vpc_cidr": "10.9.0.0/16",
    "availability_zones": ["eu-west-1a", "eu-west-1b"],
    "private_subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "route_table_ids": ["rtb-0123456789abcdef0", "rtb-0123456789abcdef1"],
}


def load(tmp_path: Path, data: dict, stage: str = "t"):
    (tmp_path / f"{stage}.yaml").write_text(yaml.safe_dump(data))
    return load_stage(stage, tmp_path)


def with_(path: str, value, base: dict = BASE) -> dict:
    """BASE with one dotted key set (value ``...`` deletes it)."""
    return with_key(base, path, value)


def test_base_is_valid(tmp_path):
    cfg = load(tmp_path, BASE)
    assert cfg.target.creation == "declared"
    assert cfg.target.environment.environment_class == "mw1.small"
    assert cfg.target.environment.schedulers == 2 and cfg.target.environment.max_workers == 10
    assert cfg.target.environment.webserver_access_mode == "PRIVATE_ONLY"
    assert cfg.migration.id == "2-10-3-to-2-11-0" and cfg.migration.metadata is True
    assert cfg.migration.task_log_days == 3 and cfg.migration.task_log_states == ("failed",)
    assert cfg.migration.variables_strategy == "skip_existing" and cfg.migration.cutover is False
    assert cfg.storage.termination_protection is True  # not "dev"
    assert cfg.export_prefix == "data/migration/2.10.3_to_2.11.0/export/"
    assert cfg.stack_prefix == "t"


@pytest.mark.parametrize("stage", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
def test_shipped_stages_load(stage):
    cfg = load_stage(stage)
    assert cfg.stage == stage


def test_clone_target_keeps_unset_values_open(tmp_path):
    cfg = load(tmp_path, with_("target.creation", ...))
    env = cfg.target.environment
    assert cfg.target.creation == "clone"
    assert env.environment_class is None and env.max_workers is None  # taken from the source


def test_dev_stage_is_not_termination_protected_by_default(tmp_path):
    assert load(tmp_path, BASE, stage="dev").storage.termination_protection is False


def test_default_migration_id_is_safe():
    assert default_migration_id("2.10.3", "3.0.6") == "2-10-3-to-3-0-6"
    assert re.fullmatch(r"[a-z0-9-]{1,40}", default_migration_id("2.11.2", "3.3.1"))


# (dotted key, value, field path in the message, text of the message)
BAD = [
    # environment names: MWAA's pattern and length
    ("target.name", "1starts-with-digit", "target.name", r"1-80 characters matching"),
    ("source.name", "has space", "source.name", r"1-80 characters matching"),
    ("target.name", "a" * 81, "target.name", r"1-80 characters"),
    ("target.name", "src-env", "target.name", r"different from source.name"),
    # versions
    (
        "target.airflow_version",
        "2.6.3",
        "target.airflow_version",
        r"unknown Airflow version '2\.6\.3'; known: 1\.10\.12, 2\.7\.2",
    ),
    ("target.airflow_version", "latest", "target.airflow_version", r"unknown Airflow version"),
    ("target.airflow_version", 3.0, "target.airflow_version", r"expected str \(quote it in YAML\)"),
    ("target.airflow_version", "1.10.12", "target.airflow_version", r"retired on MWAA"),
    ("source.airflow_version", "1.10.12", "source.airflow_version", r"retired on MWAA"),
    ("target.airflow_version", "3.3.1", "target.airflow_version", r"metadata DAGs have no schema"),
    # classes and ranges
    ("target.environment_class", "mw2.huge", "target.environment_class", r"allowed: mw1\.micro, mw1\.small"),
    ("target.max_workers", 26, "target.max_workers", r"max_workers=26 is outside mw1\.small's workers range 1\.\.25"),
    ("target.min_workers", 0, "target.min_workers", r"allowed: 1\.\.1000"),
    ("target.min_webservers", 1, "target.min_webservers", r"outside mw1\.small's webservers range 2\.\.5"),
    ("target.schedulers", True, "target.schedulers", r"expected int"),
    ("target.webserver_access_mode", "PUBLIC", "target.webserver_access_mode", r"allowed: PRIVATE_ONLY, PUBLIC_ONLY"),
    ("target.weekly_maintenance_window_start", "SUN:03:15", "target.weekly_maintenance_window_start", r"DAY:HH:MM"),
    ("target.logging.retention_days", 10, "target.logging.retention_days", r"allowed \(CloudWatch Logs\): 1, 3, 5"),
    ("target.logging.levels.task", "VERBOSE", "target.logging.levels.task", r"allowed: CRITICAL, ERROR"),
    (
        "target.airflow_configuration_options",
        {"Core.Bad": "x"},
        "target.airflow_configuration_options",
        r"section\.name in lower case",
    ),
    (
        "target.airflow_configuration_options",
        {"core.parallelism": 32},
        "target.airflow_configuration_options.core.parallelism",
        r"quote it",
    ),
    ("target.tags", {"aws:owner": "x"}, "target.tags", r"must not start with aws:"),
    ("target.requirements", {"s3_path": "/abs/req.txt"}, "target.requirements.s3_path", r"object key"),
    # network: subnets exactly 2, CIDRs
    ("network.private_subnet_cidrs", ["10.1.0.0/20"], "network.private_subnet_cidrs", r"exactly 2 subnets"),
    (
        "network.private_subnet_cidrs",
        ["10.1.0.0/20", "10.1.16.0/20", "10.1.32.0/20"],
        "network.private_subnet_cidrs",
        r"exactly 2",
    ),
    (
        "network.availability_zones",
        ["eu-west-1a"],
        "network.availability_zones",
        r"exactly 2 different availability zones",
    ),
    ("network.availability_zones", ["eu-west-1a", "eu-west-1a"], "network.availability_zones", r"exactly 2 different"),
    ("network.availability_zones", ["us-east-1a", "us-east-1b"], "network.availability_zones", r"of region eu-west-1"),
    (
        "network.private_subnet_cidrs",
        ["10.1.0.0/20", "10.1.8.0/21"],
        r"network.private_subnet_cidrs[1]",
        r"overlaps network\.private_subnet_cidrs\[0\]",
    ),
    (
        "network.private_subnet_cidrs",
        ["10.1.0.0/20", "10.2.0.0/20"],
        r"network.private_subnet_cidrs[1]",
        r"inside network\.vpc_cidr 10\.1\.0\.0/16",
    ),
    (
        "network.private_subnet_cidrs",
        ["10.1.0.0/20", "10.1.16.1/20"],
        r"network.private_subnet_cidrs[1]",
        r"IPv4 network in CIDR",
    ),
    (
        "network.reserved_cidrs",
        ["10.0.0.0/8"],
        "network.vpc_cidr",
        r"must not overlap network\.reserved_cidrs\[0\] = 10\.0\.0\.0/8",
    ),
    ("network.vpc_cidr", "10.0.0.0/8", "network.vpc_cidr", r"between /16 and /28"),
    ("network.nat_gateway", True, "network.public_subnet_cidrs", r"exactly 2 subnets when nat_gateway"),
    (
        "network.public_subnet_cidrs",
        ["10.1.200.0/24", "10.1.201.0/24"],
        "network.public_subnet_cidrs",
        r"only with nat_gateway: true",
    ),
    ("network.vpc_id", "vpc-0123456789abcdef0", "network.vpc_id", r"only with network\.mode: existing"),
    ("network.mode", "shared", "network.mode", r"allowed: create, existing"),
    # unknown keys, at every level
    ("regoin", "eu-west-1", "regoin", r"unknown key; allowed keys here: .*region"),
    ("target.airflow_verison", "3.0.6", "target.airflow_verison", r"unknown key; allowed keys here: .*airflow_version"),
    (
        "target.logging.levels.tasks",
        "INFO",
        "target.logging.levels.tasks",
        r"unknown key; allowed keys here: dag_processing",
    ),
    ("network.nat_gateways", 1, "network.nat_gateways", r"unknown key"),
    ("migration.cut_over", True, "migration.cut_over", r"unknown key; allowed keys here: .*cutover"),
    # account / region
    ("account", "12345", "account", r"12-digit AWS account id"),
    ("account", 111111111111, "account", r"expected str \(quote it in YAML\)"),
    ("region", "eu-west", "region", r"region name such as eu-west-1"),
    ("region", ..., "region", r"this key is required"),
    # migration
    ("migration.id", "Upper_Case", "migration.id", r"1-40 characters from a-z, 0-9 and '-'"),
    ("migration.id", "a" * 41, "migration.id", r"1-40 characters"),
    ("migration.task_log_days", 366, "migration.task_log_days", r"allowed: 0\.\.365"),
    ("migration.task_log_states", ["failed", "broken"], "migration.task_log_states[1]", r"allowed: success, failed"),
    ("migration.variables_strategy", "merge", "migration.variables_strategy", r"allowed: skip_existing, overwrite"),
    (
        "migration.connections_strategy",
        "replace",
        "migration.connections_strategy",
        r"allowed: skip_existing, overwrite",
    ),
    ("migration.cutover", "yes", "migration.cutover", r"expected bool"),
    ("migration.export_retention_days", 0, "migration.export_retention_days", r"allowed: 1\.\.3650"),
    # modes
    ("target.creation", "copy", "target.creation", r"allowed: clone, declared"),
    ("source.mode", "adopt", "source.mode", r"allowed: create, existing"),
    ("source.role_arn", "arn:aws:iam::111111111111:role/x", "source.role_arn", r"only with source\.mode: existing"),
    ("storage.bucket_name", "Bad_Bucket", "storage.bucket_name", r"3-63 characters"),
    ("stack_prefix", "9lives", "stack_prefix", r"a letter, then letters"),
]


@pytest.mark.parametrize("key,value,path,message", BAD, ids=[f"{b[0]}={str(b[1])[:20]}" for b in BAD])
def test_bad_input(tmp_path, key, value, path, message):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, with_(key, value))
    err = e.value
    assert err.path == path
    assert str(err).startswith(f"{tmp_path / 't.yaml'}: {path}: ")
    assert re.search(message, str(err)), str(err)


@pytest.mark.parametrize(
    "source,target,ok",
    [
        ("3.0.6", "2.10.3", False),  # downgrade the service does not allow
        ("2.11.0", "2.10.3", False),
        ("3.0.6", "2.11.0", True),  # the one allowed downgrade
        ("2.10.3", "2.11.0", True),
    ],
)
def test_downgrades(tmp_path, source, target, ok):
    # version rules only: a 3.x source cannot run db_export (test_stage_config_metadata.py)
    data = with_(
        "migration",
        {"metadata": False},
        with_("target.airflow_version", target, with_("source.airflow_version", source)),
    )
    if ok:
        assert load(tmp_path, data).target.environment.airflow_version == target
        return
    with pytest.raises(
        ConfigError,
        match=rf"target\.airflow_version: '{re.escape(target)}' is not allowed; "
        r"downgrades are not allowed \(only 3\.x -> 2\.11\.x is\) \(source is",
    ):
        load(tmp_path, data)


@pytest.mark.parametrize(
    "key,value,message",
    [
        (
            "target.schedulers",
            2,
            r"target\.schedulers: 2 .*schedulers=2 is outside mw1\.micro's schedulers range 1\.\.1",
        ),
        ("target.max_webservers", 2, r"target\.max_webservers: 2 .*outside mw1\.micro's webservers range 1\.\.1"),
        ("target.max_workers", 2, r"target\.max_workers: 2 .*outside mw1\.micro's workers range 1\.\.1"),
    ],
)
def test_micro_limits(tmp_path, key, value, message):
    data = with_(key, value, with_("target.environment_class", "mw1.micro"))
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, data)


def test_worker_range_inverted(tmp_path):
    data = with_("target.max_workers", 2, with_("target.min_workers", 5))
    with pytest.raises(ConfigError, match=r"target\.min_workers: 5 .*min_workers=5 is greater than max_workers=2"):
        load(tmp_path, data)


def test_worker_range_inverted_on_clone(tmp_path):
    data = with_("target.creation", "clone", with_("target.max_workers", 2, with_("target.min_workers", 5)))
    with pytest.raises(ConfigError, match=r"target\.min_workers: 5 .*must not be greater than max_workers=2"):
        load(tmp_path, data)


def test_clone_counts_must_fit_some_class(tmp_path):
    data = with_("target.creation", "clone", with_("target.schedulers", 6))
    with pytest.raises(
        ConfigError, match=r"target\.schedulers: 6 .*outside every environment class's schedulers range \(1\.\.5\)"
    ):
        load(tmp_path, data)


def test_stage_name_cannot_escape_the_config_folder(tmp_path):
    with pytest.raises(ConfigError, match=r"stage: '\.\./etc/x' is not allowed; a stage name of letters"):
        load_stage("../etc/x", tmp_path)


def test_existing_network_needs_exactly_two_subnets(tmp_path):
    net = copy.deepcopy(EXISTING_NET)
    assert load(tmp_path, with_("network", net)).network.vpc_id == "vpc-0123456789abcdef0"
    net["private_subnet_ids"] = net["private_subnet_ids"][:1]
    with pytest.raises(ConfigError, match=r"network\.private_subnet_ids: \['subnet-0123456789abcdef0'\] .*exactly 2"):
        load(tmp_path, with_("network", net))
    net = copy.deepcopy(EXISTING_NET)
    net["private_subnet_cidrs"] = ["10.9.0.0/20", "10.9.16.0/20"]
    with pytest.raises(ConfigError, match=r"network\.private_subnet_cidrs: .*only with network\.mode: create"):
        load(tmp_path, with_("network", net))


def test_existing_source(tmp_path):
    src = {
        "mode": "existing",
        "name": "old-env",
        "airflow_version": "2.8.1",
        "role_arn": "arn:aws:iam::111111111111:role/service-role/mwaa-old",
        "dag_bucket_arn": "arn:aws:s3:::old-env-dags",
    }
    cfg = load(tmp_path, with_("source", src))
    assert cfg.source.role_arn.endswith("mwaa-old")
    with pytest.raises(
        ConfigError, match=r"source\.environment_class: 'mw1\.small' .*settings are only for source\.mode: create"
    ):
        load(tmp_path, with_("source", dict(src, environment_class="mw1.small")))
    with pytest.raises(ConfigError, match=r"source\.role_arn: None .*required"):
        load(tmp_path, with_("source", {k: v for k, v in src.items() if k != "role_arn"}))
    with pytest.raises(ConfigError, match=r"source\.role_arn: .*a role in this stage's account 111111111111"):
        load(tmp_path, with_("source", dict(src, role_arn="arn:aws:iam::222222222222:role/x")))
    # an existing 1.10 source is adoptable, but the metadata DAGs have no schema for it
    with pytest.raises(
        ConfigError, match=r"source\.airflow_version: '1\.10\.12' .*no schema for it; supported: 2\.7\.2"
    ):
        load(tmp_path, with_("source", dict(src, airflow_version="1.10.12")))


def test_secrets_backend_conflicts_with_explicit_options(tmp_path):
    data = with_(
        "target.secrets_manager_backend", True, with_("target.airflow_configuration_options", {"secrets.backend": "x"})
    )
    with pytest.raises(ConfigError, match=r"target\.airflow_configuration_options\.secrets\.backend: 'x' .*remove one"):
        load(tmp_path, data)


def test_default_bucket_name_too_long(tmp_path):
    data = with_(
        "stack_prefix",
        "a" * 40,
        with_("region", "ap-southeast-1", with_("network.availability_zones", ["ap-southeast-1a", "ap-southeast-1b"])),
    )
    with pytest.raises(ConfigError, match=r"storage\.bucket_name: None .*longer than S3's 63"):
        load(tmp_path, data)


def test_missing_stage_lists_the_known_ones(tmp_path):
    (tmp_path / "dev.yaml").write_text(yaml.safe_dump(BASE))
    with pytest.raises(ConfigError, match=r"stage: 'qa' is not allowed; a stage with a file in .*: dev"):
        load_stage("qa", tmp_path)


def test_not_a_mapping(tmp_path):
    (tmp_path / "t.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"\(top level\): \['a', 'b'\] .*mapping"):
        load_stage("t", tmp_path)


def test_invalid_yaml(tmp_path):
    (tmp_path / "t.yaml").write_text("account: [\n")
    with pytest.raises(ConfigError, match=r"\(file\): .*valid YAML"):
        load_stage("t", tmp_path)


def test_config_is_frozen(tmp_path):
    cfg = load(tmp_path, BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.account = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.target.environment.logging.levels["task"] = "DEBUG"  # type: ignore[index]
