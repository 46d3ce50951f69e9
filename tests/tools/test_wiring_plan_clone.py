"""tools.plan_clone --stage: offline, against the real stage files, with exactly the overrides
the migration stack passes to CloneEnvironment (one mapping; deploy-time values as stand-ins)."""

from __future__ import annotations

import io
import json

import pytest
import yaml

from stacks.config import load_stage
from tests.cdk_stages import ROOT, dev  # noqa: F401 (dev: a session fixture)
from tests.templatehelpers import resources
from tools import plan_clone

FIXTURES = ROOT / "tests" / "lambda" / "clone_env" / "fixtures"


def _is_token(value) -> bool:
    return isinstance(value, dict) and any(k.startswith("Fn::") or k == "Ref" for k in value)


def _compare(tool: dict, stack_overrides: dict, omitted: list) -> None:
    """Every literal value equal, every token a <deploy-time: ...> stand-in, every None omitted."""
    assert sorted(k for k, v in tool.items() if v is None) == sorted(omitted)
    tool = {k: v for k, v in tool.items() if v is not None and k != "Name"}  # Name travels as TargetName
    assert set(tool) == set(stack_overrides)

    def walk(a, b, path):
        if _is_token(b):
            assert isinstance(a, str) and a.startswith("<deploy-time: "), (path, a)
        elif isinstance(b, dict):
            assert isinstance(a, dict) and set(a) == set(b), path
            for k in b:
                walk(a[k], b[k], f"{path}.{k}")
        elif isinstance(b, list):
            assert isinstance(a, list) and len(a) == len(b), path
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{path}[{i}]")
        else:
            assert a == b, (path, a, b)

    walk(tool, stack_overrides, "Overrides")


def test_overrides_from_stage_are_what_the_stack_passes(dev):  # noqa: F811 (dev: a pytest fixture)
    tool = plan_clone.overrides_from_stage(dev.cfg)
    t = dev.json("migration")
    (clone,) = resources(t, "Custom::MwaaEnvironmentClone").values()
    props = clone["Properties"]
    assert tool["Name"] == props["TargetName"]
    _compare(tool, props["Overrides"], props["OmitFields"])
    assert tool["EndpointManagement"] == "SERVICE" and tool["KmsKey"] is None
    assert tool["ExecutionRoleArn"] == "<deploy-time: execution role of stack dev-target>"


def test_existing_network_subnets_are_literal(tmp_path):
    """With network.mode: existing the subnets are known: the review shows them as they are."""
    data = yaml.safe_load((ROOT / "config" / "existing-vpc.example.yaml").read_text())
    data["target"] = {
        "creation": "clone",
        "name": "analytics-airflow-2-11",
        "airflow_version": "2.11.0",
        "customer_kms_key": True,
        "max_workers": 5,
    }
    (tmp_path / "ex.yaml").write_text(yaml.safe_dump(data))
    cfg = load_stage("ex", tmp_path)
    o = plan_clone.overrides_from_stage(cfg)
    assert o["NetworkConfiguration"]["SubnetIds"] == list(cfg.network.private_subnet_ids)
    assert o["KmsKey"] == "<deploy-time: KMS key of stack example-target>"
    assert o["MaxWorkers"] == 5 and "EnvironmentClass" not in o  # the source's class is kept


def _run(*argv):
    out = io.StringIO()
    return plan_clone.main(list(argv), out=out), out.getvalue()


def test_stage_review_offline_with_a_saved_source():
    rc, text = _run("--stage", "dev", "--source-json", str(FIXTURES / "micro_2_10_3.json"))
    assert rc == 0, text
    planned = json.loads(text.split("# Differences from the source")[0].split("\n", 1)[1])
    cfg = load_stage("dev")
    assert planned["Name"] == cfg.target.environment.name and planned["AirflowVersion"] == "2.11.0"
    assert planned["EndpointManagement"] == "SERVICE"
    assert planned["Tags"]["mwaa-upgrade:migration-id"] == cfg.migration.id  # the stage's id, not "review"
    assert planned["NetworkConfiguration"]["SecurityGroupIds"] == ["<deploy-time: security group of stack dev-target>"]
    assert "OK: Airflow 2.10.3 -> 2.11.0" in text


def test_stage_review_drops_a_source_customer_key():
    """The source encrypts with its own key; the stage has no customer key: the target gets an
    AWS-owned key (KmsKey left out), decided explicitly rather than refused or inherited."""
    rc, text = _run("--stage", "dev", "--source-json", str(FIXTURES / "kms_2_11_0.json"))
    planned = json.loads(text.split("# Differences from the source")[0].split("\n", 1)[1])
    assert rc == 0, text
    assert "KmsKey" not in planned


def test_stage_review_of_a_declared_target_is_refused(capsys):
    rc, _ = _run("--stage", "prod", "--source-json", str(FIXTURES / "micro_2_10_3.json"))
    assert rc == 1
    assert "target.creation is 'declared'" in capsys.readouterr().err


def test_stage_review_of_a_bad_stage_names_it(capsys):
    rc, _ = _run("--stage", "no-such-stage", "--source-json", str(FIXTURES / "micro_2_10_3.json"))
    assert rc == 1
    err = capsys.readouterr().err
    assert "no-such-stage" in err and "dev" in err


@pytest.mark.parametrize("flag", ["--overrides-json"])
def test_stage_and_overrides_are_exclusive(flag, tmp_path):
    f = tmp_path / "o.json"
    f.write_text("{}")
    with pytest.raises(SystemExit):
        _run("--stage", "dev", flag, str(f), "--source-json", str(FIXTURES / "micro_2_10_3.json"))
