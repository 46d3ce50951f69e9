"""Copy Airflow task logs from one MWAA environment's CloudWatch group to another's.

``db_import`` calls :func:`copy_task_logs` with the task instances it chose (states and
days already filtered). For every try of every task instance the source stream in
``airflow-{source_env}-Task`` is copied, event by event and in order, into
``airflow-{target_env}-Task`` under the name the *target* Airflow version reads.

What the public scripts got wrong and this module does not:
- streams are found per task instance with DescribeLogStreams paged to the end;
- every GetLogEvents page is read (forward token until it repeats), never only 1 MB;
- mapped task instances get their ``map_index=N/`` segment;
- throttling is retried with exponential backoff and full jitter, a bounded number of times;
- a second run copies nothing again, and a half-written target stream is completed
  without duplicating an event (see :func:`skip_already_written`).

Layout: pure planning (naming table, validation, batching, resume filter, backoff) first;
the thin CloudWatch Logs I/O (:class:`LogsApi`) and the driver at the end. Only the
standard library and botocore are used: this runs inside MWAA images.

Event contents are never logged, returned or put in an error message: only stream names
and counts are.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------
# Stream naming per Airflow version: the one table.
#
# A CloudWatch task-log stream is the rendered ``[logging] log_filename_template`` with
# every ":" replaced by "_" (the amazon provider's CloudwatchTaskHandler._render_filename
# in Airflow 2, CloudWatchRemoteLogIO in Airflow 3: ":" is not allowed in stream names).
# Defaults, from Airflow's config.yml and the log_template rows ``airflow db migrate``
# seeds:
#   2.0 - 2.2  {{ ti.dag_id }}/{{ ti.task_id }}/{{ ts }}/{{ try_number }}.log
#   2.3 - 2.11 dag_id={{ ti.dag_id }}/run_id={{ ti.run_id }}/task_id={{ ti.task_id }}/
#              {% if ti.map_index >= 0 %}map_index={{ ti.map_index }}/{% endif %}
#              attempt={{ try_number }}.log
#   3.x        the same, with attempt={{ try_number|default(ti.try_number) }}.log
# MWAA does not change the template. Rows are ordered by "since"; a version uses the last
# row whose "since" is <= it. "parts" are rendered with str.format; "mapped" only when
# map_index >= 0.
# --------------------------------------------------------------------------------------
STREAM_NAMING: tuple[dict, ...] = (
    {
        "since": (1, 10, 0),
        "family": "airflow-1.10-2.2",
        "parts": None,
        "why": "streams are named by the logical date ({dag_id}/{task_id}/{ts}/{try}.log), "
        "which task-instance rows do not carry; MWAA sources this old are not supported",
    },
    {
        "since": (2, 3, 0),
        "family": "airflow-2.3+",
        "parts": {
            "ti": "dag_id={dag_id}/run_id={run_id}/task_id={task_id}/",
            "mapped": "map_index={map_index}/",
            "attempt": "attempt={try_number}.log",
        },
        "replace": ((":", "_"),),
    },
    {
        "since": (3, 0, 0),
        "family": "airflow-3",
        "parts": {
            "ti": "dag_id={dag_id}/run_id={run_id}/task_id={task_id}/",
            "mapped": "map_index={map_index}/",
            "attempt": "attempt={try_number}.log",
        },
        "replace": ((":", "_"),),
    },
)

# CloudWatch Logs limits, from the botocore service model (logs 2014-03-28) shipped with
# boto3 1.44: logStreamName 1..512 chars matching [^:*]*; PutLogEvents: 1..10,000 events,
# at most 1,048,576 bytes counted as UTF-8 message bytes + 26 per event, events in
# chronological order, at most 24 hours between the first and last event of a batch.
# Events older than 14 days (or the group's retention) are refused per event and reported
# in rejectedLogEventsInfo. GetLogEvents returns up to 1 MB / 10,000 events per page.
STREAM_NAME_MAX = 512
STREAM_NAME_FORBIDDEN = ":*"
PUT_MAX_EVENTS = 10_000
PUT_MAX_BYTES = 1_048_576
PUT_EVENT_OVERHEAD = 26
PUT_MAX_SPAN_MS = 24 * 60 * 60 * 1000

# Error codes that mean "refused, nothing done: try again later" (throttling and
# transient service errors). botocore's own retry list for throttling plus the Logs
# model's ServiceUnavailableException / InternalServerException.
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "ServiceUnavailableException",
        "ServiceUnavailable",
        "InternalServerException",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
# Writes are not retried after these: the request may have reached the service, and a
# blind retry could duplicate a batch (PutLogEvents ignores sequence tokens now). The
# stream fails; the next run resumes it from what CloudWatch really holds.
AMBIGUOUS_WRITE_ERRORS = (ReadTimeoutError, ConnectionClosedError)

MWAA_NAME = re.compile(r"^[a-zA-Z][0-9a-zA-Z\-_]{0,79}$")
VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")
LIST_LIMIT = 100  # entries kept in the summary's "missing" and "errors" lists


class TaskLogCopyError(RuntimeError):
    """The copy stopped. The message names the stream; ``summary`` holds what was done."""

    def __init__(self, message: str, *, stream: str | None = None, summary: dict | None = None):
        super().__init__(message)
        self.stream = stream
        self.summary = summary


class TargetNotAPrefixError(ValueError):
    """The target stream holds events the source stream does not (at its tail)."""


# ------------------------------------------------------------------------ pure planning


def parse_version(version: str) -> tuple[int, int, int]:
    """``"2.10.3"`` -> (2, 10, 3); suffixes such as ``+astro.1`` or ``rc1`` are ignored."""
    m = VERSION.match(str(version).strip())
    if not m:
        raise ValueError(f"Airflow version {version!r} is not a version number like 2.10.3")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def naming_for(version: str) -> dict:
    """The STREAM_NAMING row that applies to an Airflow version (refused when unsupported)."""
    v = parse_version(version)
    rows = [r for r in STREAM_NAMING if r["since"] <= v]
    if not rows:
        raise ValueError(
            f"Airflow version {version!r} is older than any known task-log naming "
            f"(oldest: {'.'.join(map(str, STREAM_NAMING[0]['since']))})"
        )
    row = rows[-1]
    if row["parts"] is None:
        supported = next(r for r in STREAM_NAMING if r["parts"] is not None)
        raise ValueError(
            f"task-log copy does not support Airflow {version}: {row['why']}; "
            f"supported from {'.'.join(map(str, supported['since']))}"
        )
    return row


def log_group_name(environment: str, *, field_name: str = "environment") -> str:
    if not isinstance(environment, str) or not MWAA_NAME.match(environment):
        raise ValueError(
            f"{field_name}={environment!r} is not an MWAA environment name "
            f"(1-80 characters, a letter first, then letters, digits, '-' or '_')"
        )
    return f"airflow-{environment}-Task"


def _sanitise(naming: dict, text: str) -> str:
    for old, new in naming["replace"]:
        text = text.replace(old, new)
    return text


def ti_stream_prefix(naming: dict, ti: dict) -> str:
    """The name prefix shared by every try's stream of one task instance (for listing)."""
    parts = naming["parts"]
    text = parts["ti"].format(**ti)
    if ti["map_index"] >= 0:
        text += parts["mapped"].format(**ti)
    text += parts["attempt"].split("{try_number}")[0]
    return _sanitise(naming, text)


