"""The short cutover's phases as steps: each loads the state, runs once, records, recovers on failure.

Every step takes the connections of the side it runs on (``source`` in the source environment,
``target`` in the target), the S3 client and the validated conf (conf.validate(for_import=True)).
A step whose phase already completed returns at once (re-runs resume after the last completed
phase); a step asked for out of order fails before touching anything (phases.PhaseError).

A failing window step (freeze .. cutover) records the failure, then recovers what its side can:
a source step unpauses the recorded DAGs of the source (the target was not written yet, so its
DAGs are still paused); a target step pauses every DAG of the target and, when it has no source
connection (in MWAA a target task cannot reach the source), leaves the source's restore to
``resume_source``: the deploy's guard resource runs it, and so can a person
(``python -m mwaa_migration resume-source``). The local rehearsal passes both connections.
"""

from __future__ import annotations

import datetime
import logging

from mwaa_migration import cutover as cut
from mwaa_migration import delta, export, freeze, importer, phases, s3io

log = logging.getLogger("mwaa_migration.flow")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def _step(s3, conf, phase, body, *, source=None, target=None, progress=log.info) -> dict:
    state = phases.load(s3, conf)
    if phases.is_done(state, phase):
        progress(f"{phase}: already completed (migration {conf['migration_id']}): nothing to do")
        return state
    state = phases.begin(state, phase, _now())
    phases.save(s3, conf, state)
    box = {"state": state}

    def save(st):
        box["state"] = st
        phases.save(s3, conf, st)

    try:
        state = body(state, save)
    except BaseException as exc:
        state = phases.failed(box["state"], phase, f"{type(exc).__name__}: {exc}", _now())
        phases.save(s3, conf, state)
        if phase in phases.WINDOW:
            try:
                recover(s3, conf, source=source, target=target, progress=progress)
            except Exception:  # noqa: BLE001 - the original failure is what the caller must see
                log.exception("%s failed AND the recovery failed: run resume-source by hand", phase)
        raise
    state = phases.complete(state, phase, _now())
    phases.save(s3, conf, state)
    return state


def recover(s3, conf, *, source=None, target=None, progress=log.info) -> dict:
    """Carry out ``phases.recovery``: pause the target (with ``target``), restore the source (with
    ``source``). Returns {"unpaused_in_source", "paused_in_target", "source_restore_pending"}."""
    state = phases.load(s3, conf)
    plan = phases.recovery(state)
    if plan["refused"]:
        raise phases.PhaseError(f"recovery refused: {plan['refused']}")
    out: dict = {"unpaused_in_source": [], "paused_in_target": None, "source_restore_pending": False}
    if target is not None and plan["pause_target"]:
        out["paused_in_target"] = freeze.pause_target(target)
        progress(f"recovery: paused {len(out['paused_in_target'])} DAG(s) in the target")
    if plan["restore_source"] and source is None:
        out["source_restore_pending"] = True
        progress(
            f"recovery: the source's {len(plan['restore_source'])} recorded DAG(s) are still paused; "
            "resume-source restores them"
        )
        return out
    if source is not None:
        out["unpaused_in_source"] = freeze.restore_source(source, plan["restore_source"])
        progress(f"recovery: unpaused {len(out['unpaused_in_source'])} DAG(s) in the source")
        state = phases.recovered(
            state, restored=plan["restore_source"], target_paused=out["paused_in_target"], at=_now()
        )
        phases.save(s3, conf, state)
    return out


# ---- the phases ----------------------------------------------------------------------------------
def analyze(conn, tables) -> None:
    """Fresh planner statistics after the bulk import (a table filled from empty has none until
    autovacuum comes by), so the delta import's key lookups use the indexes: done before the
    pause window, not in it."""
    with conn.cursor() as cur:
        for t in tables:
            cur.execute(f'ANALYZE "{t}"')
    conn.commit()


def bulk_export(source, s3, conf, *, airflow_version, fernet=None, progress=log.info) -> dict:
    def body(state, save):
        m = export.run_export(
            source, s3, conf, airflow_version=airflow_version, fernet=fernet, progress=progress, pause=False
        )
        if not m.get("snapshot"):
            raise phases.PhaseError(
                "the bulk export's manifest has no snapshot (made by an export that "
                "paused the source?): start a new migration_id"
            )
        return dict(state, snapshot=m["snapshot"])

    return _step(s3, conf, "bulk_export", body, progress=progress)


