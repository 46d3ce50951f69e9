"""DagPublisher: copy the repo's ``dags/`` folder into an MWAA DAG bucket during deployment.

Into a **dedicated subfolder** of the environment's DAG folder, ``{DagS3Path}/mwaa-upgrade/``
(``SUBFOLDER``), never into the DAG folder itself: the customer's own DAGs and their
``.airflowignore`` are never overwritten. Airflow finds DAG files in subfolders; ours put their
own folder on ``sys.path`` for the ``mwaa_migration`` library, and our ``.airflowignore`` applies
to our subfolder only.

A ``BucketDeployment`` (CDK's own Lambda with the AWS CLI layer; no Docker: the folder is a
zip asset), fixed on purpose:

- ``prune=True`` and ``retain_on_delete=False``: the subfolder holds only what we publish, so a
  file removed from ``dags/`` disappears from it, and deleting the stack (or the publisher)
  removes exactly our subfolder, nothing else.

BucketDeployment runs ONE singleton Lambda per stack (same memory/network settings), and
that Lambda takes the role of the first deployment: so every DagPublisher of a stack
shares one role and log group (``DagPublisherShared``), ours, without the
AWSLambdaBasicExecutionRole managed policy. BucketDeployment grants that role read on the CDK
asset bucket, read/write/delete on the DAG bucket, encrypt/decrypt on the bucket's KMS key when
one is given, and logs on its log group. One explicit deny on the shared role
(``WriteOnlyUnderOurSubfolders``) limits writes and deletes to the published subfolders
(``{bucket}/{prefix}mwaa-upgrade/*`` of every DagPublisher of the stack): a DAG bucket that holds
other files (an adopted source's) is safe everywhere else.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Acknowledgment, RemovalPolicy, Stack, Token, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from constructs_lib.log_retention import retention as log_retention
from mwaa_common import retention

DAGS_ROOT = Path(__file__).resolve().parents[1] / "dags"
# Our own folder inside the environment's DAG folder (see the module docstring).
SUBFOLDER = "mwaa-upgrade/"
DAGS_EXCLUDE = ["**/__pycache__", "**/__pycache__/**", "**/*.pyc", "**/.pytest_cache/**", "**/tests/**", "**/.DS_Store"]


class DagPublisher(Construct):
    """Keyword-only props: ``bucket`` (the environment's DAG bucket), ``prefix`` (its
    DagS3Path folder, default ``dags/``, must end in ``/``; we publish into ``{prefix}mwaa-upgrade/``),
    ``kms_key`` (the bucket's key, if SSE-KMS), ``source_dir`` (default: the repo's ``dags/``),
    ``log_retention_days``. Attribute ``destination_prefix``: where the files go."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        prefix: str = "dags/",
        kms_key: kms.IKey | None = None,
        source_dir: Path | None = None,
        log_retention_days: int = retention.DAG_PUBLISHER_LOG_DAYS,
    ) -> None:
        super().__init__(scope, construct_id)
        if not prefix.endswith("/") or prefix.startswith("/"):
            raise ValueError(f"prefix={prefix!r} must be a folder like 'dags/' (ends in '/', no leading '/')")
        source = Path(source_dir or DAGS_ROOT)
        if not source.is_dir():
            raise ValueError(f"source_dir={str(source)!r} is not a directory")
        self.destination_prefix = f"{prefix}{SUBFOLDER}"
        self.role, log_group = _shared_role_and_logs(Stack.of(self), log_retention(log_retention_days))
        _write_scope(self.role).add_not_resources(bucket.arn_for_objects(f"{self.destination_prefix}*"))
        encryption = {}
        if kms_key is not None:
            encryption = {
                "server_side_encryption": s3deploy.ServerSideEncryption.AWS_KMS,
                "server_side_encryption_aws_kms_key_id": kms_key.key_arn,
            }
            kms_key.grant_encrypt_decrypt(self.role)
        self.deployment = s3deploy.BucketDeployment(
            self,
            "Deployment",
            destination_bucket=bucket,
            destination_key_prefix=self.destination_prefix,
            sources=[s3deploy.Source.asset(str(source), exclude=DAGS_EXCLUDE)],
            prune=True,
            retain_on_delete=False,
            role=self.role,
            log_group=log_group,
            memory_limit=256,
            **encryption,
        )
        self._acknowledge(bucket, kms_key)

    def _acknowledge(self, bucket: s3.IBucket, kms_key: kms.IKey | None) -> None:
        """BucketDeployment's grants, acknowledged on our role's policy, one by one."""
        stack = Stack.of(self)
        acks = [
            ("Action::s3:GetObject*", "BucketDeployment's read grant on the asset and DAG buckets"),
            ("Action::s3:GetBucket*", "BucketDeployment's read grant on the asset and DAG buckets"),
            ("Action::s3:List*", "aws s3 sync lists the source zip and the destination prefix"),
            (
                "Action::s3:DeleteObject*",
                "BucketDeployment prunes and, on delete, removes our dedicated "
                "mwaa-upgrade/ subfolder; the role's explicit deny blocks writes and "
                "deletes on every other key",
            ),
            ("Action::s3:Abort*", "multipart uploads of aws s3 sync"),
        ]
        acks.append(
            (
                f"Resource::{_nag_arn(stack.resolve(bucket.bucket_arn))}/*",
                "objects of the DAG bucket; the explicit deny limits writes and deletes to our mwaa-upgrade/ subfolder",
            )
        )
        qualifier = _bootstrap_qualifier(stack)
        partition = "<AWS::Partition>" if Token.is_unresolved(stack.partition) else stack.partition
        acks.append(
            (
                f"Resource::arn:{partition}:s3:::cdk-{qualifier}-assets-{stack.account}-{stack.region}/*",
                "the CDK bootstrap asset bucket that holds the zipped dags/ folder",
            )
        )
        if kms_key is not None:
            acks += [
                ("Action::kms:ReEncrypt*", "grant_encrypt_decrypt on the DAG bucket's key"),
                ("Action::kms:GenerateDataKey*", "grant_encrypt_decrypt on the DAG bucket's key"),
            ]
        Validations.of(self.role.node.find_child("DefaultPolicy")).acknowledge(
            *[Acknowledgment(id=f"AwsSolutions-IAM5[{rule}]", reason=reason) for rule, reason in acks]
        )
        for child in stack.node.children:
            if child.node.id.startswith("Custom::CDKBucketDeployment"):
                Validations.of(child).acknowledge(
                    Acknowledgment(
                        id="AwsSolutions-L1",
                        reason="CDK's BucketDeployment handler: its runtime is chosen by aws-cdk-lib "
                        "(pinned); it is not our code",
                    )
                )


