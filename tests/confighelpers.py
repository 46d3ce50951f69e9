"""Helpers shared by the tests that write stage files."""

from __future__ import annotations

import copy

# The smallest valid stage: a created VPC, a created source, a declared target.
MINIMAL_STAGE = {
    "account": "111111111111",
    "region": "eu-west-1",
    "network": {
        "mode": "create",
        "vpc_cidr": "10.1.0.0/16",
        "availability_zones": ["eu-west-1a", "eu-west-1b"],
        "private_subnet_cidrs": ["10.1.0.0/20", "10.1.16.0/20"],
    },
    "source": {"mode": "create", "name": "src-env", "airflow_version": "2.10.3"},
    "target": {"creation": "declared", "name": "tgt-env", "airflow_version": "2.11.0"},
}


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
