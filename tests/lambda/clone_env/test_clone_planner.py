"""The clone planner against realistic GetEnvironment payloads (fixtures/)."""

import copy
import json

import pytest

from clone_env import planner as p
from tests.clonehelpers import ACCOUNT, REGION, TARGET_ROLE, load_env

TAGS = p.migration_tags("src", "m-2026-11")
NEW_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/aaaabbbb-1111-2222-3333-444455556666"


def base_overrides(**extra):
    return {"Name": "target-env", "ExecutionRoleArn": TARGET_ROLE, **extra}


def walk(value):
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, v
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


# fixture, overrides, expected (subset of the request), expected upgrade path
GOOD = [
    (
        "cfn_created_2_10_3",
        base_overrides(AirflowVersion="2.11.0"),
        {
            "AirflowVersion": "2.11.0",
            "EnvironmentClass": "mw1.medium",
            "EndpointManagement": "SERVICE",
            "Tags": {"team": "orders", "cost-center": "cc-4711", **TAGS},
        },
        "in_place",
    ),
    (
        "cfn_created_2_10_3",
        base_overrides(AirflowVersion="3.0.6", MaxWorkers="12", Schedulers="3"),
        {"AirflowVersion": "3.0.6", "MaxWorkers": 12, "Schedulers": 3},
        "new_environment",
    ),
    (
        "console_created_2_8_1",
        base_overrides(AirflowVersion="2.10.3"),
        {
            "Tags": TAGS,
            "WebserverAccessMode": "PUBLIC_ONLY",
            "LoggingConfiguration": {
                "DagProcessingLogs": {"Enabled": False, "LogLevel": "INFO"},
                "SchedulerLogs": {"Enabled": True, "LogLevel": "INFO"},
                "TaskLogs": {"Enabled": True, "LogLevel": "WARNING"},
                "WebserverLogs": {"Enabled": False, "LogLevel": "INFO"},
                "WorkerLogs": {"Enabled": False, "LogLevel": "INFO"},
            },
        },
        "in_place",
    ),
    (
        "v1_10_12_contrib_secrets",
        base_overrides(AirflowVersion="2.7.2"),
        {
            "AirflowConfigurationOptions": {
                "secrets.backend": "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend",
                "secrets.backend_kwargs": '{"connections_prefix": "airflow/connections", '
                '"variables_prefix": "airflow/variables"}',
            },
            "Tags": {"owner": "etl", **TAGS},
        },
        "new_environment",
    ),
    (
        "customer_endpoints_2_9_2",
        base_overrides(AirflowVersion="2.10.3", EndpointManagement="SERVICE"),
        {"EndpointManagement": "SERVICE", "EnvironmentClass": "mw1.large"},
        "in_place",
    ),
    (
        "customer_endpoints_2_9_2",
        base_overrides(AirflowVersion="2.10.3", EndpointManagement="CUSTOMER"),
        {"EndpointManagement": "CUSTOMER"},
        "in_place",
    ),
    (
        "micro_2_10_3",
        base_overrides(AirflowVersion="2.11.0"),
        {
            "EnvironmentClass": "mw1.micro",
            "Schedulers": 1,
            "MinWorkers": 1,
            "MaxWorkers": 1,
            "MinWebservers": 1,
            "MaxWebservers": 1,
            "Tags": TAGS,
        },
        "in_place",
    ),
    (
        "micro_2_10_3",
        base_overrides(
            AirflowVersion="2.11.0",
            EnvironmentClass="mw1.small",
            Schedulers=2,
            MaxWorkers=4,
            MinWebservers=2,
            MaxWebservers=2,
        ),
        {"EnvironmentClass": "mw1.small", "Schedulers": 2, "MaxWorkers": 4},
        "in_place",
    ),
    ("kms_2_11_0", base_overrides(AirflowVersion="3.0.6", KmsKey=NEW_KEY), {"KmsKey": NEW_KEY}, "in_place"),
    ("kms_2_11_0", base_overrides(AirflowVersion="3.0.6", KmsKey=None), {}, "in_place"),
    (
        "kms_2_11_0",
        base_overrides(KmsKey=load_env("kms_2_11_0")["KmsKey"]),
        {"AirflowVersion": "2.11.0", "KmsKey": load_env("kms_2_11_0")["KmsKey"]},
        "new_environment",
    ),
]


