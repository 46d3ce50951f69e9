"""A private, throwaway PostgreSQL cluster for the tests, the rehearsal and the bench.

``ensure()`` returns connection parameters of a server on 127.0.0.1:<port> (default 55432,
env ``MWAA_UPGRADE_PG_PORT``). If something already accepts connections on that port it is
reused; otherwise a cluster is initialised (once) in ``<repo>/.cache/pg`` (env
``MWAA_UPGRADE_PG_DIR``) as the ``postgres`` OS user when we run as root (the server refuses
to run as root), with trust auth on 127.0.0.1 only, and started. PostgreSQL is installed
with apt-get only if its binaries are missing. Durability is switched off: nothing here is
worth an fsync.

CLI: ``python tools/dev/pgcluster.py ensure|url|createdb [--template T] NAME|dropdb NAME|stop``.
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PORT = 55432
HOST = "127.0.0.1"
SUPERUSER = "postgres"


def port() -> int:
    return int(os.environ.get("MWAA_UPGRADE_PG_PORT", DEFAULT_PORT))


def data_dir() -> Path:
    return Path(os.environ.get("MWAA_UPGRADE_PG_DIR", REPO / ".cache" / "pg")).resolve()


def _usable_by_owner(ddir: Path) -> Path:
    """The postgres OS user must reach the data dir; a clone under /root is not reachable,
    so fall back to a per-clone folder under /tmp (unless the dir was set explicitly)."""
    if os.geteuid() != 0 or "MWAA_UPGRADE_PG_DIR" in os.environ:
        return ddir
    parent = ddir.parent
    parent.mkdir(parents=True, exist_ok=True)
    ok = (
        subprocess.run(
            ["runuser", "-u", SUPERUSER, "--", "test", "-x", str(parent)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ).returncode
        == 0
    )
    if ok:
        return ddir
    import hashlib

    return Path("/tmp") / f"mwaa-upgrade-pg-{hashlib.sha256(str(REPO).encode()).hexdigest()[:10]}"


def _accepts(p: int) -> bool:
    try:
        with socket.create_connection((HOST, p), timeout=1):
            return True
    except OSError:
        return False


def _bindir() -> Path | None:
    cands = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda d: int(Path(d).parent.name) if Path(d).parent.name.isdigit() else 0,
    )
    for d in reversed(cands):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    return None


def _install() -> Path:
    if os.geteuid() != 0:
        raise RuntimeError(
            "PostgreSQL binaries (initdb, pg_ctl) are missing and we are not root: "
            "install the 'postgresql' package (PostgreSQL 15)"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env)
    b = _bindir()
    if b is None:
        raise RuntimeError("apt-get installed postgresql but initdb/pg_ctl were not found")
    return b


def _as_owner(cmd: list[str]) -> list[str]:
    """Run as the postgres OS user when we are root (the server refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", SUPERUSER, "--"] + cmd
    return cmd


@contextmanager
def _lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _wait(p: int, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if _accepts(p):
            return
        time.sleep(0.2)
    raise RuntimeError(f"PostgreSQL did not accept connections on {HOST}:{p} within {timeout}s")


def ensure() -> dict:
    """Make sure a server runs on 127.0.0.1:port(); return connection parameters."""
    p = port()
    if _accepts(p):
        return params()
    ddir = data_dir()
    with _lock(ddir.parent / (ddir.name + ".lock")):
        if _accepts(p):
            return params()
        bindir = _bindir() or _install()
        ddir = _usable_by_owner(ddir)
        if not (ddir / "PG_VERSION").exists():
            ddir.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                pw = pwd.getpwnam(SUPERUSER)
                os.chown(ddir, pw.pw_uid, pw.pw_gid)
            os.chmod(ddir, 0o700)
            subprocess.run(
                _as_owner(
                    [
                        str(bindir / "initdb"),
                        "-D",
                        str(ddir),
                        "-U",
                        SUPERUSER,
                        "--auth=trust",
                        "-E",
                        "UTF8",
                        "--locale=C.UTF-8",
                    ]
                ),
                check=True,
                stdout=subprocess.DEVNULL,
            )
            with open(ddir / "postgresql.auto.conf", "a") as fh:
                fh.write(
                    "\n# throwaway test cluster: no durability, local TCP only\n"
                    f"listen_addresses = '{HOST}'\nport = {p}\n"
                    f"unix_socket_directories = '{ddir}'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                    "max_connections = 200\nshared_buffers = 256MB\n"
                )
            with open(ddir / "pg_hba.conf", "w") as fh:
                fh.write("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        started = subprocess.run(
            _as_owner(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(ddir),
                    "-l",
                    str(ddir / "server.log"),
                    "-o",
                    f"-p {p}",
                    "-w",
                    "start",
                ]
            ),
            stdout=subprocess.DEVNULL,
        )
        if started.returncode != 0 and not _accepts(p):
            # (another clone may have started its own server on this port meanwhile: reuse it)
            raise RuntimeError(f"pg_ctl start failed for {ddir}; see {ddir / 'server.log'}")
        _wait(p)
    return params()


def stop() -> None:
    ddir = _usable_by_owner(data_dir())
    bindir = _bindir()
    if bindir and (ddir / "postmaster.pid").exists():
        subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(ddir), "-m", "fast", "stop"]), check=False)


def params(dbname: str = "postgres") -> dict:
    return {"host": HOST, "port": port(), "user": SUPERUSER, "dbname": dbname}


def url(dbname: str = "postgres", driver: str = "postgresql+psycopg2") -> str:
    return f"{driver}://{SUPERUSER}@{HOST}:{port()}/{dbname}"


def _admin():
    import psycopg2

    conn = psycopg2.connect(**params())
    conn.autocommit = True
    return conn


@contextmanager
def advisory_lock(name: str):
    """A cluster-wide lock (several clones may share one server), held by its own session."""
    ensure()
    conn = _admin()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (name,))
        yield
    finally:
        conn.close()  # ends the session, which releases the lock


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def create_database(name: str | None = None, *, template: str | None = None, prefix: str = "t") -> str:
    """Create a database (optionally a copy of ``template``); return its name."""
    ensure()
    name = name or unique_name(prefix)
    conn = _admin()
    try:
        with conn.cursor() as cur:
            sql = f'CREATE DATABASE "{name}"'
            if template:
                # a template must have no other sessions; end idle ones left behind
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (template,),
                )
                sql += f' TEMPLATE "{template}"'
            cur.execute(sql)
    finally:
        conn.close()
    return name


def database_exists(name: str) -> bool:
    ensure()
    conn = _admin()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            return cur.fetchone() is not None
    finally:
        conn.close()


def drop_database(name: str) -> None:
    conn = _admin()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("ensure")
    sub.add_parser("stop")
    u = sub.add_parser("url")
    u.add_argument("name", nargs="?", default="postgres")
    c = sub.add_parser("createdb")
    c.add_argument("name", nargs="?")
    c.add_argument("--template")
    d = sub.add_parser("dropdb")
    d.add_argument("name")
    a = ap.parse_args(argv)
    if a.cmd == "ensure":
        ensure()
        print(url())
    elif a.cmd == "stop":
        stop()
    elif a.cmd == "url":
        print(url(a.name))
    elif a.cmd == "createdb":
        print(url(create_database(a.name, template=a.template)))
    elif a.cmd == "dropdb":
        drop_database(a.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
