"""YAML for configs and sweeps: PyYAML's safe loader, stricter and closer to YAML 1.2.

- a key repeated in one mapping is an error naming its line (PyYAML keeps the last one);
- `5e-4`, `1E+3` are floats (YAML 1.1 needs a dot in the mantissa and reads them as strings).

>>> load_value("{lr: 5e-4}")
{'lr': 0.0005}
>>> compose_yaml("a: 1\\na: 2", source="f.yaml")
Traceback (most recent call last):
...
sergrad.errors.ConfigError: f.yaml:2: invalid YAML: duplicate key 'a' (first on line 1)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from sergrad.errors import ConfigError


class StrictLoader(yaml.SafeLoader):
    """Safe loader: duplicate keys are errors, `5e-4` is a float (see the module)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | float | bool) and key is not None:
                    continue  # unhashable or complex key: PyYAML's own checks apply
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first on line {seen[key]})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def yaml_error(source: str | Path, exc: yaml.YAMLError) -> ConfigError:
    """`file:line: message` for a YAML syntax or duplicate-key error."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{source}:{mark.line + 1}" if mark is not None else str(source)
    problem = getattr(exc, "problem", None) or str(exc)
    return ConfigError(f"{where}: invalid YAML: {problem}")


def compose_yaml(text: str, *, source: str | Path) -> tuple[Any, yaml.Node | None]:
    """(data, node) of a YAML document with `StrictLoader`; errors carry `file:line`."""
    loader = StrictLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise yaml_error(source, exc) from None
    finally:
        loader.dispose()
    return data, node


def load_value(text: str) -> Any:
    """One YAML value (e.g. a `--set key=value` right-hand side) with `StrictLoader`."""
    try:
        return yaml.load(text, Loader=StrictLoader)
    except yaml.YAMLError as exc:
        raise yaml_error("value", exc) from None
