"""The short cutover's phase state machine: pure transitions over a plain dict, persisted in S3.

    bulk_export -> bulk_import -> freeze -> delta_export -> delta_import -> cutover -> (done)
    \\________ source running ________/   \\_____________ pause window _____________/

The state lives at ``{prefix}{migration_id}/cutover/state.json`` (written by whichever side ran
the last phase: the source's and the target's tasks both reach the migration bucket). It holds
the phases completed, the snapshot of the bulk export, the recorded pause state of the source
(which DAGs were active, which the freeze paused, when), the drain's outcome and the timings.

Rules (tested in tests/dags/test_cutover_phases.py):
* A phase runs only after the one before it completed; a completed phase is not run again, so a
  re-run resumes after the last completed phase.
* A failure in freeze, delta_export, delta_import or cutover (or a drain timeout with the
  ``abort`` policy) makes the plan ``recovery``: restore the source's recorded pause state and
  pause every DAG of the target. After recovery the state goes back to "bulk imported": the
  source ran again, so a re-run freezes anew and takes a fresh delta against the same snapshot
  (the delta import classifies rows, so applying a delta twice changes nothing).
* Once the cutover completed, the source is not unpaused by a recovery (both would schedule):
  going back is the switch-back's job, with the same recorded pause state.
"""

from __future__ import annotations

import datetime

PHASES = ("bulk_export", "bulk_import", "freeze", "delta_export", "delta_import", "cutover")
BULK = PHASES[:2]
WINDOW = PHASES[2:]  # the phases during which the source is paused
SOURCE_SIDE = ("bulk_export", "freeze", "delta_export")
FORMAT = 1
BULK_COUNTS = ("exported", "inserted", "already_present", "rejected")
DELTA_COUNTS = ("exported", "inserted", "updated", "already_present", "conflicts", "rejected")


class PhaseError(RuntimeError):
    """A phase was asked for out of order, or the state belongs to another migration."""


def state_key(conf: dict) -> str:
    """Next to the export it belongs to (a re-run of the migration gets its own)."""
    from mwaa_migration import export

    return export.keys(conf)["base"] + "cutover/state.json"


def new_state(migration_id: str) -> dict:
    return {
        "format": FORMAT,
        "migration_id": migration_id,
        "completed": [],
        "running": None,
        "snapshot": None,
        "pause": None,
        "drain": None,
        "cutover": None,
        "timings": {},
        "failures": [],
        "recoveries": [],
    }


def now_iso(clock=None) -> str:
    t = clock() if clock else datetime.datetime.now(datetime.timezone.utc)
    return t.isoformat()


def next_phase(state: dict):
    """The phase to run next, or None when the cutover completed."""
    for p in PHASES:
        if p not in state["completed"]:
            return p
    return None


def is_done(state: dict, phase: str) -> bool:
    return phase in state["completed"]


def begin(state: dict, phase: str, at: str) -> dict:
    """Mark ``phase`` running; refuse it out of order. Returns the new state."""
    if phase not in PHASES:
        raise PhaseError(f"unknown phase {phase!r}; phases: {', '.join(PHASES)}")
    want = next_phase(state)
    if want != phase:
        if phase in state["completed"]:
            raise PhaseError(f"phase {phase} already completed")
        raise PhaseError(
            f"phase {phase} cannot run yet: {want} comes first "
            f"(completed: {', '.join(state['completed']) or 'nothing'})"
        )
    out = dict(state, running={"phase": phase, "since": at})
    if phase == "freeze":
        out["timings"] = dict(state["timings"], freeze_started_at=at)
    return out


def complete(state: dict, phase: str, at: str, **facts) -> dict:
    """Mark ``phase`` completed, merging ``facts`` (e.g. snapshot=..., pause=...) into the state."""
    if (state.get("running") or {}).get("phase") != phase:
        raise PhaseError(f"phase {phase} completed but it was not running")
    out = dict(state, running=None, completed=list(state["completed"]) + [phase])
    out.update(facts)
    out["timings"] = dict(out["timings"], **{f"{phase}_completed_at": at})
    return out


def record_pause(state: dict, *, active: list, at: str) -> dict:
    """The pause state recorded BEFORE anything is paused: which DAGs are active (to unpause on
    recovery) at ``at``. ``paused_by_us`` is filled in once the pause is committed."""
    return dict(
        state,
        pause={
            "recorded_at": at,
            "active_dags": sorted(active),
            "paused_by_us": None,
            "paused_at": None,
            "restored_at": None,
        },
    )