def stream_name(naming: dict, ti: dict, try_number: int) -> str:
    """The CloudWatch stream name of one try, as Airflow of that naming writes it."""
    parts = naming["parts"]
    text = parts["ti"].format(**ti)
    if ti["map_index"] >= 0:
        text += parts["mapped"].format(**ti)
    text += parts["attempt"].format(try_number=try_number)
    return _sanitise(naming, text)


def stream_name_problem(name: str) -> str | None:
    """Why CloudWatch could not hold a stream of this name, or None."""
    if len(name) > STREAM_NAME_MAX:
        return f"stream name is {len(name)} characters; CloudWatch allows {STREAM_NAME_MAX}"
    bad = sorted({c for c in name if c in STREAM_NAME_FORBIDDEN})
    if bad:
        return f"stream name contains {''.join(bad)!r}, which CloudWatch does not allow"
    return None


_TI_STR_FIELDS = ("dag_id", "task_id", "run_id")


def validate_task_instance(ti: Any, index: int) -> dict:
    """A clean copy of one task-instance dict, or a ValueError naming field and value."""
    where = f"task_instances[{index}]"
    if not isinstance(ti, dict):
        raise ValueError(f"{where} = {ti!r}: must be a dict with dag_id, task_id, run_id, map_index, try_number")
    clean: dict[str, Any] = {}
    for key in _TI_STR_FIELDS:
        value = ti.get(key)
        if not isinstance(value, str) or not value:
            raise ValueError(f"{where}.{key} = {value!r}: must be a non-empty string")
        clean[key] = value
    for key, lowest in (("map_index", -1), ("try_number", 0)):
        value = ti.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            raise ValueError(f"{where}.{key} = {value!r}: must be an integer >= {lowest}")
        clean[key] = value
    return clean


