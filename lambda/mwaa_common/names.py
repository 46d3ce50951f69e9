"""Name rules shared by the stage config (stacks/config), the Lambdas and the tools: each rule
written once.

Every pattern is anchored with ``\\A`` and ``\\Z``, so ``match``, ``fullmatch`` and ``search``
all test the whole string (``$`` would accept a trailing newline). Each ``*_problem`` function
returns None for a good value, else what is allowed, worded for a message such as
``target.name: 'x y' is not allowed; <what is allowed>``.

Sources: the MWAA API model (EnvironmentName, TagKey, TagValue, TagMap), the S3 general purpose
bucket naming rules, and docs/contracts.md (the migration id). dags/mwaa_migration keeps its own
copy of the migration-id rule: the DAG bucket receives dags/ alone, without this package.
"""

from __future__ import annotations

import re
import unicodedata

# ---------------------------------------------------------------- MWAA environment names
ENV_NAME_MAX = 80
ENV_NAME_RE = re.compile(r"\A[a-zA-Z][0-9a-zA-Z_-]{0,79}\Z")
ENV_NAME_RULE = (
    "MWAA names are 1-80 characters matching [a-zA-Z][0-9a-zA-Z-_]* (a letter, then letters, digits, '-', '_')"
)


def environment_name_problem(value: str) -> str | None:
    return None if ENV_NAME_RE.match(value) else ENV_NAME_RULE


# ---------------------------------------------------------------- migration ids
MIGRATION_ID_MAX = 40
MIGRATION_ID_RE = re.compile(r"\A[a-z0-9-]{1,40}\Z")
MIGRATION_ID_RULE = "1-40 characters from a-z, 0-9 and '-'"


def migration_id_problem(value: str) -> str | None:
    return None if MIGRATION_ID_RE.match(value) else MIGRATION_ID_RULE


# ---------------------------------------------------------------- S3 bucket names
BUCKET_NAME_RE = re.compile(r"\A[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_IP_LIKE = re.compile(r"\A\d{1,3}(\.\d{1,3}){3}\Z")
BUCKET_NAME_RULE = (
    "an S3 bucket name: 3-63 characters of lower-case letters, digits, '.' and '-', starting and "
    "ending with a letter or digit"
)


def bucket_name_problem(name: str) -> str | None:
    """S3's naming rules for general purpose buckets."""
    if not BUCKET_NAME_RE.match(name):
        return BUCKET_NAME_RULE
    if ".." in name:
        return f"{BUCKET_NAME_RULE}; no two adjacent dots"
    if _IP_LIKE.match(name):
        return f"{BUCKET_NAME_RULE}; not formatted as an IP address"
    for prefix in BUCKET_RESERVED_PREFIXES:
        if name.startswith(prefix):
            return f"{BUCKET_NAME_RULE}; not starting with the reserved prefix {prefix!r}"
    for suffix in BUCKET_RESERVED_SUFFIXES:
        if name.endswith(suffix):
            return f"{BUCKET_NAME_RULE}; not ending with the reserved suffix {suffix!r}"
    return None


# ---------------------------------------------------------------- tags
# MWAA TagKey/TagValue: [\p{L}\p{Z}\p{N}_.:/=+\-@]*, key 1-128, value 1-256, at most 50 tags; the
# "aws:" prefix is reserved. CloudFormation stack tags (propagated to every resource) share them.
TAG_KEY_MAX, TAG_VALUE_MAX, TAGS_MAX = 128, 256, 50
TAG_RESERVED_PREFIX = "aws:"
_TAG_PUNCTUATION = frozenset("_.:/=+-@")
TAG_CHARS_RULE = "letters, digits, spaces and _ . : / = + - @"


def _tag_chars_ok(text: str) -> bool:
    return all(unicodedata.category(c)[0] in "LNZ" or c in _TAG_PUNCTUATION for c in text)


def tag_key_problem(key: str) -> str | None:
    if not 1 <= len(key) <= TAG_KEY_MAX or not _tag_chars_ok(key):
        return f"tag keys are 1-{TAG_KEY_MAX} characters: {TAG_CHARS_RULE}"
    if key.lower().startswith(TAG_RESERVED_PREFIX):
        return f"tag keys must not start with {TAG_RESERVED_PREFIX} (reserved for AWS)"
    return None


def tag_value_problem(value: str) -> str | None:
    if not 1 <= len(value) <= TAG_VALUE_MAX or not _tag_chars_ok(value):
        return f"tag values are 1-{TAG_VALUE_MAX} characters: {TAG_CHARS_RULE}"
    return None
