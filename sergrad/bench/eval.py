"""`sergrad bench eval`: one sweep's evaluation phase, per-evaluation vs featurize-once vs
fit-once.

A synthetic store like a sweep's (sergrad.attack.synth: `--shadows` shadow runs of one fold
and `--targets` target runs at the paper's layer shapes, or `--quick` small ones) is evaluated
by the grid targets x attack models x post-hoc levels (fc1 and fc2, fused), four ways, in one
process, one thread:

- per-evaluation: the `attack_inputs` cache is emptied before every evaluation (what each
  evaluation cost before the cache: it streams and featurizes the shadow harvest itself and
  trains its models);
- featurize-once: the shadow inputs are shared but the stored fits are deleted before every
  evaluation (what the cache did before it held fitted models: every evaluation trains);
- cold: one shared cache, empty at the start (the first evaluation of each featurizer builds
  the shadow inputs, the first of each fit trains it, the others read them);
- warm: the cache already full (a resumed sweep, or a second sweep on the same shadow runs:
  no harvest read and no model trained for the shadow side).

Prints wall seconds per phase, the ratios to per-evaluation, the harvest reads per shadow run,
the attack models trained and the cache's bytes. The `attacks` outputs are deleted between
phases so each phase really evaluates. Temp folders are deleted.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import tempfile
import time

PAPER = {"fc1.weight": (256, 988), "fc1.bias": (256,), "fc2.weight": (128, 256),
         "fc2.bias": (128,), "fc3.weight": (4, 128), "fc3.bias": (4,)}  # fmt: skip
QUICK = {"fc1.weight": (32, 120), "fc1.bias": (32,), "fc2.weight": (16, 32), "fc2.bias": (16,),
         "fc3.weight": (4, 16), "fc3.bias": (4,)}  # fmt: skip
LEAK = {"fc1": 0.05, "fc2": 0.05, "fc3": 0.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small shapes and runs")
    parser.add_argument("--shadows", type=int, default=4, help="shadow runs")
    parser.add_argument("--targets", type=int, default=2, help="target runs")
    parser.add_argument("--rounds", type=int, default=20, help="rounds per run (16 clients)")
    parser.add_argument("--models", nargs="+", default=["logreg_colcorr", "logreg_stats"])
    parser.add_argument("--posthoc", type=float, nargs="+", default=[0.0, 0.5],
                        help="layer_perturbation std levels applied to the target (0 = none)")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=3)


def build_store(root: str, *, shapes: dict, shadows: int, targets: int, rounds: int):
    from sergrad.attack.synth import write_synthetic_run
    from sergrad.store import Store

    store = Store(root)
    spk = [(f"s{i}", "FM"[i % 2]) for i in range(20)]
    sids = []
    for i in range(shadows):
        write_synthetic_run(store, f"shadow{i}", corpus="a", shapes=shapes, speakers=spk,
                            rounds=rounds, clients_per_round=16, seed=i, signal=LEAK)  # fmt: skip
        sids.append(f"shadow{i}")
    tids = []
    for k in range(targets):
        write_synthetic_run(store, f"target{k}", corpus="b", shapes=shapes, speakers=spk,
                            rounds=rounds, clients_per_round=16, seed=100 + k, signal=LEAK,
                            role="target")  # fmt: skip
        tids.append(f"target{k}")
    return store, tuple(sids), tids


def grid(args, shadows, targets) -> list:
    from sergrad.attack.config import AttackConfig, AttackModelConfig, PostHocConfig

    configs = []
    for t in targets:
        for name in args.models:
            for level in args.posthoc:
                post = (PostHocConfig("layer_perturbation", {"std": level}),) if level else ()
                configs.append(
                    AttackConfig(
                        target_run=t,
                        shadow_runs=shadows,
                        layers=("fc1", "fc2"),
                        model=AttackModelConfig(name=name, epochs=args.epochs),
                        posthoc=post,
                        n_avg=(1, 0),
                        trials=2,
                        bootstrap=100,
                    )  # fmt: skip
                )
    return configs


def run_phase(store, configs, *, clear_each: str) -> tuple[float, collections.Counter, int]:
    """Wall seconds of evaluating `configs`, harvest streams per run and models trained;
    `clear_each`: "inputs" (the whole cache) or "fits" (stored fits) emptied before every
    evaluation, or "" (nothing)."""
    from sergrad.attack import fit_cache, inputs, pipeline, source
    from sergrad.attack.run import run_attack

    reads: collections.Counter = collections.Counter()
    trained = [0]
    real, real_train = source.iter_batches, pipeline.train_attack

    def counted(st, run_id, **kw):
        reads[run_id] += 1
        yield from real(st, run_id, **kw)

    def counted_train(*a, **kw):
        trained[0] += 1
        return real_train(*a, **kw)

    source.iter_batches, pipeline.train_attack = counted, counted_train
    try:
        t0 = time.perf_counter()
        for cfg in configs:
            if clear_each == "inputs":
                shutil.rmtree(store.path(inputs.TABLE), ignore_errors=True)
            elif clear_each == "fits":
                fit_cache.delete_all(store)
            run_attack(cfg, store)
        return time.perf_counter() - t0, reads, trained[0]
    finally:
        source.iter_batches, pipeline.train_attack = real, real_train


def main(args: argparse.Namespace) -> int:
    import torch

    from sergrad.attack import inputs

    torch.set_num_threads(1)
    if args.quick:
        args.shadows, args.targets, args.rounds, args.epochs = 2, 2, 6, 1
    shapes = QUICK if args.quick else PAPER
    tmp = tempfile.mkdtemp(prefix="sergrad-bench-eval-")
    try:
        t0 = time.perf_counter()
        store, shadows, targets = build_store(tmp, shapes=shapes, shadows=args.shadows,
                                              targets=args.targets, rounds=args.rounds)  # fmt: skip
        build = time.perf_counter() - t0
        configs = grid(args, shadows, targets)
        rows = []
        phases = (("per-evaluation", "inputs"), ("featurize-once", "fits"), ("cold", ""),
                  ("warm", ""))  # fmt: skip
        for phase, clear in phases:
            shutil.rmtree(store.path("attacks"), ignore_errors=True)
            shutil.rmtree(store.path("predictions"), ignore_errors=True)
            if phase == "cold":
                shutil.rmtree(store.path(inputs.TABLE), ignore_errors=True)
            wall, reads, trained = run_phase(store, configs, clear_each=clear)
            rows.append((phase, wall, sum(reads[s] for s in shadows) / len(shadows), trained))
        cache = sum(r["bytes"] for r in inputs.describe(store))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n_upd = args.rounds * 16
    print(f"eval bench: {len(configs)} evaluations ({args.targets} targets x {args.models} x "
          f"post-hoc {args.posthoc}), {args.shadows} shadow runs of {n_upd} updates, fc1 "
          f"{shapes['fc1.weight']}, {args.epochs} epochs, 1 thread; store built in "
          f"{build:.1f} s; attack_inputs {cache / 2**20:.1f} MB")  # fmt: skip
    print("\n| phase | wall s | s / evaluation | vs per-evaluation | harvest reads per shadow "
          "run | models trained |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    base = rows[0][1]
    for phase, wall, reads, trained in rows:
        print(f"| {phase} | {wall:.1f} | {wall / len(configs):.2f} | {wall / base:.2f}x | "
              f"{reads:.0f} | {trained} |")  # fmt: skip
    return 0
