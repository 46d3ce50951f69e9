"""Task-log copy (dags/mwaa_migration/task_logs.py): pure planning, moto, botocore Stubber."""

from __future__ import annotations

import json
import logging
import random
import time
from types import SimpleNamespace

import boto3
import botocore.session
import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber
from moto import mock_aws

from mwaa_common import versions as version_table
from mwaa_migration import task_logs as tl

SRC, DST = "blue", "green"
SRC_GROUP, DST_GROUP = "airflow-blue-Task", "airflow-green-Task"
SECRET = "SECRET-VALUE-never-logged"


def now_ms() -> int:
    return int(time.time() * 1000)


def ti(dag="etl", task="load", run="manual__2026-11-20T10:00:00+00:00", map_index=-1, tries=1, **extra):
    return {
        "dag_id": dag,
        "task_id": task,
        "run_id": run,
        "map_index": map_index,
        "try_number": tries,
        "state": "failed",
        "end_date": None,
        **extra,
    }


def name(t: dict, attempt: int) -> str:
    return tl.stream_name(tl.naming_for("2.10.3"), t, attempt)


# ------------------------------------------------------------------- naming (pure)


def test_stream_names_follow_airflow_template_and_cloudwatch_sanitising():
    n = tl.naming_for("2.10.3")
    plain = ti(run="scheduled__2026-11-20T00:00:00+00:00")
    assert tl.stream_name(n, plain, 2) == (
        "dag_id=etl/run_id=scheduled__2026-11-20T00_00_00+00_00/task_id=load/attempt=2.log"
    )
    mapped = ti(run="manual__2026-11-20T10:00:00.123456+00:00", map_index=0)
    assert tl.stream_name(n, mapped, 1) == (
        "dag_id=etl/run_id=manual__2026-11-20T10_00_00.123456+00_00/task_id=load/map_index=0/attempt=1.log"
    )
    assert tl.ti_stream_prefix(n, mapped) == (
        "dag_id=etl/run_id=manual__2026-11-20T10_00_00.123456+00_00/task_id=load/map_index=0/attempt="
    )
    assert tl.ti_stream_prefix(n, plain).endswith("/task_id=load/attempt=")


@pytest.mark.parametrize(
    "version,family",
    [
        ("2.7.2", "airflow-2.3+"),
        ("2.11.0", "airflow-2.3+"),
        ("3.0.6", "airflow-3"),
        ("3.1.8", "airflow-3"),
        ("2.10.3+amzn.1", "airflow-2.3+"),
    ],
)
def test_naming_table_lookup(version, family):
    assert tl.naming_for(version)["family"] == family


def test_every_migratable_version_in_the_shared_table_has_a_naming():
    for version, row in version_table.VERSIONS.items():
        if row["migration_schema"] is not None:
            assert tl.naming_for(version)["parts"] is not None, version


@pytest.mark.parametrize(
    "version,needle",
    [("2.2.5", "logical date"), ("1.10.12", "logical date"), ("1.9.0", "older than"), ("latest", "not a version")],
)
def test_unsupported_versions_are_refused_with_reason(version, needle):
    with pytest.raises(ValueError, match=needle):
        tl.naming_for(version)


def test_plan_lists_every_try_and_flags_unrepresentable_names():
    n = tl.naming_for("2.11.0")
    plan = tl.plan_task_instance(ti(tries=3), n, tl.naming_for("3.0.6"))
    assert [e["try_number"] for e in plan["tries"]] == [1, 2, 3]
    assert plan["tries"][2]["target"].endswith("/attempt=3.log")
    assert tl.plan_task_instance(ti(tries=0), n, n)["tries"] == []
    long = tl.plan_task_instance(ti(task="t" * 600, tries=1), n, n)
    assert long["tries"] == [] and "512" in long["invalid"][0]["reason"]
    star = tl.plan_task_instance(ti(run="manual*1", tries=1), n, n)
    assert "'*'" in star["invalid"][0]["reason"]


