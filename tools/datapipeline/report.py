"""The conversion report: every object id, its type, what it became and what was not converted
and why, as JSON (for tools) and Markdown (for people). Pure: returns text."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from tools.datapipeline import providers
from tools.datapipeline.plan import DagPlan

STATUSES = ("converted", "partly", "folded", "not converted")


def as_dict(plan: DagPlan, *, dag_file: str, source: str) -> dict[str, Any]:
    pins = providers.pins(plan.target)
    counts = Counter(e.status for e in plan.entries.values())
    return {
        "source": source,
        "dag_id": plan.dag_id,
        "dag_file": dag_file,
        "target_version": plan.target,
        "providers": {"amazon": pins.amazon, "common_sql": pins.common_sql, "standard": pins.standard},
        "schedule": plan.schedule,
        "start_date": plan.start,
        "end_date": plan.end,
        "summary": {
            "objects": len(plan.entries),
            "tasks": len(plan.tasks),
            **{s: counts.get(s, 0) for s in STATUSES},
            "todos": sum(len(e.todos) for e in plan.entries.values()),
        },
        "objects": [
            {"id": e.id, "type": e.type, "status": e.status, "became": e.became, "notes": e.notes, "todos": e.todos}
            for e in plan.entries.values()
        ],
        "connections": plan.connections,
        "variables": plan.variables,
        "notes": plan.pipeline_notes,
    }


def as_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def as_markdown(report: dict[str, Any]) -> str:
    s = report["summary"]
    lines = [
        f"# Data Pipeline conversion: {report['dag_id']}",
        "",
        f"Source `{report['source']}` -> DAG file `{report['dag_file']}` for MWAA Airflow {report['target_version']} "
        f"(Amazon provider {report['providers']['amazon']}, common-sql {report['providers']['common_sql']}).",
        "",
        f"{s['objects']} objects -> {s['tasks']} tasks: {s['converted']} converted, {s['partly']} partly, "
        f"{s['folded']} folded into others, {s['not converted']} not converted; {s['todos']} TODOs.",
        "",
        "| object id | type | status | became | notes and TODOs |",
        "|---|---|---|---|---|",
    ]
    for o in report["objects"]:
        notes = [*o["notes"], *(f"**TODO** {t}" for t in o["todos"])]
        lines.append(
            f"| `{_cell(o['id'])}` | {o['type']} | {o['status']} | {_cell('; '.join(o['became']) or '-')} "
            f"| {_cell('; '.join(notes) or '-')} |"
        )
    missing = [o for o in report["objects"] if o["status"] in ("not converted", "partly") or o["todos"]]
    lines += ["", "## Not converted, and why", ""]
    if not missing:
        lines.append("Everything was converted.")
    for o in missing:
        reasons = o["todos"] or o["notes"] or ["-"]
        lines.append(f"- `{o['id']}` ({o['type']}, {o['status']}): {'; '.join(reasons)}")
    if report["connections"]:
        lines += ["", "## Airflow connections to create", ""]
        for conn_id, info in report["connections"].items():
            details = ", ".join(f"{k}={v}" for k, v in info.items())
            lines.append(f"- `{conn_id}`: {details} (password: from Secrets Manager, never copied)")
    if report["variables"]:
        lines += ["", "## Airflow Variables to create (secret parameters, values not copied)", ""]
        lines += [f"- `{v}`" for v in report["variables"]]
    if report["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"
