"""Template tests of MigrationRunner and DagPublisher in a small purpose-built stack."""

from __future__ import annotations

import json

import aws_cdk as cdk  # noqa: E402
import pytest
from aws_cdk import aws_ec2 as ec2  # noqa: E402
from aws_cdk import aws_kms as kms  # noqa: E402
from aws_cdk import aws_s3 as s3  # noqa: E402
from aws_cdk.assertions import Match, Template  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from constructs_lib.dag_publisher import DagPublisher  # noqa: E402
from constructs_lib.migration_run import MigrationRunner  # noqa: E402

pytestmark = pytest.mark.synth

ACCOUNT, REGION = "111122223333", "eu-west-1"
SRC, TGT = "mwaa-source", "mwaa-target"
CONF = {"bucket": "mig-bucket", "prefix": "data/migration/2.10.3_to_3.0.6/export/"}


def build(private: bool):
    app = cdk.App()
    stack = cdk.Stack(app, "RunnerTest", env=cdk.Environment(account=ACCOUNT, region=REGION))
    kwargs, net = {}, {}
    if private:
        vpc = ec2.Vpc(
            stack,
            "Vpc",
            availability_zones=[f"{REGION}a", f"{REGION}b"],
            nat_gateways=0,
            subnet_configuration=[ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)],
            flow_logs={"all": ec2.FlowLogOptions()},
        )
        sg = ec2.SecurityGroup(
            stack,
            "RunnerSg",
            vpc=vpc,
            allow_all_outbound=False,
            description="DAG runner to the webserver and endpoints",
        )
        sg.add_egress_rule(ec2.Peer.ipv4(vpc.vpc_cidr_block), ec2.Port.tcp(443), "endpoints, webserver")
        kwargs = {
            "private_webserver": True,
            "vpc": vpc,
            "security_group": sg,
            "vpc_subnets": ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
        }
        net = {"sg": sg, "subnets": vpc.isolated_subnets}
    clone = cdk.CfnWaitConditionHandle(stack, "CloneStandIn")  # the clone resource's place
    runner = MigrationRunner(stack, "Runner", environment_names=[SRC, TGT], **kwargs)
    export = runner.add_dag_run(
        "Export",
        environment_name=SRC,
        airflow_version="2.10.3",
        dag_id="db_export",
        migration_id="2-10-3-to-3-0-6",
        step="export",
        conf=CONF,
    )
    imp = runner.add_dag_run(
        "Import",
        environment_name=TGT,
        airflow_version="3.0.6",
        dag_id="db_import",
        migration_id="2-10-3-to-3-0-6",
        step="import",
        conf={**CONF, "source_environment": SRC, "target_environment": TGT},
        depends_on=[export, clone],
    )
    cut = runner.add_dag_run(
        "Cutover",
        environment_name=TGT,
        airflow_version="3.0.6",
        dag_id="db_import",
        migration_id="2-10-3-to-3-0-6",
        step="cutover",
        conf={**CONF, "cutover": True},
        depends_on=[imp],
    )
    src_bucket = s3.Bucket(
        stack,
        "SourceDags",
        enforce_ssl=True,
        versioned=True,
        server_access_logs_prefix="access/",
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
    )
    key = kms.Key(stack, "TargetKey", enable_key_rotation=True)
    DagPublisher(stack, "PublishSource", bucket=src_bucket)
    DagPublisher(
        stack, "PublishTarget", bucket=s3.Bucket.from_bucket_name(stack, "Tgt", "tgt-dags"), prefix="dags/", kms_key=key
    )
    return app, stack, runner, {"export": export, "import": imp, "cutover": cut, "clone": clone, **net}


@pytest.fixture(scope="module")
def private():
    app, stack, runner, res = build(private=True)
    return app, stack, runner, res, Template.from_stack(stack)


@pytest.fixture(scope="module")
def public():
    app, stack, runner, res = build(private=False)
    return app, stack, runner, res, Template.from_stack(stack)


def lid(stack, construct):
    return stack.get_logical_id(construct.node.default_child)


def functions(template, handler_prefix):
    return {
        k: r
        for k, r in template.find_resources("AWS::Lambda::Function").items()
        if r["Properties"].get("Handler", "").startswith(handler_prefix)
    }


def test_one_provider_three_runs_in_order(private):
    _, stack, runner, res, t = private
    assert len(functions(t, "framework.onEvent")) == 1
    assert len(functions(t, "dag_runner.handler.")) == 2
    runs = t.find_resources("Custom::MwaaDagRun")
    assert len(runs) == 3
    exp, imp, cut = (lid(stack, res[k]) for k in ("export", "import", "cutover"))
    assert "DependsOn" not in runs[exp]
    assert set(runs[imp]["DependsOn"]) == {exp, stack.get_logical_id(res["clone"])}
    assert runs[cut]["DependsOn"] == [imp]
    props = runs[cut]["Properties"]
    assert props["Step"] == "cutover" and props["DagId"] == "db_import" and props["Role"] == "Op"
    assert props["EnvironmentName"] == TGT and props["AirflowVersion"] == "3.0.6"
    assert json.loads(props["Conf"]) == {**CONF, "cutover": True, "migration_id": "2-10-3-to-3-0-6"}
    assert "RerunToken" not in props


