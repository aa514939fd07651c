"""`sergrad fl run CONFIG.yaml [--set key=value ...] --store DIR [--engine E] [--device D]`."""

from __future__ import annotations

import argparse
import sys


def add_commands(sub) -> None:
    fl = sub.add_parser("fl", help="federated SER simulation")
    cmds = fl.add_subparsers(dest="fl_command", metavar="COMMAND", required=True)
    run = cmds.add_parser("run", help="run one FL run (skipped if already recorded)")
    run.add_argument("config", help="run config YAML (keys = sergrad.fl.config.RunConfig fields)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key, e.g. --set algo.rounds=20 (repeatable)")  # fmt: skip
    run.add_argument("--store", required=True, help="results store root (path or s3:// URI)")
    run.add_argument("--engine", choices=["reference", "fast"], help="override config.engine")
    run.add_argument("--device", help="override config.device (cpu, cuda, cuda:1)")
    run.add_argument("--role", default="single", help="runs-row role label (target/shadow/single)")
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from sergrad.fl.run import load_run_config, run_fl
    from sergrad.store import Store

    overrides = list(args.overrides)
    if args.engine:
        overrides.append(f"engine={args.engine}")
    if args.device:
        overrides.append(f"device={args.device}")
    config = load_run_config(args.config, overrides)
    if config.device == "cpu":
        torch.set_num_threads(1)
    bar = tqdm(total=config.algo.rounds, file=sys.stderr, unit="round", leave=False)

    def progress(r: int, rounds: int, val_uar: float | None) -> None:
        bar.update(1)
        if val_uar is not None:
            bar.set_postfix_str(f"val UAR {100 * val_uar:.1f}")

    try:
        row = run_fl(config, Store(args.store), extra={"role": args.role}, progress=progress)
    finally:
        bar.close()
    print(
        f"run {row['run_id']} ({row['corpus']}, {row['algorithm']}, fold {row['fold']}): "
        f"test UAR {100 * row['test_uar']:.1f}  test acc {100 * row['test_acc']:.1f}  "
        f"val UAR {100 * row['val_uar']:.1f} @ round {row['best_round']}  "
        f"updates {row['n_updates']}  harvest {row['harvest_bytes'] / 1e6:.1f} MB  "
        f"{row['wall_s']:.1f} s"
    )
    return 0
