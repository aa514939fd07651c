"""One owner for the FL schedule (issue 12): the defenses' training plan and the engines'
schedule agree for every configuration, because the plan calls the schedule."""

from __future__ import annotations

import itertools

import torch

from sergrad.defenses.plan import TrainingPlan
from sergrad.fl.config import AlgoConfig
from sergrad.fl.schedule import _seed_text, batch_schedule, sample_clients


def test_plan_matches_the_engines_schedule():
    gen = torch.Generator().manual_seed(0)
    for algo_name, n_clients, fraction, batch, epochs, n_train, full in itertools.product(
        ("fedavg", "fedsgd"), (1, 7, 40), (0.01, 0.1, 0.5, 1.0), (1, 8, 50), (1, 3), (5, 23),
        (False, True),
    ):  # fmt: skip
        algo = AlgoConfig(name=algo_name, client_fraction=fraction, batch_size=batch,
                          local_epochs=epochs, fedsgd_full_batch=full)  # fmt: skip
        plan = TrainingPlan.for_run(
            algorithm=algo_name, n_clients=n_clients, rounds=10, client_fraction=fraction,
            batch_size=batch, local_epochs=epochs, mean_train_samples=n_train, full_batch=full,
        )  # fmt: skip
        sampled = sample_clients(n_clients, fraction=fraction, seed=1, round=1)
        assert plan.clients_per_round == len(sampled)
        steps = batch_schedule(n_train, algo=algo, local=None, generator=gen)
        assert plan.local_steps == len(steps)
        assert max(len(s) for s in steps) == round(plan.sample_rate * n_train)


def test_seed_text_is_the_json_text():
    """Oracle: the json.dumps text derive_seed always hashed (seeds of stored runs stay)."""
    import json

    import numpy as np

    cases = [(0, "batches", 5, 3), (7, "dpsgd", 12, "corpus/spk-1"), (True, 1), ('a"b',),
             ("x\\y",), ("é",), ("tab\t",), (np.int64(3), "s"), (-12, 2**70), (), (1.5, None)]  # fmt: skip
    for parts in cases:
        assert _seed_text(parts) == json.dumps([p if isinstance(p, int) else str(p) for p in parts])