@pytest.mark.parametrize(
    "fixture,overrides,expected,path", GOOD, ids=[f"{g[0]}->{g[1].get('AirflowVersion', 'same')}" for g in GOOD]
)
def test_plan_create(fixture, overrides, expected, path):
    source = load_env(fixture)
    request = p.plan_create(source, overrides, migration_tags=TAGS)
    assert p.check_plan(request, source["AirflowVersion"]).path == path
    for key, value in expected.items():
        assert request[key] == value, key
    # invariants of every plan
    assert set(request) <= p.create_parameters()
    assert not set(request) & {
        "Arn",
        "Status",
        "CreatedAt",
        "LastUpdate",
        "ServiceRoleArn",
        "WebserverUrl",
        "CeleryExecutorQueue",
        "DatabaseVpcEndpointService",
        "WebserverVpcEndpointService",
    }
    assert not [k for k, _ in walk(request) if k == "CloudWatchLogGroupArn"]
    assert not [k for k in request.get("Tags", {}) if k.startswith("aws:")]
    assert request.get("Tags") != {}
    assert request["Name"] == "target-env" and request["ExecutionRoleArn"] == TARGET_ROLE
    if "KmsKey" in overrides and overrides["KmsKey"] is None:
        assert "KmsKey" not in request


def test_cloudformation_tags_dropped_and_all_five_log_types_rebuilt():
    source = load_env("cfn_created_2_10_3")
    assert len(source["LoggingConfiguration"]) == 5
    request = p.plan_create(source, base_overrides(AirflowVersion="2.11.0"), migration_tags=TAGS)
    assert request["LoggingConfiguration"] == {
        t: {"Enabled": True, "LogLevel": "INFO"}
        for t in ("DagProcessingLogs", "SchedulerLogs", "TaskLogs", "WebserverLogs", "WorkerLogs")
    }
    assert sorted(request["Tags"]) == sorted(["team", "cost-center", *TAGS])
    # the source is not modified
    assert source == load_env("cfn_created_2_10_3")


def test_null_maps_drop_all_source_entries():
    request = p.plan_create(
        load_env("cfn_created_2_10_3"), base_overrides(Tags=None, AirflowConfigurationOptions=None), migration_tags=TAGS
    )
    assert request["Tags"] == TAGS and "AirflowConfigurationOptions" not in request


def test_empty_tags_are_omitted():
    request = p.plan_create(load_env("console_created_2_8_1"), base_overrides(), migration_tags={})
    assert "Tags" not in request
    assert "AirflowConfigurationOptions" not in request  # the console's empty map is not sent


def test_read_only_fields_come_from_the_model():
    import botocore.session

    model = botocore.session.get_session().get_service_model("mwaa")
    assert p.create_parameters() == set(model.operation_model("CreateEnvironment").input_shape.members)
    assert p.read_only_fields(load_env("cfn_created_2_10_3")) == sorted(
        [
            "Arn",
            "CeleryExecutorQueue",
            "CreatedAt",
            "DatabaseVpcEndpointService",
            "LastUpdate",
            "ServiceRoleArn",
            "Status",
            "WebserverUrl",
            "WebserverVpcEndpointService",
        ]
    )
    assert {"KmsKey", "EndpointManagement", "Tags"} <= p.create_only_parameters()
    assert "AirflowVersion" not in p.create_only_parameters()


