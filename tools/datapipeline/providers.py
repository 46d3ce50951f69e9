"""Which Amazon / common-SQL / standard provider versions each MWAA Airflow version ships.

The converter decides per target version which operator it may emit (a provider operator the
target does not have is never generated), and the tests build their real Airflow venvs from the
same rows. Source: the apache constraints files MWAA's images install under (workflows.md).

Stand-in until the MWAA-image provider table of tools/workflows lands; then this module reads
theirs and keeps only ``supports``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class ProviderPins:
    python: str
    amazon: str
    common_sql: str
    standard: str | None = None  # Airflow 3 moved BashOperator & co. to the standard provider

    @property
    def airflow_major(self) -> int:
        return 3 if self.standard else 2


MWAA_PROVIDERS: dict[str, ProviderPins] = {
    "2.4.3": ProviderPins(python="3.10", amazon="6.0.0", common_sql="1.2.0"),
    "2.5.1": ProviderPins(python="3.10", amazon="7.1.0", common_sql="1.3.3"),
    "2.6.3": ProviderPins(python="3.10", amazon="8.2.0", common_sql="1.5.2"),
    "2.7.2": ProviderPins(python="3.11", amazon="8.7.1", common_sql="1.7.2"),
    "2.8.1": ProviderPins(python="3.11", amazon="8.16.0", common_sql="1.10.0"),
    "2.9.2": ProviderPins(python="3.11", amazon="8.24.0", common_sql="1.14.0"),
    "2.10.1": ProviderPins(python="3.11", amazon="8.28.0", common_sql="1.16.0"),
    "2.10.3": ProviderPins(python="3.11", amazon="9.0.0", common_sql="1.19.0"),
    "2.11.0": ProviderPins(python="3.12", amazon="9.8.0", common_sql="1.27.1"),
    "2.11.2": ProviderPins(python="3.12", amazon="9.22.0", common_sql="1.32.0"),
    "3.0.6": ProviderPins(python="3.12", amazon="9.12.0", common_sql="1.27.5", standard="1.6.0"),
    "3.2.1": ProviderPins(python="3.12", amazon="9.25.0", common_sql="1.34.0", standard="1.12.3"),
    "3.3.1": ProviderPins(python="3.12", amazon="9.34.0", common_sql="2.1.0", standard="1.17.0"),
}
DEFAULT_TARGET = "2.11.0"


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def pins(target: str) -> ProviderPins:
    """The provider pins of ``target``; KeyError for a version MWAA does not ship."""
    return MWAA_PROVIDERS[target]


def supports(target: str, *, amazon: str = "0", common_sql: str = "0") -> bool:
    """Whether ``target``'s pinned providers are at least these versions."""
    p = pins(target)
    return _key(p.amazon) >= _key(amazon) and _key(p.common_sql) >= _key(common_sql)


def requirements(target: str) -> list[str]:
    """pip requirements of a venv like the MWAA image of ``target`` (Airflow + its provider pins)."""
    p = pins(target)
    reqs = [
        f"apache-airflow=={target}",
        f"apache-airflow-providers-amazon=={p.amazon}",
        f"apache-airflow-providers-common-sql=={p.common_sql}",
    ]
    if p.standard:
        reqs.append(f"apache-airflow-providers-standard=={p.standard}")
    return reqs
