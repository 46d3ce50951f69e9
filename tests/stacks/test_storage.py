"""Migration storage: encryption, versioning, public access, TLS, RETAIN, lifecycle, protection."""

from __future__ import annotations

from aws_cdk.assertions import Match

from tests.templatehelpers import resources


def _buckets(stage):
    t = stage.json("storage")
    b = resources(t, "AWS::S3::Bucket")
    return t, b["MigrationBucketD3297513"], b["AccessLogsBucket83982689"]


def test_migration_bucket_uses_customer_key_with_bucket_key(stage):
    t, bucket, _ = _buckets(stage)
    rule = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["BucketKeyEnabled"] is True
    sse = rule["ServerSideEncryptionByDefault"]
    assert sse["SSEAlgorithm"] == "aws:kms"
    assert sse["KMSMasterKeyID"] == {"Fn::GetAtt": ["MigrationKeyB00007D5", "Arn"]}
    key = t["Resources"]["MigrationKeyB00007D5"]
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain" and key["UpdateReplacePolicy"] == "Retain"


def test_buckets_versioned_private_retained(stage):
    _, bucket, logs = _buckets(stage)
    for b in (bucket, logs):
        props = b["Properties"]
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert b["DeletionPolicy"] == "Retain" and b["UpdateReplacePolicy"] == "Retain"
    assert bucket["Properties"]["BucketName"] == stage.cfg.migration_bucket_name


def test_server_access_logs_go_to_the_log_bucket(stage):
    _, bucket, logs = _buckets(stage)
    assert bucket["Properties"]["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": "AccessLogsBucket83982689"},
        "LogFilePrefix": "migration-bucket/",
    }
    # S3 delivers access logs only to SSE-S3 buckets.
    sse = logs["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_tls_only_bucket_policies(stage):
    t = stage.template("storage")
    for ref in ("MigrationBucketD3297513", "AccessLogsBucket83982689"):
        t.has_resource_properties(
            "AWS::S3::BucketPolicy",
            {
                "Bucket": {"Ref": ref},
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {
                                    "Effect": "Deny",
                                    "Action": "s3:*",
                                    "Principal": {"AWS": "*"},
                                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                }
                            )
                        ]
                    )
                },
            },
        )
        t.has_resource_properties(
            "AWS::S3::BucketPolicy",
            {
                "Bucket": {"Ref": ref},
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {"Effect": "Deny", "Condition": {"NumericLessThan": {"s3:TlsVersion": 1.2}}}
                            )
                        ]
                    )
                },
            },
        )


def test_exports_expire_after_configured_days(stage):
    _, bucket, _ = _buckets(stage)
    rules = {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-old-exports"] == {
        "Id": "expire-old-exports",
        "Prefix": "data/migration/",
        "Status": "Enabled",
        "ExpirationInDays": stage.cfg.migration.export_retention_days,
    }
    assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": stage.cfg.storage.noncurrent_version_days
    }


def test_termination_protection_outside_dev(dev, prod, example):
    assert dev.stacks.storage.termination_protection is False
    assert prod.stacks.storage.termination_protection is True
    assert example.stacks.storage.termination_protection is True
    # only the stateful stack is protected
    assert prod.stacks.network.termination_protection is False


def test_export_prefix_is_the_guides(stage):
    src = stage.cfg.source.environment.airflow_version
    tgt = stage.cfg.target.environment.airflow_version
    assert stage.stacks.storage.export_prefix == f"data/migration/{src}_to_{tgt}/export/"
    outputs = stage.json("storage")["Outputs"]
    assert outputs["ExportPrefix"]["Value"] == stage.stacks.storage.export_prefix


def test_every_access_log_delivery_is_limited_to_this_account(stage):
    """Issue 12 item 12: CDK wrote the DAG buckets' (cross-stack) log-delivery grant without
    aws:SourceAccount/aws:SourceArn; every logging.s3 Allow now carries aws:SourceAccount."""
    t = stage.json("storage")
    statements = [
        s
        for r in t["Resources"].values()
        if r["Type"] == "AWS::S3::BucketPolicy"
        for s in r["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Principal") == {"Service": "logging.s3.amazonaws.com"}
    ]
    assert len(statements) >= 1 + (stage.cfg.source.mode == "create")  # the migration bucket's, the DAG buckets'
    for s in statements:
        assert s["Effect"] == "Allow" and s["Action"] == "s3:PutObject"
        assert s["Condition"]["StringEquals"]["aws:SourceAccount"] == stage.cfg.account
