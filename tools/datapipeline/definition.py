"""Parse a Data Pipeline definition (file form or API form) into one resolved object graph.

File form (what ``aws datapipeline get-pipeline-definition`` prints): ``objects`` of plain keys,
``{"ref": id}`` references and lists for repeated keys, plus ``parameters`` and ``values``.
API form (what boto3's ``get_pipeline_definition`` returns): ``pipelineObjects`` (or
``objects``) whose ``fields`` are ``{key, stringValue}`` / ``{key, refValue}``, plus
``parameterObjects`` and ``parameterValues``. Both become a :class:`Pipeline` whose objects carry
their effective fields (own fields over their ``parent`` chain over ``Default``), every reference
checked, the ``dependsOn`` graph checked for cycles and every type checked against the mapping.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tools.datapipeline.mapping import OBJECT_TYPES


class DefinitionError(ValueError):
    """Bad input; the message names the object id and the field."""


@dataclass(frozen=True)
class Ref:
    id: str


Value = str | Ref


@dataclass
class PipelineObject:
    id: str
    name: str
    type: str
    own: dict[str, list[Value]]  # fields written on the object itself
    fields: dict[str, list[Value]] = field(default_factory=dict)  # own + inherited (parent, Default)

    def get(self, key: str) -> str | None:
        values = [v for v in self.fields.get(key, []) if isinstance(v, str)]
        return values[0] if values else None

    def all(self, key: str) -> list[str]:
        return [v for v in self.fields.get(key, []) if isinstance(v, str)]

    def ref(self, key: str) -> str | None:
        refs = self.refs(key)
        return refs[0] if refs else None

    def refs(self, key: str) -> list[str]:
        return [v.id for v in self.fields.get(key, []) if isinstance(v, Ref)]

    def inherited(self, key: str) -> bool:
        return key in self.fields and key not in self.own


@dataclass(frozen=True)
class Parameter:
    id: str
    type: str = "String"
    description: str = ""
    default: str | list[str] | None = None
    optional: bool = False
    allowed: tuple[str, ...] = ()
    is_array: bool = False
    secret: bool = False  # id starts with '*': never emitted


@dataclass
class Pipeline:
    objects: dict[str, PipelineObject]  # in definition order
    parameters: dict[str, Parameter]
    values: dict[str, str | list[str]]

    def of_type(self, *types: str) -> list[PipelineObject]:
        return [o for o in self.objects.values() if o.type in types]


def load(text: str, *, source: str = "definition") -> Pipeline:
    """Parse the JSON text of a definition in either form; DefinitionError on bad input."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DefinitionError(f"{source}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(doc, dict):
        raise DefinitionError(f"{source}: expected a JSON object with 'objects' or 'pipelineObjects'")
    raw = doc.get("pipelineObjects", doc.get("objects"))
    if not isinstance(raw, list) or not raw:
        raise DefinitionError(
            f"{source}: no pipeline objects (expected a non-empty 'objects' or 'pipelineObjects' list)"
        )
    objects: dict[str, PipelineObject] = {}
    for index, item in enumerate(raw):
        obj = _object(item, index)
        if obj.id in objects:
            raise DefinitionError(f"object '{obj.id}': defined twice")
        objects[obj.id] = obj
    pipeline = Pipeline(objects=objects, parameters=_parameters(doc), values=_values(doc))
    _check_references(pipeline)
    _inherit(pipeline)
    _check_types(pipeline)
    _check_cycles(pipeline)
    return pipeline


def _object(item: Any, index: int) -> PipelineObject:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
        raise DefinitionError(f"object #{index + 1}: needs a string 'id'")
    oid = item["id"]
    own: dict[str, list[Value]] = {}
    if "fields" in item:  # API form
        if not isinstance(item["fields"], list):
            raise DefinitionError(f"object '{oid}': 'fields' must be a list of key/stringValue/refValue")
        for f in item["fields"]:
            if not isinstance(f, dict) or not isinstance(f.get("key"), str):
                raise DefinitionError(f"object '{oid}': a field without 'key'")
            if isinstance(f.get("refValue"), str):
                own.setdefault(f["key"], []).append(Ref(f["refValue"]))
            elif isinstance(f.get("stringValue"), str):
                own.setdefault(f["key"], []).append(f["stringValue"])
            else:
                raise DefinitionError(f"object '{oid}': field '{f['key']}' has neither stringValue nor refValue")
    else:  # file form
        for key, raw in item.items():
            if key in ("id", "name"):
                continue
            own[key] = [_file_value(oid, key, v) for v in (raw if isinstance(raw, list) else [raw])]
    types = [v for v in own.pop("type", []) if isinstance(v, str)]
    otype = types[0] if types else ("Default" if oid == "Default" else "")
    if not otype:
        raise DefinitionError(f"object '{oid}': no 'type'")
    raw_name = item.get("name")
    name = raw_name if isinstance(raw_name, str) else oid
    return PipelineObject(id=oid, name=name, type=otype, own=own)


