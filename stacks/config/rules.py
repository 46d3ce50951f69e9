"""Rules across sections of a stage file, checked once every section has been read: names
that must differ, the upgrade path, and what a metadata migration needs of both versions."""

from __future__ import annotations

from pathlib import Path

from mwaa_common import names, versions
from stacks.config.reader import ConfigError, Shown
from stacks.config.schema import KMS_KEY_ARN_RE, ROLE_ARN_RE, S3_BUCKET_ARN_RE, StageConfig


def cross_checks(file: Path, cfg: StageConfig) -> None:
    src, tgt = cfg.source.environment, cfg.target.environment
    if cfg.storage.bucket_name is None and (problem := names.bucket_name_problem(cfg.migration_bucket_name)):
        raise ConfigError(
            file,
            "storage.bucket_name",
            None,
            f"a name (the default {cfg.migration_bucket_name} "
            + (
                "is longer than S3's 63 characters"
                if len(cfg.migration_bucket_name) > 63
                else f"is not allowed: {problem}"
            )
            + "; set storage.bucket_name or a shorter stack_prefix)",
        )
    if src.name == tgt.name:
        raise ConfigError(
            file, "target.name", tgt.name, "a name different from source.name (blue/green needs two environments)"
        )
    path = versions.upgrade_path(src.airflow_version, tgt.airflow_version)
    if not path.allowed:
        raise ConfigError(
            file, "target.airflow_version", tgt.airflow_version, f"{path.reason} (source is {src.airflow_version})"
        )
    _check_tag_count(file, cfg)
    if cfg.migration.metadata:
        check_metadata_migration(file, cfg)
    elif cfg.migration.cutover:
        raise ConfigError(
            file,
            "migration.cutover",
            True,
            "only with migration.metadata: true (the cutover is a step of the metadata import); "
            "remove it or set it to false",
        )
    if cfg.source.mode == "existing":
        _check_existing_source(file, cfg)


def _check_tag_count(file: Path, cfg: StageConfig) -> None:
    """The stage's tags reach every resource, the environments too: with an environment's own tags
    they must stay within MWAA's limit."""
    sides = [("target", cfg.target.environment)]
    if cfg.source.mode == "create":
        sides.append(("source", cfg.source.environment))
    for side, env in sides:
        total = len(set(cfg.tags) | set(env.tags))
        if total > names.TAGS_MAX:
            raise ConfigError(
                file,
                f"{side}.tags",
                Shown(f"<{len(env.tags)} tags, {total} with the stage's tags>"),
                f"at most {names.TAGS_MAX} tags on the environment, the stage's tags included",
            )


def _check_existing_source(file: Path, cfg: StageConfig) -> None:
    """An adopted source lives in this stage's account (and its DAG bucket's key in its region)."""
    m = ROLE_ARN_RE.fullmatch(cfg.source.role_arn or "")
    if m and m.group(1) != cfg.account:
        raise ConfigError(file, "source.role_arn", cfg.source.role_arn, f"a role in this stage's account {cfg.account}")
    b = S3_BUCKET_ARN_RE.fullmatch(cfg.source.dag_bucket_arn or "")
    if b and b.group(1) == cfg.migration_bucket_name:
        raise ConfigError(
            file,
            "source.dag_bucket_arn",
            cfg.source.dag_bucket_arn,
            "the source's DAG bucket, not the migration bucket",
        )
    k = KMS_KEY_ARN_RE.fullmatch(cfg.source.dag_bucket_kms_key_arn or "")
    if k and (k.group(1), k.group(2)) != (cfg.region, cfg.account):
        raise ConfigError(
            file,
            "source.dag_bucket_kms_key_arn",
            cfg.source.dag_bucket_kms_key_arn,
            f"a key in this stage's region {cfg.region} and account {cfg.account}",
        )


def check_metadata_migration(file: Path, cfg: StageConfig) -> None:
    """``migration.metadata: true`` needs both versions in the DAGs' schema table and both
    environments' tasks able to open the metadata database (``metadata_db_from_tasks``:
    db_export runs in the source's tasks, db_import in the target's)."""
    src, tgt = cfg.source.environment.airflow_version, cfg.target.environment.airflow_version
    for side, version in (("source", src), ("target", tgt)):
        if versions.VERSIONS[version]["migration_schema"] is None:
            known = [v for v in versions.known_versions() if versions.VERSIONS[v]["migration_schema"]]
            raise ConfigError(
                file,
                f"{side}.airflow_version",
                version,
                f"the metadata DAGs have no schema for it; supported: {', '.join(known)} "
                "(or set migration.metadata: false to create the environment without its metadata)",
            )
    if not versions.VERSIONS[src]["metadata_db_from_tasks"]:
        raise ConfigError(
            file,
            "migration.metadata",
            True,
            f"db_export runs in the source's tasks, and on MWAA {src} (source.airflow_version) tasks cannot reach "
            "the metadata database. Set migration.metadata: false to create the target without the metadata "
            "(clone or declared environment only)",
        )
    if versions.VERSIONS[tgt]["metadata_db_from_tasks"]:
        return
    via = metadata_stepping_stones(src, tgt)
    if via:
        step = via[-1]
        path = (
            f"The supported path to {tgt}: migrate blue/green to {step} with this tool "
            f"(target.airflow_version: {step}, migration.metadata: true), then upgrade that environment in place "
            f"({step} -> {tgt} is an in-place upgrade, and MWAA migrates its own metadata database during it): "
            f"in the same stage file change target.airflow_version to {tgt} and set migration.metadata: false "
            f"(config/inplace-3x.example.yaml). Rehearse the {step} -> {tgt} schema mapping locally first: "
            f'make rehearse ARGS="--source-version {step} --target-version {tgt}"'
        )
        if versions.upgrade_path(src, tgt).allows_in_place:
            path += (
                f". The source {src} itself can also be upgraded in place to {tgt} (outside this tool; MWAA "
                "keeps its metadata)"
            )
    else:
        path = (
            f"No version in lambda/mwaa_common/versions.py can both receive the metadata and be upgraded in "
            f"place to {tgt}; set migration.metadata: false to create the target without the metadata"
        )
    raise ConfigError(
        file,
        "migration.metadata",
        True,
        f"db_import runs in the target's tasks, and on MWAA {tgt} (target.airflow_version) tasks cannot reach "
        f"the metadata database. {path}",
    )


def metadata_stepping_stones(source: str, target: str) -> list[str]:
    """Versions (oldest first) a metadata migration from ``source`` can go to (MWAA creates them,
    the DAGs know their schema, their tasks reach the metadata database) and from which
    ``target`` is an in-place upgrade. Read from the version table only."""
    out = []
    for v in versions.known_versions():
        row = versions.VERSIONS[v]
        if (
            v == target
            or row["status"] != "available"
            or not row["metadata_db_from_tasks"]
            or row["migration_schema"] is None
        ):
            continue
        if versions.upgrade_path(source, v).allowed and versions.upgrade_path(v, target).allows_in_place:
            out.append(v)
    return out
