"""One App per shipped stage for the whole session (built lazily, synthesized once).

cdk.json's context (feature flags) is loaded into App(context=...) so tests see what
``cdk synth`` sees. CDK's built-in template validator is off (CDK_VALIDATION=false); the
cdk-nag plugin is exercised separately in test_nag.py.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path

os.environ.setdefault("CDK_VALIDATION", "false")

import aws_cdk as cdk  # noqa: E402
import pytest  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from stacks import StageStacks, build_stage  # noqa: E402
from stacks.config import StageConfig, load_stage  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONTEXT = json.loads((ROOT / "cdk.json").read_text())["context"]
STAGES = sorted(p.stem for p in (ROOT / "config").glob("*.yaml"))
# the shipped stages that migrate the metadata (migration.metadata: true): DAG runs, publishers
METADATA_STAGES = [s for s in STAGES if load_stage(s).migration.metadata]


class Built:
    def __init__(self, stage: str):
        self.cfg: StageConfig = load_stage(stage)
        self.app = cdk.App(context=dict(CONTEXT, stage=stage))
        self.stacks: StageStacks = build_stage(self.app, self.cfg)
        self._templates: dict[str, Template] = {}
        self._assembly = None

    def template(self, which: str) -> Template:
        assert getattr(self.stacks, which) is not None, f"stage {self.cfg.stage} has no {which} stack"
        if which not in self._templates:
            self._templates[which] = Template.from_stack(getattr(self.stacks, which))
        return self._templates[which]

    def json(self, which: str) -> dict:
        return self.template(which).to_json()

    def assembly(self) -> cdk.cx_api.CloudAssembly:
        if self._assembly is None:
            self._assembly = self.app.synth()
        return self._assembly


@cache
def built(stage: str) -> Built:
    return Built(stage)


@pytest.fixture(scope="session", params=STAGES)
def stage(request) -> Built:
    return built(request.param)


@pytest.fixture(scope="session", params=METADATA_STAGES)
def migrating(request) -> Built:
    """Each shipped stage with migration.metadata: true."""
    return built(request.param)


@pytest.fixture(scope="session")
def inplace() -> Built:
    return built("inplace-3x.example")


@pytest.fixture(scope="session")
def dev() -> Built:
    return built("dev")


@pytest.fixture(scope="session")
def prod() -> Built:
    return built("prod")


@pytest.fixture(scope="session")
def example() -> Built:
    return built("existing-vpc.example")
