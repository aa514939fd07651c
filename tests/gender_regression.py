"""The frozen gender attack of the regression test: a small synthetic store and one config.

`frozen_rows` runs it and keeps the columns the paper's numbers are made of. The JSON file
tests/data/gender_regression.json was produced by main's binary (gender-only) attack code
before the attack was generalised to any attribute (commit d55d811), with:

    .venv/bin/python -c "import tests.gender_regression as g; g.freeze()"
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from sergrad.attack.config import AttackConfig, AttackModelConfig
from sergrad.attack.run import run_attack
from sergrad.attack.synth import TINY_SHAPES, write_synthetic_run
from sergrad.store import Store

FROZEN = Path(__file__).parent / "data" / "gender_regression.json"
KEEP = ("attack", "layer", "protocol", "n_avg", "calibration", "threshold", "degenerate", "uar",
        "acc", "auc", "tpr_at_1fpr", "tpr_at_10fpr", "uar_ci_low", "uar_ci_high", "n_scored",
        "n_clients", "n_speakers", "eps_lb")  # fmt: skip
SIGNAL = {"fc1": 0.25, "fc2": 0.08, "fc3": 0.0}  # a partial leak: UARs well inside (0.5, 1)


def build(root) -> tuple[Store, AttackConfig, AttackConfig]:
    store = Store(root)
    speakers = lambda p, n: [(f"{p}{i}", "FM"[i % 2]) for i in range(n)]  # noqa: E731
    shadows = []
    for i in range(2):
        write_synthetic_run(store, f"shadow{i}", corpus="a", shapes=TINY_SHAPES,
                            speakers=speakers("a", 12), rounds=12, clients_per_round=6, seed=i,
                            signal=SIGNAL)  # fmt: skip
        shadows.append(f"shadow{i}")
    write_synthetic_run(store, "target", corpus="b", shapes=TINY_SHAPES,
                        speakers=speakers("b", 10), rounds=16, clients_per_round=5, seed=99,
                        signal=SIGNAL, role="target")  # fmt: skip
    base = dict(target_run="target", shadow_runs=tuple(shadows), layers=("fc1", "fc2"),
                n_avg=(1, 4, 0), trials=3, bootstrap=200,
                calibrations=("shadow", "prior", "oracle"),
                protocols=("per_update", "per_client", "per_client_vote"))  # fmt: skip
    logreg = AttackConfig(**base, model=AttackModelConfig(name="logreg_stats", epochs=10))
    cnn = AttackConfig(**base, model=AttackModelConfig(name="cnn", epochs=3))
    return store, logreg, cnn


def frozen_rows(root) -> list[dict]:
    torch.set_num_threads(1)
    store, logreg, cnn = build(root)
    rows = run_attack(logreg, store) + run_attack(cnn, store)
    return [{k: r[k] for k in KEEP} for r in rows]


def freeze() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rows = frozen_rows(tmp)
    FROZEN.write_text(json.dumps(rows, indent=0, sort_keys=True) + "\n")
