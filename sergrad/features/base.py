"""The feature-set registry and the contract every feature set follows (no torch imported here).

A feature set turns one 16 kHz mono waveform (float32 [T]) into one fixed-length float32
vector [D]. It is registered as a `FeatureSet`: a name, a description, its default
parameters, and `build(params) -> extractor`. Audio extractors are callables
`extractor(wave) -> np.ndarray [D]` with attributes `dim` and `names` (one name per dimension,
or None). The `external` set is a `TableSource` instead: it looks vectors up by utt_id.

>>> resolve_params("mfcc_stats", {"n_mfcc": "20"}, {"n_mfcc": 13, "deltas": True})
{'deltas': True, 'n_mfcc': 20}
>>> resolve_params("mfcc_stats", {"nmfcc": 20}, {"n_mfcc": 13})
Traceback (most recent call last):
...
sergrad.errors.ConfigError: feature set 'mfcc_stats': unknown parameter 'nmfcc'; valid: n_mfcc
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from sergrad.errors import ConfigError
from sergrad.problems import Problems
from sergrad.registry import Registry

# Bump when any feature computation changes: part of every cache key.
FEATURE_CODE_VERSION = "1"


class AudioExtractor(Protocol):
    dim: int
    names: Sequence[str] | None

    def __call__(self, wave: np.ndarray) -> np.ndarray:  # [T] float32 at 16 kHz -> [D] float32
        ...


class TableSource(Protocol):
    dim: int
    names: Sequence[str] | None

    def lookup(self, utt_ids: Sequence[str], problems: Problems) -> list[np.ndarray | None]:
        """One [D] vector per utt_id, None where the problem was recorded in `problems`."""
        ...


@dataclass(frozen=True)
class FeatureSet:
    name: str
    description: str
    defaults: Mapping[str, Any]
    build: Callable[[dict[str, Any]], AudioExtractor | TableSource]  # takes resolved params
    default_dim: int | None  # None when it depends on the data (external)
    reads_audio: bool = True
    # extra cache-key material from outside the params (a weights file, a user's table)
    fingerprint: Callable[[dict[str, Any]], str] = field(default=lambda params: "")


FEATURE_SETS: Registry[FeatureSet] = Registry("feature set")


def register(spec: FeatureSet) -> FeatureSet:
    return FEATURE_SETS.register(spec.name)(spec)


def get_feature_set(name: str) -> FeatureSet:
    """The registered FeatureSet `name`; ConfigError listing the valid names otherwise."""
    from sergrad.features import load_sets

    load_sets()
    try:
        return FEATURE_SETS.get(name)
    except KeyError as exc:
        raise ConfigError(exc.args[0]) from None


def resolve_params(
    name: str, params: Mapping[str, Any] | None, defaults: Mapping[str, Any]
) -> dict:
    """Defaults overlaid with `params`, each coerced to its default's type; sorted keys.

    A default of None accepts a string (file paths). Unknown keys are a ConfigError.
    """
    out = dict(defaults)
    for key, value in (params or {}).items():
        if key not in defaults:
            raise ConfigError(
                f"feature set {name!r}: unknown parameter {key!r}; valid: {', '.join(sorted(defaults))}"
            )
        out[key] = _coerce(name, key, value, defaults[key])
    return dict(sorted(out.items()))


def _coerce(name: str, key: str, value: Any, default: Any) -> Any:
    if default is None or value is None:
        return None if value is None else str(value)
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"feature set {name!r}: parameter {key}={value!r} must be {kind.__name__}"
        ) from None


def params_json(params: Mapping[str, Any]) -> str:
    """Canonical JSON of resolved params (sorted keys), as stored in file metadata."""
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":"))


def check_range(name: str, key: str, value: float, *, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigError(f"feature set {name!r}: {key}={value} out of range [{low}, {high}]")
