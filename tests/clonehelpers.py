"""Shared data for the clone tests (a unique module name: pytest imports test helpers by basename)."""

import json
from pathlib import Path

FIXTURES = Path(__file__).parent / "lambda" / "clone_env" / "fixtures"
ACCOUNT = "111122223333"
REGION = "eu-west-1"
TARGET_ROLE = f"arn:aws:iam::{ACCOUNT}:role/mwaa-upgrade-target-execution"


def load_env(name: str) -> dict:
    """A GetEnvironment ``Environment`` from a fixture (saved as ``aws mwaa get-environment`` prints it)."""
    return json.loads((FIXTURES / f"{name}.json").read_text())["Environment"]
