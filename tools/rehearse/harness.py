"""Process management of one rehearsal: each step's child processes (own process group,
log file, peak memory; tools/rehearse/procs.py), the private PostgreSQL and its databases
(tools/dev/pgcluster.py), the Airflow venvs (tools/dev/airflow_envs.py), moto, and the
cleanup of all of it. The steps themselves are in :mod:`tools.rehearse.orchestrate`."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import sys
import time
import uuid
from pathlib import Path

from mwaa_common import versions as V

from . import checks, procs

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"


def library_argv(python: Path, command: str, url: str, bucket: str, prefix: str, conf_json: str) -> list[str]:
    """``python -m mwaa_migration export|import ...`` in a version's venv.

    The Fernet key is not an argument: it travels in the child's environment
    (AIRFLOW__CORE__FERNET_KEY, see ``airflow_env``), never in the process list. Values are
    passed as ``--flag=value`` so none can be taken for an option.
    """
    return [
        str(python),
        "-m",
        "mwaa_migration",
        command,
        f"--sql-alchemy-conn={url}",
        f"--bucket={bucket}",
        f"--prefix={prefix}",
        f"--conf-json={conf_json}",
    ]


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _env_name(side: str, version: str) -> str:
    return f"rehearsal-{side}-{version.replace('.', '-')}"


class RunResources:
    """What one run starts and must clean up: its log folder, PostgreSQL databases, Airflow
    venvs, moto, and the child processes of each step (with their measurements)."""

    def __init__(self, plan: dict, *, out=print):
        self.plan = plan
        self.out = out
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
        self.run_id = f"{stamp}-{uuid.uuid4().hex[:6]}"
        self.migration_id = (
            plan["manifest"]["migration_id"] if plan["mode"] == "from-export" else f"rehearsal-{self.run_id}"
        )
        self.run_dir = REPO / ".cache" / "rehearse" / self.run_id
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.source, self.target = plan["source"], plan["target"]
        self.source_env = _env_name("source", self.source)
        self.target_env = _env_name("target", self.target)
        self.prefix = f"data/migration/{self.source}_to_{self.target}/export/"
        self.target_key = checks.generate_fernet_key()
        self.steps: list[dict] = []
        self.created_dbs: list[str] = []
        self.urls: dict[str, str] = {}
        self.moto = None
        self.pg_started_by_us = False
        self.streams_seeded = 0
        self.report: dict = {}
        self._peak: int | None = None

    # ---- steps and children -------------------------------------------------------
    @contextlib.contextmanager
    def step(self, name: str):
        rec = {"name": name, "seconds": 0.0, "peak_memory_mb": None, "status": "running"}
        self.steps.append(rec)
        self._peak = None
        self.out(f"==> {name}", flush=True)
        started = time.monotonic()
        try:
            yield rec
            rec["status"] = "ok"
        except KeyboardInterrupt:
            rec["status"] = "interrupted"
            raise
        except BaseException:
            rec["status"] = "failed"
            raise
        finally:
            rec["seconds"] = round(time.monotonic() - started, 2)
            if self._peak is not None:
                rec["peak_memory_mb"] = round(self._peak / 2**20, 1)
            mem = "" if self._peak is None else f", peak {self._peak / 2**20:.0f} MB"
            self.out(f"    {name}: {rec['status']} in {rec['seconds']:.1f}s{mem}", flush=True)

    def child(self, name: str, argv: list[str], env: dict, *, show: bool = True) -> procs.ChildResult:
        log = self.run_dir / f"{len(self.steps):02d}-{name.replace(' ', '_')}.log"
        res = procs.run(
            argv,
            env=env,
            cwd=str(REPO),
            log_path=log,
            label=f"[{name}] ",
            echo=lambda line: self.out(line, flush=True),
            show_output=show,
        )
        self._peak = max(self._peak or 0, res.peak_rss_bytes)
        return procs.check(res, name, log)

    def tool_python(self) -> list[str]:
        return [sys.executable]

    def airflow_env(self, version: str, db_url: str | None, key: str | None, side: str) -> dict:
        from tools.dev import airflow_envs

        # deprecation chatter of old versions would drown the progress lines
        extra = {"PYTHONPATH": str(DAGS), "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::FutureWarning"}
        if self.moto is not None:
            extra.update(self.moto.env())
        env = airflow_envs.airflow_env(
            version, db_url, fernet_key=key, home=self.run_dir / f"airflow-home-{side}", extra=extra
        )
        if self.moto is not None:
            from .aws import UNSET

            for name in UNSET:
                env.pop(name, None)
        return env

    # ---- infrastructure ---------------------------------------------------------------
    def ensure_postgres(self) -> None:
        from tools.dev import pgcluster

        with self.step("postgres"):
            if not pgcluster._accepts(pgcluster.port()):
                self.pg_started_by_us = True
                self.out(f"  starting a private PostgreSQL on 127.0.0.1:{pgcluster.port()}")
                self.child(
                    "postgres",
                    self.tool_python() + [str(REPO / "tools" / "dev" / "pgcluster.py"), "ensure"],
                    dict(os.environ),
                )

    def ensure_venv(self, version: str) -> None:
        from tools.dev import airflow_envs

        with self.step(f"venv {version}"):
            if airflow_envs.is_ready(version):
                return
            self.out(
                f"  installing Airflow {version} into {airflow_envs.venv_path(version)} (once; cached for later runs)"
            )
            self.child(
                f"venv {version}",
                self.tool_python()
                + [
                    "-c",
                    "import sys; from tools.dev.airflow_envs import ensure_venv; ensure_venv(sys.argv[1])",
                    version,
                ],
                dict(os.environ),
            )

    def start_moto(self) -> None:
        from .aws import MotoStack

        with self.step("aws (moto)"):
            self.moto = MotoStack(source_env=self.source_env, target_env=self.target_env).start()
            self.out(
                f"  moto on {self.moto.endpoint}: bucket {self.moto.bucket} (SSE-KMS), "
                f"log groups airflow-{self.source_env}-*/airflow-{self.target_env}-*"
            )

    def template(self, version: str) -> str:
        """A database migrated once by ``airflow db migrate`` of ``version``, copied per run."""
        from tools.dev import pgcluster

        name = f"rehearse_tpl_{version.replace('.', '_')}"
        lock = REPO / ".cache" / "rehearse" / f"{name}.lock"
        with open(lock, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            if pgcluster.database_exists(name):
                if self._revision(pgcluster.url(name)) == V.alembic_head(version):
                    return name
                pgcluster.drop_database(name)
            tmp = pgcluster.create_database(prefix=f"rehearse_tplbuild_{version.replace('.', '_')}")
            try:
                self.out(f"  airflow db migrate ({version}) for the template database {name}")
                self.child(
                    f"db migrate {version}",
                    [str(self._python(version)), "-m", "airflow", "db", "migrate"],
                    self.airflow_env(version, pgcluster.url(tmp), None, "migrate"),
                )
                rev = self._revision(pgcluster.url(tmp))
                if rev != V.alembic_head(version):
                    raise RuntimeError(
                        f"airflow db migrate of {version} left alembic revision {rev}, but "
                        f"mwaa_common.versions says {V.alembic_head(version)}: fix the table"
                    )
                conn = pgcluster._admin()
                try:
                    with conn.cursor() as cur:
                        cur.execute(f'ALTER DATABASE "{tmp}" RENAME TO "{name}"')
                finally:
                    conn.close()
            except BaseException:
                pgcluster.drop_database(tmp)
                raise
        return name

    @staticmethod
    def _python(version: str) -> Path:
        from tools.dev import airflow_envs

        return airflow_envs.python(version)

    @staticmethod
    def _revision(url: str) -> str | None:
        conn = checks.connect(url, flag="database")
        try:
            return checks.alembic_revision(conn)
        finally:
            conn.close()

    def fresh_db(self, side: str, version: str) -> str:
        from tools.dev import pgcluster

        with self.step(f"{side} db ({version})"):
            tpl = self.template(version)
            name = pgcluster.create_database(f"rehearse_{self.run_id.replace('-', '_')}_{side}", template=tpl)
            self.created_dbs.append(name)
            url = pgcluster.url(name)
            self.urls[side] = url
            self.out(f"  {url} (a copy of {tpl}, built by Airflow {version}'s db migrate)")
            return url

    # ---- cleanup ------------------------------------------------------------------------
    def cleanup(self) -> None:
        procs.terminate_all()
        if self.moto is not None:
            with contextlib.suppress(Exception):
                self.moto.stop()
        if self.plan["keep"]:
            return
        from tools.dev import pgcluster

        for name in self.created_dbs:
            try:
                pgcluster.drop_database(name)
            except Exception as exc:  # noqa: BLE001 - report, go on cleaning
                self.out(f"  could not drop database {name}: {exc}")
        if self.pg_started_by_us and not self._pg_in_use():
            pgcluster.stop()

    @staticmethod
    def _pg_in_use() -> bool:
        """Someone else (another run, a test) connected to the cluster we started."""
        from tools.dev import pgcluster

        try:
            conn = pgcluster._admin()
        except Exception:  # noqa: BLE001 - not reachable: nothing to stop
            return True
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                    "'client backend' AND pid <> pg_backend_pid()"
                )
                return cur.fetchone()[0] > 0
        finally:
            conn.close()
