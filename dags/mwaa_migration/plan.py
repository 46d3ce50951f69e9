"""Pure planning: source manifest + target reflected schema -> per-table load plan.

Plain dicts in, plain dicts out; no database, no S3. The rule table is in ``rules.py``.
A plan names, for one table, the staging columns (as exported), the target columns to
insert and the SQL expression (over the staging table ``s``) that produces each of them,
the conditions a row must meet (others are rejected with the reason), the natural key used
to tell "already present" apart, and the values to encrypt with the target's Fernet key.
"""

from __future__ import annotations

import re

from mwaa_migration import MIGRATION_DAG_IDS, rules

IDMAP = "pg_temp.mig_idmap_"  # session-local SQL functions created by the import


class PlanError(ValueError):
    """The rule table does not cover a difference between source and target schemas."""


_TOKEN = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


def fill(template: str, exprs: dict, *, table: str) -> str:
    """Replace ``{column}`` tokens with their expressions."""

    def sub(m):
        name = m.group(1)
        if name == "migration_dags":
            return ", ".join(f"'{d}'" for d in MIGRATION_DAG_IDS)
        if name == "skipped_states":
            return ", ".join(f"'{s}'" for s in rules.SKIPPED_TI_STATES)
        if name not in exprs:
            raise PlanError(
                f"{table}: rule refers to column {name!r}, which neither the export nor an earlier rule provides"
            )
        return exprs[name]

    return _TOKEN.sub(sub, template)


def export_query(table: str, columns: list[str]) -> tuple[list[str], str]:
    """Columns and SELECT of the export of ``table`` given its reflected source columns."""
    spec = rules.TABLES[table]
    cols = list(columns)
    select = [f't."{c}"' for c in cols]
    for name, sql in spec.get("export_join", {}).items():
        cols.append(name)
        select.append(f'{fill(sql, {}, table=table)} AS "{name}"')
    keep = [fill(c, {}, table=table) for _, c in spec.get("export_keep", [])]
    sql = f'SELECT {", ".join(select)} FROM "{table}" t'
    if keep:
        sql += " WHERE " + " AND ".join(f"({c})" for c in keep)
    return cols, sql


def skipped_query(table: str) -> tuple[list[str], str] | None:
    """Reasons and one SELECT counting, per reason, the rows the export leaves out (first
    failing condition wins), or None when the export keeps every row."""
    keep = [(why, fill(c, {}, table=table)) for why, c in rules.TABLES[table].get("export_keep", [])]
    if not keep:
        return None
    arms = []
    for i, (_, c) in enumerate(keep):
        earlier = [f"({x})" for _, x in keep[:i]]
        arms.append("count(*) FILTER (WHERE " + " AND ".join(earlier + [f"NOT ({c})"]) + ")")
    return [why for why, _ in keep], f'SELECT {", ".join(arms)} FROM "{table}" t'


