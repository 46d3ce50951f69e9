"""MWAA Airflow versions, environment classes and upgrade rules: the one data table.

Everything version-specific that the CDK app, the Lambdas and the CLIs need to decide
lives in the tables below; the functions only read them. Adding a version is one row.

Pure Python (no AWS, no CDK): it is bundled with the Lambdas (the whole ``lambda/``
folder is the asset) and imported by the CDK app with ``lambda/`` on ``sys.path``.
CreateEnvironment stays the final judge: a version MWAA no longer offers is refused by
the service even when this table still lists it.
"""

from __future__ import annotations

from dataclasses import dataclass

# status:
#   "available"  - MWAA creates environments of this version (botocore's documented list)
#   "image-only" - seen in MWAA image repositories, not yet in the API's documented list
#   "retired"    - may still run as a source, but MWAA creates no new environment of it
# rest_api: path family InvokeRestApi maps to (Airflow 2 -> /api/v1, Airflow 3 -> /api/v2)
# metadata_db_from_tasks: tasks can open the metadata DB session (false on MWAA 3.x)
# migration_schema: which schema family the metadata DAGs know for this version
#   (None = the DAGs cannot export/import it)
# secrets_backend: the `secrets.backend` class of the Secrets Manager backend (moved from
#   airflow.contrib to the Amazon provider with Airflow 2)
# alembic_head: the alembic revision `airflow db migrate` of this version leaves in
#   alembic_version (None = not recorded). 2.10.3/2.11.0/2.11.2 share one head; 2.10.1 stops
#   at 2.10.0's last migration. Source: Airflow's migrations reference and schema-diff.md.
_SM_CONTRIB = "airflow.contrib.secrets.aws_secrets_manager.SecretsManagerBackend"
_SM_PROVIDER = "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
VERSIONS: dict[str, dict] = {
    "1.10.12": {
        "status": "retired",
        "rest_api": None,
        "metadata_db_from_tasks": True,
        "migration_schema": None,
        "secrets_backend": _SM_CONTRIB,
        "alembic_head": None,
    },
    "2.7.2": {
        "status": "available",
        "rest_api": "v1",
        "metadata_db_from_tasks": True,
        "migration_schema": "2.7.2",
        "secrets_backend": _SM_PROVIDER,
        "alembic_head": "405de8318b3a",
    },
    "2.8.1": {
        "status": "available",
        "rest_api": "v1",
        "metadata_db_from_tasks": True,
        "migration_schema": "2.8.1",
        "secrets_backend": _SM_PROVIDER,
        "alembic_head": "88344c1d9134",
    },
    "2.9.2": {
        "status": "available",
        "rest_api": "v1",
        "metadata_db_from_tasks": True,
        "migration_schema": "2.9.2",
        "secrets_backend": _SM_PROVIDER,
        "alembic_head": "686269002441",
    },
    "2.10.1": {
        "status": "available",
        "rest_api": "v1",
        "metadata_db_from_tasks": True,
        "migration_schema": "2.10.3",
        "secrets_backend": _SM_PROVIDER,
        "alembic_head": "22ed7efa9da2",
    },
    "2.10.3": {
        "status": "available",
        "rest_api": "v1",
        "metadata_db_from_tasks": True,
        "migration_schema": "2.10.3",
        "secrets_backend": _SM_PROVIDER,
        "alembic_head": "5f2621c13b39",
    },
    "2.11.0": {
        "status": "available",
        "rest_api": "v1",
        "metadata_db_from_tasks": True,
        "migration_schema": "2.10.3",
        "secrets_backend": _SM_PROVIDER,
        "alembic_head": "5f2621c13b39",
    },
    "2.11.2": {
        "status": "image-only",
        "rest_api": "v1",
        "metadata_db_from_tasks": True,
        "migration_schema": "2.10.3",
        "secrets_backend": _SM_PROVIDER,
        "alembic_head": "5f2621c13b39",
    },
    "3.0.6": {
        "status": "available",
        "rest_api": "v2",
        "metadata_db_from_tasks": False,
        "migration_schema": "3.0.6",
        "secrets_backend": _SM_PROVIDER,
        "alembic_head": "fe199e1abd77",
    },
    "3.2.1": {
        "status": "image-only",
        "rest_api": "v2",
        "metadata_db_from_tasks": False,
        "migration_schema": None,
        "secrets_backend": _SM_PROVIDER,
        "alembic_head": None,
    },
    "3.3.1": {
        "status": "image-only",
        "rest_api": "v2",
        "metadata_db_from_tasks": False,
        "migration_schema": None,
        "secrets_backend": _SM_PROVIDER,
        "alembic_head": None,
    },
}

