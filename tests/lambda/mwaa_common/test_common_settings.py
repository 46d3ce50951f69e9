"""The one settings table (mwaa_common.settings) checked against the three places that define
the names: the botocore MWAA model, the CloudFormation schema cfn-lint ships, aws-cdk-lib."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import botocore.session
import pytest

from mwaa_common import settings


def _cfn_schema() -> dict:
    import cfnlint.data.schemas.providers
    import cfnlint.data.schemas.resources as resources_pkg

    providers = Path(next(iter(cfnlint.data.schemas.providers.__path__)))
    resources = Path(next(iter(resources_pkg.__path__)))
    index = json.loads((providers / "us-east-1.json").read_text())
    return json.loads((resources / f"{index['AWS::MWAA::Environment']}.json").read_text())


def test_api_names_are_create_environment_parameters():
    model = botocore.session.get_session().get_service_model("mwaa")
    members = set(model.operation_model("CreateEnvironment").input_shape.members)
    assert {s.api for s in settings.SETTINGS} <= members
    # the clone planner reads every class-limited setting through the table
    assert set(settings.CLASS_LIMITED) == {"Schedulers", "MinWorkers", "MaxWorkers", "MinWebservers", "MaxWebservers"}


def test_cfn_names_and_replacement_paths_match_the_schema():
    schema = _cfn_schema()
    assert {s.cfn for s in settings.SETTINGS} <= set(schema["properties"])
    create_only = {p.replace("/properties/", "").replace("/", ".") for p in schema["createOnlyProperties"]}
    assert set(settings.REPLACEMENT_PATHS) == create_only


def test_cdk_names_are_cfn_environment_keywords():
    from aws_cdk import aws_mwaa

    params = set(inspect.signature(aws_mwaa.CfnEnvironment.__init__).parameters)
    assert {s.cdk for s in settings.SETTINGS} <= params


def test_props_are_create_environment_parameters_keywords():
    from constructs_lib.mwaa_environment import create_environment_parameters

    params = set(inspect.signature(create_environment_parameters).parameters)
    assert {s.prop for s in settings.SETTINGS if s.prop} - {"log_levels"} <= params | set(settings.S3_FILES)
    assert set(settings.SCALAR_PROPS) <= params


def test_class_limits_are_check_class_keywords():
    from mwaa_common import versions

    params = set(inspect.signature(versions.check_class).parameters)
    assert set(settings.CLASS_LIMITED.values()) <= params


@pytest.mark.parametrize(
    "api,key",
    [
        ("Name", "name"),
        ("KmsKey", "customer_kms_key"),
        ("RequirementsS3Path", "requirements.s3_path"),
        ("ExecutionRoleArn", "ExecutionRoleArn"),
    ],
)
def test_config_key_for_messages(api, key):
    assert settings.config_key(api) == key


def test_log_types_cover_the_logging_configuration():
    model = botocore.session.get_session().get_service_model("mwaa")
    logging = model.operation_model("CreateEnvironment").input_shape.members["LoggingConfiguration"]
    assert {member for member, _ in settings.LOG_TYPES.values()} == set(logging.members)
