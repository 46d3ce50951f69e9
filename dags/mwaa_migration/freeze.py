"""Freeze and drain the source; restore its recorded pause state; pause the target (thin DB I/O).

Freeze: the active DAGs (unpaused, still in the DAG folder, not ours) are recorded, then paused
in one committed UPDATE. A paused DAG gets no new runs, and the scheduler queues no more of its
task instances; what is already queued or running goes on to its end (the executor does not look
at the pause). The drain waits for those in-flight task instances (``IN_FLIGHT_TI_STATES``) to
end, up to ``drain_timeout_s``. Task instances waiting for something (scheduled, deferred,
up_for_retry, up_for_reschedule, no state yet) are not in flight: they are carried as they are
and the target's scheduler takes them up after the cutover.

On timeout the stage's ``drain_policy`` decides:
  abort     the freeze fails with the list of task instances still running; the recovery
            unpauses the source (nothing was written to the target)
  continue  the cutover goes on; those task instances are not carried (as in the bulk): their
            run is carried as running, so the target's scheduler runs them again after the
            cutover, and the source's copy finishes on its own (its result stays in the source)
"""

from __future__ import annotations

import time

from mwaa_migration import MIGRATION_DAG_IDS, dbio
from mwaa_migration.delta_rules import IN_FLIGHT_TI_STATES

DRAIN_POLICIES = ("abort", "continue")
SAMPLE = 20


class DrainTimeout(RuntimeError):
    """In-flight task instances did not end within the drain timeout (policy abort)."""

    def __init__(self, left: list, timeout_s: float):
        self.left = left
        keys = "; ".join(
            f"{t['dag_id']}.{t['task_id']} {t['run_id']} [{t['map_index']}] {t['state']}" for t in left[:SAMPLE]
        )
        more = f" (and {len(left) - SAMPLE} more)" if len(left) > SAMPLE else ""
        super().__init__(
            f"drain: {len(left)} task instance(s) still in flight after {timeout_s:g}s "
            f"(drain_policy abort: the source is unpaused again): {keys}{more}"
        )


def active_dags(conn) -> list:
    with conn.cursor() as cur:
        out = dbio.unpaused_dags(cur)
    conn.commit()
    return out


def pause(conn, dag_ids) -> list:
    """Pause exactly these DAGs (one committed UPDATE); return those it changed."""
    return dbio.set_paused(conn, dag_ids, True)


def in_flight(conn) -> list:
    """Task instances being worked on right now (of any DAG but ours)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT dag_id, task_id, run_id, map_index, state FROM task_instance "
            "WHERE state = ANY(%s) AND dag_id <> ALL(%s) ORDER BY dag_id, run_id, task_id, map_index",
            (list(IN_FLIGHT_TI_STATES), list(MIGRATION_DAG_IDS)),
        )
        rows = [dict(zip(("dag_id", "task_id", "run_id", "map_index", "state"), r)) for r in cur.fetchall()]
    conn.commit()
    return rows


def drain(
    conn, *, timeout_s: float, policy: str, poll_s: float = 2.0, progress=print, sleep=time.sleep, clock=time.monotonic
) -> dict:
    """Wait until no task instance is in flight, up to ``timeout_s``.

    Returns {"in_flight_at_freeze", "drained", "left_running" (sample), "tis_left_running",
    "waited_s", "timed_out", "policy"}; raises DrainTimeout on timeout with policy abort.
    """
    if policy not in DRAIN_POLICIES:
        raise ValueError(f"drain_policy {policy!r}; allowed: {' | '.join(DRAIN_POLICIES)}")
    start = clock()
    first = in_flight(conn)
    seen = {(t["dag_id"], t["task_id"], t["run_id"], t["map_index"]) for t in first}
    left = first
    while left and clock() - start < timeout_s:
        progress(
            f"drain: {len(left)} task instance(s) in flight, waiting "
            f"(at most {timeout_s - (clock() - start):.0f}s more)"
        )
        sleep(min(poll_s, max(0.0, timeout_s - (clock() - start))))
        left = in_flight(conn)
        seen |= {(t["dag_id"], t["task_id"], t["run_id"], t["map_index"]) for t in left}
    still = {(t["dag_id"], t["task_id"], t["run_id"], t["map_index"]) for t in left}
    out = {
        "in_flight_at_freeze": len(first),
        "drained": len(seen - still),
        "tis_left_running": len(left),
        "left_running": left[:SAMPLE],
        "waited_s": round(clock() - start, 2),
        "timed_out": bool(left),
        "policy": policy,
        "timeout_s": timeout_s,
    }
    if left and policy == "abort":
        raise DrainTimeout(left, timeout_s)
    if left:
        progress(
            f"drain: {len(left)} task instance(s) still in flight after {timeout_s:g}s; "
            "drain_policy continue: they are not carried, the target runs them again"
        )
    else:
        progress(f"drain: nothing in flight ({out['drained']} task instance(s) ended while waiting)")
    return out


def restore_source(conn, dag_ids) -> list:
    """Unpause exactly these DAGs (the recorded ones); return those it changed."""
    return dbio.set_paused(conn, dag_ids, False)


def pause_target(conn) -> list:
    """Pause every DAG of the target except ours; return those it changed."""
    with conn.cursor() as cur:
        cur.execute("SELECT dag_id FROM dag WHERE NOT is_paused AND dag_id <> ALL(%s)", (list(MIGRATION_DAG_IDS),))
        ids = [r[0] for r in cur.fetchall()]
    conn.commit()
    return dbio.set_paused(conn, ids, True)