def plan_task_instance(ti: dict, source_naming: dict, target_naming: dict) -> dict:
    """Which streams one (validated) task instance has in the source and gets in the target.

    ``tries`` lists every try 1..try_number with its source and target stream names;
    ``invalid`` lists tries whose names CloudWatch cannot hold (nothing can exist there).
    """
    tries: list[dict] = []
    invalid: list[dict] = []
    plan = {"source_prefix": ti_stream_prefix(source_naming, ti), "tries": tries, "invalid": invalid}
    for n in range(1, ti["try_number"] + 1):
        entry: dict[str, Any] = {
            "try_number": n,
            "source": stream_name(source_naming, ti, n),
            "target": stream_name(target_naming, ti, n),
        }
        problem = stream_name_problem(entry["source"]) or stream_name_problem(entry["target"])
        if problem:
            invalid.append({**entry, "reason": problem})
        else:
            tries.append(entry)
    return plan


def event_size(event: dict) -> int:
    return len(event["message"].encode("utf-8")) + PUT_EVENT_OVERHEAD


def plan_batches(
    events: Iterable[dict],
    *,
    max_events: int = PUT_MAX_EVENTS,
    max_bytes: int = PUT_MAX_BYTES,
    max_span_ms: int = PUT_MAX_SPAN_MS,
) -> Iterator[list[dict]]:
    """Group events into PutLogEvents batches that respect every limit.

    A batch is cut before it would exceed ``max_events`` or ``max_bytes``, when the next
    event is ``max_span_ms`` or more after the batch's first event, and when the next
    event is older than the previous one (a batch must be chronological; order across
    batches is kept as given). Holds one batch in memory at a time.
    """
    batch: list[dict] = []
    size = 0
    for ev in events:
        ev_size = event_size(ev)
        if ev_size > max_bytes:
            raise ValueError(f"an event of {ev_size} bytes (with overhead) exceeds the {max_bytes}-byte batch limit")
        if batch and (
            len(batch) >= max_events
            or size + ev_size > max_bytes
            or ev["timestamp"] - batch[0]["timestamp"] >= max_span_ms
            or ev["timestamp"] < batch[-1]["timestamp"]
        ):
            yield batch
            batch, size = [], 0
        batch.append({"timestamp": ev["timestamp"], "message": ev["message"]})
        size += ev_size
    if batch:
        yield batch


def message_digest(message: str) -> bytes:
    return hashlib.sha256(message.encode("utf-8")).digest()


@dataclass(frozen=True)
class Tail:
    """The newest timestamp of a stream and the digests of all events at that timestamp."""

    timestamp: int
    digests: tuple  # sorted message digests (a multiset)

    @classmethod
    def of(cls, timestamp: int, messages: Iterable[str]) -> Tail:
        return cls(timestamp, tuple(sorted(message_digest(m) for m in messages)))


