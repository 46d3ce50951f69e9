"""``python -m tools.datapipeline convert DEFINITION.json --out DIR [--dag-id ID] [--report PATH]``.

Reads a pipeline definition (file form or API form), writes ``DIR/<dag_id>.py`` and the report
(``--report PATH`` for the Markdown, the JSON next to it with ``.json``; default
``DIR/<dag_id>.report.md`` / ``.report.json``). Bad input is one line on stderr naming the object
and field, exit 2, and nothing is written. Files are written to temporary names first and
renamed, so a failure never leaves half a DAG.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from tools.datapipeline import providers
from tools.datapipeline.definition import DefinitionError, load
from tools.datapipeline.plan import SUPPORTED_TARGETS, plan
from tools.datapipeline.render import render
from tools.datapipeline.report import as_dict, as_json, as_markdown

EXAMPLES = """examples:
  python -m tools.datapipeline convert pipeline.json --out dags/
  aws datapipeline get-pipeline-definition --pipeline-id df-123 > p.json
  python -m tools.datapipeline convert p.json --out dags/ --dag-id nightly_load --target-version 3.0.6
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    ap = parser or _Parser(
        prog="mwaa-upgrade datapipeline",
        description="Convert AWS Data Pipeline definitions into Airflow DAGs for MWAA.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)
    conv = sub.add_parser(
        "convert",
        help="convert one definition into a DAG file and a report",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_convert_arguments(conv)
    return ap


def add_convert_arguments(conv: argparse.ArgumentParser) -> None:
    conv.add_argument("definition", type=Path, help="pipeline definition JSON (file form or API form)")
    conv.add_argument("--out", type=Path, required=True, help="folder the DAG file is written to")
    conv.add_argument("--dag-id", help="DAG id (default: the definition file's name)")
    conv.add_argument(
        "--report", type=Path, help="Markdown report path (JSON beside it; default DIR/<dag_id>.report.md)"
    )
    conv.add_argument(
        "--target-version",
        default=providers.DEFAULT_TARGET,
        choices=SUPPORTED_TARGETS,
        metavar="VERSION",
        help=f"MWAA Airflow version (default {providers.DEFAULT_TARGET}; one of {', '.join(SUPPORTED_TARGETS)})",
    )


def _dag_id(args: argparse.Namespace) -> str:
    raw = args.dag_id or args.definition.stem
    dag_id = re.sub(r"[^0-9A-Za-z_.-]+", "_", raw).strip("_")
    if args.dag_id and dag_id != args.dag_id:
        raise DefinitionError(f"--dag-id {args.dag_id!r}: only letters, digits, '_', '.' and '-' are allowed")
    return dag_id or "datapipeline"


def convert(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        text = args.definition.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError(f"{args.definition}: cannot read ({exc.__class__.__name__}: {exc})") from None
    pipeline = load(text, source=str(args.definition))
    dag_id = _dag_id(args)
    dag_plan = plan(pipeline, dag_id=dag_id, target=args.target_version)
    dag_file = args.out / f"{dag_id}.py"
    md_path = args.report or args.out / f"{dag_id}.report.md"
    json_path = md_path.with_suffix(".json")
    report = as_dict(dag_plan, dag_file=dag_file.name, source=args.definition.name)
    outputs = {dag_file: render(dag_plan), md_path: as_markdown(report), json_path: as_json(report)}
    for path in outputs:
        _check_overwrite(path)
    _write_all(outputs)
    s = report["summary"]
    print(
        f"{dag_file}: {s['tasks']} tasks from {s['objects']} objects ({s['converted']} converted, "
        f"{s['partly']} partly, {s['folded']} folded, {s['not converted']} not converted, {s['todos']} TODOs); "
        f"report {md_path} [{time.perf_counter() - started:.2f}s]"
    )
    return 0


def _check_overwrite(path: Path) -> None:
    """A file this command did not write is never overwritten (a re-run replaces its own output)."""
    if not path.exists():
        return
    head = path.read_text(encoding="utf-8", errors="replace")[:400]
    if path.suffix == ".py" and "converted from an AWS Data Pipeline definition" in head:
        return
    if path.suffix == ".md" and head.startswith("# Data Pipeline conversion:"):
        return
    if path.suffix == ".json" and '"dag_file"' in head:
        return
    raise DefinitionError(f"{path}: exists and was not written by this converter; choose another --out or --dag-id")


def _write_all(outputs: dict[Path, str]) -> None:
    temps: list[tuple[str, Path]] = []
    try:
        for path, content in outputs.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(content)
            temps.append((tmp, path))
        for tmp, path in temps:
            os.replace(tmp, path)
    finally:
        for tmp, _ in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)


def run(args: argparse.Namespace) -> int:
    """Dispatch a parsed ``convert`` command; the one error boundary (exit 2, one line)."""
    try:
        return convert(args)
    except DefinitionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write the output: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args)
