"""FedAvg with Adam when no client of a cohort takes more than two local steps (the paper
shape: 24 samples per client, batch 20), fc1's weight processed one client at a time.

fc1.weight is ~90% of the paper MLP. Stacked over a cohort it is [C, 256, 988] (1 MB per
client, 16 MB for 16 clients) in each of the parameter, gradient and two Adam-state
buffers: far more than the caches. The batched path (`FastEngine._train_cohort`) streams
every buffer from memory in each of the round's passes (copy the global weights in, zero the
state, the weight-gradient matmul, Adam, the next step's forward, Adam again, the shared
update). Here each client's fc1 slice goes through all passes of a step back to back, while
its slices are still in cache: per client, the step-1 weight-gradient mm, the state set-up,
torch's fused Adam step and the step-2 forward matmul; then (after the rest of step 2 ran
batched) the step-2 weight-gradient mm, the fused Adam step and the shared update. The small
layers (fc1.bias, fc2, fc3) stay batched. Each element sees the same operations in the same
order as in the batched path, so the numbers agree up to matmul summation order (tested
against the batched path and the reference engine).

Used on CPU for plain FedAvg + Adam (no DP-SGD, no batch clipping, torch's fused Adam
available); anything else takes the batched path.
"""

from __future__ import annotations

import torch

from sergrad.fl.fast_plan import CohortPlan
from sergrad.fl.model import PARAM_NAMES

W, BIAS = "fc1.weight", "fc1.bias"
SMALL = tuple(k for k in PARAM_NAMES if k != W)


def train_two_steps(engine, params, own, plan: CohortPlan, views, out, losses) -> dict:
    """Train the cohort's (at most two) local steps; write what each client shares into
    `out` [C, ...] and return it. `params`: the global parameters; `own`: each client's own
    start [C, ...] (stacked runs) or None; `views`: the engine's p/g/m/v buffers [C, ...]
    (not initialised); `losses(step_losses, step)`: records a step's mean losses."""
    a = engine.algo
    C, steps = len(plan.clients), plan.steps
    P, G, M, V = (views[r] for r in "pgmv")
    start = params if own is None else own
    adam = dict(amsgrad=False, lr=a.lr, beta1=a.betas[0], beta2=a.betas[1],
                weight_decay=a.weight_decay, eps=a.eps, maximize=False)  # fmt: skip
    t1, t2 = torch.tensor(1.0), torch.tensor(2.0)  # Adam step counts (read, not updated)
    for k in SMALL:
        P[k].copy_(start[k] if own is not None else start[k].expand_as(P[k]))
        M[k].zero_()
        V[k].zero_()
    # step 1 from the global (or each run's own) weights, every client active
    x1 = engine._gather(steps[0], 0)
    step_losses, acts, deltas = engine._forward_backward(start, steps[0], x1)
    losses(step_losses, steps[0])
    engine._weight_grads(G, acts, deltas, skip=W)
    _adam(P, G, M, V, C, t1, adam)
    second = steps[1] if len(steps) > 1 else None
    A2 = second.active if second is not None else 0
    x2 = engine._gather(second, 1) if second is not None else None
    z1 = torch.empty(A2, x2.shape[1] if A2 else 0, P[W].shape[1], device=P[W].device)
    d1 = deltas[0]
    M[W].zero_()  # one memset each: faster than per client
    V[W].zero_()
    g = engine._scratch(P[W][0])  # fc1's gradient: one client's, reused (stays in cache)
    for i in range(C):
        p, m, v = P[W][i], M[W][i], V[W][i]
        torch.mm(d1[i].T, x1[i], out=g)
        p.copy_(start[W] if own is None else start[W][i])
        torch._fused_adam_([p], [g], [m], [v], [], [t1], **adam)
        if i < A2:  # the step-2 forward of fc1 while p is in cache
            torch.addmm(P[BIAS][i], x2[i], p.T, out=z1[i])
    if A2:
        pa = {k: P[k][:A2] for k in PARAM_NAMES}
        step_losses, acts, deltas = engine._forward_backward(pa, second, x2, z1=z1)
        losses(step_losses, second)
        engine._weight_grads({k: G[k][:A2] for k in PARAM_NAMES}, acts, deltas, skip=W)
        _adam(P, G, M, V, A2, t2, adam)
        d1 = deltas[0]
    scale = _scales(engine, plan.n_steps, P[W])
    for i in reversed(range(C)):  # the clients of loop 1's end are still in cache
        p = P[W][i]
        if i < A2:
            m, v = M[W][i], V[W][i]
            torch.mm(d1[i].T, x2[i], out=g)
            torch._fused_adam_([p], [g], [m], [v], [], [t2], **adam)
        s = start[W] if own is None else start[W][i]
        if scale is None:  # delta
            torch.sub(p, s, out=out[W][i])
        else:
            torch.sub(s, p, out=out[W][i]).mul_(scale[i])
    engine._shared(start, {"p": {k: P[k] for k in SMALL}}, plan.n_steps, out=out)
    return out


def _adam(P, G, M, V, n: int, step: torch.Tensor, adam: dict) -> None:
    """torch's fused Adam step on the small layers of clients [:n]."""
    ts = [[X[k][:n] for k in SMALL] for X in (P, G, M, V)]
    torch._fused_adam_(*ts, [], [step] * len(SMALL), **adam)


def _scales(engine, n_steps: list[int], like: torch.Tensor) -> torch.Tensor | None:
    """Per client 1 / (lr * steps) as in FastEngine._shared; None when sharing deltas."""
    if engine.kind == "delta":
        return None
    scale = 1.0 / (engine.algo.lr * torch.tensor(n_steps, dtype=torch.float64))
    return scale.to(device=like.device, dtype=like.dtype)
