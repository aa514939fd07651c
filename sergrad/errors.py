"""Errors sergrad raises for bad input. Each message names the file, key or value at fault."""

from __future__ import annotations


class SergradError(Exception):
    """Base class: the CLI prints these without a traceback and exits with status 2."""


class ConfigError(SergradError, ValueError):
    """A config or sweep file has an unknown key, a wrong type or a value out of range."""


class DataError(SergradError, ValueError):
    """Input data is unusable: corrupt audio, missing labels, NaNs, wrong dimension."""


class StoreError(SergradError, OSError):
    """The results store cannot be reached or holds something unexpected."""
