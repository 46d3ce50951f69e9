"""InvokeRestApi unavailable -> the CLI token, over a fake HTTP transport."""

from __future__ import annotations

import json
import shlex

import pytest
from runner_fakes import ENV, conf, event

from dag_runner import handler
from dag_runner.airflow_api import AirflowApiError, AirflowClient, CliFallbackDisabled

RUN = "mig-2-10-3-to-3-0-6-e"
DAG = "db_export"
HOST = "abc123.c2.airflow.eu-west-1.on.aws"
T0 = 1_800_000_000.0


def runs_json(*runs):
    # list-runs -o json; a log line before the JSON, as the MWAA CLI prints
    return "[2026-11-21T03:00:00.000+0000] {dagbag.py:588} INFO - Filling up the DagBag\n" + json.dumps(
        [
            {
                "dag_id": DAG,
                "run_id": r,
                "state": s,
                "execution_date": "2026-11-21T03:00:00+00:00",
                "start_date": "",
                "end_date": "",
            }
            for r, s in runs
        ]
    )


def argv(call):
    return shlex.split(call["body"])


def test_access_denied_on_invoke_rest_api_falls_back_to_cli_airflow2(mwaa, http):
    mwaa.aws_error(
        "AccessDeniedException",
        "not authorized to perform airflow:InvokeRestApi",
        403,
        method="GET",
        path=f"/dags/{DAG}/dagRuns/{RUN}",
    )
    # list-runs (no run) -> unpause -> trigger -> list-runs (run queued)
    for _ in range(4):
        mwaa.cli_token(host=HOST)
    http.answer(runs_json(("manual__2026-11-20", "success")))
    http.answer("Dag: db_export, paused: False")
    http.answer("Created <DagRun db_export @ ...: mig-2-10-3-to-3-0-6-e, state:queued>")
    http.answer(runs_json((RUN, "queued")))

    result = handler.on_event(event(CliTokenFallback="true"), None, mwaa=mwaa.client, http=http, now=lambda: T0)
    data = result["Data"]
    assert data["State"] == "queued" and data["Channel"] == "cli"
    assert "AccessDeniedException" in data["FallbackReason"]

    assert [argv(c)[:2] for c in http.calls] == [
        ["dags", "list-runs"],
        ["dags", "unpause"],
        ["dags", "trigger"],
        ["dags", "list-runs"],
    ]
    assert argv(http.calls[0]) == ["dags", "list-runs", "-o", "json", "-d", DAG]  # Airflow 2 syntax
    trig = argv(http.calls[2])
    assert trig[:5] == ["dags", "trigger", DAG, "-r", RUN]
    assert json.loads(trig[6]) == {**conf(), "migration_id": "2-10-3-to-3-0-6"}
    for call in http.calls:
        assert call["method"] == "POST" and call["url"] == f"https://{HOST}/aws_mwaa/cli"
        assert call["headers"] == {"Authorization": "Bearer tok", "Content-Type": "text/plain"}


def test_airflow3_cli_follows_the_307_to_the_trailing_slash(mwaa, http):
    mwaa.stub.add_client_error(
        "invoke_rest_api", "ValidationException", "Update your environment to use InvokeRestApi", 400
    )
    mwaa.cli_token(host=HOST)
    http.redirect(f"https://{HOST}/aws_mwaa/cli/")
    http.answer(runs_json((RUN, "running")))
    mwaa.cli_token(host=HOST)
    http.redirect("/aws_mwaa/cli/")  # relative Location
    http.answer("Dag: db_export, paused: False")

    result = handler.on_event(
        event(AirflowVersion="3.0.6", CliTokenFallback="true"), None, mwaa=mwaa.client, http=http, now=lambda: T0
    )
    assert result["Data"]["State"] == "running" and result["Data"]["Channel"] == "cli"
    assert [c["url"] for c in http.calls] == [f"https://{HOST}/aws_mwaa/cli", f"https://{HOST}/aws_mwaa/cli/"] * 2
    assert argv(http.calls[1]) == ["dags", "list-runs", "-o", "json", DAG]  # Airflow 3: positional


