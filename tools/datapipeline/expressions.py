"""Data Pipeline expressions (``#{...}``) -> Airflow Jinja.

Translated: parameters (``#{myParam}`` -> ``{{ params.myParam }}``; a ``*`` secret parameter ->
``{{ var.value.myParam }}``), the run's times (``@scheduledStartTime`` / ``@scheduledEndTime``
-> the DAG run's data interval as the schedule style defines it, ``@actualStartTime``),
``format(dt, 'Joda pattern')`` and its method form, the ``plus|minus`` +
``Minutes|Hours|Days|Weeks|Months|Years`` shifts, the date parts (``day``, ``hour``, ...),
``firstOfMonth`` and ``midnight``, and references to fields of the object itself, of its
``parent``-resolved fields and of linked objects (``#{input.directoryPath}``,
``#{node.@scheduledStartTime}``), resolved at conversion time. Anything else stays in the text
verbatim and is returned as a TODO with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tools.datapipeline.definition import Pipeline, PipelineObject
from tools.datapipeline.mapping import DATE_PARTS, DATE_ROUNDING, DATE_SHIFTS, JODA_TO_STRFTIME

DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S"  # how Data Pipeline prints a DateTime


class Untranslatable(ValueError):
    pass


@dataclass(frozen=True, kw_only=True)
class TimeVars:
    """Jinja expressions of the run's times under the DAG's timetable."""

    start: str = "data_interval_start"
    end: str = "data_interval_end"


@dataclass
class Translation:
    text: str
    todos: list[str] = field(default_factory=list)
    jinja: bool = False  # the text needs Jinja rendering
    variables: set[str] = field(default_factory=set)  # Airflow Variables it reads (secret parameters)


@dataclass(frozen=True, kw_only=True)
class Context:
    pipeline: Pipeline
    times: TimeVars
    params: frozenset[str]
    secrets: frozenset[str]


_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+)|(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")|(?P<name>[*@A-Za-z_][\w@.*]*)|(?P<op>[(),+\-]))"
)


def translate(value: str, obj: PipelineObject, ctx: Context, *, depth: int = 0) -> Translation:
    """Translate every ``#{...}`` of ``value`` (a field of ``obj``)."""
    out: list[str] = []
    result = Translation(text="")
    pos = 0
    while True:
        start = value.find("#{", pos)
        if start < 0:
            out.append(value[pos:])
            break
        end = _closing(value, start + 2)
        out.append(value[pos:start])
        expr = value[start + 2 : end]
        try:
            kind, code = _Parser(expr, obj, ctx, depth).parse()
            if kind in ("literal", "string") or (kind == "number" and code.isdigit()):
                out.append(code)
            else:
                out.append("{{ " + _as_text(kind, code) + " }}")
                result.jinja = True
            if code.startswith("var.value."):
                result.variables.add(code.removeprefix("var.value."))
        except Untranslatable as exc:
            out.append(value[start : end + 1])
            result.todos.append(f"#{{{expr}}}: {exc}")
        except _Nested as nested:
            out.append(nested.translation.text)
            result.todos.extend(nested.translation.todos)
            result.jinja = result.jinja or nested.translation.jinja
            result.variables |= nested.translation.variables
        pos = end + 1
    result.text = "".join(out)
    return result


