"""What a rehearsal prints and writes at the end: the JSON report (owner-only when it holds a
Fernet key), the rendered verdict, and where things were kept."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .harness import RunResources, now
from .report import render


def write_report(report: dict, path: str) -> Path:
    """Write the report atomically (a temporary file, then a rename). A report that names a
    Fernet key (``kept``) is created owner-only (0600): it is never readable by others, not even
    for a moment, and a stale temporary file of a crashed run does not lend it its mode."""
    out = Path(path)
    if not out.is_absolute():
        out = Path.cwd() / out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.unlink(missing_ok=True)
    mode = 0o600 if report.get("kept") else 0o666  # the latter less the umask, as open() does
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(report, indent=2, default=str) + "\n")
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
