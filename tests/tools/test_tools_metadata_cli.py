"""``mwaa-upgrade export|import`` (tools/metadata_cli.py): the library runs with the chosen
interpreter, dags/ on its PYTHONPATH, every other flag passed through unchanged."""

from __future__ import annotations

import os

from tools import metadata_cli

REPO = metadata_cli.ROOT


def _fake_python(tmp_path):
    script = tmp_path / "python"
    script.write_text('#!/bin/sh\necho "PYTHONPATH=$PYTHONPATH"\necho "ARGS=$*"\nexit 7\n')
    script.chmod(0o755)
    return script


def test_flags_pass_through_to_the_library_in_the_chosen_python(tmp_path, capfd):
    py = _fake_python(tmp_path)
    rc = metadata_cli.export_main(["--python", str(py), "--sql-alchemy-conn=postgresql://x/db", "--bucket", "b"])
    out = capfd.readouterr().out
    assert rc == 7  # the library's exit status
    assert f"PYTHONPATH={REPO / 'dags'}" in out
    assert "ARGS=-m mwaa_migration export --sql-alchemy-conn=postgresql://x/db --bucket b" in out


def test_import_runs_the_import_command(tmp_path, capfd):
    metadata_cli.import_main(["--python", str(_fake_python(tmp_path)), "--bucket", "b"])
    assert "ARGS=-m mwaa_migration import --bucket b" in capfd.readouterr().out


def test_interpreter_is_required(capsys):
    assert metadata_cli.export_main(["--bucket", "b"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--airflow-version V or --python PATH" in err


def test_unknown_airflow_version_is_one_line_exit_2(capsys):
    assert metadata_cli.import_main(["--airflow-version", "9.9.9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "9.9.9" in err and "known:" in err


def test_python_that_is_not_executable(tmp_path, capsys):
    assert metadata_cli.export_main(["--python", str(tmp_path / "nope")]) == 2
    assert "not an executable file" in capsys.readouterr().err


def test_existing_pythonpath_is_kept_after_dags():
    env = metadata_cli.library_env({"PYTHONPATH": "/x"})
    assert env["PYTHONPATH"] == os.pathsep.join([str(REPO / "dags"), "/x"])


def test_help_shows_ours_and_the_librarys_flags(capfd):
    assert metadata_cli.export_main(["--help"]) == 0
    out = capfd.readouterr().out
    assert "--airflow-version" in out and "--sql-alchemy-conn" in out
