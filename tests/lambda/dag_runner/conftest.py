"""Fixtures of the DAG runner tests (helpers live in runner_fakes)."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber
from runner_fakes import FakeHttp, Mwaa, Sleeps, aws_client


@pytest.fixture
def mwaa():
    m = Mwaa()
    with m.stub:
        yield m
        m.stub.assert_no_pending_responses()


@pytest.fixture
def cfn():
    client = aws_client("cloudformation")
    stub = Stubber(client)
    with stub:
        yield client, stub
        stub.assert_no_pending_responses()


@pytest.fixture
def http():
    fake = FakeHttp()
    yield fake
    assert not fake.answers, f"HTTP answers left over: {fake.answers}"


@pytest.fixture
def sleeps():
    return Sleeps()