def _file_value(oid: str, key: str, raw: Any) -> Value:
    if isinstance(raw, dict) and isinstance(raw.get("ref"), str):
        return Ref(raw["ref"])
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int | float):
        return str(raw)
    raise DefinitionError(f"object '{oid}': field '{key}' must be a string, a number or {{\"ref\": id}}, got {raw!r}")


def _parameters(doc: dict) -> dict[str, Parameter]:
    params: dict[str, Parameter] = {}
    raw_list = doc.get("parameterObjects", doc.get("parameters", [])) or []
    for raw in raw_list:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise DefinitionError(f"parameter {raw!r}: needs a string 'id'")
        attrs: dict[str, Any] = {}
        if "attributes" in raw:  # API form
            for a in raw["attributes"]:  # a repeated key (allowedValues) makes a list
                key, val = a.get("key"), a.get("stringValue")
                if key in attrs:
                    prev = attrs[key]
                    attrs[key] = [*(prev if isinstance(prev, list) else [prev]), val]
                else:
                    attrs[key] = val
        else:
            attrs = {k: v for k, v in raw.items() if k != "id"}
        pid = raw["id"]
        allowed = attrs.get("allowedValues") or []
        params[pid.lstrip("*")] = Parameter(
            id=pid.lstrip("*"),
            type=str(attrs.get("type") or "String"),
            description=str(attrs.get("description") or ""),
            default=attrs.get("default"),
            optional=str(attrs.get("optional", "false")).lower() == "true",
            allowed=tuple(str(a) for a in (allowed if isinstance(allowed, list) else [allowed])),
            is_array=str(attrs.get("isArray", "false")).lower() == "true",
            secret=pid.startswith("*"),
        )
    return params


def _values(doc: dict) -> dict[str, str | list[str]]:
    values: dict[str, str | list[str]] = {}
    if isinstance(doc.get("parameterValues"), list):  # API form: repeated ids make a list
        for v in doc["parameterValues"]:
            key, val = str(v.get("id", "")).lstrip("*"), str(v.get("stringValue", ""))
            if key in values:
                prev = values[key]
                values[key] = [*(prev if isinstance(prev, list) else [prev]), val]
            else:
                values[key] = val
    elif isinstance(doc.get("values"), dict):
        for key, val in doc["values"].items():
            values[key.lstrip("*")] = [str(x) for x in val] if isinstance(val, list) else str(val)
    return values


def _check_references(pipeline: Pipeline) -> None:
    for obj in pipeline.objects.values():
        for key, values in obj.own.items():
            for v in values:
                if isinstance(v, Ref) and v.id not in pipeline.objects:
                    raise DefinitionError(f"object '{obj.id}': field '{key}' refers to '{v.id}', which is not defined")


def _inherit(pipeline: Pipeline) -> None:
    """Effective fields: own, then the parent chain, then Default (for objects without parent)."""
    default = pipeline.objects.get("Default")
    for obj in pipeline.objects.values():
        chain: list[PipelineObject] = []
        seen = {obj.id}
        cur = obj
        while True:
            parent_id = next((v.id for v in cur.own.get("parent", []) if isinstance(v, Ref)), None)
            if parent_id is None:
                break
            if parent_id in seen:
                raise DefinitionError(f"object '{obj.id}': 'parent' cycle through '{parent_id}'")
            seen.add(parent_id)
            cur = pipeline.objects[parent_id]
            chain.append(cur)
        if default is not None and obj is not default and default not in chain:
            chain.append(default)
        merged = dict(obj.own)
        for ancestor in chain:
            for key, values in ancestor.own.items():
                merged.setdefault(key, values)
        merged.pop("parent", None)
        obj.fields = merged


def _check_types(pipeline: Pipeline) -> None:
    for obj in pipeline.objects.values():
        if obj.type not in OBJECT_TYPES:
            raise DefinitionError(
                f"object '{obj.id}': unknown type '{obj.type}' (known: {', '.join(sorted(OBJECT_TYPES))})"
            )


def _check_cycles(pipeline: Pipeline) -> None:
    """Depth-first search over dependsOn; the first back edge is reported with its path."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(oid: str, path: list[str]) -> None:
        state[oid] = 1
        for dep in pipeline.objects[oid].refs("dependsOn"):
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep] if dep in path else [oid, dep]
                raise DefinitionError(f"object '{dep}': dependsOn cycle {' -> '.join(cycle)}")
            if dep not in state:
                visit(dep, [*path, dep])
        state[oid] = 2

    for oid in pipeline.objects:
        if oid not in state:
            visit(oid, [oid])
