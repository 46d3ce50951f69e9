"""CustomResourceProvider: the one scaffold for our Provider-backed custom resources.

Every custom resource of this project (the environment clone, the DAG runs, and those that
later features add) is a ``custom_resources.Provider`` around handler functions that live in
the ``lambda/`` asset. This construct builds that scaffold once, the same way for all:

- the handler Lambdas ``{handler_module}.on_event`` and (unless ``is_complete=False``)
  ``{handler_module}.is_complete`` from the ``lambda/`` folder (no Docker, no bundling);
- **one handler role** (ours: no managed policy) with one ``AWS::IAM::Policy`` holding exactly
  ``statements``; every wildcard in them needs a reason in ``wildcard_reasons`` (keyed by the
  statement's Sid) or the build fails (``constructs_lib.nag.acknowledge_wildcards``);
- **one log group** for the handlers, retention from ``mwaa_common.retention``, retained on
  delete by default;
- the framework Lambdas outside any VPC with **our own roles** and log group, the waiter state
  machine's logging **off** (on, aws-cdk-lib gives its role ``logs:*Delivery*``/
  ``PutResourcePolicy`` on ``*``), and the Provider's ``query_interval``/``total_timeout``
  checked against the framework's 1-hour limit;
- optionally the handlers in a VPC (``vpc``, ``vpc_subnets``, ``security_group``), with the ENI
  permissions Lambda needs written inline;
- the cdk-nag acknowledgements the framework makes unavoidable, each with its reason, on the
  narrowest construct.

Use it directly and add resources::

    provider = CustomResourceProvider(self, "Workflows", handler_module="workflows.handler",
                                      description="mwaa-upgrade: copy workflow resources",
                                      statements=[iam.PolicyStatement(sid="ReadFoo", ...)])
    provider.add_resource("Copy", resource_type="Custom::MwaaWorkflowCopy", properties={...})

or subclass it (``CloneEnvironment``, ``MigrationRunner`` do: their children keep the same
construct ids, so their logical IDs do not move). Handlers must return
``{"PhysicalResourceId", "Data"}`` / ``{"IsComplete": bool}`` or raise; they never PUT to the
ResponseURL, and their Data stays under 4,096 bytes. The handler sees
``WAIT_BUDGET_SECONDS`` in its environment: how long ``is_complete`` may wait before it
should fail with its own "redeploy resumes" message, a little before the framework times out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct, IConstruct, IDependable

from constructs_lib.log_retention import retention as logs_retention
from constructs_lib.nag import acknowledge, acknowledge_wildcards
from mwaa_common import retention as retention_days

LAMBDA_ROOT = Path(__file__).resolve().parents[1] / "lambda"
ASSET_EXCLUDE = ["**/__pycache__", "**/*.pyc", "**/.pytest_cache", "**/tests", "**/test_*.py", "**/*.egg-info"]
MAX_TOTAL_TIMEOUT = cdk.Duration.hours(1)  # the Provider framework's maximum
MIN_QUERY_INTERVAL = cdk.Duration.seconds(10)
WAIT_BUDGET_ENV = "WAIT_BUDGET_SECONDS"
# Our "still running, redeploy resumes" failure comes this long before the framework's own
# timeout (on top of one poll interval and one is_complete run).
BUDGET_SLACK = cdk.Duration.seconds(30)
DEFAULT_QUERY_INTERVAL = cdk.Duration.seconds(30)
DEFAULT_ON_EVENT_TIMEOUT = cdk.Duration.minutes(5)
DEFAULT_IS_COMPLETE_TIMEOUT = cdk.Duration.minutes(2)

# What AWSLambdaVPCAccessExecutionRole grants, inline (no managed policy).
VPC_ENI_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)
VPC_ENI_SID = "LambdaVpcEni"
VPC_ENI_REASON = (
    "Lambda's VPC network interfaces: the EC2 ENI actions AWSLambdaVPCAccessExecutionRole grants "
    "take no resource scoping; written inline to avoid the managed policy"
)


class CustomResourceProvider(Construct):
    """A Provider and its handler Lambdas, role, policy and log groups (see the module docstring).

    Keyword-only props:

    handler_module: dotted module under ``lambda/`` with ``on_event`` (and ``is_complete``).
    description: what the handlers do (Lambda and role descriptions).
    statements: the handler role's permissions, each with a Sid (log writing is added here).
    wildcard_reasons: Sid -> why that statement needs a wildcard (cdk-nag acknowledgement).
    is_complete: whether the resource waits (an ``is_complete`` handler); default True.
    query_interval: how often is_complete runs (10 s .. total_timeout); default 30 s.
    total_timeout: the framework's overall wait, at most 1 hour (default).
    on_event_timeout / is_complete_timeout: each handler run; defaults 5 and 2 minutes.
    environment: extra Lambda environment variables (``WAIT_BUDGET_SECONDS`` is set here).
    memory_size: MB for each handler; default 256.
    log_retention_days: of every log group here (CloudWatch's allowed values only); default
        ``mwaa_common.retention.CUSTOM_RESOURCE_LOG_DAYS``.
    log_removal_policy: of the log groups; default RETAIN (an investigation outlives the stack).
    vpc, vpc_subnets, security_group: all three or none: the handlers (never the framework)
        run in the VPC.
    lambda_runtime: default Python 3.14 (the newest the pinned aws-cdk-lib knows).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler_module: str,
        description: str,
        statements: Sequence[iam.PolicyStatement],
        wildcard_reasons: Mapping[str, str] | None = None,
        is_complete: bool = True,
        query_interval: cdk.Duration = DEFAULT_QUERY_INTERVAL,
        total_timeout: cdk.Duration = MAX_TOTAL_TIMEOUT,
        on_event_timeout: cdk.Duration = DEFAULT_ON_EVENT_TIMEOUT,
        is_complete_timeout: cdk.Duration = DEFAULT_IS_COMPLETE_TIMEOUT,
        environment: Mapping[str, str] | None = None,
        memory_size: int = 256,
        log_retention_days: int = retention_days.CUSTOM_RESOURCE_LOG_DAYS,
        log_removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
        vpc: ec2.IVpc | None = None,
        vpc_subnets: ec2.SubnetSelection | None = None,
        security_group: ec2.ISecurityGroup | None = None,
        lambda_runtime: lambda_.Runtime = lambda_.Runtime.PYTHON_3_14,
    ) -> None:
        super().__init__(scope, construct_id)
        self.wait_budget_seconds = _check_timing(query_interval, total_timeout, is_complete_timeout, waits=is_complete)
        in_vpc = _check_network(vpc, vpc_subnets, security_group)
        retention = logs_retention(log_retention_days)
        if not (LAMBDA_ROOT / handler_module.replace(".", "/")).with_suffix(".py").is_file():
            raise ValueError(f"handler_module={handler_module!r}: no lambda/{handler_module.replace('.', '/')}.py")
        self.query_interval, self.total_timeout = query_interval, total_timeout

        # ---- the handlers: one role, one policy, one log group --------------------------------
        self.handler_role = iam.Role(
            self, "HandlerRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=description[:1000]
        )
        policy_statements = list(statements)
        reasons = dict(wildcard_reasons or {})
        if in_vpc:
            policy_statements.append(
                iam.PolicyStatement(sid=VPC_ENI_SID, actions=list(VPC_ENI_ACTIONS), resources=["*"])
            )
            reasons.setdefault(VPC_ENI_SID, VPC_ENI_REASON)
        self.log_group = logs.LogGroup(self, "Logs", retention=retention, removal_policy=log_removal_policy)
        policy_statements.append(
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        self.handler_policy = iam.Policy(self, "HandlerPolicy", statements=policy_statements, roles=[self.handler_role])
        self.acknowledged = acknowledge_wildcards(self.handler_policy.node.default_child, policy_statements, reasons)

        code = lambda_.Code.from_asset(str(LAMBDA_ROOT), exclude=ASSET_EXCLUDE)
        env = {"LOG_LEVEL": "INFO", WAIT_BUDGET_ENV: str(self.wait_budget_seconds), **(environment or {})}
        network: dict = {}
        if in_vpc:
            network = {"vpc": vpc, "vpc_subnets": vpc_subnets, "security_groups": [security_group]}
        entries = [("OnEvent", "on_event", on_event_timeout)]
        if is_complete:
            entries.append(("IsComplete", "is_complete", is_complete_timeout))
        self.functions: dict[str, lambda_.Function] = {}
        for cid, entry, timeout in entries:
            fn = lambda_.Function(
                self,
                cid,
                code=code,
                runtime=lambda_runtime,
                handler=f"{handler_module}.{entry}",
                role=self.handler_role,
                log_group=self.log_group,
                timeout=timeout,
                memory_size=memory_size,
                environment=env,
                description=f"{description} ({entry})"[:256],
                **network,
            )
            # Lambda checks the role (ENI rights in a VPC) when the function is created.
            fn.node.add_dependency(self.handler_policy)
            self.functions[entry] = fn
        self.on_event_function = self.functions["on_event"]
        self.is_complete_function: lambda_.Function | None = self.functions.get("is_complete")

        # ---- the framework: out of the VPC, our roles, waiter logging off ---------------------
        self.framework_on_event_role = iam.Role(
            self, "FrameworkOnEventRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com")
        )
        framework_logs = logs.LogGroup(self, "FrameworkLogs", retention=retention, removal_policy=log_removal_policy)
        framework_logs.grant_write(self.framework_on_event_role)
        self.framework_complete_role: iam.Role | None = None
        waiting: dict = {}
        if is_complete:
            self.framework_complete_role = iam.Role(
                self, "FrameworkCompleteRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com")
            )
            framework_logs.grant_write(self.framework_complete_role)
            # Waiter logging off on purpose: on, aws-cdk-lib grants the waiter role
            # logs:CreateLogDelivery, PutResourcePolicy, ... on "*"; every poll is already in
            # the is_complete Lambda's log.
            waiting = {
                "is_complete_handler": self.is_complete_function,
                "query_interval": query_interval,
                "total_timeout": total_timeout,
                "disable_waiter_state_machine_logging": True,
                "framework_complete_and_timeout_role": self.framework_complete_role,
            }
        self.provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.on_event_function,
            framework_on_event_role=self.framework_on_event_role,
            log_group=framework_logs,
            **waiting,
        )
        self.service_token = self.provider.service_token
        self._acknowledge_framework()

    # ---- resources ------------------------------------------------------------------------------

    def add_resource(
        self,
        construct_id: str,
        *,
        resource_type: str,
        properties: Mapping[str, object],
        depends_on: Sequence[IDependable] = (),
        scope: Construct | None = None,
    ) -> cdk.CustomResource:
        """One custom resource served by this provider (``scope`` defaults to this construct)."""
        if not resource_type.startswith("Custom::") or len(resource_type) > 60:
            raise ValueError(f"resource_type={resource_type!r}: use 'Custom::Name' (at most 60 characters)")
        resource = cdk.CustomResource(
            scope or self,
            construct_id,
            service_token=self.service_token,
            resource_type=resource_type,
            properties=dict(properties),
        )
        for dep in depends_on:
            resource.node.add_dependency(dep)
        return resource

    # ---- cdk-nag --------------------------------------------------------------------------------

    def logical_id(self, construct: IConstruct) -> str:
        child = construct.node.default_child or construct
        return cdk.Stack.of(self).get_logical_id(child)  # type: ignore[arg-type]

    def _acknowledge_framework(self) -> None:
        """The framework's findings that no prop can avoid, each with a checkable reason."""
        for role in (self.framework_on_event_role, self.framework_complete_role):
            if role is None:
                continue
            for entry, fn in self.functions.items():
                acknowledge(
                    role,
                    f"AwsSolutions-IAM5[Resource::<{self.logical_id(fn)}.Arn>:*]",
                    f"added by aws-cdk-lib's Provider: lambda:InvokeFunction on any version of our own "
                    f"{entry} function (the ARN plus ':*' for versions)",
                )
        waiter = self.provider.node.try_find_child("waiter-state-machine")
        if waiter is None:
            return  # no is_complete: no waiter
        for child in ("framework-isComplete", "framework-onTimeout"):
            fn = self.provider.node.find_child(child)
            acknowledge(
                waiter,
                f"AwsSolutions-IAM5[Resource::<{self.logical_id(fn)}.Arn>:*]",
                f"added by aws-cdk-lib's Provider: the waiter invokes any version of its own {child} function",
            )
        acknowledge(
            waiter,
            "AwsSolutions-SF1",
            "the waiter only loops our is_complete Lambda, whose log group records every poll; waiter logging "
            "would make aws-cdk-lib grant logs:CreateLogDelivery/PutResourcePolicy on '*' to its role",
        )
        acknowledge(waiter, "AwsSolutions-SF2", "custom_resources.Provider exposes no X-Ray option for its waiter")


