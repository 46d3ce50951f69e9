"""One virtualenv per Airflow version, built on demand and cached inside the clone.

``ensure_venv("2.10.3")`` returns ``<repo>/.venvs/airflow-2.10.3`` (env
``MWAA_UPGRADE_VENVS_DIR`` moves the parent folder). A venv is built under an fcntl lock (two
processes never build the same one) and marked complete with a file holding its spec, so a
finished venv is reused and a half-built one is rebuilt. Airflow's constraints files are not
reachable from our machines, so the pins a version needs without them are listed here
(see shared/reference/metadata-migration.md).

``migrate(version, db_url)`` runs ``airflow db migrate`` of that version against a database;
``run_airflow`` / ``run_python`` run anything else in the venv with a private AIRFLOW_HOME.

CLI: ``python tools/dev/airflow_envs.py ensure 2.7.2 3.0.6 ...`` / ``migrate V URL``.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Versions the tests exercise (every migration schema family in lambda/mwaa_common/versions.py).
TEST_VERSIONS = ("2.7.2", "2.8.1", "2.9.2", "2.10.3", "2.11.0", "3.0.6")

# Pins a version needs when installed without Airflow's constraints file.
PINS: dict[str, tuple[str, ...]] = {
    "2.7.2": ("pendulum<3", "flask-session<0.6", "connexion<3", "werkzeug<3"),
    "2.8.1": ("flask-session<0.6",),
}
# What dags/mwaa_migration needs besides Airflow (MWAA images ship it; plain Airflow does not).
EXTRA = ("boto3==1.44.5",)
SPEC_VERSION = 1
FERNET_KEY_DEFAULT = "yq5mQq3mMR2hHXs7mLZbG8Y7tQyBa9PjUBr4TzTQ7eQ="  # tests only


def venvs_dir() -> Path:
    return Path(os.environ.get("MWAA_UPGRADE_VENVS_DIR", REPO / ".venvs")).resolve()


def venv_path(version: str) -> Path:
    return venvs_dir() / f"airflow-{version}"


def python(version: str) -> Path:
    return venv_path(version) / "bin" / "python"


def requirements(version: str) -> list[str]:
    return [f"apache-airflow[postgres]=={version}", *PINS.get(version, ()), *EXTRA]


def _spec(version: str) -> dict:
    return {
        "spec": SPEC_VERSION,
        "requirements": requirements(version),
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
    }


@contextmanager
def _lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def is_ready(version: str) -> bool:
    marker = venv_path(version) / ".complete"
    try:
        return json.loads(marker.read_text()) == _spec(version)
    except (OSError, ValueError):
        return False


def _base_python() -> str:
    return getattr(sys, "_base_executable", None) or sys.executable


# pip's complaints about this machine's index configuration: noise, never the cause of a failure.
PIP_NOISE = ("is ignored: it is neither a file nor a directory",)


def build_log(version: str) -> Path:
    """Full output of the last build of ``version``'s venv (kept; named when a build fails)."""
    return venvs_dir() / f".airflow-{version}.log"


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _logged(argv: list[str], log: Path) -> None:
    """Run ``argv`` with all its output appended to ``log``; CalledProcessError on failure."""
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"$ {' '.join(argv)}\n")
        fh.flush()
        subprocess.run(argv, check=True, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    kept = [line for line in text if not any(noise in line for noise in PIP_NOISE)]
    return "\n".join(f"  | {line}" for line in kept[-lines:])


def ensure_venv(version: str, *, quiet: bool = True, progress: Callable[[str], None] = _say) -> Path:
    """Build (once) and return the venv of ``version``.

    A build prints one progress line per step (create, install, ready) through ``progress``;
    everything the steps print goes to :func:`build_log`, which a failure names together with
    its last lines (pip's index-configuration warnings left out). ``quiet=False`` also prints
    the log's path before the steps.
    """
    path = venv_path(version)
    if is_ready(version):
        return path
    with _lock(venvs_dir() / f".airflow-{version}.lock"):
        if is_ready(version):
            return path
        log = build_log(version)
        log.write_text("")
        if not quiet:
            progress(f"venv {version}: full output in {log}")
        if path.exists():
            shutil.rmtree(path)
        reqs = requirements(version)
        steps = (
            (f"venv {version}: creating {path}", [_base_python(), "-m", "venv", str(path)]),
            (
                f"venv {version}: installing {' '.join(reqs)}",
                [
                    str(path / "bin" / "python"),
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    *reqs,
                ],
            ),
        )
        for line, argv in steps:
            progress(line)
            try:
                _logged(argv, log)
            except (subprocess.CalledProcessError, OSError) as exc:
                shutil.rmtree(path, ignore_errors=True)
                why = f"exit {exc.returncode}" if isinstance(exc, subprocess.CalledProcessError) else str(exc)
                raise RuntimeError(
                    f"venv {version}: {line.split(': ', 1)[1]} failed ({why}); full output: {log}; "
                    f"last lines:\n{_tail(log)}"
                ) from None
        (path / ".complete").write_text(json.dumps(_spec(version)))
        progress(f"venv {version}: ready")
    return path


def airflow_env(
    version: str,
    db_url: str | None = None,
    *,
    fernet_key: str | None = None,
    home: Path | None = None,
    extra: dict | None = None,
) -> dict:
    """Environment for running that version's Airflow against ``db_url``."""
    home = home or (REPO / ".cache" / "airflow-home" / version)
    home.mkdir(parents=True, exist_ok=True)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__FERNET_KEY": fernet_key or FERNET_KEY_DEFAULT,
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "PATH": f"{venv_path(version) / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
        }
    )
    if db_url:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = db_url
    if extra:
        env.update(extra)
    return env


def run_python(
    version: str,
    args: list[str],
    *,
    db_url: str | None = None,
    fernet_key: str | None = None,
    env_extra: dict | None = None,
    check: bool = True,
    capture: bool = True,
    **kw,
) -> subprocess.CompletedProcess:
    ensure_venv(version)
    env = airflow_env(version, db_url, fernet_key=fernet_key, extra=env_extra)
    proc = subprocess.run([str(python(version))] + args, env=env, text=True, capture_output=capture, **kw)
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"airflow {version}: {' '.join(args)[:200]} exited {proc.returncode}\n"
            f"--- stdout ---\n{(proc.stdout or '')[-4000:]}\n"
            f"--- stderr ---\n{(proc.stderr or '')[-8000:]}"
        )
    return proc


def run_airflow(version: str, args: list[str], **kw) -> subprocess.CompletedProcess:
    return run_python(version, ["-m", "airflow", *args], **kw)


def migrate(version: str, db_url: str, **kw) -> None:
    """``airflow db migrate`` of ``version`` on ``db_url`` (creates or upgrades the schema)."""
    run_airflow(version, ["db", "migrate"], db_url=db_url, **kw)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("ensure")
    e.add_argument("versions", nargs="*", default=list(TEST_VERSIONS))
    m = sub.add_parser("migrate")
    m.add_argument("version")
    m.add_argument("db_url")
    a = ap.parse_args(argv)
    if a.cmd == "ensure":
        for v in a.versions:
            print(ensure_venv(v, quiet=False), flush=True)
    else:
        migrate(a.version, a.db_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
