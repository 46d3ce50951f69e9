"""--source-db checks against a real PostgreSQL (tools/dev/pgcluster.py); no Airflow needed.

The database holds just the tables the checks read, with the columns Airflow gives them.
"""

import pytest
from cryptography.fernet import Fernet

from mwaa_common import versions as V
from tools.dev import pgcluster
from tools.rehearse import checks
from tools.rehearse.args import parse_args, validate
from tools.rehearse.checks import UsageError

pytestmark = pytest.mark.airflow


@pytest.fixture
def source_db():
    name = pgcluster.create_database(prefix="rehearse_test")
    url = pgcluster.url(name)
    conn = checks.connect(url)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        cur.execute("CREATE TABLE variable (id serial, key varchar(250), val text, is_encrypted boolean)")
        cur.execute(
            "CREATE TABLE connection (id serial, conn_id varchar(250), password text, "
            "extra text, is_encrypted boolean, is_extra_encrypted boolean)"
        )
    yield url, conn
    conn.close()
    pgcluster.drop_database(name)


def set_revision(conn, version):
    with conn.cursor() as cur:
        cur.execute("DELETE FROM alembic_version")
        cur.execute("INSERT INTO alembic_version VALUES (%s)", (V.alembic_head(version),))


def plan(url, *extra, environ=None):
    return validate(parse_args(["--source-db", url, *extra]), environ or {})


def test_schema_of_another_version_is_refused(source_db):
    url, conn = source_db
    set_revision(conn, "2.9.2")
    with pytest.raises(UsageError) as exc:
        plan(url, "--source-version", "2.10.3")
    assert "(the schema of Airflow 2.9.2), but --source-version 2.10.3 expects 5f2621c13b39" in str(exc.value)
    assert plan(url, "--source-version", "2.9.2")["mode"] == "source-db"


def test_not_an_airflow_database(source_db):
    url, conn = source_db
    with conn.cursor() as cur:
        cur.execute("DROP TABLE alembic_version")
    with pytest.raises(UsageError, match="no alembic_version table; this is not an Airflow"):
        plan(url)


def test_encrypted_values_need_the_key(source_db):
    url, conn = source_db
    set_revision(conn, "2.10.3")
    key = Fernet.generate_key()
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO variable (key, val, is_encrypted) VALUES ('api_token', %s, true)",
            (Fernet(key).encrypt(b"secret").decode(),),
        )
    with pytest.raises(
        UsageError,
        match=r"holds 1 encrypted variables and 0 encrypted "
        r"connections: pass .*--source-fernet-key",
    ):
        plan(url)
    wrong = Fernet.generate_key().decode()
    with pytest.raises(UsageError) as exc:
        plan(url, "--source-fernet-key", wrong)
    assert "does not decrypt variable 'api_token'" in str(exc.value)
    assert "secret" not in str(exc.value).replace("--source-fernet-key", "")
    # the key from the flag, then from the environment, and a rotated key list
    assert plan(url, "--source-fernet-key", key.decode())["source_key"] == key.decode()
    assert plan(url, environ={"AIRFLOW__CORE__FERNET_KEY": key.decode()})["source_key"] == key.decode()
    assert plan(url, "--source-fernet-key", f"{wrong},{key.decode()}")["mode"] == "source-db"
