"""Input checks of the rehearsal: plain values in, a clear UsageError out.

Nothing here starts a process or touches AWS. The database checks take an open DB-API
connection (or a URL to open one with psycopg2) so they can be tested without Airflow.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import os
import zlib
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mwaa_common import names
from mwaa_common import versions as V


class UsageError(ValueError):
    """Bad input: the message names the flag, the value and what is allowed."""


def supported_versions() -> list[str]:
    """Versions the metadata DAGs can export from / import into (``migration_schema`` set)."""
    return [v for v in V.known_versions() if V.VERSIONS[v]["migration_schema"] is not None]


def check_version(flag: str, version: str) -> None:
    if version not in V.VERSIONS:
        raise UsageError(
            f"{flag} {version}: unknown Airflow version; supported here: {', '.join(supported_versions())}"
        )
    row = V.VERSIONS[version]
    if row["migration_schema"] is None:
        raise UsageError(
            f"{flag} {version}: the metadata DAGs do not support Airflow {version}; "
            f"supported: {', '.join(supported_versions())}"
        )


DAGS = Path(__file__).resolve().parents[2] / "dags"


def library_rules():
    """The migration library's rule table (dags/mwaa_migration/rules.py), None if absent."""
    if not (DAGS / "mwaa_migration" / "rules.py").exists():
        return None
    import sys

    if str(DAGS) not in sys.path:
        sys.path.insert(0, str(DAGS))
    from mwaa_migration import rules

    return rules


def check_library_knows(flag: str, version: str) -> None:
    """The library must know the version's schema revision (its REVISIONS table), and put it
    in the family ``migration_schema`` names; otherwise its export/import would refuse it."""
    rules = library_rules()
    if rules is None or not hasattr(rules, "REVISIONS"):
        return
    head = V.alembic_head(version)
    family = rules.REVISIONS.get(head)
    if family is None:
        raise UsageError(
            f"{flag} {version}: its schema (alembic revision {head}) is not in the migration "
            f"library's rule table (dags/mwaa_migration/rules.py REVISIONS), so db_export/"
            f"db_import cannot handle it yet; known: "
            f"{', '.join(f'{r} (Airflow {f})' for r, f in rules.REVISIONS.items())}"
        )
    expected = V.info(version)["migration_schema"]
    if family != expected:
        raise UsageError(
            f"{flag} {version}: mwaa_common.versions says schema family {expected}, the "
            f"migration library's rules say {family} for revision {head}; fix one of them"
        )


def check_pair(source: str, target: str) -> V.UpgradePath:
    """Both versions supported and MWAA allows moving ``source`` to ``target`` at all."""
    check_version("--source-version", source)
    check_version("--target-version", target)
    check_library_knows("--source-version", source)
    check_library_knows("--target-version", target)
    path = V.upgrade_path(source, target)
    if not path.allowed:
        raise UsageError(f"--source-version {source} --target-version {target}: not allowed ({path.reason})")
    if V.parse(source) > V.parse(target):
        raise UsageError(
            f"--source-version {source} --target-version {target}: the rehearsal moves metadata "
            f"to the same or a newer version only"
        )
    return path


# ---- database URLs -----------------------------------------------------------------------


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def libpq_url(sqlalchemy_url: str) -> str:
    """``postgresql+psycopg2://...`` -> ``postgresql://...`` (what psycopg2.connect takes)."""
    scheme, sep, rest = sqlalchemy_url.partition("://")
    if not sep:
        raise UsageError(
            f"--source-db {mask_url(sqlalchemy_url)!r}: not a database URL; expected "
            f"postgresql+psycopg2://USER[:PASSWORD]@HOST[:PORT]/DBNAME"
        )
    dialect = scheme.split("+", 1)[0].lower()
    if dialect not in ("postgresql", "postgres"):
        raise UsageError(
            f"--source-db {mask_url(sqlalchemy_url)!r}: {dialect} is not supported; MWAA's "
            f"metadata database is PostgreSQL (postgresql+psycopg2://USER@HOST:PORT/DBNAME)"
        )
    return "postgresql://" + rest


