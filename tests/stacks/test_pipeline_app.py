"""The real upgrade pipeline, built from config/pipelines/main.yaml the way
``cdk synth -c pipeline=main`` builds it (app.build, cdk.json's feature flags, cdk-nag on the
App): stages and order, approvals, the post-deployment check of each stage, the synth step,
nag coverage of the stacks inside the stages, and the pipeline file's validation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import aws_cdk as cdk
import pytest
import yaml
from aws_cdk import aws_s3 as s3

import app as app_module
from stacks import pipeline_app
from stacks.config import ConfigError
from stacks.pipeline_app import synth_commands
from stacks.pipeline_config import load_pipeline, pipeline_names
from tests.cdk_stages import CONTEXT, ROOT
from tests.templatehelpers import as_list, resources

pytestmark = pytest.mark.synth

STACK = "mwaa-upgrade-pipeline-main"
# What the checks must inspect, written out (not recomputed) so a wrong mapping fails here.
EXPECTED = {
    "dev": {
        "TARGET_ENVIRONMENT": "mwaa-dev-target",
        "REPORT_BUCKET": "mwaa-migration-dev-111111111111-eu-west-1",
        "REPORT_KEY": "data/migration/2.10.3_to_2.11.0/export/2-10-3-to-2-11-0/report.json",
        "TARGET_REGION": "eu-west-1",
    },
    "prod": {
        "TARGET_ENVIRONMENT": "mwaa-prod-target",
        "REPORT_BUCKET": "mwaa-migration-prod-111111111111-eu-west-1",
        "REPORT_KEY": "data/migration/2.10.3_to_2.11.0/export/prod-2-10-3-to-2-11-0/report.json",
        "TARGET_REGION": "eu-west-1",
    },
}


def _app(outdir: Path, **context) -> cdk.App:
    return cdk.App(context=dict(CONTEXT, pipeline="main", **context), outdir=str(outdir))


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("pipeline-main") / "cdk.out"
    app = _app(outdir)
    app_module.build(app)
    app.synth()  # cdk-nag on the App: raises ValidationFailed on any unacknowledged finding
    template = json.loads((outdir / f"{STACK}.template.json").read_text())
    return outdir, template


def _stages(template: dict) -> list[dict]:
    (pipeline,) = resources(template, "AWS::CodePipeline::Pipeline").values()
    return pipeline["Properties"]["Stages"]


def _project(template: dict, action: dict) -> dict:
    return template["Resources"][action["Configuration"]["ProjectName"]["Ref"]]


def _policy_of_project(template: dict, project: dict) -> dict:
    role_id = project["Properties"]["ServiceRole"]["Fn::GetAtt"][0]
    (policy,) = [
        r for r in resources(template, "AWS::IAM::Policy").values() if {"Ref": role_id} in r["Properties"]["Roles"]
    ]
    return policy["Properties"]["PolicyDocument"]


def test_main_pipeline_is_shipped_and_loads():
    assert "main" in pipeline_names()
    pcfg = load_pipeline("main")
    assert [(s.stage, s.protected) for s in pcfg.stages] == [("dev", False), ("prod", True)]
    assert all(s.config.account == pcfg.account for s in pcfg.stages)


def test_stages_deploy_dev_then_prod(synthesized):
    _, template = synthesized
    names = [s["Name"] for s in _stages(template)]
    assert names[:3] == ["Source", "Build", "UpdatePipeline"]
    assert [n for n in names if n in EXPECTED] == ["dev", "prod"]
    assert names[-2:] == ["dev", "prod"]


def test_manual_approval_only_before_prod(synthesized):
    _, template = synthesized
    approvals = {}
    for stage in _stages(template):
        found = [a for a in stage["Actions"] if a["ActionTypeId"]["Category"] == "Approval"]
        if found:
            approvals[stage["Name"]] = found
    assert list(approvals) == ["prod"]
    (approval,) = approvals["prod"]
    prod = next(s for s in _stages(template) if s["Name"] == "prod")
    deploys = [a for a in prod["Actions"] if a["ActionTypeId"]["Provider"] == "CloudFormation"]
    assert approval["Name"] == "Approve-prod"
    assert approval["RunOrder"] < min(a["RunOrder"] for a in deploys)


def test_each_stage_deploys_its_own_stacks_into_its_account(synthesized):
    outdir, template = synthesized
    for stage in _stages(template):
        if stage["Name"] not in EXPECTED:
            continue
        name = stage["Name"]
        deployed = sorted(
            {
                a["Configuration"]["StackName"]
                for a in stage["Actions"]
                if a["ActionTypeId"]["Provider"] == "CloudFormation"
            }
        )
        # the same CloudFormation stacks as `cdk deploy -c stage=<name>` by hand
        assert deployed == sorted(
            f"{name}-{s}" for s in ("network", "migration-storage", "source", "target", "migration")
        )
        manifest = json.loads((outdir / f"assembly-{STACK}-{name}" / "manifest.json").read_text())
        envs = {a["environment"] for a in manifest["artifacts"].values() if a["type"] == "aws:cloudformation:stack"}
        assert envs == {"aws://111111111111/eu-west-1"}


def test_a_post_deployment_check_after_each_stage_inspects_that_stage(synthesized):
    _, template = synthesized
    for stage in _stages(template):
        if stage["Name"] not in EXPECTED:
            continue
        name = stage["Name"]
        deploys = [a for a in stage["Actions"] if a["ActionTypeId"]["Provider"] == "CloudFormation"]
        (check,) = [a for a in stage["Actions"] if a["Name"] == f"Check-{name}"]
        assert check["RunOrder"] > max(a["RunOrder"] for a in deploys)
        project = _project(template, check)
        env = {v["Name"]: v["Value"] for v in project["Properties"]["Environment"]["EnvironmentVariables"]}
        assert {k: env[k] for k in EXPECTED[name]} == EXPECTED[name]
        commands = json.loads(project["Properties"]["Source"]["BuildSpec"])["phases"]["build"]["commands"]
        assert any(
            "tools/post_deploy_check.py" in c
            and '--environment "$TARGET_ENVIRONMENT"' in c
            and '--key "$REPORT_KEY"' in c
            for c in commands
        )


def test_check_role_reads_only_its_environment_report_and_decrypts_only_through_s3(synthesized):
    _, template = synthesized
    for stage in _stages(template):
        if stage["Name"] not in EXPECTED:
            continue
        exp = EXPECTED[stage["Name"]]
        (check,) = [a for a in stage["Actions"] if a["Name"] == f"Check-{stage['Name']}"]
        doc = _policy_of_project(template, _project(template, check))
        by_action = {}
        for st in doc["Statement"]:
            for action in as_list(st["Action"]):
                by_action.setdefault(action, []).append(st)
        (get_env,) = by_action["airflow:GetEnvironment"]
        assert get_env["Resource"] == f"arn:aws:airflow:eu-west-1:111111111111:environment/{exp['TARGET_ENVIRONMENT']}"
        report = f"arn:aws:s3:::{exp['REPORT_BUCKET']}/{exp['REPORT_KEY']}"
        assert [st["Resource"] for st in by_action["s3:GetObject"] if "Condition" not in st] == [report]
        (decrypt,) = [st for st in by_action["kms:Decrypt"] if "Condition" in st]
        assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}
        assert decrypt["Resource"] == {
            "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":kms:eu-west-1:111111111111:key/*"]]
        }
        assert not any(a.startswith(("airflow:Update", "airflow:Create", "airflow:Delete")) for a in by_action)
        # writes only to the pipeline's own artifact bucket (CodeBuild's output artifacts)
        for action, statements in by_action.items():
            if action.startswith(("s3:Put", "s3:Delete", "s3:Abort")):
                for st in statements:
                    assert all("Artifacts" in json.dumps(r) for r in as_list(st["Resource"])), st


def test_synth_step_installs_pinned_tests_synthesizes_this_pipeline_and_lints(synthesized):
    _, template = synthesized
    (build,) = [s for s in _stages(template) if s["Name"] == "Build"]
    (synth,) = build["Actions"]
    commands = json.loads(_project(template, synth)["Properties"]["Source"]["BuildSpec"])["phases"]["build"]["commands"]
    assert commands == list(synth_commands("main"))
    assert commands[:2] == ["make venv node", "make test"]
    assert any(
        c.startswith("node_modules/.bin/cdk synth") and "--no-lookups" in c and "-c pipeline=main" in c
        for c in commands
    )
    assert any("cfn-lint" in c and "'cdk.out/**/*.template.json'" in c for c in commands)


def test_nag_finding_inside_a_real_pipeline_stage_fails_synthesis(tmp_path, monkeypatch):
    real_build_stage = pipeline_app.build_stage

    def build_stage_with_a_finding(scope, cfg):
        built = real_build_stage(scope, cfg)
        if cfg.stage == "prod":  # a bucket without access logs in prod's storage stack
            s3.Bucket(
                built.storage,
                "Unlogged",
                enforce_ssl=True,
                versioned=True,
                encryption=s3.BucketEncryption.S3_MANAGED,
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            )
        return built

    # CDK Pipelines synthesizes each stage while the pipeline is built: the finding must be
    # there before, so it goes in through the stage factory's build_stage.
    monkeypatch.setattr(pipeline_app, "build_stage", build_stage_with_a_finding)
    outdir = tmp_path / "cdk.out"
    app = _app(outdir)
    app_module.build(app)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((outdir / "validation-report.json").read_text())
    paths = {
        c["constructPath"] for p in report["pluginReports"] for v in p["violations"] for c in v["violatingConstructs"]
    }
    assert paths == {f"{STACK}/prod/prod-migration-storage/Unlogged/Resource"}


def test_without_pipeline_context_the_app_builds_one_stage():
    app = cdk.App(context=dict(CONTEXT, stage="dev"))
    app_module.build(app)
    assert sorted(c.node.id for c in app.node.children if isinstance(c, cdk.Stack)) == [
        "dev-migration",
        "dev-migration-storage",
        "dev-network",
        "dev-source",
        "dev-target",
    ]


def test_unknown_pipeline_is_a_config_error_listing_the_shipped_ones():
    with pytest.raises(ConfigError, match=r"pipeline: 'nope' is not allowed; a pipeline with a file in .*: main"):
        app_module.build(cdk.App(context=dict(CONTEXT, pipeline="nope")))


# ------------------------------------------------------------------ bad pipeline files

GOOD = {
    "account": "111111111111",
    "region": "eu-west-1",
    "connection_arn": "arn:aws:codeconnections:eu-west-1:111111111111:connection/00000000-0000-4000-8000-000000000000",
    "repository": "acme/mwaa-upgrade",
    "branch": "main",
    "stages": [{"stage": "dev"}, {"stage": "prod", "protected": True}],
}


@pytest.fixture
def config_dir(tmp_path):
    d = tmp_path / "config"
    (d / "pipelines").mkdir(parents=True)
    for stage in ("dev", "prod"):
        shutil.copy(ROOT / "config" / f"{stage}.yaml", d / f"{stage}.yaml")
    other = yaml.safe_load((ROOT / "config" / "prod.yaml").read_text())
    other["account"] = "222222222222"
    (d / "elsewhere.yaml").write_text(yaml.safe_dump(other))
    return d


def _load(config_dir: Path, data, name: str = "p"):
    text = data if isinstance(data, str) else yaml.safe_dump(data)
    (config_dir / "pipelines" / f"{name}.yaml").write_text(text)
    return load_pipeline(name, config_dir)


def _with(**changes) -> dict:
    data = json.loads(json.dumps(GOOD))
    for k, v in changes.items():
        if v is None:
            data.pop(k)
        else:
            data[k] = v
    return data


def test_good_file_loads(config_dir):
    pcfg = _load(config_dir, GOOD)
    assert pcfg.file == config_dir / "pipelines" / "p.yaml"
    assert [s.report_key for s in pcfg.stages] == [EXPECTED["dev"]["REPORT_KEY"], EXPECTED["prod"]["REPORT_KEY"]]


@pytest.mark.parametrize(
    "data, field, value, allowed",
    [
        (_with(colour="blue"), "colour", "'blue'", "unknown key; allowed keys here: account, branch, connection_arn"),
        (_with(connection_arn=None), "connection_arn", "None", "this key is required"),
        (_with(account=111111111111), "account", "111111111111", "expected str (quote it in YAML)"),
        (_with(region="Europe"), "region", "'Europe'", "a region name such as eu-west-1"),
        (
            _with(connection_arn="arn:aws:iam::111111111111:role/x"),
            "connection_arn",
            "'arn:aws:iam::111111111111:role/x'",
            "arn:aws:codeconnections:<region>:<account>:connection/<uuid>",
        ),
        (
            _with(connection_arn=GOOD["connection_arn"].replace("111111111111", "333333333333")),
            "connection_arn",
            "'arn:aws:codeconnections",
            "a connection in the pipeline's account 111111111111",
        ),
        (_with(repository="mwaa-upgrade"), "repository", "'mwaa-upgrade'", "owner/name of the repository"),
        (_with(branch="feature..x"), "branch", "'feature..x'", "a git branch name"),
        (_with(stages=[]), "stages", "[]", "at least one stage"),
        (_with(stages={"dev": {}}), "stages", "{'dev': {}}", "expected list"),
        (_with(stages=["dev"]), "stages[0]", "'dev'", "expected a mapping of keys to values"),
        (
            _with(stages=[{"stage": "dev", "protect": True}]),
            "stages[0].protect",
            "True",
            "unknown key; allowed keys here: protected, stage",
        ),
        (_with(stages=[{"stage": "dev", "protected": "yes"}]), "stages[0].protected", "'yes'", "expected bool"),
        (_with(stages=[{"stage": "Dev"}]), "stages[0].stage", "'Dev'", "lowercase letters, digits and '-'"),
        (
            _with(stages=[{"stage": "staging"}]),
            "stages[0].stage",
            "'staging'",
            "a valid stage file; {cfg}/staging.yaml: stage: 'staging' is not allowed; a stage with a file in",
        ),
        (
            _with(stages=[{"stage": "dev"}, {"stage": "elsewhere"}]),
            "stages[1].stage",
            "'elsewhere'",
            "a stage in the pipeline's account 111111111111 and region eu-west-1 "
            "(elsewhere.yaml deploys to 222222222222",
        ),
        (
            _with(stages=[{"stage": "dev"}, {"stage": "dev", "protected": True}]),
            "stages[1].stage",
            "'dev'",
            "each stage once (already stages[0])",
        ),
    ],
)
def test_bad_pipeline_file_names_file_field_value_and_what_is_allowed(config_dir, data, field, value, allowed):
    with pytest.raises(ConfigError) as e:
        _load(config_dir, data)
    message = str(e.value)
    file = config_dir / "pipelines" / "p.yaml"
    assert message.startswith(f"{file}: {field}: {value}"), message
    assert allowed.format(cfg=config_dir) in message, message


def test_broken_stage_file_is_reported_through_the_pipeline(config_dir):
    text = (config_dir / "dev.yaml").read_text().replace("airflow_version: 2.11.0", "airflow_version: 9.9.9")
    (config_dir / "dev.yaml").write_text(text)
    with pytest.raises(ConfigError) as e:
        _load(config_dir, GOOD)
    assert str(e.value).startswith(
        f"{config_dir / 'pipelines' / 'p.yaml'}: stages[0].stage: 'dev' is not allowed; "
        f"a valid stage file; {config_dir / 'dev.yaml'}: target.airflow_version: '9.9.9'"
    )


def test_stages_sharing_a_target_environment_are_refused(config_dir):
    other = yaml.safe_load((config_dir / "dev.yaml").read_text())
    other["stack_prefix"] = "dev2"
    (config_dir / "dev2.yaml").write_text(yaml.safe_dump(other))
    with pytest.raises(
        ConfigError,
        match=r"stages\[1\]\.stage: 'dev2' .* do not share a target environment "
        r"\(mwaa-dev-target is also stage dev's\)",
    ):
        _load(config_dir, _with(stages=[{"stage": "dev"}, {"stage": "dev2"}]))


def test_bad_yaml_and_unknown_pipeline(config_dir):
    with pytest.raises(ConfigError, match=r"p\.yaml: \(file\): .*valid YAML"):
        _load(config_dir, "stages: [\n")
    _load(config_dir, GOOD, name="main")
    with pytest.raises(ConfigError, match=r"pipeline: 'other' is not allowed; a pipeline with a file in .*: main, p"):
        load_pipeline("other", config_dir)
    with pytest.raises(ConfigError, match=r"pipeline: 'Main' .*lowercase"):
        load_pipeline("Main", config_dir)


def test_the_report_key_acknowledgement_is_needed_and_exact(tmp_path, monkeypatch):
    """Without it the check role's key/* decrypt is a finding; with it nothing else is hidden."""
    monkeypatch.setattr(pipeline_app.UpgradePipeline, "_acknowledge_report_key", lambda self, stage: None)
    app = _app(tmp_path / "cdk.out")
    app_module.build(app)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "cdk.out" / "validation-report.json").read_text())
    rules = {
        (v["ruleName"], c["constructPath"].split("/")[3])
        for p in report["pluginReports"]
        for v in p["violations"]
        for c in v["violatingConstructs"]
    }
    rule = "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:kms:eu-west-1:111111111111:key/*]"
    assert rules == {(rule, "dev"), (rule, "prod")}
