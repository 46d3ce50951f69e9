"""The custom-resource handler's full sequences against botocore's Stubber.

Every stubbed request is checked with expected_params and validated against the real
MWAA / CloudFormation service models; assert_no_pending_responses proves each sequence
made exactly the calls listed.
"""

import copy
import re
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from clone_env import handler as h
from clone_env import planner as p
from tests.clonehelpers import ACCOUNT, REGION, TARGET_ROLE, load_env

NOW = 1_800_000_000
SOURCE = "orders-prod"
TARGET = "orders-prod-2-11"
MIGRATION = "m-2026-11"
TARGET_ARN = f"arn:aws:airflow:{REGION}:{ACCOUNT}:environment/{TARGET}"
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/mwaa-upgrade-target/0a1b2c3d-0000-1111-2222-333344445555"
OURS = p.migration_tags(SOURCE, MIGRATION)


def cfn_props(**changes):
    """Resource properties exactly as CloudFormation delivers them: every scalar a string."""
    props = {
        "ServiceToken": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:provider-framework-onEvent",
        "SourceEnvironmentName": SOURCE,
        "TargetName": TARGET,
        "MigrationId": MIGRATION,
        "Overrides": {
            "AirflowVersion": "2.11.0",
            "ExecutionRoleArn": TARGET_ROLE,
            "MaxWorkers": "12",
            "NetworkConfiguration": {"SubnetIds": ["subnet-0t1", "subnet-0t2"], "SecurityGroupIds": ["sg-0target"]},
            "LoggingConfiguration": {"TaskLogs": {"Enabled": "true", "LogLevel": "WARNING"}},
        },
        "OmitFields": ["StartupScriptS3Path", "StartupScriptS3ObjectVersion"],
        "DeleteOnStackDelete": "false",
        "WaitBudgetSeconds": "3300",
    }
    props.update(changes)
    return props


def event(kind, props=None, *, old=None, physical=None, data=None):
    e = {
        "RequestType": kind,
        "StackId": STACK_ID,
        "RequestId": "req-1",
        "LogicalResourceId": "TargetClone",
        "ResourceType": "Custom::MwaaEnvironmentClone",
        "ResourceProperties": props or cfn_props(),
    }
    if old is not None:
        e["OldResourceProperties"] = old
    if physical is not None:
        e["PhysicalResourceId"] = physical
    if data is not None:
        e["Data"] = data
    return e


def target_env(status="AVAILABLE", *, tags=OURS, version="2.11.0", **extra):
    env = copy.deepcopy(load_env("cfn_created_2_10_3"))
    env.update(
        Name=TARGET,
        Arn=TARGET_ARN,
        Status=status,
        AirflowVersion=version,
        Tags=dict(tags),
        ExecutionRoleArn=TARGET_ROLE,
    )
    env.update(extra)
    return {"Environment": env}


class Aws:
    def __init__(self):
        kw = dict(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
        self.mwaa = boto3.client("mwaa", **kw)
        self.cfn = boto3.client("cloudformation", **kw)
        self.m, self.c = Stubber(self.mwaa), Stubber(self.cfn)
        self.sleeps = []
        self.clock = [0.0]

        def sleep(seconds):
            self.sleeps.append(seconds)
            self.clock[0] += seconds

        self.now = NOW
        self.handler = h.CloneHandler(
            self.mwaa, self.cfn, caller=h.Caller(sleep=sleep, clock=lambda: self.clock[0]), now=lambda: self.now
        )

    # stubs
    def get(self, name, response):
        self.m.add_response("get_environment", response, {"Name": name})

    def not_found(self, name):
        self.m.add_client_error(
            "get_environment",
            "ResourceNotFoundException",
            f"Environment {name} not found",
            404,
            expected_params={"Name": name},
        )

    def stack(self, status):
        self.c.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": "mwaa-upgrade-target",
                        "StackId": STACK_ID,
                        "StackStatus": status,
                        "CreationTime": datetime(2026, 11, 1, tzinfo=UTC),
                    }
                ]
            },
            {"StackName": STACK_ID},
        )


@pytest.fixture
def aws():
    a = Aws()
    with a.m, a.c:
        yield a
        a.m.assert_no_pending_responses()
        a.c.assert_no_pending_responses()