def paused(state: dict, *, dags: list, at: str) -> dict:
    pause = dict(state["pause"], paused_by_us=sorted(dags), paused_at=at)
    return dict(state, pause=pause, timings=dict(state["timings"], paused_at=at))


def to_unpause_in_source(state: dict) -> list:
    """What a restore unpauses: the DAGs the freeze paused (or, if the process died between the
    pause and its record, every DAG recorded as active before it)."""
    p = state.get("pause") or {}
    if p.get("paused_by_us") is not None:
        return list(p["paused_by_us"])
    return list(p.get("active_dags") or [])


def failed(state: dict, phase: str, error: str, at: str) -> dict:
    """Record a failure of ``phase``; the caller then carries out ``recovery(state)``."""
    rec = {"phase": phase, "error": error[:2000], "at": at}
    return dict(state, running=None, failures=list(state["failures"]) + [rec])


def recovery(state: dict) -> dict:
    """What must happen after a failure: {"restore_source": [dag ids], "pause_target": bool,
    "refused": reason or None}. Pure; the thin I/O in ``freeze`` carries it out."""
    if "cutover" in state["completed"]:
        return {
            "restore_source": [],
            "pause_target": False,
            "refused": "the cutover completed: the target schedules now; to go back, switch back",
        }
    in_window = bool(state.get("pause")) and (state["pause"].get("restored_at") is None)
    return {"restore_source": to_unpause_in_source(state) if in_window else [], "pause_target": True, "refused": None}


def recovered(state: dict, *, restored: list, target_paused, at: str) -> dict:
    """After a recovery: the window phases are undone (the source ran again); bulk stays."""
    pause = dict(state["pause"], restored_at=at) if state.get("pause") else None
    rec = {"at": at, "unpaused_in_source": sorted(restored), "paused_in_target": target_paused}
    return dict(
        state,
        completed=[p for p in state["completed"] if p in BULK],
        running=None,
        pause=pause,
        drain=None,
        recoveries=list(state["recoveries"]) + [rec],
        timings={
            k: v
            for k, v in state["timings"].items()
            if not any(k.startswith(w) for w in WINDOW + ("paused_at", "unpaused_at"))
        },
    )


def pause_window_s(state: dict):
    """Seconds from the source's pause to the target's unpause (None until both happened)."""
    t = state["timings"]
    if not t.get("paused_at") or not t.get("unpaused_at"):
        return None
    a = datetime.datetime.fromisoformat(t["paused_at"])
    b = datetime.datetime.fromisoformat(t["unpaused_at"])
    return round((b - a).total_seconds(), 2)


def load(s3, conf: dict) -> dict:
    from mwaa_migration import s3io

    st = s3io.get_json(s3, conf["bucket"], state_key(conf), missing_ok=True)
    if st is None:
        return new_state(conf["migration_id"])
    if st.get("format") != FORMAT or st.get("migration_id") != conf["migration_id"]:
        raise PhaseError(
            f"s3://{conf['bucket']}/{state_key(conf)} belongs to migration "
            f"{st.get('migration_id')!r} (format {st.get('format')!r}), not "
            f"{conf['migration_id']!r}"
        )
    return st


def save(s3, conf: dict, state: dict) -> None:
    from mwaa_migration import s3io

    s3io.put_json(s3, conf["bucket"], state_key(conf), state)


def accounting(state: dict) -> dict:
    """Both phases per table (bulk rows and what became of them, delta rows, updated rows,
    conflicts) and the measured pause window: the report of a short cutover."""
    bulk = (state.get("bulk") or {}).get("tables", {})
    dlt = (state.get("delta_import") or {}).get("tables", {})
    tables = {}
    for t in sorted(set(bulk) | set(dlt)):
        b, d = bulk.get(t, {}), dlt.get(t, {})
        tables[t] = {
            "bulk_rows": b.get("exported", 0),
            "bulk_inserted": b.get("inserted", 0),
            "delta_rows": d.get("exported", 0),
            "delta_inserted": d.get("inserted", 0),
            "updated": d.get("updated", 0),
            "conflicts": d.get("conflicts", 0),
            "rejected": b.get("rejected", 0) + d.get("rejected", 0),
        }
    totals = {
        k: sum(v[k] for v in tables.values()) for k in ("bulk_rows", "delta_rows", "updated", "conflicts", "rejected")
    }
    drain = state.get("drain") or {}
    return {
        "tables": tables,
        "totals": totals,
        "pause_window_s": pause_window_s(state),
        "tis_drained": drain.get("drained", 0),
        "tis_left_running": drain.get("tis_left_running", 0),
    }
