"""The rehearsal end to end: real Airflow venvs (cached in .venvs/), real PostgreSQL, moto.

Small histories only (CI affords one short run per supported pair); template databases and
venvs are reused between runs. Nothing here asserts timings.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.dev import pgcluster

pytestmark = [
    pytest.mark.airflow,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (Path(__file__).resolve().parents[3] / "dags" / "mwaa_migration" / "__main__.py").exists(),
        reason="the metadata library (issue 3) is not merged into this checkout",
    ),
]

REPO = Path(__file__).resolve().parents[3]
ROWS = "60"

# (source, target): every schema family as a source, each target family, a same-version copy
PAIRS = [
    ("2.10.3", "2.11.0"),  # the default (README quick start)
    ("2.7.2", "2.10.3"),
    ("2.8.1", "2.11.0"),
    ("2.9.2", "2.11.0"),
    ("2.11.0", "2.11.0"),
    ("2.11.0", "3.0.6"),
]


def rehearse(*args, timeout=1500):
    return subprocess.run(
        [sys.executable, "-m", "tools.rehearse", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def databases_of(run_id: str) -> list[str]:
    conn = pgcluster._admin()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"rehearse_{run_id.replace('-', '_')}%",)
            )
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def assert_all_accounted(report: dict, first_step: str = "export") -> None:
    assert report["verdict"]["ok"], json.dumps(report, indent=1)[:6000]
    tables = report["tables"]
    for needed in ("dag_run", "task_instance", "log", "xcom", "variable", "connection", "slot_pool"):
        assert needed in tables, sorted(tables)
    for name, t in tables.items():
        assert t["exported"] == t["inserted"] + t["already_present"] + t["rejected"], name
    assert sum(t["exported"] for t in tables.values()) > 0
    assert report["secrets"]["variables"]["readable_in_target"] > 0
    assert report["secrets"]["connections"]["readable_in_target"] > 0
    assert report["rerun"]["ok"] and report["rerun"]["inserted"] == 0
    assert {s["name"] for s in report["steps"]} >= {first_step, "import", "verify"}
    assert all(s["status"] == "ok" for s in report["steps"])
    for step in ("import", "verify"):
        assert next(s for s in report["steps"] if s["name"] == step)["peak_memory_mb"] > 0


@pytest.mark.parametrize("source,target", PAIRS, ids=[f"{s}-{t}" for s, t in PAIRS])
def test_pair_round_trip(source, target, tmp_path):
    out = tmp_path / "report.json"
    proc = rehearse("--source-version", source, "--target-version", target, "--rows", ROWS, "--report", str(out))
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert_all_accounted(report)
    assert "every exported row accounted for" in proc.stdout
    assert databases_of(report["rehearsal"]["run_id"]) == []  # dropped without --keep
    assert "kept" not in report


def test_keep_then_check_the_export_folder(tmp_path):
    """--keep names the databases and key; the saved export is what --from-export checks."""
    first = tmp_path / "first.json"
    proc = rehearse("--rows", ROWS, "--keep", "--report", str(first))
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    report = json.loads(first.read_text())
    kept = report["kept"]
    run_id = report["rehearsal"]["run_id"]
    try:
        assert len(databases_of(run_id)) == 2
        assert kept["target_fernet_key"] in proc.stdout and kept["target_db"] in proc.stdout
        folder = Path(kept["export_folder"])
        assert (folder / "manifest.json").is_file()

        second = tmp_path / "second.json"
        proc2 = rehearse("--from-export", str(folder), "--report", str(second))
        assert proc2.returncode == 0, proc2.stdout[-5000:] + proc2.stderr[-3000:]
        rep2 = json.loads(second.read_text())
        assert_all_accounted(rep2, first_step="upload export")
        assert rep2["rehearsal"]["source_version"] == "2.10.3"
        assert {t: x["exported"] for t, x in rep2["tables"].items()} == {
            t: x["exported"] for t, x in report["tables"].items()
        }

        # the kept source database, as an existing one, with its key from the environment
        third = tmp_path / "third.json"
        env = dict(os.environ, AIRFLOW__CORE__FERNET_KEY=kept["source_fernet_key"])
        proc5 = subprocess.run(
            [sys.executable, "-m", "tools.rehearse", "--source-db", kept["source_db"], "--report", str(third)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=1500,
        )
        assert proc5.returncode == 0, proc5.stdout[-5000:] + proc5.stderr[-3000:]
        rep3 = json.loads(third.read_text())
        assert_all_accounted(rep3)
        assert rep3["secrets"]["variables"]["identical_to_source"] == rep3["secrets"]["variables"]["in_source"] > 0
        assert databases_of(run_id) != []  # the given source database is never dropped

        table = next(iter(sorted((folder / "tables").iterdir())))
        table.write_bytes(table.read_bytes()[:-7] + b"garbage")
        proc3 = rehearse("--from-export", str(folder), "--report", str(tmp_path / "x.json"))
        assert proc3.returncode == 2
        assert f"tables/{table.name} is corrupted" in proc3.stderr
        table.unlink()
        proc4 = rehearse("--from-export", str(folder), "--report", str(tmp_path / "x.json"))
        assert proc4.returncode == 2 and f"tables/{table.name} is missing" in proc4.stderr
    finally:
        for name in databases_of(run_id):
            pgcluster.drop_database(name)
        shutil.rmtree(report["rehearsal"]["log_dir"], ignore_errors=True)  # the saved export


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for kid in children.get(todo.pop(), []):
            out.add(kid)
            todo.append(kid)
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ctrl_c_leaves_nothing_running(tmp_path, monkeypatch):
    """From nothing running (as in CI): a private PostgreSQL on its own port is started by the
    run; Ctrl-C during the export ends the export's processes, drops the run's databases and
    stops that PostgreSQL again."""
    port = _free_port()
    pgdir = REPO / ".cache" / f"pg-ctrlc-{port}"
    monkeypatch.setenv("MWAA_UPGRADE_PG_PORT", str(port))
    monkeypatch.setenv("MWAA_UPGRADE_PG_DIR", str(pgdir))
    out = tmp_path / "report.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.rehearse", "--rows", ROWS, "--report", str(out)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen = []
    kids: set[int] = set()
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("==> export"):
                # wait until the export child exists, then interrupt as a terminal would
                for _ in range(100):
                    kids = _descendants(proc.pid)
                    if kids:
                        break
                    time.sleep(0.05)
                os.kill(proc.pid, signal.SIGINT)
                break
        rest, _ = proc.communicate(timeout=120)
        text = "".join(seen) + rest
        assert proc.returncode == 130, text[-4000:]
        assert kids, "the export step had no child process to interrupt"
        time.sleep(0.5)
        assert [k for k in kids if _alive(k)] == []
        report = json.loads(out.read_text())
        assert report["rehearsal"]["error"] == "interrupted"
        assert report["steps"][-1]["status"] == "interrupted"
        assert not pgcluster._accepts(port), "the PostgreSQL this run started is still up"
        pgcluster.ensure()  # the same cluster again: the run's databases are gone
        assert databases_of(report["rehearsal"]["run_id"]) == []
        assert list(Path(report["rehearsal"]["log_dir"]).glob("*-export.log"))  # kept: not clean
        shutil.rmtree(report["rehearsal"]["log_dir"])
    finally:
        if proc.poll() is None:
            proc.kill()
        pgcluster.stop()
        shutil.rmtree(pgdir, ignore_errors=True)
        (pgdir.parent / f"{pgdir.name}.lock").unlink(missing_ok=True)
