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

from mwaa_common import names
from stacks.config.schema import ACCOUNT_RE, REGION_RE

# The repository's config/ folder: config/<stage>.yaml, config/pipelines/<name>.yaml.
CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


class Shown:
    """A value shown in a message by a description instead of its repr: a secret (never
    echoed), or a whole section (``<a mapping on line 12>``)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


class ConfigError(ValueError):
    """One bad value in a stage file: names the file, the field path, the value, what is allowed.

    The message is always one line (``config error: <message>`` is what ``app.py`` prints): the
    value is shown by its repr, a path that is not printable by its repr, and any line break
    in the allowed text becomes a space."""

    def __init__(self, file: Path | str, path: str, value: Any, allowed: str):
        self.file, self.path, self.value, self.allowed = str(file), path, value, allowed
        shown_path = path if path.isprintable() else repr(path)
        super().__init__(f"{_shown(file)}: {shown_path}: {value!r} is not allowed; {' '.join(str(allowed).split())}")


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

    def str_map(
        self,
        key: str,
        key_check: Callable[[str], str | None] | None = None,
        value_check: Callable[[str], str | None] | None = None,
    ) -> Mapping[str, str]:
        """A mapping of strings to strings; ``key_check``/``value_check`` return what is allowed when bad."""
        value = self.get(key, dict, {})
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(self.file, self.sub(key), k, "keys must be strings")
            if key_check is not None and (problem := key_check(k)):
                raise ConfigError(self.file, self.sub(key), k, problem)
            if not isinstance(v, str):
                raise ConfigError(self.file, f"{self.sub(key)}.{k}", v, "expected str (quote it in YAML)")
            if value_check is not None and (problem := value_check(v)):
                raise ConfigError(self.file, f"{self.sub(key)}.{k}", v, problem)
        return MappingProxyType(dict(value))

    def tags(self, key: str, limit: int = names.TAGS_MAX) -> Mapping[str, str]:
        """AWS tags (lambda/mwaa_common/names.py): key and value rules, at most ``limit`` tags."""
        tags = self.str_map(key, names.tag_key_problem, names.tag_value_problem)
        if len(tags) > limit:
            raise self.error(key, Shown(f"<{len(tags)} tags>"), f"at most {limit} tags")
        return tags

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
    return lambda v: None if rx.fullmatch(v) else what


def cidr(v: str) -> str | None:
    try:
        ipaddress.IPv4Network(v, strict=True)
    except ValueError as e:
        return f"expected an IPv4 network in CIDR notation ({e})"
    return None


def read_config_file(file: Path, field: str, name: str, kind: str) -> Section:
    """The top section of one YAML config file (a stage or a pipeline): the file must exist
    (else the error lists the files beside it), be UTF-8, parse, and name each key once."""
    if not file.is_file():
        known = sorted(p.stem for p in file.parent.glob("*.yaml"))
        raise ConfigError(file, field, name, f"{kind} with a file in {file.parent}: {', '.join(known) or 'none'}")
    try:
        raw = file.read_bytes()
    except OSError as e:
        raise ConfigError(file, "(file)", Shown(f"<{e.strerror}>"), "a readable file") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(
            file, "(file)", Shown(f"<byte 0x{raw[e.start]:02x} on line {line}>"), "a UTF-8 text file (save it as UTF-8)"
        ) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            check_unique_keys(file, node, "")
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(file, "(file)", Shown(f"<{_yaml_problem(e)}>"), "valid YAML") from None
    return Section(file, "", data)


def _yaml_problem(e: yaml.YAMLError) -> str:
    """One line from a YAML error: what and where."""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    mark = getattr(e, "problem_mark", None)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else str(problem)


def check_unique_keys(file: Path, node: yaml.Node, path: str) -> None:
    """Refuse a key given twice in one mapping (YAML loaders silently keep the last one: a
    repeated section would drop every key of the first)."""
    if isinstance(node, yaml.MappingNode):
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else None
            sub = f"{path}.{key}" if path and key is not None else (key or path)
            if key is not None and key in lines:
                line = key_node.start_mark.line + 1
                raise ConfigError(
                    file,
                    sub,
                    Shown(f"<given again on line {line}>"),
                    f"each key once (first on line {lines[key]}; YAML would silently keep the last)",
                )
            if key is not None:
                lines[key] = key_node.start_mark.line + 1
            check_unique_keys(file, value_node, sub)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            check_unique_keys(file, item, f"{path}[{i}]")


def account_and_region(top: Section) -> tuple[str, str]:
    """The ``account`` and ``region`` keys every config file starts with."""
    account = top.get("account", str, check=regex(ACCOUNT_RE, "a 12-digit AWS account id in quotes"))
    region = top.get("region", str, check=regex(REGION_RE, "a region name such as eu-west-1"))
    return account, region
