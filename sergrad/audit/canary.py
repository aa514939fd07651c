"""Canary audits of sergrad's DP mechanisms, each beside the accountant's epsilon.

`dp_sgd_canary_audit`: one client's local DP-SGD with sergrad's own clipping and noise
(sergrad.fl.dp_clip.dp_sgd_grads, the fast engine's path) on one Linear layer. Besides n_real
ordinary examples, m gradient canaries are each included with probability 1/2; canary i is
an example whose input is a scaled one-hot e_j and whose back-propagated delta is a scaled
one-hot e_k, so its (clipped) gradient sits on weight cell (k, j) that no other canary uses.
Every step Poisson-samples each example with rate q. The server sees the client's update
(the sum of the noised steps); canary i is scored by the update's (k_i, j_i) cell. The
accountant's epsilon is Opacus's for (z, q, steps) (defenses.accounting.epsilon_for).

`central_user_dp_canary_audit`: user-level DP-FedAvg with server-side noise (defenses.user_dp
in central mode: clip each client's update to S, average, add N(0, (z S / n)^2)). m canary
clients, each included with probability 1/2, always send the same random unit direction u_i
scaled far past S (so clipped to S); an excluded canary stays in the population but sends a
zero update (the noised sum is the same as without it, and the client rate stays exactly
clients_per_round / (n_real + m)); real clients send small random updates. The final model change (sum of the noised aggregates over rounds) is scored by
<change, u_i> (Andrew et al. 2023, "One-shot empirical privacy estimation"). The accountant's
epsilon is the defense's own (privacy_spent), stepped each round at q = sampled / population.

Both guess "in" for the top `guess_fraction / 2` of canaries and "out" for the bottom as many
(fixed in advance) and bound epsilon with sergrad.audit.one_run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from sergrad.audit.one_run import epsilon_lower_bound, guesses


@dataclass(frozen=True)
class AuditResult:
    eps_lb: float  # 1 - confidence lower bound on epsilon from the canaries
    accountant_epsilon: float  # the accountant's epsilon for the same mechanism
    delta: float
    m: int  # canaries
    r: int  # guesses
    v: int  # correct guesses


def _bound(scores, included, *, m, delta, guess_fraction, confidence, accountant_eps):
    k = max(1, int(round(guess_fraction * m / 2)))
    r, v = guesses(scores, included, k_pos=k, k_neg=k)
    eps = epsilon_lower_bound(m=m, r=r, v=v, delta=delta, confidence=confidence)
    return AuditResult(eps_lb=eps, accountant_epsilon=accountant_eps, delta=delta, m=m, r=r, v=v)


def dp_sgd_canary_audit(
    *,
    noise_multiplier: float,
    max_grad_norm: float = 1.0,
    sample_rate: float = 0.1,
    steps: int = 50,
    m: int = 200,
    n_real: int = 200,
    dim_in: int = 32,
    dim_out: int = 16,
    delta: float = 1e-5,
    accountant: str = "rdp",
    guess_fraction: float = 0.2,
    confidence: float = 0.95,
    seed: int = 0,
) -> AuditResult:
    """Gradient-canary audit of one client's local DP-SGD (see the module docstring)."""
    from sergrad.defenses.accounting import epsilon_for
    from sergrad.fl.dp_clip import dp_sgd_grads

    if m > dim_in * dim_out:
        raise ValueError(f"m={m} canaries need dim_in * dim_out >= m cells")
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    cells = rng.choice(dim_in * dim_out, size=m, replace=False)
    k_of, j_of = cells // dim_in, cells % dim_in
    included = rng.random(m) < 0.5
    big = 10.0  # |a| = |delta| = 10: per-sample norm ~100 >> C, clipped to C
    canary_a = np.zeros((m, dim_in), np.float32)  # [m, I]
    canary_d = np.zeros((m, dim_out), np.float32)  # [m, O]
    canary_a[np.arange(m), j_of] = big
    canary_d[np.arange(m), k_of] = big
    real_a = rng.normal(0, 1 / math.sqrt(dim_in), (n_real, dim_in)).astype(np.float32)
    real_d = rng.normal(0, 1 / math.sqrt(dim_out), (n_real, dim_out)).astype(np.float32)
    pool_a = np.concatenate([real_a, canary_a[included]])  # [N, I]
    pool_d = np.concatenate([real_d, canary_d[included]])  # [N, O]
    update = torch.zeros(dim_out, dim_in, dtype=torch.float64)  # [O, I]
    expected = sample_rate * len(pool_a)
    for _ in range(steps):
        pick = rng.random(len(pool_a)) < sample_rate
        acts, deltas = torch.from_numpy(pool_a[pick]), torch.from_numpy(pool_d[pick])
        (gw, _gb), = dp_sgd_grads([acts], [deltas], max_norm=max_grad_norm,
                                  noise_multiplier=noise_multiplier,
                                  expected_batch_size=expected, generator=gen)  # fmt: skip
        update += gw.double()
    scores = update.numpy()[k_of, j_of]
    eps = epsilon_for(noise_multiplier, sample_rate=sample_rate, steps=steps, delta=delta,
                      accountant=accountant)  # fmt: skip
    return _bound(scores, included, m=m, delta=delta, guess_fraction=guess_fraction,
                  confidence=confidence, accountant_eps=eps)  # fmt: skip


def central_user_dp_canary_audit(
    *,
    noise_multiplier: float,
    clip_norm: float = 1.0,
    n_real: int = 200,
    clients_per_round: int = 50,
    rounds: int = 30,
    m: int = 200,
    dim: int = 4096,
    delta: float = 1e-5,
    accountant: str = "rdp",
    guess_fraction: float = 0.2,
    confidence: float = 0.95,
    seed: int = 0,
) -> AuditResult:
    """Canary-client audit of central user-level DP-FedAvg (see the module docstring)."""
    from sergrad.defenses.user_dp import UserDP, clip_update

    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    defense = UserDP(clip_norm=clip_norm, noise_multiplier=noise_multiplier, mode="central",
                     delta=delta, accountant=accountant)  # fmt: skip
    directions = rng.normal(0, 1, (m, dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)  # [m, D] unit rows
    included = rng.random(m) < 0.5
    population = n_real + m  # fixed, so the client rate is exactly clients_per_round / population
    change = torch.zeros(dim, dtype=torch.float64)  # [D] sum of released aggregates
    for r in range(1, rounds + 1):
        picked = rng.choice(population, size=min(clients_per_round, population), replace=False)
        clipped = []
        for c in picked:
            if c < n_real:
                u = rng.normal(0, 0.5 * clip_norm / math.sqrt(dim), dim)  # an ordinary client
            elif included[c - n_real]:
                u = directions[c - n_real] * 100 * clip_norm
            else:  # an excluded canary sends nothing: the same sum as its absence
                u = np.zeros(dim)
            t = clip_update({"w": torch.from_numpy(u)}, clip_norm)["w"]
            clipped.append(t)
        mean = {"w": torch.stack(clipped).mean(0)}
        noised = defense.server_update(mean, n_clients=len(picked), generator=gen)
        defense.on_round_end(r, n_clients_total=population, n_sampled=len(picked))
        change += noised["w"].double()
    scores = directions @ change.numpy()
    eps = defense.privacy_spent().epsilon
    return _bound(scores, included, m=m, delta=delta, guess_fraction=guess_fraction,
                  confidence=confidence, accountant_eps=eps)  # fmt: skip
