"""app.py end to end (a subprocess, as the CDK CLI runs it): a bad stage stops before any
construct with the loader's message; a good one writes the assembly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(context: dict, outdir: Path) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        CDK_CONTEXT_JSON=json.dumps(context),
        CDK_OUTDIR=str(outdir),
        JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
    )
    return subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_unknown_stage_fails_with_one_clear_message(tmp_path):
    r = _run({"stage": "nope"}, tmp_path)
    assert r.returncode == 2
    assert "config error" in r.stderr and "nope" in r.stderr and "dev" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "manifest.json").exists()  # nothing synthesized


@pytest.mark.synth
def test_default_stage_is_dev(tmp_path):
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    context.pop("stage")
    r = _run(context, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert {"dev-network", "dev-migration-storage", "dev-source", "dev-target", "dev-migration"} <= set(
        manifest["artifacts"]
    )