def _check_timing(
    query_interval: cdk.Duration, total_timeout: cdk.Duration, is_complete_timeout: cdk.Duration, *, waits: bool
) -> int:
    """The handler's wait budget in seconds; ValueError on timings the framework cannot honour."""
    total, interval = total_timeout.to_seconds(), query_interval.to_seconds()
    if total > MAX_TOTAL_TIMEOUT.to_seconds():
        raise ValueError(
            f"total_timeout={total_timeout.to_human_string()} exceeds the Provider framework's limit "
            "of 1 hour: split the work into several resources"
        )
    if interval < MIN_QUERY_INTERVAL.to_seconds():
        raise ValueError(
            f"query_interval={query_interval.to_human_string()} is below {MIN_QUERY_INTERVAL.to_human_string()}"
        )
    budget = int(total - interval - is_complete_timeout.to_seconds() - BUDGET_SLACK.to_seconds())
    if waits and budget < 60:
        raise ValueError(
            f"total_timeout={total_timeout.to_human_string()} leaves no time to wait with "
            f"query_interval={query_interval.to_human_string()} and is_complete_timeout="
            f"{is_complete_timeout.to_human_string()}"
        )
    return max(budget, 0)


def _check_network(
    vpc: ec2.IVpc | None, subnets: ec2.SubnetSelection | None, security_group: ec2.ISecurityGroup | None
) -> bool:
    given = [x is not None for x in (vpc, subnets, security_group)]
    if any(given) and not all(given):
        raise ValueError(
            "vpc, vpc_subnets and security_group go together: give all three (handlers in the VPC) or none"
        )
    return all(given)
