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


def dp_sgd_grads_(
    acts: Sequence[torch.Tensor],
    deltas: Sequence[torch.Tensor],
    out: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    max_norm: float,
    noise_std: float,
    expected_batch_sizes: torch.Tensor,
    generators: Sequence[torch.Generator | None],
) -> None:
    """DP-SGD gradients of A clients at once, written into `out` (no per-sample gradients).

    acts[l] [A, B, I_l], deltas[l] [A, B, O_l] (per sample), out[l] = (weight [A, O_l, I_l],
    bias [A, O_l]); expected_batch_sizes [A]; client a's noise N(0, noise_std^2) is drawn from
    generators[a] (CPU) per parameter in layer order (weight, then bias) as Opacus'
    DPOptimizer draws it. out = (clipped sum + noise) / expected batch size, computed client
    by client as noise / ebs drawn into `out`, then the sum of the deltas scaled by c_i / ebs
    accumulated onto it by the matmul (addmm_) while it is in cache: besides the draw, no
    pass over the gradients.
    """
    factors = clip_factors(per_sample_norms(acts, deltas), max_norm)  # [A, B]
    inv = 1.0 / expected_batch_sizes.to(factors)  # [A]
    factors = factors * inv.unsqueeze(1)  # [A, B] c_i / ebs
    scaled = [d * factors.unsqueeze(2) for d in deltas]  # [A, B, O] clipped, scaled deltas
    if noise_std <= 0:
        for a, dc, (w, b) in zip(acts, scaled, out):
            torch.bmm(dc.transpose(1, 2), a, out=w)  # [A, O, I]
            torch.sum(dc, dim=1, out=b)  # [A, O]
        return
    stds = (noise_std * inv).tolist()
    for i, g in enumerate(generators):  # per client: its gradient is still in cache after the draw
        for a, dc, (w, b) in zip(acts, scaled, out):
            draw_normal_(w[i], stds[i], generator=g)
            w[i].addmm_(dc[i].T, a[i])  # [O, I] noise + sum_i c_i d_i a_i^T
            draw_normal_(b[i], stds[i], generator=g)
            b[i].add_(dc[i].sum(0))


def draw_normal_(t: torch.Tensor, std: float, *, generator: torch.Generator | None) -> None:
    """t <- N(0, std^2) draws of a float32 CPU generator (as torch.normal(0, std, t.shape));
    drawn on the CPU and copied when t lives elsewhere or is not float32."""
    if t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous():
        t.normal_(0.0, std, generator=generator)
    else:
        t.copy_(torch.empty(t.shape).normal_(0.0, std, generator=generator))


def dp_sgd_grads(
    acts: Sequence[torch.Tensor],
    deltas: Sequence[torch.Tensor],
    *,
    max_norm: float,
    noise_multiplier: float,
    expected_batch_size: float,
    generator: torch.Generator | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One DP-SGD gradient of one client (acts [B, I], deltas [B, O] per layer): dp_sgd_grads_
    on a cohort of one, returned as new (weight [O, I], bias [O]) tensors per layer."""
    acts = [a.unsqueeze(0) for a in acts]  # [1, B, I]
    deltas = [d.unsqueeze(0) for d in deltas]  # [1, B, O]
    out = [
        (d.new_empty(1, d.shape[2], a.shape[2]), d.new_empty(1, d.shape[2]))
        for a, d in zip(acts, deltas)
    ]
    dp_sgd_grads_(acts, deltas, out, max_norm=max_norm, noise_std=noise_multiplier * max_norm,
                  expected_batch_sizes=torch.tensor([float(expected_batch_size)]),
                  generators=[generator])  # fmt: skip
    return [(w[0], b[0]) for w, b in out]
