"""Bad input to the rehearsal CLI: one clear message, exit code 2, nothing started.

Fast: no Airflow, no PostgreSQL (an unreachable URL is refused before anything runs).
"""

import gzip
import hashlib
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mwaa_common import versions as V
from tools.rehearse import checks
from tools.rehearse.args import parse_args, validate
from tools.rehearse.checks import UsageError

REPO = Path(__file__).resolve().parents[3]


def plan_for(*argv, environ=None):
    return validate(parse_args(list(argv)), environ or {})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- versions -------------------------------------------------------------------------


def test_default_plan_is_2_10_3_to_2_11_0_generated():
    plan = plan_for()
    assert (plan["mode"], plan["source"], plan["target"]) == ("generated", "2.10.3", "2.11.0")
    assert plan["rows"] > 0
    checks.check_fernet_key(plan["source_key"])  # a real Fernet key


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["--source-version", "2.6.3"],
            r"--source-version 2\.6\.3: unknown Airflow version; supported here: 2\.7\.2, ",
        ),
        (["--target-version", "banana"], r"--target-version banana: unknown Airflow version"),
        (
            ["--target-version", "3.3.1"],
            r"--target-version 3\.3\.1: the metadata DAGs do not support Airflow 3\.3\.1; supported: 2\.7\.2.*3\.0\.6",
        ),
        (["--source-version", "1.10.12"], r"--source-version 1\.10\.12: the metadata DAGs do not support"),
        (["--source-version", "2.11.0", "--target-version", "2.10.3"], r"not allowed \(downgrades are not allowed"),
        (["--source-version", "3.0.6", "--target-version", "2.11.0"], r"same or a newer version only"),
        (
            ["--source-version", "3.0.6", "--target-version", "3.0.6"],
            r"--source-version 3\.0\.6: the generated history .* 2\.x only",
        ),
    ],
)
def test_bad_versions(argv, message):
    with pytest.raises(UsageError, match=message):
        plan_for(*argv)


def test_version_the_library_rules_do_not_know(monkeypatch):
    rules = checks.library_rules()
    if rules is None:
        pytest.skip("the metadata library is not in this checkout")
    monkeypatch.setitem(V.VERSIONS, "2.10.1", {**V.VERSIONS["2.10.1"], "alembic_head": "0123456789ab"})
    with pytest.raises(
        UsageError,
        match=r"--source-version 2\.10\.1: its schema \(alembic "
        r"revision 0123456789ab\) is not in the migration "
        r"library's rule table",
    ):
        plan_for("--source-version", "2.10.1")
    monkeypatch.setitem(rules.REVISIONS, "0123456789ab", "2.9.2")
    with pytest.raises(
        UsageError,
        match=r"versions says schema family 2\.10\.3, the migration "
        r"library's rules say 2\.9\.2",
    ):
        plan_for("--source-version", "2.10.1")


def test_supported_versions_follow_the_table():
    assert checks.supported_versions() == [v for v in V.known_versions() if V.VERSIONS[v]["migration_schema"]]
    assert "3.3.1" not in checks.supported_versions()


def test_every_supported_version_has_an_alembic_head():
    for v in checks.supported_versions():
        assert V.alembic_head(v), v
    assert V.versions_at_revision("5f2621c13b39") == ["2.10.3", "2.11.0", "2.11.2"]


# ---- flag combinations ----------------------------------------------------------------


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--rows", "0"], r"--rows 0: must be between 1 and"),
        (
            ["--rows", "10", "--source-db", "postgresql://x@127.0.0.1/db"],
            r"--rows 10: only for a generated history.*--source-db",
        ),
        (["--source-fernet-key", "abc"], r"--source-fernet-key: only used with --source-db"),
    ],
)
def test_bad_flag_combinations(argv, message):
    with pytest.raises(UsageError, match=message):
        plan_for(*argv)


