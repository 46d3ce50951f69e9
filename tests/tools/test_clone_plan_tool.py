"""python -m tools.plan_clone: the review command, offline and with a stubbed live read."""

import io
import json

import boto3
import pytest
from botocore.stub import Stubber

from tests.clonehelpers import FIXTURES, REGION, TARGET_ROLE, load_env
from tools import plan_clone

CFN = str(FIXTURES / "cfn_created_2_10_3.json")
SECRET = "hunter2-do-not-print"


@pytest.fixture
def overrides(tmp_path):
    def write(**values):
        path = tmp_path / "overrides.json"
        path.write_text(json.dumps({"Name": "orders-prod-2-11", "ExecutionRoleArn": TARGET_ROLE, **values}))
        return str(path)

    return write


def run(*argv):
    out = io.StringIO()
    rc = plan_clone.main(list(argv), out=out)
    return rc, out.getvalue()


def test_offline_review_prints_redacted_plan_and_differences(overrides):
    rc, text = run("--source-json", CFN, "--overrides-json", overrides(AirflowVersion="2.11.0", MaxWorkers=12))
    assert rc == 0
    assert SECRET not in text
    planned = json.loads(text.split("# Differences from the source")[0].split("\n", 1)[1])
    assert planned["AirflowConfigurationOptions"]["smtp.smtp_password"] == "***redacted***"
    assert planned["MaxWorkers"] == 12 and planned["Name"] == "orders-prod-2-11"
    assert 'changed                            AirflowVersion: "2.10.3" -> "2.11.0"' in text
    assert "dropped (read-only)                Arn:" in text
    assert "Tags['aws:cloudformation:stack-name']" in text
    assert "# Review notes" in text and "OK: Airflow 2.10.3 -> 2.11.0" in text


def test_offline_review_refuses_a_disallowed_pair(overrides):
    rc, text = run("--source-json", CFN, "--overrides-json", overrides(AirflowVersion="2.9.2"))
    assert rc == 2
    assert "REFUSED: AirflowVersion 2.10.3 -> 2.9.2 is not allowed: downgrades" in text


def test_offline_review_refuses_an_undecided_kms_key(overrides):
    rc, text = run("--source-json", str(FIXTURES / "kms_2_11_0.json"), "--overrides-json", overrides())
    assert rc == 2 and text.startswith("plan refused: ") and "Overrides.KmsKey" in text


def test_source_version_and_target_name_options(overrides, tmp_path):
    inner = tmp_path / "inner.json"  # the inner object is accepted too
    inner.write_text(json.dumps({k: v for k, v in load_env("micro_2_10_3").items() if k != "AirflowVersion"}))
    rc, text = run(
        "--source-json",
        str(inner),
        "--source-version",
        "2.9.2",
        "--target-name",
        "sandbox-new",
        "--overrides-json",
        overrides(AirflowVersion="2.10.3"),
    )
    assert rc == 0 and '"Name": "sandbox-new"' in text and "OK: Airflow 2.9.2 -> 2.10.3" in text


def test_bad_overrides_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(SystemExit, match=r"--overrides-json .* must hold a JSON object"):
        run("--source-json", CFN, "--overrides-json", str(bad))


def test_live_read_of_a_missing_source_names_the_region(overrides, monkeypatch, capsys):
    client = boto3.client("mwaa", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_client_error(
            "get_environment", "ResourceNotFoundException", "not found", 404, expected_params={"Name": "nope"}
        )
        monkeypatch.setattr(plan_clone, "_mwaa_client", lambda region: client)
        rc, _ = run("--source-name", "nope", "--region", REGION, "--overrides-json", overrides())
        stub.assert_no_pending_responses()
    assert rc == 1
    assert f"source environment 'nope' not found in region {REGION}" in capsys.readouterr().err


def test_live_read(overrides, monkeypatch):
    client = boto3.client("mwaa", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_response("get_environment", {"Environment": load_env("console_created_2_8_1")}, {"Name": "analytics"})
        monkeypatch.setattr(plan_clone, "_mwaa_client", lambda region: client)
        rc, text = run(
            "--source-name", "analytics", "--region", REGION, "--overrides-json", overrides(AirflowVersion="2.10.3")
        )
        stub.assert_no_pending_responses()
    assert rc == 0 and "OK: Airflow 2.8.1 -> 2.10.3" in text


# --stage against the real stage files: tests/tools/test_wiring_plan_clone.py


def test_usage_errors(overrides):
    with pytest.raises(SystemExit):
        run("--source-name", "x", "--overrides-json", overrides())  # no region
    with pytest.raises(SystemExit):
        run("--source-json", CFN)  # neither overrides nor stage
