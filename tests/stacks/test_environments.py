"""Source and target environments: PRIVATE_ONLY, logging, log groups, DAG bucket, security
group, and every IAM statement (actions and resources) of both roles and both migration
policies, rebuilt here from the stage file rather than from the code under test."""

from __future__ import annotations

import json

import pytest

from tests.templatehelpers import as_list, one, resources, statements_by_sid

LOG_SUFFIXES = ("DAGProcessing", "Scheduler", "Task", "WebServer", "Worker")
DAG_BUCKET = "EnvironmentDagBucket91287598"


def _norm(st: dict) -> dict:
    out = {"Effect": st["Effect"], "Action": sorted(as_list(st["Action"]))}
    for k in ("Resource", "NotResource"):
        if k in st:
            out[k] = as_list(st[k])
    if "Condition" in st:
        out["Condition"] = st["Condition"]
    return out


def expected_execution_role(cfg, env, *, has_key: bool) -> dict[str, dict]:
    r, a, name = cfg.region, cfg.account, env.name
    bucket = [{"Fn::GetAtt": [DAG_BUCKET, "Arn"]}, {"Fn::Join": ["", [{"Fn::GetAtt": [DAG_BUCKET, "Arn"]}, "/*"]]}]
    st = {
        "PublishMetrics": {
            "Effect": "Allow",
            "Action": ["airflow:PublishMetrics"],
            "Resource": [f"arn:aws:airflow:{r}:{a}:environment/{name}"],
        },
        "NoBucketListing": {"Effect": "Deny", "Action": ["s3:ListAllMyBuckets"], "Resource": bucket},
        "ReadDagBucket": {
            "Effect": "Allow",
            "Action": ["s3:GetBucket*", "s3:GetObject*", "s3:List*"],
            "Resource": bucket,
        },
        "WriteOwnLogs": {
            "Effect": "Allow",
            "Action": sorted(
                [
                    "logs:CreateLogStream",
                    "logs:CreateLogGroup",
                    "logs:PutLogEvents",
                    "logs:GetLogEvents",
                    "logs:GetLogRecord",
                    "logs:GetLogGroupFields",
                    "logs:GetQueryResults",
                ]
            ),
            "Resource": [f"arn:aws:logs:{r}:{a}:log-group:airflow-{name}-*"],
        },
        "DescribeLogGroups": {"Effect": "Allow", "Action": ["logs:DescribeLogGroups"], "Resource": ["*"]},
        "CheckAccountPublicAccessBlock": {
            "Effect": "Allow",
            "Action": ["s3:GetAccountPublicAccessBlock"],
            "Resource": ["*"],
        },
        "PutMetrics": {"Effect": "Allow", "Action": ["cloudwatch:PutMetricData"], "Resource": ["*"]},
        "CeleryQueues": {
            "Effect": "Allow",
            "Action": sorted(
                [
                    "sqs:ChangeMessageVisibility",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                    "sqs:GetQueueUrl",
                    "sqs:ReceiveMessage",
                    "sqs:SendMessage",
                ]
            ),
            "Resource": [f"arn:aws:sqs:{r}:*:airflow-celery-*"],
        },
    }
    kms_actions = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*"]
    if has_key:
        st["CustomerKeyViaSqsAndS3"] = {
            "Effect": "Allow",
            "Action": kms_actions,
            "Resource": [{"Fn::GetAtt": ["EnvironmentKeyB497DD2D", "Arn"]}],
            "Condition": {"StringLike": {"kms:ViaService": [f"sqs.{r}.amazonaws.com", f"s3.{r}.amazonaws.com"]}},
        }
    else:
        st["QueueEncryption"] = {
            "Effect": "Allow",
            "Action": kms_actions,
            "NotResource": [f"arn:aws:kms:*:{a}:key/*"],
            "Condition": {"StringLike": {"kms:ViaService": [f"sqs.{r}.amazonaws.com"]}},
        }
    if env.secrets_manager_backend:
        st["ReadAirflowSecrets"] = {
            "Effect": "Allow",
            "Action": sorted(
                [
                    "secretsmanager:GetResourcePolicy",
                    "secretsmanager:GetSecretValue",
                    "secretsmanager:DescribeSecret",
                    "secretsmanager:ListSecretVersionIds",
                ]
            ),
            "Resource": [
                f"arn:aws:secretsmanager:{r}:{a}:secret:airflow/connections/*",
                f"arn:aws:secretsmanager:{r}:{a}:secret:airflow/variables/*",
            ],
        }
        st["ListSecrets"] = {"Effect": "Allow", "Action": ["secretsmanager:ListSecrets"], "Resource": ["*"]}
    return st


