"""The fast engine: a round's clients trained together as stacked tensors, no per-client objects.

A cohort of C clients holds its parameters, gradients and optimiser state in preallocated
[C, ...] buffers (reused across rounds). Clients are ordered by local step count (most
first), so the clients still training at local step t are a prefix [:A] of the cohort and
each step works on contiguous views. Each step gathers the active clients' batches into
[A, B, D] (ragged batches padded and masked), runs a manual forward/backward of the MLP with
bmm over the client dimension, then a manual Adam/SGD step with torch.optim's exact update
rules (Adam: L2 weight decay added to the gradient). DP-SGD per-example clipping uses the
closed-form per-sample norms of `sergrad.fl.dp_clip` (no per-sample gradient tensors).
When every client of a cohort takes one local step (FedSGD; FedAvg with no more data than a
batch), what it shares is a function of that step's gradient alone: computed straight into
the output slots, no parameter or optimiser-state copies (`_one_step_update`).

Batches, dropout masks (drawn up front by `sergrad.fl.fast_plan`) and DP noise come from the
same per-client generators, in the same order, as in the reference engine, so both produce
the same numbers.

Cohorts of at most two local steps with Adam (the paper shape) take `fast_two_step`: fc1's
weight one client at a time, in cache (what remains: docs/benchmarks.md). The tensor kernels
(layers, gradients, clipping, Adam / SGD) are in `fast_kernels`.

Shapes: C cohort, A active clients, B padded batch, D input, H1/H2 hidden, K classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sergrad.fl.config import AlgoConfig, ModelConfig
from sergrad.fl.dp_clip import dp_sgd_grads_
from sergrad.fl.engine import LocalResult
from sergrad.fl.fast_kernels import (
    LAYERS,
    backprop,
    clip_batch,
    linear,
    optimizer_step,
    weight_grads,
)
from sergrad.fl.fast_plan import Step, plan_cohort
from sergrad.fl.fast_two_step import train_two_steps
from sergrad.fl.model import PARAM_NAMES
from sergrad.fl.partition import Client, Partition
from sergrad.fl.schedule import expected_batch_size, generator, sample_rate, share_kind
from sergrad.fl.update import LocalTraining


class FastEngine:
    def __init__(
        self,
        part: Partition,
        *,
        model: ModelConfig,
        algo: AlgoConfig,
        local: LocalTraining | None,
        seed: int,
        device: str = "cpu",
        max_cohort: int = 64,
    ) -> None:
        self.device = torch.device(device)
        self.x = torch.from_numpy(part.x).to(self.device)  # [N, D]
        self.y = torch.from_numpy(part.y).to(self.device)  # [N]
        self.model, self.algo, self.local, self.seed = model, algo, local, seed
        self.kind = share_kind(algo)
        self.max_cohort = max_cohort
        self.dp = local is not None and local.per_example_clip is not None
        self.batch_clip = None if local is None else local.batch_clip
        self._buffers: dict[str, torch.Tensor] = {}
        self._out: dict[str, torch.Tensor] = {}
        self._out_cap = 0
        # torch's fused Adam kernel (one pass; same rule as torch.optim.Adam up to rounding)
        self.fused_adam = hasattr(torch, "_fused_adam_") and self.device.type in ("cpu", "cuda")
        self.two_step = True  # False: two-step cohorts take the batched path (tests' oracle)
        self._cap = 0
        self._xbufs = [torch.empty(0, part.x.shape[1], device=self.device) for _ in range(2)]
        self._minus_one = torch.full((1, 1, 1), -1.0, device=self.device)
        self._scratch_bufs: dict[str, torch.Tensor] = {}

    # --- buffers -------------------------------------------------------------------------
    def _stacked(
        self,
        params: dict[str, torch.Tensor],
        c: int,
        per_client: dict | None = None,
        *,
        grads: dict[str, torch.Tensor] | None = None,
        init: bool = True,
    ) -> dict[str, dict[str, torch.Tensor]]:
        """Views [c, ...] of the preallocated param / grad / optimiser-state buffers.

        FedAvg: params (or each client's own `per_client` [c, ...] start) copied in, optimiser
        state zeroed (unless not `init`). FedSGD needs only gradients (`grads`: [c, ...]
        tensors to write them to).
        """
        roles = "" if grads is not None else "g" if self.algo.name == "fedsgd" else "pgmvt"
        if c > self._cap:
            self._cap = max(c, min(self.max_cohort, 2 * self._cap))
            self._buffers = {
                f"{role}:{k}": torch.empty((self._cap, *v.shape), device=self.device)
                for role in roles
                for k, v in params.items()
            }
        views = {r: {k: self._buffers[f"{r}:{k}"][:c] for k in params} for r in roles}
        if grads is not None:
            views["g"] = grads
        if "p" in views and init:
            for k, v in params.items():
                start = v.unsqueeze(0).expand_as(views["p"][k]) if per_client is None else None
                views["p"][k].copy_(per_client[k] if start is None else start)
                views["m"][k].zero_()
                views["v"][k].zero_()
        return views

    # --- rounds --------------------------------------------------------------------------
    def train_round(
        self, params: dict[str, torch.Tensor], clients: Sequence[Client], *, round: int
    ) -> list[LocalResult]:
        """Shared tensors are views into an engine buffer, valid until the next call."""
        n = len(clients)
        if n > self._out_cap:  # one output slot per client of the round, reused across rounds
            self._out_cap = n
            self._out = {
                k: torch.empty((n, *v.shape), device=self.device) for k, v in params.items()
            }
        out: dict[int, LocalResult] = {}
        for start in range(0, n, self.max_cohort):
            cohort = clients[start : start + self.max_cohort]
            slots = {k: v[start : start + len(cohort)] for k, v in self._out.items()}
            for res in self._train_cohort(params, cohort, round=round, slots=slots):
                out[id(res.client)] = res  # by object: ids repeat across stacked runs
        return [out[id(c)] for c in clients]

    def _train_cohort(
        self, params: dict[str, torch.Tensor], clients: Sequence[Client], *, round: int, slots
    ) -> list[LocalResult]:
        a = self.algo
        plan = plan_cohort(clients, seeds=[self._seed(c) for c in clients], round=round,
                           algo=a, local=self.local, model=self.model, device=self.device)  # fmt: skip
        clients, n_steps = plan.clients, plan.n_steps
        noise_g = [generator(self._seed(c), "dpsgd", round, c.client_id) for c in clients] \
            if self.dp else [None] * len(clients)  # fmt: skip
        own = self._client_params(clients)  # None: every client starts from `params`
        # one local step each (FedSGD, or FedAvg's small clients): what is shared is a function
        # of the step's gradient alone, computed straight into the output slots
        one_step = a.name == "fedsgd" or n_steps[0] == 1
        two_step = not one_step and n_steps[0] == 2 and self._two_step_ok()
        views = self._stacked(params, len(clients), own, grads=slots if one_step else None,
                              init=not two_step)  # fmt: skip
        P, G = views.get("p"), views["g"]
        loss_sum = torch.zeros(len(clients), dtype=torch.float64)
        loss_n = torch.zeros(len(clients), dtype=torch.float64)

        def add_losses(losses: torch.Tensor, st: Step) -> None:
            loss_sum[: st.active] += losses.double().cpu() * st.nonempty
            loss_n[: st.active] += st.nonempty

        start = params if own is None else own
        if two_step:  # fc1's weight one client at a time, in cache (sergrad.fl.fast_two_step)
            shared = train_two_steps(self, params, own, plan, views, slots, add_losses)
            return self._results(clients, n_steps, shared, loss_sum / loss_n.clamp(min=1))
        ebs = torch.tensor([expected_batch_size(c.n_train, a) for c in clients]) \
            if self.dp else [None] * len(clients)  # [C] DP-SGD's noise divisors  # fmt: skip
        for t, st in enumerate(plan.steps):
            act = st.active
            # step 0: every client still holds the global model -> unstacked [out, in] weights
            if t > 0:
                pa = {k: P[k][:act] for k in PARAM_NAMES}
            else:
                pa = params if own is None else {k: own[k][:act] for k in PARAM_NAMES}
            ga = {k: G[k][:act] for k in PARAM_NAMES}
            add_losses(self._grad(pa, ga, st, noise_g=noise_g[:act], ebs=ebs[:act]), st)
            if not one_step:
                optimizer_step(views, act, step=t + 1, algo=a, fused=self.fused_adam,
                               device=self.device)  # fmt: skip
        if one_step:
            shared = G if a.name == "fedsgd" else self._one_step_update(start, G)
        else:
            shared = self._shared(start, views, n_steps, out=slots)
        return self._results(clients, n_steps, shared, loss_sum / loss_n.clamp(min=1))

    def _results(self, clients, n_steps, shared, losses) -> list[LocalResult]:
        """One LocalResult per client: views [i] of the stacked shared tensors."""
        rows = {k: v.unbind(0) for k, v in shared.items()}  # one call per tensor, not per client
        losses = losses.tolist()
        return [
            LocalResult(
                client=c,
                tensors={k: v[i] for k, v in rows.items()},
                steps=n_steps[i],
                sample_rate=sample_rate(c.n_train, self.algo),
                loss=losses[i],
            )
            for i, c in enumerate(clients)
        ]

    def _two_step_ok(self) -> bool:
        """Whether a cohort of at most two local steps takes `fast_two_step` (see there)."""
        a = self.algo
        return (self.two_step and self.fused_adam and self.device.type == "cpu"
                and a.name == "fedavg" and a.optimizer == "adam" and not self.dp
                and self.batch_clip is None)  # fmt: skip

    def _seed(self, client: Client) -> int:
        """The run seed of a client's generators (one run here; see sergrad.fl.stacked)."""
        return self.seed

    def _client_params(self, clients: Sequence[Client]) -> dict[str, torch.Tensor] | None:
        """Each client's starting global parameters [C, ...], or None when all share them."""
        return None

    def _shared(self, params, views, n_steps: list[int], *, out) -> dict[str, torch.Tensor]:
        """What each FedAvg client shares after its local steps, stacked [C, ...] into `out`
        (see engine.shared_tensors); `params`: the global parameters, shared or [C, ...]."""
        if self.kind == "delta":
            return {k: torch.sub(p, params[k], out=out[k]) for k, p in views["p"].items()}
        scale = 1.0 / (self.algo.lr * torch.tensor(n_steps, dtype=torch.float64))
        for k, p in views["p"].items():
            s = scale.to(device=p.device, dtype=p.dtype).view(-1, *([1] * (p.dim() - 1)))
            torch.sub(params[k], p, out=out[k]).mul_(s)
        return out

    def _one_step_update(self, params, grads) -> dict[str, torch.Tensor]:
        """What FedAvg clients share after ONE local step from a fresh optimiser, in closed
        form, computed in place of their gradients g [C, ...] (`params`: shared or [C, ...]).

        With g' = g + weight_decay * p: torch's Adam takes the step lr * g' / (|g'| + eps)
        (m = (1-b1) g', v = (1-b2) g'^2, both bias-corrected), SGD lr * g' (the momentum buffer
        starts as g'). The pseudo-gradient is that step / lr, the delta minus the step.
        """
        a = self.algo
        for k, g in grads.items():
            if a.weight_decay != 0:
                g.add_(params[k], alpha=a.weight_decay)
            if a.optimizer == "adam":
                denom = self._scratch(g)
                g.div_(torch.abs(g, out=denom).add_(a.eps))
            if self.kind == "delta":
                g.mul_(-a.lr)
        return grads

    def _scratch(self, like: torch.Tensor, slot: str = "") -> torch.Tensor:
        """A reused scratch tensor shaped like `like` (one per `slot`)."""
        buf = self._scratch_bufs.get(slot)
        if buf is None or buf.numel() < like.numel():
            buf = self._scratch_bufs[slot] = torch.empty(like.numel(), device=self.device)
        return buf[: like.numel()].view(like.shape)

    def _grad(self, pa, ga, st: Step, *, noise_g, ebs) -> torch.Tensor:
        """Fill ga with each active client's step gradient; return its mean losses [A]."""
        losses, acts, deltas = self._forward_backward(pa, st, self._gather(st))
        if self.dp:
            std = self.local.noise_multiplier * self.local.per_example_clip
            dp_sgd_grads_(acts, deltas, [(ga[w], ga[b]) for w, b in LAYERS],
                          max_norm=self.local.per_example_clip, noise_std=std,
                          expected_batch_sizes=ebs, generators=noise_g)  # fmt: skip
            return losses
        weight_grads(ga, acts, deltas)
        if self.batch_clip is not None:
            clip_batch(ga, self.batch_clip)
        return losses

    def _gather(self, st: Step, slot: int = 0) -> torch.Tensor:
        """The step's inputs [A, B, D], gathered into reused buffer `slot`."""
        A, B = st.valid.shape
        rows = A * B
        if rows > len(self._xbufs[slot]):  # reused across steps and rounds
            self._xbufs[slot] = torch.empty(rows, self.x.shape[1], device=self.device)
        return torch.index_select(self.x, 0, st.rows, out=self._xbufs[slot][:rows]).view(A, B, -1)

    def _forward_backward(self, pa, st: Step, x: torch.Tensor, z1: torch.Tensor | None = None):
        """Mean losses [A], activations [x, h1, h2] and per-sample output gradients
        [d1, d2, d3] (summed over the batch: mean-scaled unless DP) of one step;
        `z1`: the fc1 pre-activations [A, B, H1] when the caller computed them."""
        A, B = st.valid.shape
        y = self.y.index_select(0, st.rows).view(A, B, 1)  # [A, B, 1]
        m1, m2, valid = st.mask1, st.mask2, st.valid
        if z1 is None:
            z1 = linear(x, pa["fc1.weight"], pa["fc1.bias"])  # [A, B, H1]
        h1 = torch.relu(z1) if m1 is None else torch.relu(z1).mul_(m1)
        z2 = linear(h1, pa["fc2.weight"], pa["fc2.bias"])  # [A, B, H2]
        h2 = torch.relu(z2) if m2 is None else torch.relu(z2).mul_(m2)
        logits = linear(h2, pa["fc3.weight"], pa["fc3.bias"])  # [A, B, K]
        logp = torch.log_softmax(logits, dim=2)
        nll = logp.gather(2, y).squeeze(2).mul_(valid)  # [A, B] minus the per-sample loss
        losses = nll.sum(1).div_(st.count).neg_()  # [A]
        d3 = logp.exp_()
        d3.scatter_add_(2, y, self._minus_one.expand(A, B, 1))
        d3.mul_(valid.unsqueeze(2))  # [A, B, K] per-sample dloss_i/dlogits
        if not self.dp:
            d3.div_(st.count.view(-1, 1, 1))  # mean over the batch
        d2 = backprop(d3, pa["fc3.weight"]).mul_(z2 > 0)  # [A, B, H2]
        if m2 is not None:
            d2.mul_(m2)
        d1 = backprop(d2, pa["fc2.weight"]).mul_(z1 > 0)  # [A, B, H1]
        if m1 is not None:
            d1.mul_(m1)
        return losses, [x, h1, h2], [d1, d2, d3]
