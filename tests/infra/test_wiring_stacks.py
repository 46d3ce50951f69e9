"""The migration as the shipped stages synthesize it: clone -> export/import -> cutover order,
the Providers' timeouts, VPC placement, every IAM statement of the clone and runner handler
roles, the DAG publishers and the stack outputs. Read from the real templates (DependsOn and
Ref/GetAtt edges), not from construct attributes."""
from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest
import yaml
from aws_cdk.assertions import Template

from stacks import build_stage
from stacks.stage_config import load_stage
from tests.infra.conftest import CONTEXT, ROOT
from tests.infra.helpers import resources, statements_by_sid

pytestmark = pytest.mark.synth

DAG_RUN = "Custom::MwaaDagRun"
CLONE = "Custom::MwaaEnvironmentClone"
PUBLISH = "Custom::CDKBucketDeployment"


# ---------------------------------------------------------------------------- template graph

def _refs(value) -> set[str]:
    """Logical ids a property value points at (Ref, Fn::GetAtt, ${X} in Fn::Sub)."""
    out: set[str] = set()
    if isinstance(value, dict):
        if "Ref" in value and isinstance(value["Ref"], str) and not value["Ref"].startswith("AWS::"):
            out.add(value["Ref"])
        if "Fn::GetAtt" in value:
            out.add(value["Fn::GetAtt"][0])
        for v in value.values():
            out |= _refs(v)
    elif isinstance(value, list):
        for v in value:
            out |= _refs(v)
    return out


def direct_deps(template: dict, logical_id: str) -> set[str]:
    r = template["Resources"][logical_id]
    deps = set(r.get("DependsOn", []) if isinstance(r.get("DependsOn", []), list) else [r["DependsOn"]])
    return (deps | _refs(r.get("Properties", {}))) & set(template["Resources"])


def all_deps(template: dict, logical_id: str) -> set[str]:
    seen, todo = set(), [logical_id]
    while todo:
        for d in direct_deps(template, todo.pop()):
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def _one(template: dict, type_: str, **props) -> str:
    found = [k for k, r in resources(template, type_).items()
             if all(r["Properties"].get(p) == v for p, v in props.items())]
    assert len(found) == 1, (type_, props, found)
    return found[0]


def _dag_run(template: dict, step: str) -> str:
    return _one(template, DAG_RUN, Step=step)


def _ready_id(stage) -> str:
    """Logical id of what "the target is AVAILABLE" is in the template (clone or CfnEnvironment)."""
    ready = stage.stacks.target.environment_ready
    element = ready if isinstance(ready, cdk.CfnElement) else ready.node.default_child
    return stage.stacks.target.get_logical_id(element)


def _conf(template: dict, step: str) -> dict:
    return json.loads(template["Resources"][_dag_run(template, step)]["Properties"]["Conf"])


# ---------------------------------------------------------------------------- stage variants

def _variant(tmp_path: Path, base: str, **changes) -> tuple:
    """A shipped stage file with dotted keys changed, built into its own app."""
    data = yaml.safe_load((ROOT / "config" / f"{base}.yaml").read_text())
    for path, value in changes.items():
        node = data
        *parents, last = path.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    (tmp_path / f"{base}.yaml").write_text(yaml.safe_dump(data))
    cfg = load_stage(base, tmp_path)
    app = cdk.App(context=dict(CONTEXT, stage=base))
    stacks = build_stage(app, cfg)
    return cfg, stacks, {w: Template.from_stack(getattr(stacks, w)).to_json()
                         for w in ("network", "source", "target")}


@pytest.fixture(scope="module")
def dev_cutover(tmp_path_factory):
    return _variant(tmp_path_factory.mktemp("cutover"), "dev", migration__cutover=True,
                    migration__rerun_token="second-try", migration__tables=["dag", "dag_run"])


@pytest.fixture(scope="module")
def dev_public(tmp_path_factory):
    return _variant(tmp_path_factory.mktemp("public"), "dev", source__webserver_access_mode="PUBLIC_ONLY",
                    target__webserver_access_mode="PUBLIC_ONLY")


