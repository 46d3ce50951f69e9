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

from mwaa_migration import dagtasks  # noqa: E402

PythonOperator = dagtasks.python_operator()

with DAG(
    dag_id="db_export",
    description="Export Airflow metadata for a blue/green MWAA upgrade",
    **dagtasks.DAG_ARGS,
) as dag:
    preflight = PythonOperator(task_id="preflight", python_callable=dagtasks.export_preflight)
    export = PythonOperator(
        task_id="export_tables", python_callable=dagtasks.export_tables, execution_timeout=datetime.timedelta(hours=6)
    )
    preflight >> export
