"""Pure decisions of the DAG-run custom resource: plain dicts in, plain values out.

Nothing here calls AWS. ``handler`` feeds it the CloudFormation event and what Airflow
answered, and does what it says.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from mwaa_common import export_layout, names, versions

# Which step of the migration a resource runs, and the letter its run id ends in
# (contracts §4: mig-{short migration id}-{e|i|c}).
STEPS: dict[str, str] = {"export": "e", "import": "i", "cutover": "c"}

# Airflow role in the InvokeRestApi resource ARN: the least of MWAA's roles this runner is
# known to work with (read and unpause DAGs, create DAG runs, list task instances). Admin adds
# user and role management the runner never needs; it is refused.
AIRFLOW_ROLES: tuple[str, ...] = ("Op",)
DEFAULT_AIRFLOW_ROLE = "Op"

# the migration-id and environment-name rules (mwaa_common/names.py, written once)
MIGRATION_ID_RE, ENV_NAME_RE = names.MIGRATION_ID_RE, names.ENV_NAME_RE
# Airflow's DAG id rule (alphanumerics, dashes, dots, underscores; at most 250)
DAG_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,250}")
RERUN_TOKEN_MAX = 64

# Properties the resource accepts (ServiceToken is CloudFormation's own).
REQUIRED_PROPS = ("EnvironmentName", "AirflowVersion", "DagId", "MigrationId", "Step", "Conf")
OPTIONAL_PROPS = ("Role", "RerunToken", "CliTokenFallback")

# DAG run states (Airflow 2 and 3 share them).
RUN_DONE_OK = "success"
RUN_DONE_FAILED = "failed"
RUN_WAITING = ("queued", "running")
KNOWN_RUN_STATES = (RUN_DONE_OK, RUN_DONE_FAILED, *RUN_WAITING)

DATA_LIMIT = 4096  # CloudFormation's cap on a custom resource response
REASON_LIMIT = 3000  # keep a failure reason readable in the console and under the cap


class PropertyError(ValueError):
    """A resource property is missing or not allowed; the message names it."""


@dataclass(frozen=True)
class Props:
    environment_name: str
    airflow_version: str
    dag_id: str
    migration_id: str
    step: str
    conf: dict = field(hash=False)
    role: str = DEFAULT_AIRFLOW_ROLE
    rerun_token: str = ""
    cli_token_fallback: bool = False

    @property
    def run_id(self) -> str:
        return run_id(self.migration_id, self.step, self.rerun_token)

    @property
    def physical_id(self) -> str:
        return physical_id(self.environment_name, self.dag_id, self.run_id)


def run_id(migration_id: str, step: str, rerun_token: str = "") -> str:
    """The deterministic, short DAG run id of a migration step (contracts §4).

    ``mig-{short_id}-{e|i|c}``; a non-empty RerunToken appends
    ``-r{6 hex of its sha256}`` so a changed token names (and starts) a new run.
    At most 38 characters.
    """
    if step not in STEPS:
        raise PropertyError(f"Step={step!r} is not allowed; allowed: {', '.join(STEPS)}")
    rid = f"mig-{short_migration_id(migration_id)}-{STEPS[step]}"
    if rerun_token:
        rid += "-r" + hashlib.sha256(rerun_token.encode()).hexdigest()[:6]
    return rid


def short_migration_id(migration_id: str) -> str:
    """At most 24 characters, distinct for distinct ids.

    Ids that fit are kept as they are (readable in the Airflow UI); a longer one keeps its
    first 17 characters and adds 6 hex of its sha256, so two ids that share a long prefix
    (``...-attempt-1`` / ``...-attempt-2``) never name the same run.
    """
    if len(migration_id) <= 24:
        return migration_id
    return f"{migration_id[:17]}-{hashlib.sha256(migration_id.encode()).hexdigest()[:6]}"


def physical_id(environment_name: str, dag_id: str, run_id_: str) -> str:
    return f"{environment_name}/{dag_id}/{run_id_}"


def _text(raw: dict, key: str, pattern: re.Pattern, allowed: str) -> str:
    value = str(raw[key])
    if not pattern.fullmatch(value):
        raise PropertyError(f"{key}={value!r} is not allowed; allowed: {allowed}")
    return value


def _version(raw: dict) -> str:
    version = str(raw["AirflowVersion"])
    try:
        row = versions.info(version)
    except versions.VersionError as exc:
        raise PropertyError(f"AirflowVersion: {exc}") from None
    if row["rest_api"] is None:
        raise PropertyError(
            f"AirflowVersion={version!r} has no Airflow REST API on MWAA; the metadata DAGs cannot be triggered there"
        )
    return version


def _choice(raw: dict, key: str, allowed: tuple[str, ...], default: str) -> str:
    value = str(raw.get(key) or default)
    if value not in allowed:
        raise PropertyError(f"{key}={value!r} is not allowed; allowed: {', '.join(allowed)}")
    return value


def parse_props(raw: dict) -> Props:
    """Validate ResourceProperties (CloudFormation sends every scalar as a string)."""
    raw = {k: v for k, v in (raw or {}).items() if k != "ServiceToken"}
    unknown = sorted(set(raw) - set(REQUIRED_PROPS) - set(OPTIONAL_PROPS))
    if unknown:
        raise PropertyError(f"unknown properties {unknown}; allowed: {', '.join(REQUIRED_PROPS + OPTIONAL_PROPS)}")
    for key in REQUIRED_PROPS:
        if raw.get(key) in (None, ""):
            raise PropertyError(f"property {key} is required")
    env = str(raw["EnvironmentName"])
    if not ENV_NAME_RE.fullmatch(env):
        raise PropertyError(f"EnvironmentName={env!r} is not an MWAA name (1-80 chars, [a-zA-Z][0-9a-zA-Z-_]*)")
    version = _version(raw)
    dag_id = str(raw["DagId"])
    if not DAG_ID_RE.fullmatch(dag_id):
        raise PropertyError(f"DagId={dag_id!r} is not an Airflow DAG id ([A-Za-z0-9_.-], 1-250 chars)")
    mid = _text(raw, "MigrationId", MIGRATION_ID_RE, "[a-z0-9-]{1,40}")
    step = _choice(raw, "Step", tuple(STEPS), "")
    role = _choice(raw, "Role", AIRFLOW_ROLES, DEFAULT_AIRFLOW_ROLE)
    token = str(raw.get("RerunToken") or "")
    if len(token) > RERUN_TOKEN_MAX:
        raise PropertyError(f"RerunToken is {len(token)} characters; at most {RERUN_TOKEN_MAX}")
    fallback = _choice(raw, "CliTokenFallback", ("true", "false"), "false")
    conf = parse_conf(raw["Conf"], migration_id=mid, step=step)
    return Props(env, version, dag_id, mid, step, conf, role, token, fallback == "true")


def parse_conf(text, *, migration_id: str, step: str) -> dict:
    """The run conf (contracts §2) as a dict; ``migration_id`` is filled in or must match.

    Only what the runner relies on is checked here; the DAGs validate every key.
    """
    if isinstance(text, dict):
        conf = dict(text)
    else:
        try:
            conf = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise PropertyError(f"Conf is not valid JSON: {exc}") from None
    if not isinstance(conf, dict):
        raise PropertyError(f"Conf must be a JSON object, got {type(conf).__name__}")
    if conf.setdefault("migration_id", migration_id) != migration_id:
        raise PropertyError(f"Conf.migration_id={conf['migration_id']!r} differs from MigrationId={migration_id!r}")
    for key in ("bucket", "prefix"):
        if not isinstance(conf.get(key), str) or not conf[key]:
            raise PropertyError(f"Conf.{key} is required (a non-empty string)")
    if not conf["prefix"].endswith("/"):
        raise PropertyError(f"Conf.prefix={conf['prefix']!r} must end with '/'")
    cutover = conf.get("cutover", False)
    if (step == "cutover") != (cutover is True):
        raise PropertyError(f"Step={step!r} with Conf.cutover={cutover!r}: only the cutover step sets cutover=true")
    return conf


def report_location(props: Props) -> str:
    """Where the step leaves its result in S3 (contracts §3)."""
    base = f"s3://{props.conf['bucket']}/" + export_layout.export_base(
        props.conf["prefix"], props.migration_id, props.conf.get("rerun") or ""
    )
    return base + ("manifest.json" if props.step == "export" else "report.json")


# ---- what an event asks for ------------------------------------------------------------


def decide(event: dict, props: Props | None, *, stack_rolling_back: bool = False) -> dict:
    """``{"action": "run" | "none", "reason": str}`` for a CloudFormation request.

    - Create: run (an existing run with the same id is adopted, never re-triggered).
    - Update whose resource already stands for this run (same physical id): none. This
      covers the rollback Update after this resource failed (old and new swapped: the old
      properties map to the physical id the failure kept) and changes that do not change
      the run (e.g. a conf edit with the same migration id).
    - Update while the stack rolls back (another resource failed): none.
    - Update to a new run id (new migration id or RerunToken): run.
    - Delete: none (the DAG run and the exported data stay).
    """
    kind = event.get("RequestType")
    if kind == "Delete":
        return {"action": "none", "reason": "delete: the DAG run and its data are kept"}
    if kind == "Create":
        return {"action": "run", "reason": "create"}
    if kind == "Update":
        if props is None:
            raise PropertyError("an Update needs its resource properties")
        if event.get("PhysicalResourceId") == props.physical_id:
            return {"action": "none", "reason": f"update: resource already stands for run {props.run_id}"}
        if stack_rolling_back:
            return {"action": "none", "reason": "update during stack rollback: nothing is triggered"}
        return {"action": "run", "reason": "update: new run id"}
    raise PropertyError(f"RequestType={kind!r} is not Create, Update or Delete")


def classify(run: dict | None) -> str:
    """``wait`` | ``success`` | ``failed`` | ``unknown`` for a run as ``airflow_api`` normalizes it.

    No run yet, or a run without a state, waits; a state Airflow does not define (a newer or
    patched Airflow) is ``unknown``: the handler fails at once instead of waiting it out.
    """
    if run is None:
        return "wait"
    state = (run.get("state") or "").lower()
    if state == RUN_DONE_OK:
        return "success"
    if state == RUN_DONE_FAILED:
        return "failed"
    if not state or state in RUN_WAITING:
        return "wait"
    return "unknown"


def unknown_state_message(props: Props, state: str) -> str:
    return clip(
        f"DAG {props.dag_id} run {props.run_id} in MWAA environment {props.environment_name} is in "
        f"state {state!r}, which this runner does not know (known: {', '.join(KNOWN_RUN_STATES)}); "
        "it stops instead of waiting: check the run in the Airflow UI, then redeploy.",
        REASON_LIMIT,
    )


# ---- where a failure is and what to say ---------------------------------------------------


def log_location(environment_name: str, dag_id: str, run_id_: str, ti: dict) -> tuple[str, str]:
    """CloudWatch log group and stream of a task attempt on MWAA.

    MWAA's task log group is ``airflow-{env}-Task``; the stream is Airflow's default
    log_filename_template (2.x and 3.x): ``dag_id=/run_id=/task_id=/[map_index=/]attempt=N.log``.
    The REST API's ``try_number`` is the attempt that ran. Without it (CLI fallback) the
    stream prefix is returned.
    """
    group = f"airflow-{environment_name}-Task"
    stream = f"dag_id={dag_id}/run_id={run_id_}/task_id={ti['task_id']}/"
    map_index = ti.get("map_index")
    if isinstance(map_index, int) and map_index >= 0:
        stream += f"map_index={map_index}/"
    try_number = ti.get("try_number")
    if isinstance(try_number, int) and try_number > 0:
        stream += f"attempt={try_number}.log"
    return group, stream


def failed_tasks(tis: list[dict]) -> list[dict]:
    """Task instances in state failed, earliest end first (the root cause comes first)."""
    failed = [t for t in tis if (t.get("state") or "").lower() == "failed"]
    return sorted(failed, key=lambda t: (t.get("end_date") or "", t.get("task_id") or ""))


def failure_message(props: Props, tis: list[dict]) -> str:
    rid = props.run_id
    head = (
        f"DAG {props.dag_id} run {rid} in MWAA environment {props.environment_name} "
        f"failed (migration {props.migration_id}, step {props.step})."
    )
    failed = failed_tasks(tis)
    if failed:
        first = failed[0]
        group, stream = log_location(props.environment_name, props.dag_id, rid, first)
        tries = first.get("try_number")
        body = (
            f" Failed task: {first['task_id']}"
            + (f" (try {tries})" if isinstance(tries, int) and tries > 0 else "")
            + f". Log: CloudWatch log group {group}, stream {stream}"
            + ("" if stream.endswith(".log") else "attempt=<N>.log")
            + "."
        )
        others = [t["task_id"] for t in failed[1:6]]
        if others:
            body += f" Also failed: {', '.join(others)}."
    else:
        body = (
            f" No failed task instance was found; see the DAG run in the Airflow UI and the "
            f"log group airflow-{props.environment_name}-Task."
        )
    tail = (
        " The same MigrationId adopts this failed run again: fix the cause, then redeploy "
        "with a new RerunToken (or a new MigrationId) to start a new run."
    )
    return clip(head + body + tail, REASON_LIMIT)


def timeout_message(props: Props, state: str, waited_s: float) -> str:
    return clip(
        f"DAG {props.dag_id} run {props.run_id} in MWAA environment {props.environment_name} is "
        f"still {state or 'not started'} after {int(waited_s // 60)} min, the longest one "
        "deployment step may wait. The run goes on in Airflow. Redeploy with the same "
        "MigrationId to resume waiting on the same run (it is adopted, not triggered again).",
        REASON_LIMIT,
    )


def dag_missing_message(props: Props, waited_s: float) -> str:
    return (
        f"DAG {props.dag_id} is not known to MWAA environment {props.environment_name} "
        f"after {int(waited_s // 60)} min: check that the dags/ folder was published to the "
        "environment's DAG bucket and that the DAG has no import errors (Airflow UI, "
        f"log group airflow-{props.environment_name}-DAGProcessing). Redeploy to retry."
    )


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def response_data(values: dict) -> dict:
    """String values under CloudFormation's 4 KB cap (long values are clipped)."""
    data = {k: "" if v is None else str(v) for k, v in values.items()}
    while len(json.dumps(data)) > DATA_LIMIT:
        longest = max(data, key=lambda k: len(data[k]))
        data[longest] = clip(data[longest], max(16, len(data[longest]) // 2))
    return data
