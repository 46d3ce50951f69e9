"""Bad stage files, table-driven (issue 12 item 13): every one is refused by the loader with one
``config error:`` line naming the file, the field, the value and what is allowed, before any
construct exists, and never with a traceback. A few go through ``app.py`` itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stacks.config import ConfigError, load_stage
from tests.confighelpers import MINIMAL_STAGE, with_key

REPO = Path(__file__).resolve().parents[3]

EXISTING_NET = {
    "mode": "existing",
    "vpc_id": "vpc-0123456789abcdef0",
    "vpc_cidr": "10.9.0.0/16",
    "availability_zones": ["eu-west-1a", "eu-west-1b"],
    "private_subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "route_table_ids": ["rtb-0123456789abcdef0", "rtb-0123456789abcdef1"],
}
EXISTING_SOURCE = {
    "mode": "existing",
    "name": "src-env",
    "airflow_version": "2.10.3",
    "role_arn": "arn:aws:iam::111111111111:role/src",
    "dag_bucket_arn": "arn:aws:s3:::src-dags",
}
MINIMAL_YAML = yaml.safe_dump(MINIMAL_STAGE, sort_keys=False)


def edit(path: str, value) -> str:
    return yaml.safe_dump(with_key(MINIMAL_STAGE, path, value), sort_keys=False)


def edits(*pairs) -> str:
    data = MINIMAL_STAGE
    for path, value in pairs:
        data = with_key(data, path, value)
    return yaml.safe_dump(data, sort_keys=False)


def tags(n: int) -> dict:
    return {f"k{i}": "v" for i in range(n)}


SECRET = "hunter2-do-not-print"

# (id, file content (str, or bytes for a raw file), field path in the message, a fragment of
# what is allowed)
CASES = [
    # full-string matching: a trailing newline is not part of a name
    ("env-name-newline", edit("source.name", "src-env\n"), "source.name", "1-80 characters"),
    ("migration-id-newline", edit("migration.id", "abc\n"), "migration.id", "1-40 characters"),
    ("region-newline", edit("region", "eu-west-1\n"), "region", "region name"),
    ("account-newline", edit("account", "111111111111\n"), "account", "12-digit"),
    ("stack-prefix-newline", edit("stack_prefix", "abc\n"), "stack_prefix", "1-41 characters"),
    (
        "az-newline",
        edit("network.availability_zones", ["eu-west-1a\n", "eu-west-1b"]),
        "network.availability_zones[0]",
        "availability zone",
    ),
    (
        "maintenance-newline",
        edit("target.weekly_maintenance_window_start", "TUE:03:30\n"),
        "target.weekly_maintenance_window_start",
        "DAY:HH:MM",
    ),
    (
        "vpc-id-newline",
        edit("network", {**EXISTING_NET, "vpc_id": "vpc-0123456789abcdef0\n"}),
        "network.vpc_id",
        "VPC id",
    ),
    (
        "role-arn-newline",
        edit("source", {**EXISTING_SOURCE, "role_arn": "arn:aws:iam::111111111111:role/src\n"}),
        "source.role_arn",
        "IAM role ARN",
    ),
    ("table-newline", edit("migration.tables", ["dag_run\n"]), "migration.tables[0]", "table name"),
    (
        "option-key-newline",
        edit("target.airflow_configuration_options", {"core.x\n": "1"}),
        "target.airflow_configuration_options",
        "section.name",
    ),
    # AWS tag rules
    ("stage-tag-key-300", edit("tags", {"k" * 300: "v"}), "tags", "1-128 characters"),
    ("stage-tag-value-nul", edit("tags", {"team": "a\x00b"}), "tags.team", "1-256 characters"),
    ("stage-tag-value-300", edit("tags", {"team": "v" * 300}), "tags.team", "1-256 characters"),
    ("stage-tag-value-empty", edit("tags", {"team": ""}), "tags.team", "1-256 characters"),
    ("stage-tag-key-aws", edit("tags", {"aws:team": "x"}), "tags", "must not start with aws:"),
    ("stage-tag-key-AWS", edit("tags", {"AWS:team": "x"}), "tags", "must not start with aws:"),
    ("stage-tag-key-char", edit("tags", {"team!": "x"}), "tags", "letters, digits, spaces"),
    ("stage-tags-51", edit("tags", tags(51)), "tags", "at most 50"),
    ("env-tag-key-300", edit("target.tags", {"k" * 300: "v"}), "target.tags", "1-128 characters"),
    ("env-tag-value-nul", edit("target.tags", {"owner": "\x00"}), "target.tags.owner", "1-256 characters"),
    ("env-tags-51", edit("target.tags", tags(51)), "target.tags", "at most 50"),
    (
        "stage-plus-env-tags-51",
        edits(("tags", tags(30)), ("target.tags", {f"t{i}": "v" for i in range(21)})),
        "target.tags",
        "at most 50",
    ),
    # S3 bucket naming rules
    ("bucket-ip", edit("storage.bucket_name", "192.168.5.4"), "storage.bucket_name", "IP address"),
    ("bucket-xn", edit("storage.bucket_name", "xn--bucket"), "storage.bucket_name", "'xn--'"),
    ("bucket-sthree", edit("storage.bucket_name", "sthree-bucket"), "storage.bucket_name", "'sthree-'"),
    ("bucket-s3alias", edit("storage.bucket_name", "my-bucket-s3alias"), "storage.bucket_name", "'-s3alias'"),
    ("bucket-ol-s3", edit("storage.bucket_name", "my-bucket--ol-s3"), "storage.bucket_name", "'--ol-s3'"),
    ("bucket-dots", edit("storage.bucket_name", "my..bucket"), "storage.bucket_name", "adjacent dots"),
    ("bucket-upper", edit("storage.bucket_name", "MyBucket"), "storage.bucket_name", "lower-case"),
    ("bucket-64", edit("storage.bucket_name", "b" * 64), "storage.bucket_name", "3-63"),
    ("bucket-newline", edit("storage.bucket_name", "my-bucket\n"), "storage.bucket_name", "3-63"),
    (
        "source-dag-bucket-xn",
        edit("source", {**EXISTING_SOURCE, "dag_bucket_arn": "arn:aws:s3:::xn--dags"}),
        "source.dag_bucket_arn",
        "'xn--'",
    ),
    # paths in the DAG bucket
    ("dag-path-parent", edit("target.dag_s3_path", "../dags"), "target.dag_s3_path", "no '.' or '..'"),
    ("dag-path-inner-parent", edit("target.dag_s3_path", "dags/../../x"), "target.dag_s3_path", "no '.' or '..'"),
    ("dag-path-dot", edit("target.dag_s3_path", "./dags"), "target.dag_s3_path", "no '.' or '..'"),
    ("dag-path-empty-part", edit("target.dag_s3_path", "dags//x"), "target.dag_s3_path", "empty"),
    (
        "existing-source-dag-path-parent",
        edit("source", {**EXISTING_SOURCE, "dag_s3_path": "../dags"}),
        "source.dag_s3_path",
        "no '.' or '..'",
    ),
    (
        "requirements-parent",
        edit("target.requirements", {"s3_path": "../requirements.txt"}),
        "target.requirements.s3_path",
        "no '.' or '..'",
    ),
    ("plugins-empty-part", edit("target.plugins", {"s3_path": "plugins//p.zip"}), "target.plugins.s3_path", "empty"),
    # secrets in airflow_configuration_options (issue 12 item 6)
    (
        "secret-smtp-password",
        edit("target.airflow_configuration_options", {"smtp.smtp_password": SECRET}),
        "target.airflow_configuration_options.smtp.smtp_password",
        "Secrets Manager",
    ),
    (
        "secret-fernet-key",
        edit("target.airflow_configuration_options", {"core.fernet_key": SECRET}),
        "target.airflow_configuration_options.core.fernet_key",
        "Secrets Manager",
    ),
    (
        "secret-secret-key",
        edit("target.airflow_configuration_options", {"webserver.secret_key": SECRET}),
        "target.airflow_configuration_options.webserver.secret_key",
        "Secrets Manager",
    ),
    (
        "secret-db-conn",
        edit("source.airflow_configuration_options", {"database.sql_alchemy_conn": SECRET}),
        "source.airflow_configuration_options.database.sql_alchemy_conn",
        "Secrets Manager",
    ),
    (
        "secret-token",
        edit("target.airflow_configuration_options", {"slack.api_token": SECRET}),
        "target.airflow_configuration_options.slack.api_token",
        "Secrets Manager",
    ),
    (
        "option-value-non-ascii",
        edit("target.airflow_configuration_options", {"core.x": "é"}),
        "target.airflow_configuration_options.core.x",
        "printable ASCII",
    ),
    (
        "option-value-newline",
        edit("target.airflow_configuration_options", {"core.x": "a\nb"}),
        "target.airflow_configuration_options.core.x",
        "printable ASCII",
    ),
    (
        "option-value-empty",
        edit("target.airflow_configuration_options", {"core.x": ""}),
        "target.airflow_configuration_options.core.x",
        "printable ASCII",
    ),
    # the file itself
    ("not-utf8", MINIMAL_YAML.encode() + b"# caf\xe9\n", "(file)", "UTF-8"),
    ("latin1-value", MINIMAL_YAML.replace("src-env", "src-\xe9nv").encode("latin-1"), "(file)", "UTF-8"),
    (
        "duplicate-section",
        MINIMAL_YAML + "migration:\n  cutover: true\nmigration:\n  cutover: false\n",
        "migration",
        "each key once",
    ),
    (
        "duplicate-key",
        MINIMAL_YAML.replace("network:\n", "network:\n  mode: existing\n", 1),
        "network.mode",
        "each key once",
    ),
    (
        "duplicate-nested-key",
        MINIMAL_YAML.replace("  name: tgt-env\n", "  name: tgt-env\n  name: other\n"),
        "target.name",
        "each key once",
    ),
    ("yaml-syntax", MINIMAL_YAML + "tags: {a: [\n", "(file)", "valid YAML"),
    (
        "yaml-python-tag",
        MINIMAL_YAML + "stack_prefix: !!python/object/apply:os.system ['true']\n",
        "(file)",
        "valid YAML",
    ),
    ("top-level-list", "- a\n- b\n", "(top level)", "mapping"),
    ("unknown-key-with-newline", yaml.safe_dump({**MINIMAL_STAGE, "fo\no": 1}), "'fo\\no'", "unknown key"),
    ("account-unquoted", MINIMAL_YAML.replace("'111111111111'", "111111111111"), "account", "quote it"),
]


def write(tmp_path: Path, content, stage: str = "t") -> Path:
    f = tmp_path / f"{stage}.yaml"
    if isinstance(content, bytes):
        f.write_bytes(content)
    else:
        f.write_text(content, encoding="utf-8")
    return f


def test_there_are_at_least_40_cases():
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("content", "field", "allowed"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_stage_file_is_one_config_error_line(tmp_path, content, field, allowed):
    write(tmp_path, content)
    with pytest.raises(ConfigError) as err:  # any other exception fails the test: a traceback for the user
        load_stage("t", tmp_path)
    line = f"config error: {err.value}"  # what app.py prints
    assert "\n" not in line and "\r" not in line
    assert "t.yaml: " in line
    assert f": {field}" in line, line
    assert allowed in line, line
    assert " is not allowed; " in line
    assert SECRET not in line  # secret values are never echoed


def test_the_table_starts_from_a_valid_file(tmp_path):
    write(tmp_path, MINIMAL_YAML)
    assert load_stage("t", tmp_path).stage == "t"


def test_secret_options_by_indirection_are_accepted(tmp_path):
    # Airflow reads *_secret options from the secrets backend: the value is a secret's name
    write(
        tmp_path,
        edits(
            ("target.secrets_manager_backend", True),
            ("target.airflow_configuration_options", {"smtp.smtp_password_secret": "smtp-password"}),
        ),
    )
    cfg = load_stage("t", tmp_path)
    assert cfg.target.environment.airflow_configuration_options == {"smtp.smtp_password_secret": "smtp-password"}


def test_unicode_tags_within_the_rules_are_accepted(tmp_path):
    write(tmp_path, edits(("tags", {"Équipe": "données / ops @ eu-west-1"}), ("target.tags", {"a b": "c=d+e:f"})))
    cfg = load_stage("t", tmp_path)
    assert cfg.tags == {"Équipe": "données / ops @ eu-west-1"}


@pytest.mark.slow
@pytest.mark.parametrize("case", ["not-utf8", "duplicate-section", "env-name-newline", "secret-smtp-password"])
def test_app_prints_one_line_and_exits_2(tmp_path, case):
    content = next(c[1] for c in CASES if c[0] == case)
    write(tmp_path, content)
    env = dict(
        os.environ,
        CDK_CONTEXT_JSON=json.dumps({"stage": "t", "config_dir": str(tmp_path)}),
        CDK_OUTDIR=str(tmp_path / "out"),
    )
    p = subprocess.run([sys.executable, "app.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 2, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("config error: "), p.stderr
    assert "Traceback" not in p.stderr and SECRET not in p.stderr
    assert not list(tmp_path.glob("out/**/*.json"))  # refused before anything was synthesized
