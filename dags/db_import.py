"""db_import: loads an export made by db_export into this environment's metadata DB.

Configured only through dag_run.conf (docs/contracts.md §2); see mwaa_migration.importer.
On Airflow 3 the first task stops with the supported path (tasks cannot reach the DB).
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
    dag_id="db_import",
    description="Import Airflow metadata exported by db_export (blue/green MWAA upgrade)",
    **dagtasks.DAG_ARGS,
) as dag:
    preflight = PythonOperator(task_id="preflight", python_callable=dagtasks.import_preflight)
    load = PythonOperator(
        task_id="import_tables", python_callable=dagtasks.import_tables, execution_timeout=datetime.timedelta(hours=6)
    )
    cut = PythonOperator(
        task_id="cutover", python_callable=dagtasks.cutover, execution_timeout=datetime.timedelta(hours=1)
    )
    preflight >> load >> cut
