"""The paper's "user-level DP" (Feng, Peri, Narayanan, Interspeech 2022), reproduced as published.

Two parts, as in the authors' code:
1. Local training clips each step's whole mini-batch gradient (all parameters jointly) to L2
   norm C: `local_training()` returns `LocalTraining(batch_clip=C)`; the engines implement it
   as g <- g / max(1, ||g|| / C) before the optimiser (Adam) step.
2. The client adds N(0, s^2) to every parameter of its trained local model before sharing, with
       s = (2 C / |D_k|) * sqrt(2 q T ln(1 / delta)) / epsilon
   (`udp_noise_std`), |D_k| = the client's local training samples (`update.n_samples`),
   defaults C = 0.25, q = 0.1, T = 200, delta = 0.5.

The noise lives in MODEL space. What the client shares is converted accordingly:
- kind `delta` (local - global): + N(0, s^2), exactly the noise on the model;
- kind `pseudo_gradient` ((global - local) / (lr * steps)): + N(0, (s / (lr * steps))^2), with
  lr from the TrainingPlan and steps from `on_client_trained` (the same count the engine divides
  by), which is what the authors' code shared after noising the model;
- kind `gradient` (FedSGD, outside the paper, which ran this defense in FedAvg only): + N(0, s^2).

NOT a valid DP guarantee, so `privacy_spent()` returns None and no epsilon is recorded: the
sensitivity 2C/|D_k| ignores the learning rate and the number of local steps (a local model
moves by up to lr * steps * C per update, not C / |D_k|); clipping is per batch, not per
example or per user; Adam's normalisation rescales the clipped gradient, so C bounds nothing
after the optimiser step; delta = 0.5 allows failure with probability one half; and the
per-round noise is not composed over the rounds a client takes part in. The `epsilon` param is
therefore only the paper's knob (the swept `level`), not a privacy loss.

Params: epsilon (> 0, default 10), clip (C > 0, default 0.25), q (0 < q <= 1, default 0.1),
rounds (T >= 1, default 200), delta (0 < delta < 1, default 0.5).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from sergrad.errors import ConfigError
from sergrad.fl.update import ClientUpdate, Defense, LocalTraining

from . import params as P
from .plan import TrainingPlan
from .user_dp import add_gaussian

DEFAULTS: dict[str, Any] = {"epsilon": 10.0, "clip": 0.25, "q": 0.1, "rounds": 200, "delta": 0.5}


def udp_noise_std(
    *, clip: float, n_samples: int, q: float, rounds: int, delta: float, epsilon: float
) -> float:
    """The paper's s = (2C/|D_k|) sqrt(2 q T ln(1/delta)) / epsilon.

    >>> round(udp_noise_std(clip=0.25, n_samples=30, q=0.1, rounds=200, delta=0.5, epsilon=10), 6)
    0.008776
    """
    return (2 * clip / n_samples) * math.sqrt(2 * q * rounds * math.log(1 / delta)) / epsilon


class UDPPaper(Defense):
    name = "udp_paper"

    def __init__(
        self,
        *,
        epsilon: float,
        clip: float,
        q: float,
        rounds: int,
        delta: float,
        local_lr: float | None = None,
    ) -> None:
        self.epsilon, self.clip, self.q, self.rounds, self.delta = epsilon, clip, q, rounds, delta
        self.local_lr = local_lr
        self.level = epsilon
        self._steps: dict[int, int] = {}  # client -> local steps of its latest training

    def local_training(self) -> LocalTraining:
        return LocalTraining(batch_clip=self.clip)

    def on_client_trained(self, client_id: int, *, sample_rate: float, steps: int) -> None:
        self._steps[client_id] = steps

    def model_std(self, n_samples: int) -> float:
        """s for a client with n_samples local training samples (model space)."""
        return udp_noise_std(
            clip=self.clip,
            n_samples=n_samples,
            q=self.q,
            rounds=self.rounds,
            delta=self.delta,
            epsilon=self.epsilon,
        )

    def shared_std(self, update: ClientUpdate) -> float:
        """The std on the shared tensors: s, or s / (lr * steps) for a pseudo_gradient."""
        s = self.model_std(max(1, update.n_samples))
        if update.kind != "pseudo_gradient":
            return s
        steps = self._steps.get(update.client_id)
        if self.local_lr is None or not steps:
            raise ConfigError(
                "defense 'udp_paper' on pseudo_gradient updates needs the local learning rate "
                "(TrainingPlan.local_lr) and on_client_trained(steps=) before client_update"
            )
        return s / (self.local_lr * steps)

    def client_update(self, update: ClientUpdate, *, generator: torch.Generator) -> ClientUpdate:
        std = self.shared_std(update)
        return update.with_tensors(add_gaussian(update.tensors, std, generator=generator))


def build(params: Mapping[str, Any], *, plan: TrainingPlan | None = None) -> UDPPaper:
    p = P.resolve("udp_paper", params, DEFAULTS)
    rounds = P.number("udp_paper", "rounds", p["rounds"], low=1)
    if rounds != int(rounds):
        raise ConfigError(f"defense 'udp_paper': rounds must be an integer >= 1, got {rounds!r}")
    return UDPPaper(
        epsilon=P.number("udp_paper", "epsilon", p["epsilon"], low=0, low_open=True),
        clip=P.number("udp_paper", "clip", p["clip"], low=0, low_open=True),
        q=P.number("udp_paper", "q", p["q"], low=0, high=1, low_open=True),
        rounds=int(rounds),
        delta=P.number(
            "udp_paper", "delta", p["delta"], low=0, high=1, low_open=True, high_open=True
        ),
        local_lr=plan.local_lr if plan else None,
    )
