"""The rehearsal's report file (tools/rehearse/output.py): a report naming a Fernet key is
owner-only from the moment it exists (issue 12, item 8), never widened later."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tools.rehearse.output import write_report


@pytest.fixture
def no_chmod(monkeypatch):
    """Any change of mode after creation fails the test: the mode must be right at creation."""

    def refuse(*args, **kwargs):
        raise AssertionError("the report's mode was changed after it was created")

    monkeypatch.setattr(os, "chmod", refuse)
    monkeypatch.setattr(Path, "chmod", refuse)
    old = os.umask(0o022)  # the usual umask: files would be world-readable
    yield
    os.umask(old)


def test_a_report_with_a_kept_key_is_created_owner_only(tmp_path, no_chmod):
    out = write_report({"kept": {"target_fernet_key": "k" * 44}}, str(tmp_path / "r" / "rehearsal.json"))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert json.loads(out.read_text())["kept"]["target_fernet_key"] == "k" * 44
    assert list(out.parent.iterdir()) == [out]  # no temporary file left


def test_a_stale_world_readable_temporary_file_does_not_leak_its_mode(tmp_path, monkeypatch):
    out = tmp_path / "rehearsal.json"
    stale = tmp_path / "rehearsal.json.tmp"
    stale.write_text("old")
    stale.chmod(0o644)
    write_report({"kept": {"target_fernet_key": "k"}}, str(out))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_a_report_without_secrets_keeps_the_usual_mode(tmp_path, no_chmod):
    out = write_report({"verdict": {"ok": True}}, str(tmp_path / "rehearsal.json"))
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_an_existing_report_is_replaced_not_appended(tmp_path):
    out = tmp_path / "rehearsal.json"
    write_report({"a": 1, "kept": {"x": 1}}, str(out))
    write_report({"b": 2}, str(out))
    assert json.loads(out.read_text()) == {"b": 2}
