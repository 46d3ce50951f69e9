"""Classify every exported row against the target BEFORE anything is inserted.

Each row of a table file is exactly one of:

``new``
    no target row has its natural key (and no other unique constraint clashes): inserted.
``identical``
    a target row has the natural key, the same identifying columns and the same values in
    every compared column: nothing to do.
``different``
    a target row has the natural key and the same identifying columns but other values
    (the source moved on since an earlier import, or the target's row changed): reported
    with the differing column names; overwritten only where a strategy says so
    (variables/connections ``overwrite``, ``default_pool`` by default).
``conflict``
    a target row has the natural key but different identifying columns (a dag_run with the
    same run_id and another logical date), or the row clashes with another target row on a
    different unique constraint: not written, and its children (task instances, notes,
    xcoms, ... of a conflicting dag_run) are rejected instead of being attached to the
    target's row.
``rejected``
    a rule condition fails (no parent in the target, a table Airflow dropped, ...): not
    written, with the rule's reason.

``classify_row`` is the definition on plain dicts (pure; the delta import and the tests use
it); ``classification_sql`` builds the same decision as one SQL statement over the staging
table for the importer. Both use the plan of ``plan.plan_table``: ``key`` (natural key),
``identity`` (identifying columns besides the key), ``compare`` (columns whose values decide
identical vs different) and ``require`` (rule conditions, in order).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

NEW, IDENTICAL, DIFFERENT, CONFLICT, REJECTED = "new", "identical", "different", "conflict", "rejected"
CLASSES = (NEW, IDENTICAL, DIFFERENT, CONFLICT, REJECTED)


def classify_row(
    source: Mapping[str, Any],
    target: Mapping[str, Any] | None,
    *,
    identity: Sequence[str],
    compare: Sequence[str],
    rejected_by: str | None = None,
) -> str:
    """The class of one source row (target form) given the target row with its natural key."""
    if rejected_by is not None:
        return REJECTED
    if target is None:
        return NEW
    if any(source.get(c) != target.get(c) for c in identity):
        return CONFLICT
    if all(source.get(c) == target.get(c) for c in compare):
        return IDENTICAL
    return DIFFERENT


def differing_columns(source: Mapping[str, Any], target: Mapping[str, Any], compare: Sequence[str]) -> list[str]:
    return [c for c in compare if source.get(c) != target.get(c)]


def _q(c: str) -> str:
    return '"' + c + '"'


def _eq(plan: dict[str, Any], col: str) -> str:
    """SQL: the target row's column equals the classified row's (NULL equals NULL)."""
    if plan["column_types"].get(col) == "json":  # json has no equality operator
        return f"k.{_q(col)}::text IS NOT DISTINCT FROM r.{_q(col)}::text"
    return f"k.{_q(col)} IS NOT DISTINCT FROM r.{_q(col)}"


def key_match(plan: dict[str, Any], left: str = "k", right: str = "r") -> str:
    return " AND ".join(f"{left}.{_q(c)} = {right}.{_q(c)}" for c in plan["key"])


def rows_sql(plan: dict[str, Any], staging: str, rows_table: str) -> str:
    """CREATE TEMP TABLE ``rows_table``: the target form of every staged row, with ``_class``.

    Extra columns: ``_sctid`` (the staging row), ``_rej`` (1-based index of the first failing
    rule condition, 0 when none), ``_why`` (reason of a conflict or a difference found later).
    """
    t = plan["table"]
    cols = ", ".join(f"{x} AS {_q(c)}" for c, x in zip(plan["insert_columns"], plan["select"]))
    conds = [c for _, c in plan["require"]]
    rej = "0"
    if conds:
        rej = "CASE " + " ".join(f"WHEN NOT ({c}) THEN {i}" for i, c in enumerate(conds, 1)) + " ELSE 0 END"
    ident = " AND ".join(_eq(plan, c) for c in plan["identity"]) or "TRUE"
    same = " AND ".join(_eq(plan, c) for c in plan["compare"]) or "TRUE"
    first = plan["key"][0]
    return (
        f"CREATE TEMP TABLE {rows_table} AS SELECT r.*, CASE WHEN r._rej > 0 THEN '{REJECTED}' "
        f"WHEN k.{_q(first)} IS NULL THEN '{NEW}' WHEN NOT ({ident}) THEN '{CONFLICT}' "
        f"WHEN {same} THEN '{IDENTICAL}' ELSE '{DIFFERENT}' END AS _class, "
        f"CASE WHEN r._rej = 0 AND k.{_q(first)} IS NOT NULL AND NOT ({ident}) THEN "
        f"'a target row has this natural key ({', '.join(plan['key'])}) but other identifying columns "
        f"({', '.join(plan['identity'])})' END AS _why "
        f"FROM (SELECT s.ctid AS _sctid, {cols}, {rej} AS _rej FROM {staging} s) r "
        f'LEFT JOIN "{t}" k ON {key_match(plan)}'
    )


def unique_clash_sql(plan: dict[str, Any], rows_table: str, columns: Sequence[str]) -> str:
    """UPDATE: rows still ``new`` that clash with a target row on another unique constraint."""
    match = " AND ".join(f"k.{_q(c)} = r.{_q(c)}" for c in columns)
    return (
        f"UPDATE {rows_table} r SET _class = '{CONFLICT}', _why = 'a different target row has the same "
        f"({', '.join(columns)})' WHERE r._class = '{NEW}' AND EXISTS "
        f'(SELECT 1 FROM "{plan["table"]}" k WHERE {match})'
    )


def diff_sample_sql(plan: dict[str, Any], rows_table: str, limit: int) -> str:
    """SELECT (_sctid, differing column names) of up to ``limit`` ``different`` rows."""
    arms = ", ".join(f"CASE WHEN NOT ({_eq(plan, c)}) THEN '{c}' END" for c in plan["compare"])
    arr = f"array_remove(ARRAY[{arms}]::text[], NULL)" if arms else "ARRAY[]::text[]"
    return (
        f"SELECT r._sctid::text, {arr}, r._why FROM {rows_table} r "
        f'LEFT JOIN "{plan["table"]}" k ON {key_match(plan)} '
        f"WHERE r._class = '{DIFFERENT}' LIMIT {int(limit)}"
    )
