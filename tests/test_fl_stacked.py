"""Stacked runs: several runs in one fast engine give each run's own results (CPU).

Oracle: the same runs, each in its own FastEngine. The first local step multiplies by the
shared global weights (addmm) alone and by per-client weights (baddbmm) when stacked, so
values agree to float32 rounding, which Adam's normalised steps amplify to ~1e-5 relative:
the tolerance is the reference-vs-fast engines' (tests/test_fl_engines.py)."""

from __future__ import annotations

import pytest
import torch

from sergrad.errors import ConfigError
from sergrad.fl.config import AlgoConfig, DataConfig, ModelConfig
from sergrad.fl.fast import FastEngine
from sergrad.fl.model import init_params
from sergrad.fl.partition import partition
from sergrad.fl.schedule import generator
from sergrad.fl.stacked import StackedFastEngine
from sergrad.fl.synthetic import random_dataset
from sergrad.fl.update import LocalTraining

torch.set_num_threads(1)
MODEL = ModelConfig(hidden=(16, 8))


def _runs(n_runs: int = 3):
    """Runs differing in fold (data), seed and starting parameters; client subsets differ."""
    ds = random_dataset(n_speakers=10, utts_per_speaker=23, dim=12, seed=0)
    parts = [
        partition(ds, DataConfig(clients_per_speaker=1, fold=r), seed=r) for r in range(n_runs)
    ]
    params = [init_params(12, MODEL, generator=generator(10 + r, "init")) for r in range(n_runs)]
    clients = [list(p.clients)[r : r + 6] for r, p in enumerate(parts)]
    return parts, params, clients


@pytest.mark.parametrize(
    ("algo", "local"),
    [
        (AlgoConfig(name="fedavg", batch_size=5, local_epochs=2), None),
        (AlgoConfig(name="fedsgd", batch_size=5, server_lr=0.1), None),
        (AlgoConfig(name="fedavg", batch_size=5, share="pseudo_gradient"), None),
        (AlgoConfig(name="fedavg", batch_size=5),
         LocalTraining(per_example_clip=1.0, noise_multiplier=0.7, poisson=True)),
        (AlgoConfig(name="fedsgd", batch_size=5), LocalTraining(batch_clip=0.5)),
        (AlgoConfig(name="fedavg", batch_size=64), None),  # one local step: the closed form
        (AlgoConfig(name="fedavg", batch_size=10), None),  # two local steps: fast_two_step
    ],
)  # fmt: skip
def test_stacked_runs_equal_each_run_alone(algo, local):
    parts, params, clients = _runs()
    seeds = [3, 4, 5]
    stacked = StackedFastEngine(
        parts, model=MODEL, algo=algo, local=local, seeds=seeds, max_cohort=7
    )  # fmt: skip  (cohorts mix runs)
    alone = [
        FastEngine(p, model=MODEL, algo=algo, local=local, seed=s) for p, s in zip(parts, seeds)
    ]
    for rnd in (1, 2):
        together = stacked.train_round_runs(params, clients, round=rnd)
        for r, engine in enumerate(alone):
            own = engine.train_round(params[r], clients[r], round=rnd)
            assert [x.client for x in together[r]] == [x.client for x in own]
            for a, b in zip(together[r], own):
                assert (a.steps, a.sample_rate) == (b.steps, b.sample_rate)
                assert a.loss == pytest.approx(b.loss, rel=1e-5)
                for k in b.tensors:
                    torch.testing.assert_close(a.tensors[k], b.tensors[k], rtol=1e-4, atol=1e-6)


def test_stacking_rejects_other_shapes_and_plain_train_round():
    parts, params, clients = _runs(2)
    other = random_dataset(n_speakers=10, utts_per_speaker=5, dim=7, seed=0)
    with pytest.raises(ConfigError, match="one input dimension"):
        StackedFastEngine([parts[0], partition(other, DataConfig(clients_per_speaker=1), seed=0)],
                          model=MODEL, algo=AlgoConfig(), local=None, seeds=[0, 1])  # fmt: skip
    engine = StackedFastEngine(parts, model=MODEL, algo=AlgoConfig(), local=None, seeds=[0, 1])
    with pytest.raises(TypeError, match="train_round_runs"):
        engine.train_round(params[0], clients[0], round=1)
