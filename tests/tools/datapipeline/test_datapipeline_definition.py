"""Parsing both definition forms into one resolved object graph, and rejecting bad input."""

from __future__ import annotations

import json

import pytest
from dp_helpers import load_fixture, to_api_form

from tools.datapipeline.definition import DefinitionError, Ref, load


def test_file_and_api_form_give_the_same_objects_fields_and_parameters():
    definition = load_fixture("shell_on_ec2.json")
    file_form = load(json.dumps(definition))
    api_form = load(json.dumps(to_api_form(definition)))
    assert list(file_form.objects) == list(api_form.objects)
    for oid, obj in file_form.objects.items():
        assert (obj.type, obj.name, obj.fields) == (
            api_form.objects[oid].type,
            api_form.objects[oid].name,
            api_form.objects[oid].fields,
        ), oid
    assert file_form.parameters == api_form.parameters
    assert file_form.values == api_form.values == {"myDataset": "orders_eu"}


def test_fields_inherit_from_parent_then_default_and_lists_stay_lists():
    pipeline = load(
        json.dumps(
            {
                "objects": [
                    {"id": "Default", "maximumRetries": "2", "onFail": {"ref": "A"}},
                    {
                        "id": "A",
                        "type": "SnsAlarm",
                        "topicArn": "arn:aws:sns:us-east-1:1:t",
                        "subject": "s",
                        "message": "m",
                    },
                    {"id": "Base", "type": "ShellCommandActivity", "command": "true", "maximumRetries": "4"},
                    {
                        "id": "Child",
                        "type": "ShellCommandActivity",
                        "parent": {"ref": "Base"},
                        "scriptArgument": ["a", "b"],
                    },
                ]
            }
        )
    )
    child = pipeline.objects["Child"]
    assert child.get("maximumRetries") == "4"  # parent wins over Default
    assert child.get("command") == "true"
    assert child.fields["onFail"] == [Ref("A")]  # from Default
    assert child.all("scriptArgument") == ["a", "b"]
    assert child.inherited("command") and not child.inherited("scriptArgument")


def test_api_form_parameter_values_repeat_into_lists_and_secrets_are_marked():
    pipeline = load(
        json.dumps(
            {
                "pipelineObjects": [
                    {"id": "Default", "name": "Default", "fields": [{"key": "scheduleType", "stringValue": "ondemand"}]}
                ],
                "parameterObjects": [
                    {"id": "*myPassword", "attributes": [{"key": "type", "stringValue": "String"}]},
                    {"id": "myTables", "attributes": [{"key": "isArray", "stringValue": "true"}]},
                ],
                "parameterValues": [{"id": "myTables", "stringValue": "a"}, {"id": "myTables", "stringValue": "b"}],
            }
        )
    )
    assert pipeline.values == {"myTables": ["a", "b"]}
    assert pipeline.parameters["myPassword"].secret and pipeline.parameters["myTables"].is_array


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON"),
        ("[]", "expected a JSON object"),
        ('{"objects": []}', "no pipeline objects"),
        (
            '{"objects": [{"id": "X", "type": "ShellCommandActivity", "runsOn": {"ref": "Nope"}}]}',
            "object 'X': field 'runsOn' refers to 'Nope', which is not defined",
        ),
        ('{"objects": [{"id": "X", "type": "FancyActivity"}]}', "object 'X': unknown type 'FancyActivity'"),
        (
            '{"objects": [{"id": "A", "type": "ShellCommandActivity", "dependsOn": {"ref": "B"}},'
            ' {"id": "B", "type": "ShellCommandActivity", "dependsOn": {"ref": "A"}}]}',
            "dependsOn cycle A -> B -> A",
        ),
        (
            '{"objects": [{"id": "A", "type": "ShellCommandActivity"}, {"id": "A", "type": "Schedule"}]}',
            "object 'A': defined twice",
        ),
        (
            '{"objects": [{"id": "A", "type": "ShellCommandActivity", "command": {"x": 1}}]}',
            "object 'A': field 'command' must be",
        ),
        (
            '{"objects": [{"id": "A", "type": "ShellCommandActivity", "parent": {"ref": "A"}}]}',
            "object 'A': 'parent' cycle",
        ),
        ('{"pipelineObjects": [{"id": "A", "fields": [{"key": "type"}]}]}', "object 'A': field 'type' has neither"),
    ],
)
def test_bad_definitions_name_the_object(text, message):
    with pytest.raises(DefinitionError, match=None) as err:
        load(text)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
