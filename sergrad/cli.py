"""The `sergrad` command: one entry point, subcommands contributed by each area.

Each area module named in COMMANDS defines `add_commands(subparsers)`, which adds its
parsers and sets `func` (called with the parsed args, returns an exit code). Area modules
import heavy packages (torch, ray) inside their handlers so `sergrad --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from sergrad.errors import SergradError

COMMANDS: tuple[str, ...] = (
    "sergrad.demo",
    "sergrad.corpora.cli",
    "sergrad.features.cli",
    "sergrad.fl.cli",
    "sergrad.attack.cli",
    "sergrad.sweep.cli",
    "sergrad.bench.cli",
    "sergrad.analysis.cli",
    "sergrad.audit.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sergrad",
        description="Privacy audits of federated speech-emotion recognition.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # area not built in this checkout
                continue
            raise
        module.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except SergradError as exc:
        print(f"sergrad: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sergrad: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
