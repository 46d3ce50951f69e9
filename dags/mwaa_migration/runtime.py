"""Where the code runs: inside an Airflow task (MWAA) or the local CLI, and what it may do there."""

from __future__ import annotations

import os


class UnsupportedRuntime(RuntimeError):
    pass


SUPPORTED_PATH = (
    "On Airflow 3.x, tasks cannot open the metadata database (the Task SDK has no DB session and "
    "MWAA 3.x blocks the network path), so db_import/db_export cannot run as MWAA tasks there. "
    "Supported path: run the import from outside the environment with the same library, e.g. "
    "`python -m mwaa_migration import --sql-alchemy-conn <target DB URL> --bucket <bucket> "
    "--prefix <prefix> --conf-json '{...}' --fernet-key <target key>` (the local rehearsal does "
    "exactly this), or migrate to 2.11.x first and upgrade that environment in place to 3.x."
)


def airflow_version() -> str:
    from importlib.metadata import version

    return version("apache-airflow")


def on_mwaa(environ=None) -> bool:
    """True when the process runs inside an MWAA container (MWAA sets these variables)."""
    env = os.environ if environ is None else environ
    return bool(env.get("MWAA_AIRFLOW_COMPONENT") or env.get("AIRFLOW_ENV_NAME"))


def check_db_access(*, in_task: bool, version: str, environ=None) -> None:
    """Refuse at once when metadata DB access is impossible: an Airflow 3 task (MWAA or not).

    The CLI (``python -m mwaa_migration``) is not a task: it connects with the URL it is given.
    Inside a task, the Airflow major version decides; MWAA markers only sharpen the message.
    """
    major = int(str(version).split(".")[0])
    if in_task and major >= 3:
        where = "an MWAA" if on_mwaa(environ) else "an"
        raise UnsupportedRuntime(f"this is {where} Airflow {version} task: {SUPPORTED_PATH}")
