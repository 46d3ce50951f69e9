"""MigrationRunner: one custom-resource Provider that runs metadata DAGs during deployment.

``MigrationRunner`` creates the Provider once (two user Lambdas from the ``lambda/`` asset:
``dag_runner.handler.on_event`` and ``.is_complete``; the framework Lambdas and the waiter
state machine come from ``custom_resources.Provider``) and ``add_dag_run`` adds one
``Custom::MwaaDagRun`` per step (export, import, cutover), each under the framework's 1-hour
limit. Order between steps is the caller's: pass ``depends_on``.

Secure defaults: our own roles for every Lambda (no managed policies), IAM scoped to the
environments given here and the one Airflow role, log groups with retention, and, for a
PRIVATE_ONLY webserver, the handler Lambdas in private subnets (framework Lambdas stay out
of the VPC). Requires ``lambda/`` on ``sys.path`` (contracts §1): properties are checked at
synth with the handler's own rules.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from aws_cdk import (Acknowledgment, Aws, CustomResource, Duration, Names, RemovalPolicy, Stack,
                     Token, Validations)
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import custom_resources as cr
from constructs import Construct, IDependable

from dag_runner import plan
from dag_runner.airflow_api import DEFAULT_MAX_PATH, run_path

LAMBDA_ROOT = Path(__file__).resolve().parents[1] / "lambda"
ASSET_EXCLUDE = ["**/__pycache__", "**/*.pyc", "**/tests", "**/test_*.py", "**/.pytest_cache"]
RESOURCE_TYPE = "Custom::MwaaDagRun"
MAX_TOTAL_TIMEOUT = Duration.hours(1)
# Slack between our own "still running" failure and the framework's timeout (on top of one
# poll interval and one handler run), so CloudFormation shows our message, not "timed out".
_BUDGET_SLACK_S = 30


class MigrationRunner(Construct):
    """The DAG-run Provider. Keyword-only props:

    environment_names: the MWAA environments (source and target, 1-2) the Lambdas may call;
        IAM is scoped to exactly these.
    airflow_role: Airflow role in the InvokeRestApi resource ARN (Admin | Op | User).
    query_interval / total_timeout: Provider polling; total_timeout at most 1 hour.
    private_webserver: the webserver is PRIVATE_ONLY: the handler Lambdas run in ``vpc``
        ``vpc_subnets`` with ``security_group`` (which must reach the webserver endpoint and the
        airflow.env and cloudformation interface endpoints on 443).
    log_retention: of the Lambdas' and the waiter's log groups.
    handler_timeout: of each handler run; the wait budget leaves room for one more run.
    """

    def __init__(self, scope: Construct, construct_id: str, *,
                 environment_names: Sequence[str],
                 airflow_role: str = plan.DEFAULT_AIRFLOW_ROLE,
                 query_interval: Duration = Duration.seconds(30),
                 total_timeout: Duration = Duration.minutes(55),
                 private_webserver: bool = False,
                 vpc: Optional[ec2.IVpc] = None,
                 vpc_subnets: Optional[ec2.SubnetSelection] = None,
                 security_group: Optional[ec2.ISecurityGroup] = None,
                 log_retention: logs.RetentionDays = logs.RetentionDays.THREE_MONTHS,
                 handler_timeout: Duration = Duration.minutes(3)) -> None:
        super().__init__(scope, construct_id)
        names = list(environment_names)
        if not 1 <= len(names) <= 2:
            raise ValueError(f"environment_names={names!r}: give the source and target (1-2 names)")
        if airflow_role not in plan.AIRFLOW_ROLES:
            raise ValueError(f"airflow_role={airflow_role!r} is not allowed; allowed: {', '.join(plan.AIRFLOW_ROLES)}")
        if total_timeout.to_seconds() > MAX_TOTAL_TIMEOUT.to_seconds():
            raise ValueError(f"total_timeout={total_timeout.to_human_string()} exceeds the Provider "
                             "framework's limit of 1 hour: split the work into several resources")
        budget = int(total_timeout.to_seconds() - query_interval.to_seconds()
                     - handler_timeout.to_seconds() - _BUDGET_SLACK_S)
        if budget < 60:
            raise ValueError(f"total_timeout={total_timeout.to_human_string()} leaves no time to wait "
                             f"with query_interval={query_interval.to_human_string()}")
        if private_webserver and (vpc is None or vpc_subnets is None or security_group is None):
            raise ValueError("private_webserver=True needs vpc, vpc_subnets and security_group: a "
                             "PRIVATE_ONLY webserver is only reachable from inside the VPC")
        if not private_webserver and (vpc or vpc_subnets or security_group):
            raise ValueError("vpc, vpc_subnets and security_group apply only with private_webserver=True")
        self.environment_names = names
        self.airflow_role = airflow_role
        stack = Stack.of(self)

        # ---- the handler Lambdas (one role, one asset) ----------------------------------------
        self.handler_role = iam.Role(
            self, "HandlerRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="DAG runner: trigger and poll the migration DAGs on MWAA")
        env_arns = [stack.format_arn(service="airflow", resource="environment", resource_name=n)
                    for n in names]
        role_arns = [stack.format_arn(service="airflow", resource="role",
                                      resource_name=f"{n}/{airflow_role}") for n in names]
        self.handler_role.add_to_policy(iam.PolicyStatement(
            sid="InvokeAirflowRestApi", actions=["airflow:InvokeRestApi"], resources=role_arns))
        self.handler_role.add_to_policy(iam.PolicyStatement(
            sid="CliTokenFallback", actions=["airflow:CreateCliToken"], resources=env_arns))
        self.handler_role.add_to_policy(iam.PolicyStatement(
            sid="DetectStackRollback", actions=["cloudformation:DescribeStacks"],
            resources=[Aws.STACK_ID]))
        if private_webserver:
            self._grant_vpc_access(self.handler_role)

        code = lambda_.Code.from_asset(str(LAMBDA_ROOT), exclude=ASSET_EXCLUDE)
        network = {}
        if private_webserver:
            network = {"vpc": vpc, "vpc_subnets": vpc_subnets, "security_groups": [security_group]}
        self.functions: dict[str, lambda_.Function] = {}
        for name, entry in (("OnEvent", "on_event"), ("IsComplete", "is_complete")):
            group = logs.LogGroup(self, f"{name}Logs", retention=log_retention,
                                  removal_policy=RemovalPolicy.DESTROY)
            fn = lambda_.Function(
                self, name, runtime=lambda_.Runtime.PYTHON_3_14, code=code,
                handler=f"dag_runner.handler.{entry}", role=self.handler_role,
                timeout=handler_timeout, memory_size=256, log_group=group,
                environment={"WAIT_BUDGET_SECONDS": str(budget)},
                description=f"DAG runner {entry}: MWAA metadata DAG runs during deployment",
                **network)
            group.grant_write(self.handler_role)  # our role: CDK adds no managed policy
            self.functions[entry] = fn

        # ---- the Provider (framework out of the VPC, our roles) -------------------------------
        self.on_event_role = iam.Role(self, "FrameworkOnEventRole",
                                      assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        self.complete_role = iam.Role(self, "FrameworkCompleteRole",
                                      assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        framework_logs = logs.LogGroup(self, "FrameworkLogs", retention=log_retention,
                                       removal_policy=RemovalPolicy.DESTROY)
        # Step Functions log delivery wants the /aws/vendedlogs/ prefix (resource-policy size)
        waiter_logs = logs.LogGroup(
            self, "WaiterLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY,
            log_group_name=f"/aws/vendedlogs/states/{Names.unique_id(self)[-200:]}-waiter")
        self.provider = cr.Provider(
            self, "Provider",
            on_event_handler=self.functions["on_event"],
            is_complete_handler=self.functions["is_complete"],
            query_interval=query_interval, total_timeout=total_timeout,
            framework_on_event_role=self.on_event_role,
            framework_complete_and_timeout_role=self.complete_role,
            log_group=framework_logs,
            disable_waiter_state_machine_logging=False,
            waiter_state_machine_log_options=cr.LogOptions(
                destination=waiter_logs, level=sfn.LogLevel.ALL,
                include_execution_data=False))
        for role in (self.on_event_role, self.complete_role):
            framework_logs.grant_write(role)
        self.query_interval = query_interval
        self.total_timeout = total_timeout
        self.wait_budget_seconds = budget
        self._acknowledge_framework_findings()

    def _acknowledge_framework_findings(self) -> None:
        """The Provider framework's unavoidable findings, on the narrowest constructs."""
        invoke = ("the Provider framework grants lambda:InvokeFunction on the function and its "
                  "versions/aliases (ARN:*); the wildcard is the version qualifier of one function")
        for role in (self.on_event_role, self.complete_role):
            Validations.of(role.node.find_child("DefaultPolicy")).acknowledge(*[
                Acknowledgment(id=f"AwsSolutions-IAM5[Resource::<{self._logical_id(fn)}.Arn>:*]",
                               reason=invoke)
                for fn in self.functions.values()])
        waiter = self.provider.node.find_child("waiter-state-machine")
        framework_fns = [self.provider.node.find_child(n) for n in
                         ("framework-isComplete", "framework-onTimeout")]
        Validations.of(waiter.node.find_child("Role").node.find_child("DefaultPolicy")).acknowledge(
            *[Acknowledgment(id=f"AwsSolutions-IAM5[Resource::<{self._logical_id(fn)}.Arn>:*]",
                             reason=invoke) for fn in framework_fns],
            Acknowledgment(id="AwsSolutions-IAM5[Resource::*]",
                           reason="Step Functions log delivery (logs:CreateLogDelivery and friends) "
                                  "supports no resource-level permissions; added by the Provider "
                                  "when waiter logging is on"))
        Validations.of(waiter).acknowledge(Acknowledgment(
            id="AwsSolutions-SF2",
            reason="the Provider's waiter state machine offers no tracing option; it only loops "
                   "is_complete, whose Lambda logs every poll"))

    def _logical_id(self, construct) -> str:
        child = construct.node.default_child if construct.node.default_child else construct
        return Stack.of(self).get_logical_id(child)

    def _grant_vpc_access(self, role: iam.Role) -> None:
        # what AWSLambdaVPCAccessExecutionRole grants, inline (these EC2 actions take no
        # resource-level scoping for Lambda's ENI management)
        role.add_to_policy(iam.PolicyStatement(
            sid="LambdaVpcEni",
            actions=["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces",
                     "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface",
                     "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"],
            resources=["*"]))
        Validations.of(role.node.find_child("DefaultPolicy")).acknowledge(Acknowledgment(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="Lambda's VPC network interfaces: the EC2 ENI actions AWSLambdaVPCAccessExecutionRole "
                   "grants take no resource scoping; written inline to avoid the managed policy"))

    def add_dag_run(self, construct_id: str, *, environment_name: str, airflow_version: str,
                    dag_id: str, migration_id: str, step: str, conf: dict,
                    rerun_token: str = "",
                    depends_on: Sequence[IDependable] = ()) -> CustomResource:
        """One DAG run as a custom resource (``Custom::MwaaDagRun``); see dag_runner.handler.

        ``conf`` may hold tokens (e.g. a bucket name); ``migration_id`` is added to it.
        Attributes: RunId, State, ReportLocation, LogGroup (``resource.get_att_string``).
        """
        if environment_name not in self.environment_names:
            raise ValueError(f"environment_name={environment_name!r} is not one of this runner's "
                             f"environments {self.environment_names}: IAM would not allow it")
        if step not in plan.STEPS:
            raise ValueError(f"step={step!r} is not allowed; allowed: {', '.join(plan.STEPS)}")
        for field, value in (("migration_id", migration_id), ("dag_id", dag_id),
                             ("airflow_version", airflow_version), ("rerun_token", rerun_token)):
            if Token.is_unresolved(value):
                raise ValueError(f"{field} must be a literal at synth (it names the run), got a token")
        if not plan.MIGRATION_ID_RE.fullmatch(migration_id):
            raise ValueError(f"migration_id={migration_id!r} is not allowed; allowed: [a-z0-9-]{{1,40}}")
        if airflow_version not in plan.versions.VERSIONS:
            plan.versions.info(airflow_version)  # raises with the known versions
        path = run_path(dag_id, plan.run_id(migration_id, step, rerun_token))
        if len(path) > DEFAULT_MAX_PATH:
            raise ValueError(f"dag_id={dag_id!r}: the run path {path!r} is {len(path)} characters; "
                             f"InvokeRestApi allows {DEFAULT_MAX_PATH}")
        body = dict(conf)
        if body.setdefault("migration_id", migration_id) != migration_id:
            raise ValueError(f"conf['migration_id']={body['migration_id']!r} differs from "
                             f"migration_id={migration_id!r}")
        properties = {
            "EnvironmentName": environment_name, "AirflowVersion": airflow_version,
            "DagId": dag_id, "MigrationId": migration_id, "Step": step,
            "Conf": Stack.of(self).to_json_string(body), "Role": self.airflow_role,
        }
        if rerun_token:
            properties["RerunToken"] = rerun_token
        resource = CustomResource(self, construct_id, service_token=self.provider.service_token,
                                  resource_type=RESOURCE_TYPE, properties=properties)
        for dep in depends_on:
            resource.node.add_dependency(dep)
        return resource