# ---------------------------------------------------------------------------- order

def test_export_runs_while_the_target_is_created(stage):
    """Export waits for nothing of the target environment: no path from Export to the clone
    (or the declared environment), so CloudFormation starts both at once."""
    t = stage.json("target")
    export = _dag_run(t, "export")
    env_id = _ready_id(stage)
    assert t["Resources"][env_id]["Type"] in (CLONE, "AWS::MWAA::Environment")
    assert env_id not in all_deps(t, export)
    assert _one(t, PUBLISH, DestinationBucketKeyPrefix="dags/") not in all_deps(t, export)
    # its own prerequisite, the source's DAGs, is in the source stack, deployed before this one
    assert stage.stacks.source in stage.stacks.target.dependencies
    src = stage.json("source")
    (publish,) = resources(src, PUBLISH).values()
    assert publish["Properties"]["DestinationBucketKeyPrefix"] == f"{stage.cfg.source.environment.dag_s3_path}/"


def test_import_waits_for_export_the_target_and_its_dags(stage):
    t = stage.json("target")
    imp = _dag_run(t, "import")
    env_id = _ready_id(stage)
    publish = _one(t, PUBLISH, DestinationBucketKeyPrefix=f"{stage.cfg.target.environment.dag_s3_path}/")
    deps = t["Resources"][imp]["DependsOn"]
    assert {_dag_run(t, "export"), env_id, publish} <= set(deps)
    expected_type = CLONE if stage.cfg.target.creation == "clone" else "AWS::MWAA::Environment"
    assert t["Resources"][env_id]["Type"] == expected_type


def test_cutover_absent_when_disabled(stage):
    assert stage.cfg.migration.cutover is False  # every shipped stage
    t = stage.json("target")
    assert sorted(r["Properties"]["Step"] for r in resources(t, DAG_RUN).values()) == ["export", "import"]
    assert stage.stacks.target.cutover is None


def test_cutover_after_import_when_enabled(dev_cutover):
    cfg, stacks, t = dev_cutover
    t = t["target"]
    cut, imp = _dag_run(t, "cutover"), _dag_run(t, "import")
    assert imp in t["Resources"][cut]["DependsOn"]
    assert {_dag_run(t, "export"), _one(t, CLONE)} <= all_deps(t, cut)
    conf = _conf(t, "cutover")
    assert conf == {**_conf(t, "import"), "cutover": True}
    for step in ("export", "import", "cutover"):  # the stage's re-run token and table subset reach every step
        props = t["Resources"][_dag_run(t, step)]["Properties"]
        assert props["RerunToken"] == "second-try"
        assert _conf(t, step)["tables"] == ["dag", "dag_run"]


def test_clone_waits_for_role_policies_log_groups_and_network(dev):
    """MWAA assumes the execution role and needs its log groups (with our retention) and
    security group rules at create time: all exist before the clone starts."""
    t = dev.json("target")
    clone = _one(t, CLONE)
    deps = set(t["Resources"][clone]["DependsOn"])
    kinds = {t["Resources"][d]["Type"] for d in deps}
    assert {"AWS::IAM::Role", "AWS::IAM::Policy", "AWS::Logs::LogGroup", "AWS::EC2::SecurityGroup",
            "AWS::EC2::SecurityGroupIngress", "AWS::S3::Bucket"} <= kinds
    import_policy = next(k for k in resources(t, "AWS::IAM::Policy") if k.startswith("ImportPolicy"))
    assert import_policy in deps
    log_groups = {k for k, r in resources(t, "AWS::Logs::LogGroup").items()
                  if r["Properties"].get("LogGroupName", "").startswith("airflow-mwaa-dev-target-")}
    assert len(log_groups) == 5 and log_groups <= deps
    # and nothing of the migration run: the clone never waits for the export
    assert not any(t["Resources"][d]["Type"] == DAG_RUN for d in all_deps(t, clone))


# ---------------------------------------------------------------------------- properties

