"""IAM flags linked to the cdk-nag acknowledgements that cover them.

Fixture ``acknowledged`` (tests/tools/review/fixtures/acknowledged): one stack whose wildcards are
acknowledged in every way cdk-nag 3 honours (on the policy's own construct, on a parent, ids
with rendered tokens ``<Logical.Arn>/*`` and ``arn:<AWS::Partition>:...``, the old lowercase
``annotation::`` prefix, a cdk-nag 2 ``applies_to`` regex in template metadata) next to
wildcards that are not: one acknowledged only on a sibling construct, one acknowledged
without a checkable reason. Then a real CDK app checked by real cdk-nag, and the shipped
stages themselves.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cdk_stages import CONTEXT, STAGES, built  # sets CDK_VALIDATION before the jsii runtime starts
from tools.review.__main__ import main
from tools.review.analysis import nag_resource_name, review
from tools.review.assembly import load_cloud_assembly

FIXTURES = Path(__file__).parent / "fixtures"


def _review(path):
    stacks, report = load_cloud_assembly(path)
    return review(stacks, None, report)


def _iam(result):
    return {f["message"]: f for f in result["flags"] if f["category"] == "iam"}


# ---------------------------------------------------------------- fixture


def test_acknowledged_wildcards_carry_their_reason():
    flags = _iam(_review(FIXTURES / "acknowledged"))
    star = flags["wildcard resource: *"]
    assert star["acknowledged"] and star["severity"] == "high"  # severity kept, status acknowledged
    assert star["reason"] == "DescribeLogGroups: logs:DescribeLogGroups has no resource-level permission"
    assert star["acknowledged_by"] == "AwsSolutions-IAM5[Resource::*] on /Dev-Ack/WorkerRole/Resource"
    # acknowledged on the role: covers its DefaultPolicy (a child construct), tokens rendered as cdk-nag does
    assert (
        flags["wildcard action: s3:GetObject*"]["acknowledged_by"]
        == "AwsSolutions-IAM5[Action::s3:GetObject*] on /Dev-Ack/WorkerRole"
    )
    assert (
        flags["wildcard resource: ${DataBucketE1F2A3B4.Arn}/*"]["reason"]
        == "ReadData: every object of the data bucket is input"
    )
    logs = flags["wildcard resource: arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:app-*"]
    assert logs["acknowledged"] and logs["reason"].startswith("OwnLogs:")  # 'annotation::' prefix too
    # cdk-nag 2 style: id plus applies_to regex in the resource's cdk_nag metadata
    queue = flags["wildcard resource: arn:aws:sqs:eu-west-1:111111111111:jobs-*"]
    assert queue["acknowledged"] and queue["reason"] == "jobs-* are the queues this app creates, one per tenant"


def test_unacknowledged_wildcards_still_flag():
    result = _review(FIXTURES / "acknowledged")
    flags = _iam(result)
    kms = flags["wildcard action: kms:*"]  # acknowledged only on the sibling OtherRole
    assert (kms["acknowledged"], kms["severity"], kms["rule"]) == (False, "high", "AwsSolutions-IAM5[Action::kms:*]")
    out = flags["wildcard resource: ${DataBucketE1F2A3B4.Arn}/out/*"]  # acknowledged with reason 'ok'
    assert not out["acknowledged"]
    assert [f["message"] for f in result["flags"] if not f["acknowledged"]] == [
        "wildcard resource: ${DataBucketE1F2A3B4.Arn}/out/*",
        "wildcard action: kms:*",
        "acknowledgement of AwsSolutions-IAM5[Resource::<DataBucketE1F2A3B4.Arn>/out/*] has no checkable reason: 'ok'",
    ]
    covers = {(a["construct"], a["rule"]): a["covers"] for a in result["acknowledgements"]}
    assert covers[("/Dev-Ack/OtherRole", "AwsSolutions-IAM5[Action::kms:*]")] == 0
    assert covers[("/Dev-Ack/WorkerRole/Resource", "AwsSolutions-IAM5[Resource::*]")] == 1


def test_acknowledged_wildcards_in_the_iam_table():
    rows = _review(FIXTURES / "acknowledged")["iam"]["statements"]
    (keys,) = [r for r in rows if r["actions"] == ["kms:*"]]
    (read,) = [r for r in rows if r["actions"] == ["s3:GetObject*", "s3:ListBucket"]]
    assert keys["acknowledged_wildcards"] == []
    assert read["acknowledged_wildcards"] == ["s3:GetObject*", "${DataBucketE1F2A3B4.Arn}/*"]


def test_cli_shows_acknowledged_flags_and_fails_only_on_the_others(tmp_path, capsys):
    out = tmp_path / "review.md"
    assert main(["--cdk-out", str(FIXTURES / "acknowledged"), "--title", "ack", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (
        "FLAGS: 3 unacknowledged (IAM wildcards 2, cdk-nag 1), 5 acknowledged with a reason (IAM wildcards 5)"
        in printed
    )
    lines = [line.strip() for line in printed.splitlines() if line.startswith("  [")]
    assert (
        lines[0] == "[warning] iam: Dev-Ack WorkerRole (WorkerRole/DefaultPolicy): "
        "wildcard resource: ${DataBucketE1F2A3B4.Arn}/out/*"
    )  # unacknowledged first
    assert (
        "[acknowledged] iam: Dev-Ack WorkerRole (inline): wildcard resource: * \u2014 reason: "
        "DescribeLogGroups: logs:DescribeLogGroups has no resource-level permission" in lines
    )
    text = out.read_text()
    assert (
        "| acknowledged | iam | Dev-Ack | WorkerRole (inline) | wildcard resource: * | DescribeLogGroups: "
        "logs:DescribeLogGroups has no resource-level permission (AwsSolutions-IAM5[Resource::*] on "
        "/Dev-Ack/WorkerRole/Resource) |" in text
    )
    assert (
        "| high | iam | Dev-Ack | WorkerRole (WorkerRole/DefaultPolicy) | wildcard action: kms:* | "
        "not acknowledged: AwsSolutions-IAM5[Action::kms:*] |" in text
    )
    assert "| **kms:*** :warning: |" in text and "s3:GetObject* (acknowledged)" in text
    assert "| Dev-Ack | /Dev-Ack/OtherRole | AwsSolutions-IAM5[Action::kms:*] | 0 | OtherRole administers" in text
    assert main(["--cdk-out", str(FIXTURES / "acknowledged"), "--fail-on-flags"]) == 1

    # the same stack with only acknowledged wildcards left: flags remain, --fail-on-flags passes
    copy = tmp_path / "cdk.out"
    shutil.copytree(FIXTURES / "acknowledged", copy)
    template = json.loads((copy / "DevAck.template.json").read_text())
    policy = template["Resources"]["WorkerRoleDefaultPolicyE5F6A7B8"]["Properties"]["PolicyDocument"]
    policy["Statement"] = [s for s in policy["Statement"] if s["Sid"] not in ("WriteOut", "Keys")]
    (copy / "DevAck.template.json").write_text(json.dumps(template))
    metadata = json.loads((copy / "DevAck.metadata.json").read_text())
    del metadata["/Dev-Ack/WorkerRole"][0]["data"][
        "Annotation::AwsSolutions-IAM5[Resource::<DataBucketE1F2A3B4.Arn>/out/*]"
    ]
    (copy / "DevAck.metadata.json").write_text(json.dumps(metadata))
    capsys.readouterr()
    assert main(["--cdk-out", str(copy), "--fail-on-flags"]) == 0
    assert "FLAGS: 0 unacknowledged, 5 acknowledged with a reason" in capsys.readouterr().out


def test_not_resource_flag_links_to_a_review_acknowledgement():
    """Allow + NotResource has no cdk-nag rule: the review flags it and honours an
    acknowledgement ``Review-IAMNot[NotResource::...]`` recorded the same way."""
    stack = {
        "name": "S",
        "file": "S.template.json",
        "metadata": {},
        "template": {
            "Resources": {
                "Role1": {
                    "Type": "AWS::IAM::Role",
                    "Metadata": {"aws:cdk:path": "S/Role/Resource"},
                    "Properties": {
                        "Policies": [
                            {
                                "PolicyName": "p",
                                "PolicyDocument": {
                                    "Statement": [
                                        {
                                            "Effect": "Allow",
                                            "Action": "kms:Decrypt",
                                            "NotResource": "arn:aws:kms:*:111111111111:key/*",
                                        }
                                    ]
                                },
                            }
                        ]
                    },
                }
            }
        },
    }
    (flag,) = review([stack])["flags"]
    assert (flag["acknowledged"], flag["rule"]) == (
        False,
        "Review-IAMNot[NotResource::arn:aws:kms:*:111111111111:key/*]",
    )
    stack["metadata"] = {
        "/S/Role": [
            {
                "type": "aws:cdk:acknowledged-rules",
                "data": {
                    "Annotation::Review-IAMNot[NotResource::arn:aws:kms:*:111111111111:key/*]": (
                        "the AWS-owned key of MWAA's queues lives outside this account"
                    )
                },
            }
        ]
    }
    (flag,) = review([stack])["flags"]
    assert flag["acknowledged"] and flag["reason"].startswith("the AWS-owned key")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("*", "*"),
        ({"Fn::Join": ["", [{"Fn::GetAtt": ["Bucket1", "Arn"]}, "/*"]]}, "<Bucket1.Arn>/*"),
        ({"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::b/*"]]}, "arn:<AWS::Partition>:s3:::b/*"),
        ({"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:*"}, "arn:<AWS::Partition>:logs:<AWS::Region>:*"),
        ({"Fn::ImportValue": "Shared-Arn"}, "Shared-Arn"),
        ({"Ref": "Bucket1"}, "<Bucket1>"),
    ],
)
def test_nag_resource_name_renders_like_cdk_nag(value, expected):
    assert nag_resource_name(value) == expected


# ---------------------------------------------------------------- real cdk-nag, real app


@pytest.mark.synth
def test_ids_match_what_real_cdk_nag_accepts(tmp_path):
    """A CDK stack with token-rendered wildcards, acknowledged with the ids the review
    derives from the template: real cdk-nag accepts them (synth passes) and the review
    links every wildcard flag to its acknowledgement."""
    import aws_cdk as cdk
    from aws_cdk import aws_iam as iam
    from aws_cdk import aws_s3 as s3
    from cdk_nag import AwsSolutionsChecks

    def build(outdir, acknowledge):
        app = cdk.App(context=CONTEXT, outdir=str(outdir))
        stack = cdk.Stack(app, "Probe")  # environment-agnostic: partition, region, account are tokens
        bucket = s3.CfnBucket(stack, "Bucket")
        role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject*"], resources=[f"{bucket.attr_arn}/*"]))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:PutLogEvents"],
                resources=[f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:app-*"],
            )
        )
        findings = {
            "AwsSolutions::AwsSolutions-IAM5[Action::s3:GetObject*]":  # plugin-prefixed form
            "probe: read the bucket's objects",
            "AwsSolutions-IAM5[Resource::<Bucket.Arn>/*]": "probe: every object of the bucket",
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:"
            "log-group:app-*]": "probe: the app's own log groups",
        }
        for rule_id, reason in findings.items():
            if acknowledge:
                cdk.Validations.of(role).acknowledge(cdk.Acknowledgment(id=rule_id, reason=reason))
        for rule_id in ("AwsSolutions-S1", "AwsSolutions-S10"):  # not what this test is about
            cdk.Validations.of(bucket).acknowledge(cdk.Acknowledgment(id=rule_id, reason="probe bucket"))
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
        return app

    build(tmp_path / "ok", acknowledge=True).synth()  # raises on any unacknowledged finding
    result = _review(tmp_path / "ok")
    iam_flags = [f for f in result["flags"] if f["category"] == "iam"]
    assert len(iam_flags) == 3 and all(f["acknowledged"] for f in iam_flags), iam_flags
    assert {f["rule"] for f in iam_flags} == {
        "AwsSolutions-IAM5[Action::s3:GetObject*]",
        "AwsSolutions-IAM5[Resource::<Bucket.Arn>/*]",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:app-*]",
    }

    with pytest.raises(Exception, match="AwsSolutions-IAM5"):  # the same ids are what cdk-nag checks
        build(tmp_path / "bare", acknowledge=False).synth()


@pytest.mark.synth
@pytest.mark.parametrize("stage_name", STAGES)
def test_real_stage_has_no_unacknowledged_iam_wildcard(stage_name):
    """Every shipped stage, synthesized in-process: every IAM wildcard the review flags is
    covered by an acknowledgement with a reason, and every granular IAM5 acknowledgement
    covers a flag (so the ids the review derives are the ones cdk-nag checked)."""
    result = _review(built(stage_name).assembly().directory)
    wildcards = [f for f in result["flags"] if f["rule"].startswith("AwsSolutions-IAM5[")]
    assert len(wildcards) > 20
    assert [(f["stack"], f["message"]) for f in wildcards if not f["acknowledged"]] == []
    assert all(len(f["reason"]) >= 10 for f in wildcards)
    stale = [
        (a["construct"], a["rule"])
        for a in result["acknowledgements"]
        if a["rule"].startswith("AwsSolutions-IAM5[") and not a["covers"]
    ]
    assert stale == []


@pytest.mark.synth
def test_real_dev_stage_has_no_unacknowledged_iam_flag():
    """Including the execution roles' Allow+NotResource statement (MWAA's AWS-owned SQS key
    lives outside the account): cdk-nag has no rule for it, so the app acknowledges it under
    the review's own id with the statement's reason."""
    result = _review(built("dev").assembly().directory)
    iam_flags = [f for f in result["flags"] if f["category"] == "iam"]
    assert sum(f["acknowledged"] for f in iam_flags) > 40
    assert [(f["stack"], f["message"]) for f in iam_flags if not f["acknowledged"]] == []
    not_resource = [f for f in iam_flags if f["rule"].startswith("Review-IAMNot[")]
    assert {f["stack"] for f in not_resource} == {"dev-source", "dev-target"}
    assert all("AWS-owned key" in f["reason"] for f in not_resource)
