"""Stage keys the migration wiring added: an adopted source's DAG bucket, folder, key and
webserver mode; migration.tables and migration.rerun_token. Bad input: one message naming
the file, the field, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stacks.config import ConfigError, load_stage
from tests.confighelpers import with_key

BASE = {
    "account": "111111111111",
    "region": "eu-west-1",
    "network": {
        "mode": "create",
        "vpc_cidr": "10.1.0.0/16",
        "availability_zones": ["eu-west-1a", "eu-west-1b"],
        "private_subnet_cidrs": ["10.1.0.0/20", "10.1.16.0/20"],
    },
    "source": {
        "mode": "existing",
        "name": "old-env",
        "airflow_version": "2.8.1",
        "role_arn": "arn:aws:iam::111111111111:role/service-role/mwaa-old",
        "dag_bucket_arn": "arn:aws:s3:::old-env-dags",
    },
    "target": {"name": "tgt-env", "airflow_version": "2.11.0"},
}
KEY = "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def load(tmp_path: Path, data: dict):
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(data))
    return load_stage("t", tmp_path)


def with_(path: str, value, base: dict = BASE) -> dict:
    """BASE with one dotted key set (value ``...`` deletes it)."""
    return with_key(base, path, value)


def test_adopted_source_defaults(tmp_path):
    cfg = load(tmp_path, BASE)
    assert cfg.source.dag_bucket_arn == "arn:aws:s3:::old-env-dags"
    assert cfg.source.dag_bucket_kms_key_arn is None
    assert cfg.source.environment.dag_s3_path == "dags"
    assert cfg.source.environment.webserver_access_mode == "PRIVATE_ONLY"
    assert cfg.runner_in_vpc
    assert cfg.migration.tables == () and cfg.migration.rerun_token == ""


def test_adopted_source_described_keys(tmp_path):
    data = with_(
        "source.dag_s3_path",
        "airflow/dags",
        with_(
            "source.webserver_access_mode",
            "PUBLIC_ONLY",
            with_("source.dag_bucket_kms_key_arn", KEY, with_("target.webserver_access_mode", "PUBLIC_ONLY")),
        ),
    )
    cfg = load(tmp_path, data)
    assert cfg.source.environment.dag_s3_path == "airflow/dags"
    assert cfg.source.dag_bucket_kms_key_arn == KEY
    assert not cfg.runner_in_vpc  # both webservers public: the runner stays out of the VPC


@pytest.mark.parametrize(
    "path,value,field,allowed",
    [
        ("source.dag_bucket_arn", ..., r"source\.dag_bucket_arn: None", r"this key is required"),
        (
            "source.dag_bucket_arn",
            "old-env-dags",
            r"source\.dag_bucket_arn: 'old-env-dags'",
            r"the environment's DAG bucket ARN \(its SourceBucketArn\)",
        ),
        ("source.dag_bucket_arn", "arn:aws:s3:::Bad_Bucket", r"source\.dag_bucket_arn", r"DAG bucket ARN"),
        (
            "source.dag_bucket_kms_key_arn",
            "alias/mine",
            r"source\.dag_bucket_kms_key_arn: 'alias/mine'",
            r"a KMS key ARN",
        ),
        (
            "source.dag_bucket_kms_key_arn",
            KEY.replace("eu-west-1", "us-east-1"),
            r"source\.dag_bucket_kms_key_arn",
            r"a key in this stage's region eu-west-1 and account 111111111111",
        ),
        ("source.dag_s3_path", "/dags", r"source\.dag_s3_path: '/dags'", r"no leading or trailing '/'"),
        ("source.dag_s3_path", "dags/", r"source\.dag_s3_path: 'dags/'", r"no leading or trailing '/'"),
        (
            "source.webserver_access_mode",
            "VPC",
            r"source\.webserver_access_mode: 'VPC'",
            r"allowed: PRIVATE_ONLY, PUBLIC_ONLY",
        ),
        (
            "source.requirements",
            {"s3_path": "r.txt"},
            r"source\.requirements",
            r"settings are only for source\.mode: create",
        ),
        ("migration.tables", ["dag", "Dag Run"], r"migration\.tables\[1\]: 'Dag Run'", r"metadata table name"),
        ("migration.tables", ["dag", "dag"], r"migration\.tables: \['dag', 'dag'\]", r"each table at most once"),
        ("migration.rerun_token", "x" * 65, r"migration\.rerun_token", r"1-64 printable characters"),
        ("migration.rerun_token", 7, r"migration\.rerun_token: 7", r"expected str"),
    ],
)
def test_bad_values_name_field_value_and_allowed(tmp_path, path, value, field, allowed):
    with pytest.raises(ConfigError, match=rf"t\.yaml: {field}.*{allowed}"):
        load(tmp_path, with_(path, value))


def test_migration_bucket_is_not_a_dag_bucket(tmp_path):
    data = with_("storage.bucket_name", "shared-bucket", with_("source.dag_bucket_arn", "arn:aws:s3:::shared-bucket"))
    with pytest.raises(ConfigError, match=r"source\.dag_bucket_arn: .*not the migration bucket"):
        load(tmp_path, data)


def test_created_source_refuses_adoption_keys(tmp_path):
    created = {"mode": "create", "name": "src-env", "airflow_version": "2.10.3"}
    for key, value in (("dag_bucket_arn", "arn:aws:s3:::x-dags"), ("dag_bucket_kms_key_arn", KEY)):
        with pytest.raises(ConfigError, match=rf"source\.{key}: .*only with source\.mode: existing"):
            load(tmp_path, with_("source", {**created, key: value}))


def test_tables_and_rerun_token(tmp_path):
    cfg = load(tmp_path, with_("migration", {"tables": ["dag", "dag_run"], "rerun_token": "2026-11-21 retry"}))
    assert cfg.migration.tables == ("dag", "dag_run") and cfg.migration.rerun_token == "2026-11-21 retry"


def test_shipped_example_documents_the_adoption_keys():
    cfg = load_stage("existing-vpc.example")
    assert cfg.source.mode == "existing" and cfg.source.dag_bucket_arn.startswith("arn:aws:s3:::")