def test_secrets_backend_rename_only_from_1_10_to_2():
    contrib = "airflow.contrib.secrets.aws_secrets_manager.SecretsManagerBackend"
    opts = {"secrets.backend": contrib, "core.x": "y"}
    assert p.apply_option_renames(opts, "1.10.12", "2.7.2")["secrets.backend"].startswith("airflow.providers.")
    assert p.apply_option_renames(opts, "1.10.12", "1.10.12")["secrets.backend"] == contrib
    assert p.apply_option_renames(opts, "2.10.3", "2.11.0")["secrets.backend"] == contrib
    assert opts["secrets.backend"] == contrib  # input untouched


def test_explicit_override_beats_the_rename():
    request = p.plan_create(
        load_env("v1_10_12_contrib_secrets"),
        base_overrides(AirflowVersion="2.7.2", AirflowConfigurationOptions={"secrets.backend": "my.Backend"}),
        migration_tags=TAGS,
    )
    assert request["AirflowConfigurationOptions"]["secrets.backend"] == "my.Backend"


def test_override_merging_and_omission():
    source = load_env("cfn_created_2_10_3")
    request = p.plan_create(
        source,
        base_overrides(
            AirflowVersion="2.11.0",
            AirflowConfigurationOptions={"smtp.smtp_password": None, "core.dag_concurrency": "8"},
            Tags={"team": None, "stage": "prod"},
            PluginsS3Path=None,
            PluginsS3ObjectVersion=None,
            LoggingConfiguration={"TaskLogs": {"LogLevel": "ERROR"}},
            NetworkConfiguration={"SubnetIds": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-9"]},
        ),
        migration_tags=TAGS,
    )
    opts = request["AirflowConfigurationOptions"]
    assert "smtp.smtp_password" not in opts and opts["core.dag_concurrency"] == "8"
    assert opts["core.default_timezone"] == "utc"
    assert "team" not in request["Tags"] and request["Tags"]["stage"] == "prod"
    assert "PluginsS3Path" not in request and "PluginsS3ObjectVersion" not in request
    assert request["LoggingConfiguration"]["TaskLogs"] == {"Enabled": True, "LogLevel": "ERROR"}
    assert request["NetworkConfiguration"] == {"SubnetIds": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-9"]}


BAD = [
    ("customer_endpoints_2_9_2", base_overrides(AirflowVersion="2.10.3"), r"EndpointManagement=CUSTOMER.*PENDING"),
    ("kms_2_11_0", base_overrides(AirflowVersion="3.0.6"), r"Overrides\.KmsKey"),
    ("cfn_created_2_10_3", {"ExecutionRoleArn": TARGET_ROLE}, r"Overrides\.Name"),
    ("cfn_created_2_10_3", {"Name": "orders-prod", "ExecutionRoleArn": TARGET_ROLE}, r"source environment's own name"),
    ("cfn_created_2_10_3", {"Name": "t"}, r"Overrides\.ExecutionRoleArn is required"),
    ("cfn_created_2_10_3", base_overrides(MaxWorkers="ten"), r"Overrides\.MaxWorkers must be an integer, got 'ten'"),
    (
        "cfn_created_2_10_3",
        base_overrides(Foo=1),
        r"Overrides\.Foo is not a CreateEnvironment parameter; allowed: .*AirflowVersion",
    ),
    (
        "cfn_created_2_10_3",
        base_overrides(LoggingConfiguration={"TaskLogs": {"Enabled": "yes"}}),
        r"TaskLogs\.Enabled must be true or false",
    ),
    ("cfn_created_2_10_3", base_overrides(AirflowVersion=None), r"AirflowVersion=null"),
]


@pytest.mark.parametrize("fixture,overrides,message", BAD)
def test_plan_create_refuses(fixture, overrides, message):
    with pytest.raises(p.PlanError, match=message):
        p.plan_create(load_env(fixture), overrides, migration_tags=TAGS)


CHECK_BAD = [
    ("kms_2_11_0", dict(KmsKey=None, AirflowVersion="2.10.3"), r"2\.11\.0 -> 2\.10\.3 is not allowed: downgrades"),
    ("v1_10_12_contrib_secrets", {}, r"1\.10\.12 -> 1\.10\.12 is not allowed: Airflow 1\.10\.x is retired"),
    ("cfn_created_2_10_3", dict(AirflowVersion="2.6.3"), r"unknown Airflow version '2\.6\.3'; known: .*2\.7\.2"),
    (
        "cfn_created_2_10_3",
        dict(AirflowVersion="2.11.0", EnvironmentClass="mw1.micro"),
        r"EnvironmentClass mw1\.micro.*Schedulers=2 is outside mw1\.micro's schedulers range 1\.\.1",
    ),
    (
        "micro_2_10_3",
        dict(EnvironmentClass="mw1.small"),
        r"Schedulers=1 is outside mw1\.small's schedulers range 2\.\.5; set it in the overrides",
    ),
    ("cfn_created_2_10_3", dict(MinWorkers=12), r"MinWorkers=12 is greater than MaxWorkers=10"),
    ("cfn_created_2_10_3", dict(EnvironmentClass="mw2.huge"), r"unknown environment class 'mw2\.huge'"),
    ("cfn_created_2_10_3", dict(WeeklyMaintenanceWindowStart=""), r"does not match the MWAA service model"),
]


@pytest.mark.parametrize("fixture,extra,message", CHECK_BAD)
def test_check_plan_refuses(fixture, extra, message):
    source = load_env(fixture)
    request = p.plan_create(source, base_overrides(**extra), migration_tags=TAGS)
    with pytest.raises(p.PlanError, match=message):
        p.check_plan(request, source["AirflowVersion"])


def test_too_many_tags():
    source = load_env("cfn_created_2_10_3")
    request = p.plan_create(source, base_overrides(Tags={f"k{i}": "v" for i in range(47)}), migration_tags=TAGS)
    with pytest.raises(p.PlanError, match=r"Tags: 52 tags .* at most 50"):
        p.check_plan(request, "2.10.3")


def test_migration_tags_and_ownership():
    with pytest.raises(p.PlanError, match=r"MigrationId='Bad_Id'"):
        p.migration_tags("src", "Bad_Id")
    env = {"Tags": {**p.migration_tags("src", "m1"), "other": "x"}}
    assert p.owned_by(env, source_name="src", migration_id="m1")
    assert not p.owned_by(env, source_name="src", migration_id="m2")
    assert not p.owned_by(env, source_name="other", migration_id="m1")
    assert not p.owned_by({"Tags": {}}, source_name="src", migration_id="m1")


# --------------------------------------------------------------------------- redaction and diff

SECRET = "hunter2-do-not-print"


def test_redact_hides_option_values_but_keeps_keys_and_backend():
    source = load_env("cfn_created_2_10_3")
    request = p.plan_create(source, base_overrides(AirflowVersion="2.11.0"), migration_tags=TAGS)
    shown = p.redact(request)
    opts = shown["AirflowConfigurationOptions"]
    assert opts["smtp.smtp_password"] == p.REDACTED
    assert opts["core.default_timezone"] == p.REDACTED
    assert opts["secrets.backend"] == request["AirflowConfigurationOptions"]["secrets.backend"]
    assert shown["ExecutionRoleArn"] == TARGET_ROLE
    assert SECRET not in json.dumps(shown)
    assert SECRET not in json.dumps(p.redact(source, p.environment_shape()), default=str)
    assert request["AirflowConfigurationOptions"]["smtp.smtp_password"] == SECRET  # the request itself is intact


def test_diff_reports_changes_without_secret_values():
    source = load_env("cfn_created_2_10_3")
    request = p.plan_create(
        source,
        base_overrides(AirflowVersion="2.11.0", AirflowConfigurationOptions={"smtp.smtp_password": "n3w-secret"}),
        migration_tags=TAGS,
    )
    entries = {e["path"]: e for e in p.diff(source, request)}
    assert entries["AirflowVersion"] == {
        "path": "AirflowVersion",
        "change": "changed",
        "source": "2.10.3",
        "planned": "2.11.0",
    }
    assert entries["Arn"]["change"] == "dropped (read-only)"
    assert entries["LoggingConfiguration.TaskLogs.CloudWatchLogGroupArn"]["change"] == "dropped (read-only)"
    assert entries["Tags['aws:cloudformation:stack-name']"]["change"].startswith("dropped (aws:")
    assert entries["Tags['mwaa-upgrade:migration-id']"]["change"] == "added"
    pwd = entries["AirflowConfigurationOptions['smtp.smtp_password']"]
    assert pwd["change"] == "changed" and pwd["source"] == p.REDACTED and pwd["planned"] == p.REDACTED
    text = json.dumps(p.diff(source, request))
    assert SECRET not in text and "n3w-secret" not in text
    assert "DagS3Path" not in entries  # unchanged values are not listed


def test_diff_shows_the_secrets_backend_rename():
    source = load_env("v1_10_12_contrib_secrets")
    request = p.plan_create(source, base_overrides(AirflowVersion="2.7.2"), migration_tags=TAGS)
    entry = {e["path"]: e for e in p.diff(source, request)}["AirflowConfigurationOptions['secrets.backend']"]
    assert entry["source"].startswith("airflow.contrib.") and entry["planned"].startswith("airflow.providers.")


def test_warnings_for_copied_requirements():
    source = load_env("cfn_created_2_10_3")
    request = p.plan_create(
        source, base_overrides(AirflowVersion="2.11.0", RequirementsS3ObjectVersion="new-version"), migration_tags=TAGS
    )
    warnings = p.plan_warnings(source, request)
    assert any(w.startswith("PluginsS3Path/") for w in warnings)
    assert not any(w.startswith("RequirementsS3Path/") for w in warnings)
    same = p.plan_create(source, base_overrides(), migration_tags=TAGS)
    assert p.plan_warnings(source, same) == []


# --------------------------------------------------------------------------- update


def props(**overrides):
    base = {
        "SourceEnvironmentName": "orders-prod",
        "TargetName": "target-env",
        "MigrationId": "m1",
        "Overrides": base_overrides(AirflowVersion="2.10.3", MaxWorkers=10),
    }
    base.update({k: v for k, v in overrides.items() if k != "ov"})
    base["Overrides"] = {**base["Overrides"], **overrides.get("ov", {})}
    return base


def current(**changes):
    env = copy.deepcopy(load_env("cfn_created_2_10_3"))
    env.update(Name="target-env", Tags=p.migration_tags("orders-prod", "m1"), ExecutionRoleArn=TARGET_ROLE)
    env.update(changes)
    return env


UPDATES = [
    (
        "minor upgrade in place",
        props(),
        props(ov={"AirflowVersion": "2.11.0"}),
        current(),
        False,
        "update",
        {"Name": "target-env", "AirflowVersion": "2.11.0"},
    ),
    (
        "2.11 -> 3 in place",
        props(ov={"AirflowVersion": "2.11.0"}),
        props(ov={"AirflowVersion": "3.0.6"}),
        current(AirflowVersion="2.11.0"),
        False,
        "update",
        {"Name": "target-env", "AirflowVersion": "3.0.6"},
    ),
    (
        "3 -> 2.11 downgrade allowed",
        props(ov={"AirflowVersion": "3.0.6"}),
        props(ov={"AirflowVersion": "2.11.0"}),
        current(AirflowVersion="3.0.6"),
        False,
        "update",
        {"Name": "target-env", "AirflowVersion": "2.11.0"},
    ),
    (
        "2.10 -> 3 needs a new environment",
        props(),
        props(ov={"AirflowVersion": "3.0.6"}),
        current(),
        False,
        "refuse",
        r"2\.10\.3 -> 3\.0\.6 cannot be done in place .*change TargetName",
    ),
    (
        "retry after it took effect",
        props(),
        props(ov={"AirflowVersion": "2.11.0"}),
        current(AirflowVersion="2.11.0"),
        False,
        "none",
        None,
    ),
    (
        "rollback never goes back",
        props(ov={"AirflowVersion": "2.11.0"}),
        props(),
        current(AirflowVersion="2.11.0"),
        True,
        "none",
        None,
    ),
    (
        "same swap outside a rollback is a refused downgrade",
        props(ov={"AirflowVersion": "2.11.0"}),
        props(),
        current(AirflowVersion="2.11.0"),
        False,
        "refuse",
        r"downgrades are not allowed",
    ),
    ("name change is a replacement", props(), props(TargetName="target-env-2"), current(), False, "replace", None),
    (
        "name change during rollback is still a replacement",
        props(TargetName="target-env-2"),
        props(),
        current(),
        True,
        "replace",
        None,
    ),
    (
        "KMS key is create-only",
        props(),
        props(ov={"KmsKey": NEW_KEY}),
        current(),
        False,
        "refuse",
        r"KmsKey can only be set when the environment is created",
    ),
    (
        "subnets are create-only",
        props(),
        props(
            ov={
                "NetworkConfiguration": {
                    "SubnetIds": ["subnet-x", "subnet-y"],
                    "SecurityGroupIds": ["sg-0c33cc33cc33cc333"],
                }
            }
        ),
        current(),
        False,
        "refuse",
        r"SubnetIds can only be set at creation",
    ),
    (
        "security groups update in place",
        props(),
        props(
            ov={
                "NetworkConfiguration": {
                    "SubnetIds": ["subnet-0a11aa11aa11aa111", "subnet-0b22bb22bb22bb222"],
                    "SecurityGroupIds": ["sg-new"],
                }
            }
        ),
        current(),
        False,
        "update",
        {"Name": "target-env", "NetworkConfiguration": {"SecurityGroupIds": ["sg-new"]}},
    ),
    (
        "workers within the class",
        props(),
        props(ov={"MaxWorkers": 20}),
        current(),
        False,
        "update",
        {"Name": "target-env", "MaxWorkers": 20},
    ),
    (
        "workers beyond the class",
        props(),
        props(ov={"MaxWorkers": 30}),
        current(),
        False,
        "refuse",
        r"MaxWorkers=30 is outside mw1\.medium's workers range 1\.\.25",
    ),
    (
        "removed override",
        props(),
        {**props(), "Overrides": base_overrides(AirflowVersion="2.10.3")},
        current(),
        False,
        "refuse",
        r"Overrides\.MaxWorkers was removed",
    ),
    (
        "another source",
        props(),
        props(SourceEnvironmentName="billing"),
        current(),
        False,
        "refuse",
        r"SourceEnvironmentName changed",
    ),
    ("migration id retag", props(), props(MigrationId="m2"), current(), False, "update", None),
]


@pytest.mark.parametrize("old,new,env,rollback,action,expected", [u[1:] for u in UPDATES], ids=[u[0] for u in UPDATES])
def test_plan_update(old, new, env, rollback, action, expected):
    decision = p.plan_update(old, new, env, rollback=rollback)
    assert decision["action"] == action, decision["reason"]
    if action == "refuse":
        assert decision["request"] is None
        assert __import__("re").search(expected, decision["reason"]), decision["reason"]
    elif action == "update" and expected is not None:
        assert decision["request"] == expected
    elif action in ("none", "replace"):
        assert decision["request"] is None and decision["tags"] is None


def test_update_merges_options_into_the_current_map():
    old = props(ov={"AirflowConfigurationOptions": {"core.dag_concurrency": "8"}})
    new = props(ov={"AirflowConfigurationOptions": {"core.dag_concurrency": "16"}})
    decision = p.plan_update(old, new, current())
    opts = decision["request"]["AirflowConfigurationOptions"]
    assert opts["core.dag_concurrency"] == "16"
    assert opts["smtp.smtp_password"] == SECRET  # the environment's other options are kept
    assert SECRET not in decision["reason"]


def test_update_retags_a_new_migration_id():
    decision = p.plan_update(props(), props(MigrationId="m2"), current())
    assert decision["tags"] == {p.TAG_MIGRATION_ID: "m2"} and decision["request"] is None
