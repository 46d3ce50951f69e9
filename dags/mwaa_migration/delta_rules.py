"""The delta rule table: per migrated table, how a row added or changed after the bulk snapshot shows.

The short cutover exports the history twice: a bulk snapshot while the source keeps running,
then, with the source frozen, only the *delta*: what was added or changed since the snapshot.
This table is the one place that says, per table (Airflow schema names as the source has them):

  how     "whole"   small table, re-read whole; imported by key with the bulk's strategy
                    (variables_strategy / connections_strategy; slot_pool: present rows kept)
          "id"      append-only: rows whose ``id`` is above the snapshot's highest id
          "changed" rows whose change columns moved past the snapshot (minus a safety margin),
                    plus, with ``in_flight``, rows still in a non-final state
          "follows" rows of a task instance (``parent``) that is in the delta, plus rows whose
                    own change columns or id moved past the snapshot
  changed change columns of the source row (timestamps Airflow writes on every change)
  id      the integer id column of append-only rows (its snapshot maximum is the watermark)
  parent  "task_instance" or "dag_run"
  marker  SQL over the TARGET row ``k`` saying when it last changed; a present target row that
          differs from the delta row is updated only when its marker is not after the snapshot
          (untouched since the bulk import), else it is a conflict: reported, never overwritten.
          None: rows are never updated (present = already present), except ``update_with_parent``
          rows, which follow their task instance (a conflicting task instance keeps its rows).

Timestamps are Airflow's own (``updated_at`` is set by the ORM on every change of a run or a task
instance, from 2.6 on). A row flushed just before the snapshot but committed after it carries a
time before the snapshot: the margin (``delta_margin_s``, default 600 s) re-reads such rows; rows
read twice are classified identical and change nothing.
"""

from __future__ import annotations

WHOLE, ID, CHANGED, FOLLOWS = "whole", "id", "changed", "follows"

# task instance states that are still being worked on (the drain waits for them; the export
# leaves them out, see rules.SKIPPED_TI_STATES, so their final state comes with the delta)
IN_FLIGHT_TI_STATES = ("running", "queued", "restarting")
# dag run states that are not final (carried as they are; updated by the delta)
OPEN_RUN_STATES = ("running", "queued")
# task instance states that end a try: a run whose task instances all ended is final
FINISHED_TI_STATES = ("success", "failed", "skipped", "upstream_failed", "removed")
FAILED_TI_STATES = ("failed", "upstream_failed")

DELTA: dict[str, dict] = {
    "slot_pool": {"how": WHOLE},
    "variable": {"how": WHOLE},
    "connection": {"how": WHOLE},
    "job": {"how": CHANGED, "id": "id", "changed": ("latest_heartbeat", "end_date"), "marker": "k.latest_heartbeat"},
    "trigger": {"how": ID, "id": "id"},
    "log": {"how": ID, "id": "id"},
    "dag_run": {
        "how": CHANGED,
        "changed": ("updated_at", "queued_at", "start_date", "end_date"),
        "in_flight": OPEN_RUN_STATES,
        "marker": "k.updated_at",
        "finalize": True,
    },
    "dag_run_note": {"how": FOLLOWS, "parent": "dag_run", "changed": ("updated_at",), "marker": "k.updated_at"},
    "task_instance": {
        "how": CHANGED,
        "changed": ("updated_at", "queued_dttm", "start_date", "end_date"),
        "in_flight": IN_FLIGHT_TI_STATES,
        "marker": "k.updated_at",
    },
    "task_instance_note": {
        "how": FOLLOWS,
        "parent": "task_instance",
        "changed": ("updated_at",),
        "marker": "k.updated_at",
    },
    "task_instance_history": {"how": FOLLOWS, "parent": "task_instance", "id": "id"},
    "task_fail": {"how": FOLLOWS, "parent": "task_instance", "id": "id"},
    "task_reschedule": {"how": FOLLOWS, "parent": "task_instance", "id": "id"},
    "xcom": {"how": FOLLOWS, "parent": "task_instance", "changed": ("timestamp",), "marker": "k.timestamp"},
    "rendered_task_instance_fields": {"how": FOLLOWS, "parent": "task_instance", "update_with_parent": True},
    "sla_miss": {"how": CHANGED, "changed": ("timestamp",)},
}

_TI_MATCH = "p.dag_id = t.dag_id AND p.task_id = t.task_id AND p.run_id = t.run_id AND p.map_index = t.map_index"
_RUN_MATCH = "p.id = t.dag_run_id"


def _q(states) -> str:
    return ", ".join("'" + s + "'" for s in states)


def _changed_sql(alias: str, cols, present, since: str) -> list[str]:
    return [f'{alias}."{c}" > {since}' for c in cols if c in present]


def delta_condition(table: str, columns, *, parent_columns=None, since_sql: str, max_ids: dict) -> str:
    """SQL condition over the source row ``t`` selecting the table's delta.

    ``columns``: the table's source columns; ``parent_columns``: those of the parent table;
    ``since_sql``: SQL of the cutoff timestamp (snapshot time minus the margin); ``max_ids``:
    {table: highest id in the snapshot}.
    """
    rule = DELTA[table]
    how = rule["how"]
    if how == WHOLE:
        return "TRUE"
    present = set(columns)
    parts = []
    idcol = rule.get("id")
    if idcol and idcol in present:
        parts.append(f't."{idcol}" > {int(max_ids.get(table) or 0)}')
    parts += _changed_sql("t", rule.get("changed", ()), present, since_sql)
    if rule.get("in_flight") and "state" in present:
        parts.append(f"t.state IN ({_q(rule['in_flight'])})")
    if how == FOLLOWS:
        parent = rule["parent"]
        prule = DELTA[parent]
        pcols = set(parent_columns or ())
        inner = _changed_sql("p", prule.get("changed", ()), pcols, since_sql)
        if prule.get("in_flight") and "state" in pcols:
            inner.append(f"p.state IN ({_q(prule['in_flight'])})")
        match = _TI_MATCH if parent == "task_instance" else _RUN_MATCH
        if inner and (parent != "task_instance" or "run_id" in present):
            parts.append(f'EXISTS (SELECT 1 FROM "{parent}" p WHERE {match} AND ({" OR ".join(inner)}))')
    if not parts:
        raise ValueError(f"delta rule of {table!r} selects nothing with the columns {sorted(present)}")
    return "(" + " OR ".join(parts) + ")"


def finalized_run_exprs() -> dict:
    """Export expressions of a dag_run whose task instances have all ended while its DAG was
    paused (a paused DAG's runs are not examined by the scheduler): the state Airflow's scheduler
    gives such a run (failed when a task instance failed, else success) and, as its end date, the
    last task instance's end. Other runs are exported as they are."""
    ti = "FROM task_instance x WHERE x.dag_id = t.dag_id AND x.run_id = t.run_id"
    done = (
        f"t.state = 'running' AND EXISTS (SELECT 1 {ti}) AND NOT EXISTS (SELECT 1 {ti} AND "
        f"(x.state IS NULL OR x.state NOT IN ({_q(FINISHED_TI_STATES)})))"
    )
    state = (
        f"CASE WHEN {done} THEN CASE WHEN EXISTS (SELECT 1 {ti} AND x.state IN "
        f"({_q(FAILED_TI_STATES)})) THEN 'failed' ELSE 'success' END ELSE t.state END"
    )
    end = f"CASE WHEN {done} THEN (SELECT max(x.end_date) {ti}) ELSE t.end_date END"
    return {"state": state, "end_date": end}


def marker_sql(table: str):
    return DELTA[table].get("marker")
