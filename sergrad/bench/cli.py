"""`sergrad bench fl|attack|dp|sweep`: each area's benchmark lives in sergrad/bench/<area>.py
and defines `add_arguments(parser)` and `main(args) -> int`."""

from __future__ import annotations

import importlib

AREAS = {
    "fl": "client updates per second, reference vs fast engine, harvest cost",
    "attack": "attack training throughput, memory and UAR (cnn vs fast attacks)",
    "dp": "DP-SGD step time: fast path vs Opacus hooks vs ghost clipping vs non-private",
    "sweep": "sweep engine wall time against the ideal (sum of run times / cores)",
    "eval": "a sweep's evaluation phase: per-evaluation vs featurize-once, cold and warm",
}


def add_commands(sub) -> None:
    bench = sub.add_parser("bench", help="benchmarks (ratios against the reference in one run)")
    areas = bench.add_subparsers(dest="area", metavar="AREA", required=True)
    for area, help_text in AREAS.items():
        try:
            module = importlib.import_module(f"sergrad.bench.{area}")
        except ModuleNotFoundError as exc:
            if exc.name == f"sergrad.bench.{area}":
                continue
            raise
        parser = areas.add_parser(area, help=help_text)
        module.add_arguments(parser)
        parser.set_defaults(func=module.main)