def test_dag_run_properties_and_conf(stage):
    cfg, t = stage.cfg, stage.json("target")
    m = cfg.migration
    base = {"bucket": cfg.migration_bucket_name, "prefix": cfg.export_prefix, "migration_id": m.id}
    export = t["Resources"][_dag_run(t, "export")]["Properties"]
    assert {k: export[k] for k in ("EnvironmentName", "AirflowVersion", "DagId", "MigrationId", "Role")} == {
        "EnvironmentName": cfg.source.environment.name, "AirflowVersion": cfg.source.environment.airflow_version,
        "DagId": "db_export", "MigrationId": m.id, "Role": "Op"}
    assert _conf(t, "export") == base
    imp = t["Resources"][_dag_run(t, "import")]["Properties"]
    assert (imp["EnvironmentName"], imp["DagId"]) == (cfg.target.environment.name, "db_import")
    assert _conf(t, "import") == {
        **base, "source_environment": cfg.source.environment.name,
        "target_environment": cfg.target.environment.name, "task_log_days": m.task_log_days,
        "task_log_states": list(m.task_log_states), "variables_strategy": m.variables_strategy,
        "connections_strategy": m.connections_strategy}
    assert "RerunToken" not in imp  # none configured


def test_clone_properties_from_the_stage(dev):
    t = dev.json("target")
    props = t["Resources"][_one(t, CLONE)]["Properties"]
    assert props["SourceEnvironmentName"] == "mwaa-dev-source" and props["TargetName"] == "mwaa-dev-target"
    assert props["MigrationId"] == dev.cfg.migration.id
    assert props["DeleteOnStackDelete"] == "true"  # dev.yaml: migration.delete_target_on_stack_delete
    assert props["OmitFields"] == ["KmsKey"]  # no customer key: AWS-owned, never the source's by inheritance
    o = props["Overrides"]
    assert o["EndpointManagement"] == "SERVICE" and o["AirflowVersion"] == "3.0.6"
    assert "Name" not in o  # TargetName carries it
    assert len(json.dumps(props)) < 4096


def test_declared_target_has_no_clone(prod, example):
    for built in (prod, example):
        assert resources(built.json("target"), CLONE) == {}
        assert built.stacks.target.clone is None


# ---------------------------------------------------------------------------- timeouts

def _waiter(t: dict, prefix: str) -> dict:
    (sm,) = [r for k, r in resources(t, "AWS::StepFunctions::StateMachine").items() if k.startswith(prefix)]
    body = "".join(p if isinstance(p, str) else "X" for p in sm["Properties"]["DefinitionString"]["Fn::Join"][1])
    (retry,) = json.loads(body)["States"]["framework-isComplete-task"]["Retry"]
    return retry


def test_provider_timeouts(stage):
    t = stage.json("target")
    # runner: poll every 30 s for 55 min (under the framework's 1 h), each handler run <= 3 min
    r = _waiter(t, "MigrationRunProvider")
    assert r["IntervalSeconds"] == 30 and r["IntervalSeconds"] * r["MaxAttempts"] == 55 * 60
    fns = resources(t, "AWS::Lambda::Function")
    for k in ("MigrationRunOnEvent", "MigrationRunIsComplete"):
        (fn,) = [f for name, f in fns.items() if name.startswith(k)]
        assert fn["Properties"]["Timeout"] == 180
        assert fn["Properties"]["Environment"]["Variables"]["WAIT_BUDGET_SECONDS"] == str(55 * 60 - 30 - 180 - 30)
    if stage.cfg.target.creation == "clone":
        c = _waiter(t, "CloneProvider")
        assert c["IntervalSeconds"] >= 30 and c["IntervalSeconds"] * c["MaxAttempts"] == 3600
        props = t["Resources"][_one(t, CLONE)]["Properties"]
        assert int(props["WaitBudgetSeconds"]) < 3600


# ---------------------------------------------------------------------------- VPC placement

