import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
ACCOUNT = "111122223333"
REGION = "eu-west-1"
TARGET_ROLE = f"arn:aws:iam::{ACCOUNT}:role/mwaa-upgrade-target-execution"


def load_env(name: str) -> dict:
    """A GetEnvironment ``Environment`` from a fixture (saved as ``aws mwaa get-environment`` prints it)."""
    return json.loads((FIXTURES / f"{name}.json").read_text())["Environment"]


@pytest.fixture
def env():
    return load_env
