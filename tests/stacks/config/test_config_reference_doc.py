"""The configuration reference in docs/foundation.md names exactly the keys the loader reads:
a key added to stacks/config without a line in the table, or a line left for a removed key,
fails here."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import yaml

from stacks.config import load_stage, reader
from tests.confighelpers import MINIMAL_STAGE, with_key

DOC = Path(__file__).resolve().parents[3] / "docs" / "foundation.md"

ENV_EXTRAS = {
    "environment_class": "mw1.medium",
    "schedulers": 2,
    "min_workers": 1,
    "max_workers": 5,
    "min_webservers": 2,
    "max_webservers": 2,
    "webserver_access_mode": "PRIVATE_ONLY",
    "dag_s3_path": "dags",
    "airflow_configuration_options": {"core.parallelism": "32"},
    "requirements": {"s3_path": "requirements.txt", "object_version": "v1"},
    "plugins": {"s3_path": "plugins.zip", "object_version": "v1"},
    "startup_script": {"s3_path": "startup.sh", "object_version": "v1"},
    "secrets_manager_backend": True,
    "customer_kms_key": True,
    "weekly_maintenance_window_start": "TUE:03:30",
    "tags": {"team": "data"},
    "logging": {"levels": {"task": "INFO"}, "retention_days": 30, "removal_policy": "retain"},
}
EXISTING = {
    "network": {
        "mode": "existing",
        "vpc_id": "vpc-0123456789abcdef0",
        "vpc_cidr": "10.9.0.0/16",
        "availability_zones": ["eu-west-1a", "eu-west-1b"],
        "private_subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        "route_table_ids": ["rtb-0123456789abcdef0", "rtb-0123456789abcdef1"],
    },
    "source": {
        "mode": "existing",
        "name": "src-env",
        "airflow_version": "2.10.3",
        "role_arn": "arn:aws:iam::111111111111:role/src",
        "dag_bucket_arn": "arn:aws:s3:::src-dags",
    },
    "target": {"creation": "clone", "name": "tgt-env", "airflow_version": "2.11.0"},
}


def _stage_files() -> list[dict]:
    created = MINIMAL_STAGE
    for side in ("source", "target"):
        created = with_key(created, side, {**created[side], **ENV_EXTRAS})
    return [created, {**MINIMAL_STAGE, **EXISTING}]


def keys_the_loader_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every key path asked for while loading stage files that use every mode."""
    read: set[str] = set()
    done = reader.Section.done

    def record(self: reader.Section) -> None:
        read.update(self.sub(k) for k in self.seen)
        done(self)

    monkeypatch.setattr(reader.Section, "done", record)
    for i, data in enumerate(_stage_files()):
        (tmp_path / f"s{i}.yaml").write_text(yaml.safe_dump(data))
        load_stage(f"s{i}", tmp_path)
    sections = {k.rsplit(".", 1)[0] for k in read if "." in k}
    return {k for k in read if k not in sections}


def _expand(pattern: str) -> list[str]:
    parts = re.split(r"\{([^}]*)\}", pattern)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def keys_the_doc_names() -> set[str]:
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("**Configuration reference**") :]
    out: set[str] = set()
    for line in table.splitlines()[1:]:
        if not line.startswith("| `"):
            if out:
                break
            continue
        cell = line.split(" | ")[0].lstrip("| ")
        for key in re.findall(r"`([^`]+)`", cell):
            for k in _expand(key):
                out.update([k.replace("<env>.", "source."), k.replace("<env>.", "target.")] if "<env>." in k else [k])
    return out


def test_the_reference_names_every_key_the_loader_reads(tmp_path, monkeypatch):
    read = keys_the_loader_reads(tmp_path, monkeypatch)
    documented = keys_the_doc_names()
    assert len(read) > 60
    assert sorted(read - documented) == [], "keys the loader reads that docs/foundation.md does not list"


def test_the_reference_lists_no_key_the_loader_ignores(tmp_path, monkeypatch):
    read = keys_the_loader_reads(tmp_path, monkeypatch)
    assert sorted(keys_the_doc_names() - read) == [], "keys docs/foundation.md lists that the loader never reads"


def test_the_doc_parser_expands_alternatives():
    assert _expand("<env>.{min,max}_workers") == ["<env>.min_workers", "<env>.max_workers"]
