"""Issue 12 item 7 (grants): the export may generate the data key that seals the export's
secret columns, only the import may decrypt it; the stack passes the bucket's key to the export."""

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

from constructs_lib.migration_policies import source_export_statements, target_import_statements
from stacks.config import MigrationConfig
from stacks.migration_stack import export_conf, import_conf


def _statements(fn, **kw):
    stack = cdk.Stack(cdk.App(), "S", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    key = kms.Key(stack, "K")
    bucket = s3.Bucket(stack, "B", encryption_key=key)
    return {
        st.sid: stack.resolve(st.to_statement_json())
        for st in fn(stack=stack, bucket=bucket, key=key, prefix="data/migration/x/", migration_id="m-1", **kw)
    }


def _secret_grants(statements):
    ctx = "kms:EncryptionContext:mwaa-migration-secrets"
    return {sid: st["Action"] for sid, st in statements.items()
            if ctx in str(st.get("Condition", {}))}  # fmt: skip


def test_export_generates_and_import_decrypts_the_secrets_data_key():
    exp = _statements(source_export_statements)
    imp = _statements(target_import_statements, source_environment="src")
    assert _secret_grants(exp) == {"GenerateSecretsDataKey": "kms:GenerateDataKey"}
    assert _secret_grants(imp) == {"DecryptSecretsDataKey": "kms:Decrypt"}
    cond = imp["DecryptSecretsDataKey"]["Condition"]
    assert cond == {"StringEquals": {"kms:EncryptionContext:mwaa-migration-secrets": "m-1"}}
    # the export's own Decrypt works only through S3 for this bucket: it cannot open the data key
    assert exp["EncryptWithBucketKey"]["Condition"]["StringEquals"]["kms:ViaService"].startswith("s3.")


def test_the_export_conf_names_the_key_and_the_import_conf_does_not():
    mig = MigrationConfig(id="m-1")
    assert export_conf(mig, bucket="b", prefix="p/", secrets_kms_key="arn:aws:kms:k")["secrets_kms_key"] == (
        "arn:aws:kms:k"
    )
    assert "secrets_kms_key" not in import_conf(mig, bucket="b", prefix="p/", source_environment="a",
                                                 target_environment="b")  # fmt: skip