def test_redirect_to_another_host_is_refused(mwaa, http):
    client = AirflowClient(mwaa.client, ENV, "3.0.6", http=http, allow_cli=True)
    mwaa.cli_token(host=HOST)
    http.redirect("https://evil.example.com/aws_mwaa/cli/")
    with pytest.raises(AirflowApiError, match="redirected off-host"):
        client.cli(["dags", "unpause", DAG])


def test_sdk_without_invoke_rest_api_uses_cli_from_the_start(mwaa, http):
    class OldSdk:  # an MWAA client from before InvokeRestApi existed
        meta = mwaa.client.meta
        create_cli_token = mwaa.client.create_cli_token

    client = AirflowClient(OldSdk(), ENV, "2.10.3", http=http, allow_cli=True)
    assert client.channel == "cli" and "no InvokeRestApi" in client.fallback_reason
    mwaa.cli_token(host=HOST)
    http.answer(runs_json((RUN, "failed")))
    assert client.get_run(DAG, RUN)["state"] == "failed"


def test_cli_failed_run_lists_failed_tasks_without_try_number(mwaa, http):
    mwaa.aws_error("AccessDeniedException", "denied", 403, method="GET", path=f"/dags/{DAG}/dagRuns/{RUN}")
    mwaa.cli_token(host=HOST)
    http.answer(runs_json((RUN, "failed")))
    mwaa.cli_token(host=HOST)
    http.answer(
        json.dumps(
            [
                {"dag_id": DAG, "task_id": "export_tables", "state": "failed", "end_date": "2026"},
                {"dag_id": DAG, "task_id": "write_manifest", "state": "upstream_failed", "end_date": ""},
            ]
        )
    )
    with pytest.raises(handler.RunFailed) as err:
        handler.on_event(event(CliTokenFallback="true"), None, mwaa=mwaa.client, http=http, now=lambda: T0)
    msg = str(err.value)
    assert "Failed task: export_tables." in msg
    assert f"stream dag_id={DAG}/run_id={RUN}/task_id=export_tables/attempt=<N>.log" in msg
    assert argv(http.calls[1]) == ["tasks", "states-for-dag-run", DAG, RUN, "-o", "json"]


def test_cli_endpoint_error_is_reported(mwaa, http):
    client = AirflowClient(mwaa.client, ENV, "2.10.3", http=http, allow_cli=True)
    mwaa.cli_token(host=HOST)
    http.answers.append((403, {}, None, None))
    with pytest.raises(AirflowApiError, match="answered HTTP 403"):
        client.cli(["dags", "unpause", DAG])


def test_cli_trigger_that_creates_nothing_is_an_error(mwaa, http):
    class OldSdk:
        meta = mwaa.client.meta
        create_cli_token = mwaa.client.create_cli_token

    client = AirflowClient(OldSdk(), ENV, "2.10.3", http=http, allow_cli=True)
    mwaa.cli_token(host=HOST)
    http.answer("", "airflow.exceptions.DagNotFound: Dag id db_export not found")
    mwaa.cli_token(host=HOST)
    http.answer(runs_json())
    with pytest.raises(AirflowApiError, match="created no run.*DagNotFound"):
        client.trigger(DAG, RUN, conf())


# ---- the fallback is a stage option, off by default (issue 12 item 11)


def test_access_denied_without_the_fallback_option_fails_and_names_it(mwaa, http):
    """Before the fix the runner fell back to a CLI token on its own, past the Op-role scoping."""
    mwaa.aws_error(
        "AccessDeniedException",
        "not authorized to perform airflow:InvokeRestApi",
        403,
        method="GET",
        path=f"/dags/{DAG}/dagRuns/{RUN}",
    )
    with pytest.raises(
        CliFallbackDisabled,
        match=r"InvokeRestApi cannot be used \(InvokeRestApi on .*"
        r"AccessDeniedException.*migration.cli_token_fallback: true",
    ):
        handler.on_event(event(), None, mwaa=mwaa.client, http=http, now=lambda: T0)
    assert http.calls == []  # no CLI token was ever used


def test_sdk_without_invoke_rest_api_and_no_fallback_fails_at_once(http):
    class OldSdk:
        pass

    with pytest.raises(CliFallbackDisabled, match="has no InvokeRestApi"):
        AirflowClient(OldSdk(), ENV, "2.10.3", http=http)
