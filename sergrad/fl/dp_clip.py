"""DP-SGD for stacks of Linear layers without per-sample gradient tensors (pure functions).

For a Linear layer y = a W^T + b, the per-sample gradient of sample i's loss is
g_i(W) = delta_i a_i^T (rank one) and g_i(b) = delta_i, where a_i is the layer input and
delta_i = dloss_i/dy_i. Hence, summed over the layers l of the model,

    ||g_i||^2 = sum_l ( ||a_{l,i}||^2 ||delta_{l,i}||^2 + ||delta_{l,i}||^2 ),

computable from activations and back-propagated deltas alone. With Opacus' clip factors
c_i = min(1, C / (||g_i|| + 1e-6)), the clipped sum of layer l is (delta_l * c)^T a_l (bias:
sum_i c_i delta_{l,i}); DP-SGD adds N(0, (sigma C)^2) noise to every parameter's clipped sum
and divides by the expected batch size (Opacus' DPOptimizer with loss_reduction="mean").

Shapes: optional leading dims [...] (e.g. a client dimension), B samples, I/O layer in/out.
Deltas must be per-sample (gradients of the SUM of per-sample losses, not of their mean).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def per_sample_norms(acts: Sequence[torch.Tensor], deltas: Sequence[torch.Tensor]) -> torch.Tensor:
    """||g_i|| over all layers: acts[l] [..., B, I_l], deltas[l] [..., B, O_l] -> [..., B]."""
    sq = None
    for a, d in zip(acts, deltas):
        d2 = d.pow(2).sum(-1)  # [..., B]
        term = (a.pow(2).sum(-1) + 1.0) * d2
        sq = term if sq is None else sq + term
    return sq.sqrt()


def clip_factors(norms: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Opacus' per-sample clip factors min(1, C / (norm + 1e-6)), same shape as norms."""
    return (max_norm / (norms + 1e-6)).clamp(max=1.0)


def clipped_sums(
    acts: Sequence[torch.Tensor], deltas: Sequence[torch.Tensor], factors: torch.Tensor
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer (sum_i c_i delta_i a_i^T [..., O, I], sum_i c_i delta_i [..., O])."""
    out = []
    for a, d in zip(acts, deltas):
        dc = d * factors.unsqueeze(-1)  # [..., B, O]
        out.append((dc.transpose(-1, -2) @ a, dc.sum(-2)))
    return out


def dp_sgd_grads(
    acts: Sequence[torch.Tensor],
    deltas: Sequence[torch.Tensor],
    *,
    max_norm: float,
    noise_multiplier: float,
    expected_batch_size: float,
    generator: torch.Generator | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One DP-SGD gradient of one client (acts [B, I], deltas [B, O] per layer).

    Noise is drawn per parameter in layer order (weight, then bias), on CPU from
    `generator`, as Opacus' DPOptimizer draws it for parameters in that order.
    """
    sums = clipped_sums(acts, deltas, clip_factors(per_sample_norms(acts, deltas), max_norm))
    std = noise_multiplier * max_norm
    out = []
    for gw, gb in sums:
        pair = []
        for g in (gw, gb):
            if std > 0:
                g = g + torch.normal(0.0, std, size=tuple(g.shape), generator=generator).to(
                    g.device
                )
            pair.append(g / expected_batch_size)
        out.append((pair[0], pair[1]))
    return out
