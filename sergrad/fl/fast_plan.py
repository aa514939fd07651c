"""What the fast engine draws for a cohort's round before training: batches and dropout masks.

Each client's batch schedule and dropout masks come from its own generators in the
reference engine's order (per local step: the batch, then during that step's forward pass
the layer-1 mask, then the layer-2 mask), so they can all be drawn up front, straight into
per-step stacked buffers: no per-step Python work over clients while training.

Clients are ordered by local step count (most first), so the clients still training at local
step t are a prefix [:A_t] of the cohort. Step t's batches are padded to B_t = the largest
batch of that step; padded rows index row 0 and are masked out by `valid`.

Shapes: C cohort, A_t active clients at step t, B_t padded batch, H1/H2 hidden sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sergrad.fl.config import AlgoConfig, ModelConfig
from sergrad.fl.partition import Client
from sergrad.fl.schedule import batch_schedule, generator
from sergrad.fl.update import LocalTraining


@dataclass(frozen=True, eq=False)
class Step:
    """One local step of the active prefix [:active] of the cohort."""

    active: int  # A
    rows: torch.Tensor  # [A * B] int64 rows of the partition's x (padding: row 0)
    valid: torch.Tensor  # [A, B] 1.0 for real samples, 0.0 for padding
    count: torch.Tensor  # [A] max(1, batch size), the mean's divisor
    nonempty: torch.Tensor  # [A] float64 1.0 where the batch has samples (a loss to average)
    mask1: torch.Tensor | None  # [A, B, H1] dropout mask of layer 1 (0 or 1/(1-p)), or None
    mask2: torch.Tensor | None  # [A, B, H2]


@dataclass(frozen=True, eq=False)
class CohortPlan:
    clients: list[Client]  # ordered by step count, most first
    order: list[int]  # clients[j] = the caller's clients[order[j]]
    n_steps: list[int]  # [C] local steps per client
    steps: list[Step]  # [T] T = n_steps[0]


def plan_cohort(
    clients: Sequence[Client],
    *,
    seeds: Sequence[int],
    round: int,
    algo: AlgoConfig,
    local: LocalTraining | None,
    model: ModelConfig,
    device: torch.device,
) -> CohortPlan:
    """Draw the round's batches and masks of `clients` (client j's generators seeded by seeds[j])."""
    scheds = [
        batch_schedule(
            c.n_train,
            algo=algo,
            local=local,
            generator=generator(s, "batches", round, c.client_id),
        )
        for c, s in zip(clients, seeds)
    ]
    order = sorted(range(len(clients)), key=lambda i: -len(scheds[i]))
    clients = [clients[i] for i in order]
    scheds = [scheds[i] for i in order]
    n_steps = [len(s) for s in scheds]
    sizes = [[len(b) for b in s] for s in scheds]  # [C][T_c]
    T = n_steps[0] if n_steps else 0
    actives = [sum(1 for n in n_steps if n > t) for t in range(T)]
    widths = [max(1, max(sizes[i][t] for i in range(a))) for t, a in enumerate(actives)]
    hidden, drops = model.hidden, (model.dropout1, model.dropout2)
    # uniform draws [A_t, B_t, H]: padding rows stay 0 (finite, masked out by `valid`)
    uni = [
        [torch.zeros(a, b, h) if p > 0 else None for h, p in zip(hidden, drops)]
        for a, b in zip(actives, widths)
    ]
    rows = [np.zeros((a, b), dtype=np.int64) for a, b in zip(actives, widths)]
    valid = [np.zeros((a, b), dtype=np.float32) for a, b in zip(actives, widths)]
    for i, (c, sched) in enumerate(zip(clients, scheds)):
        g = generator(seeds[order[i]], "dropout", round, c.client_id)
        for t, batch in enumerate(sched):
            n = len(batch)
            rows[t][i, :n] = c.train_idx[batch.numpy()]
            valid[t][i, :n] = 1.0
            for u in uni[t]:  # the reference's order: layer 1, then layer 2, per step
                if u is not None:
                    torch.rand((n, u.shape[2]), generator=g, out=u[i, :n])
    steps = []
    for t, a in enumerate(actives):
        counts = [sizes[i][t] for i in range(a)]
        masks = [
            None if u is None else torch.ge(u, p).float().div_(1.0 - p).to(device)
            for u, p in zip(uni[t], drops)
        ]  # = sergrad.fl.model.dropout_mask, elementwise
        steps.append(
            Step(
                active=a,
                rows=torch.from_numpy(rows[t].reshape(-1)).to(device),
                valid=torch.from_numpy(valid[t]).to(device),
                count=torch.tensor([max(1, n) for n in counts], dtype=torch.float32).to(device),
                nonempty=torch.tensor([float(n > 0) for n in counts], dtype=torch.float64),
                mask1=masks[0],
                mask2=masks[1],
            )
        )
    return CohortPlan(clients=clients, order=order, n_steps=n_steps, steps=steps)
