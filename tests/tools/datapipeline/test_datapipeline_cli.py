"""The convert command end to end without Airflow: outputs, report, bad input, determinism, ruff,
and the 100-activity definition's conversion time (printed, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dp_helpers import FIXTURES, large_definition, load_fixture, to_api_form

from tools.datapipeline import main

REPO = Path(__file__).resolve().parents[3]
FILE_FORM_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.json") if "objects" in json.loads(p.read_text()))
ALL_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.json"))


def _convert(tmp_path: Path, definition: Path, *extra: str) -> tuple[int, Path]:
    out = tmp_path / "out"
    return main(["convert", str(definition), "--out", str(out), *extra]), out


def test_convert_writes_dag_and_both_reports(tmp_path, capsys):
    rc, out = _convert(tmp_path, FIXTURES / "shell_on_ec2.json", "--dag-id", "nightly_shell")
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "nightly_shell.py",
        "nightly_shell.report.json",
        "nightly_shell.report.md",
    ]
    assert "nightly_shell.py: 3 tasks from 7 objects" in capsys.readouterr().out
    report = json.loads((out / "nightly_shell.report.json").read_text())
    assert report["dag_id"] == "nightly_shell" and report["target_version"] == "2.11.0"
    assert report["providers"]["amazon"] == "9.8.0"


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_report_accounts_for_every_object(tmp_path, name):
    rc, out = _convert(tmp_path, FIXTURES / name, "--report", str(tmp_path / "r" / "report.md"))
    assert rc == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    definition = json.loads((FIXTURES / name).read_text())
    ids = [o["id"] for o in definition.get("objects", definition.get("pipelineObjects"))]
    assert [o["id"] for o in report["objects"]] == ids
    for obj in report["objects"]:
        assert obj["status"] in ("converted", "partly", "folded", "not converted")
        # nothing dropped silently: each object says what it became, or why not
        assert obj["became"] or obj["notes"] or obj["todos"], obj
        if obj["status"] in ("partly", "not converted"):
            assert obj["todos"] or obj["notes"], obj
    markdown = (tmp_path / "r" / "report.md").read_text()
    for oid in ids:
        assert f"`{oid}`" in markdown


def test_untranslatable_expressions_are_marked_in_the_dag_and_listed(tmp_path):
    rc, out = _convert(tmp_path, FIXTURES / "shell_on_ec2.json")
    assert rc == 0
    dag = (out / "shell_on_ec2.py").read_text()
    assert "# TODO(datapipeline): bash_command: untranslated expression #{@pipelineId}" in dag
    assert "echo #{myUnknownThing} #{@pipelineId}" in dag  # kept visible in the command
    publish = next(
        o for o in json.loads((out / "shell_on_ec2.report.json").read_text())["objects"] if o["id"] == "Publish"
    )
    assert publish["status"] == "partly" and len(publish["todos"]) == 2


def test_secret_fields_are_never_written(tmp_path):
    rc, out = _convert(tmp_path, FIXTURES / "sql_rds_jdbc.json")
    assert rc == 0
    for path in out.iterdir():
        text = path.read_text()
        assert "not-a-real-secret" not in text and "also-not-real" not in text, path.name


BAD = {
    "not_json.json": ("{ this is not json", "not JSON"),
    "missing_ref.json": (
        json.dumps({"objects": [{"id": "Copy", "type": "CopyActivity", "input": {"ref": "Gone"}}]}),
        "object 'Copy': field 'input' refers to 'Gone'",
    ),
    "cycle.json": (
        json.dumps(
            {
                "objects": [
                    {"id": "A", "type": "ShellCommandActivity", "command": "true", "dependsOn": {"ref": "C"}},
                    {"id": "B", "type": "ShellCommandActivity", "command": "true", "dependsOn": {"ref": "A"}},
                    {"id": "C", "type": "ShellCommandActivity", "command": "true", "dependsOn": {"ref": "B"}},
                ]
            }
        ),
        "dependsOn cycle",
    ),
    "unknown_type.json": (
        json.dumps({"objects": [{"id": "Mystery", "type": "TeleportActivity"}]}),
        "object 'Mystery': unknown type 'TeleportActivity'",
    ),
    "bad_period.json": (
        json.dumps(
            {
                "objects": [
                    {"id": "Default", "schedule": {"ref": "S"}},
                    {"id": "S", "type": "Schedule", "period": "fortnightly", "startDateTime": "2024-01-01T00:00:00"},
                ]
            }
        ),
        "object 'S': field 'period' = 'fortnightly' is not a period",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, name):
    text, message = BAD[name]
    definition = tmp_path / name
    definition.write_text(text)
    rc, out = _convert(tmp_path, definition)
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")
    assert not out.exists()


def test_cycle_message_names_the_objects(tmp_path, capsys):
    definition = tmp_path / "cycle.json"
    definition.write_text(BAD["cycle.json"][0])
    assert main(["convert", str(definition), "--out", str(tmp_path / "o")]) == 2
    assert "A -> C -> B -> A" in capsys.readouterr().err


def test_missing_file_and_bad_arguments_exit_2(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "nope.json"), "--out", str(tmp_path)]) == 2
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["convert", str(FIXTURES / "shell_on_ec2.json"), "--out", str(tmp_path), "--target-version", "1.10.12"])
    assert exc.value.code == 2
    assert main(["convert", str(FIXTURES / "shell_on_ec2.json"), "--out", str(tmp_path), "--dag-id", "bad id!"]) == 2


@pytest.mark.parametrize("name", FILE_FORM_FIXTURES)
def test_same_definition_same_bytes_in_both_forms(tmp_path, name):
    api = tmp_path / "api.json"
    api.write_text(json.dumps(to_api_form(load_fixture(name)), indent=1))
    outputs = []
    for i, definition in enumerate([FIXTURES / name, FIXTURES / name, api]):
        out = tmp_path / f"o{i}"
        assert main(["convert", str(definition), "--out", str(out), "--dag-id", "same"]) == 0
        outputs.append((out / "same.py").read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]


@pytest.mark.parametrize("target", ["2.11.0", "3.0.6"])
def test_generated_dags_are_ruff_clean(tmp_path, target):
    out = tmp_path / "dags"
    for name in ALL_FIXTURES:
        assert main(["convert", str(FIXTURES / name), "--out", str(out), "--target-version", target]) == 0
    big = tmp_path / "large.json"
    big.write_text(json.dumps(large_definition()))
    assert main(["convert", str(big), "--out", str(out), "--target-version", target]) == 0
    config = str(REPO / "pyproject.toml")
    check = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", config, str(out)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--config", config, str(out)],
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_airflow_3_targets_use_the_sdk_and_standard_provider(tmp_path):
    rc, out = _convert(tmp_path, FIXTURES / "shell_on_ec2.json", "--target-version", "3.0.6")
    assert rc == 0
    dag = (out / "shell_on_ec2.py").read_text()
    assert "from airflow.sdk import DAG, Param" in dag
    assert "from airflow.providers.standard.operators.bash import BashOperator" in dag
    assert "from airflow.operators" not in dag


def test_large_definition_converts_quickly(tmp_path, capsys):
    big = tmp_path / "large.json"
    big.write_text(json.dumps(large_definition(100)))
    started = time.perf_counter()
    rc, out = _convert(tmp_path, big)
    elapsed = time.perf_counter() - started
    assert rc == 0
    report = json.loads((out / "large.report.json").read_text())
    assert report["summary"]["tasks"] == 100
    with capsys.disabled():
        print(f"\n100-activity definition ({report['summary']['objects']} objects) converted in {elapsed:.2f}s")


def _readme_block(text: str, marker: str) -> str:
    after = text.split(f"<!-- {marker} -->", 1)[1]
    return after.split("```", 2)[1].split("\n", 1)[1]


def test_readme_example_is_what_the_converter_writes(tmp_path):
    readme = (REPO / "README.md").read_text()
    definition = tmp_path / "nightly_orders.json"
    definition.write_text(_readme_block(readme, "datapipeline-example-definition"))
    rc, out = _convert(tmp_path, definition)
    assert rc == 0
    assert (out / "nightly_orders.py").read_text() == _readme_block(readme, "datapipeline-example-dag")


def test_docs_list_every_object_type():
    from tools.datapipeline.mapping import OBJECT_TYPES

    doc = (REPO / "docs" / "datapipeline.md").read_text()
    for name, obj in OBJECT_TYPES.items():
        assert f"| `{name}` | {obj.role} | {obj.becomes} |" in doc, name


def test_rerun_replaces_its_own_output_but_never_a_foreign_file(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["convert", str(FIXTURES / "shell_on_ec2.json"), "--out", str(out)]
    assert main(args) == 0 and main(args) == 0  # idempotent re-run
    (out / "mine.py").write_text("print('hand written')\n")
    assert main([*args, "--dag-id", "mine"]) == 2
    assert "mine.py: exists and was not written by this converter" in capsys.readouterr().err
    assert (out / "mine.py").read_text() == "print('hand written')\n"
    assert not (out / "mine.report.md").exists()
