"""The contract both simulation engines meet, and the registry that picks one.

An engine is built once per run from the partition and the run's sections, then called once
per round with the global parameters and the sampled clients; it returns, per client, what
that client shares (before client-side defenses). Everything random comes from
`sergrad.fl.schedule` generators keyed by (seed, purpose, round, client_id).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from sergrad.errors import ConfigError
from sergrad.fl.config import AlgoConfig, ModelConfig
from sergrad.fl.partition import Client, Partition
from sergrad.fl.update import LocalTraining

ENGINES: dict[str, str] = {
    "reference": "sergrad.fl.reference:ReferenceEngine",
    "fast": "sergrad.fl.fast:FastEngine",
}


@dataclass(frozen=True, eq=False)
class LocalResult:
    client: Client
    # the shared update, keyed by PARAM_NAMES; may be views into engine buffers that the
    # engine's next train_round overwrites: copy what must outlive the round
    tensors: dict[str, torch.Tensor]
    steps: int  # local optimiser steps taken
    sample_rate: float  # per-step sampling probability of one local sample
    loss: float  # mean training loss over the local steps


class Engine(Protocol):
    def train_round(
        self, params: dict[str, torch.Tensor], clients: Sequence[Client], *, round: int
    ) -> list[LocalResult]: ...


def create_engine(
    name: str,
    part: Partition,
    *,
    model: ModelConfig,
    algo: AlgoConfig,
    local: LocalTraining | None,
    seed: int,
    device: str,
) -> Engine:
    if name not in ENGINES:
        raise ConfigError(f"unknown engine {name!r}; valid: {', '.join(ENGINES)}")
    if local is not None and local.per_example_clip is not None and local.batch_clip is not None:
        raise ConfigError(
            "defenses: per-example clipping (DP-SGD) and batch clipping cannot be combined"
        )
    module, cls = ENGINES[name].split(":")
    engine_cls = getattr(importlib.import_module(module), cls)
    return engine_cls(part, model=model, algo=algo, local=local, seed=seed, device=device)


def shared_tensors(
    *,
    kind: str,
    global_params: dict[str, torch.Tensor],
    local_params: dict[str, torch.Tensor] | None,
    grads: dict[str, torch.Tensor] | None,
    algo: AlgoConfig,
    steps: int,
) -> dict[str, torch.Tensor]:
    """gradient (fedsgd), delta = local - global, pseudo_gradient = (global - local)/(lr*steps)."""
    if kind == "gradient":
        return {k: g.detach().clone() for k, g in grads.items()}
    if kind == "delta":
        return {k: local_params[k].detach() - global_params[k] for k in global_params}
    scale = 1.0 / (algo.lr * steps)
    return {k: (global_params[k] - local_params[k].detach()) * scale for k in global_params}