def _functions(t: dict, prefix: str) -> dict:
    return {k: f for k, f in resources(t, "AWS::Lambda::Function").items() if k.startswith(prefix)}


def test_runner_in_the_vpc_when_a_webserver_is_private(stage):
    assert stage.cfg.runner_in_vpc  # every shipped stage has a PRIVATE_ONLY webserver
    t, net = stage.json("target"), stage.json("network")
    lambda_sg = next(k for k in resources(net, "AWS::EC2::SecurityGroup") if k.startswith("LambdaSecurityGroup"))
    handlers = {k: f for k, f in _functions(t, "MigrationRun").items() if "Provider" not in k}
    assert len(handlers) == 2
    for fn in handlers.values():
        vpc = fn["Properties"]["VpcConfig"]
        (sg,) = vpc["SecurityGroupIds"]
        assert lambda_sg in sg["Fn::GetStackOutput"]["OutputName"]
        assert len(vpc["SubnetIds"]) == 2
    # the framework Lambdas and the clone stay outside (control-plane calls only)
    for k, fn in {**_functions(t, "MigrationRunProvider"), **_functions(t, "Clone")}.items():
        assert "VpcConfig" not in fn["Properties"], k
    # what the in-VPC runner reaches: airflow.env (InvokeRestApi, CLI token) and cloudformation
    services = {json.dumps(e["Properties"]["ServiceName"]) for e in resources(net, "AWS::EC2::VPCEndpoint").values()}
    for svc in ("airflow.env", "cloudformation"):
        assert any(s.rstrip('"').endswith(svc) for s in services), svc


def test_runner_outside_the_vpc_when_both_webservers_are_public(dev_public):
    cfg, stacks, t = dev_public
    assert not cfg.runner_in_vpc
    for k, fn in _functions(t["target"], "MigrationRun").items():
        assert "VpcConfig" not in fn["Properties"], k
    roles = resources(t["target"], "AWS::IAM::Policy")
    assert not any(st.get("Sid") == "LambdaVpcEni" for r in roles.values()
                   for st in r["Properties"]["PolicyDocument"]["Statement"])
    services = json.dumps([e["Properties"]["ServiceName"] for e in resources(t["network"], "AWS::EC2::VPCEndpoint").values()])
    assert "cloudformation" not in services


# ---------------------------------------------------------------------------- IAM

def _policy(t: dict, prefix: str) -> dict[str, dict]:
    (doc,) = [r["Properties"]["PolicyDocument"] for k, r in resources(t, "AWS::IAM::Policy").items()
              if k.startswith(prefix)]
    return statements_by_sid({"Statement": [s for s in doc["Statement"] if "Sid" in s]}) | {
        "(no sid) " + json.dumps(s["Action"]): s for s in doc["Statement"] if "Sid" not in s}


def _arn(cfg, service: str, rest: str) -> str:
    return f"arn:aws:{service}:{cfg.region}:{cfg.account}:{rest}"


def _subnet_refs(stage) -> list:
    return [stage.stacks.target.resolve(s) for s in stage.stacks.target.subnet_ids]


