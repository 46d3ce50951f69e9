"""What a rehearsal prints and writes at the end: the JSON report (owner-only when it holds a
Fernet key), the rendered verdict, and where things were kept."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .harness import RunResources, now
from .report import render


def write_report(report: dict, path: str) -> Path:
    out = Path(path)
    if not out.is_absolute():
        out = Path.cwd() / out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    if report.get("kept"):
        tmp.chmod(0o600)  # it names the target's Fernet key
    tmp.replace(out)
    return out


def finish(run: RunResources, plan: dict, code: int, report_path: str, *, ok: bool) -> Path:
    """Complete the report of a finished run (whatever its outcome), write it, print the
    summary. A successful run without --keep leaves no log folder behind."""
    rep = run.report
    rep.setdefault("rehearsal", {}).setdefault("source_version", run.source)
    rep["rehearsal"].setdefault("target_version", run.target)
    rep["rehearsal"].setdefault("mode", plan["mode"])
    rep["rehearsal"]["finished_at"] = now()
    rep["rehearsal"]["exit_code"] = code
    rep["steps"] = run.steps
    if ok and not plan["keep"]:
        # logs and Airflow homes only matter when something went wrong
        shutil.rmtree(run.run_dir, ignore_errors=True)
        rep["rehearsal"]["log_dir"] = None
    path = write_report(rep, report_path)
    print()
    print(render(rep))
    print(f"\nreport: {path}")
    if plan["keep"] and rep.get("kept"):
        print(
            "databases kept; drop them with: python tools/dev/pgcluster.py dropdb NAME; "
            "stop PostgreSQL with: python tools/dev/pgcluster.py stop"
        )
    return path
