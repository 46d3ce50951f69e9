"""migration.metadata: on by default; refused where a DAG cannot reach the metadata database
(MWAA 3.x, ``metadata_db_from_tasks`` in the version table), with a message that names the
supported path; off means the environment only."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from mwaa_common import versions
from stacks.config import CONFIG_DIR, ConfigError, load_stage, metadata_stepping_stones
from tests.confighelpers import MINIMAL_STAGE, with_key

BASE = with_key(MINIMAL_STAGE, "target.creation", "clone")


def load(tmp_path: Path, data: dict):
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(data))
    return load_stage("t", tmp_path)


def with_(base: dict = BASE, **dotted) -> dict:
    data = copy.deepcopy(base)
    for path, value in dotted.items():
        *parents, last = path.split("__")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return data


def test_metadata_is_on_by_default(tmp_path):
    cfg = load(tmp_path, BASE)
    assert cfg.migration.metadata is True
    assert cfg.runner_in_vpc  # PRIVATE_ONLY webservers: the runner goes into the VPC


@pytest.mark.parametrize("explicit", [None, True])
def test_a_3x_target_with_metadata_names_the_supported_path(tmp_path, explicit):
    data = with_(target__airflow_version="3.0.6")
    if explicit is not None:
        data["migration"] = {"metadata": explicit}
    with pytest.raises(ConfigError) as e:
        load(tmp_path, data)
    err = e.value
    assert (err.path, err.value) == ("migration.metadata", True)
    text = str(err)
    assert text.startswith(f"{tmp_path / 't.yaml'}: migration.metadata: True is not allowed; ")
    assert (
        "db_import runs in the target's tasks, and on MWAA 3.0.6 (target.airflow_version) tasks cannot "
        "reach the metadata database" in text
    )
    assert (
        "migrate blue/green to 2.11.0 with this tool (target.airflow_version: 2.11.0, migration.metadata: true)" in text
    )
    assert "2.11.0 -> 3.0.6 is an in-place upgrade, and MWAA migrates its own metadata database" in text
    assert "change target.airflow_version to 3.0.6 and set migration.metadata: false" in text
    assert "config/inplace-3x.example.yaml" in text
    assert 'make rehearse ARGS="--source-version 2.11.0 --target-version 3.0.6"' in text
    assert "The source 2.10.3 itself" not in text  # 2.10.3 -> 3.0.6 is not in place


def test_a_2_11_source_may_also_go_in_place_itself(tmp_path):
    data = with_(source__airflow_version="2.11.0", target__airflow_version="3.0.6")
    with pytest.raises(ConfigError, match=r"The source 2\.11\.0 itself can also be upgraded in place to 3\.0\.6"):
        load(tmp_path, data)


def test_a_3x_source_cannot_export(tmp_path):
    """db_export runs in the source: a 3.x source is refused even towards a 2.11 target."""
    data = with_(
        source={
            "mode": "existing",
            "name": "src-env",
            "airflow_version": "3.0.6",
            "role_arn": "arn:aws:iam::111111111111:role/src",
            "dag_bucket_arn": "arn:aws:s3:::src-dags",
        }
    )
    with pytest.raises(ConfigError) as e:
        load(tmp_path, data)
    assert e.value.path == "migration.metadata"
    assert re.search(
        r"db_export runs in the source's tasks, and on MWAA 3\.0\.6 \(source\.airflow_version\) "
        r"tasks cannot reach the metadata database\. Set migration\.metadata: false",
        str(e.value),
    )
    # the same stage without the metadata: a 3.x -> 2.11 copy of the environment
    data["migration"] = {"metadata": False}
    assert load(tmp_path, data).migration.metadata is False


def test_metadata_off_allows_a_3x_target_and_takes_the_runner_out(tmp_path):
    cfg = load(tmp_path, with_(target__airflow_version="3.0.6", migration={"metadata": False}))
    assert cfg.migration.metadata is False
    assert not cfg.runner_in_vpc  # no runner: the network gets no cloudformation endpoint
    assert cfg.migration.id == "2-10-3-to-3-0-6"


def test_metadata_off_needs_no_dag_schema(tmp_path):
    """3.2.1 has no schema in the DAGs: refused with the metadata on, fine without."""
    data = with_(source__airflow_version="2.11.0", target__airflow_version="3.2.1")
    with pytest.raises(
        ConfigError,
        match=r"target\.airflow_version: '3\.2\.1' is not allowed; the metadata DAGs have "
        r"no schema for it; .*or set migration\.metadata: false",
    ):
        load(tmp_path, data)
    data["migration"] = {"metadata": False}
    assert load(tmp_path, data).target.environment.airflow_version == "3.2.1"


def test_cutover_needs_the_metadata(tmp_path):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, with_(migration={"metadata": False, "cutover": True}))
    assert (e.value.path, e.value.value) == ("migration.cutover", True)
    assert "only with migration.metadata: true (the cutover is a step of the metadata import)" in str(e.value)


@pytest.mark.parametrize("value", ["no", 0, "false"])
def test_metadata_must_be_a_boolean(tmp_path, value):
    with pytest.raises(ConfigError, match=r"migration\.metadata: .* is not allowed; expected bool"):
        load(tmp_path, with_(migration={"metadata": value}))


@pytest.mark.parametrize(
    "source,target,expected",
    [
        ("2.10.3", "3.0.6", ["2.11.0"]),  # 2.11.2 is image-only: not created by MWAA yet
        ("2.7.2", "3.0.6", ["2.11.0"]),
        ("2.11.0", "3.0.6", ["2.11.0"]),  # a same-version blue/green copy, then in place
        ("2.10.3", "2.11.0", ["2.10.3"]),  # (never asked for: 2.11.0 takes the metadata itself)
    ],
)
def test_stepping_stones_from_the_version_table(source, target, expected):
    assert metadata_stepping_stones(source, target) == expected


def test_no_stepping_stone_says_so(tmp_path, monkeypatch):
    """If the table had no version to step through, the message says that instead of a path."""
    table = copy.deepcopy(versions.VERSIONS)
    for v in ("2.11.0", "2.11.2"):
        table[v]["status"] = "retired"
    monkeypatch.setattr(versions, "VERSIONS", table)
    assert metadata_stepping_stones("2.10.3", "3.0.6") == []
    with pytest.raises(
        ConfigError,
        match=r"No version in lambda/mwaa_common/versions\.py can both receive the "
        r"metadata and be upgraded in place to 3\.0\.6",
    ):
        load(tmp_path, with_(target__airflow_version="3.0.6"))


def test_every_shipped_stage_with_metadata_can_run_the_dags():
    """The shipped stages obey the rule (prod used to ship 2.10.3 -> 3.0.6 with the metadata on)."""
    for f in sorted(CONFIG_DIR.glob("*.yaml")):
        cfg = load_stage(f.stem)
        if cfg.migration.metadata:
            for env in (cfg.source.environment, cfg.target.environment):
                assert versions.VERSIONS[env.airflow_version]["metadata_db_from_tasks"], (f.name, env.name)
    assert load_stage("inplace-3x.example").migration.metadata is False
