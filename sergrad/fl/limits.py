"""Values the engines cannot run, refused before anything runs (`sweep plan`, `fl run`).

`LIMITS[(config class, field)] = (ok, rule)`: the sweep schema checks every grid alternative
against it (with file:line); `check_limits(config)` checks a resolved RunConfig.

>>> from sergrad.fl.config import AlgoConfig, RunConfig
>>> check_limits(RunConfig(algo=AlgoConfig(rounds=0)))
Traceback (most recent call last):
...
sergrad.errors.ConfigError: algo.rounds: 0 must be >= 1
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from sergrad.errors import ConfigError
from sergrad.fl.config import AlgoConfig, DataConfig, EvalConfig, ModelConfig

LIMITS: dict[tuple[type, str], tuple[typing.Callable[[Any], bool], str]] = {
    (AlgoConfig, "rounds"): (lambda v: v >= 1, "must be >= 1"),
    (AlgoConfig, "client_fraction"): (lambda v: 0 < v <= 1, "must be in (0, 1]"),
    (AlgoConfig, "batch_size"): (lambda v: v >= 1, "must be >= 1"),
    (AlgoConfig, "local_epochs"): (lambda v: v >= 1, "must be >= 1"),
    (AlgoConfig, "lr"): (lambda v: v > 0, "must be > 0"),
    (DataConfig, "n_folds"): (lambda v: v >= 2, "must be >= 2"),
    (DataConfig, "val_fraction"): (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    (EvalConfig, "every"): (lambda v: v >= 1, "must be >= 1"),
    (ModelConfig, "hidden"): (
        lambda v: len(v) == 2 and all(h >= 1 for h in v),
        "the engines run exactly two hidden layers: two sizes >= 1, e.g. [256, 128]",
    ),
}


def check_limits(config: Any, prefix: str = "") -> None:
    """ConfigError naming the first field of `config` (a nested dataclass) out of LIMITS."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_limits(value, f"{prefix}{f.name}.")
            continue
        ok, rule = LIMITS.get((type(config), f.name), (None, ""))
        if ok is not None and not ok(value):
            shown = list(value) if isinstance(value, tuple) else value
            raise ConfigError(f"{prefix}{f.name}: {shown!r} {rule}")