def skip_already_written(events: Iterable[dict], tail: Tail | None, counts: dict | None = None) -> Iterator[dict]:
    """Drop the source events a half-written target already holds; yield the rest.

    Our writer sends a source stream's events in order, so a stream it left half-written
    holds a prefix of the source: everything older than its newest timestamp T, and some
    of the events at T. Source events before T are therefore present; at T, events whose
    message matches one of the target's events at T (counted as a multiset) are present;
    everything else is yielded. ``counts["present"]`` is incremented per dropped event.
    Raises TargetNotAPrefixError when the target holds events at T the source lacks, or
    when the source is not chronological (then no safe resume point exists).
    """
    if tail is None:
        yield from events
        return
    remaining = Counter(tail.digests)
    previous = None
    for ev in events:
        ts = ev["timestamp"]
        if previous is not None and ts < previous:
            raise TargetNotAPrefixError("source events are not in chronological order")
        previous = ts
        if ts < tail.timestamp:
            present = True
        elif ts == tail.timestamp:
            digest = message_digest(ev["message"])
            present = remaining[digest] > 0
            if present:
                remaining[digest] -= 1
        else:
            if +remaining:
                raise TargetNotAPrefixError(
                    f"target holds {sum(remaining.values())} event(s) at its newest timestamp that the source does not"
                )
            present = False
        if present:
            if counts is not None:
                counts["present"] = counts.get("present", 0) + 1
        else:
            yield ev
    if +remaining:
        raise TargetNotAPrefixError(
            f"target holds {sum(remaining.values())} event(s) at its newest timestamp that the source does not"
        )