def connect(url: str, *, flag: str = "--source-db", timeout: int = 5):
    """An open psycopg2 connection, or a UsageError that says why it could not be opened."""
    import psycopg2

    dsn = libpq_url(url)
    try:
        conn = psycopg2.connect(dsn, connect_timeout=timeout)
    except psycopg2.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UsageError(f"{flag} {mask_url(url)}: cannot connect: {reason}") from None
    conn.autocommit = True
    return conn


def alembic_revision(conn) -> str | None:
    """The revision in alembic_version, None when the table is missing (not Airflow)."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('alembic_version') IS NOT NULL")
        if not cur.fetchone()[0]:
            return None
        cur.execute("SELECT version_num FROM alembic_version")
        rows = [r[0] for r in cur.fetchall()]
    if len(rows) != 1:
        return ",".join(sorted(rows)) or ""
    return rows[0]


def check_revision(flag_value: str, version: str, revision: str | None, *, url: str = "") -> None:
    """The database's alembic revision must be the head of ``version`` (the one table)."""
    where = f"--source-db {mask_url(url)}" if url else "the source database"
    if revision is None:
        raise UsageError(
            f"{where}: no alembic_version table; this is not an Airflow "
            f"metadata database (or `airflow db migrate` never ran on it)"
        )
    expected = V.alembic_head(version)
    if expected is None:  # pragma: no cover - supported versions all have a head
        raise UsageError(f"--source-version {version}: its schema revision is not recorded in mwaa_common.versions")
    if revision != expected:
        owners = V.versions_at_revision(revision)
        what = (
            f"the schema of Airflow {', '.join(owners)}"
            if owners
            else "a revision no known version ends at (a partial or failed upgrade?)"
        )
        raise UsageError(
            f"{where} is at alembic revision {revision or '<empty>'} ({what}), but "
            f"{flag_value} {version} expects {expected}; pass the version the database "
            f"belongs to, or run that version's `airflow db migrate` on it first"
        )


def encrypted_counts(conn) -> dict[str, int]:
    """How many variables / connections carry Fernet-encrypted values."""
    out = {}
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM variable WHERE is_encrypted")
        out["variable"] = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM connection WHERE is_encrypted OR is_extra_encrypted")
        out["connection"] = cur.fetchone()[0]
    return out


def check_fernet_key(key: str, flag: str = "--source-fernet-key") -> list[bytes]:
    """Airflow's format: comma-separated url-safe base64 keys of 32 bytes each."""
    keys = []
    for i, part in enumerate(k.strip() for k in key.split(",")):
        try:
            raw = base64.urlsafe_b64decode(part.encode())
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise UsageError(
                f"{flag}: key #{i + 1} is not a Fernet key (url-safe base64 of 32 bytes, "
                f"44 characters; several keys may be joined with commas)"
            )
        keys.append(part.encode())
    return keys


def check_key_decrypts(conn, key: str, flag: str = "--source-fernet-key") -> None:
    """Try the key on one encrypted variable or connection; name it (never its value)."""
    from cryptography.fernet import Fernet, InvalidToken, MultiFernet

    fernet = MultiFernet([Fernet(k) for k in check_fernet_key(key, flag)])
    probes = (
        ("variable", "key", "val", "is_encrypted"),
        ("connection", "conn_id", "password", "is_encrypted"),
        ("connection", "conn_id", "extra", "is_extra_encrypted"),
    )
    with conn.cursor() as cur:
        for table, name, column, flag_col in probes:
            cur.execute(
                f"SELECT {name}, {column} FROM {table} "
                f"WHERE {flag_col} AND {column} IS NOT NULL AND {column} <> '' LIMIT 1"
            )
            row = cur.fetchone()
            if row is None:
                continue
            try:
                fernet.decrypt(row[1].encode())
            except InvalidToken:
                raise UsageError(
                    f"{flag}: the key does not decrypt {table} {row[0]!r} ({column}); pass the "
                    f"Fernet key of the environment this database belongs to"
                ) from None