def _closing(value: str, pos: int) -> int:
    quote = ""
    for i in range(pos, len(value)):
        ch = value[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "}":
            return i
    return len(value) - 1


def _as_text(kind: str, code: str) -> str:
    if kind == "datetime":
        return f"{code}.strftime('{DATETIME_FORMAT}')"
    return code


class _Nested(Exception):  # noqa: N818 - control flow: a field reference whose value was translated whole
    def __init__(self, translation: Translation) -> None:
        super().__init__()
        self.translation = translation


def joda_to_strftime(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "'":
            close = pattern.find("'", i + 1)
            if close < 0:
                raise Untranslatable(f"unbalanced quote in date pattern '{pattern}'")
            out.append(pattern[i + 1 : close].replace("%", "%%") or "'")
            i = close + 1
            continue
        if ch.isalpha():
            run = ch
            while i + len(run) < len(pattern) and pattern[i + len(run)] == ch:
                run += ch
            mapped = dict(JODA_TO_STRFTIME).get(run)
            if mapped is None:
                raise Untranslatable(f"date pattern letters '{run}' have no strftime equivalent")
            out.append(mapped)
            i += len(run)
            continue
        out.append("%%" if ch == "%" else ch)
        i += 1
    return "".join(out)


class _Parser:
    """Recursive descent over one expression; returns (kind, code) with kind in
    literal (plain text), datetime / number / text (Jinja expressions)."""

    def __init__(self, expr: str, obj: PipelineObject, ctx: Context, depth: int) -> None:
        self.tokens = self._tokenize(expr)
        self.i = 0
        self.obj, self.ctx, self.depth = obj, ctx, depth

    @staticmethod
    def _tokenize(expr: str) -> list[tuple[str, str]]:
        tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(expr.rstrip()):
            m = _TOKEN.match(expr, pos)
            if not m or m.end() == pos:
                raise Untranslatable(f"cannot read '{expr[pos:].strip()}'")
            kind = m.lastgroup or ""
            tokens.append((kind, m.group(kind)))
            pos = m.end()
        return tokens

    def parse(self) -> tuple[str, str]:
        kind, code = self._atom()
        if self.i < len(self.tokens):
            raise Untranslatable("arithmetic and string operators are not translated")
        return kind, code

    def _next(self) -> tuple[str, str]:
        if self.i >= len(self.tokens):
            raise Untranslatable("incomplete expression")
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def _peek(self, text: str) -> bool:
        return self.i < len(self.tokens) and self.tokens[self.i][1] == text

    def _atom(self) -> tuple[str, str]:
        kind, text = self._next()
        if kind == "num":
            return "number", text
        if kind == "str":
            return "string", text[1:-1]
        if kind != "name":
            raise Untranslatable(f"unexpected '{text}'")
        if self._peek("("):
            self._next()
            args = self._args()
            return self._call(text, args)
        if "." in text and text.split(".")[-1] == "format" and self._peek("("):
            raise Untranslatable("method call")  # pragma: no cover - tokenizer keeps '.format' in the name
        if text.endswith(".format"):
            raise Untranslatable("format without arguments")
        return self._name(text)

    def _args(self) -> list[tuple[str, str]]:
        args: list[tuple[str, str]] = []
        if self._peek(")"):
            self._next()
            return args
        while True:
            args.append(self._atom())
            _, sep = self._next()
            if sep == ")":
                return args
            if sep != ",":
                raise Untranslatable(f"expected ',' or ')' but found '{sep}'")

    def _call(self, name: str, args: list[tuple[str, str]]) -> tuple[str, str]:
        if name.endswith(".format"):  # method form: @scheduledStartTime.format('...')
            target = self._name(name.removesuffix(".format"))
            return self._call("format", [target, *args])
        if name == "format" and len(args) == 2 and args[0][0] == "datetime" and args[1][0] == "string":
            return "text", f"{args[0][1]}.strftime('{joda_to_strftime(args[1][1])}')"
        for prefix in ("plus", "minus"):
            unit = DATE_SHIFTS.get(name.removeprefix(prefix)) if name.startswith(prefix) else None
            if unit and len(args) == 2 and args[0][0] == "datetime" and args[1][0] == "number":
                sign = "+" if prefix == "plus" else "-"
                return "datetime", f"({args[0][1]} {sign} {_delta(unit, int(args[1][1]))})"
        if name in DATE_PARTS and len(args) == 1 and args[0][0] == "datetime":
            attr = DATE_PARTS[name]
            code = f"{args[0][1]}.timetuple().tm_yday" if attr == "day_of_year" else f"{args[0][1]}.{attr}"
            return "number", code
        if name in DATE_ROUNDING and len(args) == 1 and args[0][0] == "datetime":
            base = args[0][1]
            day = ", day=1" if name == "firstOfMonth" else ""
            return "datetime", f"{base}.replace(hour=0, minute=0, second=0, microsecond=0{day})"
        raise Untranslatable(f"function {name}() with these arguments is not translated")

    def _name(self, name: str) -> tuple[str, str]:
        parts = name.split(".")
        if parts[0] == "node":  # the referring object: same DAG run; in a callback, the task
            parts = parts[1:]
            if self.obj.type == "SnsAlarm" and parts in (["name"], ["id"], ["@id"]):
                return "text", "ti.task_id"
        if len(parts) == 1:
            return self._simple(parts[0])
        return self._linked(parts)

    def _simple(self, name: str) -> tuple[str, str]:
        times = self.ctx.times
        runtime = {
            "@scheduledStartTime": times.start,
            "@scheduledEndTime": times.end,
            "@actualStartTime": "ti.start_date",
        }
        if name in runtime:
            return "datetime", runtime[name]
        bare = name.lstrip("*")
        if bare in self.ctx.secrets:
            return "text", f"var.value.{bare}"
        if bare in self.ctx.params:
            return "text", f"params.{bare}"
        if name in ("id", "@id"):
            return "literal", self.obj.id
        if name in ("name", "@name"):
            return "literal", self.obj.name
        if name.startswith("@"):
            raise Untranslatable(f"runtime field {name} has no Airflow equivalent")
        return self._field(self.obj, name)

    def _linked(self, parts: list[str]) -> tuple[str, str]:
        obj = self.obj
        for hop in parts[:-1]:
            target = obj.ref(hop)
            if target is None:
                raise Untranslatable(f"'{obj.id}' has no reference '{hop}'")
            obj = self.ctx.pipeline.objects[target]
        last = parts[-1]
        if last in ("id", "@id"):
            return "literal", obj.id
        if last.startswith("@") and last in ("@scheduledStartTime", "@scheduledEndTime", "@actualStartTime"):
            return self._simple(last)
        return self._field(obj, last)

    def _field(self, obj: PipelineObject, key: str) -> tuple[str, str]:
        value = obj.get(key)
        if value is None:
            raise Untranslatable(f"'{obj.id}' has no field or parameter '{key}'")
        if self.depth > 8:
            raise Untranslatable("field references nest too deep")
        nested = translate(value, obj, self.ctx, depth=self.depth + 1)
        if self.i == len(self.tokens):  # the whole expression is this reference: splice it in
            raise _Nested(nested)
        if nested.jinja or nested.todos:
            raise Untranslatable(f"field '{key}' of '{obj.id}' is itself an expression")
        return "string", nested.text


def _delta(unit: str, n: int) -> str:
    if unit in ("months", "years"):
        return f"macros.dateutil.relativedelta.relativedelta({unit}={n})"
    return f"macros.timedelta({unit}={n})"


def period_delta(unit: str, n: int) -> str:
    """The Jinja shift of one schedule period (used for @scheduledEndTime under trigger timetables)."""
    return _delta(unit, n)
