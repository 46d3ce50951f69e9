"""The DAG files parse in every supported version; Airflow 3 tasks refuse at once."""

from __future__ import annotations

import json

import airflow_envs
import pytest
from mig_harness import REPO

VERSIONS = airflow_envs.TEST_VERSIONS

PARSE = """
import json
from airflow.models.dagbag import DagBag
b = DagBag(dag_folder={folder!r}, include_examples=False)
print(json.dumps({{"errors": {{k: str(v) for k, v in b.import_errors.items()}},
                  "dags": sorted(b.dag_ids),
                  "tasks": {{d: sorted(t.task_id for t in b.dags[d].tasks) for d in b.dag_ids}}}}))
"""


@pytest.mark.airflow
@pytest.mark.parametrize("version", VERSIONS)
def test_dag_files_parse_without_import_errors(version):
    folder = str(REPO / "dags")
    p = airflow_envs.run_python(
        version, ["-c", PARSE.format(folder=folder)], env_extra={"AIRFLOW__CORE__DAGS_FOLDER": folder}
    )
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["errors"] == {}
    assert out["dags"] == ["db_export", "db_import"]
    assert out["tasks"]["db_import"] == ["cutover", "import_tables", "preflight"]
    assert out["tasks"]["db_export"] == ["export_tables", "preflight"]


TASK = """
from mwaa_migration import dagtasks
class Run: conf = {{}}
try:
    dagtasks.{fn}(dag_run=Run())
except Exception as exc:
    print(type(exc).__name__ + ": " + str(exc))
"""


@pytest.mark.airflow
@pytest.mark.parametrize("fn", ["import_preflight", "import_tables", "export_tables"])
@pytest.mark.parametrize("mwaa", [True, False])
def test_airflow3_task_stops_at_once_naming_the_supported_path(fn, mwaa):
    env = {"PYTHONPATH": str(REPO / "dags")}
    if mwaa:
        env["MWAA_AIRFLOW_COMPONENT"] = "worker"
    p = airflow_envs.run_python("3.0.6", ["-c", TASK.format(fn=fn)], env_extra=env)
    out = p.stdout.strip().splitlines()[-1]
    assert out.startswith("UnsupportedRuntime: this is " + ("an MWAA" if mwaa else "an") + " Airflow 3.0.6 task")
    assert "python -m mwaa_migration import" in out and "cannot open the metadata database" in out


@pytest.mark.airflow
def test_airflow2_task_passes_the_guard():
    p = airflow_envs.run_python(
        "2.11.0", ["-c", TASK.format(fn="import_preflight")], env_extra={"PYTHONPATH": str(REPO / "dags")}
    )
    assert p.stdout.strip().splitlines()[-1] == "ConfError: dag_run.conf field 'bucket' is required"