# The request the planner must produce from cfn_created_2_10_3 + cfn_props(), written out
# by hand: read-only fields, aws: tags and log-group ARNs gone, strings coerced.
EXPECTED_CREATE = {
    "Name": TARGET,
    "ExecutionRoleArn": TARGET_ROLE,
    "AirflowVersion": "2.11.0",
    "SourceBucketArn": "arn:aws:s3:::airflow-orders-prod-bucket",
    "DagS3Path": "dags",
    "EnvironmentClass": "mw1.medium",
    "NetworkConfiguration": {"SubnetIds": ["subnet-0t1", "subnet-0t2"], "SecurityGroupIds": ["sg-0target"]},
    "LoggingConfiguration": {
        "DagProcessingLogs": {"Enabled": True, "LogLevel": "INFO"},
        "SchedulerLogs": {"Enabled": True, "LogLevel": "INFO"},
        "TaskLogs": {"Enabled": True, "LogLevel": "WARNING"},
        "WebserverLogs": {"Enabled": True, "LogLevel": "INFO"},
        "WorkerLogs": {"Enabled": True, "LogLevel": "INFO"},
    },
    "WeeklyMaintenanceWindowStart": "SUN:03:30",
    "WebserverAccessMode": "PRIVATE_ONLY",
    "EndpointManagement": "SERVICE",
    "MinWorkers": 2,
    "MaxWorkers": 12,
    "Schedulers": 2,
    "MinWebservers": 2,
    "MaxWebservers": 3,
    "RequirementsS3Path": "requirements/requirements.txt",
    "RequirementsS3ObjectVersion": "3sL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
    "PluginsS3Path": "plugins/plugins.zip",
    "PluginsS3ObjectVersion": "Xx.9pXxLu6M5uJ0h5kQ2kTdL0aCGvZ0_",
    "AirflowConfigurationOptions": {
        "secrets.backend": "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend",
        "secrets.backend_kwargs": (
            '{"connections_prefix": "airflow/connections", "variables_prefix": "airflow/variables"}'
        ),
        "core.default_timezone": "utc",
        "smtp.smtp_password": "hunter2-do-not-print",
    },
    "Tags": {"team": "orders", "cost-center": "cc-4711", **OURS},
}


# --------------------------------------------------------------------------- create / wait


def test_create_then_wait_until_available(aws, caplog):
    aws.not_found(TARGET)
    aws.get(SOURCE, {"Environment": load_env("cfn_created_2_10_3")})
    aws.m.add_response("create_environment", {"Arn": TARGET_ARN}, EXPECTED_CREATE)
    caplog.set_level("INFO")
    result = aws.handler.on_event(event("Create"))
    assert result == {
        "PhysicalResourceId": TARGET,
        "Data": {
            "EnvironmentName": TARGET,
            "Action": "created",
            "EnvironmentArn": TARGET_ARN,
            "StartedAt": str(NOW),
            "WaitDeadline": str(NOW + 3300),
            "WebserverUrl": "unknown",
        },
    }
    assert "hunter2" not in caplog.text  # the plan is logged redacted
    assert "planned CreateEnvironment (redacted)" in caplog.text

    waiting = event("Create", physical=TARGET, data=result["Data"])
    aws.get(TARGET, target_env("CREATING"))
    assert aws.handler.is_complete(waiting) == {"IsComplete": False}
    aws.get(TARGET, target_env("AVAILABLE"))
    done = aws.handler.is_complete(waiting)
    assert done["IsComplete"] is True
    assert done["Data"]["Status"] == "AVAILABLE" and done["Data"]["AirflowVersion"] == "2.11.0"
    # the framework merges is_complete's Data over on_event's: the real host name wins
    assert done["Data"]["WebserverUrl"] == target_env()["Environment"]["WebserverUrl"]
    assert "hunter2" not in str(done) and len(str({**result["Data"], **done["Data"]})) < 4096


def test_resumed_create_adopts_our_environment_and_waits(aws):
    aws.get(TARGET, target_env("CREATING"))
    result = aws.handler.on_event(event("Create"))
    assert result["PhysicalResourceId"] == TARGET and result["Data"]["Action"] == "adopted"
    aws.get(TARGET, target_env("AVAILABLE"))
    assert aws.handler.is_complete(event("Create", physical=TARGET, data=result["Data"]))["IsComplete"]


