"""The reference engine: the plain loop a researcher would write, kept as the oracle.

Per sampled client: a fresh SERModel loaded with the global parameters, a fresh torch
optimizer, a DataLoader over the client's training rows whose batches come from the seeded
schedule (`schedule.batch_schedule`), cross-entropy, `loss.backward()`, `optimizer.step()`.
DP-SGD (per-example clipping + noise) goes through Opacus' GradSampleModule + DPOptimizer
(noise from the client's own generator); batch clipping through clip_grad_norm_.
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from sergrad.fl.config import AlgoConfig, ModelConfig
from sergrad.fl.engine import LocalResult, shared_tensors
from sergrad.fl.model import PARAM_NAMES, SERModel
from sergrad.fl.partition import Client, Partition
from sergrad.fl.schedule import (
    batch_schedule,
    expected_batch_size,
    generator,
    sample_rate,
    share_kind,
)
from sergrad.fl.update import LocalTraining


class ReferenceEngine:
    def __init__(
        self,
        part: Partition,
        *,
        model: ModelConfig,
        algo: AlgoConfig,
        local: LocalTraining | None,
        seed: int,
        device: str = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.x = torch.from_numpy(part.x).to(self.device)  # [N, D]
        self.y = torch.from_numpy(part.y).to(self.device)  # [N]
        self.model_cfg, self.algo, self.local, self.seed = model, algo, local, seed
        self.kind = share_kind(algo)
        self.template = SERModel(part.x.shape[1], model).to(self.device)

    def train_round(
        self, params: dict[str, torch.Tensor], clients: Sequence[Client], *, round: int
    ) -> list[LocalResult]:
        return [self.train_client(params, c, round=round) for c in clients]

    def _optimizer(self, parameters) -> torch.optim.Optimizer:
        a = self.algo
        if a.name == "fedsgd":
            return torch.optim.SGD(parameters, lr=0.0)  # gradient only, never stepped
        if a.optimizer == "adam":
            return torch.optim.Adam(
                parameters, lr=a.lr, betas=a.betas, eps=a.eps, weight_decay=a.weight_decay
            )
        return torch.optim.SGD(
            parameters, lr=a.lr, momentum=a.momentum, weight_decay=a.weight_decay
        )

    def train_client(
        self, params: dict[str, torch.Tensor], client: Client, *, round: int
    ) -> LocalResult:
        idx = torch.from_numpy(client.train_idx).to(self.device)
        n = len(idx)
        batches = batch_schedule(
            n,
            algo=self.algo,
            local=self.local,
            generator=generator(self.seed, "batches", round, client.client_id),
        )
        model = copy.deepcopy(self.template)
        model.load_state_dict(params)
        model.set_generator(generator(self.seed, "dropout", round, client.client_id))
        model.train()
        optimizer = self._optimizer(model.parameters())
        dp = self.local is not None and self.local.per_example_clip is not None
        if dp:
            from opacus import GradSampleModule
            from opacus.optimizers import DPOptimizer

            model = GradSampleModule(model)
            optimizer = DPOptimizer(
                optimizer,
                noise_multiplier=self.local.noise_multiplier,
                max_grad_norm=self.local.per_example_clip,
                expected_batch_size=expected_batch_size(n, self.algo),
                generator=generator(self.seed, "dpsgd", round, client.client_id),
            )
        x, y = self.x[idx], self.y[idx]  # [n, D], [n]
        loader = DataLoader(
            TensorDataset(x, y),
            batch_sampler=[b.tolist() for b in batches],
            collate_fn=functools.partial(_collate, empty=(x[:0], y[:0])),
        )
        losses = []
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            with warnings.catch_warnings():  # Opacus: inputs need no grad, expected here
                warnings.filterwarnings("ignore", message="Full backward hook")
                loss.backward()
            if self.local is not None and self.local.batch_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), self.local.batch_clip)
            if self.algo.name == "fedsgd":
                if dp:
                    optimizer.pre_step()  # clip, noise, scale into p.grad; no step
            else:
                optimizer.step()
            if len(yb):  # an empty Poisson batch has no loss
                losses.append(loss.item())
        named = dict(model.named_parameters())
        named = {k.removeprefix("_module."): v for k, v in named.items()}
        local = {k: named[k] for k in PARAM_NAMES}
        tensors = shared_tensors(
            kind=self.kind,
            global_params=params,
            local_params=local,
            grads={k: local[k].grad for k in PARAM_NAMES} if self.kind == "gradient" else None,
            algo=self.algo,
            steps=len(batches),
        )
        return LocalResult(
            client=client,
            tensors=tensors,
            steps=len(batches),
            sample_rate=sample_rate(n, self.algo),
            loss=sum(losses) / max(1, len(losses)),
        )


def _collate(rows: list, *, empty: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """default_collate, but an empty (Poisson) batch gives `empty` ([0, D] and [0] tensors)."""
    if not rows:
        return empty
    return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])