def test_clone_handler_role_every_statement(dev):
    cfg, t = dev.cfg, dev.json("target")
    src, tgt = cfg.source.environment.name, cfg.target.environment.name
    role_id = next(k for k in resources(t, "AWS::IAM::Role") if k.startswith("EnvironmentExecutionRole"))
    bucket_id = next(k for k in resources(t, "AWS::S3::Bucket") if k.startswith("EnvironmentDagBucket"))
    sg_id = next(k for k in resources(t, "AWS::EC2::SecurityGroup") if k.startswith("EnvironmentSecurityGroup"))
    ec2 = _arn(cfg, "ec2", "")
    subnets = [{"Fn::Join": ["", [f"{ec2}subnet/", s]]} for s in _subnet_refs(dev)]
    sg = {"Fn::Join": ["", [f"{ec2}security-group/", {"Fn::GetAtt": [sg_id, "GroupId"]}]]}
    vpc = {"Fn::Join": ["", [f"{ec2}vpc/", dev.stacks.target.resolve(dev.stacks.network.vpc.vpc_id)]]}
    expected = {
        "ReadSource": {"Action": "airflow:GetEnvironment", "Resource": _arn(cfg, "airflow", f"environment/{src}")},
        "ManageTarget": {"Action": ["airflow:CreateEnvironment", "airflow:GetEnvironment", "airflow:TagResource",
                                    "airflow:UpdateEnvironment"],
                         "Resource": _arn(cfg, "airflow", f"environment/{tgt}")},
        "PassTargetRole": {"Action": "iam:PassRole", "Resource": {"Fn::GetAtt": [role_id, "Arn"]},
                           "Condition": {"StringEquals": {"iam:PassedToService": "airflow.amazonaws.com"}}},
        "DescribeNetwork": {"Action": ["ec2:DescribeRouteTables", "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets",
                                       "ec2:DescribeVpcs"], "Resource": "*"},
        "ReadDagBucketEncryption": {"Action": "s3:GetEncryptionConfiguration",
                                    "Resource": {"Fn::GetAtt": [bucket_id, "Arn"]}},
        "ReadOwnStackStatus": {"Action": "cloudformation:DescribeStacks", "Resource": {"Ref": "AWS::StackId"}},
        "CreateServiceEndpoints": {"Action": "ec2:CreateVpcEndpoint",
                                   "Resource": [f"{ec2}vpc-endpoint/*", sg, *subnets, vpc]},
        "CreateServiceInterfaces": {"Action": "ec2:CreateNetworkInterface",
                                    "Resource": [f"{ec2}network-interface/*", sg, *subnets]},
        "DeleteTarget": {"Action": "airflow:DeleteEnvironment", "Resource": _arn(cfg, "airflow", f"environment/{tgt}")},
    }
    actual = _policy(t, "CloneHandlerPolicy")
    assert {sid: {k: v for k, v in st.items() if k not in ("Sid", "Effect")} for sid, st in actual.items()} == expected
    assert all(st["Effect"] == "Allow" for st in actual.values())
    # the role's other policy: write to its own log group only; no managed policies
    logs = _policy(t, "CloneHandlerRoleDefaultPolicy")
    (st,) = logs.values()
    assert st["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert st["Resource"]["Fn::GetAtt"][0].startswith("CloneLogs")
    for k, r in resources(t, "AWS::IAM::Role").items():
        assert "ManagedPolicyArns" not in r["Properties"], k


def test_runner_handler_role_every_statement(stage):
    cfg, t = stage.cfg, stage.json("target")
    src, tgt = cfg.source.environment.name, cfg.target.environment.name
    actual = _policy(t, "MigrationRunHandlerRoleDefaultPolicy")
    logs = actual.pop('(no sid) ["logs:CreateLogStream", "logs:PutLogEvents"]')
    assert sorted(r["Fn::GetAtt"][0][:-8] for r in logs["Resource"]) == [
        "MigrationRunIsCompleteLogs", "MigrationRunOnEventLogs"]
    expected = {
        "InvokeAirflowRestApi": {"Action": "airflow:InvokeRestApi",
                                 "Resource": [_arn(cfg, "airflow", f"role/{src}/Op"),
                                              _arn(cfg, "airflow", f"role/{tgt}/Op")]},
        "CliTokenFallback": {"Action": "airflow:CreateCliToken",
                             "Resource": [_arn(cfg, "airflow", f"environment/{src}"),
                                          _arn(cfg, "airflow", f"environment/{tgt}")]},
        "DetectStackRollback": {"Action": "cloudformation:DescribeStacks", "Resource": {"Ref": "AWS::StackId"}},
        # in the VPC (every shipped stage): Lambda's ENI actions, inline
        "LambdaVpcEni": {"Action": ["ec2:AssignPrivateIpAddresses", "ec2:CreateNetworkInterface",
                                    "ec2:DeleteNetworkInterface", "ec2:DescribeNetworkInterfaces",
                                    "ec2:DescribeSubnets", "ec2:UnassignPrivateIpAddresses"], "Resource": "*"},
    }
    for st in (*actual.values(), *expected.values()):
        if isinstance(st["Resource"], list):
            st["Resource"] = sorted(st["Resource"])
    assert {sid: {k: v for k, v in st.items() if k not in ("Sid", "Effect")} for sid, st in actual.items()} == expected


def test_dag_publishers_write_only_under_the_dag_folder(stage):
    cfg = stage.cfg
    for which, env in (("source", cfg.source.environment), ("target", cfg.target.environment)):
        t = stage.json(which)
        deny = _policy(t, "DagPublisherSharedRoleDefaultPolicy")["WriteOnlyUnderDagFolders"]
        assert deny["Effect"] == "Deny" and deny["Action"] == ["s3:Abort*", "s3:DeleteObject*", "s3:PutObject*"]
        resource = json.dumps(deny["NotResource"])
        assert resource.endswith(f'"/{env.dag_s3_path}/*"]]}}') or resource == json.dumps(
            f"{cfg.source.dag_bucket_arn}/{env.dag_s3_path}/*")


def test_adopted_source_dags_go_to_the_configured_bucket(example):
    cfg, t = example.cfg, example.json("source")
    assert cfg.source.mode == "existing"
    (publish,) = resources(t, PUBLISH).values()
    bucket = cfg.source.dag_bucket_arn.split(":::")[1]
    assert publish["Properties"]["DestinationBucketName"] == bucket
    grants = json.dumps(_policy(t, "DagPublisherSharedRoleDefaultPolicy"))
    assert f"arn:aws:s3:::{bucket}/*" in grants and f"arn:aws:s3:::{bucket}/{cfg.source.environment.dag_s3_path}/*" in grants


# ---------------------------------------------------------------------------- outputs

def test_outputs(stage):
    cfg, t = stage.cfg, stage.json("target")
    outs = t["Outputs"]
    base = f"s3://{cfg.migration_bucket_name}/{cfg.export_prefix}{cfg.migration.id}/"
    assert outs["MigrationReportLocation"]["Value"] == base + "report.json"
    assert outs["MigrationExportLocation"]["Value"] == base + "manifest.json"
    url = outs["TargetWebserverUrl"]["Value"]["Fn::GetAtt"]
    if cfg.target.creation == "clone":
        assert t["Resources"][url[0]]["Type"] == CLONE and url[1] == "WebserverUrl"
    else:
        assert t["Resources"][url[0]]["Type"] == "AWS::MWAA::Environment" and url[1] == "WebserverUrl"
    run = outs["ImportRunId"]["Value"]["Fn::GetAtt"]
    assert run == [_dag_run(t, "import"), "RunId"]


def test_wiring_logical_ids_are_stable(stage):
    """Renaming the clone or a DAG-run resource makes CloudFormation create a new one (a new
    clone adopts by tag; a new run id is not triggered twice, but the history gets confusing)."""
    t = stage.json("target")
    ids = {r["Type"]: [] for r in t["Resources"].values()}
    for k, r in t["Resources"].items():
        ids[r["Type"]].append(k)
    assert sorted(ids[DAG_RUN]) == ["MigrationRunExportE0B47057", "MigrationRunImport51BFDA0F"]
    if stage.cfg.target.creation == "clone":
        assert ids[CLONE] == ["Clone20871BCF"]


# ---------------------------------------------------------------------------- nag on the variants

def test_nag_clean_with_cutover_and_with_public_webservers(dev_cutover, dev_public):
    """The shipped stages are checked in test_nag.py; these variants add a Cutover resource,
    take the runner out of the VPC and drop the cloudformation endpoint."""
    from cdk_nag import AwsSolutionsChecks
    for _, stacks, _ in (dev_cutover, dev_public):
        app = stacks.target.node.root
        report = AwsSolutionsChecks(app).validate_scope(app)
        assert [f"{v.rule_name} {r.construct_path}" for v in report.violations
                for r in v.violating_resources] == []
