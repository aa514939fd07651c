"""The fast engine's tensor kernels (`sergrad.fl.fast`, `fast_two_step`): the MLP's stacked
linear layers and their backward pass, per-client weight gradients and gradient clipping, and
Adam / SGD steps with torch.optim's exact update rules, all in place on [A, ...] views.

Shapes: A active clients, B padded batch, I / O a layer's inputs / outputs.
"""

from __future__ import annotations

import math

import torch

from sergrad.fl.config import AlgoConfig
from sergrad.fl.model import PARAM_NAMES

LAYERS = (("fc1.weight", "fc1.bias"), ("fc2.weight", "fc2.bias"), ("fc3.weight", "fc3.bias"))


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x [A, B, I] -> [A, B, O] with shared w [O, I] / b [O] or stacked w [A, O, I] / b [A, O]."""
    if w.dim() == 2:
        a_, b_, i_ = x.shape
        return torch.addmm(b, x.reshape(a_ * b_, i_), w.T).view(a_, b_, -1)
    return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))


def backprop(d: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """dloss/dinput [A, B, I] from dloss/doutput d [A, B, O] and w [O, I] or [A, O, I]."""
    if w.dim() == 2:
        a_, b_, o_ = d.shape
        return torch.mm(d.reshape(a_ * b_, o_), w).view(a_, b_, -1)
    return torch.bmm(d, w)


def adam_step(p, g, m, v, tmp, *, step: int, algo: AlgoConfig) -> None:
    """torch.optim.Adam's single-tensor update, in place (L2 weight decay added to g)."""
    b1, b2 = algo.betas
    if algo.weight_decay != 0:
        g.add_(p, alpha=algo.weight_decay)
    m.lerp_(g, 1 - b1)
    v.mul_(b2).addcmul_(g, g, value=1 - b2)
    step_size = algo.lr / (1 - b1**step)
    torch.sqrt(v, out=tmp).div_(math.sqrt(1 - b2**step)).add_(algo.eps)
    p.addcdiv_(m, tmp, value=-step_size)


def sgd_step(p, g, buf, *, step: int, algo: AlgoConfig) -> None:
    """torch.optim.SGD's update (no dampening, no nesterov), in place."""
    if algo.weight_decay != 0:
        g.add_(p, alpha=algo.weight_decay)
    if algo.momentum != 0:
        if step == 1:
            buf.copy_(g)
        else:
            buf.mul_(algo.momentum).add_(g)
        g = buf
    p.add_(g, alpha=-algo.lr)


def weight_grads(ga, acts, deltas, *, skip: str | None = None) -> None:
    """ga[...] = the batch-summed weight / bias gradients (all but `skip`)."""
    for (wn, bn), act, delta in zip(LAYERS, acts, deltas):
        if wn != skip:
            torch.bmm(delta.transpose(1, 2), act, out=ga[wn])  # [A, out, in]
        torch.sum(delta, dim=1, out=ga[bn])  # [A, out]


def clip_batch(ga, max_norm: float) -> None:
    """torch.nn.utils.clip_grad_norm_ per client: coef = min(1, C / (norm + 1e-6))."""
    sq = sum(ga[k].flatten(1).pow(2).sum(1) for k in PARAM_NAMES)  # [A]
    coef = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
    for k in PARAM_NAMES:
        ga[k].mul_(coef.view(-1, *([1] * (ga[k].dim() - 1))))


def optimizer_step(views, act: int, *, step: int, algo: AlgoConfig, fused: bool, device) -> None:
    """One Adam (torch._fused_adam_ when `fused`, else `adam_step`) or SGD step of the first
    `act` clients' views, in place."""
    a = algo
    names = PARAM_NAMES
    p = [views["p"][k][:act] for k in names]
    g = [views["g"][k][:act] for k in names]
    m = [views["m"][k][:act] for k in names]
    if a.optimizer == "adam":
        v = [views["v"][k][:act] for k in names]
        if fused:
            steps = [torch.tensor(float(step), device=device) for _ in names]
            torch._fused_adam_(
                p, g, m, v, [], steps, amsgrad=False, lr=a.lr, beta1=a.betas[0],
                beta2=a.betas[1], weight_decay=a.weight_decay, eps=a.eps, maximize=False,
            )  # fmt: skip
        else:
            tmp = [views["t"][k][:act] for k in names]
            for args in zip(p, g, m, v, tmp):
                adam_step(*args, step=step, algo=a)
    else:
        for pi, gi, mi in zip(p, g, m):
            sgd_step(pi, gi, mi, step=step, algo=a)
