"""Shared helpers of the Data Pipeline converter tests (a uniquely named module)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def to_api_form(definition: dict[str, Any]) -> dict[str, Any]:
    """The file form of a definition as boto3's get_pipeline_definition returns it."""
    objects = []
    for obj in definition["objects"]:
        fields = []
        for key, raw in obj.items():
            if key in ("id", "name"):
                continue
            for v in raw if isinstance(raw, list) else [raw]:
                fields.append(
                    {"key": key, "refValue": v["ref"]} if isinstance(v, dict) else {"key": key, "stringValue": v}
                )
        objects.append({"id": obj["id"], "name": obj.get("name", obj["id"]), "fields": fields})
    params = []
    for p in definition.get("parameters", []):
        attrs = []
        for key, raw in p.items():
            if key == "id":
                continue
            for v in raw if isinstance(raw, list) else [raw]:
                attrs.append({"key": key, "stringValue": v})
        params.append({"id": p["id"], "attributes": attrs})
    values = []
    for key, raw in definition.get("values", {}).items():
        for v in raw if isinstance(raw, list) else [raw]:
            values.append({"id": key, "stringValue": v})
    return {"pipelineObjects": objects, "parameterObjects": params, "parameterValues": values}


def large_definition(activities: int = 100) -> dict[str, Any]:
    """Default + Schedule + alarm + ``activities`` shell activities in layers of ten, each layer
    depending on two activities of the one before (a wide, deep dependsOn graph)."""
    objects: list[dict[str, Any]] = [
        {
            "id": "Default",
            "scheduleType": "timeseries",
            "schedule": {"ref": "Every15"},
            "maximumRetries": "2",
            "retryDelay": "2 minutes",
            "onFail": {"ref": "Alarm"},
        },
        {"id": "Every15", "type": "Schedule", "period": "15 minutes", "startDateTime": "2024-01-01T00:00:00"},
        {
            "id": "Alarm",
            "type": "SnsAlarm",
            "topicArn": "arn:aws:sns:us-east-1:123456789012:a",
            "subject": "s",
            "message": "#{node.name} failed",
            "role": "r",
        },
        {"id": "Host", "type": "Ec2Resource"},
    ]
    for i in range(activities):
        obj: dict[str, Any] = {
            "id": f"Step{i:03d}",
            "type": "ShellCommandActivity",
            "runsOn": {"ref": "Host"},
            "command": f"echo step {i} #{{format(@scheduledStartTime,'YYYY-MM-dd HH:mm')}}",
        }
        if i >= 10:
            layer = i // 10 - 1
            obj["dependsOn"] = [
                {"ref": f"Step{layer * 10 + i % 10:03d}"},
                {"ref": f"Step{layer * 10 + (i + 1) % 10:03d}"},
            ]
        objects.append(obj)
    return {"objects": objects}


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())