def test_foreign_environment_with_the_target_name_is_never_touched(aws):
    aws.get(TARGET, target_env("AVAILABLE", tags={"team": "someone-else"}))
    with pytest.raises(
        h.HandlerError,
        match=rf"target name '{TARGET}' is taken by an environment this migration did "
        r"not create .*choose another TargetName",
    ):
        aws.handler.on_event(event("Create"))


def test_environment_of_another_migration_is_foreign(aws):
    aws.get(TARGET, target_env("AVAILABLE", tags=p.migration_tags(SOURCE, "older-run")))
    with pytest.raises(h.HandlerError, match=r"created by migration 'older-run'"):
        aws.handler.on_event(event("Create"))


def test_adopting_a_failed_environment_says_how_to_recover(aws):
    aws.get(
        TARGET,
        target_env(
            "CREATE_FAILED",
            LastUpdate={
                "Status": "FAILED",
                "Error": {"ErrorCode": "INCORRECT_CONFIGURATION", "ErrorMessage": "check the role"},
            },
        ),
    )
    with pytest.raises(h.HandlerError, match=r"CREATE_FAILED: INCORRECT_CONFIGURATION: check the role; delete it"):
        aws.handler.on_event(event("Create"))


def test_create_failed_while_waiting_reports_last_update_error(aws):
    aws.get(
        TARGET,
        target_env(
            "CREATE_FAILED",
            LastUpdate={
                "Status": "FAILED",
                "CreatedAt": datetime(2026, 11, 21, tzinfo=UTC),
                "Error": {
                    "ErrorCode": "INCORRECT_CONFIGURATION",
                    "ErrorMessage": "You may need to check the execution role permissions policy",
                },
            },
        ),
    )
    data = {"EnvironmentName": TARGET, "Action": "created", "WaitDeadline": str(NOW + 3300)}
    with pytest.raises(
        h.HandlerError,
        match=r"is CREATE_FAILED: INCORRECT_CONFIGURATION: You may need to check the "
        r"execution role permissions policy; fix the cause, delete",
    ):
        aws.handler.is_complete(event("Create", physical=TARGET, data=data))


def test_not_found_right_after_create_is_waited_for_then_fails(aws):
    data = {"Action": "created", "StartedAt": str(NOW), "WaitDeadline": str(NOW + 3300)}
    aws.not_found(TARGET)
    assert aws.handler.is_complete(event("Create", physical=TARGET, data=data)) == {"IsComplete": False}
    aws.now = NOW + 600
    aws.not_found(TARGET)
    with pytest.raises(h.HandlerError, match=r"disappeared while waiting"):
        aws.handler.is_complete(event("Create", physical=TARGET, data=data))


def test_unavailable_fails(aws):
    aws.get(TARGET, target_env("UNAVAILABLE"))
    with pytest.raises(h.HandlerError, match=r"is UNAVAILABLE"):
        aws.handler.is_complete(
            event("Create", physical=TARGET, data={"Action": "adopted", "WaitDeadline": str(NOW + 60)})
        )


def test_still_creating_at_the_limit_says_a_redeploy_resumes(aws):
    aws.get(TARGET, target_env("CREATING"))
    aws.now = NOW + 3300
    with pytest.raises(h.HandlerError, match=r"still CREATING .*at most 1 h.*a redeploy adopts it and resumes waiting"):
        aws.handler.is_complete(
            event("Create", physical=TARGET, data={"Action": "created", "WaitDeadline": str(NOW + 3300)})
        )


def test_pending_customer_endpoints_at_the_limit(aws):
    aws.get(TARGET, target_env("PENDING"))
    aws.now = NOW + 4000
    with pytest.raises(h.HandlerError, match=r"still PENDING .*create its VPC endpoints"):
        aws.handler.is_complete(
            event("Create", physical=TARGET, data={"Action": "created", "WaitDeadline": str(NOW + 3300)})
        )


