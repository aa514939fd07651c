"""The DP mechanism an FL run actually executes, derived from its config and its partition.

A sweep cell's canary audit must test the same mechanism as the cell's runs, so nothing here
is guessed: the defense object is built by the engine's own `sergrad.fl.run.build_defenses`
(so a `target_epsilon` becomes the same noise multiplier through defenses/plan.py), and the
client sampling, local steps and sampling rates come from `sergrad.fl.schedule`, the
functions both engines call.

- `dp_sgd` (sample-level, per client): every client k composes its own local steps. Its
  Poisson rate is `sample_rate(n_k, algo)` and its total steps are (rounds it is sampled in,
  from `sample_clients` with the run's seed) x `local_steps(n_k, algo)`. The run reports the
  worst client's epsilon, so the audit targets that client (ties: the lowest client id).
- `user_dp` central (user-level): one subsampled Gaussian step per round at
  q = clients_per_round(N, client_fraction) / N, for `rounds` rounds.

Other defenses (and `user_dp` local, tested by the gender attack's eps_lb) give None.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mechanism:
    kind: str  # dp_sgd | user_dp_central
    noise_multiplier: float  # z
    clip: float  # C (per example) or S (per client update)
    sample_rate: float  # dp_sgd: the audited client's Poisson rate; user_dp: client rate q
    steps: int  # dp_sgd: the audited client's local steps over the run; user_dp: rounds
    delta: float
    accountant: str  # rdp | prv
    n_clients: int  # clients in the federation
    clients_per_round: int
    client_id: int | None = None  # dp_sgd: the audited (worst-off) client
    n_train: int = 0  # dp_sgd: its local training examples


def needs_canary_audit(defense_name: str, params: dict) -> str | None:
    """The mechanism kind a canary audit tests for this in-loop defense, else None."""
    from sergrad.defenses.user_dp import DEFAULTS as USER_DP_DEFAULTS

    if defense_name == "dp_sgd":
        return "dp_sgd"
    if defense_name == "user_dp" and params.get("mode", USER_DP_DEFAULTS["mode"]) == "central":
        return "user_dp_central"
    return None


def client_participations(n_clients: int, *, fraction: float, seed: int, rounds: int) -> list[int]:
    """Rounds each client is sampled in (the engines' own `sample_clients` draws)."""
    from sergrad.fl.schedule import sample_clients

    counts = [0] * n_clients
    for r in range(1, rounds + 1):
        for c in sample_clients(n_clients, fraction=fraction, seed=seed, round=r).tolist():
            counts[c] += 1
    return counts


def mechanism_of(config, part, *, defenses=None) -> Mechanism | None:
    """The mechanism run `config` executes on partition `part` (see the module docstring);
    `defenses`: the run's defense objects when already built (build_defenses)."""
    from sergrad.defenses.accounting import epsilon_for
    from sergrad.defenses.dp_sgd import DPSGD
    from sergrad.defenses.user_dp import UserDP
    from sergrad.fl.run import build_defenses
    from sergrad.fl.schedule import clients_per_round, local_steps, sample_rate

    algo, n = config.algo, len(part.clients)
    k = clients_per_round(n, algo.client_fraction)
    for d in build_defenses(config, part) if defenses is None else defenses:
        if isinstance(d, DPSGD):
            seen = client_participations(n, fraction=algo.client_fraction, seed=config.seed,
                                         rounds=algo.rounds)  # fmt: skip
            history = {}  # (q, steps) -> first client with that accountant history
            for c, times in zip(part.clients, seen):
                key = (sample_rate(c.n_train, algo), times * local_steps(c.n_train, algo))
                if key[1] > 0:
                    history.setdefault(key, c)
            # epsilon grows with q and steps: a dominated history is never the worst (PRV
            # costs about a second per evaluation, so only the frontier is evaluated)
            frontier = [k for k in history if not any(
                o != k and o[0] >= k[0] and o[1] >= k[1] for o in history)]  # fmt: skip
            if not frontier:
                return None
            eps = {k: epsilon_for(d.noise_multiplier, sample_rate=k[0], steps=k[1],
                                  delta=d.delta, accountant=d.accountant) for k in frontier}  # fmt: skip
            worst = max(frontier, key=lambda k: (eps[k], -history[k].client_id))
            c, (q, steps) = history[worst], worst
            return Mechanism("dp_sgd", d.noise_multiplier, d.max_grad_norm, q, steps, d.delta,
                             d.accountant, n, k, client_id=c.client_id, n_train=c.n_train)  # fmt: skip
        if isinstance(d, UserDP) and d.mode == "central":
            return Mechanism("user_dp_central", d.noise_multiplier, d.clip_norm, k / n,
                             algo.rounds, d.delta, d.accountant, n, k)  # fmt: skip
    return None
