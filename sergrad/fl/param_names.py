"""Selecting model parameters by name: the one owner of parameter globbing.

A pattern is an exact parameter name, an fnmatch glob (`fc1.*`), a layer name (`fc1`, i.e.
every `fc1.<x>`) or `all`. Every pattern must match at least one name, else the error (the
caller's class: ConfigError for configs, StoreError/DataError for stored runs) lists the
names that exist. Used by the harvest (which parameters to store / read back), the
layer-perturbation defenses and the attack's layer groups.

>>> names = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
>>> select(names, ["fc2.*", "fc1.bias"], what="harvest.params")
['fc1.bias', 'fc2.weight', 'fc2.bias']
>>> select(names, ["fc2.*", "fc1.bias"], what="x", order="patterns")
['fc2.weight', 'fc2.bias', 'fc1.bias']
>>> select(names, ["fc1"], what="attack.layers")
['fc1.weight', 'fc1.bias']
>>> select(names, ["fc9.*"], what="harvest.params")
Traceback (most recent call last):
...
sergrad.errors.ConfigError: harvest.params: 'fc9.*' matches no parameter; parameters: fc1.weight, fc1.bias, fc2.weight, fc2.bias
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence

from sergrad.errors import ConfigError


def matches(name: str, pattern: str) -> bool:
    """Exact name, layer prefix (`fc1` -> `fc1.*`) or fnmatch glob; `all` matches everything."""
    return (
        pattern == "all"
        or name == pattern
        or name.startswith(pattern + ".")
        or fnmatch.fnmatchcase(name, pattern)
    )


def select(
    names: Sequence[str],
    patterns: str | Iterable[str],
    *,
    what: str,
    order: str = "names",
    error: type[Exception] = ConfigError,
    missing: str = "{what}: {pattern!r} matches no parameter; parameters: {names}",
) -> list[str]:
    """Names matched by any pattern, in model order (`order="names"`) or pattern order.

    `missing`: the message for a pattern that matches nothing ({what}, {pattern}, {names}).
    """
    names = list(names)
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    if not patterns:
        raise error(f"{what} is empty; parameters: {', '.join(names)}")
    chosen: list[str] = []
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise error(f"{what}: {pattern!r} is not a string")
        hits = [n for n in names if matches(n, pattern)]
        if not hits:
            raise error(missing.format(what=what, pattern=pattern, names=", ".join(names)))
        chosen += [h for h in hits if h not in chosen]
    return chosen if order == "patterns" else [n for n in names if n in chosen]
