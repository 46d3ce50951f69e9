"""Small readers over synthesized template JSON."""

from __future__ import annotations


def resources(template: dict, type_: str) -> dict[str, dict]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == type_}


def one(template: dict, type_: str) -> tuple[str, dict]:
    found = resources(template, type_)
    assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
    return next(iter(found.items()))


def statements_by_sid(document: dict) -> dict[str, dict]:
    out = {}
    for st in document["Statement"]:
        assert "Sid" in st, f"statement without Sid: {st}"
        assert st["Sid"] not in out
        out[st["Sid"]] = st
    return out


def as_list(v) -> list:
    return v if isinstance(v, list) else [v]
