"""DagPlan -> Python source of one DAG file (deterministic, ruff-clean by construction).

Every non-empty list, dict and call is written one item per line with a trailing comma, which
``ruff format`` keeps as it is (magic trailing comma); strings use the quote ruff prefers; a line
over 120 characters (a long command or SQL text) carries ``# noqa: E501``. Imports are grouped
and ordered the way ruff's isort rules order them.
"""

from __future__ import annotations

import textwrap
from typing import Any

from tools.datapipeline import providers
from tools.datapipeline.plan import Call, Code, DagPlan

LINE = 120
INDENT = "    "

HELPERS = {
    "dynamodb_table_exists": '''def dynamodb_table_exists(table_name: str) -> bool:
    """Data Pipeline's DynamoDBTableExists precondition."""
    client = DynamoDBHook().conn.meta.client
    try:
        client.describe_table(TableName=table_name)
    except client.exceptions.ResourceNotFoundException:
        return False
    return True''',
    "dynamodb_has_items": '''def dynamodb_has_items(table_name: str) -> bool:
    """Data Pipeline's DynamoDBDataExists precondition: the table holds at least one item."""
    table = DynamoDBHook().conn.Table(table_name)
    return table.scan(Limit=1, Select="COUNT")["Count"] > 0''',
}


def string(value: str) -> str:
    quote = "'" if value.count('"') > value.count("'") else '"'
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == quote:
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return quote + "".join(out) + quote


def value(v: Any, indent: str) -> str:
    """Python source of ``v``; nested lines start with ``indent`` + one level."""
    inner = indent + INDENT
    if isinstance(v, Code):
        return v.code
    if isinstance(v, str):
        return string(v)
    if v is None or isinstance(v, bool | int | float):
        return repr(v)
    if isinstance(v, list | tuple):
        if not v:
            return "[]"
        return "[\n" + "".join(f"{inner}{value(x, inner)},\n" for x in v) + f"{indent}]"
    if isinstance(v, dict):
        if not v:
            return "{}"
        return "{\n" + "".join(f"{inner}{string(k)}: {value(x, inner)},\n" for k, x in v.items()) + f"{indent}}}"
    if isinstance(v, Call):
        parts = [value(a, inner) for a in v.args] + [f"{k}={value(x, inner)}" for k, x in v.kwargs]
        if not parts:
            return f"{v.func}()"
        return f"{v.func}(\n" + "".join(f"{inner}{p},\n" for p in parts) + f"{indent})"
    raise TypeError(f"cannot render {type(v).__name__}")


def _noqa(text: str) -> str:
    lines = []
    for line in text.split("\n"):
        if len(line) > LINE and not line.lstrip().startswith("#"):
            line += "  # noqa: E501"
        lines.append(line)
    return "\n".join(lines)


def _comment(text: str, indent: str) -> list[str]:
    return textwrap.wrap(
        text,
        width=LINE - len(indent) - 2,
        initial_indent=f"{indent}# ",
        subsequent_indent=f"{indent}#   ",
        break_long_words=True,
        break_on_hyphens=False,
    )


def _sort_key(module: str) -> str:
    return module.lower()


def imports(plan: DagPlan) -> str:
    stdlib: dict[str, set[str]] = {}
    third: dict[str, set[str]] = {}
    for module, name in plan.imports:
        (stdlib if module == "datetime" else third).setdefault(module, set()).add(name)
    third.setdefault("airflow.sdk" if providers.pins(plan.target).airflow_major == 3 else "airflow", set()).add("DAG")
    blocks = []
    for section, straight in ((stdlib, []), (third, ["pendulum"] if plan.start else [])):
        lines = [f"import {m}" for m in straight]
        for module in sorted(section, key=_sort_key):
            names = sorted(section[module], key=_name_key)
            one = f"from {module} import {', '.join(names)}"
            if len(one) <= LINE:
                lines.append(one)
            else:
                lines.append(f"from {module} import (\n" + "".join(f"{INDENT}{n},\n" for n in names) + ")")
        if lines:
            blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _name_key(name: str) -> tuple[int, str]:
    if name.isupper():
        return 0, name
    if name[:1].isupper():
        return 1, name
    return 2, name


def _date(iso: str) -> Code:
    date, _, time = iso.partition("T")
    y, mo, d = (int(x) for x in date.split("-"))
    h, mi, s = (int(x) for x in (time or "00:00:00").split(":"))
    return Code(f'pendulum.datetime({y}, {mo}, {d}, {h}, {mi}, {s}, tz="UTC")')


def _dag_call(plan: DagPlan) -> Call:
    kwargs: list[tuple[str, Any]] = [
        ("dag_id", plan.dag_id),
        ("description", plan.description),
        ("schedule", Code(plan.schedule) if plan.schedule else None),
    ]
    if plan.start:
        kwargs.append(("start_date", _date(plan.start)))
    if plan.end:
        kwargs.append(("end_date", _date(plan.end)))
    kwargs += [("catchup", False), ("default_args", plan.default_args)]
    if plan.params:
        kwargs.append(("params", plan.params))
    kwargs += sorted(plan.dag_kwargs.items())
    kwargs.append(("tags", ["datapipeline"]))
    return Call("DAG", (), tuple(kwargs))


def render(plan: DagPlan) -> str:
    pins = providers.pins(plan.target)
    todo_count = sum(len(e.todos) for e in plan.entries.values())
    header = [
        f'"""{plan.dag_id}: converted from an AWS Data Pipeline definition by `mwaa-upgrade datapipeline convert`.',
        "",
        f"Target: MWAA Airflow {plan.target} (Amazon provider {pins.amazon}, common-sql {pins.common_sql}).",
        f"Open items: {todo_count} (search for TODO(datapipeline); the conversion report lists them all).",
        '"""',
    ]
    parts = ["\n".join(header), imports(plan)]
    for var, call in plan.notifiers.items():
        parts.append(f"{var} = {value(call, '')}")
    for helper in plan.helpers:
        parts.append("\n" + HELPERS[helper] + "\n")
    body: list[str] = []
    for task in plan.tasks:
        lines = [line for c in task.comments for line in _comment(c, INDENT)]
        lines.append(f"{INDENT}{task.var} = {value(Call(task.operator, (), tuple(task.kwargs.items())), INDENT)}")
        body.append("\n".join(lines))
    if plan.edges:
        names = {t.task_id: t.var for t in plan.tasks}
        body.append("\n".join(f"{INDENT}{names[a]} >> {names[b]}" for a, b in plan.edges))
    if not body:
        body.append(f"{INDENT}pass")
    parts.append(f"with {value(_dag_call(plan), '')}:\n" + "\n\n".join(body))
    rest = [p.strip("\n") for p in parts[2:]]
    # ruff's isort: one blank line after the imports unless a def follows; format: two around defs
    gap = "\n\n\n" if rest[0].startswith("def ") else "\n\n"
    text = parts[0] + "\n\n" + parts[1] + gap + "\n\n\n".join(rest)
    return _noqa(text) + "\n"