def rejected_count(batch_len: int, info: dict | None) -> int:
    """How many events of a batch PutLogEvents refused (rejectedLogEventsInfo)."""
    if not info:
        return 0
    ends = [info[k] for k in ("tooOldLogEventEndIndex", "expiredLogEventEndIndex") if k in info]
    old = max(ends) + 1 if ends else 0
    new = batch_len - info["tooNewLogEventStartIndex"] if "tooNewLogEventStartIndex" in info else 0
    return min(batch_len, old + new)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n sleeps U(0, min(cap, base * 2**(n-1)))."""

    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 20.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, self.ceiling(attempt))

    def ceiling(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))


# --------------------------------------------------------------------------- thin I/O


class _StreamNotFound(Exception):
    pass


class _ApiFailure(Exception):
    """A call failed for good; ``error`` is the botocore exception."""

    def __init__(self, operation: str, error: Exception, attempts: int):
        super().__init__(operation)
        self.operation, self.error, self.attempts = operation, error, attempts

    def describe(self) -> str:
        err = self.error
        if isinstance(err, ClientError):
            e = err.response.get("Error", {})
            what = f"{e.get('Code', 'error')}: {e.get('Message', '')}".rstrip(": ")
        else:
            what = f"{type(err).__name__}: {err}"
        tries = f" (gave up after {self.attempts} attempts)" if self.attempts > 1 else ""
        return f"{self.operation} failed{tries}: {what}"


def _error_code(err: Exception) -> str | None:
    return err.response.get("Error", {}).get("Code") if isinstance(err, ClientError) else None


class LogsApi:
    """The CloudWatch Logs calls this module makes, each retried on throttling."""

    def __init__(self, client, *, retry: RetryPolicy, sleep: Callable[[float], Any], rng: random.Random):
        self.client, self.retry, self.sleep, self.rng = client, retry, sleep, rng
        self.calls: Counter = Counter()
        self.retries = 0

    def call(self, operation: str, *, write: bool = False, **params: Any) -> dict:
        method = getattr(self.client, re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower())
        attempt = 1
        while True:
            self.calls[operation] += 1
            try:
                return method(**params)
            except ClientError as err:
                retryable = _error_code(err) in RETRYABLE_CODES
                failure = err
            except BotoConnectionError as err:  # never connected: nothing was sent
                retryable, failure = True, err
            except AMBIGUOUS_WRITE_ERRORS as err:
                retryable, failure = not write, err
            if not retryable or attempt >= self.retry.max_attempts:
                raise _ApiFailure(operation, failure, attempt) from failure
            delay = self.retry.delay(attempt, self.rng)
            log.info(
                "%s throttled or unavailable (%s); retry %d/%d in %.2fs",
                operation,
                _error_code(failure) or type(failure).__name__,
                attempt,
                self.retry.max_attempts - 1,
                delay,
            )
            self.retries += 1
            self.sleep(delay)
            attempt += 1

    def log_group_exists(self, group: str) -> bool:
        token = None
        while True:
            params: dict[str, Any] = {"logGroupNamePrefix": group}
            if token:
                params["nextToken"] = token
            page = self.call("DescribeLogGroups", **params)
            if any(g.get("logGroupName") == group for g in page.get("logGroups", [])):
                return True
            new = page.get("nextToken")
            if not new or new == token:
                return False
            token = new

    def list_streams(self, group: str, prefix: str) -> Iterator[str]:
        """Every stream name starting with prefix: DescribeLogStreams paged to the end."""
        token = None
        while True:
            params: dict[str, Any] = {"logGroupName": group, "logStreamNamePrefix": prefix}
            if token:
                params["nextToken"] = token
            page = self.call("DescribeLogStreams", **params)
            for s in page.get("logStreams", []):
                yield s["logStreamName"]
            new = page.get("nextToken")
            if not new or new == token:
                return
            token = new

    def _get_events(self, group: str, stream: str, **params) -> dict:
        try:
            return self.call("GetLogEvents", logGroupName=group, logStreamName=stream, **params)
        except _ApiFailure as failure:
            if _error_code(failure.error) == "ResourceNotFoundException":
                raise _StreamNotFound(stream) from failure.error
            raise

    def events(self, group: str, stream: str, start_time: int | None = None) -> Iterator[dict]:
        """Every event from the head: follow nextForwardToken until it repeats.

        Pages may be empty before the end (CloudWatch says so); only a repeated token ends
        the stream, never an empty page or a 1 MB page.
        """
        token = None
        while True:
            params: dict = {"startFromHead": True}
            if start_time is not None:
                params["startTime"] = start_time
            if token:
                params["nextToken"] = token
            page = self._get_events(group, stream, **params)
            yield from page.get("events", [])
            new = page.get("nextForwardToken")
            if not new or new == token:
                return
            token = new

    def tail(self, group: str, stream: str) -> Tail | None:
        """The stream's newest timestamp and its events there; None for an empty stream."""
        token = None
        newest = None
        while newest is None:
            params: dict = {"startFromHead": False, "limit": 1}
            if token:
                params["nextToken"] = token
            page = self._get_events(group, stream, **params)
            evs = page.get("events", [])
            if evs:
                newest = max(e["timestamp"] for e in evs)
                break
            new = page.get("nextBackwardToken")
            if not new or new == token:
                return None
            token = new
        return Tail.of(newest, (e["message"] for e in self.events(group, stream, newest) if e["timestamp"] == newest))

    def create_stream(self, group: str, stream: str) -> bool:
        """Create the stream; False when it already exists."""
        try:
            self.call("CreateLogStream", logGroupName=group, logStreamName=stream)
            return True
        except _ApiFailure as failure:
            if _error_code(failure.error) == "ResourceAlreadyExistsException":
                return False
            raise

    def put(self, group: str, stream: str, batch: list[dict]) -> dict:
        return self.call("PutLogEvents", write=True, logGroupName=group, logStreamName=stream, logEvents=batch)


# ------------------------------------------------------------------------------ driver


@dataclass
class _Run:
    source_group: str
    target_group: str
    summary: dict = field(default_factory=dict)

    def note(self, key: str, entry: Any) -> None:
        items = self.summary[key]
        if len(items) < LIST_LIMIT:
            items.append(entry)
        else:
            self.summary[f"{key}_truncated"] += 1


def _new_summary(source_group: str, target_group: str, source_naming: dict, target_naming: dict) -> dict:
    return {
        "source_log_group": source_group,
        "target_log_group": target_group,
        "source_naming": source_naming["family"],
        "target_naming": target_naming["family"],
        "task_instances": 0,
        "streams_planned": 0,
        "streams_copied": 0,
        "streams_resumed": 0,
        "streams_skipped": 0,
        "streams_missing": 0,
        "events_copied": 0,
        "events_already_present": 0,
        "events_rejected": 0,
        "api_retries": 0,
        "api_calls": {},
        "missing": [],
        "missing_truncated": 0,
        "errors": [],
        "errors_truncated": 0,
    }


