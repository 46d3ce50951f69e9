"""Real Airflow venvs with the providers MWAA pins, for loading converted DAGs in a DagBag.

The shared venvs of tools/airflow_envs.py hold plain ``apache-airflow[postgres]``, without the
Amazon and common-SQL providers the converter's DAGs import. This module builds one venv per
target version from ``tools.datapipeline.providers.requirements`` (the MWAA pins) next to the
shared ones (``MWAA_UPGRADE_VENVS_DIR``), once, under an fcntl lock, marked complete with its
spec so a half-built venv is rebuilt. THE ONE PLACE to swap for tools/workflows' MWAA-image
venvs when they land.

``python tests/tools/datapipeline/dp_airflow.py 2.11.0 [3.0.6]`` builds ahead of the tests.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.datapipeline.providers import pins, requirements  # noqa: E402

SPEC_VERSION = 1
# Resolver hints, not MWAA facts: without Airflow's constraints file pip backtracks for hours
# through sagemaker-studio releases (an Amazon provider dependency) whose newest need
# SQLAlchemy 2, which Airflow 3.0 does not allow; 1.0.27 is what resolves for 2.11.0.
HINTS: dict[str, tuple[str, ...]] = {"3.0.6": ("sagemaker-studio==1.0.27",)}
# Load script run inside the venv: prints one JSON document describing every DAG of a folder.
LOADER = r"""
import json, sys, types
import pendulum
from airflow.models import DagBag
try:
    from airflow import macros
except ImportError:  # pragma: no cover
    from airflow.sdk.execution_time import macros

START = pendulum.datetime(2024, 3, 1, 3, 30, tz="UTC")


class FakeTI:
    task_id = "a_task"
    start_date = START

    def xcom_pull(self, task_ids=None, key="return_value"):
        return ["s-STEP1", "s-STEP2"] if str(task_ids).endswith("_add_steps") else "j-CLUSTER"


def render(env, value, context):
    if isinstance(value, str):
        return env.from_string(value).render(**context) if "{{" in value else value
    if isinstance(value, (list, tuple)):
        return [render(env, v, context) for v in value]
    if isinstance(value, dict):
        return {k: render(env, v, context) for k, v in value.items()}
    return value if isinstance(value, (int, float, bool, type(None))) else str(value)


def jinja_outside_templates(task):
    found = []
    for name, value in vars(task).items():
        if name.startswith("_") or name in task.template_fields:
            continue
        if "{{" in json.dumps(value, default=str):
            found.append(name)
    return found


bag = DagBag(dag_folder=sys.argv[1], include_examples=False)
out = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in sorted(bag.dags.items()):
    env = dag.get_template_env()
    params = {k: dag.params[k] for k in dag.params}
    context = {"params": params, "data_interval_start": START, "data_interval_end": START.add(days=1),
               "macros": macros, "ti": FakeTI(), "task_instance": FakeTI(), "var": {"value": types.SimpleNamespace()}}
    tasks = {}
    for t in dag.tasks:
        sla = getattr(t, "sla", None)
        tasks[t.task_id] = {
            "operator": type(t).__name__,
            "module": type(t).__module__,
            "upstream": sorted(t.upstream_task_ids),
            "retries": t.retries,
            "retry_delay": t.retry_delay.total_seconds() if t.retry_delay is not None else None,
            "execution_timeout": t.execution_timeout.total_seconds() if t.execution_timeout else None,
            "sla": sla.total_seconds() if sla else None,
            "trigger_rule": str(getattr(t.trigger_rule, "value", t.trigger_rule)),
            "on_failure_callback": bool(t.on_failure_callback),
            "on_success_callback": bool(t.on_success_callback),
            "timeout": getattr(t, "timeout", None) if "Sensor" in type(t).__name__ else None,
            "mode": getattr(t, "mode", None),
            "rendered": {k: render(env, getattr(t, k), context) for k in t.template_fields if hasattr(t, k)},
            "jinja_outside_templates": jinja_outside_templates(t),
        }
    timetable = dag.timetable
    out["dags"][dag_id] = {
        "tasks": tasks,
        "timetable": type(timetable).__name__,
        "schedule": str(getattr(timetable, "summary", "")),
        "start_date": dag.start_date.isoformat() if dag.start_date else None,
        "end_date": dag.end_date.isoformat() if dag.end_date else None,
        "catchup": dag.catchup,
        "params": params,
        "sla_miss_callback": bool(getattr(dag, "sla_miss_callback", None)),
    }
print("DAGBAG-JSON" + json.dumps(out, default=str))
"""


def venvs_dir() -> Path:
    return Path(os.environ.get("MWAA_UPGRADE_VENVS_DIR", REPO / ".venvs")).resolve()


def venv_path(target: str) -> Path:
    return venvs_dir() / f"mwaa-providers-{target}"


def _spec(target: str) -> dict:
    return {"spec": SPEC_VERSION, "python": pins(target).python, "requirements": _requirements(target)}


def _requirements(target: str) -> list[str]:
    return [*requirements(target), *HINTS.get(target, ())]


def _ready(target: str) -> bool:
    try:
        return json.loads((venv_path(target) / ".complete").read_text()) == _spec(target)
    except (OSError, ValueError):
        return False


def _base_python(version: str) -> str:
    """An interpreter of the MWAA image's Python line (pyenv's, else python3.X on PATH)."""
    for candidate in sorted(Path(os.path.expanduser("~/.pyenv/versions")).glob(f"{version}.*"), reverse=True):
        exe = candidate / "bin" / "python"
        if exe.exists():
            return str(exe)
    found = shutil.which(f"python{version}")
    if not found:
        raise RuntimeError(f"no Python {version} found (pyenv or python{version} on PATH)")
    return found


def ensure(target: str) -> Path:
    """Build (once) and return the venv of MWAA ``target`` with its provider pins."""
    path = venv_path(target)
    if _ready(target):
        return path
    venvs_dir().mkdir(parents=True, exist_ok=True)
    with open(venvs_dir() / f".mwaa-providers-{target}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _ready(target):
            return path
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run([_base_python(pins(target).python), "-m", "venv", str(path)], check=True)
        cmd = [str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--no-input", *_requirements(target)]
        if subprocess.run(cmd).returncode != 0:
            shutil.rmtree(path, ignore_errors=True)
            raise RuntimeError(f"installing {' '.join(_requirements(target))} into {path} failed")
        (path / ".complete").write_text(json.dumps(_spec(target)))
    return path


def load_dags(target: str, dag_folder: Path, home: Path) -> dict:
    """Every DAG of ``dag_folder`` as loaded by a real DagBag of ``target`` (see LOADER)."""
    venv = ensure(target)
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k not in ("PYTHONPATH",)}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dag_folder),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", LOADER, str(dag_folder)], env=env, text=True, capture_output=True
    )
    marker = [line for line in proc.stdout.splitlines() if line.startswith("DAGBAG-JSON")]
    if proc.returncode != 0 or not marker:
        raise RuntimeError(f"DagBag load failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return json.loads(marker[-1][len("DAGBAG-JSON") :])


if __name__ == "__main__":
    for version in sys.argv[1:] or ["2.11.0"]:
        print(ensure(version), flush=True)
