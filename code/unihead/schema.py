"""The config schema engine: a YAML mapping checked against frozen dataclasses, with errors naming the dotted key.

A section is a frozen dataclass; a field's allowed values are its metadata (:func:`choices`, :func:`bounded`,
:func:`matching`). :func:`build_section` checks a mapping against a section: a key that is unknown, of the wrong
type or outside its allowed values raises a :class:`ConfigError` naming the dotted key (``model.det_head``) and
what was expected. A string that spells a number or a bool where one is expected is read as one (Snakemake's
nested ``--config`` values arrive as strings). :func:`read_yaml` reads a YAML file safely. This module knows no
particular section (those are :mod:`unihead.config`'s) and imports no torch.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import yaml

from unihead.errors import InputError

MAX_CONFIG_VALUES = 10_000
"""Most values (mappings, lists and scalars, counted as if every YAML alias were written out) a config may hold.
The largest real config holds a few hundred; an alias bomb (aliases of aliases) holds billions."""


@dataclass(frozen=True)
class Pattern:
    """The form a config string must have (it names a folder or reaches a command line)."""

    regex: str
    description: str

    def __str__(self) -> str:
        return f"{self.description} (pattern {self.regex})"


@dataclass(frozen=True)
class Bounds:
    """The range a config number must lie in; ``str`` gives it in words."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    why: str = ""
    """Why the range is what it is, said after it in an error."""

    def __contains__(self, value: float) -> bool:
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        return self._range() + (f" ({self.why})" if self.why else "")

    def _range(self) -> str:
        if self.low is not None and self.high is not None:
            return (f"a number in {'(' if self.low_open else '['}{self.low:g}, "
                    f"{self.high:g}{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"a number above {self.low:g}" if self.low_open else f"at least {self.low:g}"
        return f"a number below {self.high:g}" if self.high_open else f"at most {self.high:g}"


class ConfigError(InputError):
    """An experiment configuration that does not match the schema."""


def choices(*values: Any) -> dict[str, tuple[Any, ...]]:
    """Field metadata: the field's value (each item of a list, each value of a mapping) must be one of ``values``."""
    return {"choices": values}


def matching(pattern: Pattern) -> dict[str, Pattern]:
    """Field metadata: the field's string (each item of a list, each value of a mapping) must match ``pattern``."""
    return {"pattern": pattern}


def bounded(low: float | None = None, high: float | None = None, *, low_open: bool = False,
            high_open: bool = False, why: str = "") -> dict[str, Bounds]:
    """Field metadata: the field's value (each item of a list, each value of a mapping) must lie in this range
    (``why``: the reason)."""
    return {"bounds": Bounds(low, high, low_open, high_open, why)}


def check_value(value: Any, key: str, rules: Mapping[str, Any]) -> None:
    """Check a typed value against a field's metadata (``choices``, ``bounds``, ``pattern``)."""
    allowed, bounds, pattern = rules.get("choices"), rules.get("bounds"), rules.get("pattern")
    if allowed is not None and value not in allowed:
        raise ConfigError(f"config key '{key}': expected one of {list(allowed)}, got {value!r}")
    if bounds is not None and value not in bounds:
        raise ConfigError(f"config key '{key}': expected {bounds}, got {value!r}")
    if pattern is not None and not re.fullmatch(pattern.regex, value):
        raise ConfigError(f"config key '{key}': expected {pattern}, got {value!r}")


def check_fields(section: Any) -> None:
    """Check every field of a dataclass instance against its metadata; for a section constructed in code
    (one read from a config is checked while it is read, with the full dotted key)."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if isinstance(value, list):
            items = [(f"{f.name}[{i}]", item) for i, item in enumerate(value)]
        elif isinstance(value, dict):
            items = [(f"{f.name}.{k}", item) for k, item in value.items()]
        else:
            items = [(f.name, value)]
        for key, item in items:
            if item is not None:
                check_value(item, key, f.metadata)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


_SPELLED = {
    int: re.compile(r"[-+]?[0-9]+"),
    float: re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?"),
}
"""How a string must spell a number to be read as one (no nan, inf, underscores or spaces)."""
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_NULLS = ("null", "Null", "NULL", "~")


def _from_string(value: str, tp: Any) -> Any:
    """The int, float or bool that ``value`` spells exactly (YAML's spellings), else ``value`` unchanged.

    Snakemake hands the values inside ``--config 'key={...}'`` over as strings (it reads them with YAML's
    BaseLoader), and YAML itself reads ``1e-3`` (no dot) as a string.
    """
    if tp is bool:
        return _BOOLS.get(value, value)
    if tp in _SPELLED and _SPELLED[tp].fullmatch(value):
        return tp(value)
    return value


def _convert(value: Any, tp: Any, key: str, rules: Mapping[str, Any] | None = None) -> Any:
    """Check ``value`` against the annotation ``tp`` and the field's metadata ``rules``, and return it in the
    schema's form. A string spelling an int, float, bool (or null, for an optional number) is read as one."""
    rules = rules or {}
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        (inner,) = [o for o in options if o is not type(None)]
        if value is None or (isinstance(value, str) and value in _NULLS and inner in _SPELLED):
            return None
        return _convert(value, inner, key, rules)
    if dataclasses.is_dataclass(tp):
        return build_section(tp, value, key)
    if tp is Any:
        return value
    if origin is list:
        (item_type,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"config key '{key}': expected a list, got {value!r}")
        return [_convert(v, item_type, f"{key}[{i}]", rules) for i, v in enumerate(value)]
    if origin is dict:
        key_type, value_type = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected a mapping, got {value!r}")
        return {_convert(k, key_type, key): _convert(v, value_type, f"{key}.{k}", rules) for k, v in value.items()}
    if isinstance(value, str):
        value = _from_string(value, tp)
    ok = isinstance(value, tp) and not (tp in (int, float) and isinstance(value, bool))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ConfigError(f"config key '{key}': expected {_type_name(tp)}, got {value!r}")
    if tp is float and not math.isfinite(value):
        raise ConfigError(f"config key '{key}': expected a finite number, got {value!r}")
    check_value(value, key, rules)
    return value


def build_section(cls: type, values: Any, prefix: str) -> Any:
    """Validate a mapping against the dataclass ``cls``; errors name keys under ``prefix``."""
    where = f"'{prefix}'" if prefix else "the top level"
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"config key {where}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        names = ", ".join(f"'{prefix + '.' if prefix else ''}{k}'" for k in unknown)
        raise ConfigError(f"unknown config key {names}; valid keys at {where}: {sorted(known)}")
    missing = [name for name, f in known.items() if name not in values and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        names = ", ".join(f"'{prefix + '.' if prefix else ''}{k}'" for k in missing)
        raise ConfigError(f"missing config key {names}")
    kwargs = {
        name: _convert(values[name], hints[name], f"{prefix + '.' if prefix else ''}{name}", known[name].metadata)
        for name in values
    }
    try:
        return cls(**kwargs)
    except ConfigError as err:
        if "config key" in str(err):
            raise
        raise ConfigError(f"config key {where}: {err}") from err


def check_size(values: Any) -> None:
    """Refuse a config of more than :data:`MAX_CONFIG_VALUES` values, counting every YAML alias as the values it
    stands for (an alias bomb, which expanding for a variant, a record or an error message would never end)."""
    pending, seen = [values], 0
    while pending:
        value = pending.pop()
        seen += 1
        if seen > MAX_CONFIG_VALUES:
            raise ConfigError(f"the config holds more than {MAX_CONFIG_VALUES:,} values once its YAML aliases are "
                              "expanded (aliases of aliases multiply); write the values out, or use fewer aliases")
        if isinstance(value, Mapping):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # '<<: *defaults' merges keys that the mapping may override
            key = self.construct_object(key_node, deep=True)
            if key in first:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: key {key!r} is given twice in one mapping "
                                  f"(first on line {first[key].start_mark.line + 1}); keep one of them")
            first[key] = key_node
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path, what: str) -> Any:
    """The values of a YAML file of UTF-8 text; errors name the file: not found, not UTF-8, not valid YAML, a key
    given twice in one mapping, or more values than a config holds (:func:`check_size`)."""
    if not path.is_file():
        raise ConfigError(f"{path}: {what} file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte {raw[err.start]:#04x} on line {line}); save the {what} "
                          "file as UTF-8") from err
    try:
        values = yaml.load(text, Loader=_UniqueKeyLoader)
        check_size(values)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err
    return values


def load_section(path: str | Path, cls: type, what: str) -> Any:
    """A YAML file validated against the dataclass ``cls``; errors name the file and the key."""
    path = Path(path)
    values = read_yaml(path, what)
    try:
        return build_section(cls, values, "")
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two plain-data configs (:func:`unihead.config.config_to_dict`),
    each with both values: ``train.batch_size (4, now 8)``; mappings are compared key by key."""
    differences = []
    for key in sorted(set(old) | set(new), key=str):
        dotted, before, after = f"{prefix}{key}", old.get(key), new.get(key)
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            differences += config_differences(before, after, f"{dotted}.")
        elif before != after:
            differences.append(f"{dotted} ({before!r}, now {after!r})")
    return differences
