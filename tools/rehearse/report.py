"""The rehearsal's verdict: pure functions from what the steps measured to a report dict and a table.

Inputs are plain dicts (the importer's report.json, the export manifest, row counts of the
target before and after, the secrets probes); nothing here opens a database or a socket.
"""

from __future__ import annotations


def table_accounting(import_report: dict, manifest: dict, before: dict, after: dict) -> dict:
    """Per table: the importer's accounting checked against the manifest and the target.

    A table passes when exported == inserted + already_present + rejected, exported equals
    the manifest's row count, and (where the table exists in the target under that name)
    the target grew by exactly ``inserted`` rows.
    """
    tables = {}
    man_tables = manifest.get("tables", {})
    rep_tables = import_report.get("tables", {})
    for name in sorted(set(man_tables) | set(rep_tables)):
        rep = rep_tables.get(name)
        problems = []
        if rep is None:
            problems.append("not in the import report")
            rep = {}
        exported = rep.get("exported")
        inserted = rep.get("inserted", 0)
        present = rep.get("already_present", 0)
        rejected = rep.get("rejected", 0)
        if name in man_tables and exported is not None and exported != man_tables[name].get("rows"):
            problems.append(f"import saw {exported} rows, the manifest lists {man_tables[name].get('rows')}")
        if name not in man_tables:
            problems.append("imported but not in the manifest")
        if exported is not None and exported != inserted + present + rejected:
            problems.append(f"{exported - inserted - present - rejected} rows unaccounted")
        grew: int | None = None
        if name in before and name in after:
            grew = after[name] - before[name]
            if grew != inserted:
                problems.append(f"target grew by {grew} rows, the importer says {inserted} inserted")
        classes = rep.get("classes") or {}
        tables[name] = {
            "exported": exported,
            "inserted": inserted,
            "already_present": present,
            "rejected": rejected,
            "rejections": rep.get("rejections", []),
            "identical": classes.get("identical"),
            "different": classes.get("different"),
            "conflict": classes.get("conflict"),
            "overwritten": rep.get("overwritten", 0),
            "samples_different": rep.get("samples_different", []),
            "skipped_at_source": _total(rep.get("skipped_at_source")),
            "skipped_reasons": rep.get("skipped_at_source", []),
            "rejected_at_source": rep.get("rejected_at_source", []),
            "conversions": rep.get("conversions", {}),
            "target_before": before.get(name),
            "target_after": after.get(name),
            "ok": not problems,
            "problems": problems,
        }
    return tables


def _total(items) -> int | None:
    return sum(x.get("count", 0) for x in items) if items else None


def integrity(import_report: dict) -> dict:
    """The importer's totals per row class, the tables it did not migrate, and whether every
    exported row is now in the target with the source's values."""
    return {
        "summary": import_report.get("summary", {}),
        "not_migrated": import_report.get("not_migrated", {}),
        "all_rows_identical_in_target": import_report.get("all_rows_identical_in_target"),
    }


def secrets_check(kind: str, exported: int | None, target: dict, source: dict | None) -> dict:
    """Variables or connections: readable in the target, and identical to the source's."""
    tgt = target.get(kind, {})
    unreadable = sorted(target.get("unreadable", {}).get(kind, []))
    out = {
        "exported": exported,
        "in_target": len(tgt) + len(unreadable),
        "readable_in_target": len(tgt),
        "unreadable": unreadable,
    }
    problems = (
        [f"{len(unreadable)} not readable with the target's Fernet key: {', '.join(unreadable[:10])}"]
        if unreadable
        else []
    )
    if source is not None:
        src = source.get(kind, {})
        missing = sorted(set(src) - set(tgt) - set(unreadable))
        differ = sorted(k for k in set(src) & set(tgt) if src[k] != tgt[k])
        out.update(
            in_source=len(src),
            identical_to_source=len(src) - len(missing) - len(differ) - len(set(src) & set(unreadable)),
            missing=missing,
            different=differ,
        )
        if missing:
            problems.append(f"missing in the target: {', '.join(missing[:10])}")
        if differ:
            problems.append(f"value differs from the source: {', '.join(differ[:10])}")
        src_unreadable = source.get("unreadable", {}).get(kind, [])
        if src_unreadable:
            problems.append(f"{len(src_unreadable)} not readable in the source with its key")
    elif exported is not None and len(tgt) < exported:
        problems.append(f"{exported - len(tgt)} exported but not readable in the target")
    out["ok"] = not problems
    out["problems"] = problems
    return out


