"""Sample-level DP-SGD inside each client's local training (Abadi et al. 2016, via Opacus).

The defense itself only *asks* for DP-SGD: `local_training()` returns
`LocalTraining(per_example_clip=C, noise_multiplier=z, poisson=...)`, and both engines
implement it (reference: Opacus GradSampleModule + DPOptimizer; fast: closed-form per-sample
norms, sergrad/fl/dp_clip.py). Each local step clips every example's gradient to L2 norm C,
sums, adds N(0, (z C)^2) per coordinate and divides by the (expected) batch size.

Accounting: one Opacus accountant per client, kept across rounds. After each client's local
training the engine calls `on_client_trained(client_id, sample_rate=b/n_k, steps=s)` and the
accountant is stepped `s` times at (z, b/n_k). `privacy_spent()` reports the MAXIMUM epsilon
over clients at `delta` (the worst-off client's guarantee). The guarantee protects single
utterances of a client (example-level adjacency), not the speaker and not their gender.

`target_epsilon` instead of `noise_multiplier`: z is chosen with Opacus's
`get_noise_multiplier` so that a client taking part in the *expected* number of rounds
(T * clients_per_round / n_clients) with the planned local steps and sampling rate spends
exactly the target (needs a `TrainingPlan`). Clients sampled more often than expected spend
more; the reported epsilon is the true maximum, not the target.

Params: max_grad_norm (C > 0, default 1.0), noise_multiplier (>= 0) or target_epsilon (> 0),
poisson (bool, default true), delta (0 < delta < 1, default 1e-5), accountant (rdp | prv).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sergrad.errors import ConfigError
from sergrad.fl.update import Defense, LocalTraining, PrivacySpent

from . import params as P
from .accounting import ACCOUNTANTS, ClientAccountants, noise_for_epsilon
from .plan import TrainingPlan

DEFAULTS: dict[str, Any] = {
    "max_grad_norm": 1.0,
    "noise_multiplier": None,
    "target_epsilon": None,
    "poisson": True,
    "delta": 1e-5,
    "accountant": "rdp",
}


class DPSGD(Defense):
    name = "dp_sgd"
    protects = "utterances"

    def __init__(
        self,
        *,
        max_grad_norm: float,
        noise_multiplier: float,
        poisson: bool,
        delta: float,
        accountant: str,
        target_epsilon: float | None = None,
    ) -> None:
        self.max_grad_norm = max_grad_norm
        self.noise_multiplier = noise_multiplier
        self.poisson = poisson
        self.delta = delta
        self.accountant = accountant
        self.target_epsilon = target_epsilon
        self.level = target_epsilon if target_epsilon is not None else noise_multiplier
        self.clients = ClientAccountants(accountant)

    def local_training(self) -> LocalTraining:
        return LocalTraining(
            per_example_clip=self.max_grad_norm,
            noise_multiplier=self.noise_multiplier,
            poisson=self.poisson,
        )

    def on_client_trained(self, client_id: int, *, sample_rate: float, steps: int) -> None:
        self.clients.step(
            client_id,
            noise_multiplier=self.noise_multiplier,
            sample_rate=sample_rate,
            steps=steps,
        )

    def client_epsilon(self, client_id: int) -> float:
        return self.clients.epsilon(client_id, self.delta)

    def privacy_spent(self) -> PrivacySpent:
        return PrivacySpent(
            epsilon=self.clients.max_epsilon(self.delta),
            delta=self.delta,
            accountant=self.accountant,
            protects=self.protects,
        )


def build(params: Mapping[str, Any], *, plan: TrainingPlan | None = None) -> DPSGD:
    p = P.resolve("dp_sgd", params, DEFAULTS)
    P.one_of_noise_or_target("dp_sgd", p)
    clip = P.number("dp_sgd", "max_grad_norm", p["max_grad_norm"], low=0, low_open=True)
    delta = P.number("dp_sgd", "delta", p["delta"], low=0, high=1, low_open=True, high_open=True)
    accountant = P.choice("dp_sgd", "accountant", p["accountant"], ACCOUNTANTS)
    poisson = P.flag("dp_sgd", "poisson", p["poisson"])
    target = P.optional_number(
        "dp_sgd", "target_epsilon", p["target_epsilon"], low=0, low_open=True
    )
    if target is None:
        noise = P.number("dp_sgd", "noise_multiplier", p["noise_multiplier"], low=0, high=1e6)
    else:
        if plan is None:
            raise ConfigError(
                "defense 'dp_sgd': target_epsilon needs the training plan (rounds, clients per "
                "round, local steps, sampling rate); the engine passes it to create_defense(plan=)"
            )
        noise = noise_for_epsilon(
            target,
            sample_rate=plan.sample_rate,
            steps=plan.expected_client_steps,
            delta=delta,
            accountant=accountant,
            who="defense 'dp_sgd'",
        )
    return DPSGD(
        max_grad_norm=clip,
        noise_multiplier=noise,
        poisson=poisson,
        delta=delta,
        accountant=accountant,
        target_epsilon=target,
    )
