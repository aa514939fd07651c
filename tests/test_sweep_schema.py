"""Sweep YAML schema, grid expansion, dedup and `sweep plan` (no Ray)."""

from __future__ import annotations

import itertools
import json
import textwrap

import pytest

from sergrad.errors import ConfigError
from sergrad.sweep.expand import expand, grid_points
from sergrad.sweep.schema import load_sweep

BASE = """\
name: t
store: {store}
corpora:
  a: {{kind: synth, profile: synth-studio, speakers: 4}}
  b: {{kind: synth, profile: synth-phone, speakers: 4}}
  c: {{kind: synth, profile: synth-room, speakers: 4}}
pairings: loco
features: [{{name: prosody}}]
"""


def write(tmp_path, body: str, name="s.yaml"):
    """BASE + body; a top-level key of body replaces BASE's line (no duplicate keys)."""
    body = textwrap.dedent(body)
    keys = {line.split(":")[0] for line in body.splitlines() if line[:1].isalpha()}
    base = "".join(
        line for line in BASE.splitlines(keepends=True) if line.split(":")[0] not in keys
    )
    p = tmp_path / name
    p.write_text(base.format(store=tmp_path / "store") + body)
    return p


def test_unknown_key_names_line_and_valid_keys(tmp_path):
    p = write(tmp_path, "run:\n  algo:\n    rounds: 3\n    lrr: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_sweep(p)
    msg = str(err.value)
    assert f"{p}:12:" in msg  # line of `lrr` (1-based)
    assert "run.algo.lrr" in msg and "server_lr" in msg and "batch_size" in msg


def test_unknown_top_level_key_and_bad_value_lines(tmp_path):
    p = write(tmp_path, "seedz: [1]\n")
    with pytest.raises(
        ConfigError, match=r"s\.yaml:9: unknown key 'seedz'; valid keys: name, store"
    ):
        load_sweep(p)
    p = write(tmp_path, "run:\n  algo: {rounds: [3, x]}\n")
    with pytest.raises(ConfigError, match=r"s\.yaml:10: run\.algo\.rounds: .*integer"):
        load_sweep(p)
    p = write(tmp_path, "run:\n  seed: 3\n")
    with pytest.raises(ConfigError, match="set by the sweep"):
        load_sweep(p)
    p = write(tmp_path, "pairings: [{target: a, shadow: [zz]}]\n")
    with pytest.raises(ConfigError, match="unknown corpus 'zz'; declared: a, b, c"):
        load_sweep(p)


def test_unknown_attack_model_names_its_line_and_the_valid_models(tmp_path):
    p = write(tmp_path, "attack:\n  models: [{name: logreg_stats}, {name: logreg_colcor}]\n")
    with pytest.raises(ConfigError) as err:
        load_sweep(p)
    msg = str(err.value)
    assert f"{p}:10:" in msg and "attack.models[1].name" in msg and "'logreg_colcor'" in msg
    assert "valid: cnn, logreg_colcorr, logreg_stats, mlp_proj" in msg


def test_attack_model_names_match_the_registry():
    from sergrad.attack.config import MODEL_NAMES
    from sergrad.attack.models import ATTACK_MODELS

    assert sorted(MODEL_NAMES) == sorted(ATTACK_MODELS.names())


@pytest.mark.parametrize("name", ["small", "defenses", "demo", "leakage", "paper"])
def test_shipped_sweeps_load(name, monkeypatch, tmp_path):
    from pathlib import Path

    for var in ("IEMOCAP_ROOT", "CREMAD_ROOT", "MSPIMPROV_ROOT"):
        monkeypatch.setenv(var, str(tmp_path))
    sweep = load_sweep(Path(__file__).resolve().parents[1] / "sweeps" / f"{name}.yaml")
    assert sweep.attack


def test_grid_points_is_the_cartesian_product():
    from sergrad.fl.config import RunConfig

    pts = grid_points(
        RunConfig,
        {
            "algo": {"lr": [0.1, 0.2, 0.3], "name": {"grid": ["fedsgd", "fedavg"]}},
            "model": {"hidden": [16, 8]},
        },  # fmt: skip
    )
    want = [
        {"algo": {"lr": lr, "name": n}, "model": {"hidden": [16, 8]}}
        for lr, n in itertools.product([0.1, 0.2, 0.3], ["fedsgd", "fedavg"])
    ]
    assert pts == want


def test_expansion_counts_and_shared_shadow_runs(tmp_path):
    body = """\
    run:
      algo: {name: [fedsgd, fedavg], rounds: 2}
    defenses:
      - {name: none}
      - {name: gauss, params: {std: {grid: [0.01, 0.1]}}}
    folds: [0, 1]
    shadow_folds: all
    seeds: [0, 1]
    attack:
      models: [{name: logreg_stats}, {name: cnn, lr: [0.001, 0.0001]}]
      layers: {grid: [[fc1], [fc2]]}
      posthoc: [{name: none}, {name: quant, params: {bits: {grid: [4, 8]}}}]
      adaptive: [false, true]
    """
    sweep = load_sweep(write(tmp_path, body))
    plan = expand(sweep, str(tmp_path / "store"))
    pairings, algos, defenses, folds, seeds, nfolds = 3, 2, 3, 2, 2, 5
    targets = pairings * algos * defenses * folds * seeds
    # shadow sets: undefended (non-adaptive + adaptive on no defense) + each defense (adaptive)
    shadows = pairings * algos * seeds * defenses * nfolds
    roles = [r.role for r in plan.runs]
    assert roles.count("target") == targets and roles.count("shadow") == shadows
    assert len({r.id for r in plan.runs}) == len(plan.runs)
    # evaluations: per target: 3 models x 2 layers x 3 posthoc x adaptive (2 if defended, else 1)
    per_target_defended, per_target_none = 3 * 2 * 3 * 2, 3 * 2 * 3
    n_def_targets = targets * 2 // 3
    assert (
        len(plan.evals)
        == n_def_targets * per_target_defended + (targets - n_def_targets) * per_target_none
    )
    by_id = {r.id: r for r in plan.runs}
    for e in plan.evals:
        cfg = e.config
        target = by_id[cfg.target_run]
        assert target.role == "target" and len(cfg.shadow_runs) == nfolds
        shadow_defs = {by_id[s].config.defenses for s in cfg.shadow_runs}
        assert shadow_defs == {target.config.defenses if cfg.adaptive else ()}
        assert {by_id[s].config.seed for s in cfg.shadow_runs} == {target.config.seed}
        assert {by_id[s].config.algo for s in cfg.shadow_runs} == {target.config.algo}


def test_dedup_when_a_target_is_another_pairings_shadow(tmp_path):
    body = """\
    pairings: [{target: a, shadow: [b]}, {target: b, shadow: [a]}, {target: c, shadow: [b]}]
    folds: [0]
    shadow_folds: [0]
    """
    plan = expand(load_sweep(write(tmp_path, body)), str(tmp_path / "store"))
    # naive: 3 targets + 3 shadow runs; a/b targets are b/a shadows; c's shadow = a's shadow
    assert len(plan.runs) == 3
    assert sorted(r.corpus for r in plan.runs) == ["a", "b", "c"]
    assert len(plan.evals) == 3


def test_plan_prints_counts_without_running(tmp_path, capsys):
    from sergrad.cli import main

    p = write(tmp_path, "folds: [0]\nshadow_folds: [0, 1]\nrun: {algo: {rounds: 3}}\n")
    assert main(["sweep", "plan", str(p), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runs"] == 3 * (1 + 2) and out["evaluations"] == 3
    assert out["harvest_bytes"] > 0
    assert not (tmp_path / "store").exists()


def test_small_yaml_is_valid():
    sweep = load_sweep("sweeps/small.yaml")
    assert len(sweep.corpora) == 2 and sweep.pairings[0].shadow == ("phone",)


def test_cuda_runs_request_a_gpu():
    from sergrad.sweep.driver import options_for
    from sergrad.sweep.schema import parse_sweep

    corpora = {"a": {"kind": "synth"}, "b": {"kind": "synth"}}
    gpu = parse_sweep({"corpora": corpora, "run": {"device": "cuda"}})
    cpu = parse_sweep({"corpora": corpora})
    assert options_for(gpu, address=None, max_concurrent=0).gpus_per_run == 1.0
    assert options_for(cpu, address=None, max_concurrent=0).gpus_per_run == 0.0


def test_attack_blocks_with_defense_filter(tmp_path):
    """A list of attack blocks; `defenses:` limits a block to some in-loop defenses."""
    body = """\
    defenses:
      - {name: none}
      - {name: layer_perturbation, params: {std: {grid: [0.01, 0.1]}}}
    folds: [0]
    shadow_folds: [0, 1]
    seeds: [0]
    attack:
      - {models: [{name: logreg_stats}], layers: [fc1]}
      - {models: [{name: cnn}], defenses: [none], layers: [fc1]}
      - {models: [{name: logreg_stats}], defenses: [layer_perturbation], adaptive: [true]}
    """
    plan = expand(load_sweep(write(tmp_path, body)), str(tmp_path / "store"))
    targets = 3 * 3  # pairings x (none + 2 levels)
    # block 1 on every target, block 2 on the 3 undefended, block 3 on the 6 defended
    assert len(plan.evals) == targets + 3 + 6
    models = [(e.config.model.name, e.config.adaptive) for e in plan.evals]
    assert models.count(("cnn", False)) == 3
    assert models.count(("logreg_stats", True)) == 6
    # shadow runs: undefended (3 pairings x 2 folds) + adaptive (3 x 2 levels x 2 folds)
    assert sum(r.role == "shadow" for r in plan.runs) == 6 + 12
    adaptive_shadows = {s for e in plan.evals if e.config.adaptive for s in e.config.shadow_runs}
    plain_shadows = {s for e in plan.evals if not e.config.adaptive for s in e.config.shadow_runs}
    assert len(adaptive_shadows) == 12 and len(plain_shadows) == 6
    assert not adaptive_shadows & plain_shadows


def test_attack_block_unknown_defense_is_an_error(tmp_path):
    body = """\
    defenses: [{name: none}]
    attack:
      - {models: [{name: cnn}], defenses: [user_dpp]}
    """
    with pytest.raises(
        ConfigError, match=r"'user_dpp' is not a defense of this sweep; valid: none"
    ):
        load_sweep(write(tmp_path, body))
