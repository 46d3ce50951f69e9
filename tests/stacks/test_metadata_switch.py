"""migration.metadata: false in the templates, and the in-place step to Airflow 3 end to end.

With the metadata off a stage is the environment only: no DAG publishing, no export/import
policies, no runner, no cloudformation endpoint; a cloned target keeps its migration stack
(just the clone), a declared one has none. The in-place step (config/inplace-3x.example.yaml
after the same stage at 2.11.0 with the metadata on) turns into exactly one
UpdateEnvironment(AirflowVersion=3.0.6) in the clone handler, proven with botocore's Stubber
on the clone properties of the two synthesized templates."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import aws_cdk as cdk
import boto3
import pytest
import yaml
from aws_cdk.assertions import Template
from botocore.stub import Stubber
from cdk_nag import AwsSolutionsChecks

from clone_env import handler as clone_handler
from clone_env import planner
from stacks import build_stage
from stacks.config import load_stage
from tests.cdk_stages import CONTEXT, ROOT
from tests.confighelpers import with_key
from tests.templatehelpers import resources

pytestmark = pytest.mark.synth

CLONE, DAG_RUN, PUBLISH = "Custom::MwaaEnvironmentClone", "Custom::MwaaDagRun", "Custom::CDKBucketDeployment"
EXAMPLE = "inplace-3x.example"


def _build(tmp_path: Path, base: str, **changes) -> tuple:
    """A shipped stage file with dotted keys (a__b) changed, built into its own app."""
    data = yaml.safe_load((ROOT / "config" / f"{base}.yaml").read_text())
    for path, value in changes.items():
        data = with_key(data, path, value, sep="__")
    (tmp_path / f"{base}.yaml").write_text(yaml.safe_dump(data))
    cfg = load_stage(base, tmp_path)
    app = cdk.App(context=dict(CONTEXT, stage=base))
    return cfg, app, build_stage(app, cfg)


def _json(stack) -> dict:
    return Template.from_stack(stack).to_json()


# ---------------------------------------------------------------------------- metadata off


def test_no_metadata_means_no_runner_no_dags_no_bucket_access(inplace):
    cfg, s = inplace.cfg, inplace.stacks
    assert cfg.migration.metadata is False and cfg.target.creation == "clone"
    m = inplace.json("migration")
    assert resources(m, DAG_RUN) == {}
    assert not any(k.startswith("MigrationRun") for k in m["Resources"])
    assert list(resources(m, CLONE)) == ["Clone20871BCF"]  # the clone alone, same id as ever
    assert set(m["Outputs"]) == {"TargetWebserverUrl"}
    assert s.migration.runner is None and s.migration.export is None and s.migration.report_location is None
    for which in ("source", "target"):
        t = inplace.json(which)
        assert resources(t, PUBLISH) == {} and resources(t, "AWS::IAM::Policy") == {}, which
        assert "mwaa-migration-" not in json.dumps(t["Resources"]), which  # no role reads the migration bucket
    assert s.source.dag_publisher is None and s.target.dag_publisher is None and s.target.import_policy is None
    services = json.dumps(
        [e["Properties"]["ServiceName"] for e in resources(inplace.json("network"), "AWS::EC2::VPCEndpoint").values()]
    )
    assert "airflow.env" in services and "cloudformation" not in services  # no runner in the VPC


def test_no_metadata_clone_still_targets_the_new_version(inplace):
    props = inplace.json("migration")["Resources"]["Clone20871BCF"]["Properties"]
    assert props["Overrides"]["AirflowVersion"] == "3.0.6"
    assert props["MigrationId"] == "2-10-3-to-2-11-0"  # pinned in the example: the ownership tag stays
    assert (props["SourceEnvironmentName"], props["TargetName"]) == ("analytics-blue", "analytics-green")


def test_declared_target_without_metadata_has_no_migration_stack(tmp_path):
    cfg, app, stacks = _build(tmp_path, "prod", migration__metadata=False)
    assert stacks.migration is None
    names = {c.node.id for c in app.node.children if isinstance(c, cdk.Stack)}
    assert names == {"prod-network", "prod-migration-storage", "prod-source", "prod-target"}
    target = _json(stacks.target)
    assert list(resources(target, "AWS::MWAA::Environment")) == ["Environment2DC7E04C"]
    assert resources(target, PUBLISH) == {} and resources(target, "AWS::IAM::Policy") == {}
    report = AwsSolutionsChecks(app).validate_scope(app)
    assert [f"{v.rule_name} {r.construct_path}" for v in report.violations for r in v.violating_resources] == []


def test_metadata_on_again_brings_everything_back(tmp_path):
    """The switch is the only difference: the example with the metadata on at 2.11.0 is step 1."""
    cfg, app, stacks = _build(tmp_path, EXAMPLE, target__airflow_version="2.11.0", migration__metadata=True)
    m = _json(stacks.migration)
    assert sorted(r["Properties"]["Step"] for r in resources(m, DAG_RUN).values()) == ["export", "import"]
    for stack in (stacks.source, stacks.target):
        assert len(resources(_json(stack), PUBLISH)) == 1
    assert stacks.target.import_policy is not None and stacks.source.export_policy is not None


# ---------------------------------------------------------------------------- the in-place step

REGION, ACCOUNT = "eu-central-1", "444444444444"
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/inplace-migration/0a1b2c3d-0000-1111-2222-333344445555"
TARGET_ARN = f"arn:aws:airflow:{REGION}:{ACCOUNT}:environment/analytics-green"


def _as_cloudformation_delivers(value):
    """Resource properties as the handler receives them: scalars as strings, every cross-stack
    reference resolved (here: a stable stand-in per reference)."""
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)).startswith(("Fn::", "Ref")):
            return "resolved:" + json.dumps(value, sort_keys=True)
        return {k: _as_cloudformation_delivers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_cloudformation_delivers(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int) else value


def _clone_props(stacks) -> dict:
    (clone,) = resources(_json(stacks.migration), CLONE).values()
    props = _as_cloudformation_delivers(clone["Properties"])
    props["ServiceToken"] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:clone-framework-onEvent"
    return props


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    """(step 1 props, step 2 props): the example at 2.11.0 with the metadata (its migration id
    left to the default), then the example file itself."""
    _, _, step1 = _build(
        tmp_path_factory.mktemp("step1"),
        EXAMPLE,
        target__airflow_version="2.11.0",
        migration__metadata=True,
        migration__id=...,
    )
    _, _, step2 = _build(tmp_path_factory.mktemp("step2"), EXAMPLE)
    return _clone_props(step1), _clone_props(step2)


def _stack_is(cfn_stub, status: str) -> None:
    """The clone handler's DescribeStacks of its own stack answers ``status``."""
    cfn_stub.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "inplace-migration",
                    "StackId": STACK_ID,
                    "StackStatus": status,
                    "CreationTime": datetime(2026, 11, 1, tzinfo=UTC),
                }
            ]
        },
        {"StackName": STACK_ID},
    )


