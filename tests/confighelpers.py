"""Helpers shared by the tests that write stage files."""
from __future__ import annotations

import copy


def with_key(base: dict, path: str, value, sep: str = ".") -> dict:
    """A deep copy of ``base`` with one nested key set; ``value`` ``...`` deletes it."""
    data = copy.deepcopy(base)
    *parents, last = path.split(sep)
    node = data
    for p in parents:
        node = node.setdefault(p, {})
    if value is ...:
        node.pop(last, None)
    else:
        node[last] = value
    return data
