"""Every random draw of an FL run, from explicit generators derived from (seed, purpose, ...).

Both engines call these functions, so they see the same client sampling, the same batch
orders and the same dropout masks, and a run's numbers never depend on scheduling order
or on global RNG state.

>>> derive_seed(0, "round", 3) == derive_seed(0, "round", 3)
True
>>> sample_clients(10, fraction=0.1, seed=0, round=1).shape
torch.Size([1])
"""

from __future__ import annotations

import builtins
import hashlib
import json
import math

import torch

from sergrad.errors import ConfigError
from sergrad.fl.config import AlgoConfig
from sergrad.fl.update import LocalTraining


def derive_seed(*parts: object) -> int:
    """A 63-bit seed that is a pure function of `parts` (ints and strings)."""
    text = _seed_text(parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def _seed_text(parts: tuple) -> str:
    """json.dumps([p if int else str(p) ...]), built directly for plain ints and plain ASCII
    strings (the engines derive a few generators per client and round)."""
    items = []
    for p in parts:
        if type(p) is int:
            items.append(repr(p))
            continue
        text = p if type(p) is str else None if isinstance(p, int) else str(p)
        plain = text is not None and text.isascii() and text.isprintable()
        if not plain or '"' in text or "\\" in text:
            return json.dumps([str(q) if not isinstance(q, int) else q for q in parts])
        items.append(f'"{text}"')
    return "[" + ", ".join(items) + "]"


def generator(*parts: object) -> torch.Generator:
    """A CPU generator seeded by `derive_seed(*parts)` (draws stay on CPU on every device)."""
    return torch.Generator().manual_seed(derive_seed(*parts))


def clients_per_round(n_clients: int, fraction: float) -> int:
    """Clients sampled each round: min(n, max(1, round(fraction * n))) (Python's round).

    The one formula for both the engines and the defenses' training plan.
    """
    return min(n_clients, max(1, builtins.round(fraction * n_clients)))


def sample_clients(n_clients: int, *, fraction: float, seed: int, round: int) -> torch.Tensor:
    """`clients_per_round` client ids without replacement, sorted ([k] int64)."""
    k = clients_per_round(n_clients, fraction)
    perm = torch.randperm(n_clients, generator=generator(seed, "clients", round))
    return perm[:k].sort().values


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def share_kind(algo: AlgoConfig) -> str:
    """What a client shares: gradient (fedsgd) | delta | pseudo_gradient (fedavg)."""
    valid = {"fedsgd": ("gradient",), "fedavg": ("delta", "pseudo_gradient")}[algo.name]
    kind = {"fedsgd": "gradient", "fedavg": "pseudo_gradient"}[algo.name]
    kind = kind if algo.share == "auto" else algo.share
    if kind not in valid:
        raise ConfigError(
            f"algo.share: {algo.share!r} is not valid for {algo.name}; valid: {valid}"
        )
    return kind


def sample_rate(n_train: float, algo: AlgoConfig) -> float:
    """Probability that one local sample is in one local step's batch."""
    if algo.name == "fedsgd" and algo.fedsgd_full_batch:
        return 1.0
    return min(1.0, algo.batch_size / n_train)


def local_steps(n_train: float, algo: AlgoConfig) -> int:
    """Local optimiser steps of a client with `n_train` samples (server side, too)."""
    if algo.name == "fedsgd":
        return 1
    return algo.local_epochs * math.ceil(n_train / algo.batch_size)


def batch_schedule(
    n_train: int, *, algo: AlgoConfig, local: LocalTraining | None, generator: torch.Generator
) -> list[torch.Tensor]:
    """Local sample indices of each local step, drawn from `generator`.

    FedSGD: one batch (first batch_size of a permutation, or all with fedsgd_full_batch).
    FedAvg: per epoch a permutation cut into batches of batch_size (last one ragged).
    Poisson (DP-SGD): each step includes each sample with probability sample_rate, with
    the same draw as Opacus' UniformWithReplacementSampler.
    """
    poisson = local is not None and local.poisson
    q = sample_rate(n_train, algo)
    steps = local_steps(n_train, algo)
    if algo.name == "fedsgd" and algo.fedsgd_full_batch:
        return [torch.arange(n_train)]
    if poisson:
        return [
            (torch.rand(n_train, generator=generator) < q).nonzero().reshape(-1)
            for _ in range(steps)
        ]
    if algo.name == "fedsgd":
        return [torch.randperm(n_train, generator=generator)[: algo.batch_size]]
    out = []
    for _ in range(algo.local_epochs):
        perm = torch.randperm(n_train, generator=generator)
        out.extend(perm.split(algo.batch_size))
    return out


def expected_batch_size(n_train: int, algo: AlgoConfig) -> float:
    """Divisor of DP-SGD's noisy clipped sum (Opacus' expected_batch_size)."""
    return sample_rate(n_train, algo) * n_train
