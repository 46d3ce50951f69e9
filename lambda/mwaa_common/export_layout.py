"""Where one export lives in the migration bucket (docs/contracts.md section 3).

The DAG library (dags/mwaa_migration/export.py ``keys``) computes the same paths inside
Airflow, where this package is not available; tests/dags/test_metadata_plan.py checks both
agree.
"""

from __future__ import annotations

import hashlib


def rerun_key(rerun_token: str) -> str:
    """The ``rerun`` conf value of a deliberate re-run: its own, fresh export ("" = none)."""
    return hashlib.sha256(rerun_token.encode()).hexdigest()[:12] if rerun_token else ""


def export_base(prefix: str, migration_id: str, rerun: str = "") -> str:
    """``{prefix}{migration_id}/`` or, for a re-run, ``{prefix}{migration_id}/reruns/{rerun}/``."""
    return f"{prefix}{migration_id}/" + (f"reruns/{rerun}/" if rerun else "")
