"""The migration guide's execution-role additions, scoped to one migration.

Source role (guide step 3): write the export under the migration's prefix. Target role
(guide step 4): read the export and the source's task logs. Each is an ``AWS::IAM::Policy``
attached to the role, so it works the same for roles this app creates and for an existing
source's role adopted by ARN. What each statement is for: docs/foundation.md.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from constructs_lib.nag import acknowledge_wildcards

# Why each wildcard of the migration policies is needed (cdk-nag AwsSolutions-IAM5). The
# migration id is fixed at synth: every object statement names {prefix}{migration_id}/.
MIGRATION_REASONS = {
    "WriteExport": "the export's object names ({migration_id}/manifest.json, tables/{table}.csv.gz, ...) are "
    "per table; the statement is limited to this migration's folder {prefix}{migration_id}/ and "
    "to s3:PutObject and s3:AbortMultipartUpload.",
    "ReadOwnExport": "the objects db_export itself wrote under {prefix}{migration_id}/ (it checks its manifest "
    "before starting again); table file names are per table.",
    "ReadExport": "guide step 4: read this migration's export under {prefix}{migration_id}/ (file names per "
    "table) and the import-state files that db_import wrote before.",
    "WriteImportReport": "only report.json of this migration's export, or of a deliberate re-run's fresh export "
    "({migration_id}/reruns/{rerun}/report.json; the rerun key derives from the stage's "
    "rerun_token, docs/contracts.md section 3).",
    "WriteImportState": "only import-state/*.json under this migration's export prefix (docs/contracts.md): "
    "one file per source/target database pair, named by a hash known only at run time.",
    "ReadSourceTaskLogs": "guide step 4 (airflow-{source}*), narrowed to the source's Task log group; its "
    "streams are named per DAG, run and task.",
}


def _kms_via_s3(
    stack: cdk.Stack, bucket: s3.IBucket, key: kms.IKey, sid: str, actions: list[str]
) -> iam.PolicyStatement:
    # With an S3 Bucket Key the encryption context is the bucket ARN: the key can be used
    # only through S3 and only for this bucket.
    return iam.PolicyStatement(
        sid=sid,
        actions=actions,
        resources=[key.key_arn],
        conditions={
            "StringEquals": {
                "kms:ViaService": f"s3.{stack.region}.amazonaws.com",
                "kms:EncryptionContext:aws:s3:arn": bucket.bucket_arn,
            }
        },
    )


# encryption-context key of the data key that seals the export's secret columns
# (dags/mwaa_migration/convert.py SECRETS_CONTEXT_KEY; the DAG library cannot import this package)
SECRETS_CONTEXT_KEY = "mwaa-migration-secrets"


def _secrets_data_key(key: kms.IKey, sid: str, action: str, migration_id: str) -> iam.PolicyStatement:
    """The data key sealing this migration's exported secrets (encryption context = its id)."""
    return iam.PolicyStatement(
        sid=sid,
        actions=[action],
        resources=[key.key_arn],
        conditions={"StringEquals": {f"kms:EncryptionContext:{SECRETS_CONTEXT_KEY}": migration_id}},
    )


def _check_scope(prefix: str, migration_id: str) -> str:
    if not prefix.endswith("/") or not migration_id or "/" in migration_id or "*" in migration_id:
        raise ValueError(
            f"prefix={prefix!r} must end in '/' and migration_id={migration_id!r} must be one "
            "path segment without wildcards"
        )
    return f"{prefix}{migration_id}/"