def _copy_stream(api: LogsApi, run: _Run, source: str, target: str) -> str:
    """Copy one stream; returns "copied", "resumed", "skipped" or "missing"."""
    s = run.summary
    created = api.create_stream(run.target_group, target)
    target_tail = None if created else api.tail(run.target_group, target)
    if target_tail is not None:
        source_tail = api.tail(run.source_group, source)
        if source_tail == target_tail:
            return "skipped"
        if source_tail is None or source_tail.timestamp < target_tail.timestamp:
            raise TargetNotAPrefixError("target holds events newer than the source's newest")
    counts: dict = {}
    events = skip_already_written(api.events(run.source_group, source), target_tail, counts)
    written = rejected = 0
    try:
        for batch in plan_batches(events):
            response = api.put(run.target_group, target, batch)
            refused = rejected_count(len(batch), response.get("rejectedLogEventsInfo"))
            written += len(batch) - refused
            rejected += refused
            s["events_copied"] += len(batch) - refused  # kept current for a failure's summary
            s["events_rejected"] += refused
    finally:
        s["events_already_present"] += counts.get("present", 0)
    if rejected:
        run.note(
            "errors",
            {
                "stream": target,
                "reason": (
                    f"CloudWatch refused {rejected} event(s) older than 14 days or the group's "
                    f"retention (or over 2 hours in the future); they are not in the target"
                ),
            },
        )
    if created:
        return "copied"
    # an existing target (empty, or holding a prefix) that needed events is a resume
    return "resumed" if written or rejected else "skipped"


def _check_args(source_env, target_env, source_version, target_version, task_instances, progress_every):
    """Validate the arguments (before any AWS call); return the groups and namings."""
    source_group = log_group_name(source_env, field_name="source_env")
    target_group = log_group_name(target_env, field_name="target_env")
    if source_group == target_group:
        raise ValueError(f"source_env and target_env are both {source_env!r}: nothing to copy")
    namings = []
    for arg, version in (("source_version", source_version), ("target_version", target_version)):
        try:
            namings.append(naming_for(version))
        except ValueError as err:
            raise ValueError(f"{arg}: {err}") from None
    if isinstance(progress_every, bool) or not isinstance(progress_every, int) or progress_every < 1:
        raise ValueError(f"progress_every = {progress_every!r}: must be an integer >= 1")
    if isinstance(task_instances, (str, bytes, dict)):
        raise ValueError("task_instances must be an iterable of dicts, not a single value")
    return source_group, target_group, namings[0], namings[1]


