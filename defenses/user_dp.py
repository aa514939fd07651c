"""User-level DP-FedAvg (McMahan et al. 2018): clip each client's whole update, add Gaussian noise.

Clipping: all tensors of one client's shared update, taken jointly as one vector u, are scaled
by min(1, S / ||u||_2), so ||u||_2 <= S afterwards and the direction is kept.

Noise, by `mode`:
- `local` (default): every client's clipped update gets N(0, (z S)^2) per coordinate in
  `client_update`, before the server sees it. The server, an eavesdropper and the harvest all
  see noised updates. Accounting (against the server, who sees each update and knows who was
  sampled, so there is NO amplification by client sampling): each participation of client k
  is one Gaussian mechanism with sensitivity S and noise multiplier z; a client sampled in m
  rounds has composed m of them. `privacy_spent()` reports the maximum over clients, i.e.
  epsilon_for(z, sample_rate=1, steps=max_k m_k).
- `central`: `client_update` only clips; `server_update` adds noise to the aggregate. The
  engine's aggregate is the weighted MEAN of n clipped updates; the noise McMahan et al. put on
  the SUM is z S per coordinate, so on the mean we add N(0, (z S / n)^2) with n = n_clients
  aggregated that round. This is exact for equal weights; with sample-size weights w_k a client's
  influence on the mean is S w_k / sum(w), which exceeds S / n for larger-than-average clients,
  so the stated epsilon holds for equal client sizes and is optimistic otherwise. Accounting:
  one subsampled Gaussian step per round at q = n_sampled / n_clients_total (Poisson
  approximation of sampling without replacement), via on_round_end.
  THE HARVEST IN CENTRAL MODE RECORDS CLIPPED, UN-NOISED INDIVIDUAL UPDATES: central DP protects
  only the released model against outsiders; it gives no protection at all against the server
  or anyone reading the harvested updates, which is exactly the attacker of this project.

What it protects: one client's whole local data set ("speakers" when one client = one speaker,
as in CREMA-D; where a speaker is split into m clients, as in IEMOCAP and MSP-Improv, the
guarantee per speaker is the m-fold group-privacy version, much weaker).

Params: clip_norm (S > 0, default 1.0), noise_multiplier (>= 0) or target_epsilon (> 0, needs
a TrainingPlan), mode (local | central), delta (0 < delta < 1/n_clients, default 1e-5),
accountant (rdp | prv).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from sergrad.errors import ConfigError
from sergrad.fl.update import ClientUpdate, Defense, PrivacySpent

from . import params as P
from .accounting import ACCOUNTANTS, CountAccountant, epsilon_for, noise_for_epsilon
from .plan import TrainingPlan

DEFAULTS: dict[str, Any] = {
    "clip_norm": 1.0,
    "noise_multiplier": None,
    "target_epsilon": None,
    "mode": "local",
    "delta": 1e-5,
    "accountant": "rdp",
}
MODES: tuple[str, ...] = ("local", "central")


def update_norm(tensors: Mapping[str, torch.Tensor]) -> float:
    """L2 norm of all tensors taken together as one vector (computed in float64)."""
    return math.sqrt(sum(float(t.double().square().sum()) for t in tensors.values()))


def clip_update(tensors: Mapping[str, torch.Tensor], clip_norm: float) -> dict[str, torch.Tensor]:
    """Scale the whole update by min(1, clip_norm / ||u||); direction preserved."""
    norm = update_norm(tensors)
    scale = min(1.0, clip_norm / norm) if norm > 0 else 1.0
    return {name: t * scale for name, t in tensors.items()}


def add_gaussian(
    tensors: Mapping[str, torch.Tensor], std: float, *, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Each tensor + N(0, std^2) per coordinate, drawn in the mapping's order from `generator`."""
    if std == 0:
        return dict(tensors)
    out = {}
    for name, t in tensors.items():
        z = torch.randn(t.shape, generator=generator, dtype=t.dtype, device=generator.device)
        out[name] = t + std * z.to(t.device)
    return out


