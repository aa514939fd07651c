"""The canary audit of one FL run's DP mechanism: `canary_audit_of_run(config, store, ...)`.

The run's data are loaded and partitioned exactly as `run_fl` does (same inputs, same seed),
its mechanism is derived by `sergrad.audit.mechanism.mechanism_of` (clip, noise multiplier,
sampling rate, steps: the run's own, not guessed), and the matching one-run canary audit of
`sergrad.audit.canary` is run with those parameters:

- dp_sgd: gradient canaries in the worst-off client's local DP-SGD (its sampling rate, its
  total local steps, its number of training examples beside the canaries);
- user_dp central: canary clients in a population of c x N clients sampling c x k per round
  (c = ceil(2 m / N)), so the client rate is exactly the run's k / N, for the run's rounds.

The row (schema.AUDITS) holds the mechanism, the canaries and guesses, eps_lb at the chosen
confidence, the accountant's epsilon for the audited mechanism and the run's own reported
epsilon, and `eps_violation` (eps_lb above the accountant: a bug in sergrad's DP code).
"""

from __future__ import annotations

import math

from sergrad.audit.config import CanaryAuditConfig


def canary_audit_of_run(config, store, *, canary: CanaryAuditConfig) -> dict:
    """Audit the mechanism of run `config` (inputs read from `store`); an audits row."""
    from sergrad.audit.canary import central_user_dp_canary_audit, dp_sgd_canary_audit
    from sergrad.audit.mechanism import mechanism_of
    from sergrad.defenses import defense_label
    from sergrad.fl.data import load_dataset
    from sergrad.fl.partition import partition
    from sergrad.fl.run import build_defenses, inputs_in
    from sergrad.fl.schedule import derive_seed

    ds = load_dataset(inputs_in(config.data, store))
    part = partition(ds, config.data, seed=config.seed)
    defenses = build_defenses(config, part)
    mech = mechanism_of(config, part, defenses=defenses)
    if mech is None:
        raise ValueError("the run has no dp_sgd or central user_dp defense to audit")
    m = canary.n_canaries
    common = dict(noise_multiplier=mech.noise_multiplier, m=m, delta=mech.delta,
                  accountant=mech.accountant, guess_fraction=canary.guess_fraction,
                  confidence=canary.confidence,
                  seed=derive_seed(config.seed, config.data.fold, "canary audit"))  # fmt: skip
    if mech.kind == "dp_sgd":
        res = dp_sgd_canary_audit(max_grad_norm=mech.clip, sample_rate=mech.sample_rate,
                                  steps=mech.steps, n_real=mech.n_train,
                                  dim_in=max(32, m // 8 + 1), **common)  # fmt: skip
    else:
        c = max(1, math.ceil(2 * m / mech.n_clients))
        res = central_user_dp_canary_audit(clip_norm=mech.clip, n_real=c * mech.n_clients - m,
                                           clients_per_round=c * mech.clients_per_round,
                                           rounds=mech.steps, **common)  # fmt: skip
    label, level = defense_label(defenses)
    return {
        "feature_set": ds.feature_set,
        "algorithm": config.algo.name,
        "defense": label,
        "defense_level": None if level is None else float(level),
        "mechanism": mech.kind,
        "noise_multiplier": mech.noise_multiplier,
        "clip_norm": mech.clip,
        "sample_rate": mech.sample_rate,
        "steps": mech.steps,
        "n_clients": mech.n_clients,
        "clients_per_round": mech.clients_per_round,
        "audited_client": mech.client_id,
        "n_train": mech.n_train,
        "n_canaries": res.m,
        "n_guesses": res.r,
        "n_correct": res.v,
        "confidence": canary.confidence,
        "eps_lb": res.eps_lb,
        "accountant_epsilon": res.accountant_epsilon,
        "delta": res.delta,
        "accountant": mech.accountant,
        "eps_violation": bool(res.eps_lb > res.accountant_epsilon),
        "fold": config.data.fold,
        "seed": config.seed,
    }