def bulk_import(target, s3, conf, *, airflow_version, fernet=None, logs_client_factory=None, progress=log.info) -> dict:
    def body(state, save):
        r = importer.run_import(
            target,
            s3,
            conf,
            target_airflow_version=airflow_version,
            fernet=fernet,
            logs_client_factory=logs_client_factory,
            progress=progress,
        )
        analyze(target, list(r["tables"]))
        return dict(
            state,
            bulk={
                "finished_at": r.get("finished_at"),
                "tables": {t: {k: e.get(k, 0) for k in phases.BULK_COUNTS} for t, e in r["tables"].items()},
            },
        )

    return _step(s3, conf, "bulk_import", body, progress=progress)


def freeze_source(source, s3, conf, *, progress=log.info, sleep=None, clock=None) -> dict:
    def body(state, save):
        active = freeze.active_dags(source)
        state = phases.record_pause(state, active=active, at=_now())
        save(state)  # recorded before anything is paused
        done = freeze.pause(source, active)
        state = phases.paused(state, dags=done, at=_now())
        save(state)
        progress(f"freeze: {len(active)} active DAG(s) recorded, {len(done)} paused")
        kw = {k: v for k, v in (("sleep", sleep), ("clock", clock)) if v is not None}
        drained = freeze.drain(
            source, timeout_s=conf["drain_timeout_s"], policy=conf["drain_policy"], progress=progress, **kw
        )
        return dict(state, drain=drained)

    return _step(s3, conf, "freeze", body, source=source, progress=progress)


def delta_export(source, s3, conf, *, airflow_version, fernet=None, progress=log.info) -> dict:
    def body(state, save):
        m = delta.run_delta_export(
            source,
            s3,
            conf,
            state["snapshot"],
            airflow_version=airflow_version,
            fernet=fernet,
            margin_s=conf["delta_margin_s"],
            progress=progress,
        )
        return dict(
            state,
            delta_export={"exported_at": m["exported_at"], "rows": {t: e["rows"] for t, e in m["tables"].items()}},
        )

    return _step(s3, conf, "delta_export", body, source=source, progress=progress)


def delta_import(target, s3, conf, *, airflow_version, fernet=None, source=None, progress=log.info) -> dict:
    def body(state, save):
        r = delta.run_delta_import(
            target, s3, conf, target_airflow_version=airflow_version, fernet=fernet, progress=progress
        )
        return dict(
            state,
            delta_import={
                "finished_at": r["finished_at"],
                "conflicts": r["conflicts"],
                "tables": {t: {k: e.get(k, 0) for k in phases.DELTA_COUNTS} for t, e in r["tables"].items()},
            },
        )

    return _step(s3, conf, "delta_import", body, source=source, target=target, progress=progress)


def cutover(target, s3, conf, *, source=None, timeout_s=1800, poll_s=5, progress=log.info, **waits) -> dict:
    def body(state, save):
        dags = state["pause"]["active_dags"]
        imported_at = datetime.datetime.fromisoformat(state["delta_import"]["finished_at"])
        r = cut.run_cutover(target, dags, imported_at, timeout_s=timeout_s, poll_s=poll_s, progress=progress, **waits)
        at = _now()
        state = dict(state, cutover=r, timings=dict(state["timings"], unpaused_at=at))
        state["timings"]["pause_window_s"] = phases.pause_window_s(state)
        state["accounting"] = phases.accounting(state)
        return state

    return _step(s3, conf, "cutover", body, source=source, target=target, progress=progress)


def resume_source(source, s3, conf, *, progress=log.info) -> dict:
    """Restore the source's recorded pause state by hand (or from the deploy's guard resource).

    With a short-cutover state: unpause what the freeze paused, unless the cutover completed.
    Without one (one-shot mode): unpause what the one-shot export paused (its manifest's
    ``paused_for_export``)."""
    st = s3io.get_json(s3, conf["bucket"], phases.state_key(conf), missing_ok=True)
    if st is not None:
        return recover(s3, conf, source=source, progress=progress)
    m = s3io.get_json(s3, conf["bucket"], export.keys(conf)["manifest"], missing_ok=True)
    if m is None:
        progress(f"resume-source: nothing recorded for migration {conf['migration_id']}: nothing to do")
        return {"unpaused_in_source": [], "paused_in_target": None, "source_restore_pending": False}
    done = freeze.restore_source(source, m.get("paused_for_export") or [])
    progress(
        f"resume-source: unpaused {len(done)} of the one-shot export's "
        f"{len(m.get('paused_for_export') or [])} paused DAG(s)"
    )
    return {"unpaused_in_source": done, "paused_in_target": None, "source_restore_pending": False}