def rerun_check(second_report: dict, after_first: dict, after_second: dict) -> dict:
    """The import run a second time: nothing inserted, every row already there or rejected
    again, and no table of the target changed size."""
    problems = []
    inserted = 0
    for name, t in sorted(second_report.get("tables", {}).items()):
        inserted += t.get("inserted", 0)
        if t.get("inserted", 0):
            problems.append(f"{name}: {t['inserted']} rows inserted again")
        if t.get("exported") != t.get("already_present", 0) + t.get("rejected", 0) + t.get("inserted", 0):
            problems.append(f"{name}: rows unaccounted in the second run")
    logs = second_report.get("task_logs") or {}
    if logs.get("streams_copied"):
        problems.append(f"task logs: {logs['streams_copied']} streams copied again")
    changed = {n: (after_first[n], after_second.get(n)) for n in after_first if after_first[n] != after_second.get(n)}
    for name, (a, b) in sorted(changed.items()):
        problems.append(f"{name}: target went from {a} to {b} rows")
    return {
        "inserted": inserted,
        "target_unchanged": not changed,
        "all_rows_accounted": bool(second_report.get("all_rows_accounted")),
        "ok": not problems and bool(second_report.get("all_rows_accounted")),
        "problems": problems,
    }


def verdict(
    tables: dict, secrets: dict, import_report: dict, task_logs: dict | None = None, rerun: dict | None = None
) -> dict:
    accounted = all(t["ok"] for t in tables.values()) and bool(import_report.get("all_rows_accounted", False))
    secrets_ok = all(s["ok"] for s in secrets.values())
    logs_ok = task_logs is None or task_logs.get("ok", True)
    rerun_ok = rerun is None or rerun["ok"]
    return {
        "all_rows_accounted": accounted,
        "secrets_ok": secrets_ok,
        "task_logs_ok": logs_ok,
        "rerun_is_noop": rerun_ok,
        "ok": accounted and secrets_ok and logs_ok and rerun_ok,
    }


def _n(v) -> str:
    return "-" if v is None else f"{v:,}"


_COLS = (
    ("exported", "exported", 10),
    ("inserted", "new", 9),
    ("identical", "identical", 9),
    ("different", "different", 9),
    ("conflict", "conflict", 8),
    ("rejected", "rejected", 8),
    ("skipped_at_source", "skipped@src", 11),
)


def _table_lines(tables: dict) -> list:
    """Per table: the row classes (docs/contracts.md section 3), target growth, verdict."""
    w = max(12, *(len(n) for n in tables))
    lines = [
        "",
        f"{'table':<{w}} " + " ".join(f"{h:>{n}}" for _, h, n in _COLS) + f"  {'target before -> after':>22}  ok",
    ]
    for name, t in tables.items():
        ba = f"{_n(t['target_before'])} -> {_n(t['target_after'])}"
        lines.append(
            f"{name:<{w}} "
            + " ".join(f"{_n(t.get(k)):>{n}}" for k, _, n in _COLS)
            + f"  {ba:>22}  {'yes' if t['ok'] else 'NO'}"
        )
    tot = {k: sum(t.get(k) or 0 for t in tables.values()) for k, _, _ in _COLS}
    lines.append(f"{'total':<{w}} " + " ".join(f"{_n(tot[k]):>{n}}" for k, _, n in _COLS))
    rej = [(n, x) for n, t in tables.items() for x in t["rejections"]]
    if rej:
        lines += ["", "rejected rows, conflicts included (reason x count, sample):"]
        for name, x in rej:
            lines.append(
                f"  {name}: {x.get('reason')} x {x.get('count')}"
                + (f"  e.g. {x.get('sample')}" if x.get("sample") else "")
            )
    probs = [(n, p) for n, t in tables.items() for p in t["problems"]]
    if probs:
        lines += ["", "problems:"] + [f"  {n}: {p}" for n, p in probs]
    return lines