def test_create_error_after_a_request_that_went_through_adopts(aws):
    aws.not_found(TARGET)
    aws.get(SOURCE, {"Environment": load_env("cfn_created_2_10_3")})
    aws.m.add_client_error(
        "create_environment",
        "ValidationException",
        f"Environment {TARGET} already exists",
        400,
        expected_params=EXPECTED_CREATE,
    )
    aws.get(TARGET, target_env("CREATING"))
    assert aws.handler.on_event(event("Create"))["Data"]["Action"] == "adopted"


# --------------------------------------------------------------------------- bad input


def test_missing_source_names_the_region(aws):
    aws.not_found(TARGET)
    aws.not_found(SOURCE)
    with pytest.raises(h.HandlerError, match=rf"source environment '{SOURCE}' not found in region {REGION}"):
        aws.handler.on_event(event("Create"))


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"AirflowVersion": "2.9.2"}, r"AirflowVersion 2\.10\.3 -> 2\.9\.2 is not allowed: downgrades"),
        (
            {"EnvironmentClass": "mw1.micro"},
            r"mw1\.micro.*Schedulers=2 is outside mw1\.micro's schedulers range 1\.\.1",
        ),
        ({"AirflowVersion": "1.10.12"}, r"Airflow 1\.10\.x is retired"),
    ],
)
def test_plan_errors_fail_before_any_create(aws, overrides, message):
    aws.not_found(TARGET)
    aws.get(SOURCE, {"Environment": load_env("cfn_created_2_10_3")})
    props = cfn_props()
    props["Overrides"] = {**props["Overrides"], **overrides}
    with pytest.raises(h.HandlerError, match=rf"cannot clone '{SOURCE}' into '{TARGET}': .*{message}"):
        aws.handler.on_event(event("Create", props))


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"TargetName": "1bad"}, r"TargetName='1bad' is not a valid MWAA environment name"),
        ({"TargetName": SOURCE}, r"equals SourceEnvironmentName"),
        ({"MigrationId": "Upper_Case"}, r"MigrationId='Upper_Case' is not allowed"),
        ({"DeleteOnStackDelete": "yes"}, r"DeleteOnStackDelete='yes' is not allowed: use true or false"),
        ({"WaitBudgetSeconds": "7200"}, r"WaitBudgetSeconds=7200 is outside 60\.\.3600"),
        ({"Overides": {}}, r"unknown resource properties \['Overides'\]"),
        ({"OmitFields": ["Name"]}, r"OmitFields entry 'Name'"),
        ({"OmitFields": ["MaxWorkers"]}, r"MaxWorkers is both in Overrides and in OmitFields"),
        ({"Overrides": {"Name": "other", "ExecutionRoleArn": TARGET_ROLE}}, r"Overrides\.Name='other' differs"),
        ({"Overrides": {"MaxWorkers": "many"}}, r"Overrides\.MaxWorkers must be an integer, got 'many'"),
    ],
)
def test_bad_properties_are_named(aws, changes, message):
    with pytest.raises(h.HandlerError, match=message):
        aws.handler.on_event(event("Create", cfn_props(**changes)))


def test_properties_are_coerced_from_cloudformation_strings():
    props = h.parse_properties(cfn_props(DeleteOnStackDelete="True", WaitBudgetSeconds=" 600 "))
    assert props["DeleteOnStackDelete"] is True and props["WaitBudgetSeconds"] == 600
    assert props["Overrides"]["MaxWorkers"] == 12
    assert props["Overrides"]["LoggingConfiguration"]["TaskLogs"]["Enabled"] is True
    assert props["Overrides"]["StartupScriptS3Path"] is None and props["Overrides"]["Name"] == TARGET


# --------------------------------------------------------------------------- retries


def test_throttling_is_retried_with_backoff(aws):
    aws.not_found(TARGET)
    for _ in range(2):
        aws.m.add_client_error(
            "get_environment", "ThrottlingException", "Rate exceeded", 429, expected_params={"Name": SOURCE}
        )
    aws.get(SOURCE, {"Environment": load_env("cfn_created_2_10_3")})
    aws.m.add_response("create_environment", {"Arn": TARGET_ARN}, EXPECTED_CREATE)
    assert aws.handler.on_event(event("Create"))["Data"]["Action"] == "created"
    assert aws.sleeps == [2.0, 4.0]


