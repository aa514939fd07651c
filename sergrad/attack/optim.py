"""Adam and reduce-on-plateau for training attack models, without `torch.optim`.

Constructing any `torch.optim.Optimizer` imports `torch._dynamo` (about 1.2 s of a fresh
process: most of what a sweep's evaluation worker spends before its first evaluation, and
paid again by every `sergrad attack` command). These two classes do what `train.py` used:
`torch.optim.Adam`'s single-tensor update (no weight decay, no amsgrad) and
`torch.optim.lr_scheduler.ReduceLROnPlateau(mode="max")`'s schedule, with the same
arithmetic in the same order, so a training is bit for bit what it was (tests/test_attack_optim.py
runs both side by side). `Adam` exposes `param_groups` and `step()` as `torch.amp.GradScaler`
expects (it unscales the gradients of `param_groups` and calls `step`).

>>> p = torch.nn.Parameter(torch.ones(2)); opt = Adam([p], lr=0.1)
>>> p.grad = torch.tensor([1.0, -1.0]); opt.step(); p.detach().tolist()
[0.9000000357627869, 1.100000023841858]
>>> plateau = Plateau(opt, factor=0.5, patience=1)
>>> for score in (0.7, 0.6, 0.6): plateau.step(score)
>>> opt.param_groups[0]["lr"]
0.05
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class Adam:
    """torch.optim.Adam(params, lr, betas, eps) on CPU or CUDA (single-tensor update)."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        *,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.param_groups = [{"params": list(params), "lr": float(lr), "betas": betas, "eps": eps}]
        self.state: dict[torch.Tensor, dict] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.param_groups[0]["params"]:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        for p in group["params"]:
            if p.grad is None:
                continue
            st = self.state.get(p)
            if st is None:
                st = self.state[p] = {
                    "step": 0.0,
                    "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                }
            st["step"] += 1.0  # torch keeps a float32 tensor and reads it back with .item()
            step, exp_avg, exp_avg_sq, grad = st["step"], st["exp_avg"], st["exp_avg_sq"], p.grad
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            bias_correction1 = 1 - beta1**step
            bias_correction2 = 1 - beta2**step
            step_size = lr / bias_correction1
            denom = (exp_avg_sq.sqrt() / bias_correction2**0.5).add_(eps)
            p.addcdiv_(exp_avg, denom, value=-step_size)


class Plateau:
    """ReduceLROnPlateau(optimizer, mode="max", factor, patience) with torch's defaults
    (threshold 1e-4 relative, no cooldown, min_lr 0, eps 1e-8): after more than `patience`
    epochs without a score above best * (1 + 1e-4), lr *= factor."""

    THRESHOLD, EPS = 1e-4, 1e-8

    def __init__(self, optimizer: Adam, *, factor: float, patience: int) -> None:
        self.optimizer, self.factor, self.patience = optimizer, factor, patience
        self.best = -float("inf")
        self.num_bad_epochs = 0

    def step(self, metric: float) -> None:
        current = float(metric)
        if current > self.best * (self.THRESHOLD + 1.0):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.num_bad_epochs > self.patience:
            for group in self.optimizer.param_groups:
                old = float(group["lr"])
                new = max(old * self.factor, 0.0)
                if old - new > self.EPS:
                    group["lr"] = new
            self.num_bad_epochs = 0