@pytest.mark.parametrize(
    "bad,field",
    [
        ({"dag_id": "", "task_id": "t", "run_id": "r", "map_index": -1, "try_number": 1}, "dag_id"),
        ({"dag_id": "d", "task_id": "t", "run_id": "r", "map_index": -2, "try_number": 1}, "map_index"),
        ({"dag_id": "d", "task_id": "t", "run_id": "r", "map_index": -1, "try_number": "1"}, "try_number"),
        ({"dag_id": "d", "task_id": "t", "run_id": "r", "map_index": True, "try_number": 1}, "map_index"),
        ({"dag_id": "d", "task_id": "t", "map_index": -1, "try_number": 1}, "run_id"),
    ],
)
def test_bad_task_instance_names_index_field_and_value(bad, field):
    with pytest.raises(ValueError, match=rf"task_instances\[0\]\.{field} = "):
        tl.validate_task_instance(bad, 0)


# ------------------------------------------------------------- batching (pure)


def test_batches_respect_count_bytes_span_and_order():
    t0 = 1_700_000_000_000
    many = [{"timestamp": t0 + i, "message": "x"} for i in range(25_001)]
    assert [len(b) for b in tl.plan_batches(many)] == [10_000, 10_000, 5_001]

    big = "y" * (300 * 1024)  # 4 of these + overhead exceed 1,048,576 bytes
    sizes = [len(b) for b in tl.plan_batches({"timestamp": t0, "message": big} for _ in range(7))]
    assert sizes == [3, 3, 1]
    exact = "z" * (tl.PUT_MAX_BYTES // 2 - tl.PUT_EVENT_OVERHEAD)  # two fill a batch exactly
    assert [len(b) for b in tl.plan_batches([{"timestamp": t0, "message": exact}] * 3)] == [2, 1]

    day = tl.PUT_MAX_SPAN_MS
    spans = [{"timestamp": t0 + off, "message": "m"} for off in (0, day - 1, day, day + 5)]
    assert [len(b) for b in tl.plan_batches(spans)] == [2, 2]

    unordered = [{"timestamp": t, "message": "m"} for t in (5, 6, 3, 4)]
    assert [[e["timestamp"] for e in b] for b in tl.plan_batches(unordered)] == [[5, 6], [3, 4]]

    with pytest.raises(ValueError, match="exceeds"):
        list(tl.plan_batches([{"timestamp": t0, "message": "q" * tl.PUT_MAX_BYTES}]))


def test_resume_filter_skips_exactly_the_written_prefix():
    evs = [
        {"timestamp": t, "message": m} for t, m in [(1, "a"), (2, "b"), (3, "same"), (3, "same"), (3, "c"), (4, "d")]
    ]
    counts = {}
    tail = tl.Tail.of(3, ["same"])  # one of the two identical events at t=3 was written
    rest = list(tl.skip_already_written(evs, tail, counts))
    assert [(e["timestamp"], e["message"]) for e in rest] == [(3, "same"), (3, "c"), (4, "d")]
    assert counts == {"present": 3}
    with pytest.raises(tl.TargetNotAPrefixError):
        list(tl.skip_already_written(evs, tl.Tail.of(3, ["not in source"])))
    with pytest.raises(tl.TargetNotAPrefixError):
        list(tl.skip_already_written(list(reversed(evs)), tl.Tail.of(2, ["b"])))


def test_rejected_count_reads_all_three_indices():
    assert tl.rejected_count(10, None) == 0
    assert tl.rejected_count(10, {"tooOldLogEventEndIndex": 3}) == 4
    assert tl.rejected_count(10, {"tooOldLogEventEndIndex": 3, "expiredLogEventEndIndex": 5}) == 6
    assert tl.rejected_count(10, {"tooNewLogEventStartIndex": 8}) == 2


def test_backoff_is_exponential_capped_and_jittered():
    policy = tl.RetryPolicy(max_attempts=8, base_delay=0.5, max_delay=4.0)
    assert [policy.ceiling(a) for a in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    rng = random.Random(3)
    samples = [policy.delay(3, rng) for _ in range(200)]
    assert all(0 <= d <= 2.0 for d in samples) and len(set(samples)) > 100


# ------------------------------------------------------------------ moto fixtures


class PutChecker:
    """Asserts on every PutLogEvents request that the API limits hold; counts calls."""

    def __init__(self):
        self.batches = []
        self.calls = {}

    def check(self, params, **_):
        evs = params["logEvents"]
        assert 1 <= len(evs) <= tl.PUT_MAX_EVENTS
        assert sum(len(e["message"].encode()) + 26 for e in evs) <= tl.PUT_MAX_BYTES
        ts = [e["timestamp"] for e in evs]
        assert ts == sorted(ts) and ts[-1] - ts[0] < tl.PUT_MAX_SPAN_MS
        self.batches.append((params["logGroupName"], params["logStreamName"], len(evs)))

    def count(self, model, params, **_):
        key = (model.name, params.get("logGroupName"))
        self.calls[key] = self.calls.get(key, 0) + 1


@pytest.fixture
def logs(monkeypatch):
    for k, v in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_SESSION_TOKEN", "testing"),
        ("AWS_DEFAULT_REGION", "eu-west-1"),
    ):
        monkeypatch.setenv(k, v)
    with mock_aws():
        client = boto3.client("logs", region_name="eu-west-1")
        client.create_log_group(logGroupName=SRC_GROUP)
        client.create_log_group(logGroupName=DST_GROUP)
        checker = PutChecker()
        client.meta.events.register("provide-client-params.cloudwatch-logs.PutLogEvents", checker.check)
        client.meta.events.register("provide-client-params.cloudwatch-logs", checker.count)
        client.checker = checker
        yield client


def seed(client, group, stream, events):
    client.create_log_stream(logGroupName=group, logStreamName=stream)
    for i in range(0, len(events), 10_000):
        client.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events[i : i + 10_000])