def test_role_propagation_validation_exception_is_retried(aws):
    aws.not_found(TARGET)
    aws.get(SOURCE, {"Environment": load_env("cfn_created_2_10_3")})
    aws.m.add_client_error(
        "create_environment",
        "ValidationException",
        f"Failed to assume role {TARGET_ROLE}. This could be due to the role's trust policy. Please ensure your role "
        "is assumable by 'airflow-env.amazonaws.com' Service Principal and try again.",
        400,
        expected_params=EXPECTED_CREATE,
    )
    aws.m.add_client_error(
        "create_environment",
        "ValidationException",
        "Provided role does not have sufficient permissions for s3 location airflow-x/dags",
        400,
        expected_params=EXPECTED_CREATE,
    )
    aws.m.add_response("create_environment", {"Arn": TARGET_ARN}, EXPECTED_CREATE)
    assert aws.handler.on_event(event("Create"))["Data"]["Action"] == "created"
    assert aws.sleeps == [2.0, 4.0]


def test_other_validation_exceptions_fail_at_once(aws):
    aws.not_found(TARGET)
    aws.get(SOURCE, {"Environment": load_env("cfn_created_2_10_3")})
    aws.m.add_client_error(
        "create_environment",
        "ValidationException",
        "Subnets must be in different Availability Zones",
        400,
        expected_params=EXPECTED_CREATE,
    )
    aws.not_found(TARGET)
    with pytest.raises(
        h.HandlerError,
        match=r"CreateEnvironment 'orders-prod-2-11' failed: ValidationException: "
        r"Subnets must be in different Availability Zones$",
    ):
        aws.handler.on_event(event("Create"))
    assert aws.sleeps == []


def test_retries_stop_at_the_budget_and_say_so(aws):
    aws.handler.caller.budget = 29
    aws.not_found(TARGET)
    aws.get(SOURCE, {"Environment": load_env("cfn_created_2_10_3")})
    message = (
        f"Failed to assume role {TARGET_ROLE}. Please ensure your role is assumable by 'airflow-env.amazonaws.com'"
    )
    for _ in range(4):  # 2 + 4 + 8 s fit in 29 s, the next 16 s would not
        aws.m.add_client_error(
            "create_environment", "ValidationException", message, 400, expected_params=EXPECTED_CREATE
        )
    aws.not_found(TARGET)
    with pytest.raises(
        h.HandlerError,
        match=r"Failed to assume role .*\(retried for 14 s: the execution role's trust "
        r"policy has not propagated in IAM yet\)",
    ):
        aws.handler.on_event(event("Create"))
    assert aws.sleeps == [2.0, 4.0, 8.0]


def test_validation_exception_on_a_read_is_never_retried():
    exc = h.ClientError(
        {"Error": {"Code": "ValidationException", "Message": "Failed to assume role"}}, "GetEnvironment"
    )
    assert h.transient_reason(exc, "get_environment") is None
    assert h.transient_reason(exc, "create_environment") is not None


# --------------------------------------------------------------------------- update


def test_update_in_place_then_wait(aws):
    old, new = cfn_props(), cfn_props()
    old["Overrides"] = {**old["Overrides"], "AirflowVersion": "2.10.3"}
    aws.stack("UPDATE_IN_PROGRESS")
    aws.get(TARGET, target_env("AVAILABLE", version="2.10.3"))
    aws.m.add_response("update_environment", {"Arn": TARGET_ARN}, {"Name": TARGET, "AirflowVersion": "2.11.0"})
    result = aws.handler.on_event(event("Update", new, old=old, physical=TARGET))
    assert result["PhysicalResourceId"] == TARGET and result["Data"]["Action"] == "updating"

    waiting = event("Update", new, old=old, physical=TARGET, data=result["Data"])
    aws.get(TARGET, target_env("UPDATING", version="2.10.3"))
    assert aws.handler.is_complete(waiting) == {"IsComplete": False}
    # AVAILABLE but the last update is an older one: ours has not shown up yet
    aws.get(
        TARGET,
        target_env(
            "AVAILABLE",
            version="2.10.3",
            LastUpdate={"Status": "SUCCESS", "CreatedAt": datetime(2025, 6, 2, tzinfo=UTC)},
        ),
    )
    assert aws.handler.is_complete(waiting) == {"IsComplete": False}
    aws.get(
        TARGET,
        target_env("AVAILABLE", LastUpdate={"Status": "SUCCESS", "CreatedAt": datetime.fromtimestamp(NOW + 5, tz=UTC)}),
    )
    assert aws.handler.is_complete(waiting)["Data"]["AirflowVersion"] == "2.11.0"