def _key_resource(storage_stack: str) -> dict:
    return {"Fn::GetStackOutput": {"StackName": storage_stack, "Region": None, "OutputName": None}}


def _kms_statement(cfg, sid, actions):
    bucket_arn = f"arn:aws:s3:::{cfg.migration_bucket_name}"
    return {
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": ["<migration key>"],
        "Condition": {
            "StringEquals": {
                "kms:ViaService": f"s3.{cfg.region}.amazonaws.com",
                "kms:EncryptionContext:aws:s3:arn": bucket_arn,
            }
        },
    }


def expected_export(cfg) -> dict[str, dict]:
    # issue 12 item 9: s3:PutObject (not PutObject*) on exactly {prefix}{migration id}/*: before,
    # {prefix}* let any source DAG overwrite another migration's export
    b = f"arn:aws:s3:::{cfg.migration_bucket_name}"
    folder = f"{cfg.export_prefix}{cfg.migration.id}/"
    return {
        "WriteExport": {
            "Effect": "Allow",
            "Action": ["s3:AbortMultipartUpload", "s3:PutObject"],
            "Resource": [f"{b}/{folder}*"],
        },
        "ReadOwnExport": {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"{b}/{folder}*"]},
        "ListExportPrefix": {
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [b],
            "Condition": {"StringLike": {"s3:prefix": [f"{folder}*"]}},
        },
        "EncryptWithBucketKey": _kms_statement(
            cfg, "EncryptWithBucketKey", ["kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"]
        ),
        "GenerateSecretsDataKey": _secrets_statement(cfg, "kms:GenerateDataKey"),
    }


def _secrets_statement(cfg, action):
    # issue 12 item 7: the data key sealing this migration's exported secrets (context = its id)
    return {
        "Effect": "Allow",
        "Action": [action],
        "Resource": ["<migration key>"],
        "Condition": {"StringEquals": {"kms:EncryptionContext:mwaa-migration-secrets": cfg.migration.id}},
    }


def expected_import(cfg) -> dict[str, dict]:
    b = f"arn:aws:s3:::{cfg.migration_bucket_name}"
    prefix = cfg.export_prefix
    folder = f"{prefix}{cfg.migration.id}/"
    group = f"arn:aws:logs:{cfg.region}:{cfg.account}:log-group:airflow-{cfg.source.environment.name}-Task"
    return {
        "ReadExport": {
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": sorted([f"{b}/{folder}*", f"{b}/{prefix}import-state/*"]),
        },
        "ListExportPrefix": {
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [b],
            "Condition": {"StringLike": {"s3:prefix": [f"{folder}*", f"{prefix}import-state/*"]}},
        },
        "WriteImportReport": {
            "Effect": "Allow",
            "Action": ["s3:PutObject"],
            "Resource": sorted([f"{b}/{folder}report.json", f"{b}/{folder}reruns/*/report.json"]),
        },
        "WriteImportState": {
            "Effect": "Allow",
            "Action": ["s3:PutObject"],
            "Resource": [f"{b}/{prefix}import-state/*.json"],
        },
        "DecryptWithBucketKey": _kms_statement(cfg, "DecryptWithBucketKey", ["kms:Decrypt", "kms:GenerateDataKey"]),
        "DecryptSecretsDataKey": _secrets_statement(cfg, "kms:Decrypt"),
        "ReadSourceTaskLogs": {
            "Effect": "Allow",
            "Action": ["logs:DescribeLogStreams", "logs:GetLogEvents"],
            "Resource": [group, f"{group}:log-stream:*"],
        },
    }


