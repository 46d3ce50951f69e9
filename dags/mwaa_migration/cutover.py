"""Optional cutover: unpause in the target exactly the DAGs that were active in the source.

A DAG is unpaused only once the target's scheduler has parsed it after the import (its
``last_parsed_time`` is later than the import's end), so its next run is computed from the
migrated history and no catch-up runs are created for the migrated period.
"""

from __future__ import annotations

import time

from mwaa_migration import dbio


def readiness(cur, dag_ids, imported_at) -> dict:
    """{dag_id: "ready" | reason} for the given DAGs."""
    schema = dbio.reflect(cur, ["dag", "dag_run"])
    cols = schema.get("dag", {})
    logical = "logical_date" if "logical_date" in schema.get("dag_run", {}) else "execution_date"
    cur.execute(
        f"""SELECT d.dag_id, {dbio.active_column(cols)}, d.last_parsed_time,
                           d.next_dagrun IS NULL OR d.next_dagrun > COALESCE(
                               (SELECT max(r.{logical}) FROM dag_run r WHERE r.dag_id = d.dag_id
                                   AND r.run_type = 'scheduled'), '-infinity')
                      FROM dag d WHERE d.dag_id = ANY(%s)""",
        (list(dag_ids),),
    )
    rows = {r[0]: r[1:] for r in cur.fetchall()}
    out = {}
    for d in dag_ids:
        if d not in rows:
            out[d] = "not parsed by the target's scheduler yet (no dag row)"
        elif not rows[d][0]:
            out[d] = "not active in the target (file missing or stale)"
        elif rows[d][1] is None or rows[d][1] <= imported_at:
            out[d] = "not re-parsed since the import finished"
        elif not rows[d][2]:
            out[d] = "next run not yet computed past the migrated runs (would catch up)"
        else:
            out[d] = "ready"
    return out


def run_cutover(
    conn, active_dags, imported_at, *, timeout_s=1800, poll_s=30, progress=print, sleep=time.sleep, clock=time.monotonic
) -> dict:
    """Wait until every active DAG is ready, then unpause all of them (all or nothing)."""
    deadline = clock() + timeout_s
    while True:
        with conn.cursor() as cur:
            state = readiness(cur, active_dags, imported_at)
        conn.commit()
        waiting = {d: r for d, r in state.items() if r != "ready"}
        if not waiting:
            break
        if clock() >= deadline:
            raise TimeoutError(
                f"cutover: {len(waiting)} DAG(s) not ready after {timeout_s}s, none "
                f"unpaused: " + "; ".join(f"{d}: {r}" for d, r in sorted(waiting.items()))
            )
        progress(f"cutover: waiting for {len(waiting)} DAG(s) to be parsed")
        sleep(poll_s)
    changed = dbio.set_paused(conn, active_dags, False)
    progress(f"cutover: unpaused {len(changed)} DAG(s)")
    return {"unpaused": changed, "already_unpaused": sorted(set(active_dags) - set(changed))}
