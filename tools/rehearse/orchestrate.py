"""The steps of one rehearsal, in order: source database (generated, given, or none with
--from-export), export, a fresh target, import, verification, the same import again; the
report as a dict. Processes, databases and cleanup are in :mod:`tools.rehearse.harness`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import checks
from .harness import DAGS, REPO, RunResources, library_argv, now
from .report import integrity, rerun_check, secrets_check, table_accounting, verdict

TASK_LOG_DAYS = 3  # the import's defaults (docs/contracts.md)
TASK_LOG_STATES = ("failed",)


class Rehearsal(RunResources):
    """One run: the steps, their measurements, and everything to clean up afterwards."""

    # ---- the migration ------------------------------------------------------------------
    def seed(self, url: str) -> None:
        rows = self.plan["rows"]
        with self.step(f"seed ({rows} rows)"):
            if not (REPO / "tools" / "dev" / "seed.py").exists():
                raise RuntimeError(
                    "tools/dev/seed.py is not there yet (it comes with the metadata "
                    "library); use --source-db or --from-export meanwhile"
                )
            self.child(
                "seed",
                [str(self._python(self.source)), str(REPO / "tools" / "dev" / "seed.py"), "--rows", str(rows)],
                self.airflow_env(self.source, url, self.plan["source_key"], "source"),
            )

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
                    cur.execute(
                        "SELECT dag_id, task_id, run_id, map_index, try_number, "
                        "(extract(epoch from start_date) * 1000)::bigint, "
                        "(extract(epoch from end_date) * 1000)::bigint "
                        "FROM task_instance WHERE state = ANY(%s) AND end_date > "
                        "now() - %s * interval '1 day'",
                        (list(TASK_LOG_STATES), TASK_LOG_DAYS),
                    )
                    tis = [
                        dict(
                            zip(
                                ("dag_id", "task_id", "run_id", "map_index", "try_number", "start_ms", "end_ms"),
                                row,
                                strict=True,
                            )
                        )
                        for row in cur.fetchall()
                    ]
            finally:
                conn.close()
            n = 0
            for ti in tis:
                for attempt in range(1, ti["try_number"] + 1):
                    # stamped inside the task's run: log readers serve a try's events by time
                    stamps = checks.task_log_timestamps(
                        ti["start_ms"] or ti["end_ms"], ti["end_ms"], attempt, ti["try_number"], 3
                    )
                    self.moto.put_task_log(
                        task_logs.stream_name(naming, ti, attempt),
                        [f"[rehearsal] {ti['dag_id']}.{ti['task_id']} try {attempt} line {i}" for i in range(3)],
                        stamps,
                    )
                    n += 1
            self.streams_seeded = n
            self.log_probe = tis[0] if tis else None
            self.out(f"  {n} streams for {len(tis)} task instances in airflow-{self.source_env}-Task")

    def probe(self, side: str, version: str, url: str, key: str) -> dict:
        out = self.run_dir / f"probe-{side}.json"
        self.child(
            f"read secrets ({side})",
            [str(self._python(version)), str(Path(__file__).with_name("probe.py")), str(out)],
            self.airflow_env(version, url, key, side),
        )
        return json.loads(out.read_text())

    def conf(self, **extra) -> str:
        return json.dumps(
            {"bucket": self.moto.bucket, "prefix": self.prefix, "migration_id": self.migration_id, **extra}
        )

    def export(self, url: str) -> dict:
        with self.step("export"):
            self.child(
                "export",
                library_argv(self._python(self.source), "export", url, self.moto.bucket, self.prefix, self.conf()),
                self.airflow_env(self.source, url, self.plan["source_key"], "source"),
            )
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
            n = self.moto.upload_files(self.plan["export_dir"], keys, f"{self.prefix}{self.migration_id}/")
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
            conf = self.conf(
                source_environment=self.source_env,
                target_environment=self.target_env,
                task_log_days=self.task_log_days(),
                task_log_states=list(TASK_LOG_STATES),
            )
            self.child(
                name,
                library_argv(self._python(self.target), "import", url, self.moto.bucket, self.prefix, conf),
                self.airflow_env(self.target, url, self.target_key, "target"),
            )
            rep = self.moto.get_json(f"{self.prefix}{self.migration_id}/report.json")
            if rep is None:
                raise RuntimeError("the import finished but wrote no report.json")
            return rep

    def task_log_summary(self, imported: dict | None) -> dict:
        seeded = self.streams_seeded
        out = {
            "rehearsed": bool(self.task_log_days()),
            "source_streams": seeded,
            "target_streams": self.moto.count_log_streams(self.target_env),
            "import": imported,
        }
        if not out["rehearsed"]:
            out["why_not"] = (
                "only with a generated history"
                if self.plan["mode"] != "generated"
                else "dags/mwaa_migration/task_logs.py is not in this checkout"
            )
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
        problem = (
            None
            if ok
            else f"stream {stream}: {len(events)} events, {len(served)} inside the task's run, none reads {want!r}"
        )
        return {
            "task": f"{ti['dag_id']}.{ti['task_id']} {ti['run_id']} try {ti['try_number']}",
            "stream": stream,
            "events": len(events),
            "served": len(served),
            "ok": ok,
            "problem": problem,
        }

    def save_export(self) -> Path:
        dest = self.run_dir / "export"
        dest.mkdir(mode=0o700, exist_ok=True)
        s3 = self.moto.client("s3")
        base = f"{self.prefix}{self.migration_id}/"
        for key in self.moto.list_keys(base):
            path = dest / key[len(base) :]
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(self.moto.bucket, key, str(path))
            path.chmod(0o600)
        return dest

    def run(self) -> dict:
        p = self.plan
        r = self.report
        r["rehearsal"] = {
            "run_id": self.run_id,
            "source_version": self.source,
            "target_version": self.target,
            "mode": {
                "generated": f"generated history, {p.get('rows')} rows",
                "source-db": f"--source-db {checks.mask_url(p.get('source_db', ''))}",
                "from-export": f"--from-export {p.get('export_dir')}",
            }[p["mode"]],
            "migration_id": self.migration_id,
            "started_at": now(),
            "log_dir": str(self.run_dir),
            "error": None,
        }
        r["steps"] = self.steps
        if not (DAGS / "mwaa_migration" / "__main__.py").exists():
            raise RuntimeError(
                f"the export/import library is missing ({DAGS}/mwaa_migration/"
                f"__main__.py); this checkout lacks the metadata DAGs"
            )
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
        r["export"] = {
            "bucket": self.moto.bucket,
            "prefix": f"{self.prefix}{self.migration_id}/",
            "rows": {t: m.get("rows") for t, m in manifest.get("tables", {}).items()},
            "source_schema_revision": manifest.get("source_schema_revision"),
        }
        tgt_url = self.fresh_db("target", self.target)
        before = self.counts(tgt_url, manifest.get("tables", {}))
        import_report = self.import_(tgt_url)
        with self.step("verify"):
            after = self.counts(tgt_url, manifest.get("tables", {}))
            target_probe = self.probe("target", self.target, tgt_url, self.target_key)
            tables = table_accounting(import_report, manifest, before, after)
            rows = {t: m.get("rows") for t, m in manifest.get("tables", {}).items()}
            secrets = {
                kind: secrets_check(kind, rows.get(table), target_probe, source_probe)
                for kind, table in (("variables", "variable"), ("connections", "connection"))
            }
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
            r["kept"] = {
                "source_db": self.urls.get("source") or checks.mask_url(p.get("source_db", "")),
                "target_db": tgt_url,
                "target_fernet_key": self.target_key,
                "export_folder": str(saved),
            }
            if p["mode"] == "generated":
                r["kept"]["source_fernet_key"] = p["source_key"]
        return r
