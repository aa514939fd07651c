"""Server-side math, as pure functions: check, aggregate, step.

The server turns every shared update into the space it steps in: FedSGD averages gradients
and steps params -= server_lr * mean; FedAvg converts each update into the client's model
delta (local - global; a pseudo_gradient p becomes -p * lr * local_steps) and steps
params += server_lr * mean_delta. Means are weighted by n_samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sergrad.errors import DataError
from sergrad.fl.config import AlgoConfig
from sergrad.fl.schedule import local_steps
from sergrad.fl.update import ClientUpdate


def check_finite(update: ClientUpdate) -> None:
    for name, t in update.tensors.items():
        if not bool(torch.isfinite(t).all()):
            raise DataError(
                f"round {update.round}, client {update.client_id} (speaker {update.speaker_id}): "
                f"NaN/inf in the shared update {name!r}"
            )


def server_space(update: ClientUpdate, *, algo: AlgoConfig) -> dict[str, torch.Tensor]:
    """The update as a gradient (fedsgd) or a model delta (fedavg)."""
    if update.kind in ("gradient", "delta"):
        return dict(update.tensors)
    scale = -algo.lr * local_steps(update.n_samples, algo)
    return {k: t * scale for k, t in update.tensors.items()}


def weighted_mean(
    tensors: Sequence[dict[str, torch.Tensor]], weights: Sequence[float]
) -> dict[str, torch.Tensor]:
    """sum_k w_k t_k / sum_k w_k, per parameter."""
    total = float(sum(weights))
    out = {}
    for name in tensors[0]:
        acc = torch.zeros_like(tensors[0][name])
        for t, w in zip(tensors, weights):
            acc.add_(t[name], alpha=w / total)
        out[name] = acc
    return out


def aggregate(updates: Sequence[ClientUpdate], *, algo: AlgoConfig) -> dict[str, torch.Tensor]:
    return weighted_mean(
        [server_space(u, algo=algo) for u in updates], [u.n_samples for u in updates]
    )


def server_step(
    params: dict[str, torch.Tensor], mean: dict[str, torch.Tensor], *, algo: AlgoConfig
) -> dict[str, torch.Tensor]:
    sign = -1.0 if algo.name == "fedsgd" else 1.0
    return {k: p + (sign * algo.server_lr) * mean[k].to(p.device) for k, p in params.items()}
