"""``python -m tools.rehearse``: a whole metadata migration on this machine, then a verdict.

Real PostgreSQL (tools/pgcluster.py), real Airflow per version (tools/airflow_envs.py), S3,
KMS and CloudWatch Logs on a loopback moto server, and the same export/import code the DAGs
run in MWAA (dags/mwaa_migration), each side in its own version's venv.

Modes (exactly one):
  generated history (default)  fresh source DB of --source-version seeded with --rows
  --source-db URL              an existing Airflow database of --source-version (read by the
                               export; it pauses DAGs for the export and restores them)
  --from-export PATH           a folder downloaded from a migration bucket, imported into a
                               fresh database of --target-version
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Optional

from mwaa_common import versions as V

from . import checks, procs
from .checks import UsageError
from .report import integrity, render, rerun_check, secrets_check, table_accounting, verdict

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
DEFAULT_SOURCE, DEFAULT_TARGET = "2.10.3", "2.11.0"
DEFAULT_ROWS = 1000
DEFAULT_REPORT = "reports/rehearsal.json"
TASK_LOG_DAYS = 3  # the import's defaults (docs/contracts.md)
TASK_LOG_STATES = ("failed",)
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    supported = ", ".join(checks.supported_versions())
    ap = argparse.ArgumentParser(
        prog="python -m tools.rehearse",
        description="Rehearse an MWAA metadata migration locally (real Airflow + PostgreSQL, "
                    "S3/Logs on moto) and verify that every exported row is accounted for.",
        epilog=f"supported versions: {supported}")
    ap.add_argument("--source-version", help=f"Airflow version of the source (default "
                    f"{DEFAULT_SOURCE}; with --from-export: the manifest's)")
    ap.add_argument("--target-version", default=DEFAULT_TARGET,
                    help=f"Airflow version of the target (default {DEFAULT_TARGET})")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--source-db", metavar="URL",
                     help="existing source metadata DB (postgresql+psycopg2://USER@HOST:PORT/DB)")
    src.add_argument("--from-export", metavar="PATH",
                     help="folder downloaded from s3://BUCKET/PREFIX/MIGRATION_ID/ "
                          "(manifest.json + tables/)")
    ap.add_argument("--source-fernet-key", metavar="KEY",
                    help="Fernet key of the --source-db environment (default: "
                         "$AIRFLOW__CORE__FERNET_KEY)")
    ap.add_argument("--rows", type=int, metavar="N",
                    help=f"size of the generated history (default {DEFAULT_ROWS})")
    ap.add_argument("--keep", action="store_true",
                    help="keep the databases (print their URLs and the target's Fernet key) "
                         "and save the export under .cache/rehearse/RUN/export")
    ap.add_argument("--report", metavar="PATH", default=DEFAULT_REPORT,
                    help=f"where to write the JSON report (default {DEFAULT_REPORT})")
    return ap.parse_args(argv)


def validate(args: argparse.Namespace, environ: Optional[dict] = None) -> dict:
    """Check the flags (and what they point at) before anything is started.

    Returns the plan: mode, versions, rows, source key, manifest (for --from-export).
    Raises UsageError with one clear message.
    """
    environ = os.environ if environ is None else environ
    plan: dict = {"keep": args.keep, "report": args.report, "target": args.target_version}
    if args.rows is not None and (args.source_db or args.from_export):
        raise UsageError(f"--rows {args.rows}: only for a generated history; it cannot be "
                         f"combined with {'--source-db' if args.source_db else '--from-export'}")
    if args.rows is not None and not 1 <= args.rows <= 10_000_000:
        raise UsageError(f"--rows {args.rows}: must be between 1 and 10000000")
    key = args.source_fernet_key
    if key is not None and not args.source_db:
        raise UsageError("--source-fernet-key: only used with --source-db (a generated source "
                         "gets its own key; an export folder holds decrypted values)")
    if args.from_export:
        manifest = checks.check_export_folder(args.from_export)
        msrc = manifest["source_airflow_version"]
        if args.source_version and args.source_version != msrc:
            raise UsageError(f"--source-version {args.source_version}: the export in "
                             f"{args.from_export} was made by Airflow {msrc}")
        plan.update(mode="from-export", source=msrc, manifest=manifest,
                    export_dir=str(Path(args.from_export).resolve()))
        checks.check_version("--target-version", args.target_version)
        try:
            checks.check_pair(msrc, args.target_version)
        except UsageError as exc:
            raise UsageError(f"--from-export {args.from_export}: the export was made by "
                             f"Airflow {msrc} ({exc})") from None
        return plan
    source = args.source_version or DEFAULT_SOURCE
    checks.check_pair(source, args.target_version)
    plan["source"] = source
    if args.source_db:
        key = key if key is not None else environ.get("AIRFLOW__CORE__FERNET_KEY") or None
        conn = checks.connect(args.source_db)
        try:
            checks.check_revision("--source-version", source, checks.alembic_revision(conn),
                                  url=args.source_db)
            enc = checks.encrypted_counts(conn)
            if key:
                checks.check_key_decrypts(conn, key)
            elif enc["variable"] or enc["connection"]:
                raise UsageError(
                    f"--source-db {checks.mask_url(args.source_db)} holds {enc['variable']} "
                    f"encrypted variables and {enc['connection']} encrypted connections: pass "
                    f"the source environment's key with --source-fernet-key or "
                    f"AIRFLOW__CORE__FERNET_KEY")
        finally:
            conn.close()
        plan.update(mode="source-db", source_db=args.source_db,
                    source_key=key or checks.generate_fernet_key())
    else:
        if V.parse(source)[0] >= 3:
            raise UsageError(f"--source-version {source}: the generated history (tools/seed.py) "
                             f"is Airflow 2.x only; for a 3.x source use --source-db or "
                             f"--from-export")
        plan.update(mode="generated", rows=args.rows or DEFAULT_ROWS,
                    source_key=checks.generate_fernet_key())
    return plan


def library_argv(python: Path, command: str, url: str, bucket: str, prefix: str,
                 conf_json: str) -> list[str]:
    """``python -m mwaa_migration export|import ...`` in a version's venv.

    The Fernet key is not an argument: it travels in the child's environment
    (AIRFLOW__CORE__FERNET_KEY, see ``airflow_env``), never in the process list. Values are
    passed as ``--flag=value`` so none can be taken for an option.
    """
    return [str(python), "-m", "mwaa_migration", command, f"--sql-alchemy-conn={url}",
            f"--bucket={bucket}", f"--prefix={prefix}", f"--conf-json={conf_json}"]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _env_name(side: str, version: str) -> str:
    return f"rehearsal-{side}-{version.replace('.', '-')}"


class Rehearsal:
    """One run: the steps, their measurements, and everything to clean up afterwards."""

    def __init__(self, plan: dict, *, out=print):
        self.plan = plan
        self.out = out
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d%H%M%S")
        self.run_id = f"{stamp}-{uuid.uuid4().hex[:6]}"
        self.migration_id = (plan["manifest"]["migration_id"] if plan["mode"] == "from-export"
                             else f"rehearsal-{self.run_id}")
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
        self._peak: Optional[int] = None

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
        res = procs.run(argv, env=env, cwd=str(REPO), log_path=log, label=f"[{name}] ",
                        echo=lambda line: self.out(line, flush=True), show_output=show)
        self._peak = max(self._peak or 0, res.peak_rss_bytes)
        return procs.check(res, name, log)

    def tool_python(self) -> list[str]:
        return [sys.executable]

    def airflow_env(self, version: str, db_url: Optional[str], key: Optional[str],
                    side: str) -> dict:
        from tools import airflow_envs

        # deprecation chatter of old versions would drown the progress lines
        extra = {"PYTHONPATH": str(DAGS),
                 "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::FutureWarning"}
        if self.moto is not None:
            extra.update(self.moto.env())
        env = airflow_envs.airflow_env(version, db_url, fernet_key=key,
                                       home=self.run_dir / f"airflow-home-{side}", extra=extra)
        if self.moto is not None:
            from .aws import UNSET

            for name in UNSET:
                env.pop(name, None)
        return env

    # ---- infrastructure ---------------------------------------------------------------
    def ensure_postgres(self) -> None:
        from tools import pgcluster

        with self.step("postgres"):
            if not pgcluster._accepts(pgcluster.port()):
                self.pg_started_by_us = True
                self.out(f"  starting a private PostgreSQL on 127.0.0.1:{pgcluster.port()}")
                self.child("postgres", self.tool_python() + [str(REPO / "tools" / "pgcluster.py"),
                                                             "ensure"], dict(os.environ))

    def ensure_venv(self, version: str) -> None:
        from tools import airflow_envs

        with self.step(f"venv {version}"):
            if airflow_envs.is_ready(version):
                return
            self.out(f"  installing Airflow {version} into {airflow_envs.venv_path(version)} "
                     f"(once; cached for later runs)")
            self.child(f"venv {version}", self.tool_python() + [
                "-c", "import sys; from tools.airflow_envs import ensure_venv; "
                      "ensure_venv(sys.argv[1])", version], dict(os.environ))

    def start_moto(self) -> None:
        from .aws import MotoStack

        with self.step("aws (moto)"):
            self.moto = MotoStack(source_env=self.source_env, target_env=self.target_env).start()
            self.out(f"  moto on {self.moto.endpoint}: bucket {self.moto.bucket} (SSE-KMS), "
                     f"log groups airflow-{self.source_env}-*/airflow-{self.target_env}-*")

    def template(self, version: str) -> str:
        """A database migrated once by ``airflow db migrate`` of ``version``, copied per run."""
        from tools import pgcluster

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
                self.child(f"db migrate {version}",
                           [str(self._python(version)), "-m", "airflow", "db", "migrate"],
                           self.airflow_env(version, pgcluster.url(tmp), None, "migrate"))
                rev = self._revision(pgcluster.url(tmp))
                if rev != V.alembic_head(version):
                    raise RuntimeError(
                        f"airflow db migrate of {version} left alembic revision {rev}, but "
                        f"mwaa_common.versions says {V.alembic_head(version)}: fix the table")
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
        from tools import airflow_envs

        return airflow_envs.python(version)

    @staticmethod
    def _revision(url: str) -> Optional[str]:
        conn = checks.connect(url, flag="database")
        try:
            return checks.alembic_revision(conn)
        finally:
            conn.close()

    def fresh_db(self, side: str, version: str) -> str:
        from tools import pgcluster

        with self.step(f"{side} db ({version})"):
            tpl = self.template(version)
            name = pgcluster.create_database(f"rehearse_{self.run_id.replace('-', '_')}_{side}",
                                             template=tpl)
            self.created_dbs.append(name)
            url = pgcluster.url(name)
            self.urls[side] = url
            self.out(f"  {url} (a copy of {tpl}, built by Airflow {version}'s db migrate)")
            return url

    # ---- the migration ------------------------------------------------------------------
    def seed(self, url: str) -> None:
        rows = self.plan["rows"]
        with self.step(f"seed ({rows} rows)"):
            if not (REPO / "tools" / "seed.py").exists():
                raise RuntimeError("tools/seed.py is not there yet (it comes with the metadata "
                                   "library); use --source-db or --from-export meanwhile")
            self.child("seed", [str(self._python(self.source)), str(REPO / "tools" / "seed.py"),
                                "--rows", str(rows)],
                       self.airflow_env(self.source, url, self.plan["source_key"], "source"))

    def task_log_days(self) -> int:
        """Log copy is rehearsed only with a generated history (the only mode whose source
        streams we can write) and only once dags/mwaa_migration/task_logs.py is present."""
        if self.plan["mode"] != "generated" or not (DAGS / "mwaa_migration" / "task_logs.py").exists():
            return 0
        return TASK_LOG_DAYS

    def seed_task_logs(self, url: str) -> None:
        """Write a CloudWatch stream per try of every failed task instance of the last days,
        named as the source version's Airflow names them (the library's own naming table)."""
        if not self.task_log_days():
            self.streams_seeded = 0
            return
        with self.step("seed task logs"):
            if str(DAGS) not in sys.path:
                sys.path.insert(0, str(DAGS))
            from mwaa_migration import task_logs

            naming = task_logs.naming_for(self.source)
            conn = checks.connect(url, flag="source")
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT dag_id, task_id, run_id, map_index, try_number, "
                                "(extract(epoch from start_date) * 1000)::bigint, "
                                "(extract(epoch from end_date) * 1000)::bigint "
                                "FROM task_instance WHERE state = ANY(%s) AND end_date > "
                                "now() - %s * interval '1 day'",
                                (list(TASK_LOG_STATES), TASK_LOG_DAYS))
                    tis = [dict(zip(("dag_id", "task_id", "run_id", "map_index",
                                     "try_number", "start_ms", "end_ms"), row)) for row in cur.fetchall()]
            finally:
                conn.close()
            n = 0
            for ti in tis:
                for attempt in range(1, ti["try_number"] + 1):
                    # stamped inside the task's run: log readers serve a try's events by time
                    stamps = checks.task_log_timestamps(ti["start_ms"] or ti["end_ms"], ti["end_ms"], attempt,
                                                        ti["try_number"], 3)
                    self.moto.put_task_log(
                        task_logs.stream_name(naming, ti, attempt),
                        [f"[rehearsal] {ti['dag_id']}.{ti['task_id']} try {attempt} line {i}"
                         for i in range(3)], stamps)
                    n += 1
            self.streams_seeded = n
            self.log_probe = tis[0] if tis else None
            self.out(f"  {n} streams for {len(tis)} task instances in "
                     f"airflow-{self.source_env}-Task")

    def probe(self, side: str, version: str, url: str, key: str) -> dict:
        out = self.run_dir / f"probe-{side}.json"
        self.child(f"read secrets ({side})",
                   [str(self._python(version)), str(Path(__file__).with_name("probe.py")),
                    str(out)], self.airflow_env(version, url, key, side))
        return json.loads(out.read_text())

    def conf(self, **extra) -> str:
        return json.dumps({"bucket": self.moto.bucket, "prefix": self.prefix,
                           "migration_id": self.migration_id, **extra})

    def export(self, url: str) -> dict:
        with self.step("export"):
            self.child("export", library_argv(self._python(self.source), "export", url,
                                              self.moto.bucket, self.prefix, self.conf()),
                       self.airflow_env(self.source, url, self.plan["source_key"], "source"))
            manifest = self.moto.get_json(f"{self.prefix}{self.migration_id}/manifest.json")
            if manifest is None:
                raise RuntimeError("the export finished but wrote no manifest.json")
            return manifest

    def upload_export(self) -> dict:
        with self.step("upload export"):
            # only what the export wrote: a report.json or import state of an earlier
            # import in the same download must not stand in for this run's
            manifest = self.plan["manifest"]
            keys = [m["key"] for m in manifest["tables"].values()] + ["manifest.json"]
            n = self.moto.upload_files(self.plan["export_dir"], keys,
                                       f"{self.prefix}{self.migration_id}/")
            self.out(f"  {n} files to s3://{self.moto.bucket}/{self.prefix}{self.migration_id}/")
            return self.plan["manifest"]

    def counts(self, url: str, tables) -> dict:
        conn = checks.connect(url, flag="target")
        out = {}
        try:
            with conn.cursor() as cur:
                for t in tables:
                    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f'public."{t}"',))
                    if cur.fetchone()[0]:
                        cur.execute(f'SELECT count(*) FROM public."{t}"')
                        out[t] = cur.fetchone()[0]
        finally:
            conn.close()
        return out

    def import_(self, url: str, name: str = "import") -> dict:
        with self.step(name):
            conf = self.conf(source_environment=self.source_env,
                             target_environment=self.target_env,
                             task_log_days=self.task_log_days(),
                             task_log_states=list(TASK_LOG_STATES))
            self.child(name, library_argv(self._python(self.target), "import", url,
                                              self.moto.bucket, self.prefix, conf),
                       self.airflow_env(self.target, url, self.target_key, "target"))
            rep = self.moto.get_json(f"{self.prefix}{self.migration_id}/report.json")
            if rep is None:
                raise RuntimeError("the import finished but wrote no report.json")
            return rep

    def task_log_summary(self, imported: Optional[dict]) -> dict:
        seeded = self.streams_seeded
        out = {"rehearsed": bool(self.task_log_days()), "source_streams": seeded,
               "target_streams": self.moto.count_log_streams(self.target_env),
               "import": imported}
        if not out["rehearsed"]:
            out["why_not"] = ("only with a generated history" if self.plan["mode"] != "generated"
                              else "dags/mwaa_migration/task_logs.py is not in this checkout")
        out["ok"] = out["target_streams"] >= seeded
        probe = getattr(self, "log_probe", None)
        if out["rehearsed"] and probe is not None:
            out["read_back"] = self.read_back_log(probe)
            out["ok"] = out["ok"] and out["read_back"]["ok"]
        return out

    def read_back_log(self, ti: dict) -> dict:
        """Read one copied log the way the target's Airflow CloudWatch handler reads it: the stream
        its naming gives for the last try, events up to the task's end date + 30 s."""
        from mwaa_migration import task_logs

        stream = task_logs.stream_name(task_logs.naming_for(self.target), ti, ti["try_number"])
        events = self.moto.read_task_log(self.target_env, stream)
        served = [e for e in events if e["timestamp"] <= (ti["end_ms"] or 0) + 30_000]
        want = f"[rehearsal] {ti['dag_id']}.{ti['task_id']} try {ti['try_number']} line 0"
        ok = any(e["message"] == want for e in served)
        problem = None if ok else (f"stream {stream}: {len(events)} events, {len(served)} inside the task's run, "
                                   f"none reads {want!r}")
        return {"task": f"{ti['dag_id']}.{ti['task_id']} {ti['run_id']} try {ti['try_number']}", "stream": stream,
                "events": len(events), "served": len(served), "ok": ok, "problem": problem}

    def save_export(self) -> Path:
        dest = self.run_dir / "export"
        dest.mkdir(mode=0o700, exist_ok=True)
        s3 = self.moto.client("s3")
        base = f"{self.prefix}{self.migration_id}/"
        for key in self.moto.list_keys(base):
            path = dest / key[len(base):]
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(self.moto.bucket, key, str(path))
            path.chmod(0o600)
        return dest

    def run(self) -> dict:
        p = self.plan
        r = self.report
        r["rehearsal"] = {"run_id": self.run_id, "source_version": self.source,
                          "target_version": self.target,
                          "mode": {"generated": f"generated history, {p.get('rows')} rows",
                                   "source-db": f"--source-db {checks.mask_url(p.get('source_db', ''))}",
                                   "from-export": f"--from-export {p.get('export_dir')}"}[p["mode"]],
                          "migration_id": self.migration_id, "started_at": _now(),
                          "log_dir": str(self.run_dir), "error": None}
        r["steps"] = self.steps
        if not (DAGS / "mwaa_migration" / "__main__.py").exists():
            raise RuntimeError(f"the export/import library is missing ({DAGS}/mwaa_migration/"
                               f"__main__.py); this checkout lacks the metadata DAGs")
        self.ensure_postgres()
        if p["mode"] != "from-export":
            self.ensure_venv(self.source)
        self.ensure_venv(self.target)
        self.start_moto()
        source_probe = None
        if p["mode"] == "generated":
            src_url = self.fresh_db("source", self.source)
            self.seed(src_url)
            self.seed_task_logs(src_url)
        elif p["mode"] == "source-db":
            src_url = p["source_db"]
        if p["mode"] != "from-export":
            with self.step("read secrets (source)"):
                source_probe = self.probe("source", self.source, src_url, p["source_key"])
            manifest = self.export(src_url)
        else:
            manifest = self.upload_export()
        r["export"] = {"bucket": self.moto.bucket, "prefix": f"{self.prefix}{self.migration_id}/",
                       "rows": {t: m.get("rows") for t, m in manifest.get("tables", {}).items()},
                       "source_schema_revision": manifest.get("source_schema_revision")}
        tgt_url = self.fresh_db("target", self.target)
        before = self.counts(tgt_url, manifest.get("tables", {}))
        import_report = self.import_(tgt_url)
        with self.step("verify"):
            after = self.counts(tgt_url, manifest.get("tables", {}))
            target_probe = self.probe("target", self.target, tgt_url, self.target_key)
            tables = table_accounting(import_report, manifest, before, after)
            rows = {t: m.get("rows") for t, m in manifest.get("tables", {}).items()}
            secrets = {kind: secrets_check(kind, rows.get(table), target_probe, source_probe)
                       for kind, table in (("variables", "variable"),
                                           ("connections", "connection"))}
            r["tables"] = tables
            r["integrity"] = integrity(import_report)
            r["secrets"] = secrets
            r["task_logs"] = self.task_log_summary(import_report.get("task_logs"))
        # the same import again must change nothing (a retried db_import in AWS is safe)
        second = self.import_(tgt_url, "import again")
        with self.step("verify again"):
            r["rerun"] = rerun_check(second, after, self.counts(tgt_url, manifest.get("tables", {})))
        r["verdict"] = verdict(tables, secrets, import_report, r["task_logs"], r["rerun"])
        if p["keep"]:
            saved = self.save_export()
            r["kept"] = {"source_db": self.urls.get("source") or checks.mask_url(p.get("source_db", "")),
                         "target_db": tgt_url, "target_fernet_key": self.target_key,
                         "export_folder": str(saved)}
            if p["mode"] == "generated":
                r["kept"]["source_fernet_key"] = p["source_key"]
        return r

    # ---- cleanup ------------------------------------------------------------------------
    def cleanup(self) -> None:
        procs.terminate_all()
        if self.moto is not None:
            with contextlib.suppress(Exception):
                self.moto.stop()
        if self.plan["keep"]:
            return
        from tools import pgcluster

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
        from tools import pgcluster

        try:
            conn = pgcluster._admin()
        except Exception:  # noqa: BLE001 - not reachable: nothing to stop
            return True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                            "'client backend' AND pid <> pg_backend_pid()")
                return cur.fetchone()[0] > 0
        finally:
            conn.close()


