"""A small Airflow client over MWAA InvokeRestApi, with the CLI token as fallback.

The REST path family comes from ``mwaa_common.versions`` (``rest_api`` column): InvokeRestApi
maps the path (no version prefix) to ``/api/v1`` on Airflow 2 and ``/api/v2`` on Airflow 3.
The differences this client relies on are in ``FAMILIES``; the operations are the same:

- ``GET /dags/{dag_id}``; ``PATCH /dags/{dag_id}?update_mask=is_paused`` ``{"is_paused": false}``
- ``GET /dags/{dag_id}/dagRuns/{run_id}``
- ``POST /dags/{dag_id}/dagRuns`` ``{"dag_run_id", "conf"}``; Airflow 3 requires the
  ``logical_date`` key (null = none); 409 when the run id exists
- ``POST /dags/~/dagRuns/~/taskInstances/list`` ``{"dag_ids", "dag_run_ids", "state",
  "page_offset", "page_limit"}`` (the batch form: its path stays short whatever the ids)

InvokeRestApi paths are at most 64 characters (botocore does not check the maximum, MWAA
does): a longer path raises ``PathTooLong`` before any call.

Airflow's own errors arrive as ``RestApiClientException`` (4xx) / ``RestApiServerException``
(5xx) with ``RestApiStatusCode`` and ``RestApiResponse``; they are mapped to return values
(404 -> None, 409 -> adopt) or ``AirflowApiError``.

**When the CLI token is used instead** ("InvokeRestApi unavailable"), decided once per client
and kept for its lifetime, and only with ``allow_cli=True`` (the stage option
``migration.cli_token_fallback``; off by default, since a CLI token acts past the Op-role
scoping and any SCP on InvokeRestApi: otherwise ``CliFallbackDisabled`` says what to grant):
1. the Airflow version is below 2.4.3 (MWAA offers InvokeRestApi from 2.4.3 on);
2. the boto3 in the Lambda has no ``invoke_rest_api`` (an SDK older than the operation);
3. InvokeRestApi answers ``AccessDeniedException`` (IAM, an SCP or a permissions boundary
   denies it; the CLI token is a separate permission), ``UnknownOperationException``
   (an endpoint without the operation), or a message asking to update the environment
   ("Update your environment to use InvokeRestApi").
Everything else (throttling aside, which is retried) is an error, not a fallback.

CLI token: ``CreateCliToken`` -> ``POST https://{WebServerHostname}/aws_mwaa/cli`` with
``Authorization: Bearer``, a ``text/plain`` command, and base64 ``stdout``/``stderr`` back.
Airflow 3 answers 307 to ``/aws_mwaa/cli/``: one redirect on the same https host is followed
(the bearer token never goes to another host). A token lives 60 s: one per command.
HTTP is plain ``urllib`` and injectable (``http=``) for tests.
"""

from __future__ import annotations

import base64
import json
import logging
import shlex
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from mwaa_common import retry, versions

log = logging.getLogger(__name__)

# What differs between the REST API families (and the CLI syntax that goes with them).
FAMILIES: dict[str, dict] = {
    "v1": {  # Airflow 2.x: /api/v1 (connexion)
        "trigger_logical_date": False,  # optional: omitted (Airflow uses "now")
        "page_limit": 100,  # [api] maximum_page_limit default
        "cli_list_runs": ["dags", "list-runs", "-o", "json", "-d", "{dag_id}"],
    },
    "v2": {  # Airflow 3.x: /api/v2 (FastAPI)
        "trigger_logical_date": True,  # required key; null means no logical date
        "page_limit": 100,
        "cli_list_runs": ["dags", "list-runs", "-o", "json", "{dag_id}"],
    },
}
REST_MIN_VERSION = (2, 4, 3)
DEFAULT_MAX_PATH = 64
CLI_PATH = "/aws_mwaa/cli"
MAX_TI_PAGES = 50  # 5,000 task instances: far more than a metadata DAG has

UNAVAILABLE_CODES = frozenset({"AccessDeniedException", "UnknownOperationException"})
UNAVAILABLE_MESSAGE = "to use InvokeRestApi"

# (method, url, headers, body, timeout) -> (status, headers, body)
HttpFn = Callable[[str, str, dict, bytes, float], tuple[int, dict, bytes]]


class AirflowApiError(RuntimeError):
    """Airflow or MWAA refused a request; the message says which and why."""

    def __init__(self, message: str, *, status: int | None = None, response=None):
        super().__init__(message)
        self.status = status
        self.response = response


