"""Migration storage (stateful): the KMS-encrypted migration bucket and its access-log bucket.

Its own stack so that environments can come and go without touching exported data:
RETAIN on every resource, termination protection outside dev (storage.termination_protection).
Logical IDs here must never change (tests/infra/test_logical_ids.py).
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct, IConstruct

from stacks.config import MigrationConfig, StorageConfig


class MigrationStorageStack(cdk.Stack):
    """Attributes: ``bucket``, ``bucket_name`` (a literal), ``key``, ``access_logs_bucket`` (also receives the
    DAG buckets'
    access logs), ``export_prefix`` (the guide's ``data/migration/{src}_to_{tgt}/export/``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StorageConfig,
        migration: MigrationConfig,
        export_prefix: str,
        bucket_name: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, termination_protection=config.termination_protection, **kwargs)
        self.export_prefix = export_prefix
        # Literal name: other stacks import the bucket by name, so their policies show the plain
        # ARN (arn:aws:s3:::name/...) instead of a cross-stack token.
        self.bucket_name = bucket_name

        self.key = kms.Key(
            self,
            "MigrationKey",
            description="Migration bucket: Airflow metadata exports (customer managed, rotated)",
            enable_key_rotation=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        # Server access logs: S3 delivers them only to SSE-S3 buckets.
        self.access_logs_bucket = s3.Bucket(
            self,
            "AccessLogsBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=cdk.Duration.days(config.access_log_retention_days),
                    noncurrent_version_expiration=cdk.Duration.days(1),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
                )
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        # The DAG buckets of the environment stacks add their log-delivery grants to this bucket's
        # policy later, and CDK writes cross-stack ones without conditions: the aspect adds
        # aws:SourceAccount to every S3 log-delivery statement (confused-deputy protection).
        cdk.Aspects.of(self.access_logs_bucket).add(LogDeliveryFromThisAccount(self.account))
        cdk.Validations.of(self.access_logs_bucket.node.default_child).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-S1",
                reason="This is the access-log bucket itself; logging it to itself would loop, and S3 "
                "delivers server access logs only to SSE-S3 buckets without logging.",
            )
        )

        self.bucket = s3.Bucket(
            self,
            "MigrationBucket",
            bucket_name=bucket_name,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix="migration-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-old-exports",
                    prefix="data/migration/",
                    expiration=cdk.Duration.days(migration.export_retention_days),
                ),
                s3.LifecycleRule(
                    id="expire-noncurrent-versions",
                    noncurrent_version_expiration=cdk.Duration.days(config.noncurrent_version_days),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(7),
                ),
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        cdk.CfnOutput(self, "MigrationBucketName", value=self.bucket.bucket_name)
        cdk.CfnOutput(self, "MigrationKeyArn", value=self.key.key_arn)
        cdk.CfnOutput(self, "ExportPrefix", value=export_prefix)


LOG_DELIVERY_PRINCIPAL = {"Service": "logging.s3.amazonaws.com"}


@jsii.implements(cdk.IAspect)
class LogDeliveryFromThisAccount:
    """Every S3 server-access-log delivery statement of a bucket policy gets
    ``aws:SourceAccount`` = this account (statements that already carry it keep theirs).

    CDK conditions the grant of a source bucket in the same stack on aws:SourceArn and
    aws:SourceAccount, but writes the grant of a bucket in another stack (our DAG buckets)
    without any condition. Their ARN cannot be named here without a cross-stack cycle; the
    account can, and it is what stops another account's bucket from logging into ours.
    """

    def __init__(self, account: str) -> None:
        self.account = account

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, s3.CfnBucketPolicy):
            return
        document = cdk.Stack.of(node).resolve(node.policy_document)
        changed = False
        for statement in document.get("Statement", []):
            if statement.get("Principal") != LOG_DELIVERY_PRINCIPAL or statement.get("Effect") != "Allow":
                continue
            equals = statement.setdefault("Condition", {}).setdefault("StringEquals", {})
            if "aws:SourceAccount" not in equals:
                equals["aws:SourceAccount"] = self.account
                changed = True
        if changed:
            node.add_property_override("PolicyDocument", document)
