"""Quiet venv builds (tools/dev/airflow_envs.py): one progress line per step, everything else
in a log file that a failure names, pip's index-configuration warnings never shown."""

from __future__ import annotations

import pytest

from tools.dev import airflow_envs


@pytest.fixture
def venvs(tmp_path, monkeypatch):
    monkeypatch.setenv("MWAA_UPGRADE_VENVS_DIR", str(tmp_path))
    return tmp_path


@pytest.mark.slow
def test_a_build_prints_one_line_per_step_and_logs_the_rest(venvs, monkeypatch, capfd):
    # "pip" is already in a fresh venv: the install step runs pip for real, offline, quickly.
    monkeypatch.setattr(airflow_envs, "requirements", lambda version: ["pip"])
    lines: list[str] = []
    path = airflow_envs.ensure_venv("9.9.9", progress=lines.append)
    assert path == venvs / "airflow-9.9.9" and airflow_envs.is_ready("9.9.9")
    assert lines == [f"venv 9.9.9: creating {path}", "venv 9.9.9: installing pip", "venv 9.9.9: ready"]
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""  # pip's own output went to the log
    log = airflow_envs.build_log("9.9.9").read_text()
    assert "$ " in log and "-m pip install" in log and "Requirement already satisfied" in log
    # built once: a second call neither builds nor prints
    airflow_envs.ensure_venv("9.9.9", progress=lines.append)
    assert len(lines) == 3


@pytest.mark.slow
def test_a_failed_build_names_its_log_and_leaves_no_half_venv(venvs, monkeypatch):
    monkeypatch.setattr(airflow_envs, "requirements", lambda version: ["/nonexistent/package-dir"])
    lines: list[str] = []
    with pytest.raises(RuntimeError) as err:
        airflow_envs.ensure_venv("9.9.8", progress=lines.append)
    msg = str(err.value)
    log = airflow_envs.build_log("9.9.8")
    assert f"full output: {log}" in msg and "installing /nonexistent/package-dir failed (exit 1)" in msg
    assert "/nonexistent/package-dir" in log.read_text()
    assert not (venvs / "airflow-9.9.8").exists()
    assert len(lines) == 2  # create, install; no "ready"


def test_the_failure_tail_leaves_out_pip_index_noise(tmp_path):
    log = tmp_path / "x.log"
    noise = "WARNING: Location 'file:///opt/pypi/simple' is ignored: it is neither a file nor a directory."
    log.write_text("\n".join([noise, "ERROR: No matching distribution found for apache-airflow==9", noise]) + "\n")
    tail = airflow_envs._tail(log)
    assert "No matching distribution" in tail and "is ignored" not in tail