class UserDP(Defense):
    name = "user_dp"
    protects = "speakers"

    def __init__(
        self,
        *,
        clip_norm: float,
        noise_multiplier: float,
        mode: str,
        delta: float,
        accountant: str,
        target_epsilon: float | None = None,
    ) -> None:
        self.clip_norm = clip_norm
        self.noise_multiplier = noise_multiplier
        self.mode = mode
        self.delta = delta
        self.accountant = accountant
        self.target_epsilon = target_epsilon
        self.level = target_epsilon if target_epsilon is not None else noise_multiplier
        self.rounds = CountAccountant(accountant)  # central: one step per round
        self.participations: dict[int, int] = {}  # local: noised updates per client

    def client_update(self, update: ClientUpdate, *, generator: torch.Generator) -> ClientUpdate:
        tensors = clip_update(update.tensors, self.clip_norm)
        if self.mode == "local":
            tensors = add_gaussian(
                tensors, self.noise_multiplier * self.clip_norm, generator=generator
            )
            self.participations[update.client_id] = self.participations.get(update.client_id, 0) + 1
        return update.with_tensors(tensors)

    def server_update(
        self, aggregate: dict[str, torch.Tensor], *, n_clients: int, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        if self.mode != "central" or n_clients <= 0:
            return aggregate
        std = self.noise_multiplier * self.clip_norm / n_clients
        return add_gaussian(aggregate, std, generator=generator)

    def on_round_end(self, round: int, *, n_clients_total: int, n_sampled: int) -> None:
        if self.mode == "central" and n_sampled > 0:
            q = n_sampled / n_clients_total
            self.rounds.step(noise_multiplier=self.noise_multiplier, sample_rate=q)

    def privacy_spent(self) -> PrivacySpent:
        if self.mode == "central":
            eps = self.rounds.epsilon(self.delta)
        else:
            worst = max(self.participations.values(), default=0)
            eps = epsilon_for(
                self.noise_multiplier,
                sample_rate=1.0,
                steps=worst,
                delta=self.delta,
                accountant=self.accountant,
            )
        return PrivacySpent(
            epsilon=eps, delta=self.delta, accountant=self.accountant, protects=self.protects
        )


def build(
    params: Mapping[str, Any], *, plan: TrainingPlan | None = None, n_clients: int | None = None
) -> UserDP:
    p = P.resolve("user_dp", params, DEFAULTS)
    P.one_of_noise_or_target("user_dp", p)
    clip = P.number("user_dp", "clip_norm", p["clip_norm"], low=0, low_open=True)
    mode = P.choice("user_dp", "mode", p["mode"], MODES)
    accountant = P.choice("user_dp", "accountant", p["accountant"], ACCOUNTANTS)
    n_clients = n_clients or (plan.n_clients if plan else None)
    high = 1.0 / n_clients if n_clients else 1.0
    delta = P.number(
        "user_dp", "delta", p["delta"], low=0, high=high, low_open=True, high_open=True
    )
    target = P.optional_number(
        "user_dp", "target_epsilon", p["target_epsilon"], low=0, low_open=True
    )
    if target is None:
        noise = P.number("user_dp", "noise_multiplier", p["noise_multiplier"], low=0, high=1e6)
    else:
        if plan is None:
            raise ConfigError(
                "defense 'user_dp': target_epsilon needs the training plan (rounds, clients per "
                "round); the engine passes it to create_defense(plan=)"
            )
        if mode == "central":
            rate, steps = plan.client_rate, plan.rounds
        else:
            rate, steps = 1.0, max(1, math.ceil(plan.expected_participations))
        noise = noise_for_epsilon(
            target,
            sample_rate=rate,
            steps=steps,
            delta=delta,
            accountant=accountant,
            who="defense 'user_dp'",
        )
    return UserDP(
        clip_norm=clip,
        noise_multiplier=noise,
        mode=mode,
        delta=delta,
        accountant=accountant,
        target_epsilon=target,
    )