def _integrity_lines(integ: dict | None, tables: dict) -> list:
    """Present-but-different samples, rows left out at the source, conversions, tables not migrated."""
    lines = []
    diff = [(n, x) for n, t in tables.items() for x in t.get("samples_different", [])]
    if diff:
        lines += ["", "present but different in the target (kept unless a strategy overwrites; e.g.):"]
        lines += [f"  {n}: {x.get('row')} differs in {', '.join(x.get('differs', []))}" for n, x in diff]
    left = [(n, x) for n, t in tables.items() for x in t.get("skipped_reasons", []) + t.get("rejected_at_source", [])]
    if left:
        lines += ["", "left out at the source (reason x count):"]
        lines += [
            f"  {n}: {x['reason']} x {x['count']}" + (f"  e.g. {x['sample']}" if x.get("sample") else "")
            for n, x in left
        ]
    conv = [(n, k, c) for n, t in tables.items() for k, c in (t.get("conversions") or {}).items()]
    if conv:
        lines += ["", "converted for the target (rule x count):"] + [f"  {n}.{k} x {c}" for n, k, c in conv]
    if integ:
        nm = integ.get("not_migrated") or {}
        if nm:
            lines += ["", f"not migrated ({len(nm)} tables of the source schema):"]
            lines += [f"  {t} ({_n(v.get('rows'))} rows): {v.get('reason')}" for t, v in sorted(nm.items())]
        same = integ.get("all_rows_identical_in_target")
        if same is not None:
            lines.append("every exported row identical in the target: " + ("yes" if same else "NO"))
    return lines


def _task_log_lines(logs: dict | None) -> list:
    if not logs:
        return []
    if not logs.get("rehearsed"):
        return [f"task logs: not rehearsed ({logs.get('why_not')})"]
    imp = logs.get("import") or {}
    extra = ", ".join(
        f"{k.replace('_', ' ')} {imp[k]}"
        for k in ("streams_copied", "streams_skipped", "streams_missing", "events_copied")
        if k in imp
    )
    lines = [
        f"task logs: {logs['source_streams']} streams in the source group, "
        f"{logs['target_streams']} in the target group"
        + (f" ({extra})" if extra else "")
        + ("" if logs.get("ok") else "  NOT ALL COPIED")
    ]
    read = logs.get("read_back")
    if read:
        lines.append(
            f"task log read back through the target's log reader ({read.get('task')}): "
            + ("OK" if read.get("ok") else f"NOT OK: {read.get('problem')}")
        )
    return lines


def render(report: dict) -> str:
    """The table printed at the end of a run."""
    lines = []
    r = report["rehearsal"]
    head = f"Rehearsal {r['source_version']} -> {r['target_version']} ({r['mode']})"
    v = report.get("verdict") or {}
    if r.get("error"):
        head += f": FAILED: {r['error']}"
    elif v.get("ok"):
        head += ": OK, every exported row accounted for; variables and connections readable" + (
            "; a second import changes nothing" if report.get("rerun") else ""
        )
    else:
        head += ": NOT OK (see problems below)"
    lines.append(head)
    tables = report.get("tables") or {}
    if tables:
        lines += _table_lines(tables)
    lines += _integrity_lines(report.get("integrity"), tables)
    for kind, s in (report.get("secrets") or {}).items():
        txt = (
            f"{kind}: {_n(s.get('exported'))} exported, {s['readable_in_target']} readable in "
            f"the target with its Fernet key"
        )
        if "identical_to_source" in s:
            txt += f", {s['identical_to_source']} of {s['in_source']} identical to the source"
        lines.append(("" if lines[-1] == "" or kind != "variables" else "\n") + txt)
        lines += [f"  problem: {p}" for p in s["problems"]]
    lines += _task_log_lines(report.get("task_logs"))
    rerun = report.get("rerun")
    if rerun:
        lines.append(
            f"import run again: {rerun['inserted']} rows inserted, target "
            f"{'unchanged' if rerun['target_unchanged'] else 'CHANGED'}" + ("" if rerun["ok"] else "  NOT A NO-OP")
        )
        lines += [f"  problem: {p}" for p in rerun["problems"]]
    steps = report.get("steps") or []
    if steps:
        lines.append("")
        lines.append(f"{'step':<28} {'time':>8} {'peak memory':>12}  status")
        for s in steps:
            mem = "-" if s.get("peak_memory_mb") is None else f"{s['peak_memory_mb']:.0f} MB"
            lines.append(f"{s['name']:<28} {s['seconds']:>7.1f}s {mem:>12}  {s['status']}")
    kept = report.get("kept")
    if kept:
        lines.append("")
        lines.append("kept (--keep):")
        for k, val in kept.items():
            lines.append(f"  {k}: {val}")
    return "\n".join(lines)