def write_report(report: dict, path: str) -> Path:
    out = Path(path)
    if not out.is_absolute():
        out = Path.cwd() / out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    if report.get("kept"):
        tmp.chmod(0o600)  # it names the target's Fernet key
    tmp.replace(out)
    return out


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    try:
        plan = validate(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    procs.install_signal_handlers()
    run = Rehearsal(plan, out=lambda *a, **k: print(*a, **{"flush": True, **k}))
    code = EXIT_FAILED
    try:
        report = run.run()
        code = EXIT_OK if report["verdict"]["ok"] else EXIT_FAILED
    except KeyboardInterrupt:
        run.report.setdefault("rehearsal", {})["error"] = "interrupted"
        print("\ninterrupted: stopping child processes, moto and dropping the temporary "
              "databases" + (" (kept: --keep)" if plan["keep"] else ""), file=sys.stderr,
              flush=True)
        code = EXIT_INTERRUPTED
    except (procs.StepFailed, RuntimeError, UsageError) as exc:
        run.report.setdefault("rehearsal", {})["error"] = getattr(
            exc, "short", str(exc).splitlines()[0])
        print(f"error: {exc}", file=sys.stderr, flush=True)
    except Exception as exc:  # noqa: BLE001 - still clean up and write the report
        import traceback

        tb = run.run_dir / "traceback.txt"
        tb.write_text(traceback.format_exc())
        run.report.setdefault("rehearsal", {})["error"] = f"{type(exc).__name__}: {exc}"
        print(f"error: {type(exc).__name__}: {exc} (traceback: {tb})", file=sys.stderr,
              flush=True)
    finally:
        # a second Ctrl-C must not leave half of the cleanup undone (it is bounded: ~10 s)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        run.cleanup()
    rep = run.report
    rep.setdefault("rehearsal", {}).setdefault("source_version", run.source)
    rep["rehearsal"].setdefault("target_version", run.target)
    rep["rehearsal"].setdefault("mode", plan["mode"])
    rep["rehearsal"]["finished_at"] = _now()
    rep["rehearsal"]["exit_code"] = code
    rep["steps"] = run.steps
    if code == EXIT_OK and not plan["keep"]:
        # logs and Airflow homes only matter when something went wrong
        shutil.rmtree(run.run_dir, ignore_errors=True)
        rep["rehearsal"]["log_dir"] = None
    path = write_report(rep, args.report)
    print()
    print(render(rep))
    print(f"\nreport: {path}")
    if plan["keep"] and rep.get("kept"):
        print("databases kept; drop them with: python tools/pgcluster.py dropdb NAME; "
              "stop PostgreSQL with: python tools/pgcluster.py stop")
    return code
