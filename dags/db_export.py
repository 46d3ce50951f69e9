"""db_export: writes this environment's Airflow metadata to the migration bucket.

Configured only through dag_run.conf (docs/contracts.md §2); see mwaa_migration.export.
"""
import datetime
import os
import sys

from airflow import DAG

# Airflow 2 puts the DAG folder on sys.path; Airflow 3's DAG bundles do not always do so.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.append(_HERE)

try:
    from airflow.providers.standard.operators.python import PythonOperator
except ImportError:  # Airflow 2.x
    from airflow.operators.python import PythonOperator

from mwaa_migration import dagtasks  # noqa: E402

with DAG(
    dag_id="db_export",
    description="Export Airflow metadata for a blue/green MWAA upgrade",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,
    tags=["mwaa-migration"],
    default_args={"retries": 0},
) as dag:
    preflight = PythonOperator(task_id="preflight", python_callable=dagtasks.export_preflight)
    export = PythonOperator(task_id="export_tables", python_callable=dagtasks.export_tables,
                            execution_timeout=datetime.timedelta(hours=6))
    preflight >> export