class _Copier:
    """One copy run: the API wrapper, the summary, progress reporting and failures."""

    def __init__(self, api, run, progress, progress_every):
        self.api, self.run, self.s = api, run, run.summary
        self.progress, self.every, self.done = progress, progress_every, 0

    def report(self, final: bool = False) -> None:
        s = self.s
        s["api_retries"], s["api_calls"] = self.api.retries, dict(self.api.calls)
        log.info(
            "task logs %s: %d streams done (copied %d, resumed %d, skipped %d, missing %d), %d events copied",
            "finished" if final else "progress", self.done, s["streams_copied"], s["streams_resumed"],
            s["streams_skipped"], s["streams_missing"], s["events_copied"],
        )  # fmt: skip
        if self.progress is not None:
            self.progress(
                {
                    **s,
                    "missing": list(s["missing"]),
                    "errors": list(s["errors"]),
                    "streams_done": self.done,
                    "finished": final,
                }  # fmt: skip
            )

    def fail(self, message: str, stream: str | None) -> TaskLogCopyError:
        self.s["api_retries"], self.s["api_calls"] = self.api.retries, dict(self.api.calls)
        return TaskLogCopyError(message, stream=stream, summary=self.s)

    def check_groups(self) -> None:
        for group, role in ((self.run.source_group, "source"), (self.run.target_group, "target")):
            try:
                exists = self.api.log_group_exists(group)
            except _ApiFailure as failure:
                raise self.fail(
                    f"cannot check the {role} log group {group!r}: {failure.describe()}", None
                ) from failure.error
            if not exists:
                raise TaskLogCopyError(
                    f"{role} log group {group!r} does not exist; check {role}_env and that task logging is "
                    "enabled there",
                    stream=None,
                    summary=self.s,
                )

    def copy_plan(self, plan: dict) -> None:
        """The streams of one task instance's tries."""
        source_group = self.run.source_group
        try:
            existing = set(self.api.list_streams(source_group, plan["source_prefix"]))
        except _ApiFailure as failure:
            raise self.fail(
                f"listing source streams {source_group}/{plan['source_prefix']}* failed: {failure.describe()}",
                plan["source_prefix"],
            ) from failure.error
        for entry in plan["tries"]:
            self.s["streams_planned"] += 1
            outcome = self.copy_entry(entry) if entry["source"] in existing else "missing"
            if outcome == "missing":
                self.s["streams_missing"] += 1
                if self.s["streams_missing"] <= LIST_LIMIT:
                    log.warning("no source stream %s/%s", source_group, entry["source"])
                self.run.note("missing", entry["source"])
            else:
                self.s[f"streams_{outcome}"] += 1
            self.done += 1
            if self.done % self.every == 0:
                self.report()

    def copy_entry(self, entry: dict) -> str:
        source, target = entry["source"], entry["target"]
        target_group = self.run.target_group
        route = f"{self.run.source_group}/{source} -> {target_group}/{target}"
        try:
            return _copy_stream(self.api, self.run, source, target)
        except _StreamNotFound as gone:
            if str(gone) != source:
                raise self.fail(
                    f"copying {route} stopped: the target stream vanished while being read", target
                ) from gone
            return "missing"  # expired between listing and reading
        except _ApiFailure as failure:
            raise self.fail(
                f"copying {route} stopped: {failure.describe()}; streams already written stay, a new run resumes",
                target,
            ) from failure.error
        except TargetNotAPrefixError as err:
            raise self.fail(
                f"target stream {target_group}/{target} cannot be completed safely: {err}; nothing was "
                "duplicated. Inspect or delete the target stream and run again",
                target,
            ) from err
        except ValueError as err:
            raise self.fail(f"copying {route} stopped: {err}", target) from err


def copy_task_logs(
    logs_client,
    *,
    source_env: str,
    target_env: str,
    source_version: str,
    target_version: str,
    task_instances: Iterable[dict],
    progress: Callable[[dict], Any] | None = None,
    progress_every: int = 25,
    retry: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], Any] = time.sleep,
    rng: random.Random | None = None,
) -> dict:
    """Copy the CloudWatch task logs of ``task_instances`` from the source to the target.

    ``task_instances``: dicts with dag_id, task_id, run_id, map_index, try_number (state,
    end_date and other keys are accepted and ignored), already filtered by the caller.
    Streams are read as ``source_version`` names them and written as ``target_version``
    names them. Returns a JSON-able summary; ``progress(summary_so_far)`` is called every
    ``progress_every`` streams and once at the end. Raises ValueError on bad input and
    TaskLogCopyError (naming the stream, carrying ``.summary``) when a call fails for good.
    """
    source_group, target_group, source_naming, target_naming = _check_args(
        source_env, target_env, source_version, target_version, task_instances, progress_every
    )
    api = LogsApi(logs_client, retry=retry, sleep=sleep, rng=rng or random.Random())
    run = _Run(source_group, target_group, _new_summary(source_group, target_group, source_naming, target_naming))
    copier = _Copier(api, run, progress, progress_every)
    copier.check_groups()
    log.info("copying task logs %s (%s) -> %s (%s)", source_group, source_naming["family"], target_group,
             target_naming["family"])  # fmt: skip
    seen: set = set()
    for index, raw in enumerate(task_instances):
        ti = validate_task_instance(raw, index)
        key = (ti["dag_id"], ti["run_id"], ti["task_id"], ti["map_index"])
        if key in seen:  # a second copy right away could not see the first (eventual reads)
            continue
        seen.add(key)
        run.summary["task_instances"] += 1
        plan = plan_task_instance(ti, source_naming, target_naming)
        for bad in plan["invalid"]:
            run.note("errors", {"stream": bad["source"], "reason": bad["reason"]})
        if plan["tries"]:
            copier.copy_plan(plan)
    copier.report(final=True)
    return run.summary
