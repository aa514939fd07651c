"""Several FL runs of the same shapes trained as one cohort of the fast engine.

A sweep's runs often differ only in seed or fold (the data each run sees): their clients can
be trained together, round r of every run in the same stacked [C, ...] tensors, so a GPU is
filled by many small runs. `StackedFastEngine` is a `FastEngine` over the concatenation of
the runs' partitions: each client keeps its run's seed (batches, dropout and DP noise come from
the same generators as in its own run) and starts from its own run's global parameters.
Results equal running each run alone up to float32 rounding (stacked matmuls are summed in a
different order: `tests/test_fl_stacked.py`).

Stacked runs must share the model, the algorithm, the device and the client-side training
defense (`LocalTraining`: DP-SGD clip and noise, batch clipping); runs that differ in those
(e.g. defense levels) are stacked per level. Server-side steps (client sampling, aggregation,
server defenses, harvest) stay per run: the caller loops over runs between rounds.

    engine = StackedFastEngine([part_a, part_b], model=m, algo=a, local=None, seeds=[0, 1])
    results = engine.train_round_runs([params_a, params_b], [clients_a, clients_b], round=r)
    # results[i]: run i's LocalResults, in the order of clients_i
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from sergrad.errors import ConfigError
from sergrad.fl.config import AlgoConfig, ModelConfig
from sergrad.fl.engine import LocalResult
from sergrad.fl.fast import FastEngine
from sergrad.fl.partition import Client, Partition
from sergrad.fl.update import LocalTraining


class StackedFastEngine(FastEngine):
    def __init__(
        self,
        parts: Sequence[Partition],
        *,
        model: ModelConfig,
        algo: AlgoConfig,
        local: LocalTraining | None,
        seeds: Sequence[int],
        device: str = "cpu",
        max_cohort: int = 256,
    ) -> None:
        if len(parts) != len(seeds) or not parts:
            raise ConfigError(f"stacked runs: {len(parts)} partitions for {len(seeds)} seeds")
        dims = {p.x.shape[1] for p in parts}
        if len(dims) != 1:
            raise ConfigError(f"stacked runs need one input dimension, got {sorted(dims)}")
        offsets = np.cumsum([0] + [len(p.x) for p in parts[:-1]])
        joined = dataclasses.replace(
            parts[0],
            x=np.concatenate([p.x for p in parts]),
            y=np.concatenate([p.y for p in parts]),
        )
        super().__init__(joined, model=model, algo=algo, local=local, seed=int(seeds[0]),
                         device=device, max_cohort=max_cohort)  # fmt: skip
        self.seeds = [int(s) for s in seeds]
        self.offsets = [int(o) for o in offsets]
        self._run: dict[int, int] = {}  # id(member client) -> run index
        self._origin: dict[int, Client] = {}  # id(member client) -> the run's own client
        self._round_params: list[dict[str, torch.Tensor]] = []

    def _seed(self, client: Client) -> int:
        return self.seeds[self._run[id(client)]]

    def _client_params(self, clients: Sequence[Client]) -> dict[str, torch.Tensor]:
        runs = [self._run[id(c)] for c in clients]
        return {
            k: torch.stack([self._round_params[r][k] for r in runs]) for k in self._round_params[0]
        }

    def train_round_runs(
        self,
        params: Sequence[dict[str, torch.Tensor]],
        clients: Sequence[Sequence[Client]],
        *,
        round: int,
    ) -> list[list[LocalResult]]:
        """Round `round` of every run at once; per run, its clients' results in order.
        Shared tensors are views valid until the next call (as FastEngine.train_round)."""
        if len(params) != len(self.seeds) or len(clients) != len(self.seeds):
            raise ValueError(f"expected params and clients of {len(self.seeds)} runs")
        self._round_params = [{k: v.to(self.device) for k, v in p.items()} for p in params]
        members, self._run, self._origin = [], {}, {}
        for r, run_clients in enumerate(clients):
            for c in run_clients:
                m = dataclasses.replace(
                    c,
                    client_id=c.client_id,
                    train_idx=c.train_idx + self.offsets[r],
                    val_idx=c.val_idx + self.offsets[r],
                )
                self._run[id(m)], self._origin[id(m)] = r, c
                members.append(m)
        done = self.train_round(self._round_params[0], members, round=round, _members=True)
        out: list[list[LocalResult]] = [[] for _ in clients]
        for m, res in zip(members, done):
            out[self._run[id(m)]].append(dataclasses.replace(res, client=self._origin[id(m)]))
        return out

    def train_round(self, params, clients, *, round: int, _members: bool = False):
        if not _members:
            raise TypeError("StackedFastEngine: call train_round_runs (one entry per run)")
        return super().train_round(params, clients, round=round)