def test_failed_update_reports_the_error(aws):
    aws.get(
        TARGET,
        target_env(
            "UPDATE_FAILED",
            LastUpdate={
                "Status": "FAILED",
                "Error": {"ErrorCode": "UPDATE_FAILED", "ErrorMessage": "requirements failed"},
            },
        ),
    )
    with pytest.raises(
        h.HandlerError, match=r"UPDATE_FAILED: UPDATE_FAILED: requirements failed; MWAA rolled the update"
    ):
        aws.handler.is_complete(
            event("Update", physical=TARGET, data={"Action": "updating", "WaitDeadline": str(NOW + 60)})
        )


def test_rollback_update_starts_nothing(aws):
    failed, previous = cfn_props(), cfn_props()
    previous["Overrides"] = {**previous["Overrides"], "AirflowVersion": "2.10.3"}
    aws.stack("UPDATE_ROLLBACK_IN_PROGRESS")
    aws.get(TARGET, target_env("AVAILABLE", version="2.11.0"))
    result = aws.handler.on_event(event("Update", previous, old=failed, physical=TARGET))
    assert result["Data"]["Action"] == "unchanged"
    assert aws.handler.is_complete(event("Update", previous, old=failed, physical=TARGET, data=result["Data"])) == {
        "IsComplete": True
    }


def test_update_refused_with_reason(aws):
    old, new = cfn_props(), cfn_props()
    new["Overrides"] = {**new["Overrides"], "AirflowVersion": "3.0.6"}
    old["Overrides"] = {**old["Overrides"], "AirflowVersion": "2.10.3"}
    aws.stack("UPDATE_IN_PROGRESS")
    aws.get(TARGET, target_env("AVAILABLE", version="2.10.3"))
    with pytest.raises(
        h.HandlerError,
        match=r"cannot update 'orders-prod-2-11': AirflowVersion 2\.10\.3 -> 3\.0\.6 "
        r"cannot be done in place",
    ):
        aws.handler.on_event(event("Update", new, old=old, physical=TARGET))


def test_name_change_creates_the_new_environment(aws):
    new = cfn_props(TargetName="orders-prod-3")
    expected = {**EXPECTED_CREATE, "Name": "orders-prod-3"}
    aws.stack("UPDATE_IN_PROGRESS")
    aws.not_found("orders-prod-3")
    aws.get(SOURCE, {"Environment": load_env("cfn_created_2_10_3")})
    aws.m.add_response("create_environment", {"Arn": TARGET_ARN.replace(TARGET, "orders-prod-3")}, expected)
    result = aws.handler.on_event(event("Update", new, old=cfn_props(), physical=TARGET))
    assert result["PhysicalResourceId"] == "orders-prod-3"


def test_rollback_of_a_name_change_only_adopts(aws):
    aws.stack("UPDATE_ROLLBACK_IN_PROGRESS")
    aws.get(TARGET, target_env("AVAILABLE"))
    result = aws.handler.on_event(
        event("Update", cfn_props(), old=cfn_props(TargetName="orders-prod-3"), physical="orders-prod-3")
    )
    assert result["PhysicalResourceId"] == TARGET and result["Data"]["Action"] == "adopted"


def test_migration_id_change_retags(aws):
    aws.stack("UPDATE_IN_PROGRESS")
    aws.get(TARGET, target_env("AVAILABLE"))
    aws.m.add_response("tag_resource", {}, {"ResourceArn": TARGET_ARN, "Tags": {p.TAG_MIGRATION_ID: "m-next"}})
    result = aws.handler.on_event(event("Update", cfn_props(MigrationId="m-next"), old=cfn_props(), physical=TARGET))
    assert result["Data"]["Action"] == "retagged"
    # no waiter runs after a retag: on_event's Data alone must carry what the stack GetAtts
    assert result["Data"]["WebserverUrl"] == target_env()["Environment"]["WebserverUrl"]


