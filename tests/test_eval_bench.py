"""`sergrad bench eval` pieces: the phases read the shadow harvest and train models as they
claim."""

from __future__ import annotations

import argparse
import shutil

import torch

from sergrad.bench import eval as bench_eval


def test_phases_read_the_shadow_harvest_per_evaluation_or_once(tmp_path):
    torch.set_num_threads(1)
    args = argparse.Namespace(models=["logreg_stats"], posthoc=[0.0, 0.5], epochs=1)
    store, shadows, targets = bench_eval.build_store(
        str(tmp_path), shapes=bench_eval.QUICK, shadows=2, targets=2, rounds=3
    )
    configs = bench_eval.grid(args, shadows, targets)
    assert len(configs) == 4
    _, per_eval, trained = bench_eval.run_phase(store, configs, clear_each="inputs")
    # one read each: the moments pass's batches (kept in memory) give the features too
    assert all(per_eval[s] == len(configs) for s in shadows)
    assert trained == 2 * len(configs)  # fc1 and fc2, every evaluation
    for table in ("attacks", "predictions"):
        shutil.rmtree(store.path(table))
    _, once, trained = bench_eval.run_phase(store, configs, clear_each="fits")
    assert not any(once[s] for s in shadows) and trained == 2 * len(configs)
    for table in ("attacks", "predictions", "attack_inputs"):
        shutil.rmtree(store.path(table))
    _, cold, trained = bench_eval.run_phase(store, configs, clear_each="")
    assert all(cold[s] == 1 for s in shadows) and all(cold[t] == 2 for t in targets)
    assert trained == 2  # one fit per layer: the targets and post-hoc levels share them
    for table in ("attacks", "predictions"):
        shutil.rmtree(store.path(table))
    _, warm, trained = bench_eval.run_phase(store, configs, clear_each="")
    assert not any(warm[s] for s in shadows) and trained == 0