class PathTooLong(AirflowApiError, ValueError):
    """An InvokeRestApi path would exceed MWAA's limit."""


class RestApiUnavailable(AirflowApiError):
    """InvokeRestApi cannot be used for this environment from here: use the CLI token."""


class CliFallbackDisabled(AirflowApiError):
    """InvokeRestApi is unusable and the stage did not allow the CLI-token fallback."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401
        return None  # hand 3xx back to the caller, which decides


def urllib_http(method: str, url: str, headers: dict, body: bytes, timeout: float):
    """The default transport: urllib, no automatic redirects."""
    if not url.startswith("https://"):
        raise AirflowApiError(f"refusing a non-https URL for the MWAA CLI: {url}")
    req = urllib.request.Request(url, data=body, headers=headers, method=method)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=timeout) as resp:  # nosec B310: https only (checked above)
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict((err.headers or {}).items()), err.read() or b""


def _header(headers: dict, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def _detail(response) -> str:
    if isinstance(response, dict):
        for key in ("detail", "title", "message"):
            if response.get(key):
                return str(response[key])[:500]
    return json.dumps(response, default=str)[:500] if response is not None else ""


def run_path(dag_id: str, run_id: str) -> str:
    return f"/dags/{dag_id}/dagRuns/{run_id}"


def normalize_run(raw: dict) -> dict:
    return {
        "run_id": raw.get("dag_run_id") or raw.get("run_id"),
        "state": (raw.get("state") or "").lower() or None,
        "logical_date": raw.get("logical_date") or raw.get("execution_date"),
        "start_date": raw.get("start_date"),
        "end_date": raw.get("end_date"),
    }


def normalize_ti(raw: dict) -> dict:
    try_number = raw.get("try_number")
    map_index = raw.get("map_index")
    return {
        "task_id": raw.get("task_id"),
        "state": (raw.get("state") or "").lower() or None,
        "try_number": int(try_number) if isinstance(try_number, (int, str)) and str(try_number).isdigit() else None,
        "map_index": int(map_index) if isinstance(map_index, int) else -1,
        "end_date": raw.get("end_date"),
    }


def _json_from_cli(stdout: str):
    """The JSON document in CLI output (log lines may precede it)."""
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("[", "{")):
            try:
                return json.loads("\n".join(lines[i:]))
            except ValueError:
                continue
    raise AirflowApiError(f"the MWAA CLI printed no JSON: {stdout[-300:]!r}")


class AirflowClient:
    """Airflow operations on one MWAA environment (REST first, CLI token when unavailable)."""

    def __init__(
        self,
        mwaa,
        environment_name: str,
        airflow_version: str,
        *,
        http: HttpFn = urllib_http,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 8.0,
        cli_timeout: float = 30.0,
        allow_cli: bool = False,
    ):
        row = versions.info(airflow_version)
        if row["rest_api"] not in FAMILIES:
            raise AirflowApiError(
                f"Airflow {airflow_version} has no REST API family this client knows "
                f"(rest_api={row['rest_api']!r}; known: {', '.join(FAMILIES)})"
            )
        self.mwaa = mwaa
        self.env = environment_name
        self.version = airflow_version
        self.family_name = row["rest_api"]
        self.family = FAMILIES[self.family_name]
        self.http = http
        self.sleep = sleep
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.cli_timeout = cli_timeout
        self.max_path = self._model_max_path(mwaa)
        self.channel = "rest"
        self.fallback_reason = ""
        self.allow_cli = allow_cli
        if versions.parse(airflow_version) < REST_MIN_VERSION:
            self._fall_back(f"Airflow {airflow_version} is older than 2.4.3 (no InvokeRestApi)")
        elif not hasattr(mwaa, "invoke_rest_api"):
            self._fall_back("the AWS SDK in this function has no InvokeRestApi")

    # ---- plumbing ------------------------------------------------------------------------

    @staticmethod
    def _model_max_path(mwaa) -> int:
        try:
            return int(mwaa.meta.service_model.shape_for("RestApiPath").metadata["max"])
        except Exception:  # an SDK without the shape: the documented limit
            return DEFAULT_MAX_PATH

    def _fall_back(self, reason: str) -> None:
        if not self.allow_cli:
            raise CliFallbackDisabled(
                f"MWAA {self.env}: InvokeRestApi cannot be used ({reason}) and the CLI-token fallback is off; "
                "grant airflow:InvokeRestApi on the Op role (check SCPs and permissions boundaries), or set the "
                "stage option migration.cli_token_fallback: true (a CLI token bypasses the Op-role scoping)"
            )
        if self.channel != "cli":
            log.warning("MWAA %s: using the CLI token instead of InvokeRestApi: %s", self.env, reason)
        self.channel = "cli"
        self.fallback_reason = reason

    def check_path(self, path: str) -> str:
        if len(path) > self.max_path:
            raise PathTooLong(
                f"InvokeRestApi path {path!r} is {len(path)} characters, {len(path) - self.max_path} "
                f"over MWAA's limit of {self.max_path}: use a shorter DAG id or MigrationId"
            )
        return path

    def _retryable(self, err: ClientError) -> bool:
        code = err.response.get("Error", {}).get("Code", "")
        if code in retry.RETRYABLE_CODES:
            return True
        return (
            code in ("RestApiClientException", "RestApiServerException")
            and err.response.get("RestApiStatusCode") in retry.RETRYABLE_HTTP_STATUS
        )

    def aws_call(self, fn, **kwargs):
        """Call an AWS operation, retrying throttling and transient server errors."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                return fn(**kwargs)
            except ClientError as err:
                if attempt == self.max_attempts or not self._retryable(err):
                    raise
                delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
                log.info(
                    "MWAA %s: %s, retry %d in %.0f s",
                    self.env,
                    err.response.get("Error", {}).get("Code"),
                    attempt,
                    delay,
                )
                self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _rest(self, method: str, path: str, *, query: dict | None = None, body=None):
        """(Airflow status, Airflow response) of one InvokeRestApi call."""
        kwargs: dict[str, Any] = {"Name": self.env, "Path": self.check_path(path), "Method": method}
        if query:
            kwargs["QueryParameters"] = query
        if body is not None:
            kwargs["Body"] = body
        try:
            resp = self.aws_call(self.mwaa.invoke_rest_api, **kwargs)
        except ClientError as err:
            error = err.response.get("Error", {})
            code, message = error.get("Code", ""), error.get("Message", "")
            if code in ("RestApiClientException", "RestApiServerException"):
                return err.response.get("RestApiStatusCode"), err.response.get("RestApiResponse")
            if code in UNAVAILABLE_CODES or UNAVAILABLE_MESSAGE in message:
                raise RestApiUnavailable(f"InvokeRestApi on {self.env}: {code}: {message}") from None
            raise AirflowApiError(f"InvokeRestApi {method} {path} on {self.env}: {code}: {message}") from None
        return resp.get("RestApiStatusCode", 200), resp.get("RestApiResponse")

    def _fail(self, what: str, status, response):
        raise AirflowApiError(
            f"{what} in MWAA environment {self.env}: Airflow answered {status}: {_detail(response)}",
            status=status,
            response=response,
        )

    def _dispatch(self, rest: Callable, cli: Callable):
        if self.channel == "rest":
            try:
                return rest()
            except RestApiUnavailable as exc:
                self._fall_back(str(exc))
        return cli()

    def cli(self, argv: list[str]) -> tuple[str, str]:
        """Run one Airflow CLI command through a fresh CLI token: (stdout, stderr)."""
        tok = self.aws_call(self.mwaa.create_cli_token, Name=self.env)
        host = tok["WebServerHostname"]
        url = f"https://{host}{CLI_PATH}"
        command = shlex.join(argv)
        headers = {"Authorization": f"Bearer {tok['CliToken']}", "Content-Type": "text/plain"}
        for _hop in range(2):
            status, resp_headers, body = self.http("POST", url, headers, command.encode(), self.cli_timeout)
            if status in (307, 308):
                target = urllib.parse.urljoin(url, _header(resp_headers, "Location") or "")
                parsed = urllib.parse.urlsplit(target)
                if parsed.scheme != "https" or parsed.hostname != host:
                    raise AirflowApiError(f"the MWAA CLI endpoint redirected off-host to {target!r}")
                url = target
                continue
            break
        if status != 200:
            raise AirflowApiError(
                f"MWAA CLI endpoint of {self.env} answered HTTP {status} to {argv[:2]}: "
                f"{body[:300].decode('utf-8', 'replace')}",
                status=status,
            )
        try:
            payload = json.loads(body)
            stdout = base64.b64decode(payload.get("stdout") or "").decode("utf-8", "replace")
            stderr = base64.b64decode(payload.get("stderr") or "").decode("utf-8", "replace")
        except (ValueError, TypeError, AttributeError) as exc:
            raise AirflowApiError(f"MWAA CLI endpoint of {self.env} sent an unreadable answer: {exc}") from None
        return stdout, stderr

    # ---- operations -------------------------------------------------------------------------

    def get_dag(self, dag_id: str) -> dict | None:
        """``{"dag_id", "is_paused"}`` or None when Airflow does not know the DAG (REST only)."""
        status, resp = self._rest("GET", f"/dags/{dag_id}")
        if status == 404:
            return None
        if status != 200:
            self._fail(f"GET DAG {dag_id}", status, resp)
        return {"dag_id": resp.get("dag_id", dag_id), "is_paused": bool(resp.get("is_paused"))}

    def ensure_unpaused(self, dag_id: str) -> bool | None:
        """Unpause the DAG. None: Airflow does not know it (yet); True: it was unpaused now
        (always True over the CLI, which cannot tell); False: it was already active."""

        def rest():
            dag = self.get_dag(dag_id)
            if dag is None:
                return None
            if not dag["is_paused"]:
                return False
            status, resp = self._rest(
                "PATCH", f"/dags/{dag_id}", query={"update_mask": "is_paused"}, body={"is_paused": False}
            )
            if status != 200:
                self._fail(f"unpause DAG {dag_id}", status, resp)
            return True

        def cli():
            stdout, stderr = self.cli(["dags", "unpause", dag_id])
            text = (stdout + "\n" + stderr).lower()
            if "not found" in text or "could not find" in text or "dagnotfound" in text:
                return None
            return True

        return self._dispatch(rest, cli)

    def get_run(self, dag_id: str, run_id: str) -> dict | None:
        def rest():
            status, resp = self._rest("GET", run_path(dag_id, run_id))
            if status == 404:
                return None
            if status != 200:
                self._fail(f"GET DAG run {dag_id}/{run_id}", status, resp)
            return normalize_run(resp)

        def cli():
            argv = [a.format(dag_id=dag_id) for a in self.family["cli_list_runs"]]
            stdout, stderr = self.cli(argv)
            if not stdout.strip():
                if "not found" in stderr.lower():
                    return None
                raise AirflowApiError(f"dags list-runs {dag_id} on {self.env} printed nothing: {stderr[-300:]!r}")
            for raw in _json_from_cli(stdout):
                if raw.get("run_id") == run_id:
                    return normalize_run(raw)
            return None

        return self._dispatch(rest, cli)

    def trigger(self, dag_id: str, run_id: str, conf: dict) -> tuple[dict, bool]:
        """Start a run with this id: (run, created). An existing run is returned, not re-made."""

        def rest():
            body = {"dag_run_id": run_id, "conf": conf}
            if self.family["trigger_logical_date"]:
                body["logical_date"] = None
            status, resp = self._rest("POST", f"/dags/{dag_id}/dagRuns", body=body)
            if status in (200, 201):
                return normalize_run(resp), True
            if status == 409:
                run = self.get_run(dag_id, run_id)
                if run is not None:
                    return run, False
            self._fail(f"trigger DAG {dag_id} run {run_id}", status, resp)

        def cli():
            stdout, stderr = self.cli(
                ["dags", "trigger", dag_id, "-r", run_id, "-c", json.dumps(conf, separators=(",", ":"), sort_keys=True)]
            )
            existed = "already exists" in (stdout + stderr).lower()
            run = self.get_run(dag_id, run_id)
            if run is None:
                raise AirflowApiError(
                    f"dags trigger {dag_id} -r {run_id} on {self.env} created no run: {stderr[-500:]!r}"
                )
            return run, not existed

        return self._dispatch(rest, cli)

    def task_instances(self, dag_id: str, run_id: str, states: list[str] | None = None) -> list[dict]:
        """Task instances of a run (all pages), optionally only those in ``states``."""

        def rest():
            limit = self.family["page_limit"]
            found: list[dict] = []
            for page in range(MAX_TI_PAGES):
                body = {"dag_ids": [dag_id], "dag_run_ids": [run_id], "page_offset": page * limit, "page_limit": limit}
                if states:
                    body["state"] = list(states)
                status, resp = self._rest("POST", "/dags/~/dagRuns/~/taskInstances/list", body=body)
                if status != 200:
                    self._fail(f"list task instances of {dag_id}/{run_id}", status, resp)
                batch = resp.get("task_instances") or []
                found.extend(normalize_ti(t) for t in batch)
                if not batch or len(found) >= int(resp.get("total_entries") or 0):
                    break
            return found

        def cli():
            stdout, _ = self.cli(["tasks", "states-for-dag-run", dag_id, run_id, "-o", "json"])
            tis = [normalize_ti(t) for t in _json_from_cli(stdout)]
            return [t for t in tis if not states or t["state"] in states]

        return self._dispatch(rest, cli)
