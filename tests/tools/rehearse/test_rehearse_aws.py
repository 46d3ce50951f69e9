"""The moto stack: what the CDK app would create, on loopback only, and gone after stop()."""

import socket

import pytest

from tools.rehearse.aws import MotoStack, log_groups


@pytest.fixture
def stack():
    s = MotoStack(source_env="rehearsal-source-2-10-3", target_env="rehearsal-target-2-11-0").start()
    yield s
    s.stop()


def test_bucket_is_kms_encrypted_and_private(stack):
    assert stack.endpoint.startswith("http://127.0.0.1:")
    s3 = stack.client("s3")
    rule = s3.get_bucket_encryption(Bucket=stack.bucket)["ServerSideEncryptionConfiguration"]["Rules"][0][
        "ApplyServerSideEncryptionByDefault"
    ]
    assert rule == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": stack.kms_key_arn}
    block = s3.get_public_access_block(Bucket=stack.bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    assert stack.bucket.startswith("mwaa-migration-")


def test_log_groups_of_both_environments(stack):
    names = set()
    for page in stack.client("logs").get_paginator("describe_log_groups").paginate():
        names |= {g["logGroupName"] for g in page["logGroups"]}
    expected = set(log_groups("rehearsal-source-2-10-3") + log_groups("rehearsal-target-2-11-0"))
    assert expected <= names
    assert "airflow-rehearsal-source-2-10-3-Task" in expected


def test_child_environment_points_at_moto_without_real_credentials(stack):
    env = stack.env()
    assert env["AWS_ENDPOINT_URL"] == stack.endpoint
    assert "AWS_PROFILE" not in env and env["AWS_SHARED_CREDENTIALS_FILE"] == "/dev/null"


def test_stop_closes_the_port():
    s = MotoStack(source_env="a", target_env="b").start()
    host, port = s.endpoint.rsplit("/", 1)[1].split(":")
    s.stop()
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=1).close()
