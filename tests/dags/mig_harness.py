"""Fixtures for the metadata migration tests: real PostgreSQL, real Airflow venvs, moto S3.

Everything is created on demand and cached in the clone (.venvs/, .cache/pg): a version's
venv is built once, an empty migrated DB per version and a seeded DB per version are kept as
template databases and copied with CREATE DATABASE ... TEMPLATE for each test.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools" / "dev"))

import airflow_envs  # noqa: E402
import pgcluster  # noqa: E402

SOURCE_KEY = airflow_envs.FERNET_KEY_DEFAULT
TARGET_KEY = "Lf8d4G8n3Fh3o9K1mJrQ2s5Xv7Yb0Zc4Ae6Tg8Hi0Jk="
SEED_ROWS = 60
BUCKET = "mig-test-bucket"
SECRET = 'p@ss "wörd"\nwith newline, comma'  # tools/dev/seed.py


def _lock(name):
    # cluster-wide, not per clone: the rehearsal's clone may share this server and templates
    return pgcluster.advisory_lock(f"mwaa-upgrade-{name}")


def _tag(*parts) -> str:
    seed = (REPO / "tools" / "dev" / "seed.py").read_bytes()
    h = hashlib.sha256(
        json.dumps([airflow_envs.requirements(p) if p[0].isdigit() else p for p in parts]).encode() + seed
    ).hexdigest()[:8]
    return h


def template(version: str, *, seeded: bool, upgraded_from: str | None = None) -> str:
    """Name of a template DB: migrated by ``version`` (optionally created by an older one and
    upgraded in place), optionally seeded. Built once, reused across sessions."""
    pgcluster.ensure()
    parts = [version, "seed" if seeded else "empty"] + ([upgraded_from] if upgraded_from else [])
    name = "tpl_" + "_".join(p.replace(".", "") for p in parts) + "_" + _tag(*parts, str(SEED_ROWS))
    with _lock("templates"):
        if pgcluster.database_exists(name):
            return name
        tmp = name + "_building"
        pgcluster.drop_database(tmp)
        pgcluster.create_database(tmp)
        url = pgcluster.url(tmp)
        first = upgraded_from or version
        airflow_envs.migrate(first, url, fernet_key=SOURCE_KEY)
        if seeded:
            airflow_envs.run_python(
                first,
                [str(REPO / "tools" / "dev" / "seed.py"), "--rows", str(SEED_ROWS)],
                db_url=url,
                fernet_key=SOURCE_KEY,
            )
        if upgraded_from:
            airflow_envs.migrate(version, url, fernet_key=SOURCE_KEY)
        conn = _admin()
        with conn.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{tmp}" RENAME TO "{name}"')
        conn.close()
        # Templates of another seed/pin set are left alone: the cluster is shared by several
        # checkouts, each with its own tools/seed.py, and one's "stale" is another's current.
    return name


def _admin():
    import psycopg2

    c = psycopg2.connect(**pgcluster.params())
    c.autocommit = True
    return c


def connect(db):
    import psycopg2

    return psycopg2.connect(**pgcluster.params(db))


@pytest.fixture(scope="session")
def pg():
    pgcluster.ensure()
    return pgcluster


@pytest.fixture
def make_db(pg):
    created = []

    def make(version, *, seeded=False, upgraded_from=None):
        import psycopg2

        for attempt in range(3):  # another checkout may drop a template between build and copy
            tpl = template(version, seeded=seeded, upgraded_from=upgraded_from)
            try:
                with _lock("templates"):
                    name = pgcluster.create_database(template=tpl, prefix="t" + version.replace(".", ""))
                break
            except psycopg2.errors.InvalidCatalogName:
                if attempt == 2:
                    raise
        created.append(name)
        return name

    yield make
    for name in created:
        pgcluster.drop_database(name)


@pytest.fixture(scope="session")
def moto_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server._server.server_address
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_server, monkeypatch):
    env = {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.fixture
def s3(aws_env):
    import boto3

    client = boto3.client("s3")
    try:
        client.create_bucket(Bucket=BUCKET)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    return client


class Cli:
    """Runs ``python -m mwaa_migration`` in a version's venv, as the rehearsal does."""

    def __init__(self, aws_env):
        self.env = dict(aws_env, PYTHONPATH=str(REPO / "dags"))

    def run(self, version, command, db, conf, fernet_key, check=True):
        args = [
            "-m",
            "mwaa_migration",
            command,
            "--sql-alchemy-conn",
            pgcluster.url(db),
            "--conf-json",
            json.dumps(conf),
        ]
        if fernet_key:
            args += ["--fernet-key", fernet_key]
        return airflow_envs.run_python(version, args, env_extra=self.env, check=check, fernet_key=fernet_key)


@pytest.fixture
def cli(aws_env):
    return Cli(aws_env)


def get_json(s3, key):
    return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
