"""A small hand-made results store with known numbers, for the analysis tests.

Layout follows sergrad/schema.py exactly (written with Store.write_table + table_from_rows).

- Undefended target runs for corpora alpha, beta x features prosody, mfcc x algorithms fedsgd,
  fedavg x folds 0, 1 x seeds 0, 1 (32 runs). test_uar = BASE + 0.02 * fold + 0.04 * seed, with
  BASE = 0.60 (alpha) / 0.50 (beta) + 0.05 (mfcc) + 0.10 (fedavg); test_acc = test_uar + 0.05.
  So (alpha, prosody, fedsgd) has UARs 0.60, 0.62, 0.64, 0.66: mean 0.63, std 0.025820.
- Defended target runs, alpha / prosody / fedavg, folds 0, 1, seed 0: user_dp at levels 1 and 4
  (epsilon = level + 0.1 * fold, delta 1e-3, protects speakers), layer_perturbation at 0.01 and
  0.1 (no epsilon), dp_sgd at 2 (epsilon 2, delta 1e-5, protects utterances).
- Two shadow runs (corpus "alpha+beta") and one failed target run: both must be ignored.
- One attack evaluation per target run (attack "cnn"): layers fc1, fc2, fusion x
  per_update (n_avg 1) and per_client (n_avg 1, 5, 0 = all), plus a majority baseline row.
  uar = 0.5 + (LAYER[layer] + PROTO[n] + 0.01 * fold - 0.5) * SHRINK[defense, level];
  acc = uar + 0.01, auc = min(1, uar + 0.05), tpr_at_1fpr = (uar - 0.5) / 2, tpr_at_10fpr = uar - 0.3;
  per_client rows: eps_lb = 4 * (uar - 0.5) at delta 0.
- Post-hoc evaluations on the undefended alpha / prosody / fedavg seed-0 runs:
  posthoc layer_perturbation at 0.05 (SHRINK 0.5).
- rounds for alpha / prosody / fedavg fold 0 seed 0 runs (undefended, user_dp, dp_sgd): 5 rounds,
  epsilon = final epsilon * round / 5 for DP runs.
- predictions (fc1, per_update) for the undefended and user_dp level-1 fold-0 evaluations.
- audits (canary audits) of the two dp_sgd runs: 200 canaries, 40 guesses, 30 + fold correct,
  eps_lb = 0.3 + 0.1 * fold, accountant_epsilon = run_epsilon = 2.0 at delta 1e-5; plus one
  failed audit (no mechanism columns), which analysis counts but never averages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sergrad import schema
from sergrad.store import Store

CORPORA = ("alpha", "beta")
FEATURES = ("prosody", "mfcc")
ALGORITHMS = ("fedsgd", "fedavg")
FOLDS = (0, 1)
SEEDS = (0, 1)
LAYER = {"fc1": 0.80, "fc2": 0.60, "fusion": 0.78}
PROTO = {
    ("per_update", 1): 0.0,
    ("per_client", 1): 0.02,
    ("per_client", 5): 0.06,
    ("per_client", 0): 0.10,
}
SHRINK = {
    ("none", None): 1.0,
    ("user_dp", 1.0): 0.1,
    ("user_dp", 4.0): 0.4,
    ("layer_perturbation", 0.01): 0.8,
    ("layer_perturbation", 0.1): 0.3,
    ("dp_sgd", 2.0): 0.9,
    ("posthoc", 0.05): 0.5,
}
DEFENDED = (
    # defense, level, epsilon(fold) or None, delta, protects, ser uar (fold 0)
    ("user_dp", 1.0, lambda f: 1.0 + 0.1 * f, 1e-3, "speakers", 0.55),
    ("user_dp", 4.0, lambda f: 4.0 + 0.1 * f, 1e-3, "speakers", 0.65),
    ("layer_perturbation", 0.01, None, None, "none", 0.69),
    ("layer_perturbation", 0.1, None, None, "none", 0.60),
    ("dp_sgd", 2.0, lambda f: 2.0, 1e-5, "utterances", 0.62),
)
SWEEP = {"name": "fixture", "sweep": {"corpora": list(CORPORA), "seeds": list(SEEDS)}}


def base_uar(corpus: str, feature: str, algorithm: str) -> float:
    return (
        (0.60 if corpus == "alpha" else 0.50)
        + (0.05 if feature == "mfcc" else 0.0)
        + (0.10 if algorithm == "fedavg" else 0.0)
    )


@dataclass
class FixtureStore:
    root: Path
    runs: list[dict] = field(default_factory=list)  # with "corpus"
    attacks: list[dict] = field(default_factory=list)  # with "target_corpus"
    rounds: dict[str, list[dict]] = field(default_factory=dict)
    predictions: dict[str, list[dict]] = field(default_factory=dict)
    audits: list[dict] = field(default_factory=list)  # with "target_corpus"


def _run(run_id, corpus, feature, algorithm, fold, seed, **kw) -> dict:
    row = {"run_id": run_id, "status": "ok", "role": "target", "corpus": corpus,
           "feature_set": feature, "algorithm": algorithm, "engine": "fast", "fold": fold,
           "seed": seed, "defense": "none", "defense_level": None, "rounds": 5,
           "best_round": 5, "dp_protects": "none", "config": "{}"}  # fmt: skip
    row.update(kw)
    return row


def _attack_rows(run: dict, eval_id: str, shrink: float, posthoc=("none", None)) -> list[dict]:
    common = {"eval_id": eval_id, "status": "ok", "attack": "cnn", "adaptive": False,
              "target_run": run["run_id"], "shadow_runs": "[]", "feature_set": run["feature_set"],
              "algorithm": run["algorithm"], "defense": run["defense"],
              "defense_level": run["defense_level"], "posthoc": posthoc[0],
              "posthoc_level": posthoc[1], "seed": run["seed"], "target_corpus": run["corpus"]}  # fmt: skip
    rows = []
    for layer, lb in LAYER.items():
        for (protocol, n), pb in PROTO.items():
            uar = 0.5 + (lb + pb + 0.01 * run["fold"] - 0.5) * shrink
            rows.append({**common, "layer": layer, "protocol": protocol, "n_avg": n, "uar": uar,
                         "acc": uar + 0.01, "auc": min(1.0, uar + 0.05),
                         "tpr_at_1fpr": (uar - 0.5) / 2, "tpr_at_10fpr": uar - 0.3,
                         "n_scored": 40,
                         "eps_lb": 4 * (uar - 0.5) if protocol == "per_client" else None,
                         "eps_lb_delta": 0.0 if protocol == "per_client" else None})  # fmt: skip
    rows.append({**common, "attack": "majority", "layer": "none", "protocol": "baseline_majority",
                 "n_avg": 1, "uar": 0.5, "acc": 0.5, "auc": 0.5, "n_scored": 40})  # fmt: skip
    return rows


def _predictions(seed: int, strength: float) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(40):
        gender = "M" if i % 2 else "F"
        p = float(np.clip(0.5 + strength * (1 if gender == "M" else -1) + rng.normal(0, 0.2), 0, 1))
        rows.append({"layer": "fc1", "protocol": "per_update", "n_avg": 1, "trial": 0,
                     "round": i % 5, "client_id": i % 8, "speaker_id": f"s{i % 8}",
                     "gender": gender, "p_male": p})  # fmt: skip
    rows.append({**rows[0], "gender": None})  # unlabelled target: not scored
    return rows


def build_store(root: str | Path) -> FixtureStore:
    """Write the fixture store under `root` and return what was written."""
    store = Store(root)
    out = FixtureStore(Path(root))
    for c in CORPORA:
        for f in FEATURES:
            for a in ALGORITHMS:
                for fold in FOLDS:
                    for seed in SEEDS:
                        uar = base_uar(c, f, a) + 0.02 * fold + 0.04 * seed
                        out.runs.append(_run(f"{c}-{f}-{a}-f{fold}-s{seed}", c, f, a, fold, seed,
                                             test_uar=uar, test_acc=uar + 0.05, val_uar=uar))  # fmt: skip
    for name, level, eps, delta, protects, ser in DEFENDED:
        for fold in FOLDS:
            out.runs.append(_run(f"alpha-{name}-{level}-f{fold}", "alpha", "prosody", "fedavg",
                                 fold, 0, defense=name, defense_level=level,
                                 epsilon=None if eps is None else eps(fold), delta=delta,
                                 dp_protects=protects, test_uar=ser + 0.01 * fold,
                                 test_acc=ser + 0.01 * fold + 0.05))  # fmt: skip
    for k in range(2):
        out.runs.append(_run(f"shadow-{k}", "alpha+beta", "prosody", "fedavg", k, 0,
                             role="shadow", test_uar=0.99, test_acc=0.99))  # fmt: skip
    out.runs.append(_run("alpha-failed", "alpha", "prosody", "fedsgd", 0, 0, status="failed",
                         error="boom"))  # fmt: skip
    for run in out.runs:
        if run["role"] != "target" or run["status"] != "ok":
            continue
        key = (run["defense"], run["defense_level"])
        rows = _attack_rows(run, f"ev-{run['run_id']}", SHRINK[key])
        if (
            run["defense"] == "none"
            and run["run_id"].startswith("alpha-prosody-fedavg")
            and run["seed"] == 0
        ):
            rows += _attack_rows(run, f"ph-{run['run_id']}", SHRINK[("posthoc", 0.05)],
                                 posthoc=("layer_perturbation", 0.05))  # fmt: skip
        out.attacks += rows
    # rounds
    for run in out.runs:
        rid = run["run_id"]
        if rid in ("alpha-prosody-fedavg-f0-s0", "alpha-user_dp-1.0-f0", "alpha-user_dp-4.0-f0",
                   "alpha-dp_sgd-2.0-f0"):  # fmt: skip
            eps = run.get("epsilon")
            out.rounds[rid] = [{"round": r, "n_clients": 3, "train_loss": 1.0 / r,
                                "val_uar": 0.3 + 0.05 * r,
                                "epsilon": None if eps is None else eps * r / 5, "wall_s": 0.1}
                               for r in range(1, 6)]  # fmt: skip
    out.predictions["ev-alpha-prosody-fedavg-f0-s0"] = _predictions(0, 0.15)
    out.predictions["ev-alpha-user_dp-1.0-f0"] = _predictions(1, 0.05)
    for fold in FOLDS:
        out.audits.append(audit_row(f"au-dp_sgd-f{fold}", f"alpha-dp_sgd-2.0-f{fold}", fold=fold,
                                    eps_lb=0.3 + 0.1 * fold, n_correct=30 + fold))  # fmt: skip
    out.audits.append({"audit_id": "au-failed", "status": "failed", "error": "boom",
                       "target_run": "alpha-dp_sgd-2.0-f0", "target_corpus": "alpha"})  # fmt: skip
    _write(store, out)
    return out


def audit_row(audit_id: str, run: str, *, fold: int, eps_lb: float, n_correct: int,
              accountant_epsilon: float = 2.0) -> dict:  # fmt: skip
    """One ok canary audit of an alpha / prosody / fedavg dp_sgd level-2 run."""
    return {"audit_id": audit_id, "status": "ok", "target_run": run, "target_corpus": "alpha",
            "feature_set": "prosody", "algorithm": "fedavg", "defense": "dp_sgd",
            "defense_level": 2.0, "mechanism": "dp_sgd", "noise_multiplier": 2.0,
            "clip_norm": 1.0, "sample_rate": 0.5, "steps": 10, "n_clients": 6,
            "clients_per_round": 3, "audited_client": 1, "n_train": 8, "n_canaries": 200,
            "n_guesses": 40, "n_correct": n_correct, "confidence": 0.95, "eps_lb": eps_lb,
            "accountant_epsilon": accountant_epsilon, "run_epsilon": 2.0, "delta": 1e-5,
            "accountant": "rdp", "eps_violation": eps_lb > accountant_epsilon, "fold": fold,
            "seed": 0}  # fmt: skip


def write_audits(store: Store, rows: list[dict]) -> None:
    for r in rows:
        clean = {k: v for k, v in r.items() if k != "target_corpus"}
        store.write_table("audits", schema.table_from_rows([clean], schema.AUDITS),
                          partition=("target_corpus", r["target_corpus"]), name=r["audit_id"])  # fmt: skip


def _write(store: Store, out: FixtureStore) -> None:
    by_corpus: dict[str, list[dict]] = {}
    for r in out.runs:
        by_corpus.setdefault(r["corpus"], []).append(r)
    for corpus, rows in by_corpus.items():
        for r in rows:  # one file per run, as the runner writes them
            row = {k: v for k, v in r.items() if k != "corpus"}
            store.write_table("runs", schema.table_from_rows([row], schema.RUNS),
                              partition=("corpus", corpus), name=r["run_id"])  # fmt: skip
    evals: dict[str, list[dict]] = {}
    for r in out.attacks:
        evals.setdefault(r["eval_id"], []).append(r)
    for eid, rows in evals.items():
        corpus = rows[0]["target_corpus"]
        clean = [{k: v for k, v in r.items() if k != "target_corpus"} for r in rows]
        store.write_table("attacks", schema.table_from_rows(clean, schema.ATTACKS),
                          partition=("target_corpus", corpus), name=eid)  # fmt: skip
    for rid, rows in out.rounds.items():
        store.write_table("rounds", schema.table_from_rows(rows, schema.ROUNDS),
                          partition=("run_id", rid), name="rounds")  # fmt: skip
    for eid, rows in out.predictions.items():
        store.write_table("predictions", schema.table_from_rows(rows, schema.PREDICTIONS),
                          partition=("eval_id", eid), name="predictions")  # fmt: skip
    write_audits(store, out.audits)
    store.write_json("sweep.json", json.loads(json.dumps(SWEEP)))
