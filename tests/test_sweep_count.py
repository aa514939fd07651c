"""Issue 12 item 6: `sweep plan` counts huge grids without building them. Oracle: `expand`
(which builds and hashes every config) on every shipped sweep and on tricky small ones; a
closed form on a 10^6-job grid."""

from __future__ import annotations

from pathlib import Path

import pytest

from sergrad.cli import main
from sergrad.sweep.count import count, harvest_bytes
from sergrad.sweep.driver import plan_summary
from sergrad.sweep.expand import expand
from sergrad.sweep.schema import load_sweep

ROOT = Path(__file__).resolve().parents[1]
EXTRA = {
    "dedup": """
corpora:
  a: {kind: synth, speakers: 4}
  b: {kind: synth, profile: synth-phone, speakers: 4}
  c: {kind: synth, profile: synth-room, speakers: 4}
pairings: [{target: a, shadow: [b]}, {target: b, shadow: [a]}, {target: c, shadow: [a, b]},
           {target: a, shadow: [c]}]
features: [{name: prosody}, {name: mfcc_stats}]
run: {algo: {rounds: 3, lr: [0.1, 0.1, 0.2]}}
defenses: [{name: none}, {name: layer_perturbation, params: {std: {grid: [0.01, 0.1]}}}]
folds: [0, 1]
shadow_folds: [0, 2]
seeds: [0, 1]
attack:
  - {models: [{name: logreg_stats}], adaptive: [false, true], layers: [fc1]}
  - {models: [{name: cnn}], defenses: [none]}
""",
    "no_undefended": """
corpora:
  a: {kind: synth, speakers: 4}
  b: {kind: synth, profile: synth-phone, speakers: 4}
defenses: [{name: layer_perturbation, params: {std: 0.1}}]
run: {algo: {rounds: 2}}
attack: {models: [{name: logreg_stats}], adaptive: [false, true]}
""",
}


def sweep_files(tmp_path) -> list[Path]:
    files = sorted((ROOT / "sweeps").glob("*.yaml"))
    for name, text in EXTRA.items():
        (tmp_path / f"{name}.yaml").write_text(text)
        files.append(tmp_path / f"{name}.yaml")
    return files


def test_counts_equal_the_expansion(tmp_path, monkeypatch):
    for var in ("IEMOCAP_ROOT", "CREMAD_ROOT", "MSPIMPROV_ROOT", "CREMA_D_ROOT", "MSP_ROOT"):
        monkeypatch.setenv(var, str(tmp_path))
    for path in sweep_files(tmp_path):
        sweep = load_sweep(path)
        plan = expand(sweep, str(tmp_path / "store"))
        c = count(sweep)
        targets = sum(r.role == "target" for r in plan.runs)
        assert (c.target_runs, c.shadow_runs, c.evaluations, c.audits) == (
            targets,
            len(plan.runs) - targets,
            len(plan.evals),
            len(plan.audits),
        ), path.name
        from sergrad.sweep.estimate import harvest_bytes as run_bytes

        assert harvest_bytes(sweep, c) == sum(run_bytes(r.config, sweep) for r in plan.runs)


def test_a_million_jobs_plan_and_warn(tmp_path, capsys):
    """10^4 grid points x 10 seeds x 5 folds: 1.6 million runs and evaluations."""
    p = tmp_path / "huge.yaml"
    p.write_text("""
name: huge
store: out/huge
corpora:
  a: {kind: synth, speakers: 10}
  b: {kind: synth, profile: synth-phone, speakers: 10}
pairings: [{target: a, shadow: [b]}]
run:
  data: {n_folds: 5}
  algo:
    rounds: 2
    lr: {grid: [0.1, 0.2, 0.3, 0.4]}
    batch_size: {grid: [1, 2, 3, 4, 5]}
    client_fraction: {grid: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]}
    local_epochs: {grid: [1, 2, 3, 4, 5]}
    weight_decay: {grid: [0.0, 0.1, 0.2, 0.3, 0.4]}
  eval: {every: {grid: [1, 2]}}
seeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
folds: all
shadow_folds: [0]
attack: {models: [{name: logreg_stats}], trials: {grid: [1, 2]}}
""")
    points = 4 * 5 * 10 * 5 * 5 * 2
    c = count(load_sweep(p))
    assert c.target_runs == points * 10 * 5  # x seeds x folds
    assert c.shadow_runs == points * 10  # one shadow fold, shared by the target folds
    assert c.evaluations == c.target_runs * 2
    assert c.runs + c.evaluations == 1_600_000
    capsys.readouterr()
    assert main(["sweep", "plan", str(p)]) == 0
    captured = capsys.readouterr()
    assert "runs         600000 (500000 target, 100000 shadow)" in captured.out
    assert "warning: 600000 runs and 1000000 evaluations" in captured.err
    assert "harvest" in captured.err


@pytest.mark.parametrize("name", ["small.yaml"])
def test_plan_summary_matches(name, tmp_path):
    sweep = load_sweep(ROOT / "sweeps" / name)
    s = plan_summary(sweep)
    plan = expand(sweep, str(tmp_path))
    assert (s["runs"], s["evaluations"]) == (len(plan.runs), len(plan.evals))
