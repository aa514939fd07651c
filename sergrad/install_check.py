"""Fail fast on a broken install: import the compiled stacks and print their versions.

`make test` runs `python -m sergrad.install_check` before anything else, so an ABI break
(e.g. a torchaudio whose extension does not match torch) fails in seconds with one clear line
instead of deep inside the test suite.
"""

from __future__ import annotations

import importlib
import sys

# (import name, a module whose import loads the package's compiled extension, or None)
PACKAGES: tuple[tuple[str, str | None], ...] = (
    ("torch", None),
    ("torchaudio", "torchaudio._extension"),  # loads libtorchaudio.so (raises on an ABI break)
    ("ray", None),
    ("opacus", None),
    ("polars", None),
    ("pyarrow", None),
    ("numpy", None),
)


def check() -> list[str]:
    """Import every package; return the problems (empty when the install is sound)."""
    problems = []
    for name, extension in PACKAGES:
        try:
            module = importlib.import_module(name)
            if extension is not None:
                loaded = importlib.import_module(extension)
                if getattr(loaded, "_IS_TORCHAUDIO_EXT_AVAILABLE", True) is False:
                    raise ImportError(f"{extension}: compiled extension not available")
        except Exception as exc:  # any import failure is the message we want to show
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        print(f"{name} {getattr(module, '__version__', '?')}")
    return problems


def main() -> int:
    problems = check()
    for line in problems:
        print(f"install check FAILED: {line}", file=sys.stderr)
    if problems:
        print("reinstall from the lock file: rm -rf .venv && make install", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
