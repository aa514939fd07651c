"""FedAvg with Adam when no client of a cohort takes more than two local steps (the paper
shape: 24 samples per client, batch 20), fc1's weight processed one client at a time.

fc1.weight is 88% of the paper MLP. Stacked over a cohort it is [C, 256, 988] (1 MB per
client, 16 MB for 16 clients) in each of the parameter, gradient and two Adam-state
buffers: more than the caches. The batched path (`FastEngine._train_cohort`) streams every
buffer from memory in each of the round's passes (copy the global weights in, zero the
state, the weight-gradient matmul, Adam, the next step's forward, Adam again, the shared
update). Here step 1's forward and backward run batched (the global weights are shared),
then each client's fc1 goes through all its passes back to back in four reused 1 MB scratch
buffers (weight, gradient, Adam's m and v) that stay in cache: the step-1 weight-gradient
`mm`, the state set-up, torch's fused Adam step, then the client's whole step 2 (its forward
and backward, with its small layers as [1, ...] views), the step-2 weight-gradient `mm`,
fused Adam and the shared update. The small layers' (fc1.bias, fc2, fc3) Adam steps and shared
updates stay batched. Each element sees the same operations in the same order as in the
batched path, so the numbers agree up to matmul summation order (tested against the batched
path and the reference engine).

Used on CPU for plain FedAvg + Adam (no DP-SGD, no batch clipping, torch's fused Adam
available); anything else takes the batched path.
"""

from __future__ import annotations

import torch

from sergrad.fl.fast_kernels import weight_grads
from sergrad.fl.fast_plan import CohortPlan, Step
from sergrad.fl.model import PARAM_NAMES

W, BIAS = "fc1.weight", "fc1.bias"
SMALL = tuple(k for k in PARAM_NAMES if k != W)


def train_two_steps(engine, params, own, plan: CohortPlan, views, out, losses) -> dict:
    """Train the cohort's (at most two) local steps; write what each client shares into
    `out` [C, ...] and return it. `params`: the global parameters; `own`: each client's own
    start [C, ...] (stacked runs) or None; `views`: the engine's p/g/m/v buffers [C, ...]
    (not initialised; only the small layers' are used); `losses(step_losses, step)`: records
    a step's mean losses."""
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
    weight_grads(G, acts, deltas, skip=W)
    _adam(P, G, M, V, C, t1, adam)
    second = steps[1] if len(steps) > 1 else None
    A2 = second.active if second is not None else 0
    x2 = engine._gather(second, 1) if second is not None else None
    d1 = deltas[0]
    # fc1's weight, gradient and Adam state: one client's at a time, reused (stay in cache)
    p, g, m, v = (engine._scratch(P[W][0], slot=r) for r in "pgmv")
    scale = _scales(engine, plan.n_steps, P[W])
    losses2 = []
    if A2:  # per-client views [i : i + 1], split once (fewer Python calls per client)
        client_steps = _client_steps(second)
        pas = _split({k: P[k][:A2] for k in SMALL})
        gas = _split({k: G[k][:A2] for k in SMALL})
        x2s = x2.split(1)
    for i in range(C):
        s = start[W] if own is None else start[W][i]
        torch.mm(d1[i].T, x1[i], out=g)
        p.copy_(s)
        m.zero_()
        v.zero_()
        torch._fused_adam_([p], [g], [m], [v], [], [t1], **adam)
        if i < A2:  # the client's step 2; its small layers' gradients into G[...][i]
            z1 = torch.addmm(P[BIAS][i], x2[i], p.T).unsqueeze(0)  # [1, B, H1]
            loss, acts, deltas = engine._forward_backward(pas[i], client_steps[i], x2s[i], z1=z1)
            losses2.append(loss)
            weight_grads(gas[i], acts, deltas, skip=W)
            torch.mm(deltas[0][0].T, x2[i], out=g)
            torch._fused_adam_([p], [g], [m], [v], [], [t2], **adam)
        if scale is None:  # delta
            torch.sub(p, s, out=out[W][i])
        else:
            torch.sub(s, p, out=out[W][i]).mul_(scale[i])
    if A2:
        losses(torch.cat(losses2), second)
        _adam(P, G, M, V, A2, t2, adam)
    engine._shared(start, {"p": {k: P[k] for k in SMALL}}, plan.n_steps, out=out)
    return out


def _adam(P, G, M, V, n: int, step: torch.Tensor, adam: dict) -> None:
    """torch's fused Adam step on the small layers of clients [:n]."""
    ts = [[X[k][:n] for k in SMALL] for X in (P, G, M, V)]
    torch._fused_adam_(*ts, [], [step] * len(SMALL), **adam)


def _client_steps(st: Step) -> list[Step]:
    """Each client's part [i : i + 1] of a stacked step."""
    b = st.valid.shape[1]
    none = [None] * st.active
    parts = zip(st.rows.split(b), st.valid.split(1), st.count.split(1), st.nonempty.split(1),
                none if st.mask1 is None else st.mask1.split(1),
                none if st.mask2 is None else st.mask2.split(1))  # fmt: skip
    return [Step(1, *fields) for fields in parts]


def _split(tensors: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """{name: [A, ...]} -> per client {name: [1, ...]}."""
    split = {k: v.split(1) for k, v in tensors.items()}
    return [dict(zip(split, views)) for views in zip(*split.values())]


def _scales(engine, n_steps: list[int], like: torch.Tensor) -> torch.Tensor | None:
    """Per client 1 / (lr * steps) as in FastEngine._shared; None when sharing deltas."""
    if engine.kind == "delta":
        return None
    scale = 1.0 / (engine.algo.lr * torch.tensor(n_steps, dtype=torch.float64))
    return scale.to(device=like.device, dtype=like.dtype)
