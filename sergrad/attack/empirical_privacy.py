"""Empirical privacy columns of attack rows: eps_lb and, for local user_dp, the mechanism's own
epsilon with a loud violation check (see schema.ATTACKS).

eps_lb uses trial 0 of a per-client protocol (one prediction per client: independent draws)
with the shadow threshold (fixed before seeing the target) and the Clopper-Pearson bound of
sergrad.privacy_bound.empirical_epsilon at the target run's delta. For a target trained with
`user_dp` in local mode every two client datasets are neighbours of the local mechanism, so
eps_lb must not exceed the Gaussian mechanism's epsilon for the n updates combined
(sensitivity 2S under replacement); if it does, the defense or its accounting is broken.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from sergrad.privacy_bound import empirical_epsilon, local_gaussian_epsilon

NO_PRIVACY_COLUMNS = {"eps_lb": None, "eps_lb_delta": None, "mechanism_epsilon": None,
                      "eps_violation": None}  # fmt: skip


def local_noise(run_config_json: str | None) -> float | None:
    """The noise multiplier of a user_dp defense in local mode with an explicit
    noise_multiplier in the target run's config; None otherwise."""
    if not run_config_json:
        return None
    try:
        defenses = json.loads(run_config_json).get("defenses") or []
    except (json.JSONDecodeError, AttributeError):
        return None
    for d in defenses:
        p = d.get("params") or {}
        if d.get("name") == "user_dp" and p.get("mode", "local") == "local":
            z = p.get("noise_multiplier")
            return float(z) if z is not None else None
    return None


def privacy_columns(y, p, sel, *, n: int, threshold: float, delta: float,
                    noise: float | None) -> dict:  # fmt: skip
    """eps_lb from trial 0 (one prediction per client) with the shadow threshold, and the
    user_dp local mechanism's epsilon for n updates beside it."""
    first = np.array([s.trial == 0 for s in sel], dtype=bool)
    yy, pred = y[first], p[first] >= threshold
    eps = empirical_epsilon(tp=int((pred & (yy == 1)).sum()), n_pos=int((yy == 1).sum()),
                            fp=int((pred & (yy == 0)).sum()), n_neg=int((yy == 0).sum()),
                            delta=delta)  # fmt: skip
    out = {"eps_lb": eps, "eps_lb_delta": delta, "mechanism_epsilon": None}
    if noise is not None and delta > 0:
        count = max(len(s.rows) for s in sel) if n <= 0 else n
        mech = local_gaussian_epsilon(noise_multiplier=noise, n_updates=count,
                                      delta=delta)  # fmt: skip
        out["mechanism_epsilon"] = mech
        out["eps_violation"] = bool(eps > mech)
    return out


def warn_violations(rows: list[dict]) -> None:
    """eps_lb above the local mechanism's epsilon contradicts the guarantee: a bug. Say so."""
    for r in rows:
        if r.get("eps_violation"):
            msg = (f"DP VIOLATION: eps_lb {r['eps_lb']:.3f} > mechanism epsilon "
                   f"{r['mechanism_epsilon']:.3f} ({r['attack']}, {r['layer']}, {r['protocol']}, "
                   f"n_avg={r['n_avg']}, target {r['target_run']}): the defense or its "
                   "accounting is broken")  # fmt: skip
            r["note"] = "; ".join(filter(None, [msg, r.get("note")]))
            print(f"[attack] {msg}", file=sys.stderr)