def generate_fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


# ---- export folders --------------------------------------------------------------------

MIGRATION_ID = names.MIGRATION_ID_RE  # lambda/mwaa_common/names.py


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _gzip_ok(path: Path) -> str | None:
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(1 << 20):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        return str(exc) or type(exc).__name__
    return None


def _read_export_manifest(root: Path, path: str) -> dict:
    if not root.is_dir():
        raise UsageError(
            f"--from-export {path}: not a directory; pass the folder downloaded "
            f"from s3://BUCKET/PREFIX/MIGRATION_ID/ (manifest.json + tables/)"
        )
    mpath = root / "manifest.json"
    if not mpath.is_file():
        hint = ""
        subdirs = [p.name for p in root.iterdir() if (p / "manifest.json").is_file()]
        if subdirs:
            hint = f"; did you mean {root / subdirs[0]}?"
        raise UsageError(
            f"--from-export {path}: manifest.json is missing (it is written last; "
            f"without it the export is incomplete){hint}"
        )
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"--from-export {path}: manifest.json is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise UsageError(f"--from-export {path}: manifest.json is not a JSON object")
    return manifest


def _table_problem(root: Path, name: str, meta) -> str | None:
    """What is wrong with one table file of a downloaded export, or None."""
    if not isinstance(meta, dict) or not {"key", "sha256", "rows"} <= set(meta):
        return f"table {name}: entry lacks key/sha256/rows"
    key = str(meta["key"])
    fpath = (root / key).resolve()
    if root.resolve() not in fpath.parents:
        return f"table {name}: key {key!r} points outside the folder"
    if not fpath.is_file():
        return f"table {name}: {key} is missing"
    digest = _sha256(fpath)
    if digest != meta["sha256"]:
        return (
            f"table {name}: {key} is corrupted (sha256 {digest[:12]}..., manifest says {str(meta['sha256'])[:12]}...)"
        )
    if key.endswith(".gz"):
        err = _gzip_ok(fpath)
        if err:
            return f"table {name}: {key} is not a readable gzip file ({err})"
    return None


def check_export_folder(path: str) -> dict:
    """Validate a downloaded export (manifest.json + tables/) and return its manifest.

    Every problem is collected, so a user fixing a download sees them all at once.
    """
    root = Path(path)
    manifest = _read_export_manifest(root, path)
    problems = []
    if manifest.get("format") != 1:
        problems.append(f"manifest format {manifest.get('format')!r} (this tool reads format 1)")
    mid = manifest.get("migration_id")
    if not isinstance(mid, str) or not MIGRATION_ID.fullmatch(mid):
        problems.append(f"migration_id {mid!r} (expected [a-z0-9-]{{1,40}})")
    if not isinstance(manifest.get("source_airflow_version"), str):
        problems.append("source_airflow_version is missing")
    tables = manifest.get("tables")
    if not isinstance(tables, dict) or not tables:
        problems.append("no tables listed")
        tables = {}
    for name, meta in sorted(tables.items()):
        problem = _table_problem(root, name, meta)
        if problem:
            problems.append(problem)
    if problems:
        raise UsageError(f"--from-export {path}: " + "; ".join(problems))
    return manifest


def task_log_timestamps(start_ms: int, end_ms: int, attempt: int, tries: int, lines: int) -> list[int]:
    """Timestamps (ms) for ``lines`` generated log events of try ``attempt`` of ``tries``: inside the
    task instance's run [start, end], each try in its own slice, so Airflow's log readers (which
    read a try's events between its start and end) serve them."""
    if end_ms <= start_ms:
        end_ms = start_ms + tries * (lines + 1)
    width = max((end_ms - start_ms) // max(tries, 1), lines + 1)
    first = start_ms + (attempt - 1) * width
    step = max(width // (lines + 1), 1)
    return [min(first + (i + 1) * step, end_ms) for i in range(lines)]
