"""The fast engine: a round's clients trained together as stacked tensors, no per-client objects.

A cohort of C clients holds its parameters, gradients and optimiser state in preallocated
[C, ...] buffers (reused across rounds). Clients are ordered by local step count (most
first), so the clients still training at local step t are a prefix [:A] of the cohort and
each step works on contiguous views. Each step gathers the active clients' batches into
[A, B, D] (ragged batches padded and masked), runs a manual forward/backward of the MLP with
bmm over the client dimension, then a manual Adam/SGD step with torch.optim's exact update
rules (Adam: L2 weight decay added to the gradient). DP-SGD per-example clipping uses the
closed-form per-sample norms of `sergrad.fl.dp_clip` (no per-sample gradient tensors).

Batches, dropout masks and DP noise come from the same per-client generators, in the same
order, as in the reference engine, so both produce the same numbers.

Shapes: C cohort, A active clients, B padded batch, D input, H1/H2 hidden, K classes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from sergrad.fl.config import AlgoConfig, ModelConfig
from sergrad.fl.dp_clip import clip_factors, per_sample_norms
from sergrad.fl.engine import LocalResult
from sergrad.fl.model import PARAM_NAMES, dropout_mask
from sergrad.fl.partition import Client, Partition
from sergrad.fl.schedule import (
    batch_schedule,
    expected_batch_size,
    generator,
    sample_rate,
    share_kind,
)
from sergrad.fl.update import LocalTraining

LAYERS = (("fc1.weight", "fc1.bias"), ("fc2.weight", "fc2.bias"), ("fc3.weight", "fc3.bias"))


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
        self._cap = 0

    # --- buffers -------------------------------------------------------------------------
    def _stacked(
        self, params: dict[str, torch.Tensor], c: int, per_client: dict | None = None
    ) -> dict[str, dict[str, torch.Tensor]]:
        """Views [c, ...] of the preallocated param / grad / optimiser-state buffers.

        FedAvg: params (or each client's own `per_client` [c, ...] start) copied in, optimiser
        state zeroed. FedSGD needs only gradients.
        """
        roles = "g" if self.algo.name == "fedsgd" else "pgmvt"
        if c > self._cap:
            self._cap = max(c, min(self.max_cohort, 2 * self._cap))
            self._buffers = {
                f"{role}:{k}": torch.empty((self._cap, *v.shape), device=self.device)
                for role in roles
                for k, v in params.items()
            }
        views = {r: {k: self._buffers[f"{r}:{k}"][:c] for k in params} for r in roles}
        if "p" in views:
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
        scheds = [
            batch_schedule(
                c.n_train,
                algo=a,
                local=self.local,
                generator=generator(self._seed(c), "batches", round, c.client_id),
            )
            for c in clients
        ]
        order = sorted(range(len(clients)), key=lambda i: -len(scheds[i]))
        clients = [clients[i] for i in order]
        scheds = [scheds[i] for i in order]
        drop_g = [generator(self._seed(c), "dropout", round, c.client_id) for c in clients]
        noise_g = [generator(self._seed(c), "dpsgd", round, c.client_id) for c in clients]
        n_steps = [len(s) for s in scheds]
        own = self._client_params(clients)  # None: every client starts from `params`
        views = self._stacked(params, len(clients), own)
        P, G = views.get("p"), views["g"]
        loss_sum = torch.zeros(len(clients), dtype=torch.float64)
        loss_n = torch.zeros(len(clients), dtype=torch.float64)
        for t in range(n_steps[0]):
            act = sum(1 for s in n_steps if s > t)
            batches = [clients[i].train_idx[scheds[i][t].numpy()] for i in range(act)]
            sizes = [len(b) for b in batches]
            bmax = max(max(sizes), 1)
            idx = torch.zeros(act, bmax, dtype=torch.long)  # [A, B]
            valid = torch.zeros(act, bmax)  # [A, B]
            for i, b in enumerate(batches):
                idx[i, : len(b)] = torch.from_numpy(b)
                valid[i, : len(b)] = 1.0
            masks = self._dropout_masks(drop_g[:act], sizes, bmax)
            idx, valid = idx.to(self.device), valid.to(self.device)
            # step 0: every client still holds the global model -> unstacked [out, in] weights
            if t > 0:
                pa = {k: P[k][:act] for k in PARAM_NAMES}
            else:
                pa = params if own is None else {k: own[k][:act] for k in PARAM_NAMES}
            ga = {k: G[k][:act] for k in PARAM_NAMES}
            losses = self._grad(
                pa, ga, idx, valid, masks, sizes=sizes, clients=clients[:act], noise_g=noise_g[:act]
            )
            nonempty = torch.tensor([s > 0 for s in sizes], dtype=torch.float64)
            loss_sum[:act] += losses.double().cpu() * nonempty
            loss_n[:act] += nonempty
            if a.name == "fedavg":
                self._optimizer_step(views, act, step=t + 1)
        shared = self._shared(params if own is None else own, views, n_steps, out=slots)
        return [
            LocalResult(
                client=c,
                tensors={k: v[i] for k, v in shared.items()},
                steps=n_steps[i],
                sample_rate=sample_rate(c.n_train, a),
                loss=float(loss_sum[i] / loss_n[i].clamp(min=1)),
            )
            for i, c in enumerate(clients)
        ]

    def _seed(self, client: Client) -> int:
        """The run seed of a client's generators (one run here; see sergrad.fl.stacked)."""
        return self.seed

    def _client_params(self, clients: Sequence[Client]) -> dict[str, torch.Tensor] | None:
        """Each client's starting global parameters [C, ...], or None when all share them."""
        return None

    def _shared(self, params, views, n_steps: list[int], *, out) -> dict[str, torch.Tensor]:
        """What each client shares, stacked [C, ...] into `out` (see engine.shared_tensors);
        `params` are the global parameters, shared or [C, ...] per client."""
        if self.kind == "gradient":
            return {k: out[k].copy_(g) for k, g in views["g"].items()}
        if self.kind == "delta":
            return {k: torch.sub(p, params[k], out=out[k]) for k, p in views["p"].items()}
        scale = 1.0 / (self.algo.lr * torch.tensor(n_steps, dtype=torch.float64))
        for k, p in views["p"].items():
            s = scale.to(device=p.device, dtype=p.dtype).view(-1, *([1] * (p.dim() - 1)))
            torch.sub(params[k], p, out=out[k]).mul_(s)
        return out

    def _dropout_masks(
        self, gens: list[torch.Generator], sizes: list[int], bmax: int
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Per-client masks in the reference order (layer 1 then 2), padded to [A, B, H]."""
        out = []
        per_client = [
            (
                dropout_mask((b, self.model.hidden[0]), self.model.dropout1, generator=g),
                dropout_mask((b, self.model.hidden[1]), self.model.dropout2, generator=g),
            )
            for g, b in zip(gens, sizes)
        ]
        for layer, (h, p) in enumerate(
            zip(self.model.hidden, (self.model.dropout1, self.model.dropout2))
        ):
            if p <= 0:
                out.append(None)
                continue
            mask = torch.zeros(len(gens), bmax, h)  # [A, B, H]
            for i, pair in enumerate(per_client):
                mask[i, : sizes[i]] = pair[layer]
            out.append(mask.to(self.device))
        return out[0], out[1]

    # --- forward / backward ------------------------------------------------------------------
    def _grad(self, pa, ga, idx, valid, masks, *, sizes, clients, noise_g) -> torch.Tensor:
        """Fill ga with each active client's step gradient; return its mean losses [A]."""
        x = self.x[idx]  # [A, B, D]
        y = self.y[idx]  # [A, B]
        m1, m2 = masks
        z1 = _linear(x, pa["fc1.weight"], pa["fc1.bias"])  # [A, B, H1]
        h1 = torch.relu(z1) if m1 is None else torch.relu(z1) * m1
        z2 = _linear(h1, pa["fc2.weight"], pa["fc2.bias"])  # [A, B, H2]
        h2 = torch.relu(z2) if m2 is None else torch.relu(z2) * m2
        logits = _linear(h2, pa["fc3.weight"], pa["fc3.bias"])  # [A, B, K]
        logp = torch.log_softmax(logits, dim=2)
        nll = -logp.gather(2, y.unsqueeze(2)).squeeze(2) * valid  # [A, B]
        count = torch.tensor([max(s, 1) for s in sizes], dtype=x.dtype, device=x.device)  # [A]
        losses = nll.sum(1) / count
        d3 = logp.exp_()
        d3.scatter_add_(2, y.unsqueeze(2), torch.full_like(d3[..., :1], -1.0))
        d3.mul_(valid.unsqueeze(2))  # [A, B, K] per-sample dloss_i/dlogits
        if not self.dp:
            d3.div_(count.view(-1, 1, 1))  # mean over the batch
        d2 = _backprop(d3, pa["fc3.weight"]) * (z2 > 0)  # [A, B, H2]
        if m2 is not None:
            d2.mul_(m2)
        d1 = _backprop(d2, pa["fc2.weight"]) * (z1 > 0)  # [A, B, H1]
        if m1 is not None:
            d1.mul_(m1)
        acts, deltas = [x, h1, h2], [d1, d2, d3]
        if self.dp:
            factors = clip_factors(per_sample_norms(acts, deltas), self.local.per_example_clip)
            deltas = [d * factors.unsqueeze(2) for d in deltas]  # [A, B, H] clipped
        for (wn, bn), act, delta in zip(LAYERS, acts, deltas):
            torch.bmm(delta.transpose(1, 2), act, out=ga[wn])  # [A, out, in]
            torch.sum(delta, dim=1, out=ga[bn])  # [A, out]
        if self.dp:
            self._add_noise(ga, clients=clients, noise_g=noise_g)
        elif self.batch_clip is not None:
            self._clip_batch(ga, self.batch_clip)
        return losses

    def _add_noise(self, ga, *, clients, noise_g) -> None:
        """Opacus order: per client, N(0, (sigma C)^2) per parameter in PARAM_NAMES order."""
        std = self.local.noise_multiplier * self.local.per_example_clip
        if not hasattr(self, "_noise"):  # one reused CPU buffer per parameter
            self._noise = {k: torch.empty(ga[k].shape[1:]) for k in PARAM_NAMES}
        for i, (c, g) in enumerate(zip(clients, noise_g)):
            for k in PARAM_NAMES:
                if std > 0:  # = torch.normal(0, std, size, generator=g), without allocating
                    noise = self._noise[k].normal_(0.0, std, generator=g)
                    ga[k][i].add_(noise.to(self.device, non_blocking=True))
                ga[k][i].div_(expected_batch_size(c.n_train, self.algo))

    @staticmethod
    def _clip_batch(ga, max_norm: float) -> None:
        """torch.nn.utils.clip_grad_norm_ per client: coef = min(1, C / (norm + 1e-6))."""
        sq = sum(ga[k].flatten(1).pow(2).sum(1) for k in PARAM_NAMES)  # [A]
        coef = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
        for k in PARAM_NAMES:
            ga[k].mul_(coef.view(-1, *([1] * (ga[k].dim() - 1))))

    # --- optimiser -----------------------------------------------------------------------
    def _optimizer_step(self, views, act: int, *, step: int) -> None:
        a = self.algo
        names = PARAM_NAMES
        p = [views["p"][k][:act] for k in names]
        g = [views["g"][k][:act] for k in names]
        m = [views["m"][k][:act] for k in names]
        if a.optimizer == "adam":
            v = [views["v"][k][:act] for k in names]
            if self.fused_adam:
                steps = [torch.tensor(float(step), device=self.device) for _ in names]
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


def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x [A, B, I] -> [A, B, O] with shared w [O, I] / b [O] or stacked w [A, O, I] / b [A, O]."""
    if w.dim() == 2:
        a_, b_, i_ = x.shape
        return torch.addmm(b, x.reshape(a_ * b_, i_), w.T).view(a_, b_, -1)
    return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))


def _backprop(d: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
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
