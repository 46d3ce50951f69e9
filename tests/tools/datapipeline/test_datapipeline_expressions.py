"""Expression language -> Jinja: parameters, run times, date functions, field references, TODOs."""

from __future__ import annotations

import json

import pytest

from tools.datapipeline.definition import load
from tools.datapipeline.expressions import Context, TimeVars, joda_to_strftime, translate

PIPELINE = load(
    json.dumps(
        {
            "objects": [
                {"id": "Node", "type": "S3DataNode", "directoryPath": "s3://bucket/#{myPrefix}/", "myNote": "fixed"},
                {
                    "id": "Act",
                    "type": "ShellCommandActivity",
                    "input": {"ref": "Node"},
                    "command": "x",
                    "myFolder": "#{input.directoryPath}day=#{format(@scheduledStartTime,'YYYY-MM-dd')}",
                },
            ]
        }
    )
)
CTX = Context(
    pipeline=PIPELINE, times=TimeVars(), params=frozenset({"myPrefix", "myDays"}), secrets=frozenset({"myPassword"})
)
ACT = PIPELINE.objects["Act"]


@pytest.mark.parametrize(
    ("expr", "jinja"),
    [
        ("#{myPrefix}", "{{ params.myPrefix }}"),
        ("#{*myPassword}", "{{ var.value.myPassword }}"),
        ("#{format(@scheduledStartTime,'YYYY-MM-dd')}", "{{ data_interval_start.strftime('%Y-%m-%d') }}"),
        ("#{@scheduledStartTime.format('yyyyMMdd-HH')}", "{{ data_interval_start.strftime('%Y%m%d-%H') }}"),
        (
            "#{format(minusDays(@scheduledStartTime,1),'YYYY-MM-dd')}",
            "{{ (data_interval_start - macros.timedelta(days=1)).strftime('%Y-%m-%d') }}",
        ),
        (
            "#{format(plusMonths(@scheduledEndTime, 2), 'MMM yyyy')}",
            "{{ (data_interval_end + macros.dateutil.relativedelta.relativedelta(months=2)).strftime('%b %Y') }}",
        ),
        ("#{hour(@scheduledStartTime)}", "{{ data_interval_start.hour }}"),
        ("#{dayOfYear(@scheduledStartTime)}", "{{ data_interval_start.timetuple().tm_yday }}"),
        (
            "#{format(firstOfMonth(@scheduledStartTime),'YYYY-MM-dd')}",
            "{{ data_interval_start.replace(hour=0, minute=0, second=0, microsecond=0, day=1).strftime('%Y-%m-%d') }}",
        ),
        ("#{@scheduledStartTime}", "{{ data_interval_start.strftime('%Y-%m-%dT%H:%M:%S') }}"),
        ("#{node.@scheduledStartTime}", "{{ data_interval_start.strftime('%Y-%m-%dT%H:%M:%S') }}"),
        ("#{id}", "Act"),
        ("#{input.myNote}", "fixed"),
        ("#{myFolder}", "s3://bucket/{{ params.myPrefix }}/day={{ data_interval_start.strftime('%Y-%m-%d') }}"),
        ("plain text", "plain text"),
    ],
)
def test_translated(expr, jinja):
    result = translate(expr, ACT, CTX)
    assert result.text == jinja
    assert result.todos == []


@pytest.mark.parametrize(
    ("expr", "why"),
    [
        ("#{@pipelineId}", "runtime field @pipelineId"),
        ("#{myUnknown}", "no field or parameter 'myUnknown'"),
        ("#{myDays * 2}", "operators are not translated"),
        ("#{makeDate(2024,1,1)}", "function makeDate()"),
        ("#{format(@scheduledStartTime,'YYYY-MM-dd SSS')}", "letters 'SSS'"),
    ],
)
def test_untranslatable_stays_verbatim_and_is_a_todo(expr, why):
    result = translate(f"run {expr} now", ACT, CTX)
    assert result.text == f"run {expr} now"
    assert len(result.todos) == 1 and why in result.todos[0]


def test_trigger_timetables_shift_the_end_by_one_period():
    ctx = Context(
        pipeline=PIPELINE,
        times=TimeVars(end="(data_interval_start + macros.timedelta(hours=6))"),
        params=frozenset(),
        secrets=frozenset(),
    )
    assert translate("#{format(@scheduledEndTime,'HH')}", ACT, ctx).text == (
        "{{ (data_interval_start + macros.timedelta(hours=6)).strftime('%H') }}"
    )


def test_joda_literals_and_percent():
    assert joda_to_strftime("yyyy-MM-dd'T'HH:mm:ss'%'") == "%Y-%m-%dT%H:%M:%S%%"
