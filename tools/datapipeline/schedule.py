"""Schedule objects -> DAG schedule, start_date and end_date (pure).

A period that a cron expression can express from the start time (minutes dividing an hour,
hours dividing a day, one day, one week, months dividing a year, one year) becomes a cron
expression anchored at ``startDateTime``; any other period a ``timedelta``. ``timeseries``
(instance at the end of the period) is Airflow's data-interval schedule; ``cron`` (instance at
the start) is ``CronTriggerTimetable``; ``ondemand`` is ``schedule=None``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dateutil.relativedelta import relativedelta

from tools.datapipeline.definition import DefinitionError, PipelineObject
from tools.datapipeline.expressions import TimeVars, period_delta
from tools.datapipeline.mapping import FIRST_ACTIVATION_START

_PERIOD = re.compile(r"^\s*(\d+)\s*(minute|hour|day|week|month|year)s?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Period:
    n: int
    unit: str  # plural: minutes, hours, days, weeks, months, years

    def relativedelta(self) -> relativedelta:
        return relativedelta(**{self.unit: self.n})

    def timedelta_code(self) -> str | None:
        if self.unit in ("months", "years"):
            return None
        return f"timedelta({self.unit}={self.n})"


def parse_period(obj: PipelineObject, key: str) -> Period | None:
    raw = obj.get(key)
    if raw is None:
        return None
    m = _PERIOD.match(raw)
    if not m:
        raise DefinitionError(
            f"object '{obj.id}': field '{key}' = {raw!r} is not a period (expected 'N minutes|hours|days|weeks|months')"
        )
    return Period(int(m.group(1)), m.group(2).lower() + "s")


def _parse_time(obj: PipelineObject, key: str) -> datetime | None:
    raw = obj.get(key)
    if raw is None:
        return None
    try:
        return datetime.strptime(raw.strip(), "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise DefinitionError(
            f"object '{obj.id}': field '{key}' = {raw!r} is not a UTC time (expected YYYY-MM-DDTHH:MM:SS)"
        ) from None


@dataclass
class DagSchedule:
    schedule: str | None  # Python code of the schedule argument
    start: datetime | None
    end: datetime | None
    times: TimeVars
    imports: set[tuple[str, str]] = field(default_factory=set)  # (module, name)
    notes: list[str] = field(default_factory=list)
    todos: list[str] = field(default_factory=list)


def cron_for(period: Period, start: datetime) -> str | None:
    """A cron expression firing every ``period`` from ``start``, or None if cron cannot say it."""
    m, h, d = start.minute, start.hour, start.day
    n = period.n
    if period.unit == "minutes" and 60 % n == 0:
        return "* * * * *" if n == 1 else f"{m % n}-59/{n} * * * *"
    if period.unit == "minutes" and n % 60 == 0:
        return cron_for(Period(n // 60, "hours"), start)
    if period.unit == "hours" and 24 % n == 0:
        return f"{m} * * * *" if n == 1 else f"{m} {h % n}-23/{n} * * *"
    if period.unit == "hours" and n % 24 == 0:
        return cron_for(Period(n // 24, "days"), start)
    if period.unit == "days" and n == 1:
        return f"{m} {h} * * *"
    if period.unit == "weeks" and n == 1:
        return f"{m} {h} * * {(start.weekday() + 1) % 7}"
    if period.unit == "months" and 12 % n == 0 and d <= 28:
        months = (
            "*"
            if n == 1
            else ",".join(str(x) for x in sorted({(start.month - 1 + k * n) % 12 + 1 for k in range(12 // n)}))
        )
        return f"{m} {h} {d} {months} *"
    if period.unit == "years" and n == 1 and d <= 28:
        return f"{m} {h} {d} {start.month} *"
    return None


def plan_schedule(
    default: PipelineObject | None, schedule: PipelineObject | None, *, explicit_intervals: bool = False
) -> DagSchedule:
    """``explicit_intervals``: name the data-interval timetables (Airflow 3 turns a bare cron
    string into a trigger timetable, which would move @scheduledStartTime to the period's end)."""
    style = (default.get("scheduleType") if default else None) or (schedule.get("scheduleType") if schedule else None)
    style = (style or "").lower()
    if style == "ondemand" or schedule is None:
        result = DagSchedule(schedule=None, start=None, end=None, times=TimeVars())
        if style != "ondemand":
            result.notes.append("no Schedule object: the DAG runs when triggered (schedule=None)")
        else:
            result.notes.append("ondemand: one DAG run per trigger (schedule=None), like one run per ActivatePipeline")
        return result
    period = parse_period(schedule, "period")
    if period is None:
        raise DefinitionError(f"object '{schedule.id}': Schedule needs 'period'")
    if style not in ("cron", "timeseries"):
        style = "timeseries"
        notes = ["scheduleType not set: converted as timeseries (a run at the end of each period)"]
    else:
        notes = []
    start = _parse_time(schedule, "startDateTime")
    if start is None:
        if schedule.get("startAt") != "FIRST_ACTIVATION_DATE_TIME":
            raise DefinitionError(
                f"object '{schedule.id}': Schedule needs 'startDateTime' or 'startAt' = FIRST_ACTIVATION_DATE_TIME"
            )
        start = datetime.strptime(FIRST_ACTIVATION_START, "%Y-%m-%dT%H:%M:%S")
        notes.append(
            f"startAt FIRST_ACTIVATION_DATE_TIME: start_date {FIRST_ACTIVATION_START} with catchup=False, so the "
            "first run is the latest period before the DAG is unpaused"
        )
    result = _timetable(style, period, start, schedule, explicit_intervals)
    result.notes[:0] = notes
    _end(result, schedule, period, start)
    return result


def _timetable(style: str, period: Period, start: datetime, schedule: PipelineObject, explicit: bool) -> DagSchedule:
    cron = cron_for(period, start)
    delta = period.timedelta_code()
    if style == "cron" and cron is not None:
        result = DagSchedule(
            schedule=f'CronTriggerTimetable("{cron}", timezone="UTC")',
            start=start,
            end=None,
            times=TimeVars(
                start="data_interval_start", end=f"(data_interval_start + {period_delta(period.unit, period.n)})"
            ),
        )
        result.imports.add(("airflow.timetables.trigger", "CronTriggerTimetable"))
        result.notes.append(f"cron style, every {period.n} {period.unit}: a run at the start of each period ({cron})")
        return result
    result = DagSchedule(schedule=None, start=start, end=None, times=TimeVars())
    if cron is not None:
        result.schedule = f'"{cron}"'
        if explicit:
            result.schedule = f'CronDataIntervalTimetable("{cron}", timezone="UTC")'
            result.imports.add(("airflow.timetables.interval", "CronDataIntervalTimetable"))
    elif delta is not None:
        result.schedule = f"DeltaDataIntervalTimetable({delta})" if explicit else delta
        if explicit:
            result.imports.add(("airflow.timetables.interval", "DeltaDataIntervalTimetable"))
        result.imports.add(("datetime", "timedelta"))
    else:
        result.todos.append(
            f"Schedule '{schedule.id}': period {period.n} {period.unit} has no cron or timedelta form; set the schedule"
        )
        return result
    if style == "cron":
        result.notes.append(
            f"cron style every {period.n} {period.unit} has no cron form: converted as a data-interval schedule "
            "(runs at the end of each period)"
        )
    else:
        result.notes.append(f"timeseries, every {period.n} {period.unit}: a run at the end of each period")
    return result


def _end(result: DagSchedule, schedule: PipelineObject, period: Period, start: datetime) -> None:
    end = _parse_time(schedule, "endDateTime")
    occurrences = schedule.get("occurrences")
    if end is not None and occurrences is not None:
        raise DefinitionError(f"object '{schedule.id}': Schedule has both endDateTime and occurrences (one only)")
    if occurrences is not None:
        if not occurrences.strip().isdigit() or int(occurrences) < 1:
            raise DefinitionError(f"object '{schedule.id}': occurrences = {occurrences!r} is not a positive integer")
        if schedule.get("startAt") == "FIRST_ACTIVATION_DATE_TIME":
            result.todos.append(
                f"Schedule '{schedule.id}': {occurrences} occurrences from first activation has no fixed end; "
                "set end_date when you unpause the DAG"
            )
            return
        end = start + period.relativedelta() * (int(occurrences) - 1)
        result.notes.append(f"occurrences {occurrences}: end_date at the start of the last period")
    result.end = end


def timedelta_of(obj: PipelineObject, key: str) -> tuple[str | None, str | None]:
    """(``timedelta(...)`` code, note) of a duration field such as retryDelay."""
    period = parse_period(obj, key)
    if period is None:
        return None, None
    code = period.timedelta_code()
    if code is None:
        return None, f"{key} = {obj.get(key)} (months/years) has no fixed duration; not converted"
    return code, None


def seconds_of(obj: PipelineObject, key: str) -> int | None:
    period = parse_period(obj, key)
    if period is None or period.unit in ("months", "years"):
        return None
    return int(timedelta(**{period.unit: period.n}).total_seconds())