# The DAG publisher the migration wiring adds to the environment stacks (test_wiring_*.py);
# the tests here look at the environments' own parts.
WIRING_PREFIXES = ("PublishDags", "DagPublisherShared", "CustomCDKBucketDeployment")


def _own(stage, which: str) -> dict:
    t = stage.json(which)
    return {**t, "Resources": {k: r for k, r in t["Resources"].items() if not k.startswith(WIRING_PREFIXES)}}


def _policy_statements(template: dict) -> dict[str, dict]:
    _, policy = one(template, "AWS::IAM::Policy")
    out = {}
    for sid, st in statements_by_sid(policy["Properties"]["PolicyDocument"]).items():
        n = _norm(st)
        if sid.endswith(("BucketKey", "DataKey")):
            # the key ARN crosses stacks: check that it is the storage stack's key output
            (ref,) = n["Resource"]
            assert "MigrationKey" in ref["Fn::GetStackOutput"]["OutputName"]
            n["Resource"] = ["<migration key>"]
        out[sid] = n
    return out


def _role_statements(template: dict) -> dict[str, dict]:
    _, role = one(template, "AWS::IAM::Role")
    (inline,) = role["Properties"]["Policies"]
    return {sid: _norm(st) for sid, st in statements_by_sid(inline["PolicyDocument"]).items()}


def test_source_execution_role_statements(stage):
    cfg = stage.cfg
    if cfg.source.mode != "create":
        assert resources(_own(stage, "source"), "AWS::IAM::Role") == {}
        return
    env = cfg.source.environment
    assert _role_statements(_own(stage, "source")) == expected_execution_role(cfg, env, has_key=env.customer_kms_key)


def test_target_execution_role_statements(stage):
    cfg = stage.cfg
    env = cfg.target.environment
    assert _role_statements(_own(stage, "target")) == expected_execution_role(cfg, env, has_key=env.customer_kms_key)


def test_source_export_policy_statements(stage):
    t = _own(stage, "source")
    if not stage.cfg.migration.metadata:  # no metadata migration: no access to the migration bucket
        assert resources(t, "AWS::IAM::Policy") == {} and stage.stacks.source.export_policy is None
        return
    assert _policy_statements(t) == expected_export(stage.cfg)
    _, policy = one(t, "AWS::IAM::Policy")
    roles = policy["Properties"]["Roles"]
    if stage.cfg.source.mode == "existing":
        # attached to the adopted role by name (the ARN's last path segment)
        assert roles == [stage.cfg.source.role_arn.rsplit("/", 1)[1]]
    else:
        ((role_id, _),) = resources(t, "AWS::IAM::Role").items()
        assert roles == [{"Ref": role_id}]


def test_target_import_policy_statements(stage):
    t = _own(stage, "target")
    if not stage.cfg.migration.metadata:
        assert resources(t, "AWS::IAM::Policy") == {} and stage.stacks.target.import_policy is None
        assert "mwaa-migration" not in json.dumps(t["Resources"])  # the execution role never sees the bucket
        return
    assert _policy_statements(t) == expected_import(stage.cfg)
    ((role_id, _),) = resources(t, "AWS::IAM::Role").items()
    _, policy = one(t, "AWS::IAM::Policy")
    assert policy["Properties"]["Roles"] == [{"Ref": role_id}]


def test_no_star_actions_anywhere(stage):
    for which in ("network", "storage", "source", "target"):
        t = stage.json(which)
        docs = [r["Properties"]["PolicyDocument"] for r in resources(t, "AWS::IAM::Policy").values()]
        for role in resources(t, "AWS::IAM::Role").values():
            docs += [p["PolicyDocument"] for p in role["Properties"].get("Policies", [])]
        for doc in docs:
            for st in doc["Statement"]:
                for action in as_list(st.get("Action", [])):
                    assert action != "*" and not action.endswith(":*"), (which, st)


