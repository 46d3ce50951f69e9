"""Issue 12 item 3: a new rerun_token gives a fresh export under its own key, and every part
(the stack's conf and outputs, the runner's report location, the DAG library) names the same
place."""

from __future__ import annotations

import json

from mwaa_common import export_layout
from mwaa_migration import conf as confmod
from mwaa_migration.export import keys
from stacks.config import MigrationConfig
from stacks.migration_stack import export_conf, import_conf

BUCKET, PREFIX = "mwaa-migration-1234", "data/migration/2.10.3_to_2.11.0/export/"


def test_rerun_token_gives_its_own_export_key_everywhere():
    plain = export_conf(MigrationConfig(id="m-1"), bucket=BUCKET, prefix=PREFIX)
    assert "rerun" not in plain and keys(plain)["base"] == PREFIX + "m-1/"
    mig = MigrationConfig(id="m-1", rerun_token="second try")
    exp = export_conf(mig, bucket=BUCKET, prefix=PREFIX)
    imp = import_conf(mig, bucket=BUCKET, prefix=PREFIX, source_environment="a", target_environment="b")
    assert exp["rerun"] == imp["rerun"] == export_layout.rerun_key("second try")
    want = PREFIX + "m-1/reruns/" + exp["rerun"] + "/"
    for c in (confmod.validate(exp, for_import=False), confmod.validate(imp, for_import=True)):
        assert keys(c)["base"] == want and keys(c)["manifest"] == want + "manifest.json"
    assert export_layout.export_base(PREFIX, "m-1", exp["rerun"]) == want
    other = export_layout.rerun_key("third try")
    assert other != exp["rerun"] and len(other) == 12


def test_runner_report_location_follows_the_rerun():
    from dag_runner import plan

    conf = {"bucket": BUCKET, "prefix": PREFIX, "migration_id": "m-1", "rerun": "abc"}
    props = plan.parse_props({
        "EnvironmentName": "env-b", "AirflowVersion": "2.11.0", "DagId": "db_import", "MigrationId": "m-1",
        "Step": "import", "Conf": json.dumps(conf), "RerunToken": "x",
    })  # fmt: skip
    assert plan.report_location(props) == f"s3://{BUCKET}/{PREFIX}m-1/reruns/abc/report.json"