def test_every_successful_create_or_update_response_carries_webserver_url(aws):
    """The target stack outputs GetAtt WebserverUrl; a response without the key fails the
    deployment ("Vendor response doesn't contain WebserverUrl"), so none may lack it."""
    aws.stack("UPDATE_ROLLBACK_IN_PROGRESS")
    aws.not_found(TARGET)  # a rollback whose environment is gone: nothing to read the URL from
    result = aws.handler.on_event(
        event(
            "Update",
            cfn_props(),
            old=cfn_props(Overrides={**cfn_props()["Overrides"], "MaxWorkers": "10"}),
            physical=TARGET,
        )
    )
    assert result["Data"]["Action"] == "unchanged" and result["Data"]["WebserverUrl"] == "unknown"
    assert aws.handler.is_complete(event("Update", physical=TARGET, data=result["Data"])) == {"IsComplete": True}


# --------------------------------------------------------------------------- delete


def test_delete_keeps_the_environment_by_default(aws):
    result = aws.handler.on_event(event("Delete", physical=TARGET))
    assert result == {"PhysicalResourceId": TARGET, "Data": {"EnvironmentName": TARGET, "Action": "retained"}}
    assert aws.handler.is_complete(event("Delete", physical=TARGET, data=result["Data"])) == {"IsComplete": True}


def test_delete_requested_deletes_our_environment_and_waits(aws):
    props = cfn_props(DeleteOnStackDelete="true")
    aws.stack("DELETE_IN_PROGRESS")
    aws.get(TARGET, target_env("AVAILABLE"))
    aws.m.add_response("delete_environment", {}, {"Name": TARGET})
    result = aws.handler.on_event(event("Delete", props, physical=TARGET))
    assert result["Data"]["Action"] == "deleting"
    waiting = event("Delete", props, physical=TARGET, data=result["Data"])
    aws.get(TARGET, target_env("DELETING"))
    assert aws.handler.is_complete(waiting) == {"IsComplete": False}
    aws.not_found(TARGET)
    assert aws.handler.is_complete(waiting) == {"IsComplete": True, "Data": {"Status": "DELETED"}}


def test_delete_requested_never_deletes_a_foreign_environment(aws):
    aws.stack("DELETE_IN_PROGRESS")
    aws.get(TARGET, target_env("AVAILABLE", tags={"team": "other"}))
    result = aws.handler.on_event(event("Delete", cfn_props(DeleteOnStackDelete="true"), physical=TARGET))
    assert result["Data"]["Action"] == "retained"


@pytest.mark.parametrize(
    "status",
    ["ROLLBACK_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"],
)
def test_delete_during_rollback_or_replacement_keeps_it(aws, status):
    aws.stack(status)
    result = aws.handler.on_event(event("Delete", cfn_props(DeleteOnStackDelete="true"), physical=TARGET))
    assert result["Data"]["Action"] == "retained"


def test_delete_after_a_failed_create_that_never_named_anything(aws):
    marker = "AWSCDK::CustomResourceProviderFramework::CREATE_FAILED"
    assert (
        aws.handler.on_event(event("Delete", cfn_props(DeleteOnStackDelete="true"), physical=marker))["Data"]["Action"]
        == "retained"
    )


# --------------------------------------------------------------------------- entry points


def test_lambda_entry_points_use_the_module_clients(aws, monkeypatch):
    monkeypatch.setattr(h, "_clients", lambda: (aws.mwaa, aws.cfn))

    class Context:
        @staticmethod
        def get_remaining_time_in_millis():
            return 300_000

    assert h.on_event(event("Delete", physical=TARGET), Context())["Data"]["Action"] == "retained"
    assert h.is_complete(event("Delete", physical=TARGET, data={"Action": "retained"}), Context()) == {
        "IsComplete": True
    }


# --------------------------------------------------------------------------- hardening (issue 12)