def test_trust_is_scoped_to_the_environment(stage):
    cfg = stage.cfg
    for which, env in (("source", cfg.source), ("target", cfg.target)):
        if which == "source" and env.mode != "create":
            continue
        _, role = one(_own(stage, which), "AWS::IAM::Role")
        (st,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        name = env.environment.name
        assert st["Action"] == "sts:AssumeRole"
        assert sorted(st["Principal"]["Service"]) == ["airflow-env.amazonaws.com", "airflow.amazonaws.com"]
        assert st["Condition"] == {
            "StringEquals": {"aws:SourceAccount": cfg.account},
            "ArnLike": {"aws:SourceArn": f"arn:aws:airflow:{cfg.region}:{cfg.account}:environment/{name}"},
        }


def _environment_resource(stage, which):
    found = resources(_own(stage, which), "AWS::MWAA::Environment")
    return next(iter(found.values())) if found else None


def _environment(stage, which):
    found = _environment_resource(stage, which)
    return found["Properties"] if found else None


def test_declared_environments_private_and_fully_logged(stage):
    cfg = stage.cfg
    for which, sc in (("source", cfg.source), ("target", cfg.target)):
        env = _environment(stage, which)
        declared = (sc.mode == "create") if which == "source" else (sc.creation == "declared")
        assert (env is not None) == declared, which
        if env is None:
            continue
        s = sc.environment
        # issue 12 item 1: a deleted stack or a replacing change never deletes a live environment
        resource = _environment_resource(stage, which)
        assert resource["DeletionPolicy"] == "Retain" and resource["UpdateReplacePolicy"] == "Retain"
        assert resource["Metadata"]["mwaa-upgrade:allow-replacement"] is False
        assert env["Name"] == s.name and env["AirflowVersion"] == s.airflow_version
        assert env["WebserverAccessMode"] == "PRIVATE_ONLY"
        logging = env["LoggingConfiguration"]
        assert set(logging) == {"DagProcessingLogs", "SchedulerLogs", "TaskLogs", "WebserverLogs", "WorkerLogs"}
        members = {
            "dag_processing": "DagProcessingLogs",
            "scheduler": "SchedulerLogs",
            "task": "TaskLogs",
            "webserver": "WebserverLogs",
            "worker": "WorkerLogs",
        }
        for key, member in members.items():
            assert logging[member] == {"Enabled": True, "LogLevel": s.logging.levels[key]}
        for k, attr in (
            ("EnvironmentClass", "environment_class"),
            ("Schedulers", "schedulers"),
            ("MinWorkers", "min_workers"),
            ("MaxWorkers", "max_workers"),
            ("MinWebservers", "min_webservers"),
            ("MaxWebservers", "max_webservers"),
        ):
            assert env[k] == getattr(s, attr), k
        assert len(env["NetworkConfiguration"]["SubnetIds"]) == 2


def test_log_groups_named_as_mwaa_names_them_with_retention(stage):
    cfg = stage.cfg
    for which, sc in (("source", cfg.source), ("target", cfg.target)):
        groups = resources(_own(stage, which), "AWS::Logs::LogGroup")
        if which == "source" and sc.mode != "create":
            assert groups == {}
            continue
        s = sc.environment
        names = sorted(g["Properties"]["LogGroupName"] for g in groups.values())
        assert names == sorted(f"airflow-{s.name}-{x}" for x in LOG_SUFFIXES)
        policy = "Retain" if s.logging.removal_policy == "retain" else "Delete"
        for g in groups.values():
            assert g["Properties"]["RetentionInDays"] == s.logging.retention_days
            assert g["DeletionPolicy"] == policy
        env = resources(_own(stage, which), "AWS::MWAA::Environment")
        for e in env.values():  # the environment waits for its log groups (and the import policy)
            assert sorted(d for d in e["DependsOn"] if not d.startswith("ImportPolicy")) == sorted(groups)


def test_dag_bucket_versioned_encrypted_private_tls(stage):
    for which in ("source", "target"):
        t = _own(stage, which)
        b = resources(t, "AWS::S3::Bucket").get(DAG_BUCKET)
        if b is None:
            assert stage.cfg.source.mode == "existing" and which == "source"
            continue
        p = b["Properties"]
        assert p["VersioningConfiguration"] == {"Status": "Enabled"}
        assert all(
            p["PublicAccessBlockConfiguration"][k]
            for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
        )
        assert p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        assert p["LoggingConfiguration"]["LogFilePrefix"].startswith("dag-buckets/")
        assert b["DeletionPolicy"] == "Retain"
        statements = [
            s
            for bp in resources(t, "AWS::S3::BucketPolicy").values()
            for s in bp["Properties"]["PolicyDocument"]["Statement"]
        ]
        assert any(
            s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )


def test_environment_security_group_references_itself(stage):
    for which in ("source", "target"):
        t = stage.json(which)
        sgs = resources(t, "AWS::EC2::SecurityGroup")
        if not sgs:
            continue
        (sg_id,) = sgs
        self_rules = [
            r["Properties"]
            for r in resources(t, "AWS::EC2::SecurityGroupIngress").values()
            if r["Properties"].get("SourceSecurityGroupId") == {"Fn::GetAtt": [sg_id, "GroupId"]}
        ]
        assert self_rules and self_rules[0]["IpProtocol"] == "-1"


def test_clone_target_exposes_what_the_custom_resource_needs(dev):
    target = dev.stacks.target
    assert target.creation == "clone"
    assert resources(dev.json("target"), "AWS::MWAA::Environment") == {}
    p = target.resolve(target.planned_overrides)
    assert p["Name"] == "mwaa-dev-target" and p["AirflowVersion"] == "2.11.0"
    assert p["ExecutionRoleArn"] == {"Fn::GetAtt": [next(iter(resources(dev.json("target"), "AWS::IAM::Role"))), "Arn"]}
    assert p["SourceBucketArn"] == {"Fn::GetAtt": [DAG_BUCKET, "Arn"]}
    assert p["WebserverAccessMode"] == "PRIVATE_ONLY"
    assert len(p["NetworkConfiguration"]["SubnetIds"]) == 2
    assert p["LoggingConfiguration"]["TaskLogs"] == {"Enabled": True, "LogLevel": "INFO"}
    # not set in dev.yaml: copied from the source by the clone, so not overridden
    for k in ("EnvironmentClass", "MinWorkers", "MaxWorkers", "Schedulers", "KmsKey"):
        assert k not in p
    for attr in (
        "environment_name",
        "execution_role",
        "dag_bucket",
        "security_group",
        "subnet_ids",
        "source_environment_name",
        "migration",
        "migration_bucket_name",
        "export_prefix",
    ):
        assert getattr(target, attr) is not None, attr
    assert target.source_environment_name == "mwaa-dev-source"
    assert target.migration.id == "2-10-3-to-2-11-0"


def test_planned_overrides_match_the_declared_environment(prod):
    """Declared and cloned targets come from the same parameter dict."""
    target = prod.stacks.target
    p = target.resolve(target.planned_overrides)
    env = _environment(prod, "target")
    assert p["Name"] == env["Name"] and p["KmsKey"] == env["KmsKey"]
    assert p["LoggingConfiguration"] == env["LoggingConfiguration"]
    assert p["AirflowConfigurationOptions"] == env["AirflowConfigurationOptions"]


def test_target_waits_for_source(stage):
    assert stage.stacks.source in stage.stacks.target.dependencies


@pytest.mark.parametrize("which", ["source", "target"])
def test_outputs(prod, which):
    outs = prod.json(which)["Outputs"]
    names = " ".join(outs)
    for part in ("EnvironmentArn", "WebserverUrl", "ExecutionRoleArn", "TaskLogGroupArn"):
        assert part in names