# Environment classes. ``autoscaling`` False means min == max == 1 for workers.
# schedulers/webservers/workers are inclusive (min, max) ranges the service accepts.
# Worker max is MWAA's default quota (25); a raised quota is a per-account matter.
ENVIRONMENT_CLASSES: dict[str, dict] = {
    "mw1.micro": {"schedulers": (1, 1), "webservers": (1, 1), "workers": (1, 1), "autoscaling": False},
    "mw1.small": {"schedulers": (2, 5), "webservers": (2, 5), "workers": (1, 25), "autoscaling": True},
    "mw1.medium": {"schedulers": (2, 5), "webservers": (2, 5), "workers": (1, 25), "autoscaling": True},
    "mw1.large": {"schedulers": (2, 5), "webservers": (2, 5), "workers": (1, 25), "autoscaling": True},
    "mw1.xlarge": {"schedulers": (2, 5), "webservers": (2, 5), "workers": (1, 25), "autoscaling": True},
    "mw1.2xlarge": {"schedulers": (2, 5), "webservers": (2, 5), "workers": (1, 25), "autoscaling": True},
}

# Upgrade rules, first match wins. Each rule: predicate on (source, target) parsed
# versions -> how the service lets you get there. "in_place" = UpdateEnvironment with a new
# AirflowVersion; "new_environment" = create a new one and migrate the metadata (our path,
# always valid when allowed); "refused" = MWAA does not allow it at all.
# Source: MWAA user guide (upgrading, downgrading) as summarised in shared/reference/mwaa.md.
UPGRADE_RULES: tuple[dict, ...] = (
    {
        "when": "target_is_1_10",
        "path": "refused",
        "reason": "Airflow 1.10.x is retired: MWAA creates no new 1.10 environment",
    },
    {
        "when": "same_version",
        "path": "new_environment",
        "reason": "same version: a blue/green copy into a new environment",
    },
    {
        "when": "source_is_1_10",
        "path": "new_environment",
        "reason": "1.10.x always needs a new environment (no in-place upgrade to 2.x)",
    },
    {"when": "downgrade_3_to_2_11", "path": "in_place", "reason": "3.x -> 2.11.x is the one downgrade MWAA allows"},
    {"when": "downgrade", "path": "refused", "reason": "downgrades are not allowed (only 3.x -> 2.11.x is)"},
    {
        "when": "same_major",
        "path": "in_place",
        "reason": "minor upgrades within one major version are allowed in place",
    },
    {"when": "2_11_to_3", "path": "in_place", "reason": "2.x -> 3.x in place is allowed only from the latest 2.11.x"},
    {
        "when": "2_to_3",
        "path": "new_environment",
        "reason": "2.x -> 3.x from 2.10.x or older needs a new environment (or first go to 2.11.x in place)",
    },
)


class VersionError(ValueError):
    """A version or class request the table does not allow; the message says why."""


def parse(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in str(version).split("."))
    except ValueError:
        raise VersionError(f"{version!r} is not a version number like 2.10.3") from None


def known_versions() -> list[str]:
    return sorted(VERSIONS, key=parse)


def info(version: str) -> dict:
    """The table row of a version, or a VersionError that lists what is known."""
    if version not in VERSIONS:
        raise VersionError(f"unknown Airflow version {version!r}; known: {', '.join(known_versions())}")
    return VERSIONS[version]