def read_all(client, group, stream):
    out, token = [], None
    while True:
        kw = {"nextToken": token} if token else {}
        page = client.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True, **kw)
        out += [(e["timestamp"], e["message"]) for e in page["events"]]
        if page["nextForwardToken"] == token:
            return out
        token = page["nextForwardToken"]


def events(n, start=None, prefix="line"):
    start = start or now_ms() - 3_600_000
    return [{"timestamp": start + i, "message": f"{prefix} {i}"} for i in range(n)]


def copy(client, tis, **kw):
    kw.setdefault("sleep", lambda s: None)
    return tl.copy_task_logs(
        client,
        source_env=SRC,
        target_env=DST,
        source_version="2.10.3",
        target_version="3.0.6",
        task_instances=tis,
        **kw,
    )


def inject(client, operation, code, times, *, exc=None):
    """The first ``times`` calls of ``operation`` fail with ``code`` (or raise ``exc``)."""
    state = {"left": times, "seen": 0}

    def handler(**_):
        state["seen"] += 1
        if state["left"] <= 0:
            return None
        state["left"] -= 1
        if exc is not None:
            raise exc
        return (
            SimpleNamespace(status_code=400, headers={}),
            {"Error": {"Code": code, "Message": "Rate exceeded"}, "ResponseMetadata": {"HTTPStatusCode": 400}},
        )

    client.meta.events.register(f"before-call.cloudwatch-logs.{operation}", handler)
    return state


# ----------------------------------------------------------------------- moto tests


