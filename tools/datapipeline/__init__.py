"""AWS Data Pipeline definitions -> Airflow DAGs for MWAA (parse -> plan -> render + report)."""

from tools.datapipeline.cli import main

__all__ = ["main"]