def _matches(rule: str, s: tuple[int, ...], t: tuple[int, ...]) -> bool:
    if rule == "target_is_1_10":
        return t[0] == 1
    if rule == "same_version":
        return s == t
    if rule == "source_is_1_10":
        return s[0] == 1
    if rule == "downgrade_3_to_2_11":
        return s[0] == 3 and t[:2] == (2, 11)
    if rule == "downgrade":
        return t < s
    if rule == "same_major":
        return s[0] == t[0]
    if rule == "2_11_to_3":
        return s[:2] == (2, 11) and t[0] == 3
    if rule == "2_to_3":
        return s[0] == 2 and t[0] == 3
    raise KeyError(rule)


@dataclass(frozen=True)
class UpgradePath:
    source: str
    target: str
    path: str  # "in_place" | "new_environment" | "refused"
    reason: str

    @property
    def allowed(self) -> bool:
        return self.path != "refused"

    @property
    def allows_in_place(self) -> bool:
        return self.path == "in_place"


def upgrade_path(source: str, target: str) -> UpgradePath:
    """How MWAA lets an environment go from ``source`` to ``target`` (both must be known).

    A new environment plus metadata migration is possible whenever the pair is allowed at
    all; ``in_place`` additionally means UpdateEnvironment(AirflowVersion) is allowed.
    """
    info(source)
    info(target)
    s, t = parse(source), parse(target)
    for rule in UPGRADE_RULES:
        if _matches(rule["when"], s, t):
            return UpgradePath(source, target, rule["path"], rule["reason"])
    raise VersionError(f"no rule covers {source} -> {target}")  # pragma: no cover


def check_creatable(version: str) -> None:
    """Raise unless MWAA can create a new environment of ``version``."""
    row = info(version)
    if row["status"] == "retired":
        raise VersionError(
            f"Airflow {version} is retired on MWAA: no new environment can be created with it; "
            f"creatable: {', '.join(v for v in known_versions() if VERSIONS[v]['status'] != 'retired')}"
        )


def check_class(
    environment_class: str,
    *,
    schedulers: int | None = None,
    min_workers: int | None = None,
    max_workers: int | None = None,
    min_webservers: int | None = None,
    max_webservers: int | None = None,
) -> None:
    """Raise VersionError naming the first field outside the class's limits."""
    if environment_class not in ENVIRONMENT_CLASSES:
        raise VersionError(
            f"unknown environment class {environment_class!r}; allowed: {', '.join(ENVIRONMENT_CLASSES)}"
        )
    limits = ENVIRONMENT_CLASSES[environment_class]
    checks = (
        ("schedulers", schedulers, "schedulers"),
        ("min_workers", min_workers, "workers"),
        ("max_workers", max_workers, "workers"),
        ("min_webservers", min_webservers, "webservers"),
        ("max_webservers", max_webservers, "webservers"),
    )
    for field, value, kind in checks:
        if value is None:
            continue
        lo, hi = limits[kind]
        if not lo <= value <= hi:
            raise VersionError(f"{field}={value} is outside {environment_class}'s {kind} range {lo}..{hi}")
    for lo_field, lo_val, hi_field, hi_val in (
        ("min_workers", min_workers, "max_workers", max_workers),
        ("min_webservers", min_webservers, "max_webservers", max_webservers),
    ):
        if lo_val is not None and hi_val is not None and lo_val > hi_val:
            raise VersionError(f"{lo_field}={lo_val} is greater than {hi_field}={hi_val}")


def alembic_head(version: str) -> str | None:
    """The alembic revision a database of ``version`` is at after ``airflow db migrate``."""
    return info(version)["alembic_head"]


def versions_at_revision(revision: str) -> list[str]:
    """Every known version whose schema head is ``revision`` (empty if none)."""
    return [v for v in known_versions() if VERSIONS[v]["alembic_head"] == revision]