def test_copies_every_page_of_events_and_streams_with_target_naming(logs):
    long_ti = ti(task="long", run="scheduled__2026-11-20T00:00:00+00:00")
    long_src = events(25_000)  # moto pages GetLogEvents at 10,000 events
    seed(logs, SRC_GROUP, name(long_ti, 1), long_src)
    retried = ti(task="flaky", tries=60)  # 60 attempts: DescribeLogStreams pages at 50
    for a in range(1, 61):
        seed(logs, SRC_GROUP, name(retried, a), events(2, prefix=f"try {a}"))
    mapped = [ti(task="fan", map_index=i, tries=2) for i in range(3)]
    for m in mapped:
        for a in (1, 2):
            seed(logs, SRC_GROUP, name(m, a), events(3, prefix=f"m{m['map_index']} a{a}"))

    summary = copy(logs, [long_ti, retried, *mapped])

    assert summary["streams_copied"] == 1 + 60 + 6
    assert summary["streams_missing"] == 0 and summary["errors"] == []
    assert summary["events_copied"] == 25_000 + 120 + 18
    target_long = "dag_id=etl/run_id=scheduled__2026-11-20T00_00_00+00_00/task_id=long/attempt=1.log"
    assert read_all(logs, DST_GROUP, target_long) == [(e["timestamp"], e["message"]) for e in long_src]
    for m in mapped:
        got = read_all(logs, DST_GROUP, name(m, 2))
        assert got[0][1] == f"m{m['map_index']} a2 0" and len(got) == 3
        assert f"/map_index={m['map_index']}/attempt=2.log" in name(m, 2)
    assert read_all(logs, DST_GROUP, name(retried, 60))[1][1] == "try 60 1"
    calls = logs.checker.calls
    assert calls[("GetLogEvents", SRC_GROUP)] >= 67 + 3  # the long stream took >1 page
    assert summary["api_calls"]["DescribeLogStreams"] == 1 + 2 + 3  # 60 attempts: 2 pages
    assert [n for g, s, n in logs.checker.batches if (g, s) == (DST_GROUP, target_long)] == [10_000, 10_000, 5_000]


def test_second_run_skips_everything_and_changes_nothing(logs):
    tis = [ti(tries=2), ti(task="other", map_index=4)]
    for t in tis:
        for a in range(1, t["try_number"] + 1):
            seed(logs, SRC_GROUP, name(t, a), events(30))
    first = copy(logs, tis)
    assert first["streams_copied"] == 3 and first["events_copied"] == 90
    puts_before = len(logs.checker.batches)

    second = copy(logs, tis)

    assert second["streams_skipped"] == 3 and second["streams_copied"] == 0
    assert second["events_copied"] == 0 and len(logs.checker.batches) == puts_before
    assert read_all(logs, DST_GROUP, name(tis[0], 2)) == read_all(logs, SRC_GROUP, name(tis[0], 2))


def test_half_written_target_is_completed_without_duplicates(logs):
    t = ti()
    base = now_ms() - 600_000
    src = [{"timestamp": base + i, "message": f"e{i}"} for i in range(10)]
    src += [{"timestamp": base + 10, "message": m} for m in ("dup", "dup", "x", "y")]
    src += [{"timestamp": base + 11 + i, "message": f"late{i}"} for i in range(5)]
    seed(logs, SRC_GROUP, name(t, 1), src)
    # a previous run stopped inside the group of events that share one millisecond
    seed(logs, DST_GROUP, name(t, 1), src[:11])

    summary = copy(logs, [t])

    assert summary["streams_resumed"] == 1
    assert summary["events_already_present"] == 11 and summary["events_copied"] == len(src) - 11
    assert read_all(logs, DST_GROUP, name(t, 1)) == [(e["timestamp"], e["message"]) for e in src]
    assert copy(logs, [t])["streams_skipped"] == 1


def test_target_that_is_not_a_prefix_fails_loudly_and_writes_nothing(logs):
    t = ti()
    src = events(5)
    seed(logs, SRC_GROUP, name(t, 1), src)
    seed(logs, DST_GROUP, name(t, 1), [{"timestamp": src[2]["timestamp"], "message": "foreign"}])
    with pytest.raises(tl.TaskLogCopyError, match="cannot be completed safely") as info:
        copy(logs, [t])
    assert name(t, 1) in str(info.value) and info.value.stream == name(t, 1)
    assert read_all(logs, DST_GROUP, name(t, 1)) == [(src[2]["timestamp"], "foreign")]