@pytest.mark.parametrize(
    "status", ["UNAVAILABLE", "CREATE_FAILED", "UPDATING", "DELETING", "MAINTENANCE", "UPDATE_FAILED", "CREATING"]
)
def test_source_not_available_is_not_cloned(aws, status):
    """Item 2: before, a source in any status was cloned; now only AVAILABLE, named in the message."""
    aws.not_found(TARGET)
    source = {**load_env("cfn_created_2_10_3"), "Status": status}
    aws.get(SOURCE, {"Environment": source})
    with pytest.raises(
        h.HandlerError,
        match=rf"source environment '{SOURCE}' is {status}.*cloned only when "
        "AVAILABLE",
    ):
        aws.handler.on_event(event("Create"))  # no create_environment stubbed: none may happen


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda e: e.pop("StackId"), "StackId is missing"),
        (lambda e: e.update(StackId="not-an-arn"), "StackId='not-an-arn' is not a CloudFormation stack ARN"),
        (lambda e: e.update(RequestType="Upsert"), "RequestType='Upsert'; allowed: Create, Update, Delete"),
        (lambda e: e.pop("PhysicalResourceId"), "PhysicalResourceId is missing"),
        (lambda e: e.pop("OldResourceProperties"), "OldResourceProperties is missing"),
        (lambda e: e.update(ResourceProperties="x"), "ResourceProperties must be an object"),
    ],
)
def test_malformed_events_fail_with_a_clear_message(aws, change, message):
    """Item 14: before, these raised KeyError/TypeError tracebacks from deep inside."""
    ev = event("Update", cfn_props(), old=cfn_props(), physical=TARGET)
    change(ev)
    with pytest.raises(h.HandlerError, match=rf"malformed custom-resource event: {re.escape(message)}"):
        aws.handler.on_event(ev)


@pytest.mark.parametrize(
    "data,message",
    [
        ({"Action": "created", "WaitDeadline": "soon"}, "Data.WaitDeadline='soon' is not a number"),
        ({"Action": "created", "StartedAt": "yesterday"}, "Data.StartedAt='yesterday' is not a number"),
        ({"Action": "updating", "UpdateRequestedAt": "nan"}, "Data.UpdateRequestedAt='nan' is not a finite number"),
    ],
)
def test_malformed_waiter_data_fails_with_a_clear_message(aws, data, message):
    with pytest.raises(h.HandlerError, match=re.escape(message)):
        aws.handler.is_complete(event("Create", physical=TARGET, data=data))


def test_waiter_event_without_physical_id_fails_clearly(aws):
    with pytest.raises(h.HandlerError, match="PhysicalResourceId is missing"):
        aws.handler.is_complete(event("Create", data={"Action": "created"}))


def _replaced_handler(aws):
    return h.CloneHandler(aws.mwaa, aws.cfn, caller=aws.handler.caller, now=lambda: aws.now, replaced_target=TARGET)


def test_replaced_target_is_deleted_after_a_successful_rename_when_opted_in(aws):
    """Item 5: with delete_replaced_target the old target goes once the rename succeeded."""
    aws.stack("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
    aws.get(TARGET, target_env("AVAILABLE"))
    aws.m.add_response("delete_environment", {}, {"Name": TARGET})
    result = _replaced_handler(aws).on_event(event("Delete", cfn_props(), physical=TARGET))
    assert result["Data"]["Action"] == "deletion-requested"
    # the cleanup is not held while MWAA deletes it
    assert _replaced_handler(aws).is_complete(event("Delete", physical=TARGET, data=result["Data"])) == {
        "IsComplete": True
    }


@pytest.mark.parametrize("status", ["UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_IN_PROGRESS"])
def test_replaced_target_is_kept_unless_the_update_succeeded(aws, status):
    aws.stack(status)
    result = _replaced_handler(aws).on_event(event("Delete", cfn_props(), physical=TARGET))
    assert result["Data"]["Action"] == "retained"


def test_replaced_target_without_our_tags_is_never_deleted(aws):
    aws.stack("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
    aws.get(TARGET, target_env("AVAILABLE", tags={"team": "data"}))
    result = _replaced_handler(aws).on_event(event("Delete", cfn_props(), physical=TARGET))
    assert result["Data"]["Action"] == "retained"


def test_without_the_opt_in_a_renamed_target_is_kept(aws):
    result = aws.handler.on_event(event("Delete", cfn_props(), physical=TARGET))
    assert result["Data"]["Action"] == "retained"
