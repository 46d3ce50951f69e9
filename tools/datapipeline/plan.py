"""Pipeline -> DagPlan (pure): tasks, dependencies, schedule, retries, callbacks, params, TODOs,
and what became of every object (the report). No I/O; ``render`` turns the plan into Python."""

from __future__ import annotations

import keyword
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tools.datapipeline import providers
from tools.datapipeline.definition import DefinitionError, Parameter, Pipeline, PipelineObject
from tools.datapipeline.expressions import Context, translate
from tools.datapipeline.mapping import OBJECT_TYPES, OPERATORS
from tools.datapipeline.schedule import plan_schedule, seconds_of, timedelta_of


@dataclass(frozen=True)
class Code:
    """A Python expression rendered as is (``timedelta(minutes=5)``, a variable name)."""

    code: str


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()


@dataclass
class Task:
    task_id: str
    var: str
    operator: str
    kwargs: dict[str, Any]
    source: str
    comments: list[str] = field(default_factory=list)


@dataclass
class Entry:
    """What became of one object (a row of the report)."""

    id: str
    type: str
    status: str = "converted"  # converted | partly | folded | not converted
    became: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    todos: list[str] = field(default_factory=list)


@dataclass
class DagPlan:
    dag_id: str
    target: str
    description: str
    schedule: str | None
    start: str | None
    end: str | None
    default_args: dict[str, Any]
    params: dict[str, Call]
    dag_kwargs: dict[str, Any]
    notifiers: dict[str, Call]
    helpers: list[str]
    tasks: list[Task]
    edges: list[tuple[str, str]]
    imports: set[tuple[str, str]]
    entries: dict[str, Entry]
    pipeline_notes: list[str]
    connections: dict[str, dict[str, str]]
    variables: list[str]


SUPPORTED_TARGETS = tuple(v for v in providers.MWAA_PROVIDERS if providers.supports(v, amazon="8.7.0"))
_RETRY_KEYS = ("maximumRetries", "retryDelay", "attemptTimeout", "lateAfterTimeout", "onFail", "onSuccess")


def _ident(text: str, taken: set[str]) -> str:
    base = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text)
    base = re.sub(r"[^0-9a-zA-Z_]+", "_", base).strip("_").lower()[:60] or "task"
    if base[0].isdigit() or keyword.iskeyword(base) or base in ("dag", "timedelta", "pendulum"):
        base = f"t_{base}"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def _s3_split(url: str) -> tuple[str, str]:
    rest = url.removeprefix("s3://").removeprefix("s3n://")
    bucket, _, key = rest.partition("/")
    return bucket, key


