"""Name rules written once (lambda/mwaa_common/names.py) and used by every part that checks
a name: the stage config, the DAG runner, the clone planner, the pipeline stack, the rehearsal."""

from __future__ import annotations

import pytest

from clone_env import planner
from dag_runner import plan
from mwaa_common import names
from stacks import pipeline_stack
from tools.rehearse import checks


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("src-env", True),
        ("a", True),
        ("A_b-9", True),
        ("a" * 80, True),
        ("a" * 81, False),
        ("1abc", False),
        ("has space", False),
        ("src-env\n", False),
        ("", False),
        ("src.env", False),
    ],
)
def test_environment_names(value, ok):
    assert (names.environment_name_problem(value) is None) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2-10-3-to-2-11-0", True),
        ("a" * 40, True),
        ("a" * 41, False),
        ("Upper", False),
        ("abc\n", False),
        ("", False),
        ("a_b", False),
    ],
)
def test_migration_ids(value, ok):
    assert (names.migration_id_problem(value) is None) is ok


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("my-bucket", None),
        ("a.b.c", None),
        ("abc", None),
        ("b" * 63, None),
        ("ab", "3-63"),
        ("b" * 64, "3-63"),
        ("My-bucket", "lower-case"),
        ("-bucket", "3-63"),
        ("bucket-", "3-63"),
        ("my..bucket", "adjacent dots"),
        ("192.168.5.4", "IP address"),
        ("xn--bucket", "'xn--'"),
        ("sthree-x", "'sthree-'"),
        ("amzn-s3-demo-x", "'amzn-s3-demo-'"),
        ("x-s3alias", "'-s3alias'"),
        ("x--ol-s3", "'--ol-s3'"),
        ("x.mrap", "'.mrap'"),
        ("x--x-s3", "'--x-s3'"),
        ("x--table-s3", "'--table-s3'"),
        ("my-bucket\n", "3-63"),
    ],
)
def test_bucket_names(value, fragment):
    problem = names.bucket_name_problem(value)
    assert (problem is None) if fragment is None else (fragment in (problem or ""))


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("team", True),
        ("Équipe données", True),
        ("a:b/c=d+e-f@g_h.i", True),
        ("k" * 128, True),
        ("k" * 129, False),
        ("", False),
        ("aws:x", False),
        ("AWS:x", False),
        ("a\x00", False),
        ("a!", False),
        ("a\nb", False),
    ],
)
def test_tag_keys(key, ok):
    assert (names.tag_key_problem(key) is None) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("v", True),
        ("v" * 256, True),
        ("v" * 257, False),
        ("", False),
        ("\x00", False),
        ("a # b", False),
        ("aws:ok in a value", True),
    ],
)
def test_tag_values(value, ok):
    assert (names.tag_value_problem(value) is None) is ok


def test_every_checker_uses_the_one_rule():
    assert plan.MIGRATION_ID_RE is names.MIGRATION_ID_RE and plan.ENV_NAME_RE is names.ENV_NAME_RE
    assert planner.MIGRATION_ID_PATTERN is names.MIGRATION_ID_RE and planner.NAME_PATTERN is names.ENV_NAME_RE
    assert pipeline_stack.MWAA_NAME is names.ENV_NAME_RE
    assert checks.MIGRATION_ID is names.MIGRATION_ID_RE


@pytest.mark.parametrize("method", ["match", "fullmatch", "search"])
def test_patterns_refuse_a_trailing_newline_however_they_are_called(method):
    for rx, good in ((names.ENV_NAME_RE, "src-env"), (names.MIGRATION_ID_RE, "abc"), (names.BUCKET_NAME_RE, "abc")):
        assert getattr(rx, method)(good)
        assert not getattr(rx, method)(good + "\n")
