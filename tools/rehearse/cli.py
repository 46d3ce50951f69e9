"""``mwaa-upgrade rehearse``: a whole metadata migration on this machine, then a verdict.

Real PostgreSQL (tools/dev/pgcluster.py), real Airflow per version (tools/dev/airflow_envs.py), S3,
KMS and CloudWatch Logs on a loopback moto server, and the same export/import code the DAGs
run in MWAA (dags/mwaa_migration), each side in its own version's venv.

Modes (exactly one):
  generated history (default)  fresh source DB of --source-version seeded with --rows
  --source-db URL              an existing Airflow database of --source-version (read by the
                               export; it pauses DAGs for the export and restores them)
  --from-export PATH           a folder downloaded from a migration bucket, imported into a
                               fresh database of --target-version

Modules: :mod:`.args` (flags and their validation), :mod:`.orchestrate` (the steps),
:mod:`.harness` (processes, databases, cleanup), :mod:`.output` (report file and summary);
this one ties them together and maps the outcome to an exit code.
"""

from __future__ import annotations

import signal
import sys

from . import procs
from .args import parse_args, validate
from .checks import UsageError
from .orchestrate import Rehearsal
from .output import finish

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        plan = validate(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    procs.install_signal_handlers()
    run = Rehearsal(plan, out=lambda *a, **k: print(*a, **{"flush": True, **k}))
    code = run_to_the_end(run, plan)
    finish(run, plan, code, args.report, ok=code == EXIT_OK)
    return code


def run_to_the_end(run: Rehearsal, plan: dict) -> int:
    """Run the steps; whatever happens, clean up. The exit code; errors go to the report."""
    code = EXIT_FAILED
    try:
        report = run.run()
        code = EXIT_OK if report["verdict"]["ok"] else EXIT_FAILED
    except KeyboardInterrupt:
        run.report.setdefault("rehearsal", {})["error"] = "interrupted"
        print(
            "\ninterrupted: stopping child processes, moto and dropping the temporary "
            "databases" + (" (kept: --keep)" if plan["keep"] else ""),
            file=sys.stderr,
            flush=True,
        )
        code = EXIT_INTERRUPTED
    except (procs.StepFailed, RuntimeError, UsageError) as exc:
        run.report.setdefault("rehearsal", {})["error"] = getattr(exc, "short", str(exc).splitlines()[0])
        print(f"error: {exc}", file=sys.stderr, flush=True)
    except Exception as exc:  # noqa: BLE001 - still clean up and write the report
        import traceback

        tb = run.run_dir / "traceback.txt"
        tb.write_text(traceback.format_exc())
        run.report.setdefault("rehearsal", {})["error"] = f"{type(exc).__name__}: {exc}"
        print(f"error: {type(exc).__name__}: {exc} (traceback: {tb})", file=sys.stderr, flush=True)
    finally:
        # a second Ctrl-C must not leave half of the cleanup undone (it is bounded: ~10 s)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        run.cleanup()
    return code
