"""Per-pipeline configuration: ``config/pipelines/<name>.yaml`` read into a frozen dataclass.

A pipeline file says where the upgrade pipeline lives (account, region), where it reads the
code (a CodeStar/CodeConnections connection, repository, branch) and which stages it deploys,
in order, each optionally behind a manual approval::

    account: "111111111111"
    region: eu-west-1
    connection_arn: arn:aws:codeconnections:eu-west-1:111111111111:connection/<uuid>
    repository: owner/name
    branch: main
    stages:
      - stage: dev          # config/dev.yaml
      - stage: prod
        protected: true     # manual approval before it

Validated like the stage files (same ConfigError: file, field, value, what is allowed;
unknown keys are errors). Every referenced stage file is loaded and validated too, and must
live in the pipeline's account and region: the post-deployment check runs with the pipeline's
CodeBuild role, which can read only its own account's environments and buckets. The stage
files themselves stay in ``config/`` (what ``make synth`` iterates); pipeline files are one
level down so they are never taken for a stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from stacks.config import (
    CONFIG_DIR,
    ConfigError,
    Section,
    StageConfig,
    account_and_region,
    load_stage,
    read_config_file,
    regex,
)
from stacks.pipeline_stack import CONNECTION_ARN, REPOSITORY, STAGE_NAME

PIPELINES_DIR = CONFIG_DIR / "pipelines"
PIPELINE_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
# git check-ref-format, the parts a config is likely to get wrong.
BRANCH_RE = re.compile(r"^(?!/)(?!.*//)(?!.*\.\.)(?!.*@\{)(?!.*\.lock$)(?!.*/$)[^\s~^:?*\[\\\x00-\x1f]{1,200}$")


@dataclass(frozen=True)
class PipelineStage:
    """One stage of the pipeline, in order: ``config/<stage>.yaml`` loaded and validated."""

    stage: str
    protected: bool
    config: StageConfig

    @property
    def report_key(self) -> str:
        """Where ``db_import`` writes the report (docs/contracts.md §3)."""
        return f"{self.config.export_prefix}{self.config.migration.id}/report.json"


@dataclass(frozen=True)
class PipelineConfig:
    name: str
    file: Path
    account: str
    region: str
    connection_arn: str
    repository: str
    branch: str
    stages: tuple[PipelineStage, ...]

    @property
    def stack_name(self) -> str:
        return f"mwaa-upgrade-pipeline-{self.name}"


def _stage(file: Path, index: int, item: object, config_dir: Path, account: str, region: str) -> PipelineStage:
    sec = Section(file, f"stages[{index}]", item)
    name = sec.get(
        "stage",
        str,
        check=regex(
            STAGE_NAME,
            "a stage name of lowercase letters, digits and '-' starting with a letter "
            "(a CodePipeline stage and a config/<stage>.yaml file)",
        ),
    )
    protected = sec.get("protected", bool, False)
    sec.done()
    try:
        cfg = load_stage(name, config_dir)
    except ConfigError as e:
        # The stage file's own message, prefixed with where the pipeline referenced it.
        raise ConfigError(file, sec.sub("stage"), name, f"a valid stage file; {e}") from None
    if (cfg.account, cfg.region) != (account, region):
        raise ConfigError(
            file,
            sec.sub("stage"),
            name,
            f"a stage in the pipeline's account {account} and region {region} "
            f"({cfg.file.name} deploys to {cfg.account} {cfg.region}); the "
            f"post-deployment check runs with the pipeline's own role",
        )
    return PipelineStage(stage=name, protected=protected, config=cfg)


def load_pipeline(name: str, config_dir: Path | None = None) -> PipelineConfig:
    """Read and validate ``<config_dir>/pipelines/<name>.yaml`` and the stage files it names."""
    config_dir = Path(config_dir) if config_dir is not None else CONFIG_DIR
    file = config_dir / "pipelines" / f"{name}.yaml"
    if not isinstance(name, str) or not PIPELINE_NAME_RE.fullmatch(name):
        raise ConfigError(
            file,
            "pipeline",
            name,
            "a pipeline name of lowercase letters, digits and '-' (config/pipelines/<name>.yaml)",
        )
    top = read_config_file(file, "pipeline", name, "a pipeline")
    account, region = account_and_region(top)
    connection_arn = top.get(
        "connection_arn",
        str,
        check=regex(
            CONNECTION_ARN,
            "arn:aws:codeconnections:<region>:<account>:connection/<uuid> "
            "(or codestar-connections), from the console's Connections page",
        ),
    )
    conn_account = connection_arn.split(":")[4]
    if conn_account != account:
        raise top.error("connection_arn", connection_arn, f"a connection in the pipeline's account {account}")
    repository = top.get("repository", str, check=regex(REPOSITORY, "owner/name of the repository"))
    branch = top.get("branch", str, check=regex(BRANCH_RE, "a git branch name such as main"))
    items = top.get("stages", list)
    top.done()
    if not items:
        raise top.error("stages", items, "at least one stage: - stage: <name> [protected: true]")
    stages = tuple(_stage(file, i, item, config_dir, account, region) for i, item in enumerate(items))
    seen: dict[str, int] = {}
    for i, st in enumerate(stages):
        if st.stage in seen:
            raise ConfigError(
                file, f"stages[{i}].stage", st.stage, f"each stage once (already stages[{seen[st.stage]}])"
            )
        seen[st.stage] = i
    names: dict[str, str] = {}
    for i, st in enumerate(stages):
        for what, value in (
            ("target environment", st.config.target.environment.name),
            ("migration bucket", st.config.migration_bucket_name),
            ("stack prefix", st.config.stack_prefix),
        ):
            key = f"{what} {value}"
            if key in names:
                raise ConfigError(
                    file,
                    f"stages[{i}].stage",
                    st.stage,
                    f"stages that do not share a {what} ({value} is also stage {names[key]}'s)",
                )
            names[key] = st.stage
    return PipelineConfig(
        name=name,
        file=file,
        account=account,
        region=region,
        connection_arn=connection_arn,
        repository=repository,
        branch=branch,
        stages=stages,
    )


def pipeline_names(config_dir: Path | None = None) -> list[str]:
    config_dir = Path(config_dir) if config_dir is not None else CONFIG_DIR
    return sorted(p.stem for p in (config_dir / "pipelines").glob("*.yaml"))
