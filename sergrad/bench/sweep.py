"""`sergrad bench sweep`: sweep-engine overhead against the ideal, measured in one run.

N short synthetic runs (`sergrad.bench.spin_job.SpinJob`: `--seconds` of CPU each, one thread, a runs row
written to a temporary store) go through the full engine: a private local Ray instance of
`--cores` CPUs, Tune trials with grouped runs and reused actors, progress, store writes.
Each run records its own wall time in its row, so

    ideal    = sum(run wall times) / cores
    overhead = engine wall time / ideal - 1      (target: <= 10% at 200 runs on 2 cores)

reported with and without Ray's start-up (the time before the first trial reports).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=200, help="number of short runs")
    parser.add_argument("--seconds", type=float, default=0.5, help="CPU seconds per run")
    parser.add_argument("--cores", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--per-trial", type=int, default=0, help="runs per trial (0 = auto)")
    parser.add_argument("--json", action="store_true", help="print JSON only")


def measure(*, runs: int, seconds: float, cores: int, per_trial: int = 0) -> dict:
    from sergrad.bench.spin_job import SpinJob
    from sergrad.store import Store
    from sergrad.sweep import runner
    from sergrad.sweep.progress import Progress
    from sergrad.sweep.runner import EngineOptions, run_jobs

    jobs = [SpinJob(f"bench{i:05d}", seconds) for i in range(runs)]
    marks: dict[str, float] = {}
    real_phase = runner._tune_phase

    def timed_phase(*args, **kwargs):
        marks["ray_ready"] = time.perf_counter()
        return real_phase(*args, **kwargs)

    runner._tune_phase = timed_phase
    try:
        with tempfile.TemporaryDirectory(prefix="sergrad-bench-") as tmp:
            t0 = time.perf_counter()
            run_jobs(
                jobs,
                store_uri=tmp,
                options=EngineOptions(num_cpus=cores, per_trial=per_trial, max_retries=0),
                progress=Progress(),
            )
            wall = time.perf_counter() - t0
            rows = Store(tmp).read("runs", columns=["wall_s", "status"]).to_pylist()
    finally:
        runner._tune_phase = real_phase
    busy = sum(r["wall_s"] for r in rows if r["status"] == "ok")
    ideal = busy / cores
    startup = marks.get("ray_ready", t0) - t0
    return {
        "runs": runs,
        "ok": sum(r["status"] == "ok" for r in rows),
        "seconds_per_run": seconds,
        "cores": cores,
        "wall_s": wall,
        "ray_startup_s": startup,
        "ideal_s": ideal,
        "overhead": wall / ideal - 1 if ideal else None,
        "overhead_after_startup": (wall - startup) / ideal - 1 if ideal else None,
    }


def main(args: argparse.Namespace) -> int:
    result = measure(
        runs=args.runs, seconds=args.seconds, cores=args.cores, per_trial=args.per_trial
    )
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{result['runs']} runs x {result['seconds_per_run']} s on {result['cores']} cores: "
        f"wall {result['wall_s']:.1f} s, ideal {result['ideal_s']:.1f} s (sum of run times / cores), "
        f"overhead {100 * result['overhead']:.1f}% "
        f"({100 * result['overhead_after_startup']:.1f}% after Ray start-up of "
        f"{result['ray_startup_s']:.1f} s)"
    )
    return 0
