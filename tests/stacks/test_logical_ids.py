"""Stateful resources keep their logical IDs: a changed ID means CloudFormation replaces
(deletes) the bucket, key, log group, VPC or environment. If this fails, you renamed or moved
a construct: move it back (or add an explicit override_logical_id), do not update the list."""

from __future__ import annotations

STATEFUL = {
    "AWS::S3::Bucket",
    "AWS::KMS::Key",
    "AWS::Logs::LogGroup",
    "AWS::MWAA::Environment",
    "AWS::EC2::VPC",
    "AWS::EC2::Subnet",
}

LOG_GROUPS = {
    "EnvironmentDAGProcessingLogsFD4B22D8",
    "EnvironmentSchedulerLogsBB4EC7D4",
    "EnvironmentTaskLogs41CAC725",
    "EnvironmentWebServerLogs31DFEC3A",
    "EnvironmentWorkerLogs6930F8D4",
}
ENV = {"EnvironmentDagBucket91287598"} | LOG_GROUPS
STORAGE = {"MigrationKeyB00007D5", "MigrationBucketD3297513", "AccessLogsBucket83982689"}
VPC = {"Vpc8378EB38", "VpcPrivateSubnet1Subnet536B997A", "VpcPrivateSubnet2Subnet3788AAA1"}
# the migration wiring's own log groups (DAG publisher, clone, runner)
PUBLISHER = {"DagPublisherSharedLogs696A45AB"}
# One handler log group since the runner is built on CustomResourceProvider (it had one per
# function and one for the waiter, whose logging is now off): a deliberate change.
RUNNER = {"MigrationRunFrameworkLogs24DD4BC9", "MigrationRunLogsCB8642D4"}
CLONE = {"CloneFrameworkLogsD6152208", "CloneLogs8DDEE91E"}

# The environments' stateful parts stay where they were when the migration's custom
# resources moved to the migration stack (clone and runner keep their construct ids there,
# so their logical IDs are the same as before).
EXPECTED = {
    "dev": {
        "storage": STORAGE,
        "network": VPC | {"FlowLogGroup3E25AA51"},
        "source": ENV | {"Environment2DC7E04C"} | PUBLISHER,
        "target": ENV | PUBLISHER,
        "migration": RUNNER | CLONE,
    },
    "prod": {
        "storage": STORAGE,
        "network": VPC | {"FlowLogGroup3E25AA51", "VpcPublicSubnet1Subnet5C2D37C4", "VpcPublicSubnet2Subnet691E08A3"},
        "source": ENV | {"Environment2DC7E04C"} | PUBLISHER,
        "target": ENV | {"Environment2DC7E04C", "EnvironmentKeyB497DD2D"} | PUBLISHER,
        "migration": RUNNER,
    },
    "existing-vpc.example": {
        "storage": STORAGE,
        "network": {"FlowLogGroup3E25AA51"},
        "source": PUBLISHER,
        "target": ENV | {"Environment2DC7E04C"} | PUBLISHER,
        "migration": RUNNER,
    },
    # migration.metadata: false: no publisher, no runner; the environments' parts are the same
    "inplace-3x.example": {
        "storage": STORAGE,
        "network": VPC | {"FlowLogGroup3E25AA51"},
        "source": ENV | {"Environment2DC7E04C"},
        "target": ENV,
        "migration": CLONE,
    },
}


def test_stateful_logical_ids_are_stable(stage):
    expected = EXPECTED[stage.cfg.stage]
    for which, ids in expected.items():
        t = stage.json(which)
        actual = {k for k, r in t["Resources"].items() if r["Type"] in STATEFUL}
        assert actual == ids, which


def test_stack_names_are_prefixed_by_stage(stage):
    p = stage.cfg.stack_prefix
    names = [
        s.stack_name
        for s in (
            stage.stacks.network,
            stage.stacks.storage,
            stage.stacks.source,
            stage.stacks.target,
            stage.stacks.migration,
        )
    ]
    assert names == [f"{p}-network", f"{p}-migration-storage", f"{p}-source", f"{p}-target", f"{p}-migration"]
