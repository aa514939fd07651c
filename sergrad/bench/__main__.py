"""`python -m sergrad.bench AREA [...]`: the benchmarks without the rest of the CLI.

Same areas and options as `sergrad bench AREA`, but only the benchmark modules are imported,
so it runs where only torch, numpy, pyarrow and scikit-learn are installed (no polars, ray,
opacus, PyYAML or soundfile; `bench dp` then skips its Opacus rows): e.g. a GPU machine
with the repository on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import sys

from sergrad.bench.cli import add_commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sergrad.bench")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
