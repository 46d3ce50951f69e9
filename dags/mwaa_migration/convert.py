"""Value conversions done where the data is: unpickling at the source, Fernet at both ends."""
from __future__ import annotations

import base64
import datetime
import decimal
import json
import pickle
import uuid


def _json_default(o):
    if isinstance(o, (datetime.datetime, datetime.date, datetime.time)):
        return o.isoformat()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if isinstance(o, decimal.Decimal):
        return float(o)
    if isinstance(o, uuid.UUID):
        return str(o)
    if isinstance(o, bytes):
        return base64.b64encode(o).decode("ascii")
    return repr(o)


def bytea_text_to_bytes(v: str) -> bytes:
    """PostgreSQL's text form of bytea (``\\x`` + hex) to bytes."""
    if not v.startswith("\\x"):
        raise ValueError("bytea value not in hex format")
    return bytes.fromhex(v[2:])


def pickle_to_json(v):
    """dag_run.conf (pickled dict in 2.x) -> JSON text; None if it cannot be represented."""
    if v is None:
        return None
    obj = pickle.loads(bytea_text_to_bytes(v))  # noqa: S301 - the source's own metadata
    return json.dumps(obj, default=_json_default, ensure_ascii=False)


def xcom_to_json(v):
    """xcom.value (JSON bytes, or a pickle with enable_xcom_pickling) -> JSON text."""
    if v is None:
        return None
    raw = bytea_text_to_bytes(v)
    try:
        text = raw.decode("utf-8")
        json.loads(text)
        return text
    except (UnicodeDecodeError, ValueError):
        pass
    obj = pickle.loads(raw)  # noqa: S301 - the source's own metadata
    return json.dumps(obj, default=_json_default, ensure_ascii=False)


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