def source_export_statements(
    *, stack: cdk.Stack, bucket: s3.IBucket, key: kms.IKey, prefix: str, migration_id: str
) -> list[iam.PolicyStatement]:
    """db_export in the source: write its files under ``{prefix}{migration_id}/`` and read them back."""
    folder = _check_scope(prefix, migration_id)
    return [
        # AbortMultipartUpload: a failed table upload is cleaned up at once (the lifecycle rule
        # only catches what is left after a day). s3:PutObject covers multipart parts too.
        iam.PolicyStatement(
            sid="WriteExport",
            actions=["s3:PutObject", "s3:AbortMultipartUpload"],
            resources=[bucket.arn_for_objects(f"{folder}*")],
        ),
        # Re-runs: the export looks for its manifest before starting again (idempotency).
        iam.PolicyStatement(
            sid="ReadOwnExport", actions=["s3:GetObject"], resources=[bucket.arn_for_objects(f"{folder}*")]
        ),
        # ListBucket only so that a missing object answers 404 rather than 403.
        iam.PolicyStatement(
            sid="ListExportPrefix",
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{folder}*"]}},
        ),
        # GenerateDataKey/Encrypt to write; Decrypt because multipart uploads (boto3 switches
        # to them above 8 MB) and the manifest check read the data key back.
        _kms_via_s3(stack, bucket, key, "EncryptWithBucketKey", ["kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"]),
        # The export seals the secret columns with a data key of this key (docs/contracts.md §3):
        # it may generate one, never decrypt one (its Decrypt above works only through S3).
        _secrets_data_key(key, "GenerateSecretsDataKey", "kms:GenerateDataKey", migration_id),
    ]


def target_import_statements(
    *,
    stack: cdk.Stack,
    bucket: s3.IBucket,
    key: kms.IKey,
    prefix: str,
    migration_id: str,
    source_environment: str | None,
) -> list[iam.PolicyStatement]:
    """db_import in the target: read the export, write its report and import state, read the
    source's task logs.

    ``source_environment`` None = a self-managed source (no CloudWatch logs to copy).
    """
    folder = _check_scope(prefix, migration_id)
    state = f"{prefix}import-state/"
    st = [
        iam.PolicyStatement(
            sid="ReadExport",
            actions=["s3:GetObject"],
            resources=[bucket.arn_for_objects(f"{folder}*"), bucket.arn_for_objects(f"{state}*")],
        ),
        iam.PolicyStatement(
            sid="ListExportPrefix",
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{folder}*", f"{state}*"]}},
        ),
        # docs/contracts.md: db_import writes {prefix}{migration_id}/report.json and
        # {prefix}import-state/{hash}.json (ids reserved in the target, reused by re-runs); nothing else.
        # a deliberate re-run (rerun_token) reads and reports its own fresh export under reruns/{rerun}/
        iam.PolicyStatement(
            sid="WriteImportReport",
            actions=["s3:PutObject"],
            resources=[
                bucket.arn_for_objects(f"{folder}report.json"),
                bucket.arn_for_objects(f"{folder}reruns/*/report.json"),
            ],
        ),
        iam.PolicyStatement(
            sid="WriteImportState", actions=["s3:PutObject"], resources=[bucket.arn_for_objects(f"{state}*.json")]
        ),
        _kms_via_s3(stack, bucket, key, "DecryptWithBucketKey", ["kms:Decrypt", "kms:GenerateDataKey"]),
        # only the import opens the export's sealed secrets
        _secrets_data_key(key, "DecryptSecretsDataKey", "kms:Decrypt", migration_id),
    ]
    if source_environment is not None:
        group = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"airflow-{source_environment}-Task",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        st.append(
            iam.PolicyStatement(
                sid="ReadSourceTaskLogs",
                actions=["logs:GetLogEvents", "logs:DescribeLogStreams"],
                resources=[group, f"{group}:log-stream:*"],
            )
        )
    return st


class MigrationPolicy(Construct):
    """An ``AWS::IAM::Policy`` holding the given statements, attached to one role."""

    def __init__(
        self, scope: Construct, construct_id: str, *, role: iam.IRole, statements: list[iam.PolicyStatement]
    ) -> None:
        super().__init__(scope, construct_id)
        self.policy = iam.Policy(self, "Policy", statements=statements, roles=[role])
        self.acknowledged = acknowledge_wildcards(self.policy.node.default_child, statements, MIGRATION_REASONS)
