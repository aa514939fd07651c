"""run_fl end to end: learning, records, skip by id, bad input, CLI, DP clipping math."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import torch

from sergrad.cli import main
from sergrad.errors import ConfigError, DataError
from sergrad.fl import run as run_module
from sergrad.fl.config import AlgoConfig, EvalConfig, ModelConfig, RunConfig, run_id
from sergrad.fl.dp_clip import clip_factors, per_sample_norms
from sergrad.fl.records import read_rounds, read_run_row
from sergrad.fl.run import load_run_config, run_fl
from sergrad.fl.synthetic import random_dataset, write_tables
from sergrad.fl.update import Defense
from sergrad.store import Store

torch.set_num_threads(1)
DS = random_dataset(n_speakers=10, utts_per_speaker=40, dim=16, seed=0, separation=0.5)
MODEL = ModelConfig(hidden=(32, 16))


@pytest.mark.parametrize(
    "algo",
    [
        AlgoConfig(name="fedsgd", rounds=40, client_fraction=0.5, server_lr=0.5),
        AlgoConfig(name="fedavg", rounds=15, client_fraction=0.5, lr=5e-3),
    ],
)
def test_learns_well_above_chance(tmp_path, algo):
    config = RunConfig(model=MODEL, algo=algo, eval=EvalConfig(select_after=5))
    store = Store(tmp_path)
    row = run_fl(config, store, dataset=DS, extra={"role": "shadow"})
    assert row["test_uar"] > 0.5 and row["val_uar"] > 0.5  # chance is 0.25
    assert row["status"] == "ok" and row["role"] == "shadow" and row["corpus"] == "synth-a"
    assert row["best_round"] > 5 and row["n_updates"] == algo.rounds * 4
    stored = read_run_row(store, run_id(config))
    assert stored["test_uar"] == row["test_uar"]
    rounds = read_rounds(store, run_id(config))
    assert [r["round"] for r in rounds] == list(range(1, algo.rounds + 1))
    best = max(r["val_uar"] for r in rounds if r["round"] > 5)
    assert row["val_uar"] == best
    # a second call skips the finished run
    again = run_fl(config, store, dataset=DS)
    assert again["created_at"] == row["created_at"]


def test_select_after_beyond_rounds_uses_all_rounds(tmp_path):
    config = RunConfig(model=MODEL, algo=AlgoConfig(rounds=3, client_fraction=0.5, lr=5e-3))
    row = run_fl(config, Store(tmp_path), dataset=DS)  # select_after=100 >= 3 rounds
    assert 1 <= row["best_round"] <= 3


class NaNDefense(Defense):
    name = "nan"

    def client_update(self, update, *, generator):
        if update.round == 2:
            bad = dict(update.tensors)
            bad["fc2.bias"] = bad["fc2.bias"] * float("nan")
            return update.with_tensors(bad)
        return update


def test_nan_update_named_and_nothing_published(tmp_path, monkeypatch):
    monkeypatch.setattr(run_module, "build_defenses", lambda config, part: [NaNDefense()])
    config = RunConfig(model=MODEL, algo=AlgoConfig(rounds=3, client_fraction=0.5))
    store = Store(tmp_path)
    with pytest.raises(DataError, match=r"round 2, client \d+ .*fc2.bias"):
        run_fl(config, store, dataset=DS)
    assert store.files("updates") == [] and store.files("runs") == []


def test_unknown_config_key(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("algo: {name: fedavg, roundz: 3}\n")
    with pytest.raises(ConfigError, match="unknown key 'algo.roundz'; valid keys: algo.name"):
        load_run_config(path)
    path.write_text("algo: {name: fedavg}\n")
    assert load_run_config(path, ["algo.rounds=7", "seed=3"]).algo.rounds == 7


def test_cli_run(tmp_path, capsys):
    u, f = write_tables(DS, tmp_path)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"data: {{features: [{f}], utterances: [{u}]}}\n"
        "model: {hidden: [32, 16]}\nalgo: {rounds: 3, client_fraction: 0.5, lr: 0.005}\n"
    )
    store = tmp_path / "store"
    args = ["fl", "run", str(cfg), "--store", str(store), "--set", "harvest.dtype=float16"]
    assert main(args + ["--engine", "reference"]) == 0
    out = capsys.readouterr().out
    assert "test UAR" in out
    config = load_run_config(cfg, ["harvest.dtype=float16", "engine=reference"])
    row = read_run_row(Store(store), run_id(config))
    assert row["feature_set"] == "random" and row["engine"] == "reference"
    table = pq.read_table(
        Store(store).file_path("updates", partition=("run_id", row["run_id"]), name="updates")
    )
    assert table.num_rows == row["n_updates"] == 3 * 4
    assert main(["fl", "run", str(cfg), "--store", str(store), "--set", "algo.bogus=1"]) == 2


def test_cli_bad_data(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("data: {features: [], utterances: []}\n")
    assert main(["fl", "run", str(cfg), "--store", str(tmp_path / "s")]) == 2
    assert "data.features" in capsys.readouterr().err


def test_per_sample_norms_match_autograd_loop():
    g = torch.Generator().manual_seed(0)
    layers = [torch.nn.Linear(5, 4), torch.nn.Linear(4, 3)]
    x = torch.randn(6, 5, generator=g)
    y = torch.randint(0, 3, (6,), generator=g)
    # per-sample gradients by a loop over samples (the oracle)
    naive = []
    for i in range(6):
        for layer in layers:
            layer.zero_grad()
        out = layers[1](torch.relu(layers[0](x[i : i + 1])))
        torch.nn.functional.cross_entropy(out, y[i : i + 1]).backward()
        naive.append(
            sum(p.grad.pow(2).sum() for layer in layers for p in layer.parameters()).sqrt()
        )
    # closed form from activations and per-sample deltas
    z1 = layers[0](x)
    h1 = torch.relu(z1)
    logits = layers[1](h1)
    d2 = torch.softmax(logits, 1) - torch.nn.functional.one_hot(y, 3)
    d1 = (d2 @ layers[1].weight) * (z1 > 0)
    norms = per_sample_norms([x, h1], [d1, d2])
    torch.testing.assert_close(norms, torch.stack(naive).detach())
    torch.testing.assert_close(clip_factors(norms, 0.1), (0.1 / (norms + 1e-6)).clamp(max=1))