def test_missing_source_streams_are_recorded_not_fatal(logs):
    t = ti(tries=3)
    seed(logs, SRC_GROUP, name(t, 1), events(2))
    seed(logs, SRC_GROUP, name(t, 3), events(2))
    summary = copy(logs, [t, ti(task="never_ran", tries=0)])
    assert summary["streams_copied"] == 2 and summary["streams_missing"] == 1
    assert summary["missing"] == [name(t, 2)]
    assert summary["task_instances"] == 2 and summary["streams_planned"] == 3


def test_duplicate_task_instances_are_copied_once(logs):
    t = ti()
    seed(logs, SRC_GROUP, name(t, 1), events(3))
    summary = copy(logs, [t, dict(t)])
    assert summary["task_instances"] == 1 and summary["events_copied"] == 3


def test_events_older_than_cloudwatch_accepts_are_reported(logs):
    t = ti()
    old = now_ms() - 15 * 24 * 3_600_000
    src = [{"timestamp": old + i, "message": "old"} for i in range(4)] + events(3)
    seed(logs, SRC_GROUP, name(t, 1), [e for e in src if e["message"] != "old"])
    # moto refuses old events too, so put the old ones straight into its backend view
    from moto.logs.models import logs_backends

    stream = logs_backends["123456789012"]["eu-west-1"].groups[SRC_GROUP].streams[name(t, 1)]
    stream.events[:0] = [type(stream.events[0])(now_ms(), e) for e in src[:4]]
    summary = copy(logs, [t])
    assert summary["events_rejected"] == 4 and summary["events_copied"] == 3
    assert "refused 4 event(s)" in summary["errors"][0]["reason"]


def test_throttling_is_retried_with_backoff_until_success(logs):
    t = ti(tries=2)
    for a in (1, 2):
        seed(logs, SRC_GROUP, name(t, a), events(40))
    injected = {
        op: inject(logs, op, code, n)
        for op, code, n in (
            ("GetLogEvents", "ThrottlingException", 3),
            ("PutLogEvents", "ThrottlingException", 2),
            ("DescribeLogStreams", "LimitExceededException", 2),
            ("CreateLogStream", "ServiceUnavailableException", 1),
        )
    }
    sleeps = []

    class TopOfRange(random.Random):
        def uniform(self, a, b):
            return b

    summary = copy(
        logs,
        [t],
        sleep=sleeps.append,
        rng=TopOfRange(),
        retry=tl.RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=30),
    )

    assert all(state["left"] == 0 for state in injected.values())
    assert summary["api_retries"] == 8 and len(sleeps) == 8
    # each call's consecutive failures double its wait: DescribeLogStreams x2,
    # CreateLogStream x1, GetLogEvents x3, PutLogEvents x2
    assert sleeps == [0.5, 1.0, 0.5, 0.5, 1.0, 2.0, 0.5, 1.0]
    assert summary["streams_copied"] == 2 and summary["events_copied"] == 80
    assert read_all(logs, DST_GROUP, name(t, 2)) == read_all(logs, SRC_GROUP, name(t, 2))


def test_connection_errors_on_reads_are_retried(logs):
    t = ti()
    seed(logs, SRC_GROUP, name(t, 1), events(5))
    inject(logs, "GetLogEvents", None, 2, exc=EndpointConnectionError(endpoint_url="https://x"))
    sleeps = []
    summary = copy(logs, [t], sleep=sleeps.append)
    assert len(sleeps) == 2 and summary["events_copied"] == 5


def test_throttling_that_never_ends_gives_up_naming_the_stream(logs):
    t = ti()
    seed(logs, SRC_GROUP, name(t, 1), events(5))
    inject(logs, "PutLogEvents", "ThrottlingException", 10_000)
    sleeps = []
    with pytest.raises(tl.TaskLogCopyError) as info:
        copy(logs, [t], sleep=sleeps.append, retry=tl.RetryPolicy(max_attempts=4))
    message = str(info.value)
    assert name(t, 1) in message and "gave up after 4 attempts" in message
    assert "ThrottlingException" in message and len(sleeps) == 3
    assert info.value.summary["streams_copied"] == 0


