#!/usr/bin/env python3
"""Synth cost of the app next to the smallest possible MWAA app, measured in one run.

Times (wall clock, median of --repeat runs, after one warm-up synth so jsii start-up is not
counted): synthesizing every shipped stage (4 stacks each, cdk-nag plugin on, as `make synth`
does minus the CLI), against a one-stack app holding a single ``CfnEnvironment``. Prints the
ratio. Informational only: nothing asserts on it.

    .venv/bin/python bench/synth_bench.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "lambda"), str(ROOT)]
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")  # Node 20 is past end of life

import aws_cdk as cdk  # noqa: E402
from aws_cdk import aws_mwaa as mwaa  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from stacks import build_stage  # noqa: E402
from stacks.config import load_stage  # noqa: E402

CONTEXT = json.loads((ROOT / "cdk.json").read_text())["context"]
STAGES = sorted(p.stem for p in (ROOT / "config").glob("*.yaml"))


def synth_all_stages(outdir: str) -> None:
    for stage in STAGES:
        app = cdk.App(context=dict(CONTEXT, stage=stage), outdir=f"{outdir}/{stage}")
        build_stage(app, load_stage(stage))
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
        app.synth()


def synth_one_environment(outdir: str) -> None:
    app = cdk.App(context=CONTEXT, outdir=f"{outdir}/minimal")
    stack = cdk.Stack(app, "Minimal", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    mwaa.CfnEnvironment(
        stack,
        "Environment",
        name="minimal",
        airflow_version="2.10.3",
        dag_s3_path="dags",
        execution_role_arn="arn:aws:iam::111111111111:role/minimal",
        source_bucket_arn="arn:aws:s3:::minimal-dags",
        network_configuration=mwaa.CfnEnvironment.NetworkConfigurationProperty(
            subnet_ids=["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
            security_group_ids=["sg-0123456789abcdef0"],
        ),
    )
    app.synth()


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            fn(d)
            out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    timed(synth_one_environment, 1)  # warm-up: jsii runtime and module loading
    one = timed(synth_one_environment, args.repeat)
    allst = timed(synth_all_stages, args.repeat)
    m_one, m_all = statistics.median(one), statistics.median(allst)
    print(f"one CfnEnvironment app : {m_one:7.2f} s (median of {args.repeat})")
    print(f"all stages ({len(STAGES)}: {', '.join(STAGES)}): {m_all:7.2f} s ({m_all / len(STAGES):.2f} s per stage)")
    print(f"ratio all stages / one environment : {m_all / m_one:.1f}x")
    print(f"ratio per stage / one environment  : {m_all / len(STAGES) / m_one:.1f}x")


if __name__ == "__main__":
    main()
