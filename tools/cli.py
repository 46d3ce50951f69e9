"""``mwaa-upgrade``: one command line for every user-facing job of this repository.

    mwaa-upgrade --help                  every job, with an example each
    mwaa-upgrade JOB --help              the flags of one job
    mwaa-upgrade help JOB                the same

Each job is a module with ``main(argv: list[str] | None) -> int`` that parses its own flags
(exit 2 with one line for bad input). This module only dispatches: it imports the job's module
when the job is asked for, so ``--help`` never loads the CDK or boto3.

Adding a job is one line in :data:`COMMANDS` (name, module, one-line help, one example)::

    Command("check-workflows", "tools.workflows.cli", "check ...", "mwaa-upgrade check-workflows --stage dev"),

``module`` is imported and its ``main`` called with the arguments after the job's name (or
``Command(..., func="other_main")`` for another function name). A test checks that every job
in the table imports, and that its ``--help`` exits 0.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130


@dataclass(frozen=True)
class Command:
    """One job: ``mwaa-upgrade NAME ...`` calls ``MODULE.FUNC(argv)``."""

    name: str
    module: str
    help: str
    example: str
    func: str = "main"


# The one table of jobs, in the order --help lists them.
COMMANDS: tuple[Command, ...] = (
    Command(
        "rehearse",
        "tools.rehearse.cli",
        "rehearse a metadata migration locally (real Airflow + PostgreSQL, S3 on moto)",
        "mwaa-upgrade rehearse --source-version 2.9.2 --target-version 2.11.0 --rows 5000",
    ),
    Command(
        "plan-clone",
        "tools.plan_clone",
        "show the CreateEnvironment request a clone would make, and how it differs from the source",
        "mwaa-upgrade plan-clone --stage dev --source-json saved-get-environment.json",
    ),
    Command(
        "review",
        "tools.review.__main__",
        "review the synthesized CloudFormation of one stage (cdk.out/<stage>)",
        "mwaa-upgrade review --cdk-out cdk.out/dev --out reports/review-dev.md",
    ),
    Command(
        "post-deploy-check",
        "tools.post_deploy_check",
        "check a deployed target: environment AVAILABLE and every exported row accounted for",
        "mwaa-upgrade post-deploy-check --environment mwaa-dev-target --bucket BUCKET "
        "--key data/migration/2.10.3_to_2.11.0/export/ID/report.json",
    ),
    Command(
        "datapipeline",
        "tools.datapipeline.cli",
        "convert an AWS Data Pipeline definition into an Airflow DAG for MWAA, with a report",
        "mwaa-upgrade datapipeline convert pipeline.json --out dags/ --target-version 2.11.0",
    ),
    Command(
        "export",
        "tools.metadata_cli",
        "export an Airflow metadata database to S3 (the db_export DAG's code, run in an Airflow venv)",
        "mwaa-upgrade export --airflow-version 2.10.3 --sql-alchemy-conn postgresql+psycopg2://u@h/db "
        '--bucket B --prefix data/migration/2.10.3_to_2.11.0/export/ --conf-json \'{"migration_id": "m1"}\'',
        func="export_main",
    ),
    Command(
        "import",
        "tools.metadata_cli",
        "import an export from S3 into an Airflow metadata database (the db_import DAG's code)",
        "mwaa-upgrade import --airflow-version 2.11.0 --sql-alchemy-conn postgresql+psycopg2://u@h/db "
        '--bucket B --prefix data/migration/2.10.3_to_2.11.0/export/ --conf-json \'{"migration_id": "m1"}\'',
        func="import_main",
    ),
)


def _find(name: str) -> Command | None:
    return next((c for c in COMMANDS if c.name == name), None)


def usage() -> str:
    """The top-level help: every job with its one-line help and an example."""
    width = max(len(c.name) for c in COMMANDS)
    lines = [
        "usage: mwaa-upgrade JOB [flags]      (mwaa-upgrade JOB --help: the flags of one job)",
        "",
        "Blue/green Amazon MWAA upgrades with the Airflow history intact.",
        "",
        "jobs:",
    ]
    for c in COMMANDS:
        lines.append(f"  {c.name.ljust(width)}  {c.help}")
        lines.append(f"  {' ' * width}    e.g. {c.example}")
    lines += ["", "Exit status: 0 done, 1 the job failed, 2 bad input (one line on stderr), 130 interrupted."]
    return "\n".join(lines)


def load(command: Command) -> Callable[[list[str]], int]:
    """The job's entry point (imports its module now, not before)."""
    # Jobs that synthesize (plan-clone --stage) start jsii: no banner about Node 20's end of life.
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    for path in (ROOT / "lambda", ROOT):  # mwaa_common lives in the Lambda asset root
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    fn: Callable[[list[str]], int] = getattr(importlib.import_module(command.module), command.func)
    return fn


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return EXIT_OK if args else EXIT_USAGE
    if args[0] == "help":
        if len(args) == 1:
            print(usage())
            return EXIT_OK
        args = [args[1], "--help"]
    command = _find(args[0])
    if command is None:
        names = ", ".join(c.name for c in COMMANDS)
        print(f"mwaa-upgrade: error: {args[0]!r} is not a job; jobs: {names} (mwaa-upgrade --help)", file=sys.stderr)
        return EXIT_USAGE
    # argparse names the program after argv[0] where a job does not set its prog.
    sys.argv[0] = f"mwaa-upgrade {command.name}"
    try:
        return int(load(command)(args[1:]) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # argparse: --help (0) and usage errors (2); sys.exit("text")
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or EXIT_OK
        print(exc.code, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