def test_timeouts(private):
    _, _, runner, _, t = private
    for fn in functions(t, "dag_runner.handler.").values():
        assert fn["Properties"]["Timeout"] == 180
        # our "redeploy resumes" failure comes before the framework's 55 min timeout:
        # 3300 s - one poll (30) - one handler run (180) - slack (30)
        assert fn["Properties"]["Environment"]["Variables"] == {"WAIT_BUDGET_SECONDS": "3060", "LOG_LEVEL": "INFO"}
    machine = next(iter(t.find_resources("AWS::StepFunctions::StateMachine").values()))
    definition = json.dumps(machine["Properties"]["DefinitionString"])
    assert '\\"IntervalSeconds\\":30' in definition and '\\"MaxAttempts\\":110' in definition
    # issue 12 item 10: waiter logging off, as in the clone (on, it brought logs:* on "*")
    assert "LoggingConfiguration" not in machine["Properties"]


def test_handlers_in_the_vpc_framework_outside(private):
    _, stack, _, res, t = private
    subnets = [stack.resolve(s.subnet_id) for s in res["subnets"]]
    assert len(subnets) == 2
    for fn in functions(t, "dag_runner.handler.").values():
        assert fn["Properties"]["VpcConfig"] == {
            "SubnetIds": subnets,
            "SecurityGroupIds": [{"Fn::GetAtt": [lid(stack, res["sg"]), "GroupId"]}],
        }
    for fn in functions(t, "framework.").values():
        assert "VpcConfig" not in fn["Properties"]


def test_public_webserver_keeps_handlers_out_of_the_vpc(public):
    _, _, _, _, t = public
    for fn in functions(t, "dag_runner.handler.").values():
        assert "VpcConfig" not in fn["Properties"]


def _handler_statements(stack, runner, t):
    policy = t.find_resources("AWS::IAM::Policy")[stack.get_logical_id(runner.handler_policy.node.default_child)]
    return stack.resolve(policy["Properties"]["PolicyDocument"]["Statement"])


def _arn(resource):
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":airflow:{REGION}:{ACCOUNT}:{resource}"]]}


