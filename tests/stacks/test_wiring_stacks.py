"""The migration as the shipped stages synthesize it: the stack layout (the migration's custom
resources in ``{prefix}-migration``, apart from the environments' long-lived parts), clone ->
export/import -> cutover order, the Providers' timeouts, VPC placement, every IAM statement of
the clone and runner handler roles, the DAG publishers and the stack outputs. Read from the
real templates (DependsOn and Ref/GetAtt edges, cross-stack Fn::GetStackOutput resolved to the
producing stack's output) and the cloud assembly's stack dependencies, not from construct
attributes."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest
import yaml
from aws_cdk.assertions import Template

from stacks import build_stage
from stacks.config import load_stage
from tests.cdk_stages import CONTEXT, ROOT
from tests.templatehelpers import resources, statements_by_sid

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
    found = [
        k for k, r in resources(template, type_).items() if all(r["Properties"].get(p) == v for p, v in props.items())
    ]
    assert len(found) == 1, (type_, props, found)
    return found[0]


def _dag_run(template: dict, step: str) -> str:
    return _one(template, DAG_RUN, Step=step)


def _ready_id(stage) -> tuple[str, str]:
    """(stack, logical id) of what "the target is AVAILABLE" is: the clone in the migration
    stack, or the declared CfnEnvironment in the target stack."""
    ready = stage.stacks.migration.environment_ready
    element = ready if isinstance(ready, cdk.CfnElement) else ready.node.default_child
    stack = cdk.Stack.of(element)
    which = "migration" if stack is stage.stacks.migration else "target"
    assert stack is getattr(stage.stacks, which)
    return which, stack.get_logical_id(element)


def _conf(template: dict, step: str) -> dict:
    """The run conf; a deploy-time value inside it (Fn::Join part) reads as <token:its JSON>."""
    conf = template["Resources"][_dag_run(template, step)]["Properties"]["Conf"]
    if isinstance(conf, dict):
        sep, parts = conf["Fn::Join"]
        conf = sep.join(p if isinstance(p, str) else "<token:" + json.dumps(p).replace('"', "'") + ">" for p in parts)
    return json.loads(conf)


def _stack_deps(stage, which: str) -> set[str]:
    """Stack names ``which`` depends on in the cloud assembly (what `cdk deploy` orders by)."""
    name = getattr(stage.stacks, which).artifact_id
    return {d.id for d in stage.assembly().get_stack_artifact(name).dependencies if not d.id.endswith(".assets")}


def _export(stage, name: str):
    """The value of the output exported as ``name`` (a strong reference's Fn::ImportValue)."""
    (value,) = [
        o["Value"]
        for w in ("network", "storage", "source", "target")
        for o in (stage.json(w).get("Outputs") or {}).values()
        if (o.get("Export") or {}).get("Name") == name
    ]
    return value


def deref(stage, value):
    """``value`` with every cross-stack reference (weak: Fn::GetStackOutput, strong: Fn::ImportValue)
    replaced by the value of the producing stack's output, e.g. {"Fn::GetAtt": ["EnvironmentExecutionRole...",
    "Arn"]}."""
    if isinstance(value, dict):
        if set(value) == {"Fn::GetStackOutput"}:
            ref = value["Fn::GetStackOutput"]
            (which,) = [
                w
                for w in ("network", "storage", "source", "target")
                if getattr(stage.stacks, w).stack_name == ref["StackName"]
            ]
            return stage.json(which)["Outputs"][ref["OutputName"]]["Value"]
        if set(value) == {"Fn::ImportValue"}:
            return _export(stage, value["Fn::ImportValue"])
        return {k: deref(stage, v) for k, v in value.items()}
    if isinstance(value, list):
        return [deref(stage, v) for v in value]
    return value


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
    return (
        cfg,
        stacks,
        {w: Template.from_stack(getattr(stacks, w)).to_json() for w in ("network", "source", "target", "migration")},
    )


@pytest.fixture(scope="module")
def dev_cutover(tmp_path_factory):
    return _variant(
        tmp_path_factory.mktemp("cutover"),
        "dev",
        migration__cutover=True,
        migration__rerun_token="second-try",
        migration__tables=["dag", "dag_run"],
    )


@pytest.fixture(scope="module")
def dev_public(tmp_path_factory):
    return _variant(
        tmp_path_factory.mktemp("public"),
        "dev",
        source__webserver_access_mode="PUBLIC_ONLY",
        target__webserver_access_mode="PUBLIC_ONLY",
    )


# ---------------------------------------------------------------------------- layout

LONG_LIVED = {
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::SecurityGroupIngress",
    "AWS::Logs::LogGroup",
    "AWS::S3::Bucket",
    "AWS::KMS::Key",
    "AWS::MWAA::Environment",
}


def test_migration_custom_resources_are_in_their_own_stack(stage):
    """A failed clone or DAG run rolls back only the migration stack: the environment stacks hold
    no clone and no DAG run, and the migration stack holds none of an environment's parts."""
    for which in ("source", "target"):
        t = stage.json(which)
        assert resources(t, CLONE) == {} and resources(t, DAG_RUN) == {}, which
        customs = {r["Type"] for r in t["Resources"].values() if r["Type"].startswith("Custom::")}
        assert customs <= {PUBLISH}, (which, customs)  # DAG upload only: retains files, never blocks a rollback
    m = stage.json("migration")
    assert (resources(m, DAG_RUN) != {}) == stage.cfg.migration.metadata
    assert (resources(m, CLONE) != {}) == (stage.cfg.target.creation == "clone")
    env_names = (stage.cfg.source.environment.name, stage.cfg.target.environment.name)
    for k, r in m["Resources"].items():
        if r["Type"] == "AWS::Logs::LogGroup":  # only our Lambdas' own logs, never airflow-{env}-*
            assert not str(r["Properties"].get("LogGroupName", "")).startswith("airflow-"), k
        if r["Type"] == "AWS::IAM::Role":  # only our Lambdas' roles, never an execution role
            assert "airflow" not in json.dumps(r["Properties"]["AssumeRolePolicyDocument"]), k
        assert r["Type"] not in {
            "AWS::S3::Bucket",
            "AWS::KMS::Key",
            "AWS::MWAA::Environment",
            "AWS::EC2::SecurityGroup",
        }, k
    assert not any(
        n in json.dumps(r)
        for n in (f"airflow-{e}-" for e in env_names)
        for r in resources(m, "AWS::Logs::LogGroup").values()
    )


def test_migration_stack_is_deployed_after_source_and_target(stage):
    p = stage.cfg.stack_prefix
    assert {f"{p}-source", f"{p}-target"} <= _stack_deps(stage, "migration")
    assert f"{p}-source" in _stack_deps(stage, "target")
    # and nothing long-lived depends on it: deleting or rolling it back leaves them alone
    for which in ("network", "storage", "source", "target"):
        assert f"{p}-migration" not in _stack_deps(stage, which), which


# ---------------------------------------------------------------------------- order


def test_export_waits_only_for_the_source_stack(migrating):
    """Export waits for nothing of the target environment in the migration stack: no path from
    Export to the clone, so CloudFormation starts both at once. Its prerequisite, the source's
    DAGs, is published by the source stack, which the migration stack depends on."""
    m = migrating.json("migration")
    export = _dag_run(m, "export")
    assert all_deps(m, export) <= {k for k, r in m["Resources"].items() if k.startswith("MigrationRun")}
    which, env_id = _ready_id(migrating)
    if which == "migration":
        assert m["Resources"][env_id]["Type"] == CLONE and env_id not in all_deps(m, export)
        assert export not in all_deps(m, env_id)
    src = migrating.json("source")
    (publish,) = resources(src, PUBLISH).values()
    assert publish["Properties"]["DestinationBucketKeyPrefix"] == (
        f"{migrating.cfg.source.environment.dag_s3_path}/mwaa-upgrade/"
    )
    assert migrating.stacks.source.stack_name in _stack_deps(migrating, "migration")


def test_import_waits_for_export_the_target_and_its_dags(migrating):
    m = migrating.json("migration")
    imp = _dag_run(m, "import")
    deps = set(m["Resources"][imp]["DependsOn"])
    assert _dag_run(m, "export") in deps
    which, env_id = _ready_id(migrating)
    if migrating.cfg.target.creation == "clone":
        assert (which, m["Resources"][env_id]["Type"]) == ("migration", CLONE) and env_id in deps
    else:  # the declared environment and everything else of the target stack come first
        assert (which, migrating.json("target")["Resources"][env_id]["Type"]) == ("target", "AWS::MWAA::Environment")
    t = migrating.json("target")
    (publish,) = resources(t, PUBLISH).values()
    assert publish["Properties"]["DestinationBucketKeyPrefix"] == (
        f"{migrating.cfg.target.environment.dag_s3_path}/mwaa-upgrade/"
    )
    assert migrating.stacks.target.stack_name in _stack_deps(migrating, "migration")


def test_cutover_absent_when_disabled(migrating):
    assert migrating.cfg.migration.cutover is False  # every shipped stage
    m = migrating.json("migration")
    assert sorted(r["Properties"]["Step"] for r in resources(m, DAG_RUN).values()) == ["export", "import"]
    assert migrating.stacks.migration.cutover is None


def test_cutover_after_import_when_enabled(dev_cutover):
    cfg, stacks, t = dev_cutover
    m = t["migration"]
    cut, imp = _dag_run(m, "cutover"), _dag_run(m, "import")
    assert imp in m["Resources"][cut]["DependsOn"]
    assert {_dag_run(m, "export"), _one(m, CLONE)} <= all_deps(m, cut)
    conf = _conf(m, "cutover")
    assert conf == {**_conf(m, "import"), "cutover": True}
    for step in ("export", "import", "cutover"):  # the stage's re-run token and table subset reach every step
        props = m["Resources"][_dag_run(m, step)]["Properties"]
        assert props["RerunToken"] == "second-try"
        assert _conf(m, step)["tables"] == ["dag", "dag_run"]


def test_clone_uses_the_target_stacks_role_bucket_and_network(dev):
    """MWAA assumes the execution role and needs its log groups (with our retention) and
    security group rules at create time: they are in the target stack, which is deployed (and
    kept on a rollback of the migration stack) before the clone starts."""
    m, t = dev.json("migration"), dev.json("target")
    clone = _one(m, CLONE)
    o = deref(dev, m["Resources"][clone]["Properties"]["Overrides"])
    role_id = next(k for k in resources(t, "AWS::IAM::Role") if k.startswith("EnvironmentExecutionRole"))
    bucket_id = next(k for k in resources(t, "AWS::S3::Bucket") if k.startswith("EnvironmentDagBucket"))
    sg_id = next(k for k in resources(t, "AWS::EC2::SecurityGroup") if k.startswith("EnvironmentSecurityGroup"))
    assert o["ExecutionRoleArn"] == {"Fn::GetAtt": [role_id, "Arn"]}
    assert o["SourceBucketArn"] == {"Fn::GetAtt": [bucket_id, "Arn"]}
    assert o["NetworkConfiguration"]["SecurityGroupIds"] == [{"Fn::GetAtt": [sg_id, "GroupId"]}]
    # issue 12 item 12: role and security group through strong references (exports of the target
    # stack), so CloudFormation refuses to delete them while the cloned environment uses them
    raw = m["Resources"][clone]["Properties"]["Overrides"]
    assert raw["ExecutionRoleArn"] == {"Fn::ImportValue": f"{dev.stacks.target.stack_name}:ExecutionRoleArn"}
    assert raw["NetworkConfiguration"]["SecurityGroupIds"] == [
        {"Fn::ImportValue": f"{dev.stacks.target.stack_name}:SecurityGroupId"}
    ]
    # what the clone needs from the target stack exists there: the role's import policy, the
    # five airflow-{target}-* log groups and the security group's self-referencing rule
    import_policy = next(k for k in resources(t, "AWS::IAM::Policy") if k.startswith("ImportPolicy"))
    assert t["Resources"][import_policy]["Properties"]["Roles"] == [{"Ref": role_id}]
    log_groups = {r["Properties"].get("LogGroupName") for r in resources(t, "AWS::Logs::LogGroup").values()}
    assert {
        f"airflow-mwaa-dev-target-{s}" for s in ("DAGProcessing", "Scheduler", "Task", "WebServer", "Worker")
    } <= log_groups
    assert any(
        r["Properties"].get("SourceSecurityGroupId") == {"Fn::GetAtt": [sg_id, "GroupId"]}
        for r in resources(t, "AWS::EC2::SecurityGroupIngress").values()
    )
    assert dev.stacks.target.stack_name in _stack_deps(dev, "migration")
    # and nothing of the migration run: the clone never waits for the export
    assert not any(m["Resources"][d]["Type"] == DAG_RUN for d in all_deps(m, clone))


# ---------------------------------------------------------------------------- properties


def test_dag_run_properties_and_conf(migrating):
    cfg, t = migrating.cfg, migrating.json("migration")
    m = cfg.migration
    base = {"bucket": cfg.migration_bucket_name, "prefix": cfg.export_prefix, "migration_id": m.id}
    export = t["Resources"][_dag_run(t, "export")]["Properties"]
    assert {k: export[k] for k in ("EnvironmentName", "AirflowVersion", "DagId", "MigrationId", "Role")} == {
        "EnvironmentName": cfg.source.environment.name,
        "AirflowVersion": cfg.source.environment.airflow_version,
        "DagId": "db_export",
        "MigrationId": m.id,
        "Role": "Op",
    }
    export_conf = _conf(t, "export")
    key = export_conf.pop("secrets_kms_key")  # the migration bucket's key seals the export's secrets
    assert key.startswith("<token:") and "MigrationKey" in key
    assert export_conf == base
    imp = t["Resources"][_dag_run(t, "import")]["Properties"]
    assert (imp["EnvironmentName"], imp["DagId"]) == (cfg.target.environment.name, "db_import")
    assert _conf(t, "import") == {
        **base,
        "source_environment": cfg.source.environment.name,
        "target_environment": cfg.target.environment.name,
        "task_log_days": m.task_log_days,
        "task_log_states": list(m.task_log_states),
        "variables_strategy": m.variables_strategy,
        "connections_strategy": m.connections_strategy,
    }
    assert "RerunToken" not in imp  # none configured


def test_clone_properties_from_the_stage(dev):
    t = dev.json("migration")
    props = t["Resources"][_one(t, CLONE)]["Properties"]
    assert props["SourceEnvironmentName"] == "mwaa-dev-source" and props["TargetName"] == "mwaa-dev-target"
    assert props["MigrationId"] == dev.cfg.migration.id
    assert props["DeleteOnStackDelete"] == "true"  # dev.yaml: migration.delete_target_on_stack_delete
    assert props["OmitFields"] == ["KmsKey"]  # no customer key: AWS-owned, never the source's by inheritance
    o = props["Overrides"]
    assert o["EndpointManagement"] == "SERVICE" and o["AirflowVersion"] == "2.11.0"
    assert "Name" not in o  # TargetName carries it
    assert len(json.dumps(props)) < 4096


def test_declared_target_has_no_clone(prod, example):
    for built in (prod, example):
        assert resources(built.json("migration"), CLONE) == {}
        assert built.stacks.migration.clone is None


# ---------------------------------------------------------------------------- timeouts


def _waiter(t: dict, prefix: str) -> dict:
    (sm,) = [r for k, r in resources(t, "AWS::StepFunctions::StateMachine").items() if k.startswith(prefix)]
    body = "".join(p if isinstance(p, str) else "X" for p in sm["Properties"]["DefinitionString"]["Fn::Join"][1])
    (retry,) = json.loads(body)["States"]["framework-isComplete-task"]["Retry"]
    return retry


def test_provider_timeouts(stage):
    t = stage.json("migration")
    fns = resources(t, "AWS::Lambda::Function")
    if stage.cfg.migration.metadata:
        # runner: poll every 30 s for 55 min (under the framework's 1 h), each handler run <= 3 min
        r = _waiter(t, "MigrationRunProvider")
        assert r["IntervalSeconds"] == 30 and r["IntervalSeconds"] * r["MaxAttempts"] == 55 * 60
        for k in ("MigrationRunOnEvent", "MigrationRunIsComplete"):
            (fn,) = [f for name, f in fns.items() if name.startswith(k)]
            assert fn["Properties"]["Timeout"] == 180
            assert fn["Properties"]["Environment"]["Variables"]["WAIT_BUDGET_SECONDS"] == str(55 * 60 - 30 - 180 - 30)
    else:
        assert not any(name.startswith("MigrationRun") for name in fns)
    if stage.cfg.target.creation == "clone":
        c = _waiter(t, "CloneProvider")
        assert c["IntervalSeconds"] >= 30 and c["IntervalSeconds"] * c["MaxAttempts"] == 3600
        props = t["Resources"][_one(t, CLONE)]["Properties"]
        assert int(props["WaitBudgetSeconds"]) < 3600


# ---------------------------------------------------------------------------- VPC placement


def _functions(t: dict, prefix: str) -> dict:
    return {k: f for k, f in resources(t, "AWS::Lambda::Function").items() if k.startswith(prefix)}


def test_runner_in_the_vpc_when_a_webserver_is_private(migrating):
    assert migrating.cfg.runner_in_vpc  # every shipped stage has a PRIVATE_ONLY webserver
    t, net = migrating.json("migration"), migrating.json("network")
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
    for k, fn in _functions(t["migration"], "MigrationRun").items():
        assert "VpcConfig" not in fn["Properties"], k
    roles = resources(t["migration"], "AWS::IAM::Policy")
    assert not any(
        st.get("Sid") == "LambdaVpcEni" for r in roles.values() for st in r["Properties"]["PolicyDocument"]["Statement"]
    )
    services = json.dumps(
        [e["Properties"]["ServiceName"] for e in resources(t["network"], "AWS::EC2::VPCEndpoint").values()]
    )
    assert "cloudformation" not in services


# ---------------------------------------------------------------------------- IAM


def _policy(t: dict, prefix: str) -> dict[str, dict]:
    (doc,) = [
        r["Properties"]["PolicyDocument"] for k, r in resources(t, "AWS::IAM::Policy").items() if k.startswith(prefix)
    ]
    return statements_by_sid({"Statement": [s for s in doc["Statement"] if "Sid" in s]}) | {
        "(no sid) " + json.dumps(s["Action"]): s for s in doc["Statement"] if "Sid" not in s
    }


def _arn(cfg, service: str, rest: str) -> str:
    return f"arn:aws:{service}:{cfg.region}:{cfg.account}:{rest}"


def _subnet_refs(stage) -> list:
    """The subnets as the network stack renders them (cross-stack references dereferenced)."""
    net = stage.stacks.network
    return [net.resolve(s.subnet_id) for s in net.mwaa_subnets]


def test_clone_handler_role_every_statement(dev):
    """The clone's role (migration stack) names the target stack's role, bucket and security
    group and the network stack's subnets and VPC through cross-stack references."""
    cfg, t, m = dev.cfg, dev.json("target"), dev.json("migration")
    src, tgt = cfg.source.environment.name, cfg.target.environment.name
    role_id = next(k for k in resources(t, "AWS::IAM::Role") if k.startswith("EnvironmentExecutionRole"))
    bucket_id = next(k for k in resources(t, "AWS::S3::Bucket") if k.startswith("EnvironmentDagBucket"))
    sg_id = next(k for k in resources(t, "AWS::EC2::SecurityGroup") if k.startswith("EnvironmentSecurityGroup"))
    ec2 = _arn(cfg, "ec2", "")
    subnets = [{"Fn::Join": ["", [f"{ec2}subnet/", s]]} for s in _subnet_refs(dev)]
    sg = {"Fn::Join": ["", [f"{ec2}security-group/", {"Fn::GetAtt": [sg_id, "GroupId"]}]]}
    vpc = {"Fn::Join": ["", [f"{ec2}vpc/", dev.stacks.network.resolve(dev.stacks.network.vpc.vpc_id)]]}
    expected = {
        "ReadSource": {"Action": "airflow:GetEnvironment", "Resource": _arn(cfg, "airflow", f"environment/{src}")},
        "ManageTarget": {
            "Action": [
                "airflow:CreateEnvironment",
                "airflow:GetEnvironment",
                "airflow:TagResource",
                "airflow:UpdateEnvironment",
            ],
            "Resource": _arn(cfg, "airflow", f"environment/{tgt}"),
        },
        "PassTargetRole": {
            "Action": "iam:PassRole",
            "Resource": {"Fn::GetAtt": [role_id, "Arn"]},
            "Condition": {"StringEquals": {"iam:PassedToService": "airflow.amazonaws.com"}},
        },
        "DescribeNetwork": {
            "Action": [
                "ec2:DescribeRouteTables",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSubnets",
                "ec2:DescribeVpcs",
            ],
            "Resource": "*",
        },
        "ReadDagBucketEncryption": {
            "Action": "s3:GetEncryptionConfiguration",
            "Resource": {"Fn::GetAtt": [bucket_id, "Arn"]},
        },
        "ReadOwnStackStatus": {"Action": "cloudformation:DescribeStacks", "Resource": {"Ref": "AWS::StackId"}},
        "CreateServiceEndpoints": {
            "Action": "ec2:CreateVpcEndpoint",
            "Resource": [f"{ec2}vpc-endpoint/*", sg, *subnets, vpc],
        },
        "CreateServiceInterfaces": {
            "Action": "ec2:CreateNetworkInterface",
            "Resource": [f"{ec2}network-interface/*", sg, *subnets],
        },
        "DeleteTarget": {"Action": "airflow:DeleteEnvironment", "Resource": _arn(cfg, "airflow", f"environment/{tgt}")},
    }
    actual = deref(dev, _policy(m, "CloneHandlerPolicy"))
    # write to its own log group only
    st = actual.pop("WriteOwnLogs")
    assert st["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert st["Resource"]["Fn::GetAtt"][0].startswith("CloneLogs")
    assert {sid: {k: v for k, v in st.items() if k not in ("Sid", "Effect")} for sid, st in actual.items()} == expected
    assert all(st["Effect"] == "Allow" for st in actual.values())
    # one policy, no managed policies
    assert [k for k in resources(m, "AWS::IAM::Policy") if k.startswith("CloneHandler")] == [
        next(k for k in resources(m, "AWS::IAM::Policy") if k.startswith("CloneHandlerPolicy"))
    ]
    for k, r in resources(m, "AWS::IAM::Role").items():
        assert "ManagedPolicyArns" not in r["Properties"], k


def test_runner_handler_role_every_statement(migrating):
    cfg, t = migrating.cfg, migrating.json("migration")
    src, tgt = cfg.source.environment.name, cfg.target.environment.name
    actual = _policy(t, "MigrationRunHandlerPolicy")
    logs = actual.pop("WriteOwnLogs")
    assert logs["Resource"]["Fn::GetAtt"][0][:-8] == "MigrationRunLogs"
    expected = {
        "InvokeAirflowRestApi": {
            "Action": "airflow:InvokeRestApi",
            "Resource": [_arn(cfg, "airflow", f"role/{src}/Op"), _arn(cfg, "airflow", f"role/{tgt}/Op")],
        },
        # no CreateCliToken: the CLI-token fallback is off unless the stage turns it on
        "DetectStackRollback": {"Action": "cloudformation:DescribeStacks", "Resource": {"Ref": "AWS::StackId"}},
        # in the VPC (every shipped stage): Lambda's ENI actions, inline
        "LambdaVpcEni": {
            "Action": [
                "ec2:AssignPrivateIpAddresses",
                "ec2:CreateNetworkInterface",
                "ec2:DeleteNetworkInterface",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeSubnets",
                "ec2:UnassignPrivateIpAddresses",
            ],
            "Resource": "*",
        },
    }
    for st in (*actual.values(), *expected.values()):
        if isinstance(st["Resource"], list):
            st["Resource"] = sorted(st["Resource"])
    assert {sid: {k: v for k, v in st.items() if k not in ("Sid", "Effect")} for sid, st in actual.items()} == expected


def test_dag_publishers_write_only_under_the_dag_folder(migrating):
    cfg = migrating.cfg
    for which, env in (("source", cfg.source.environment), ("target", cfg.target.environment)):
        t = migrating.json(which)
        deny = _policy(t, "DagPublisherSharedRoleDefaultPolicy")["WriteOnlyUnderOurSubfolders"]
        assert deny["Effect"] == "Deny" and deny["Action"] == ["s3:Abort*", "s3:DeleteObject*", "s3:PutObject*"]
        resource = json.dumps(deny["NotResource"])
        assert resource.endswith(f'"/{env.dag_s3_path}/mwaa-upgrade/*"]]}}') or resource == json.dumps(
            f"{cfg.source.dag_bucket_arn}/{env.dag_s3_path}/mwaa-upgrade/*"
        )


def test_adopted_source_dags_go_to_the_configured_bucket(example):
    cfg, t = example.cfg, example.json("source")
    assert cfg.source.mode == "existing"
    (publish,) = resources(t, PUBLISH).values()
    bucket = cfg.source.dag_bucket_arn.split(":::")[1]
    assert publish["Properties"]["DestinationBucketName"] == bucket
    grants = json.dumps(_policy(t, "DagPublisherSharedRoleDefaultPolicy"))
    path = cfg.source.environment.dag_s3_path
    assert f"arn:aws:s3:::{bucket}/*" in grants and f"arn:aws:s3:::{bucket}/{path}/mwaa-upgrade/*" in grants


# ---------------------------------------------------------------------------- outputs


def test_outputs(stage):
    """The migration's outputs are the migration stack's; the environment stacks keep only their
    environments' own outputs (ARNs, role, DAG bucket, log groups)."""
    cfg, m = stage.cfg, stage.json("migration")
    outs = m["Outputs"]
    base = f"s3://{cfg.migration_bucket_name}/{cfg.export_prefix}{cfg.migration.id}/"
    run_outputs = {"MigrationReportLocation", "MigrationExportLocation", "ImportRunId"}
    if cfg.migration.metadata:
        assert outs["MigrationReportLocation"]["Value"] == base + "report.json"
        assert outs["MigrationExportLocation"]["Value"] == base + "manifest.json"
        run = outs["ImportRunId"]["Value"]["Fn::GetAtt"]
        assert run == [_dag_run(m, "import"), "RunId"]
    else:
        assert not run_outputs & set(outs)
    url = deref(stage, outs["TargetWebserverUrl"]["Value"])["Fn::GetAtt"]
    if cfg.target.creation == "clone":
        assert m["Resources"][url[0]]["Type"] == CLONE and url[1] == "WebserverUrl"
    else:  # the declared environment's attribute, through the target stack
        assert stage.json("target")["Resources"][url[0]]["Type"] == "AWS::MWAA::Environment"
        assert url[1] == "WebserverUrl"
    for which in ("source", "target"):
        assert not {"MigrationReportLocation", "MigrationExportLocation", "TargetWebserverUrl", "ImportRunId"} & set(
            stage.json(which).get("Outputs", {})
        ), which


def test_wiring_logical_ids_are_stable(stage):
    """Renaming the clone or a DAG-run resource makes CloudFormation create a new one (a new
    clone adopts by tag; a new run id is not triggered twice, but the history gets confusing).
    They kept their ids when they moved from the target stack to the migration stack."""
    t = stage.json("migration")
    ids = {r["Type"]: [] for r in t["Resources"].values()}
    for k, r in t["Resources"].items():
        ids[r["Type"]].append(k)
    if stage.cfg.migration.metadata:
        assert sorted(ids[DAG_RUN]) == ["MigrationRunExportE0B47057", "MigrationRunImport51BFDA0F"]
    if stage.cfg.target.creation == "clone":
        assert ids[CLONE] == ["Clone20871BCF"]


# ---------------------------------------------------------------------------- nag on the variants


def test_nag_clean_with_cutover_and_with_public_webservers(dev_cutover, dev_public):
    """The shipped stages are checked in test_nag.py; these variants add a Cutover resource,
    take the runner out of the VPC and drop the cloudformation endpoint."""
    from cdk_nag import AwsSolutionsChecks

    for _, stacks, _ in (dev_cutover, dev_public):
        app = stacks.migration.node.root
        report = AwsSolutionsChecks(app).validate_scope(app)
        assert [f"{v.rule_name} {r.construct_path}" for v in report.violations for r in v.violating_resources] == []
