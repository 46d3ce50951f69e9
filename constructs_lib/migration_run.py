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

from collections.abc import Sequence

from aws_cdk import Aws, CustomResource, Duration, Stack, Token
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct, IDependable

from constructs_lib.custom_resource_provider import MAX_TOTAL_TIMEOUT, CustomResourceProvider
from dag_runner import plan
from dag_runner.airflow_api import DEFAULT_MAX_PATH, run_path
from mwaa_common import retention

RESOURCE_TYPE = "Custom::MwaaDagRun"
DEFAULT_QUERY_INTERVAL = Duration.seconds(30)
DEFAULT_TOTAL_TIMEOUT = Duration.minutes(55)
DEFAULT_HANDLER_TIMEOUT = Duration.minutes(3)


class MigrationRunner(CustomResourceProvider):
    """The DAG-run Provider. Keyword-only props:

    environment_names: the MWAA environments (source and target, 1-2) the Lambdas may call;
        IAM is scoped to exactly these.
    airflow_role: Airflow role in the InvokeRestApi resource ARN (only ``Op``: the least role that
        can unpause a DAG, trigger it and read its task instances).
    cli_token_fallback: also grant ``airflow:CreateCliToken`` and let the handler fall back to the
        CLI token when InvokeRestApi is denied or missing. Off by default: a CLI token acts with
        the environment's full CLI rights, past the Op-role scoping and any SCP on InvokeRestApi.
    query_interval / total_timeout: Provider polling; total_timeout at most 1 hour.
    private_webserver: the webserver is PRIVATE_ONLY: the handler Lambdas run in ``vpc``
        ``vpc_subnets`` with ``security_group`` (which must reach the webserver endpoint and the
        airflow.env and cloudformation interface endpoints on 443).
    log_retention_days: of the Lambdas' and the framework's log group.
    handler_timeout: of each handler run; the wait budget leaves room for one more run.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment_names: Sequence[str],
        airflow_role: str = plan.DEFAULT_AIRFLOW_ROLE,
        cli_token_fallback: bool = False,
        query_interval: Duration = DEFAULT_QUERY_INTERVAL,
        total_timeout: Duration = DEFAULT_TOTAL_TIMEOUT,
        private_webserver: bool = False,
        vpc: ec2.IVpc | None = None,
        vpc_subnets: ec2.SubnetSelection | None = None,
        security_group: ec2.ISecurityGroup | None = None,
        log_retention_days: int = retention.CUSTOM_RESOURCE_LOG_DAYS,
        handler_timeout: Duration = DEFAULT_HANDLER_TIMEOUT,
    ) -> None:
        names = list(environment_names)
        if not 1 <= len(names) <= 2:
            raise ValueError(f"environment_names={names!r}: give the source and target (1-2 names)")
        if airflow_role not in plan.AIRFLOW_ROLES:
            raise ValueError(f"airflow_role={airflow_role!r} is not allowed; allowed: {', '.join(plan.AIRFLOW_ROLES)}")
        if total_timeout.to_seconds() > MAX_TOTAL_TIMEOUT.to_seconds():
            raise ValueError(
                f"total_timeout={total_timeout.to_human_string()} exceeds the Provider "
                "framework's limit of 1 hour: split the work into several resources"
            )
        if private_webserver and (vpc is None or vpc_subnets is None or security_group is None):
            raise ValueError(
                "private_webserver=True needs vpc, vpc_subnets and security_group: a "
                "PRIVATE_ONLY webserver is only reachable from inside the VPC"
            )
        if not private_webserver and (vpc or vpc_subnets or security_group):
            raise ValueError("vpc, vpc_subnets and security_group apply only with private_webserver=True")
        stack = Stack.of(scope)
        role_arns = [
            stack.format_arn(service="airflow", resource="role", resource_name=f"{n}/{airflow_role}") for n in names
        ]
        statements = [
            iam.PolicyStatement(sid="InvokeAirflowRestApi", actions=["airflow:InvokeRestApi"], resources=role_arns),
            iam.PolicyStatement(
                sid="DetectStackRollback", actions=["cloudformation:DescribeStacks"], resources=[Aws.STACK_ID]
            ),
        ]
        if cli_token_fallback:
            env_arns = [stack.format_arn(service="airflow", resource="environment", resource_name=n) for n in names]
            statements.append(
                iam.PolicyStatement(sid="CliTokenFallback", actions=["airflow:CreateCliToken"], resources=env_arns)
            )
        network: dict = {}
        if private_webserver:
            network = {"vpc": vpc, "vpc_subnets": vpc_subnets, "security_group": security_group}
        super().__init__(
            scope,
            construct_id,
            handler_module="dag_runner.handler",
            description="DAG runner: trigger and poll the migration DAGs on MWAA",
            statements=statements,
            query_interval=query_interval,
            total_timeout=total_timeout,
            on_event_timeout=handler_timeout,
            is_complete_timeout=handler_timeout,
            log_retention_days=log_retention_days,
            **network,
        )
        self.environment_names = names
        self.airflow_role = airflow_role
        self.cli_token_fallback = cli_token_fallback
        # kept for callers of the old attribute names
        self.on_event_role = self.framework_on_event_role
        self.complete_role = self.framework_complete_role

    def add_dag_run(
        self,
        construct_id: str,
        *,
        environment_name: str,
        airflow_version: str,
        dag_id: str,
        migration_id: str,
        step: str,
        conf: dict,
        rerun_token: str = "",
        depends_on: Sequence[IDependable] = (),
    ) -> CustomResource:
        """One DAG run as a custom resource (``Custom::MwaaDagRun``); see dag_runner.handler.

        ``conf`` may hold tokens (e.g. a bucket name); ``migration_id`` is added to it.
        Attributes: RunId, State, ReportLocation, LogGroup (``resource.get_att_string``).
        """
        if environment_name not in self.environment_names:
            raise ValueError(
                f"environment_name={environment_name!r} is not one of this runner's "
                f"environments {self.environment_names}: IAM would not allow it"
            )
        if step not in plan.STEPS:
            raise ValueError(f"step={step!r} is not allowed; allowed: {', '.join(plan.STEPS)}")
        for field, value in (
            ("migration_id", migration_id),
            ("dag_id", dag_id),
            ("airflow_version", airflow_version),
            ("rerun_token", rerun_token),
        ):
            if Token.is_unresolved(value):
                raise ValueError(f"{field} must be a literal at synth (it names the run), got a token")
        if not plan.MIGRATION_ID_RE.fullmatch(migration_id):
            raise ValueError(f"migration_id={migration_id!r} is not allowed; allowed: [a-z0-9-]{{1,40}}")
        if airflow_version not in plan.versions.VERSIONS:
            plan.versions.info(airflow_version)  # raises with the known versions
        path = run_path(dag_id, plan.run_id(migration_id, step, rerun_token))
        if len(path) > DEFAULT_MAX_PATH:
            raise ValueError(
                f"dag_id={dag_id!r}: the run path {path!r} is {len(path)} characters; "
                f"InvokeRestApi allows {DEFAULT_MAX_PATH}"
            )
        body = dict(conf)
        if body.setdefault("migration_id", migration_id) != migration_id:
            raise ValueError(
                f"conf['migration_id']={body['migration_id']!r} differs from migration_id={migration_id!r}"
            )
        properties = {
            "EnvironmentName": environment_name,
            "AirflowVersion": airflow_version,
            "DagId": dag_id,
            "MigrationId": migration_id,
            "Step": step,
            "Conf": Stack.of(self).to_json_string(body),
            "Role": self.airflow_role,
            "CliTokenFallback": "true" if self.cli_token_fallback else "false",
        }
        if rerun_token:
            properties["RerunToken"] = rerun_token
        return self.add_resource(
            construct_id, resource_type=RESOURCE_TYPE, properties=properties, depends_on=depends_on
        )