def test_every_handler_iam_statement(private, public):
    for fixture, vpc in ((private, True), (public, False)):
        _, stack, runner, _, t = fixture
        statements = _handler_statements(stack, runner, t)
        by_sid = {s.get("Sid"): s for s in statements}
        assert by_sid["InvokeAirflowRestApi"] == {
            "Sid": "InvokeAirflowRestApi",
            "Effect": "Allow",
            "Action": "airflow:InvokeRestApi",
            "Resource": [_arn(f"role/{SRC}/Op"), _arn(f"role/{TGT}/Op")],
        }
        assert "CliTokenFallback" not in by_sid  # off by default (issue 12 item 11)
        assert by_sid["DetectStackRollback"] == {
            "Sid": "DetectStackRollback",
            "Effect": "Allow",
            "Action": "cloudformation:DescribeStacks",
            "Resource": {"Ref": "AWS::StackId"},
        }
        logs = by_sid["WriteOwnLogs"]  # the handlers' one log group, no wildcard
        assert logs["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
        assert logs["Resource"]["Fn::GetAtt"][1] == "Arn"
        if vpc:
            assert by_sid["LambdaVpcEni"]["Resource"] == "*"
            assert set(by_sid["LambdaVpcEni"]["Action"]) == {
                "ec2:CreateNetworkInterface",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeSubnets",
                "ec2:DeleteNetworkInterface",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses",
            }
            assert len(statements) == 4
        else:
            assert "LambdaVpcEni" not in by_sid and len(statements) == 3
        assert all("Sid" in s for s in statements)


def test_no_managed_policies_anywhere(private):
    _, _, _, _, t = private
    for name, role in t.find_resources("AWS::IAM::Role").items():
        assert "ManagedPolicyArns" not in role["Properties"], name


def test_every_framework_role_statement(private):
    _, stack, runner, _, t = private
    fns = [lid(stack, runner.functions[n]) for n in ("on_event", "is_complete")]
    expected = []
    for fn in fns:
        expected += [
            {
                "Action": "lambda:InvokeFunction",
                "Effect": "Allow",
                "Resource": [{"Fn::GetAtt": [fn, "Arn"]}, {"Fn::Join": ["", [{"Fn::GetAtt": [fn, "Arn"]}, ":*"]]}],
            },
            {"Action": "lambda:GetFunction", "Effect": "Allow", "Resource": {"Fn::GetAtt": [fn, "Arn"]}},
        ]
    logs = {
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Effect": "Allow",
        "Resource": {"Fn::GetAtt": [Match.string_like_regexp("^RunnerFrameworkLogs"), "Arn"]},
    }
    machine = {
        "Action": "states:StartExecution",
        "Effect": "Allow",
        "Resource": {"Ref": Match.string_like_regexp("^RunnerProviderwaiterstatemachine")},
    }
    for role, statements in (
        (runner.on_event_role, [logs] + expected + [machine]),
        (runner.complete_role, [logs] + expected),
    ):
        t.has_resource_properties(
            "AWS::IAM::Policy",
            {
                "PolicyDocument": {"Statement": statements},
                "Roles": [{"Ref": stack.get_logical_id(role.node.default_child)}],
            },
        )


def test_nag_clean(private, public):
    for app, *_ in (private, public):
        report = AwsSolutionsChecks(app).validate_scope(app)
        assert [v.rule_name for v in report.violations] == []


def test_dag_publisher_writes_only_into_its_own_subfolder(private):
    """Issue 12 item 4: before, the publisher wrote into dags/ itself (overwriting a customer's
    dags/.airflowignore) and left its files behind on delete."""
    _, stack, _, _, t = private
    deployments = t.find_resources("Custom::CDKBucketDeployment")
    assert len(deployments) == 2
    for d in deployments.values():
        p = d["Properties"]
        assert p["DestinationBucketKeyPrefix"] == "dags/mwaa-upgrade/"
        # only ours lives there: pruned, and removed with the stack
        assert p["Prune"] is True and p["RetainOnDelete"] is False
    deny = [
        s
        for p in t.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Effect") == "Deny"
    ]
    assert len(deny) == 1 and deny[0]["Sid"] == "WriteOnlyUnderOurSubfolders"
    assert set(deny[0]["Action"]) == {"s3:PutObject*", "s3:DeleteObject*", "s3:Abort*"}
    rendered = json.dumps(deny[0]["NotResource"])
    assert len(deny[0]["NotResource"]) == 2 and rendered.count('/dags/mwaa-upgrade/*"') == 2
    kms_one = [d for d in deployments.values() if "SystemMetadata" in d["Properties"]]
    assert len(kms_one) == 1 and kms_one[0]["Properties"]["SystemMetadata"]["sse"] == "aws:kms"
    # one shared role for BucketDeployment's singleton Lambda, which both deployments use
    fns = [
        r
        for r in t.find_resources("AWS::Lambda::Function").values()
        if r["Properties"].get("Handler") == "index.handler"
    ]
    assert len(fns) == 1
    assert fns[0]["Properties"]["Role"]["Fn::GetAtt"][0].startswith("DagPublisherSharedRole")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"total_timeout": cdk.Duration.minutes(61)}, "exceeds the Provider framework's limit of 1 hour"),
        ({"private_webserver": True}, "needs vpc, vpc_subnets and security_group"),
        ({"environment_names": ["a", "b", "c"]}, "1-2 names"),
        ({"airflow_role": "Viewer"}, "airflow_role='Viewer' is not allowed"),
        ({"airflow_role": "Admin"}, "airflow_role='Admin' is not allowed; allowed: Op"),
    ],
)
def test_runner_rejects_bad_props(kwargs, message):
    stack = cdk.Stack(cdk.App(), "Bad")
    with pytest.raises(ValueError, match=message):
        MigrationRunner(stack, "R", **{"environment_names": [SRC, TGT], **kwargs})


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"environment_name": "other"}, "is not one of this runner's environments"),
        (
            {"dag_id": "db_export_for_the_finance_team_v2", "migration_id": "2-10-3-to-3-0-6"},
            "is 69 characters; InvokeRestApi allows 64",
        ),
        ({"migration_id": "Bad_Id"}, "migration_id='Bad_Id' is not allowed"),
        ({"step": "copy"}, "step='copy' is not allowed"),
        ({"conf": {**CONF, "migration_id": "x"}}, "differs from migration_id"),
    ],
)
def test_add_dag_run_rejects_bad_input_at_synth(kwargs, message):
    stack = cdk.Stack(cdk.App(), "Bad")
    runner = MigrationRunner(stack, "R", environment_names=[SRC, TGT])
    args = {
        "environment_name": SRC,
        "airflow_version": "2.10.3",
        "dag_id": "db_export",
        "migration_id": "m1",
        "step": "export",
        "conf": CONF,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        runner.add_dag_run("Run", **args)


def test_cli_token_fallback_is_an_explicit_option():
    """Issue 12 item 11: CreateCliToken only when the stage asks for the fallback."""
    app = cdk.App()
    stack = cdk.Stack(app, "Fallback", env=cdk.Environment(account=ACCOUNT, region=REGION))
    runner = MigrationRunner(stack, "Runner", environment_names=[SRC, TGT], cli_token_fallback=True)
    run = runner.add_dag_run(
        "Export",
        environment_name=SRC,
        airflow_version="2.10.3",
        dag_id="db_export",
        migration_id="m1",
        step="export",
        conf=CONF,
    )
    t = Template.from_stack(stack)
    by_sid = {s.get("Sid"): s for s in _handler_statements(stack, runner, t)}
    assert by_sid["CliTokenFallback"] == {
        "Sid": "CliTokenFallback",
        "Effect": "Allow",
        "Action": "airflow:CreateCliToken",
        "Resource": [_arn(f"environment/{SRC}"), _arn(f"environment/{TGT}")],
    }
    assert t.to_json()["Resources"][lid(stack, run)]["Properties"]["CliTokenFallback"] == "true"
