"""The ``mwaa-upgrade`` command line (tools/cli.py): every job registered, reachable, and
documented with an example; one style of usage errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools import cli

NAMES = [c.name for c in cli.COMMANDS]


def test_every_job_of_issue_11_is_registered_once():
    assert len(NAMES) == len(set(NAMES))
    assert {"rehearse", "plan-clone", "review", "post-deploy-check", "export", "import"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_each_job_imports_and_its_help_exits_0(name, capsys):
    command = next(c for c in cli.COMMANDS if c.name == name)
    assert callable(cli.load(command))
    assert cli.main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"usage: mwaa-upgrade {name}" in out


def test_top_level_help_lists_every_job_with_an_example(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for c in cli.COMMANDS:
        assert f"  {c.name} " in out
        assert c.example in out
        assert c.example.startswith(f"mwaa-upgrade {c.name} ")


def test_help_job_is_the_jobs_help(capsys):
    assert cli.main(["help", "rehearse"]) == 0
    assert "--source-version" in capsys.readouterr().out


def test_unknown_job_is_one_line_exit_2(capsys):
    assert cli.main(["rehaerse"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'rehaerse' is not a job" in err and "rehearse" in err


def test_no_job_prints_usage_exit_2(capsys):
    assert cli.main([]) == 2
    assert "jobs:" in capsys.readouterr().out


def test_bad_flag_of_a_job_is_exit_2(capsys):
    assert cli.main(["rehearse", "--rows", "x"]) == 2
    assert "invalid int value" in capsys.readouterr().err


def test_console_script_is_installed_by_make_venv():
    script = Path(sys.executable).parent / "mwaa-upgrade"
    assert script.exists(), "make venv installs the checkout (pip install -e .) with its console script"
    p = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "post-deploy-check" in p.stdout
