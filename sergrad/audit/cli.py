"""CLI: `sergrad audit canary dp_sgd|user_dp --noise-multiplier Z [...]`.

Runs the one-run canary audit of sergrad's DP mechanism with the given parameters and prints
its 95% eps_lb beside the accountant's epsilon (user_dp: central mode, canary clients).
"""

from __future__ import annotations

import argparse


def add_commands(sub) -> None:
    a = sub.add_parser("audit", help="canary audits of the DP mechanisms")
    kinds = a.add_subparsers(dest="audit", metavar="KIND", required=True)
    c = kinds.add_parser("canary", help="one-run canary audit (Steinke et al. 2023)")
    c.add_argument("mechanism", choices=("dp_sgd", "user_dp"),
                   help="dp_sgd: one client's local DP-SGD; user_dp: central user-level DP")  # fmt: skip
    c.add_argument("--noise-multiplier", type=float, required=True)
    c.add_argument("--clip", type=float, default=1.0, help="max_grad_norm / clip_norm")
    c.add_argument("--canaries", type=int, default=200)
    c.add_argument("--sample-rate", type=float, default=0.1, help="dp_sgd: Poisson rate")
    c.add_argument("--steps", type=int, default=50, help="dp_sgd: local steps")
    c.add_argument("--rounds", type=int, default=30, help="user_dp: rounds")
    c.add_argument("--clients-per-round", type=int, default=50, help="user_dp")
    c.add_argument("--delta", type=float, default=1e-5)
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(func=_canary)


def _canary(args: argparse.Namespace) -> int:
    from sergrad.audit.canary import central_user_dp_canary_audit, dp_sgd_canary_audit
    from sergrad.errors import ConfigError

    checks = {"--noise-multiplier": args.noise_multiplier >= 0, "--clip": args.clip > 0,
              "--canaries": args.canaries >= 2, "--sample-rate": 0 < args.sample_rate <= 1,
              "--steps": args.steps >= 1, "--rounds": args.rounds >= 1,
              "--clients-per-round": args.clients_per_round >= 1,
              "--delta": 0 < args.delta < 1}  # fmt: skip
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise ConfigError(f"{', '.join(bad)}: out of range")
    if args.mechanism == "dp_sgd":
        res = dp_sgd_canary_audit(noise_multiplier=args.noise_multiplier, max_grad_norm=args.clip,
                                  sample_rate=args.sample_rate, steps=args.steps,
                                  m=args.canaries, dim_in=max(32, args.canaries // 8 + 1),
                                  delta=args.delta, seed=args.seed)  # fmt: skip
    else:
        res = central_user_dp_canary_audit(noise_multiplier=args.noise_multiplier,
                                           clip_norm=args.clip, rounds=args.rounds,
                                           clients_per_round=args.clients_per_round,
                                           m=args.canaries, delta=args.delta, seed=args.seed)  # fmt: skip
    flag = "  VIOLATION: eps_lb above the accountant" if res.eps_lb > res.accountant_epsilon else ""
    print(f"{args.mechanism}: eps_lb {res.eps_lb:.3f} (95%, {res.v}/{res.r} correct guesses, "
          f"{res.m} canaries) vs accountant epsilon {res.accountant_epsilon:.3f} at delta "
          f"{res.delta:g}{flag}")  # fmt: skip
    return 1 if flag else 0
