"""Reading YAML config files: :class:`ConfigError` (file, field, value, what is allowed) and
:class:`Section`, a mapping being read that tracks the field path and rejects unknown keys.

Used by the stage files (:mod:`stacks.config.loader`) and the pipeline files
(:mod:`stacks.pipeline_config`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from stacks.config.schema import ACCOUNT_RE, REGION_RE

# The repository's config/ folder: config/<stage>.yaml, config/pipelines/<name>.yaml.
CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


class ConfigError(ValueError):
    """One bad value in a stage file: names the file, the field path, the value, what is allowed."""

    def __init__(self, file: Path | str, path: str, value: Any, allowed: str):
        self.file, self.path, self.value, self.allowed = str(file), path, value, allowed
        super().__init__(f"{_shown(file)}: {path}: {value!r} is not allowed; {allowed}")


def _shown(file: Path | str) -> str:
    """The file as the user would type it: relative to the working directory when it is below it."""
    try:
        return str(Path(file).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(file)


_MISSING = object()


class Section:
    """A mapping being read: tracks the field path and rejects keys nobody asked for."""

    def __init__(self, file: Path, path: str, data: Any):
        self.file, self.path = file, path
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(file, path or "(top level)", data, "expected a mapping of keys to values")
        self.data = data
        self.seen: set[str] = set()

    def sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, value: Any, allowed: str) -> ConfigError:
        return ConfigError(self.file, self.sub(key), value, allowed)

    def has(self, key: str) -> bool:
        return key in self.data

    def get(
        self, key: str, kind: type | tuple, default: Any = _MISSING, check: Callable[[Any], str | None] | None = None
    ) -> Any:
        """Value of ``key``; ``kind`` its type; ``check`` returns an 'allowed' text when bad."""
        self.seen.add(key)
        if key not in self.data or self.data[key] is None and default is not _MISSING:
            if default is _MISSING:
                raise self.error(key, None, "this key is required")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python: never accept true/false where a number is meant.
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            hint = " (quote it in YAML)" if str in kinds and isinstance(value, (int, float)) else ""
            raise self.error(key, value, f"expected {names}{hint}")
        if check is not None:
            problem = check(value)
            if problem:
                raise self.error(key, value, problem)
        return value

    def choice(self, key: str, allowed: tuple, default: Any = _MISSING) -> Any:
        return self.get(
            key, str, default, lambda v: None if v in allowed else f"allowed: {', '.join(map(str, allowed))}"
        )

    def int_range(self, key: str, lo: int, hi: int, default: Any = _MISSING) -> Any:
        return self.get(key, int, default, lambda v: None if lo <= v <= hi else f"allowed: {lo}..{hi}")

    def section(self, key: str, required: bool = False) -> Section:
        self.seen.add(key)
        if required and key not in self.data:
            raise self.error(key, None, "this section is required")
        return Section(self.file, self.sub(key), self.data.get(key))

    def str_list(
        self, key: str, default: Any = _MISSING, item: Callable[[str], str | None] | None = None
    ) -> tuple[str, ...]:
        value = self.get(key, list, default)
        for i, v in enumerate(value):
            if not isinstance(v, str):
                raise ConfigError(self.file, f"{self.sub(key)}[{i}]", v, "expected str (quote it in YAML)")
            if item is not None and (problem := item(v)):
                raise ConfigError(self.file, f"{self.sub(key)}[{i}]", v, problem)
        return tuple(value)

    def str_map(self, key: str, key_check: Callable[[str], str | None] | None = None) -> Mapping[str, str]:
        value = self.get(key, dict, {})
        for k, v in value.items():
            if not isinstance(k, str) or (key_check is not None and key_check(k)):
                raise ConfigError(
                    self.file,
                    f"{self.sub(key)}",
                    k,
                    (key_check(k) if isinstance(k, str) and key_check else "keys must be strings"),
                )
            if not isinstance(v, str) or isinstance(v, bool):
                raise ConfigError(self.file, f"{self.sub(key)}.{k}", v, "expected str (quote it in YAML)")
        return MappingProxyType(dict(value))

    def done(self) -> None:
        unknown = [k for k in self.data if k not in self.seen]
        if unknown:
            raise self.error(
                str(unknown[0]),
                self.data[unknown[0]],
                f"unknown key; allowed keys here: {', '.join(sorted(self.seen))}",
            )

    def forbid(self, keys: tuple[str, ...], why: str) -> None:
        for k in keys:
            if k in self.data:
                raise self.error(k, self.data[k], why)


def regex(rx: re.Pattern, what: str) -> Callable[[str], str | None]:
    return lambda v: None if rx.match(v) else what


def cidr(v: str) -> str | None:
    try:
        ipaddress.IPv4Network(v, strict=True)
    except ValueError as e:
        return f"expected an IPv4 network in CIDR notation ({e})"
    return None


def read_config_file(file: Path, field: str, name: str, kind: str) -> Section:
    """The top section of one YAML config file (a stage or a pipeline): the file must exist
    (else the error lists the files beside it) and parse."""
    if not file.is_file():
        known = sorted(p.stem for p in file.parent.glob("*.yaml"))
        raise ConfigError(file, field, name, f"{kind} with a file in {file.parent}: {', '.join(known) or 'none'}")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(file, "(file)", getattr(e, "problem", str(e)), f"valid YAML ({e})") from None
    return Section(file, "", data)


def account_and_region(top: Section) -> tuple[str, str]:
    """The ``account`` and ``region`` keys every config file starts with."""
    account = top.get("account", str, check=regex(ACCOUNT_RE, "a 12-digit AWS account id in quotes"))
    region = top.get("region", str, check=regex(REGION_RE, "a region name such as eu-west-1"))
    return account, region
