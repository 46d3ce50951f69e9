"""Value conversions done where the data is: unpickling at the source, Fernet at both ends."""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import math
import pickle
import uuid
from typing import Any, Callable

# Airflow 3 keeps dag_run.conf and xcom.value as JSON(B), which cannot hold everything a
# pickle or Python's json module can. One rule per case; every use is counted and reported
# (manifest "conversions" -> report), so no conversion is silent.
RULES = {
    "nan": "NaN/Infinity -> null (JSON has no such numbers)",
    "nul": "NUL character removed from text (PostgreSQL text and jsonb cannot hold it)",
    "bytes": "bytes -> base64 text",
    "set": "set/tuple -> list",
    "datetime": "date/time -> ISO 8601 text",
    "decimal": "Decimal -> number",
    "uuid": "UUID -> text",
    "key": "non-text dict key -> text",
    "other": "other object -> its repr() text",
}


def _scalar(o, counts: dict):
    """JSON-safe form of a non-container value."""
    if o is None or isinstance(o, (bool, int)):
        return o
    if isinstance(o, float):
        if math.isnan(o) or math.isinf(o):
            return _count(counts, "nan", None)
        return o
    if isinstance(o, str):
        return _count(counts, "nul", o.replace("\x00", "")) if "\x00" in o else o
    for kind, types, fn in _SCALARS:
        if isinstance(o, types):
            return _count(counts, kind, fn(o))
    return _count(counts, "other", repr(o).replace("\x00", ""))


_SCALARS: tuple[tuple[str, Any, Callable[[Any], Any]], ...] = (
    ("bytes", (bytes, bytearray, memoryview), lambda o: base64.b64encode(bytes(o)).decode("ascii")),
    ("datetime", (datetime.datetime, datetime.date, datetime.time), lambda o: o.isoformat()),
    ("decimal", decimal.Decimal, float),
    ("uuid", uuid.UUID, str),
)


def _count(counts: dict, kind: str, value):
    counts[kind] = counts.get(kind, 0) + 1
    return value


def json_safe(obj, counts: dict):
    """``obj`` with every value PostgreSQL's jsonb accepts; ``counts`` gets one per rule used."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                k = _count(counts, "key", k if k is None or isinstance(k, (bool, int, float)) else str(k))
                k = json.dumps(k) if not isinstance(k, str) else k
            out[_scalar(k, counts)] = json_safe(v, counts)
        return out
    if isinstance(obj, list):
        return [json_safe(v, counts) for v in obj]
    if isinstance(obj, (set, frozenset, tuple)):
        _count(counts, "set", None)
        return [json_safe(v, counts) for v in obj]
    return _scalar(obj, counts)


def to_json(obj, counts: dict) -> str:
    return json.dumps(json_safe(obj, counts), ensure_ascii=False, allow_nan=False)


def bytea_text_to_bytes(v) -> bytes:
    """PostgreSQL's text form of bytea (``\\x`` + hex) to bytes; bytes-like values pass through."""
    if not isinstance(v, str):
        return v
    if not v.startswith("\\x"):
        raise ValueError("bytea value not in hex format")
    return bytes.fromhex(v[2:])


def pickle_to_json(v, counts=None):
    """dag_run.conf (pickled dict in 2.x) -> JSON text for Airflow 3 (conversions counted)."""
    if v is None:
        return None
    obj = pickle.loads(bytea_text_to_bytes(v))  # noqa: S301 - the source's own metadata
    return to_json(obj, {} if counts is None else counts)


_UNSAFE_JSON = ("NaN", "Infinity", "\\u0000")


def xcom_to_json(v, counts=None):
    """xcom.value (JSON bytes, or a pickle with enable_xcom_pickling) -> JSON text for Airflow 3."""
    if v is None:
        return None
    counts = {} if counts is None else counts
    raw = bytea_text_to_bytes(v)
    try:
        text = str(raw, "utf-8")
        obj = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        return to_json(pickle.loads(raw), counts)  # noqa: S301 - the source's own metadata
    del raw
    if any(u in text for u in _UNSAFE_JSON):
        return to_json(obj, counts)  # JSON that jsonb refuses: converted by the rules
    return text


CONVERTERS = {"pickle_to_json": pickle_to_json, "xcom_to_json": xcom_to_json}


def fernet_from_key(key: str | None):
    """A (Multi)Fernet from a key string (comma-separated keys allowed), or None."""
    if not key:
        return None
    from cryptography.fernet import Fernet, MultiFernet

    keys = [k.strip() for k in key.split(",") if k.strip()]
    return MultiFernet([Fernet(k.encode()) for k in keys])


def airflow_fernet():
    """The running Airflow's Fernet (its configured fernet_key)."""
    from airflow.models.crypto import get_fernet

    f = get_fernet()
    return f if getattr(f, "is_encrypted", True) else None


def is_true(v) -> bool:
    return v in ("t", "true", "True", True)


# Envelope encryption of the secret columns in the export files: a KMS data key (generated
# by the source's export, readable only by a role allowed kms:Decrypt with this encryption
# context, i.e. the target's import) encrypts each secret value; the manifest carries the
# data key encrypted by KMS. Bucket encryption stays underneath.
SECRETS_CONTEXT_KEY = "mwaa-migration-secrets"


def secrets_context(migration_id: str) -> dict:
    return {SECRETS_CONTEXT_KEY: migration_id}


def seal_key(kms, key_id: str, migration_id: str):
    """(Fernet of a new data key, manifest entry holding that key encrypted by KMS)."""
    from cryptography.fernet import Fernet

    context = secrets_context(migration_id)
    out = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=context)
    entry = {
        "kms_key_id": out.get("KeyId", key_id),
        "encrypted_data_key": base64.b64encode(out["CiphertextBlob"]).decode("ascii"),
        "encryption_context": context,
    }
    return Fernet(base64.urlsafe_b64encode(out["Plaintext"])), entry


def open_key(kms, entry: dict):
    """The Fernet of an export's data key (kms:Decrypt with the export's encryption context)."""
    from cryptography.fernet import Fernet

    out = kms.decrypt(
        CiphertextBlob=base64.b64decode(entry["encrypted_data_key"]), EncryptionContext=entry["encryption_context"]
    )
    return Fernet(base64.urlsafe_b64encode(out["Plaintext"]))