class Planner:
    def __init__(self, pipeline: Pipeline, *, dag_id: str, target: str) -> None:
        if target not in SUPPORTED_TARGETS:
            raise DefinitionError(
                f"--target-version {target!r} is not supported (supported: {', '.join(SUPPORTED_TARGETS)})"
            )
        self.p = pipeline
        self.dag_id = dag_id
        self.target = target
        self.af3 = providers.pins(target).airflow_major == 3
        self.tasks: list[Task] = []
        self.by_id: dict[str, Task] = {}
        self.edges: set[tuple[str, str]] = set()
        self.imports: set[tuple[str, str]] = set()
        self.entries = {o.id: Entry(o.id, o.type) for o in pipeline.objects.values()}
        self.vars: set[str] = set()
        self.notifiers: dict[str, Call] = {}
        self.notifier_vars: dict[str, str] = {}
        self.helpers: set[str] = set()
        self.connections: dict[str, dict[str, str]] = {}
        self.variables: set[str] = set()
        self.entry_tasks: dict[str, list[str]] = {}  # activity id -> first task ids
        self.exit_tasks: dict[str, list[str]] = {}  # activity id -> last task ids
        self.pipeline_notes: list[str] = []
        self.default = pipeline.objects.get("Default")
        self.ctx: Context | None = None

    # ---- helpers -------------------------------------------------------------------------
    def use(self, operator: str) -> str:
        op = OPERATORS[operator]
        if not providers.supports(self.target, amazon=op.amazon, common_sql=op.common_sql):
            raise DefinitionError(f"{operator} is not in the providers of MWAA {self.target}")  # pragma: no cover
        self.imports.add((op.module3 if self.af3 else op.module2, operator))
        return operator

    def text(self, obj: PipelineObject, value: str, *, operator: str, arg: str, entry: Entry) -> str:
        assert self.ctx is not None
        tr = translate(value, obj, self.ctx)
        for todo in tr.todos:
            entry.todos.append(f"{arg}: untranslated expression {todo}")
        if tr.jinja and arg not in OPERATORS[operator].templated:
            entry.todos.append(f"{arg}: {operator} does not render Jinja in '{arg}'; value {tr.text!r}")
        self.variables |= tr.variables
        return tr.text

    def s3(
        self, obj: PipelineObject, path: str, *, operator: str, args: tuple[str, str], entry: Entry
    ) -> tuple[str, str]:
        """(bucket, key) of an S3 path for operators that take them apart. A bucket that comes from
        a parameter is taken from the parameter's value (noted); any other expression is a TODO."""
        m = re.match(r"^#\{\s*\*?(my\w*)\s*\}", path)
        if m and isinstance(self.p.values.get(m.group(1), self._param_default(m.group(1))), str):
            static = str(self.p.values.get(m.group(1), self._param_default(m.group(1))))
            entry.notes.append(f"the S3 bucket comes from parameter {m.group(1)}'s value at conversion ({static})")
            path = static + path[m.end() :]
        bucket, key = _s3_split(path)
        if "#{" in bucket:
            entry.todos.append(f"{args[0]}: the S3 bucket of {path!r} is an expression; set it")
        return (
            self.text(obj, bucket, operator=operator, arg=args[0], entry=entry),
            self.text(obj, key, operator=operator, arg=args[1], entry=entry),
        )

    def _param_default(self, pid: str) -> Any:
        param = self.p.parameters.get(pid)
        return param.default if param else None

    def add(self, obj: PipelineObject, suffix: str, operator: str, kwargs: dict[str, Any]) -> Task:
        # the task id is the variable name (snake case of the object id), as ruff's AIR001 wants;
        # the report maps each object id to its task ids
        task_id = _ident(obj.id + suffix, self.vars)
        task = Task(task_id, task_id, self.use(operator), {"task_id": task_id, **kwargs}, obj.id)
        self.tasks.append(task)
        self.by_id[task_id] = task
        self.entries[obj.id].became.append(f"{task_id} ({operator})")
        return task

    def edge(self, upstream: str, downstream: str) -> None:
        if upstream != downstream:
            self.edges.add((upstream, downstream))

    def connection(self, db: PipelineObject) -> str:
        conn_id = _ident(db.id, set())
        info = {"type": db.type}
        for key in ("rdsInstanceId", "connectionString", "clusterId", "databaseName", "username", "region"):
            if db.get(key):
                info[key] = db.get(key) or ""
        self.connections[conn_id] = info
        entry = self.entries[db.id]
        entry.status = "folded"
        if not entry.became:
            entry.became.append(f"Airflow connection '{conn_id}'")
            entry.notes.append("create the connection (password from Secrets Manager); the password is not copied")
        return conn_id

    # ---- main ----------------------------------------------------------------------------
    def plan(self) -> DagPlan:
        sched_obj = self._pipeline_schedule()
        sched = plan_schedule(self.default, sched_obj, explicit_intervals=self.af3)
        self.imports |= sched.imports
        params, secrets = self._params()
        self.ctx = Context(
            pipeline=self.p,
            times=sched.times,
            params=frozenset(params),
            secrets=frozenset(secrets),
        )
        if sched_obj is not None:
            e = self.entries[sched_obj.id]
            e.became.append("DAG schedule")
            e.notes += sched.notes
            e.todos += sched.todos
        else:
            self.pipeline_notes += sched.notes
        default_args = self._default_args()
        for obj in self._activities_in_order():
            self._activity(obj, sched_obj)
        self._dependencies()
        late = self._late_alarms()
        self._fold_leftovers()
        dag_kwargs: dict[str, Any] = {}
        if late:
            dag_kwargs["sla_miss_callback"] = late
        order = {t.task_id: i for i, t in enumerate(self.tasks)}
        return DagPlan(
            dag_id=self.dag_id,
            target=self.target,
            description=f"Converted from AWS Data Pipeline ({len(self.p.objects)} objects) for MWAA {self.target}",
            schedule=sched.schedule,
            start=sched.start.isoformat() if sched.start else None,
            end=sched.end.isoformat() if sched.end else None,
            default_args=default_args,
            params=params,
            dag_kwargs=dag_kwargs,
            notifiers=self.notifiers,
            helpers=sorted(self.helpers),
            tasks=self.tasks,
            edges=sorted(self.edges, key=lambda e: (order[e[0]], order[e[1]])),
            imports=self.imports,
            entries=self.entries,
            pipeline_notes=self.pipeline_notes,
            connections=dict(sorted(self.connections.items())),
            variables=sorted(self.variables),
        )

    def _pipeline_schedule(self) -> PipelineObject | None:
        ref = self.default.ref("schedule") if self.default else None
        if ref is None:
            used = Counter(
                o.ref("schedule") for o in self.p.objects.values() if OBJECT_TYPES[o.type].role == "activity"
            )
            used.pop(None, None)
            ref = min(used, key=lambda s: (-used[s], s)) if used else None
        if ref is None:
            return None
        obj = self.p.objects[ref]
        if obj.type != "Schedule":
            raise DefinitionError(
                f"object '{self.default.id if self.default else ref}': 'schedule' refers to "
                f"'{ref}' of type {obj.type}, not a Schedule"
            )
        return obj

    def _params(self) -> tuple[dict[str, Call], set[str]]:
        params: dict[str, Call] = {}
        secrets: set[str] = set()
        for pid, param in sorted(self.p.parameters.items()):
            if param.secret:
                secrets.add(pid)
                continue
            params[pid] = self._param(param)
        for pid, value in self.p.values.items():
            if pid not in self.p.parameters and pid not in params:
                params[pid] = Call("Param", (value,), (("type", "array" if isinstance(value, list) else "string"),))
        if params:
            self.pipeline_notes.append(f"parameters {', '.join(sorted(params))} -> DAG params ('values' as defaults)")
        if secrets:
            self.pipeline_notes.append(
                f"secret parameters {', '.join(sorted(secrets))} -> Airflow Variables (values not copied)"
            )
        if params:
            self.imports.add(("airflow.sdk" if self.af3 else "airflow.models.param", "Param"))
        return dict(sorted(params.items())), secrets

    def _param(self, param: Parameter) -> Call:
        kind = {"Integer": "integer", "Double": "number"}.get(param.type, "string")
        value: Any = self.p.values.get(param.id, param.default)
        if param.is_array:
            kind = "array"
            value = value if isinstance(value, list) or value is None else [value]
        elif value is not None and kind != "string":
            value = _number(value, kind, param.id)
        kwargs: list[tuple[str, Any]] = []
        if value is None or param.optional:
            kwargs.append(("type", ["null", kind]))
        else:
            kwargs.append(("type", kind))
        if param.description:
            kwargs.append(("description", param.description))
        if param.allowed:
            kwargs.append(
                ("enum", [_number(a, kind, param.id) if kind in ("integer", "number") else a for a in param.allowed])
            )
        return Call("Param", (value,), tuple(kwargs))

    def _default_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"owner": "airflow"}
        if self.default is None:
            return args
        entry = self.entries["Default"]
        entry.became.append("DAG default_args")
        args.update(self._retry_kwargs(self.default, entry))
        for key in ("role", "resourceRole"):
            if self.default.get(key):
                entry.notes.append(f"{key} {self.default.get(key)}: the MWAA execution role needs its permissions")
        if self.default.get("pipelineLogUri"):
            entry.notes.append("pipelineLogUri: task logs go to the MWAA environment's CloudWatch log groups")
        if (self.default.get("failureAndRerunMode") or "cascade").lower() == "cascade":
            entry.notes.append("failureAndRerunMode cascade: Airflow's all_success trigger rule (downstream waits)")
        return args

    def _retry_kwargs(self, obj: PipelineObject, entry: Entry) -> dict[str, Any]:
        out: dict[str, Any] = {}
        retries = obj.get("maximumRetries")
        if retries is not None:
            if not retries.strip().isdigit():
                raise DefinitionError(f"object '{obj.id}': maximumRetries = {retries!r} is not an integer")
            out["retries"] = int(retries)
        for key, arg in (("retryDelay", "retry_delay"), ("attemptTimeout", "execution_timeout")):
            code, note = timedelta_of(obj, key)
            if code:
                out[arg] = Code(code)
                self.imports.add(("datetime", "timedelta"))
            if note:
                entry.todos.append(note)
        late, note = timedelta_of(obj, "lateAfterTimeout")
        if late and self.af3:
            entry.todos.append(
                f"lateAfterTimeout {obj.get('lateAfterTimeout')}: Airflow 3.0 has no SLA (Deadline Alerts from 3.1)"
            )
        elif late:
            out["sla"] = Code(late)
            self.imports.add(("datetime", "timedelta"))
        for key, arg in (("onFail", "on_failure_callback"), ("onSuccess", "on_success_callback")):
            alarms = [self._notifier(a, entry) for a in obj.refs(key)]
            alarms = [a for a in alarms if a is not None]
            if alarms:
                out[arg] = alarms[0] if len(alarms) == 1 else list(alarms)
        return out

    def _notifier(self, alarm_id: str, referrer: Entry) -> Code | None:
        alarm = self.p.objects[alarm_id]
        entry = self.entries[alarm_id]
        if alarm.type != "SnsAlarm":
            referrer.todos.append(f"action '{alarm_id}' ({alarm.type}) is not converted")
            entry.status = "not converted"
            return None
        if alarm_id not in self.notifier_vars:
            var = _ident(f"notify_{alarm_id}", self.vars)
            self.notifier_vars[alarm_id] = var
            kwargs: list[tuple[str, Any]] = []
            arn = alarm.get("topicArn") or ""
            parts = arn.split(":")
            for key, arg in (("topicArn", "target_arn"), ("subject", "subject"), ("message", "message")):
                if alarm.get(key) is not None:
                    kwargs.append(
                        (arg, self.text(alarm, alarm.get(key) or "", operator="SnsNotifier", arg=arg, entry=entry))
                    )
            if len(parts) > 3 and parts[3]:
                kwargs.append(("region_name", parts[3]))
            self.notifiers[var] = Call("SnsNotifier", (), tuple(kwargs))
            self.use("SnsNotifier")
            entry.became.append(f"{var} (SnsNotifier)")
        return Code(self.notifier_vars[alarm_id])

    def _late_alarms(self) -> list[Code] | Code | None:
        alarms: list[str] = []
        for obj in self.p.objects.values():
            for ref in obj.refs("onLateAction"):
                if ref not in alarms:
                    alarms.append(ref)
        if not alarms:
            return None
        codes: list[Code] = []
        for ref in alarms:
            if self.af3:
                self.entries[ref].todos.append(
                    "onLateAction: Airflow 3.0 has no SLA callbacks (Deadline Alerts in 3.1)"
                )
                continue
            code = self._notifier(ref, self.entries[ref])
            if code is not None:
                codes.append(code)
                self.entries[ref].notes.append("onLateAction: DAG sla_miss_callback (fires on the tasks' sla)")
        if not codes:
            return None
        return codes[0] if len(codes) == 1 else codes

    def _task_overrides(self, obj: PipelineObject, entry: Entry) -> dict[str, Any]:
        """Retry/timeout/callback arguments where the object differs from Default."""
        own = self._retry_kwargs(obj, entry)
        if self.default is None:
            return own
        base = self._retry_kwargs(self.default, Entry("Default", "Default"))
        return {k: v for k, v in own.items() if base.get(k) != v}

    # ---- activities ----------------------------------------------------------------------
    def _activities_in_order(self) -> list[PipelineObject]:
        """Activities in dependency order (ties: object id) so both input forms give the same DAG."""
        acts = {o.id: o for o in self.p.objects.values() if OBJECT_TYPES[o.type].role == "activity"}
        deps = {a: sorted(d for d in acts[a].refs("dependsOn") if d in acts) for a in acts}
        done: list[str] = []
        ready = sorted(a for a in acts if not deps[a])
        placed: set[str] = set()
        while ready:
            a = ready.pop(0)
            done.append(a)
            placed.add(a)
            newly = [b for b in acts if b not in placed and b not in ready and all(d in placed for d in deps[b])]
            ready = sorted(ready + newly)
        return [acts[a] for a in done]

    def _activity(self, obj: PipelineObject, sched_obj: PipelineObject | None) -> None:
        entry = self.entries[obj.id]
        builder = getattr(self, f"_build_{OBJECT_TYPES[obj.type].builder}")
        overrides = self._task_overrides(obj, entry)
        sensors = self._preconditions(obj)
        first, last = builder(obj, entry, overrides)
        self.entry_tasks[obj.id], self.exit_tasks[obj.id] = first, last
        resource = obj.ref("runsOn")
        if resource:
            self._fold_resource(resource, obj.id)
        if obj.ref("schedule") and sched_obj is not None and obj.ref("schedule") != sched_obj.id:
            entry.todos.append(
                f"runs on schedule '{obj.ref('schedule')}' in Data Pipeline; here on the DAG's '{sched_obj.id}' "
                "(move it to a DAG of its own)"
            )
        for pre in sensors:
            for t in first:
                self.edge(pre, t)
        if obj.get("workerGroup") and not obj.ref("runsOn"):
            entry.notes.append(
                f"workerGroup {obj.get('workerGroup')}: runs on the MWAA workers, not a Task Runner host"
            )
        for key in ("maxActiveInstances", "reportProgressTimeout"):
            if obj.get(key):
                entry.notes.append(f"{key} is not converted")

    def _placeholder(self, obj: PipelineObject, entry: Entry, reason: str) -> tuple[list[str], list[str]]:
        """An EmptyOperator keeps the dependencies of an activity that is not converted."""
        entry.status = "not converted"
        entry.todos.append(reason)
        task = self.add(obj, "", "EmptyOperator", {})
        task.comments.append(f"TODO(datapipeline): {reason}")
        return [task.task_id], [task.task_id]

    def _finish(self, task: Task, entry: Entry, overrides: dict[str, Any]) -> None:
        task.kwargs.update(overrides)
        if entry.todos:
            entry.status = "partly" if entry.status == "converted" else entry.status
            task.comments.extend(f"TODO(datapipeline): {t}" for t in entry.todos)

    def _build_shell(self, obj: PipelineObject, entry: Entry, overrides: dict[str, Any]) -> tuple[list[str], list[str]]:
        command = obj.get("command")
        args = obj.all("scriptArgument")
        if command is None and obj.get("scriptUri"):
            command = f"aws s3 cp {obj.get('scriptUri')} - | bash -s --"
            entry.todos.append("scriptUri: the command streams the script with the AWS CLI; check the worker has it")
        if command is None:
            return self._placeholder(obj, entry, "ShellCommandActivity without command or scriptUri")
        if args:
            command = " ".join([command, *(_shell_quote(a) for a in args)])
        if "STAGING_DIR" in command or obj.get("stage") == "true":
            entry.todos.append("stage: ${INPUTn_STAGING_DIR}/${OUTPUTn_STAGING_DIR} staging is not converted")
        command = self.text(obj, command, operator="BashOperator", arg="bash_command", entry=entry)
        if command.rstrip().endswith((".sh", ".bash")):
            command += " "  # BashOperator would read a trailing .sh as a template file name
        task = self.add(obj, "", "BashOperator", {"bash_command": command})
        self._finish(task, entry, overrides)
        return [task.task_id], [task.task_id]

    def _fold_resource(self, resource_id: str, activity_id: str) -> None:
        res = self.p.objects[resource_id]
        entry = self.entries[resource_id]
        if res.type == "Ec2Resource":
            entry.status = "folded"
            entry.became.append(f"folded into {activity_id}")
            note = "the MWAA workers run the command; Ec2Resource settings (instanceType, imageId) are not used"
            if note not in entry.notes:
                entry.notes.append(note)

    def _build_copy(self, obj: PipelineObject, entry: Entry, overrides: dict[str, Any]) -> tuple[list[str], list[str]]:
        src = self.p.objects.get(obj.ref("input") or "")
        dst = self.p.objects.get(obj.ref("output") or "")
        if src is None or dst is None:
            return self._placeholder(obj, entry, "CopyActivity needs input and output data nodes")
        self._fold_node(src, obj.id)
        self._fold_node(dst, obj.id)
        kinds = (src.type, dst.type)
        kwargs: dict[str, Any]
        if kinds == ("S3DataNode", "S3DataNode") and src.get("filePath") and dst.get("filePath"):
            op = "S3CopyObjectOperator"
            kwargs = {
                "source_bucket_key": self.text(
                    src, src.get("filePath") or "", operator=op, arg="source_bucket_key", entry=entry
                ),
                "dest_bucket_key": self.text(
                    dst, dst.get("filePath") or "", operator=op, arg="dest_bucket_key", entry=entry
                ),
            }
        elif src.type in ("SqlDataNode", "MySqlDataNode") and dst.type == "S3DataNode":
            op = "SqlToS3Operator"
            db = self.p.objects.get(src.ref("database") or "")
            if db is None:
                return self._placeholder(obj, entry, f"SqlDataNode '{src.id}' has no database")
            query = src.get("selectQuery") or f"SELECT * FROM {src.get('table')}"
            path = dst.get("filePath") or (dst.get("directoryPath") or "").rstrip("/") + "/data.csv"
            bucket, key = self.s3(dst, path, operator=op, args=("s3_bucket", "s3_key"), entry=entry)
            kwargs = {
                "query": self.text(src, query, operator=op, arg="query", entry=entry),
                "s3_bucket": bucket,
                "s3_key": key,
                "sql_conn_id": self.connection(db),
                "file_format": "csv",
                "replace": True,
                "pd_kwargs": {"index": False, "header": False},
            }
        else:
            return self._placeholder(
                obj, entry, f"CopyActivity {src.type} -> {dst.type} (directories or SQL targets) is not converted"
            )
        task = self.add(obj, "", op, kwargs)
        self._finish(task, entry, overrides)
        return [task.task_id], [task.task_id]

    def _fold_node(self, node: PipelineObject, activity_id: str) -> None:
        entry = self.entries[node.id]
        entry.status = "folded"
        text = f"folded into {activity_id}"
        if text not in entry.became:
            entry.became.append(text)

    def _build_sql(self, obj: PipelineObject, entry: Entry, overrides: dict[str, Any]) -> tuple[list[str], list[str]]:
        db = self.p.objects.get(obj.ref("database") or "")
        if db is None:
            return self._placeholder(obj, entry, "SqlActivity without database")
        script = obj.get("script")
        if script is None:
            return self._placeholder(
                obj, entry, f"SqlActivity scriptUri {obj.get('scriptUri')}: copy the script into the DAG folder"
            )
        args = obj.all("scriptArgument")
        if db.type == "RedshiftDatabase" and db.get("clusterId"):
            op = "RedshiftDataOperator"
            kwargs: dict[str, Any] = {
                "cluster_identifier": db.get("clusterId"),
                "database": db.get("databaseName") or "dev",
                "db_user": db.get("username"),
                "sql": self.text(obj, script, operator=op, arg="sql", entry=entry),
                "wait_for_completion": True,
            }
            self.entries[db.id].status = "folded"
            self.entries[db.id].became.append(f"folded into {obj.id} (Redshift Data API)")
            if args:
                entry.todos.append("scriptArgument on Redshift: pass them as RedshiftDataOperator parameters")
        else:
            op = "SQLExecuteQueryOperator"
            kwargs = {
                "conn_id": self.connection(db),
                "sql": self.text(obj, script, operator=op, arg="sql", entry=entry),
            }
            if args:
                entry.notes.append("scriptArgument -> parameters: use the placeholder style of the driver (%s)")
                kwargs["parameters"] = [self.text(obj, a, operator=op, arg="parameters", entry=entry) for a in args]
        task = self.add(obj, "", op, kwargs)
        self._finish(task, entry, overrides)
        return [task.task_id], [task.task_id]

    def _build_redshift_copy(
        self, obj: PipelineObject, entry: Entry, overrides: dict[str, Any]
    ) -> tuple[list[str], list[str]]:
        from tools.datapipeline.mapping import REDSHIFT_INSERT_MODES

        src = self.p.objects.get(obj.ref("input") or "")
        dst = self.p.objects.get(obj.ref("output") or "")
        mode = (obj.get("insertMode") or "").upper()
        if mode not in REDSHIFT_INSERT_MODES:
            raise DefinitionError(
                f"object '{obj.id}': insertMode = {obj.get('insertMode')!r} "
                f"(allowed: {', '.join(REDSHIFT_INSERT_MODES)})"
            )
        if src is None or dst is None or src.type != "S3DataNode" or dst.type != "RedshiftDataNode":
            return self._placeholder(obj, entry, "RedshiftCopyActivity other than S3DataNode -> RedshiftDataNode")
        method = REDSHIFT_INSERT_MODES[mode]
        if method is None:
            return self._placeholder(obj, entry, f"insertMode {mode} has no S3ToRedshiftOperator method")
        db = self.p.objects.get(dst.ref("database") or "")
        if db is None:
            return self._placeholder(obj, entry, f"RedshiftDataNode '{dst.id}' has no database")
        self._fold_node(src, obj.id)
        self._fold_node(dst, obj.id)
        op = "S3ToRedshiftOperator"
        path = src.get("filePath") or src.get("directoryPath") or ""
        bucket, key = self.s3(src, path, operator=op, args=("s3_bucket", "s3_key"), entry=entry)
        kwargs: dict[str, Any] = {
            "schema": dst.get("schemaName") or "public",
            "table": self.text(dst, dst.get("tableName") or "", operator=op, arg="table", entry=entry),
            "s3_bucket": bucket,
            "s3_key": key,
            "redshift_conn_id": self.connection(db),
            "copy_options": obj.all("commandOptions") or (["CSV"] if self._format(src) == "CSV" else []),
            "method": method,
        }
        keys = dst.all("primaryKeys")
        if method == "UPSERT" and keys:
            kwargs["upsert_keys"] = keys
        if obj.get("transformSql"):
            entry.todos.append("transformSql is not converted (S3ToRedshiftOperator loads the table directly)")
        task = self.add(obj, "", op, kwargs)
        self._finish(task, entry, overrides)
        return [task.task_id], [task.task_id]

    def _format(self, node: PipelineObject) -> str | None:
        ref = node.ref("dataFormat")
        return self.p.objects[ref].type if ref else None

    def _preconditions(self, obj: PipelineObject) -> list[str]:
        """Sensor task ids upstream of ``obj``: its own preconditions and its input nodes'."""
        refs = list(obj.refs("precondition"))
        for node_id in obj.refs("input"):
            refs += self.p.objects[node_id].refs("precondition")
        out: list[str] = []
        for ref in refs:
            out.append(self._sensor(self.p.objects[ref], obj))
        return out

    def _sensor(self, pre: PipelineObject, referrer: PipelineObject) -> str:
        existing = [t for t in self.tasks if t.source == pre.id]
        if existing:
            return existing[0].task_id
        entry = self.entries[pre.id]
        builder = OBJECT_TYPES[pre.type].builder
        op, kwargs = getattr(self, f"_sense_{builder}")(pre, referrer, entry)
        kwargs.update({"mode": "reschedule", "poke_interval": 60})
        timeout = seconds_of(pre, "preconditionTimeout")
        if timeout:
            kwargs["timeout"] = timeout
        task = self.add(pre, "", op, kwargs)
        self._finish(task, entry, self._task_overrides(pre, entry))
        return task.task_id

    def _sense_s3_key(self, pre: PipelineObject, _ref: PipelineObject, entry: Entry) -> tuple[str, dict[str, Any]]:
        key = self.text(pre, pre.get("s3Key") or "", operator="S3KeySensor", arg="bucket_key", entry=entry)
        return "S3KeySensor", {"bucket_key": key}

    def _sense_s3_prefix(self, pre: PipelineObject, _ref: PipelineObject, entry: Entry) -> tuple[str, dict[str, Any]]:
        prefix = self.text(pre, pre.get("s3Prefix") or "", operator="S3KeySensor", arg="bucket_key", entry=entry)
        return "S3KeySensor", {"bucket_key": prefix.rstrip("/") + "/*", "wildcard_match": True}

    def _sense_exists(self, pre: PipelineObject, referrer: PipelineObject, entry: Entry) -> tuple[str, dict[str, Any]]:
        node = next(
            (self.p.objects[i] for i in referrer.refs("input") if pre.id in self.p.objects[i].refs("precondition")),
            None,
        )
        path = (node.get("filePath") or node.get("directoryPath")) if node is not None else None
        if node is None or node.type != "S3DataNode" or not path:
            entry.todos.append("Exists on a non-S3 data node is not converted")
            return "S3KeySensor", {"bucket_key": "TODO"}
        key = self.text(node, path, operator="S3KeySensor", arg="bucket_key", entry=entry)
        if node.get("directoryPath"):
            return "S3KeySensor", {"bucket_key": key.rstrip("/") + "/*", "wildcard_match": True}
        return "S3KeySensor", {"bucket_key": key}

    def _sense_dynamodb_table(
        self, pre: PipelineObject, _r: PipelineObject, entry: Entry
    ) -> tuple[str, dict[str, Any]]:
        self.helpers.add("dynamodb_table_exists")
        self.use("DynamoDBHook")
        table = self.text(pre, pre.get("tableName") or "", operator="PythonSensor", arg="op_kwargs", entry=entry)
        return "PythonSensor", {"python_callable": Code("dynamodb_table_exists"), "op_kwargs": {"table_name": table}}

    def _sense_dynamodb_data(self, pre: PipelineObject, _r: PipelineObject, entry: Entry) -> tuple[str, dict[str, Any]]:
        self.helpers.add("dynamodb_has_items")
        self.use("DynamoDBHook")
        table = self.text(pre, pre.get("tableName") or "", operator="PythonSensor", arg="op_kwargs", entry=entry)
        return "PythonSensor", {"python_callable": Code("dynamodb_has_items"), "op_kwargs": {"table_name": table}}

    def _sense_shell_check(self, pre: PipelineObject, _r: PipelineObject, entry: Entry) -> tuple[str, dict[str, Any]]:
        command = pre.get("command")
        if command is None:
            command = f"aws s3 cp {pre.get('scriptUri')} - | bash -s --"
            entry.todos.append("scriptUri: the check streams the script with the AWS CLI; check the worker has it")
        command = " ".join([command, *(_shell_quote(a) for a in pre.all("scriptArgument"))])
        command = self.text(pre, command, operator="BashSensor", arg="bash_command", entry=entry)
        if command.rstrip().endswith((".sh", ".bash")):
            command += " "
        return "BashSensor", {"bash_command": command}

    # EMR ---------------------------------------------------------------------------------
    def _build_emr(self, obj: PipelineObject, entry: Entry, overrides: dict[str, Any]) -> tuple[list[str], list[str]]:
        from tools.datapipeline.emr import cluster_overrides, dynamodb_export, steps_of

        export = dynamodb_export(self.p, obj)
        if export is not None:
            return self._dynamodb_export(obj, entry, overrides, export)
        cluster = self.p.objects.get(obj.ref("runsOn") or "")
        if cluster is None or cluster.type != "EmrCluster":
            return self._placeholder(obj, entry, f"{obj.type} without an EmrCluster in runsOn (existing cluster)")
        steps, todos = steps_of(obj)
        entry.todos.extend(todos)
        if not steps:
            return self._placeholder(obj, entry, f"{obj.type} has no step to run")
        create, terminate, done = self._cluster_tasks(cluster, cluster_overrides)
        steps = [self._render_step(obj, s, entry) for s in steps]
        job_flow = Code(f"{create}.output")
        add = self.add(obj, "_add_steps", "EmrAddStepsOperator", {"job_flow_id": job_flow, "steps": steps})
        watch = self.add(
            obj,
            "_watch_step",
            "EmrStepSensor",
            {
                "job_flow_id": job_flow,
                "step_id": f"{{{{ task_instance.xcom_pull(task_ids='{add.task_id}')[-1] }}}}",
                "mode": "reschedule",
            },
        )
        self._finish(add, entry, overrides)
        watch.kwargs.update(overrides)
        self.edge(create, add.task_id)
        self.edge(add.task_id, watch.task_id)
        self.edge(watch.task_id, terminate)
        self.edge(watch.task_id, done)
        return [add.task_id], [watch.task_id]

    def _render_step(self, obj: PipelineObject, step: dict[str, Any], entry: Entry) -> dict[str, Any]:
        def walk(v: Any) -> Any:
            if isinstance(v, str):
                return self.text(obj, v, operator="EmrAddStepsOperator", arg="steps", entry=entry)
            if isinstance(v, list):
                return [walk(x) for x in v]
            if isinstance(v, dict):
                return {k: walk(x) for k, x in v.items()}
            return v

        result: dict[str, Any] = walk(step)
        return result

    def _cluster_tasks(self, cluster: PipelineObject, overrides_of: Any) -> tuple[str, str, str]:
        existing = [t for t in self.tasks if t.source == cluster.id]
        if existing:
            return existing[0].task_id, existing[1].task_id, existing[2].task_id
        entry = self.entries[cluster.id]
        overrides, todos = overrides_of(self.p, cluster)
        entry.todos.extend(todos)
        create = self.add(cluster, "_create", "EmrCreateJobFlowOperator", {"job_flow_overrides": overrides})
        job_flow = Code(f"{create.task_id}.output")
        terminate = self.add(
            cluster,
            "_terminate",
            "EmrTerminateJobFlowOperator",
            {"job_flow_id": job_flow, "trigger_rule": "all_done"},
        )
        done = self.add(cluster, "_steps_done", "EmptyOperator", {})
        done.comments.append("Fails the run when a step failed (the terminate task runs either way).")
        self._finish(create, entry, {})
        entry.notes.append(
            "terminateAfter is not converted: the terminate task ends the cluster after its steps"
            if cluster.get("terminateAfter")
            else "the terminate task ends the cluster after its steps"
        )
        return create.task_id, terminate.task_id, done.task_id

    def _dynamodb_export(
        self,
        obj: PipelineObject,
        entry: Entry,
        overrides: dict[str, Any],
        export: tuple[PipelineObject, PipelineObject],
    ) -> tuple[list[str], list[str]]:
        table_node, s3_node = export
        self._fold_node(table_node, obj.id)
        self._fold_node(s3_node, obj.id)
        op = "DynamoDBToS3Operator"
        path = s3_node.get("directoryPath") or s3_node.get("filePath") or ""
        bucket, prefix = self.s3(s3_node, path, operator=op, args=("s3_bucket_name", "s3_key_prefix"), entry=entry)
        kwargs = {
            "dynamodb_table_name": self.text(
                table_node, table_node.get("tableName") or "", operator=op, arg="dynamodb_table_name", entry=entry
            ),
            "s3_bucket_name": bucket,
            "s3_key_prefix": prefix,
        }
        entry.notes.append(
            "DynamoDB export template: DynamoDBToS3Operator scans the table into JSON files (no EMR cluster); "
            "readThroughputPercent is not applied"
        )
        cluster = obj.ref("runsOn")
        if cluster:
            ce = self.entries[cluster]
            ce.status = "folded"
            ce.became.append(f"folded into {obj.id} (the export needs no cluster)")
        task = self.add(obj, "", op, kwargs)
        self._finish(task, entry, overrides)
        return [task.task_id], [task.task_id]

    # ---- graph ---------------------------------------------------------------------------
    def _dependencies(self) -> None:
        for act_id, first in self.entry_tasks.items():
            for dep in self.p.objects[act_id].refs("dependsOn"):
                if dep not in self.exit_tasks:
                    self.entries[act_id].todos.append(f"dependsOn '{dep}' ({self.p.objects[dep].type}) is ignored")
                    continue
                for up in self.exit_tasks[dep]:
                    for down in first:
                        self.edge(up, down)

    def _fold_leftovers(self) -> None:
        for obj in self.p.objects.values():
            entry = self.entries[obj.id]
            if entry.became or entry.status == "not converted":
                if entry.todos and entry.status == "converted":
                    entry.status = "partly"
                continue
            role = OBJECT_TYPES[obj.type]
            if role.role in ("datanode", "format", "database", "resource", "precondition", "action", "schedule"):
                users = sorted(
                    o.id
                    for o in self.p.objects.values()
                    if any(obj.id in [v.id for v in vs if hasattr(v, "id")] for vs in o.own.values())
                )
                if users and role.role in ("format", "datanode", "database"):
                    entry.status = "folded"
                    entry.became.append(f"folded into {', '.join(users)} ({role.becomes})")
                else:
                    entry.status = "not converted"
                    entry.notes.append("not used by any converted activity" if not users else role.becomes)
            else:
                entry.status = "not converted"
                entry.notes.append(role.becomes)


def _number(value: Any, kind: str, pid: str) -> Any:
    try:
        return int(value) if kind == "integer" else float(value)
    except (TypeError, ValueError):
        raise DefinitionError(f"parameter '{pid}': value {value!r} is not {kind}") from None


def _shell_quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def plan(pipeline: Pipeline, *, dag_id: str, target: str = providers.DEFAULT_TARGET) -> DagPlan:
    return Planner(pipeline, dag_id=dag_id, target=target).plan()
