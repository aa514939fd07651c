"""`sergrad attack run CONFIG.yaml [--set key=value ...] --store DIR`.

CONFIG.yaml keys are AttackConfig fields (sergrad/attack/config.py), e.g.

    target_run: 3f9c0a1b2c3d4e5f
    shadow_runs: [a1..., b2...]
    layers: [fc1, fc2, fc3]
    model: {name: logreg_stats, epochs: 20}
    n_avg: [1, 5, 0]
    attribute: age_group          # gender (default) | age_group | age | language | ...

Prints one line per (layer, protocol, n) with UAR, its 95% CI, AUC and TPR at 10% FPR; for
a numeric attribute (age) the MAE beside the predict-the-shadow-mean baseline.
"""

from __future__ import annotations

import argparse
import math


def add_commands(sub) -> None:
    attack = sub.add_parser("attack", help="attribute inference attack on harvested updates")
    cmds = attack.add_subparsers(dest="attack_command", metavar="COMMAND", required=True)
    run = cmds.add_parser(
        "run",
        help="train the attack on shadow runs and score the target run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("config", help="attack config YAML (keys = AttackConfig fields)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key, e.g. --set model.name=mlp_proj")  # fmt: skip
    run.add_argument("--store", required=True, help="results store (path or URI)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(func=_run)


def load_config(path: str, overrides: list[str]):
    from sergrad.attack.config import AttackConfig
    from sergrad.config import apply_overrides, from_dict, load_yaml

    return from_dict(AttackConfig, apply_overrides(load_yaml(path), overrides))


def _fmt(x) -> str:
    return "   -  " if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:6.3f}"


def format_table(rows: list[dict]) -> str:
    """A small fixed-width results table; `calib` is how the threshold was set, `eps_lb` the
    empirical epsilon lower bound, `!` a degenerate row (every prediction one class)."""
    head = (f"{'attack':<13} {'layer':<7} {'protocol':<28} {'n':>3} {'calib':<6} {'UAR':>6} "
            f"{'95% CI (clients)':>16} {'AUC':>6} {'TPR@1%':>6} {'TPR@10%':>7} {'eps_lb':>6}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in rows:
        ci = f"[{_fmt(r['uar_ci_low']).strip()}, {_fmt(r['uar_ci_high']).strip()}]"
        n = "all" if r["n_avg"] == 0 else str(r["n_avg"])
        flag = "!" if r.get("degenerate") else " "
        lines.append(
            f"{r['attack']:<13} {r['layer']:<7} {r['protocol']:<28} {n:>3} "
            f"{r.get('calibration') or 'shadow':<6} {_fmt(r['uar'])}{flag}{ci:>15} "
            f"{_fmt(r['auc'])} {_fmt(r.get('tpr_at_1fpr'))} {_fmt(r['tpr_at_10fpr']):>7} "
            f"{_fmt(r.get('eps_lb'))}"
        )
    numeric = [r for r in rows if r.get("mae") is not None]
    if numeric:
        lines.append(f"numeric attribute {numeric[0].get('attribute')!r}: MAE vs the "
                     "predict-the-shadow-mean baseline, Spearman rho, 95% CI of the MAE gain")  # fmt: skip
        for r in numeric:
            n = "all" if r["n_avg"] == 0 else str(r["n_avg"])
            lines.append(
                f"{r['attack']:<13} {r['layer']:<7} {r['protocol']:<28} {n:>3} MAE "
                f"{_fmt(r['mae'])} base {_fmt(r['baseline_mae'])} rho {_fmt(r['spearman'])} "
                f"gain CI [{_fmt(r.get('mae_gain_ci_low')).strip()}, "
                f"{_fmt(r.get('mae_gain_ci_high')).strip()}]"
            )
    if any(r.get("degenerate") for r in rows):
        lines.append("! degenerate: every prediction one class (a threshold artifact, not "
                     "chance; see the prior calibration and the AUC)")  # fmt: skip
    return "\n".join(lines)


def _run(args) -> int:
    from sergrad.attack.config import eval_id
    from sergrad.attack.run import run_attack
    from sergrad.store import Store

    config = load_config(args.config, args.set)
    rows = run_attack(config, Store(args.store), progress=not args.no_progress)
    print(
        f"eval {eval_id(config)}: target {config.target_run}, {len(config.shadow_runs)} shadow runs"
    )
    print(format_table(rows))
    return 0