def _handler_and_stubs():
    kw = dict(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    mwaa, cfn = boto3.client("mwaa", **kw), boto3.client("cloudformation", **kw)
    handler = clone_handler.CloneHandler(
        mwaa, cfn, caller=clone_handler.Caller(sleep=lambda s: None), now=lambda: 1_800_000_000
    )
    return handler, Stubber(mwaa), Stubber(cfn)


def _target_env(version: str, migration_id: str) -> dict:
    return {
        "Environment": {
            "Name": "analytics-green",
            "Arn": TARGET_ARN,
            "Status": "AVAILABLE",
            "AirflowVersion": version,
            "EnvironmentClass": "mw1.small",
            "Schedulers": 2,
            "MinWorkers": 1,
            "MaxWorkers": 10,
            "MinWebservers": 2,
            "MaxWebservers": 2,
            "WebserverUrl": "abc.c10.eu-central-1.airflow.amazonaws.com",
            "Tags": planner.migration_tags("analytics-blue", migration_id),
        }
    }


def _update_event(old: dict, new: dict) -> dict:
    return {
        "RequestType": "Update",
        "StackId": STACK_ID,
        "RequestId": "r-1",
        "LogicalResourceId": "Clone20871BCF",
        "ResourceType": CLONE,
        "PhysicalResourceId": "analytics-green",
        "ResourceProperties": new,
        "OldResourceProperties": old,
    }


def test_in_place_step_is_one_update_environment(steps):
    step1, step2 = steps
    assert step1["Overrides"]["AirflowVersion"] == "2.11.0" and step2["Overrides"]["AirflowVersion"] == "3.0.6"
    # the default id of step 1 is what the example pins: no retag, only the version changes
    assert step1["MigrationId"] == step2["MigrationId"] == "2-10-3-to-2-11-0"
    changed = {
        k
        for k in set(step1["Overrides"]) | set(step2["Overrides"])
        if step1["Overrides"].get(k) != step2["Overrides"].get(k)
    }
    assert changed == {"AirflowVersion"}
    handler, m, c = _handler_and_stubs()
    with m, c:
        _stack_is(c, "UPDATE_IN_PROGRESS")
        m.add_response("get_environment", _target_env("2.11.0", "2-10-3-to-2-11-0"), {"Name": "analytics-green"})
        m.add_response(
            "update_environment", {"Arn": TARGET_ARN}, {"Name": "analytics-green", "AirflowVersion": "3.0.6"}
        )
        result = handler.on_event(_update_event(step1, step2))
        m.assert_no_pending_responses()
        c.assert_no_pending_responses()
    assert result["PhysicalResourceId"] == "analytics-green" and result["Data"]["Action"] == "updating"


def test_in_place_step_with_the_default_id_also_retags(steps):
    """Leaving migration.id to its default in step 2 changes it with the versions: the handler
    retags the environment it owns under the old id, then updates it."""
    step1, step2 = steps
    step2 = {**step2, "MigrationId": "2-10-3-to-3-0-6"}
    handler, m, c = _handler_and_stubs()
    with m, c:
        _stack_is(c, "UPDATE_IN_PROGRESS")
        m.add_response("get_environment", _target_env("2.11.0", "2-10-3-to-2-11-0"), {"Name": "analytics-green"})
        m.add_response(
            "tag_resource", {}, {"ResourceArn": TARGET_ARN, "Tags": {planner.TAG_MIGRATION_ID: "2-10-3-to-3-0-6"}}
        )
        m.add_response(
            "update_environment", {"Arn": TARGET_ARN}, {"Name": "analytics-green", "AirflowVersion": "3.0.6"}
        )
        result = handler.on_event(_update_event(step1, step2))
        m.assert_no_pending_responses()
    assert result["Data"]["Action"] == "updating"


def test_skipping_2_11_is_refused_by_the_handler_too(steps):
    """A clone still at 2.10.3 cannot jump to 3.0.6 in place: the handler refuses with the reason
    (the stage check stops a metadata migration earlier; this is the environment-only path)."""
    step1, step2 = steps
    handler, m, c = _handler_and_stubs()
    with m, c:
        _stack_is(c, "UPDATE_IN_PROGRESS")
        m.add_response("get_environment", _target_env("2.10.3", "2-10-3-to-2-11-0"), {"Name": "analytics-green"})
        with pytest.raises(
            clone_handler.HandlerError,
            match=r"AirflowVersion 2\.10\.3 -> 3\.0\.6 cannot be done in "
            r"place",
        ):
            handler.on_event(_update_event(step1, step2))