def _nag_arn(arn) -> str:
    """An ARN the way cdk-nag prints it: literals, <AWS::Partition>, <Logical.Arn>."""
    if isinstance(arn, str):
        return arn
    if "Fn::GetAtt" in arn:
        return "<" + ".".join(arn["Fn::GetAtt"]) + ">"
    parts = arn.get("Fn::Join", ["", []])[1]
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif part == {"Ref": "AWS::Partition"}:
            out.append("<AWS::Partition>")
        else:
            out.append("<" + ".".join(str(x) for x in part.get("Fn::GetAtt", [part.get("Ref", "?")])) + ">")
    return "".join(out)


def _shared_role_and_logs(stack: Stack, keep: logs.RetentionDays):
    shared = stack.node.try_find_child("DagPublisherShared")
    if shared is None:
        shared = Construct(stack, "DagPublisherShared")
        role = iam.Role(
            shared,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Publishes the migration DAGs into the MWAA DAG buckets",
        )
        group = logs.LogGroup(shared, "Logs", retention=keep, removal_policy=RemovalPolicy.DESTROY)
        group.grant_write(role)  # our role: no AWSLambdaBasicExecutionRole
    return shared.node.find_child("Role"), shared.node.find_child("Logs")


# Write actions BucketDeployment's grant_read_write gives (s3:PutObject*, s3:DeleteObject*,
# s3:Abort*); denied everywhere but under our published subfolders.
_WRITE_ACTIONS = ["s3:PutObject*", "s3:DeleteObject*", "s3:Abort*"]
_DENY_SID = "WriteOnlyUnderOurSubfolders"


def _write_scope(role: iam.Role) -> iam.PolicyStatement:
    """The shared role's one deny statement; each DagPublisher adds its prefix to NotResource."""
    shared = role.node.scope
    statement = getattr(shared, "_write_scope", None)
    if statement is None:
        statement = iam.PolicyStatement(
            sid=_DENY_SID, effect=iam.Effect.DENY, actions=list(_WRITE_ACTIONS), not_resources=[]
        )
        role.add_to_policy(statement)
        shared._write_scope = statement
    return statement


def _bootstrap_qualifier(stack: Stack) -> str:
    return getattr(stack.synthesizer, "bootstrap_qualifier", None) or "hnb659fds"