def test_non_retryable_error_fails_at_once_with_stream_name(logs):
    t = ti()
    seed(logs, SRC_GROUP, name(t, 1), events(5))
    inject(logs, "PutLogEvents", "AccessDeniedException", 1)
    sleeps = []
    with pytest.raises(tl.TaskLogCopyError, match="AccessDeniedException") as info:
        copy(logs, [t], sleep=sleeps.append)
    assert info.value.stream == name(t, 1) and name(t, 1) in str(info.value)
    assert sleeps == []


@pytest.mark.parametrize("applied", [False, True], ids=["lost-before-send", "applied-then-timeout"])
def test_write_with_unknown_outcome_is_not_retried_then_resumed(logs, applied):
    t = ti()
    src = events(10_050)  # two PutLogEvents batches
    seed(logs, SRC_GROUP, name(t, 1), src)
    state = {"left": 1}

    def timeout(**_):
        if state["left"]:
            state["left"] -= 1
            raise ReadTimeoutError(endpoint_url="https://logs")

    # "after-call" fires once CloudWatch has stored the batch: the caller never hears so
    logs.meta.events.register(f"{'after' if applied else 'before'}-call.cloudwatch-logs.PutLogEvents", timeout)
    with pytest.raises(tl.TaskLogCopyError, match="ReadTimeoutError") as info:
        copy(logs, [t])
    assert len(read_all(logs, DST_GROUP, name(t, 1))) == (10_000 if applied else 0)
    assert info.value.summary["events_copied"] == 0  # an unconfirmed batch is not counted
    # the next run resumes from what the target holds; nothing is duplicated
    summary = copy(logs, [t])
    assert read_all(logs, DST_GROUP, name(t, 1)) == [(e["timestamp"], e["message"]) for e in src]
    assert summary["streams_resumed"] + summary["streams_copied"] == 1


def test_missing_log_group_is_fatal_and_named(logs):
    with pytest.raises(tl.TaskLogCopyError, match="airflow-nowhere-Task"):
        tl.copy_task_logs(
            logs,
            source_env="nowhere",
            target_env=DST,
            source_version="2.10.3",
            target_version="2.11.0",
            task_instances=[],
        )


@pytest.mark.parametrize(
    "kw,needle",
    [
        ({"source_env": "1bad"}, "source_env='1bad'"),
        ({"target_env": SRC}, "both 'blue'"),
        ({"source_version": "2.1.4"}, "source_version: task-log copy does not support"),
        ({"target_version": "x"}, "target_version"),
        ({"task_instances": {"dag_id": "d"}}, "iterable of dicts"),
        ({"progress_every": 0}, "progress_every"),
    ],
)
def test_bad_arguments_are_refused_before_any_call(logs, kw, needle):
    args = {
        "source_env": SRC,
        "target_env": DST,
        "source_version": "2.10.3",
        "target_version": "2.11.0",
        "task_instances": [],
        **kw,
    }
    with pytest.raises(ValueError, match=needle):
        tl.copy_task_logs(logs, **args)
    assert logs.checker.calls == {}


def test_progress_every_n_streams_and_no_event_content_anywhere(logs, caplog):
    t = ti(tries=7)
    for a in range(1, 8):
        seed(logs, SRC_GROUP, name(t, a), [{"timestamp": now_ms() - 1000, "message": SECRET}])
    seen = []
    caplog.set_level(logging.DEBUG, logger="mwaa_migration.task_logs")  # ours, not botocore's
    summary = copy(logs, [t], progress=seen.append, progress_every=3)
    assert [p["streams_done"] for p in seen] == [3, 6, 7]
    assert [p["finished"] for p in seen] == [False, False, True]
    assert seen[-1]["streams_copied"] == 7
    assert "task logs finished: 7 streams done" in caplog.text  # our log was captured
    for text in (caplog.text, json.dumps(summary), json.dumps(seen)):
        assert SECRET not in text


