"""Read every variable and connection back through Airflow's own ORM (run in an Airflow venv).

Runs as a script with the venv's python, with AIRFLOW__DATABASE__SQL_ALCHEMY_CONN and
AIRFLOW__CORE__FERNET_KEY set for the database to read. Writes one JSON object to the file
named by argv[1]: per key a sha256 of the decrypted value (never the value), and the keys
that could not be decrypted.
Only the standard library and Airflow are imported, so it works in every version's venv.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys

CONN_FIELDS = ("conn_type", "description", "host", "schema", "login", "password", "port", "extra")


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def main() -> int:
    import warnings

    warnings.simplefilter("ignore")  # deprecation chatter of the version's own imports
    logging.disable(logging.CRITICAL)  # Airflow logs decryption failures with the key name only,
    # but nothing from here may reach the console except the JSON below
    from airflow.models import Connection, Variable
    from airflow.utils.session import create_session

    out: dict = {"variables": {}, "connections": {}, "unreadable": {"variables": [], "connections": []}}
    with create_session() as session:
        # one row at a time: Connection decrypts on load, so a bad key must not end the loop
        for (key,) in session.query(Variable.key).order_by(Variable.key).all():
            try:
                var = session.query(Variable).filter(Variable.key == key).one()
                val = var.val
                if var.is_encrypted and var._val and val is None:
                    raise ValueError("cannot decrypt")
            except Exception:  # noqa: BLE001 - any failure means "not readable"
                out["unreadable"]["variables"].append(key)
                session.expunge_all()
                continue
            out["variables"][key] = _digest(val)
        for (conn_id,) in session.query(Connection.conn_id).order_by(Connection.conn_id).all():
            try:
                conn = session.query(Connection).filter(Connection.conn_id == conn_id).one()
                fields = {f: getattr(conn, f, None) for f in CONN_FIELDS}
                if conn.is_encrypted and conn._password and fields["password"] is None:
                    raise ValueError("cannot decrypt password")
                if conn.is_extra_encrypted and conn._extra and fields["extra"] is None:
                    raise ValueError("cannot decrypt extra")
            except Exception:  # noqa: BLE001
                out["unreadable"]["connections"].append(conn_id)
                session.expunge_all()
                continue
            out["connections"][conn_id] = _digest(fields)
    with open(sys.argv[1], "w", encoding="utf-8") as fh:
        json.dump(out, fh)
    print(
        f"{len(out['variables'])} variables and {len(out['connections'])} connections read; "
        f"unreadable: {len(out['unreadable']['variables'])} variables, "
        f"{len(out['unreadable']['connections'])} connections"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
