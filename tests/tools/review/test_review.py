"""The review of synthesized templates, on purpose-built fixtures (tests/tools/review/fixtures):
``clean`` (a stack plus a nested stage assembly, nothing to flag) and ``flagged`` (one of each
problem). Replacement changes are made on a copy of ``clean`` so each mutation is explicit."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tools.review.__main__ import main
from tools.review.analysis import render, review
from tools.review.assembly import load_cloud_assembly
from tools.review.rules import REPLACEMENT_PROPERTIES

FIXTURES = Path(__file__).parent / "fixtures"


def _review(name, baseline=None):
    stacks, report = load_cloud_assembly(FIXTURES / name)
    base = load_cloud_assembly(baseline)[0] if baseline else None
    return review(stacks, base, report)


def _messages(result, category):
    return [(f["resource"], f["message"]) for f in result["flags"] if f["category"] == category]


# ---------------------------------------------------------------- clean


def test_clean_fixture_has_no_flags():
    result = _review("clean")
    assert result["flags"] == []


def test_clean_fixture_sections():
    result = _review("clean")
    assert [s["name"] for s in result["stacks"]] == ["Dev-Data", "Prod/Logs"]  # nested stage assembly read
    assert result["resources_by_type"]["AWS::S3::Bucket"] == 2
    (row,) = [r for r in result["iam"]["statements"] if r["actions"] == ["s3:PutObject"]]
    assert row["role"] == "SourceRole"
    assert row["resources"] == ["${MigrationBucket.Arn}/data/migration/export/manifest.json"]
    bucket = next(b for b in result["buckets"] if b["bucket"] == "MigrationBucket")
    assert (bucket["encryption"], bucket["public_access"], bucket["tls_enforced"]) == (
        "aws:kms ${MigrationKey.Arn}",
        "blocked",
        True,
    )
    (env,) = result["network"]["mwaa_environments"]
    assert (env["name"], env["webserver_access_mode"]) == ("mwaa-dev-target", "PRIVATE_ONLY")
    assert {(a["stack"], a["rule"]) for a in result["acknowledgements"]} == {
        ("Dev-Data", "AwsSolutions-S1"),
        ("Prod/Logs", "AwsSolutions-S1"),
    }
    assert result["replacement_changes"] is None  # no baseline: not checked, not "no changes"


# ---------------------------------------------------------------- flagged


def test_wildcards_are_flagged():
    assert _messages(_review("flagged"), "iam") == [
        ("AdminRole (AdminPolicy)", "wildcard action: s3:*"),
        ("AdminRole (AdminPolicy)", "wildcard resource: *"),
    ]


def test_deny_with_wildcard_is_not_flagged():
    # clean's SourceRole denies s3:ListAllMyBuckets on *: narrowing, not granting
    result = _review("clean")
    assert any(r["effect"] == "Deny" and r["resources"] == ["*"] for r in result["iam"]["statements"])
    assert _messages(result, "iam") == []


def test_public_bucket_is_flagged():
    result = _review("flagged")
    public = [m for r, m in _messages(result, "bucket") if r == "PublicBucket"]
    assert public == [
        "public access not fully blocked (BlockPublicAcls, BlockPublicPolicy, RestrictPublicBuckets not true)",
        "bucket policy allows anyone (Principal *) without a condition: s3:GetObject",
    ]
    assert all(f["severity"] == "high" for f in result["flags"] if f["resource"] == "PublicBucket")


def test_unencrypted_bucket_without_tls_is_flagged():
    plain = [m for r, m in _messages(_review("flagged"), "bucket") if r == "PlainBucket"]
    assert plain == [
        "no BucketEncryption declared (S3 applies SSE-S3 implicitly; declare SSE-KMS or SSE-S3)",
        "no bucket policy denying aws:SecureTransport=false (TLS not enforced)",
    ]


def test_network_exposure_is_flagged():
    assert _messages(_review("flagged"), "network") == [
        ("OpenSg", "ingress from 0.0.0.0/0 on tcp/443"),
        ("PublicEnv", "MWAA webserver is reachable from the internet (WebserverAccessMode PUBLIC_ONLY)"),
    ]


def test_acknowledgement_without_a_reason_is_flagged():
    assert _messages(_review("flagged"), "nag") == [
        ("/Flagged/PlainBucket", "acknowledgement of AwsSolutions-S1 has no checkable reason: 'ok'")
    ]


def test_unacknowledged_findings_of_a_failed_synth_are_flagged():
    stacks, _ = load_cloud_assembly(FIXTURES / "clean")
    report = {
        "pluginReports": [
            {
                "pluginName": "AwsSolutions",
                "violations": [
                    {
                        "ruleName": "AwsSolutions-S1",
                        "description": "no access logs",
                        "violatingConstructs": [{"constructPath": "Dev/Data/B/Resource"}],
                    }
                ],
            }
        ]
    }
    result = review(stacks, None, report)
    assert [(f["category"], f["resource"]) for f in result["flags"]] == [("nag", "Dev/Data/B/Resource")]


# ---------------------------------------------------------------- replacements vs a baseline


def _copy_clean(tmp_path: Path) -> Path:
    target = tmp_path / "cdk.out"
    shutil.copytree(FIXTURES / "clean", target)
    return target


def _edit(path: Path, change):
    template = json.loads(path.read_text())
    change(template["Resources"])
    path.write_text(json.dumps(template))


def test_same_synth_has_no_replacement():
    result = _review("clean", baseline=FIXTURES / "clean")
    assert result["replacement_changes"] == [] and result["flags"] == []


def test_replacement_causing_changes_are_flagged(tmp_path):
    current = _copy_clean(tmp_path)

    def change(resources):
        env = resources["TargetEnvCCCC2222"]["Properties"]
        env["Name"] = "mwaa-dev-target-2"
        env["NetworkConfiguration"]["SubnetIds"] = ["subnet-a", "subnet-c"]
        env["AirflowVersion"] = "3.0.6"  # an in-place update: not a replacement
        resources["MigrationBucketA1B2C3D4"]["Properties"]["BucketName"] = "mwaa-upgrade-dev-migration-v2"

    _edit(current / "DevData.template.json", change)
    _edit(
        current / "assembly-Prod" / "ProdLogs.template.json",
        lambda r: r.update({"LogsBucketRenamed": r.pop("LogsBucketDDDD3333")}),
    )

    stacks, _ = load_cloud_assembly(current)
    result = review(stacks, load_cloud_assembly(FIXTURES / "clean")[0])
    changes = {(c["resource"], c["property"]): (c["before"], c["after"]) for c in result["replacement_changes"]}
    assert changes == {
        ("TargetEnvironment", "Name"): ("mwaa-dev-target", "mwaa-dev-target-2"),
        ("TargetEnvironment", "NetworkConfiguration.SubnetIds"): ("subnet-a, subnet-b", "subnet-a, subnet-c"),
        ("MigrationBucket", "BucketName"): ("mwaa-upgrade-dev-migration", "mwaa-upgrade-dev-migration-v2"),
        ("LogsBucketDDDD3333", "(logical ID)"): ("present", "removed: CloudFormation deletes it"),
    }
    severity = {f["message"].split(": ")[0]: f["severity"] for f in result["flags"] if f["category"] == "replacement"}
    # issue 12 item 1: a change that replaces a live MWAA environment is refused (the stage does not
    # allow it); other replacements stay flagged high
    assert severity == {
        "AWS::MWAA::Environment Name": "refused",
        "AWS::MWAA::Environment NetworkConfiguration.SubnetIds": "refused",
        "AWS::S3::Bucket BucketName": "high",
        "AWS::S3::Bucket (logical ID)": "high",
    }
    assert len(result["refused"]) == 2 and "allow_environment_replacement: true" in result["refused"][0]["message"]


def test_environment_replacement_allowed_by_the_stage_is_flagged_not_refused(tmp_path):
    current = _copy_clean(tmp_path)

    def change(resources):
        resources["TargetEnvCCCC2222"]["Properties"]["Name"] = "mwaa-dev-target-2"
        resources["TargetEnvCCCC2222"]["Metadata"] = {"mwaa-upgrade:allow-replacement": True}

    _edit(current / "DevData.template.json", change)
    result = review(load_cloud_assembly(current)[0], load_cloud_assembly(FIXTURES / "clean")[0])
    (flag,) = [f for f in result["flags"] if f["category"] == "replacement"]
    assert flag["severity"] == "high" and result["refused"] == []
    assert "allowed by the stage" in flag["message"] and "keeps running and costing" in flag["message"]


def test_renamed_clone_target_says_the_old_environment_is_kept(tmp_path):
    """Issue 12 item 5: a new target.name creates a new environment; the old one is kept (cost)."""
    base, current = tmp_path / "base", tmp_path / "current"
    for where, name, meta in ((base, "orders-2-11", None), (current, "orders-2-11-b", None)):
        shutil.copytree(FIXTURES / "clean", where)
        clone = {"Type": "Custom::MwaaEnvironmentClone", "Properties": {"TargetName": name}}
        if meta:
            clone["Metadata"] = meta
        _edit(where / "DevData.template.json", lambda r, c=clone: r.update(Clone1234=c))
    result = review(load_cloud_assembly(current)[0], load_cloud_assembly(base)[0])
    (flag,) = [f for f in result["flags"] if f["category"] == "replacement"]
    assert flag["severity"] == "high"
    assert flag["message"].startswith(
        "target.name orders-2-11 -> orders-2-11-b: the clone creates a new environment and keeps orders-2-11"
    )
    assert "set migration.delete_replaced_target: orders-2-11" in flag["message"]
    # opted in: the review says it will be deleted
    _edit(
        current / "DevData.template.json",
        lambda r: r["Clone1234"].update(Metadata={"mwaa-upgrade:delete-replaced-target": "orders-2-11"}),
    )
    result = review(load_cloud_assembly(current)[0], load_cloud_assembly(base)[0])
    (flag,) = [f for f in result["flags"] if f["category"] == "replacement"]
    assert "orders-2-11 is deleted once the update succeeds" in flag["message"]


def test_kms_key_and_endpoint_management_changes_are_replacements(tmp_path):
    current = _copy_clean(tmp_path)

    def change(resources):
        env = resources["TargetEnvCCCC2222"]["Properties"]
        env["KmsKey"] = "arn:aws:kms:eu-west-1:111111111111:key/other"
        env["EndpointManagement"] = "CUSTOMER"

    _edit(current / "DevData.template.json", change)
    result = review(load_cloud_assembly(current)[0], load_cloud_assembly(FIXTURES / "clean")[0])
    assert sorted(c["property"] for c in result["replacement_changes"]) == ["EndpointManagement", "KmsKey"]


def test_replacement_table_matches_cloudformation_schemas():
    """Every listed property is create-only in the CloudFormation registry schema cfn-lint ships."""
    import cfnlint.data.schemas.providers
    import cfnlint.data.schemas.resources as resources_pkg

    providers = Path(next(iter(cfnlint.data.schemas.providers.__path__)))
    resources = Path(next(iter(resources_pkg.__path__)))
    index = json.loads((providers / "us-east-1.json").read_text())
    for type_name, properties in REPLACEMENT_PROPERTIES.items():
        schema = json.loads((resources / f"{index[type_name]}.json").read_text())
        create_only = {p.replace("/properties/", "").replace("/", ".") for p in schema["createOnlyProperties"]}
        assert set(properties) <= create_only, type_name


# ---------------------------------------------------------------- rendering


@pytest.mark.parametrize(
    "value, expected",
    [
        ({"Ref": "AWS::Region"}, "${AWS::Region}"),
        ({"Ref": "Bucket1"}, "${MyBucket}"),
        ({"Fn::GetAtt": ["Bucket1", "Arn"]}, "${MyBucket.Arn}"),
        ({"Fn::GetAtt": "Bucket1.Arn"}, "${MyBucket.Arn}"),
        ({"Fn::Join": ["", [{"Fn::GetAtt": ["Bucket1", "Arn"]}, "/*"]]}, "${MyBucket.Arn}/*"),
        ({"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket1}/x"}, "arn:${AWS::Partition}:s3:::${MyBucket}/x"),
        ({"Fn::Sub": ["${A}-x", {"A": {"Ref": "Bucket1"}}]}, "${MyBucket}-x"),
        ({"Fn::Select": [1, ["a", "b"]]}, "b"),
        ({"Fn::ImportValue": "Shared-Key"}, "import(Shared-Key)"),
        (
            {"Fn::GetStackOutput": {"OutputName": "RefLogs", "Region": "eu-west-1", "StackName": "dev-storage"}},
            "output(dev-storage.RefLogs)",
        ),
        (True, "true"),
    ],
)
def test_render_resolves_intrinsics_to_readable_names(value, expected):
    assert render(value, {"Bucket1": "MyBucket"}) == expected


# ---------------------------------------------------------------- command line


def test_cli_writes_markdown_and_prints_summary(tmp_path, capsys):
    out = tmp_path / "reports" / "review-flagged.md"
    assert main(["--cdk-out", str(FIXTURES / "flagged"), "--out", str(out), "--title", "flagged"]) == 0
    text = out.read_text()
    for heading in (
        "## Flags",
        "## Resources by type",
        "## IAM",
        "## Buckets",
        "## Network exposure",
        "## Replacement-causing properties",
        "## cdk-nag acknowledgements",
    ):
        assert heading in text
    assert "| **s3:*** :warning: |" in text
    printed = capsys.readouterr().out
    assert printed.startswith("flagged: 1 stacks, 7 resources")
    assert (
        "FLAGS: 9 unacknowledged (bucket posture 4, IAM wildcards 2, cdk-nag 1, network exposure 2), "
        "0 acknowledged with a reason" in printed
    )
    assert main(["--cdk-out", str(FIXTURES / "flagged"), "--fail-on-flags"]) == 1
    assert main(["--cdk-out", str(FIXTURES / "clean"), "--fail-on-flags"]) == 0


def test_cli_bad_input_names_the_option(tmp_path, capsys):
    assert main(["--cdk-out", str(tmp_path / "missing")]) == 2
    assert "--cdk-out:" in capsys.readouterr().err
    assert main(["--cdk-out", str(FIXTURES / "clean"), "--baseline", "no-such-ref", "--repo", str(tmp_path)]) == 2
    assert f"--baseline: 'no-such-ref' is neither a directory nor a git commit in {tmp_path}" in capsys.readouterr().err


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_baseline_from_a_git_ref_is_synthesized_offline_once(tmp_path, capsys):
    """A git ref baseline: the commit's tree is extracted and the caller's command synthesizes
    it (here: copies a committed assembly, standing in for `make synth`); cached per commit."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(FIXTURES / "clean", repo / "assembly-src")
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "baseline")
    counter = tmp_path / "synth-runs"
    command = f"cp -r assembly-src built && echo run >> {counter}"

    current = _copy_clean(tmp_path)
    _edit(
        current / "DevData.template.json",
        lambda r: r["TargetEnvCCCC2222"]["Properties"].update(Name="mwaa-dev-target-2"),
    )
    argv = [
        "--cdk-out",
        str(current),
        "--baseline",
        "HEAD",
        "--repo",
        str(repo),
        "--baseline-cmd",
        command,
        "--baseline-out",
        "built",
        "--out",
        str(tmp_path / "r.md"),
    ]
    # a renamed environment is refused (exit 3) whatever --fail-on-flags says
    assert main(argv) == 3
    assert main(argv) == 3
    assert counter.read_text() == "run\n"  # the second review reused the synthesized baseline
    captured = capsys.readouterr()
    assert "replacements vs baseline `HEAD`: 1" in captured.out
    assert "REFUSED: 1 change(s) would replace a live MWAA environment" in captured.err
    assert (
        "| Dev-Data | TargetEnvironment | AWS::MWAA::Environment | Name | mwaa-dev-target | mwaa-dev-target-2 | "
        "refused |"
    ) in (tmp_path / "r.md").read_text()


def test_failing_baseline_command_is_reported(tmp_path, capsys):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "f").write_text("x")
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "c")
    assert (
        main(
            [
                "--cdk-out",
                str(FIXTURES / "clean"),
                "--baseline",
                "HEAD",
                "--repo",
                str(repo),
                "--baseline-cmd",
                "echo synth broke; exit 3",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "--baseline-cmd 'echo synth broke; exit 3' failed" in err and "synth broke" in err