def test_source_db_and_from_export_are_exclusive(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(["--source-db", "postgresql://x@h/d", "--from-export", "/tmp"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


# ---- --source-db ------------------------------------------------------------------------


def test_unreachable_source_db_names_it_without_the_password():
    url = f"postgresql+psycopg2://airflow:s3cret@127.0.0.1:{free_port()}/airflow"
    with pytest.raises(UsageError) as exc:
        plan_for("--source-db", url)
    msg = str(exc.value)
    assert msg.startswith("--source-db postgresql+psycopg2://airflow:***@127.0.0.1:")
    assert "cannot connect" in msg and "s3cret" not in msg


@pytest.mark.parametrize(
    "url,message",
    [
        ("mysql://u@h/db", r"mysql is not supported; MWAA's metadata database is PostgreSQL"),
        ("sqlite:////tmp/airflow.db", r"sqlite is not supported"),
        ("airflow.db", r"not a database URL"),
    ],
)
def test_source_db_must_be_postgresql(url, message):
    with pytest.raises(UsageError, match=message):
        plan_for("--source-db", url)


def test_revision_mismatch_names_both_versions():
    with pytest.raises(UsageError) as exc:
        checks.check_revision("--source-version", "2.10.3", "686269002441", url="postgresql://u@h/d")
    msg = str(exc.value)
    assert "alembic revision 686269002441 (the schema of Airflow 2.9.2)" in msg
    assert "--source-version 2.10.3 expects 5f2621c13b39" in msg


def test_revision_shared_by_versions_is_accepted():
    checks.check_revision("--source-version", "2.11.0", "5f2621c13b39")
    checks.check_revision("--source-version", "2.11.2", "5f2621c13b39")


def test_unknown_revision_and_missing_table():
    with pytest.raises(UsageError, match=r"a revision no known version ends at"):
        checks.check_revision("--source-version", "2.10.3", "deadbeef0000")
    with pytest.raises(UsageError, match=r"no alembic_version table; this is not an Airflow"):
        checks.check_revision("--source-version", "2.10.3", None)


@pytest.mark.parametrize("key", ["short", "x" * 44, "", checks.generate_fernet_key() + ",nope"])
def test_bad_fernet_keys(key):
    with pytest.raises(UsageError, match=r"--source-fernet-key: key #\d is not a Fernet key"):
        checks.check_fernet_key(key)


def test_fernet_key_list_is_accepted():
    assert len(checks.check_fernet_key(f"{checks.generate_fernet_key()},{checks.generate_fernet_key()}")) == 2


def test_mask_url():
    assert checks.mask_url("postgresql://a:b@h:1/d") == "postgresql://a:***@h:1/d"
    assert checks.mask_url("postgresql://a@h/d") == "postgresql://a@h/d"


# ---- --from-export ----------------------------------------------------------------------


def make_export(root: Path, *, source="2.10.3", rows=3) -> Path:
    """A minimal export folder in the contract's layout (docs/contracts.md section 3)."""
    (root / "tables").mkdir(parents=True)
    tables = {}
    for name in ("dag_run", "variable"):
        body = "id,x\n" + "".join(f"{i},v{i}\n" for i in range(rows))
        path = root / "tables" / f"{name}.csv.gz"
        path.write_bytes(gzip.compress(body.encode()))
        tables[name] = {
            "columns": ["id", "x"],
            "types": {},
            "rows": rows,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "key": f"tables/{name}.csv.gz",
        }
    (root / "manifest.json").write_text(
        json.dumps(
            {
                "format": 1,
                "migration_id": "m-1",
                "source_airflow_version": source,
                "source_schema_revision": V.alembic_head(source),
                "exported_at": "2026-11-21T00:00:00Z",
                "tables": tables,
                "active_dags": [],
                "paused_for_export": [],
            }
        )
    )
    return root


def test_valid_export_folder_gives_the_plan(tmp_path):
    plan = plan_for("--from-export", str(make_export(tmp_path / "m-1")))
    assert (plan["mode"], plan["source"], plan["target"]) == ("from-export", "2.10.3", "2.11.0")
    assert plan["manifest"]["migration_id"] == "m-1"


def test_export_missing_table_file(tmp_path):
    root = make_export(tmp_path / "m-1")
    (root / "tables" / "variable.csv.gz").unlink()
    with pytest.raises(UsageError, match=r"table variable: tables/variable\.csv\.gz is missing"):
        plan_for("--from-export", str(root))


def test_export_corrupted_table_file(tmp_path):
    root = make_export(tmp_path / "m-1")
    path = root / "tables" / "dag_run.csv.gz"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(UsageError, match=r"table dag_run: tables/dag_run\.csv\.gz is corrupted \(sha256"):
        plan_for("--from-export", str(root))


def test_export_missing_or_broken_manifest(tmp_path):
    root = make_export(tmp_path / "m-1")
    with pytest.raises(UsageError, match=r"manifest\.json is missing.*did you mean .*m-1"):
        plan_for("--from-export", str(tmp_path))  # the parent folder
    (root / "manifest.json").write_text('{"format": 1,')
    with pytest.raises(UsageError, match=r"manifest\.json is not valid JSON"):
        plan_for("--from-export", str(root))


def test_export_version_disagrees_with_flag(tmp_path):
    root = make_export(tmp_path / "m-1", source="2.9.2")
    with pytest.raises(UsageError, match=r"--source-version 2\.10\.3: the export .* was made by Airflow 2\.9\.2"):
        plan_for("--from-export", str(root), "--source-version", "2.10.3")


def test_export_of_an_unsupported_or_newer_version(tmp_path):
    root = make_export(tmp_path / "m-1", source="2.11.0")
    with pytest.raises(
        UsageError,
        match=r"--from-export .*: the export was made by Airflow "
        r"2\.11\.0 \(.*downgrades are not allowed",
    ):
        plan_for("--from-export", str(root), "--target-version", "2.10.3")
    with pytest.raises(UsageError, match=r"^--target-version 3\.3\.1: the metadata DAGs"):
        plan_for("--from-export", str(root), "--target-version", "3.3.1")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["source_airflow_version"] = "2.6.3"
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        UsageError,
        match=r"made by Airflow 2\.6\.3 \(--source-version 2\.6\.3: "
        r"unknown Airflow version",
    ):
        plan_for("--from-export", str(root))


def test_export_not_a_directory(tmp_path):
    with pytest.raises(UsageError, match=r"not a directory"):
        plan_for("--from-export", str(tmp_path / "nope"))


# ---- the command itself ----------------------------------------------------------------


def test_cli_exit_code_and_message_on_bad_input(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "tools.rehearse", "--target-version", "3.3.1", "--report", str(tmp_path / "r.json")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --target-version 3.3.1: the metadata DAGs do not support")
    assert not (tmp_path / "r.json").exists()  # nothing ran, nothing to report


def test_library_argv_keeps_the_fernet_key_out_of_the_process_list():
    import argparse

    from tools.rehearse.harness import library_argv

    argv = library_argv(Path("/v/bin/python"), "import", "postgresql://u@h/d", "b", "-p/", '{"bucket": "b"}')
    assert not any("fernet" in a.lower() for a in argv)
    ap = argparse.ArgumentParser()  # the library CLI's flags (python -m mwaa_migration)
    ap.add_argument("command")
    for flag in ("--sql-alchemy-conn", "--bucket", "--prefix", "--conf-json"):
        ap.add_argument(flag)
    args = ap.parse_args(argv[3:])  # a value starting with "-" is not taken for an option
    assert (args.command, args.prefix) == ("import", "-p/")


def test_library_cli_reads_the_key_from_the_environment(monkeypatch):
    from mwaa_migration.__main__ import parse_args

    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "env-key")
    assert parse_args(["export", "--sql-alchemy-conn=postgresql://u@h/d"]).fernet_key == "env-key"
    monkeypatch.delenv("AIRFLOW__CORE__FERNET_KEY")
    assert parse_args(["export", "--sql-alchemy-conn=postgresql://u@h/d"]).fernet_key is None
