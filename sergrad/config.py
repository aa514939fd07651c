"""Nested frozen dataclass configs built from plain dicts (YAML), with strict keys.

YAML keys equal field names; an unknown key is an error that lists the valid keys.
`content_hash` gives the stable id of a resolved config (used as run id / eval id).

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Inner:
...     lr: float = 0.1
>>> @dataclass(frozen=True)
... class Outer:
...     name: str = "x"
...     inner: Inner = Inner()
>>> from_dict(Outer, {"inner": {"lr": 0.5}}).inner.lr
0.5
>>> from_dict(Outer, {"inner": {"lrr": 0.5}})
Traceback (most recent call last):
...
sergrad.errors.ConfigError: unknown key 'inner.lrr'; valid keys: inner.lr
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from sergrad.errors import ConfigError

T = TypeVar("T")


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Convert a YAML value to the annotated type `tp`, or raise ConfigError naming `key`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if _is_dataclass_type(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{key}: {value!r} does not match {tp}: {'; '.join(errors)}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{key}: expected {len(args)} items, got {value!r}")
            return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        return tuple(value)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    return value


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """`typing.get_type_hints(cls)`, once per class (it re-evaluates every annotation)."""
    return typing.get_type_hints(cls)


@functools.cache
def init_fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def from_dict(cls: type[T], data: dict[str, Any] | None, *, prefix: str = "") -> T:
    """Build dataclass `cls` from `data`; unknown keys raise ConfigError listing the valid ones."""
    data = dict(data or {})
    hints = type_hints(cls)
    fields = init_fields(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        valid = ", ".join(prefix + name for name in fields)
        raise ConfigError(f"unknown key {prefix + unknown[0]!r}; valid keys: {valid}")
    kwargs = {name: _coerce(hints[name], value, prefix + name) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{prefix or cls.__name__}: {exc}") from exc


def to_dict(obj: Any) -> Any:
    """Plain JSON-able dict of a (nested) dataclass; tuples become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def canonical_json(obj: Any) -> str:
    return json.dumps(to_dict(obj), sort_keys=True, separators=(",", ":"), allow_nan=True)


def content_hash(obj: Any, *, length: int = 16) -> str:
    """Stable hex id of a config: sha256 of its canonical JSON."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def stable_hash(obj: Any, added: dict[tuple[str, ...], Any]) -> str:
    """`content_hash` of a config whose later-added fields (`added`: path -> default) are
    left out while at their default, so ids of configs that predate them do not change and
    older stores resume without reruns."""
    d = to_dict(obj)
    for path, default in added.items():
        node = d
        for part in path[:-1]:
            node = node[part]
        if path[-1] in node and node[path[-1]] == to_dict(default):
            node.pop(path[-1])
    return content_hash(d)


def parse_override(text: str) -> tuple[list[str], Any]:
    """`"algo.lr=0.1"` -> (["algo", "lr"], 0.1); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value")
    # lazily: the benchmarks run where PyYAML may be missing (a GPU box)
    from sergrad.yaml_load import load_value  # duplicate keys are errors, 5e-4 a float

    key, raw = text.split("=", 1)
    return key.strip().split("."), load_value(raw)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of `data` with each `key.sub=value` override applied."""
    out = json.loads(json.dumps(data))
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: {part!r} is not a section")
        node[path[-1]] = value
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such file")
    from sergrad.yaml_load import compose_yaml

    data, _ = compose_yaml(path.read_text(), source=path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data