def _quote(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


class _Exprs:
    """Current SQL expression of every column (``cur``) and every name seen so far (``known``,
    kept for rule templates after a column was renamed or dropped)."""

    def __init__(self, table: str):
        self.table = table
        self.cur: dict[str, str] = {}
        self.known: dict[str, str] = {}

    def set(self, col: str, expr: str) -> None:
        self.cur[col] = expr
        self.known[col] = expr

    def template(self, sql: str) -> str:
        return "(" + fill(sql, self.known, table=self.table) + ")"


def _dropped_reason(table: str, steps) -> str | None:
    for step in steps:
        reason = rules.STEPS[step].get("dropped_tables", {}).get(table)
        if reason:
            return reason
    return None


def _source_exprs(table: str, spec: dict, source: dict) -> _Exprs:
    """Staging column expressions, then the family-independent mappings (ids, references)."""
    ex = _Exprs(table)
    types = source.get("types", {})
    for c in source["columns"]:
        t = types.get(c, "text")
        ex.set(c, f's."{c}"' if (c in spec.get("encrypted", {}) or t == "text") else f's."{c}"::{t}')
    for col, sql in spec.get("source_exprs", {}).items():
        ex.set(col, ex.template(sql))
    for col in spec.get("null_columns", []):
        if col in ex.cur:
            ex.set(col, "NULL")
    for col, ref in spec.get("offset_refs", {}).items():
        if col in ex.cur:
            ex.set(col, f"{IDMAP}{ref}(({ex.cur[col]})::bigint)")
    if spec["ids"] == "offset" and "id" in ex.cur:
        ex.set("id", f'{IDMAP}{table}((s."id")::bigint)')
    elif spec["ids"] == "target":
        ex.cur.pop("id", None)
    return ex


def _apply_step(ex: _Exprs, rule: dict, notes: list) -> None:
    """One family step of the rule table: renames, drops, conversions, derivations, enums."""
    cur = ex.cur
    for old, new in rule.get("rename", {}).items():
        if old in cur:
            ex.set(new, cur.pop(old))
    for col, why in rule.get("drop", {}).items():
        if cur.pop(col, None) is not None:
            notes.append(f"{col} not carried over: {why}")
    for col, ext in rule.get("convert", {}).items():
        if col in cur:
            if ext not in cur:
                raise PlanError(
                    f"{ex.table}.{col}: conversion needs column {ext!r}, which the export did not write "
                    "(export made by an older tool, or for a 2.x target: export again with this target's "
                    "target_airflow_version)"
                )
            ex.set(col, cur[ext])
    for col, sql in rule.get("derive", {}).items():
        if col not in cur:
            ex.set(col, ex.template(sql))
    for col, mapping in rule.get("enum", {}).items():
        if col in cur:
            whens = " ".join(f"WHEN {_quote(a)} THEN {_quote(b)}" for a, b in mapping.items())
            ex.set(col, f"(CASE ({cur[col]})::text {whens} ELSE ({cur[col]})::text END)")


def _check_coverage(table: str, cur: dict, target_columns: dict, source_family: str, target_family: str) -> None:
    stray = [c for c in cur if c not in target_columns]
    if stray:
        raise PlanError(
            f"{table}: source column(s) {', '.join(stray)} have no column in the target "
            f"schema {target_family} and no rule drops or renames them"
        )
    missing = [
        c for c, info in target_columns.items() if c not in cur and not info["nullable"] and info["default"] is None
    ]
    if missing:
        raise PlanError(
            f"{table}: target column(s) {', '.join(missing)} are NOT NULL without a "
            f"default and no rule derives them from schema {source_family}"
        )


def _final_exprs(spec: dict, cur: dict, target_columns: dict) -> dict[str, str]:
    """Each insert column cast to its target type; optional references kept only when they resolve."""
    final: dict[str, str] = {}
    for c in [c for c in target_columns if c in cur]:
        typ = target_columns[c]["type"]
        e = f"NULL::{typ}" if cur[c] == "NULL" else f"({cur[c]})::{typ}"
        fk = spec.get("optional_fks", {}).get(c)
        if fk and cur[c] != "NULL":
            e = f'(CASE WHEN EXISTS (SELECT 1 FROM "{fk[0]}" f WHERE f."{fk[1]}" = {e}) THEN {e} END)'
        final[c] = e
    return final


def _encryption(spec: dict, source: dict, final: dict, target_columns: dict) -> dict:
    """{column: flag column or None}: values to encrypt with the target's Fernet key."""
    enc: dict[str, str | None] = {}
    for col, flag in spec.get("encrypted", {}).items():
        if col not in source["columns"] or col not in final:
            continue
        if flag == "target_text":
            if target_columns[col]["type"] == "text":
                enc[col] = None
        else:
            enc[col] = flag if flag in source["columns"] else None
    return enc


def plan_table(table: str, source: dict, source_family: str, target_family: str, target_columns: dict | None) -> dict:
    """Plan the load of one table.

    ``source``: the manifest entry ({"columns": [...], "types": {col: sql type}, ...}).
    ``target_columns``: reflected target columns in order, {name: {"type", "nullable",
    "default", "serial"}}, or None when the target has no such table.
    """
    spec = rules.TABLES[table]
    steps = rules.step_path(source_family, target_family)
    reason = _dropped_reason(table, steps)
    if reason:
        return {"table": table, "action": "reject_all", "reason": reason}
    if target_columns is None:
        raise PlanError(
            f"target database has no table {table!r} and no rule says it was dropped "
            f"between schema {source_family} and {target_family}"
        )
    ex = _source_exprs(table, spec, source)
    notes: list[str] = []
    for step in steps:
        _apply_step(ex, rules.STEPS[step].get(table, {}), notes)
    for c in set(spec.get("export_extra", {})) | set(spec.get("export_join", {})):
        ex.cur.pop(c, None)
    _check_coverage(table, ex.cur, target_columns, source_family, target_family)
    final = _final_exprs(spec, ex.cur, target_columns)
    insert_cols = list(final)
    scope = dict(ex.known)
    scope.update(final)
    key = _first_present(spec["keys"], final)
    if key is None:
        raise PlanError(f"{table}: none of the natural keys {spec['keys']} exists in the target")
    identity = _first_present(spec.get("identity", []), final) or []
    enc = _encryption(spec, source, final, target_columns)
    upsert = spec.get("upsert")
    # values that decide identical vs different: not the key, not values the import makes up
    # (a fresh uuid7 per run, columns it sets NULL) and not encrypted ones (compared decrypted)
    uncompared = set(key) | set(spec.get("null_columns", [])) | set(enc)
    return {
        "table": table,
        "action": "load",
        "staging_columns": list(source["columns"]),
        "insert_columns": insert_cols,
        "select": [final[c] for c in insert_cols],
        "key": key,
        "key_exprs": [final[c] for c in key],
        "identity": [c for c in identity if c not in key],
        "compare": [c for c in insert_cols if c not in uncompared and "gen_random_uuid()" not in final[c]],
        "column_types": {c: target_columns[c]["type"] for c in insert_cols},
        "require": [(why, fill(sql, scope, table=table)) for why, sql in spec.get("require", [])],
        "encrypt": enc,
        "upsert": {"strategy_key": upsert[0], "only": upsert[1]} if upsert else None,
        "serial_columns": [c for c, info in target_columns.items() if info.get("serial")],
        "idmaps_needed": sorted(set(re.findall(IDMAP.replace(".", r"\.") + r"([a-z_]+)\(", " ".join(final.values())))),
        "notes": notes,
    }


def _first_present(candidates, final):
    for cand in candidates:
        if all(c in final for c in cand):
            return list(cand)
    return None


def plan_import(manifest: dict, target_family: str, target_schema: dict, tables: list[str]) -> list[dict]:
    """Plans for ``tables`` (in load order) that the manifest contains."""
    source_family = rules.family_of_revision(manifest["source_schema_revision"])
    plans = []
    for table in rules.MIGRATED_TABLES:
        if table not in tables or table not in manifest["tables"]:
            continue
        plans.append(
            plan_table(table, manifest["tables"][table], source_family, target_family, target_schema.get(table))
        )
    return plans


def idmap_sql(table: str, segments: list) -> str:
    """SQL defining the session's id map of ``table``: source id -> target id.

    ``segments``: [[source id upto (inclusive), offset], ...] in order; each export of the same
    source into the same target adds a segment for ids above the previous ones, so ids already
    imported keep their target ids and new ones land in a newly reserved range.
    """
    whens = " ".join(f"WHEN $1 <= {int(upto)} THEN {int(off)}" for upto, off in segments)
    body = f"SELECT $1 + CASE {whens} END" if whens else "SELECT NULL::bigint"
    return (
        f"CREATE OR REPLACE FUNCTION {IDMAP}{table}(bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS $mig$ {body} $mig$"
    )