# -------------------------------------------------------- Stubber: the real model


def test_every_request_validates_against_the_logs_service_model():
    client = botocore.session.get_session().create_client(
        "logs", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    t = ti(run="manual__2026-11-20T10:00:00+00:00", map_index=2, tries=2)
    prefix = "dag_id=etl/run_id=manual__2026-11-20T10_00_00+00_00/task_id=load/map_index=2/attempt="
    s1, s2 = prefix + "1.log", prefix + "2.log"
    ts = now_ms() - 60_000
    ev = [{"timestamp": ts + i, "message": f"m{i}", "ingestionTime": ts + i} for i in range(3)]
    put = [{"timestamp": e["timestamp"], "message": e["message"]} for e in ev]
    with Stubber(client) as stub:
        for group in (SRC_GROUP, DST_GROUP):
            stub.add_response(
                "describe_log_groups", {"logGroups": [{"logGroupName": group}]}, {"logGroupNamePrefix": group}
            )
        stub.add_response(
            "describe_log_streams",
            {"logStreams": [{"logStreamName": s1}], "nextToken": "p2"},
            {"logGroupName": SRC_GROUP, "logStreamNamePrefix": prefix},
        )
        stub.add_response(
            "describe_log_streams",
            {"logStreams": [{"logStreamName": s2}]},
            {"logGroupName": SRC_GROUP, "logStreamNamePrefix": prefix, "nextToken": "p2"},
        )
        # attempt 1: new target stream, two event pages then the repeated token
        stub.add_response("create_log_stream", {}, {"logGroupName": DST_GROUP, "logStreamName": s1})
        read = {"logGroupName": SRC_GROUP, "logStreamName": s1, "startFromHead": True}
        stub.add_response(
            "get_log_events", {"events": ev[:2], "nextForwardToken": "f1", "nextBackwardToken": "b1"}, read
        )
        stub.add_response(
            "get_log_events",
            {"events": ev[2:], "nextForwardToken": "f2", "nextBackwardToken": "b2"},
            {**read, "nextToken": "f1"},
        )
        stub.add_response(
            "get_log_events",
            {"events": [], "nextForwardToken": "f2", "nextBackwardToken": "b3"},
            {**read, "nextToken": "f2"},
        )
        stub.add_response(
            "put_log_events",
            {"nextSequenceToken": "1"},
            {"logGroupName": DST_GROUP, "logStreamName": s1, "logEvents": put},
        )
        # attempt 2: the target exists; its tail equals the source's, so it is skipped
        stub.add_client_error(
            "create_log_stream",
            "ResourceAlreadyExistsException",
            "exists",
            400,
            expected_params={"logGroupName": DST_GROUP, "logStreamName": s1[:-5] + "2.log"},
        )
        for group in (DST_GROUP, SRC_GROUP):
            stub.add_response(
                "get_log_events",
                {"events": ev[2:], "nextForwardToken": "t1", "nextBackwardToken": "t0"},
                {"logGroupName": group, "logStreamName": s2, "startFromHead": False, "limit": 1},
            )
            at = {"logGroupName": group, "logStreamName": s2, "startFromHead": True, "startTime": ev[2]["timestamp"]}
            stub.add_response(
                "get_log_events", {"events": ev[2:], "nextForwardToken": "a1", "nextBackwardToken": "a0"}, at
            )
            stub.add_response(
                "get_log_events",
                {"events": [], "nextForwardToken": "a1", "nextBackwardToken": "a0"},
                {**at, "nextToken": "a1"},
            )
        summary = tl.copy_task_logs(
            client,
            source_env=SRC,
            target_env=DST,
            source_version="2.9.2",
            target_version="3.0.6",
            task_instances=[t],
            sleep=lambda s: None,
        )
        stub.assert_no_pending_responses()
    assert summary["streams_copied"] == 1 and summary["streams_skipped"] == 1
    assert summary["events_copied"] == 3
