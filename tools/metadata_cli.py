"""``mwaa-upgrade export`` / ``mwaa-upgrade import``: the metadata library's own command line
(``python -m mwaa_migration export|import``, dags/mwaa_migration/__main__.py) run the way the
rehearsal runs it: with the Python of an Airflow venv and ``dags/`` on its ``PYTHONPATH``.

The library needs Airflow, SQLAlchemy and psycopg2 of the database's own Airflow version, so it
cannot run in this tool's venv. Choose the interpreter with one of

    --airflow-version V   the venv of Airflow V built by tools/dev/airflow_envs.py (built once, on first use)
    --python PATH         an existing Airflow installation's python

Every other flag goes to the library unchanged (its flags: ``mwaa-upgrade export --help``).
The Fernet key travels in ``AIRFLOW__CORE__FERNET_KEY`` (never a flag: the process list is
readable by other users). The exit status is the library's; 2 for bad flags here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "dags"
EXIT_USAGE = 2


def _parser(command: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=f"mwaa-upgrade {command}",
        description=f"{command} an Airflow metadata database with dags/mwaa_migration, in an Airflow venv.",
        epilog="Other flags are the library's (listed below with --help).",
        add_help=False,
    )
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--airflow-version", metavar="V", help="use the venv of Airflow V (built on first use)")
    where.add_argument("--python", metavar="PATH", help="use this Airflow installation's python")
    ap.add_argument("-h", "--help", action="store_true", help="show this help and the library's flags")
    return ap


def _interpreter(args: argparse.Namespace) -> str:
    """The python to run the library with; raises ValueError (one line) when unusable."""
    if args.python:
        if not os.access(args.python, os.X_OK):
            raise ValueError(f"--python {args.python}: not an executable file")
        return str(args.python)
    from mwaa_common import versions

    try:
        versions.info(args.airflow_version)
    except versions.VersionError as exc:
        raise ValueError(f"--airflow-version {args.airflow_version}: {exc}") from None
    from tools.dev import airflow_envs

    if not airflow_envs.is_ready(args.airflow_version):
        print(
            f"installing Airflow {args.airflow_version} into {airflow_envs.venv_path(args.airflow_version)} "
            "(once; cached for later runs)",
            file=sys.stderr,
            flush=True,
        )
    return str(airflow_envs.ensure_venv(args.airflow_version))


def library_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with ``dags/`` first on PYTHONPATH."""
    env = dict(os.environ if environ is None else environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(DAGS), env.get("PYTHONPATH", "")) if p)
    return env


def run(command: str, argv: list[str] | None) -> int:
    ap = _parser(command)
    args, rest = ap.parse_known_args(argv)
    if args.help:
        ap.print_help()
        print()
        return subprocess.call([sys.executable, "-m", "mwaa_migration", "--help"], env=library_env())
    if not (args.airflow_version or args.python):
        print(
            f"mwaa-upgrade {command}: error: --airflow-version V or --python PATH is required "
            "(the database's own Airflow version runs the library)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        python = _interpreter(args)
    except ValueError as exc:
        print(f"mwaa-upgrade {command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return subprocess.call([python, "-m", "mwaa_migration", command, *rest], env=library_env())


def export_main(argv: list[str] | None = None) -> int:
    return run("export", argv)


def import_main(argv: list[str] | None = None) -> int:
    return run("import", argv)
