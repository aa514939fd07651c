"""Validation of a defense's `params` mapping: unknown keys and out-of-range values are errors.

Every message names the defense, the key, the value and the valid range or names, and is
raised as `sergrad.errors.ConfigError` so the CLI prints it cleanly.

>>> p = resolve("demo", {"std": 0.1}, {"std": 0.0, "relative": False})
>>> p["std"], p["relative"]
(0.1, False)
>>> resolve("demo", {"sdt": 0.1}, {"std": 0.0})
Traceback (most recent call last):
...
sergrad.errors.ConfigError: defense 'demo': unknown param 'sdt'; valid params: std
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sergrad.errors import ConfigError


def resolve(defense: str, params: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict:
    """Defaults overlaid with `params`; a key not in `defaults` is a ConfigError."""
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ConfigError(
            f"defense {defense!r}: unknown param {unknown[0]!r}; "
            f"valid params: {', '.join(sorted(defaults))}"
        )
    return {**defaults, **params}


def number(
    defense: str,
    key: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """`value` as a finite float inside the interval; otherwise a ConfigError with the range."""
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(
            f"defense {defense!r}: {key} must be a number in {interval}, got {value!r}"
        )
    value = float(value)
    bad = (
        (low is not None and (value < low or (low_open and value == low)))
        or (high is not None and (value > high or (high_open and value == high)))
        or math.isinf(value)
    )
    if bad:
        raise ConfigError(f"defense {defense!r}: {key} must be in {interval}, got {value!r}")
    return value


def optional_number(defense: str, key: str, value: Any, **bounds: Any) -> float | None:
    return None if value is None else number(defense, key, value, **bounds)


def choice(defense: str, key: str, value: Any, valid: Sequence[str]) -> str:
    if value not in valid:
        raise ConfigError(
            f"defense {defense!r}: {key} must be one of {', '.join(valid)}, got {value!r}"
        )
    return value


def flag(defense: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"defense {defense!r}: {key} must be true or false, got {value!r}")
    return value


def globs(defense: str, key: str, value: Any) -> tuple[str, ...]:
    """A glob or list of globs (fnmatch syntax), non-empty."""
    items = (value,) if isinstance(value, str) else value
    if (
        not isinstance(items, list | tuple)
        or not items
        or not all(isinstance(g, str) and g for g in items)
    ):
        raise ConfigError(
            f"defense {defense!r}: {key} must be a non-empty list of name globs "
            f"(e.g. ['fc1.*']), got {value!r}"
        )
    return tuple(items)


def one_of_noise_or_target(defense: str, p: Mapping[str, Any]) -> None:
    """Exactly one of noise_multiplier / target_epsilon must be given."""
    if (p["noise_multiplier"] is None) == (p["target_epsilon"] is None):
        raise ConfigError(
            f"defense {defense!r}: give exactly one of noise_multiplier (>= 0) or "
            f"target_epsilon (> 0), got noise_multiplier={p['noise_multiplier']!r}, "
            f"target_epsilon={p['target_epsilon']!r}"
        )
