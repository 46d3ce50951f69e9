"""``python -m mwaa_migration <phase>``: one phase of the short cutover on the database given.

Each phase runs on its own side (bulk-export, freeze, delta-export, resume-source: the source's
database; bulk-import, delta-import, cutover, pause-target: the target's), so each runs in that
side's Airflow venv with that side's Fernet key. Prints one JSON line of what it did.
"""

from __future__ import annotations

import logging

from mwaa_migration import flow, freeze, phases

log = logging.getLogger("mwaa_migration.short_cli")


def _summary(state: dict) -> dict:
    return {
        "completed": state["completed"],
        "pause_window_s": state["timings"].get("pause_window_s"),
        "drain": state.get("drain"),
        "delta_import": state.get("delta_import"),
    }


def run(command: str, conn, s3, conf: dict, *, version: str, fernet=None) -> dict:
    kw = {"progress": print}
    if command == "bulk-export":
        return _summary(flow.bulk_export(conn, s3, conf, airflow_version=version, fernet=fernet, **kw))
    if command == "bulk-import":
        return _summary(flow.bulk_import(conn, s3, conf, airflow_version=version, fernet=fernet, **kw))
    if command == "freeze":
        return _summary(flow.freeze_source(conn, s3, conf, **kw))
    if command == "delta-export":
        return _summary(flow.delta_export(conn, s3, conf, airflow_version=version, fernet=fernet, **kw))
    if command == "delta-import":
        return _summary(flow.delta_import(conn, s3, conf, airflow_version=version, fernet=fernet, **kw))
    if command == "cutover":
        return _summary(flow.cutover(conn, s3, conf, **kw))
    if command == "resume-source":
        return flow.resume_source(conn, s3, conf, **kw)
    if command == "pause-target":
        return {"paused_in_target": freeze.pause_target(conn)}
    raise phases.PhaseError(f"unknown phase command {command!r}")
