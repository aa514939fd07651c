"""Attacks on runs under secure aggregation, each with the threat model it assumes.

The target server sees, per round, only the aggregate A_r of its cohort, N_r, the round and
the cohort size k (sergrad.fl.secagg). Two attacks, both trained on shadow runs that ran the
same FL training under secure aggregation with the same cohort size and sampling (the
attacker knows the protocol; the shadow clients' attributes are its public labels):

- `cohort_composition` (threat model `secagg_aggregate`: an honest-but-curious server,
  sampling it does not control): regress the cohort's attribute fraction (e.g. the fraction
  of `F` clients) from A_r. Metrics: MAE against the predict-the-shadow-mean baseline's MAE,
  Spearman with a 95% bootstrap interval over rounds and a one-sided permutation p-value
  (fractions permuted over rounds). With k = 1 the fraction is 0 or 1 and the regression is
  a per-client classifier: its UAR at threshold 0.5 is stored in `uar`.
- `per_client` on differences (threat model `secagg_controlled_sampling`: a server that
  chooses the cohorts, `sampling: adversarial_differencing | adversarial_same_round`): each
  pair of aggregates (S + {i}, S) gives (N_a A_a - N_b A_b) / (N_a - N_b), client i's update
  (approximately across rounds, exactly within one round); a classifier
  trained on shadow differences predicts client i's attribute. Scored per difference
  (speaker-level bootstrap) at the shadow (0.5) and prior (shadow share) thresholds, as the
  per-update attack is; predictions stored for the verdict machinery.

The model is ridge regression in its dual form on element-wise normalised layer vectors
(centred on the shadow mean, globally or of the same round, and scaled by the shadow std),
centering and penalty chosen by leave-one-shadow-run-out MAE.
Target attributes are read only for scoring.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

from sergrad import schema
from sergrad.attack.metrics import binary_metrics, threshold_for
from sergrad.attack.secagg_model import composition_metrics, fit_ridge
from sergrad.config import canonical_json, content_hash
from sergrad.errors import ConfigError, DataError
from sergrad.fl import secagg as S
from sergrad.fl.harvest_read import iter_update_batches, read_update_meta
from sergrad.fl.records import now_iso, read_clients, read_cohorts, read_run_row
from sergrad.store import Store

# the attacks columns only these attacks fill (null in the per-update attack's rows)
NO_REGRESSION_COLUMNS = {c: None for c in ("cohort_size", "spearman_ci_low", "spearman_ci_high",
                                           "p_value")}  # fmt: skip
CALIBRATIONS = ("shadow", "prior")  # legitimate thresholds of the differencing attack


@dataclass(frozen=True)
class SecAggAttackConfig:
    target_run: str = ""
    shadow_runs: tuple[str, ...] = ()
    layers: tuple[str, ...] = ("fc1",)
    attribute: str = "gender"  # a column of the clients side table
    positive: str = "F"  # the value whose fraction in the cohort is regressed
    bootstrap: int = 1000
    permutations: int = 1000
    seed: int = 0


def secagg_eval_id(config: SecAggAttackConfig) -> str:
    return content_hash({"secagg_attack": config})


@dataclass
class RunView:
    """One run under secure aggregation: per aggregate the server obtained (harvest order) its
    round, session, N and layer vectors, and (ground truth, from the side tables) the
    cohort's clients and their labels."""

    run_id: str
    rounds: np.ndarray  # [A]
    session: np.ndarray  # [A] 0; 1 = adversarial_same_round's aggregate over S
    n: np.ndarray  # [A] N of each aggregate
    layers: dict[str, np.ndarray]  # layer -> float64 [A, numel]
    cohorts: list[dict]  # [A] schema.COHORTS rows
    labels: dict[int, float]  # client id -> 1.0 (positive) | 0.0 | nan (unknown)
    speakers: dict[int, str]
    values: dict[int, object]  # client id -> the attribute's value (None: unknown)

    @property
    def main(self) -> np.ndarray:
        """Each round's cohort aggregate (session 0): what the composition attack scores."""
        return self.session == 0

    def fraction(self) -> np.ndarray:
        out = []
        for c in self.cohorts:
            ys = [self.labels.get(int(i), np.nan) for i in c["client_ids"]]
            ys = [y for y in ys if y == y]
            out.append(float(np.mean(ys)) if ys else np.nan)
        return np.array(out)

    def differences(self) -> tuple[dict[str, np.ndarray], np.ndarray, list[int]]:
        """(layer -> [P, numel] isolated updates (N_a A_a - N_b A_b) / (N_a - N_b), [P] round
        of S + {i}, client i per pair) from the server's own schedule."""
        pairs = S.differencing_pairs(self.cohorts)
        out = {}
        for layer, x in self.layers.items():
            rows = [x[a] if b is None else
                    (self.n[a] * x[a] - self.n[b] * x[b]) / (self.n[a] - self.n[b])
                    for a, b, _ in pairs]  # fmt: skip
            out[layer] = np.stack(rows) if rows else np.zeros((0, x.shape[1]))
        return out, self.rounds[[a for a, _, _ in pairs]], [i for _, _, i in pairs]


def load_run(store: Store, run_id: str, config: SecAggAttackConfig, *, role: str) -> RunView:
    cohorts = read_cohorts(store, run_id)
    if cohorts is None:
        raise DataError(
            f"{role} run {run_id!r}: no cohorts table; not a secure_aggregation run "
            f"(attacks under secure aggregation need shadow and target runs that used it)"
        )
    meta = read_update_meta(store, run_id)
    params = {
        layer: [p for p in meta.param_names if p.split(".")[0] == layer] for layer in config.layers
    }
    missing = [layer for layer, ps in params.items() if not ps]
    if missing:
        raise ConfigError(
            f"layers: {missing[0]!r} was not harvested in {role} run {run_id!r}; "
            f"harvested: {', '.join(meta.param_names)}"
        )
    wanted = [p for ps in params.values() for p in ps]
    keys, arrays = [], {p: [] for p in wanted}
    for b in iter_update_batches(store, run_id, params=wanted, batch_rows=64):
        keys += b.keys.to_pylist()
        for p in wanted:
            arrays[p].append(b.arrays[p].astype(np.float64))
    sessions = {S.AGGREGATE_CLIENT: 0, S.SECOND_SESSION_CLIENT: 1}
    if any(k["client_id"] not in sessions for k in keys):
        raise DataError(f"{role} run {run_id!r}: the harvest holds individual updates")
    by_key = {(int(c["round"]), int(c.get("session") or 0)): c for c in cohorts}
    rounds = np.array([k["round"] for k in keys])
    session = np.array([sessions[k["client_id"]] for k in keys])
    layers = {
        layer: np.concatenate([np.concatenate(arrays[p]) for p in ps], axis=1)
        for layer, ps in params.items()
    }
    clients = read_clients(store, run_id) or []
    values = _client_values(store, run_id, config.attribute) if clients else {}
    labels = {c: np.nan if v is None else float(v == config.positive) for c, v in values.items()}
    return RunView(run_id=run_id, rounds=rounds, session=session,
                   n=np.array([k["n_samples"] for k in keys], float), layers=layers,
                   cohorts=[by_key[(int(r), int(e))] for r, e in zip(rounds, session)],
                   labels=labels, values=values,
                   speakers={int(c["client_id"]): c["speaker_id"] for c in clients})  # fmt: skip


def _client_values(store: Store, run_id: str, name: str) -> dict[int, object]:
    """{client id: the attribute's value} of a run: its clients side table, else the
    speakers' utterance-table columns (`attack.labels`, the one owner of that join)."""
    from sergrad.attack.labels import client_values
    from sergrad.attributes import resolve_attribute

    # declared attributes first; any other name is taken as a speaker column
    return client_values(store, run_id, resolve_attribute(name, columns=(name,)))[0]


# --- one evaluation ----------------------------------------------------------------------------
def run_secagg_attack(config: SecAggAttackConfig, store: Store) -> list[dict]:
    """Both attacks (the differencing one where the target's server chose the cohorts) on
    one target run; writes `attacks` (and `predictions` for differencing); returns the rows."""
    if not config.target_run or not config.shadow_runs:
        raise ConfigError("secure-aggregation attack: target_run and shadow_runs are required")
    if config.target_run in config.shadow_runs:
        raise ConfigError(f"shadow_runs: contains the target run {config.target_run!r}")
    eid = secagg_eval_id(config)
    target_row = read_run_row(store, config.target_run)
    if target_row is None:
        raise DataError(f"target run {config.target_run!r}: no row in {store.uri}/runs")
    corpus = target_row[schema.RUNS_PARTITION]
    t0 = time.perf_counter()
    shadow = [load_run(store, r, config, role="shadow") for r in config.shadow_runs]
    target = load_run(store, config.target_run, config, role="target")
    sizes = {int(c["cohort_size"]) for run in [*shadow, target] for c in run.cohorts}
    k = max(sizes)  # adversarial_differencing also aggregates k - 1
    rng = np.random.default_rng([config.seed, 7])
    rows, preds = [], []
    classes = _classes(config, shadow)
    group = np.concatenate([np.full(r.main.sum(), i) for i, r in enumerate(shadow)])
    y_shadow = np.concatenate([r.fraction()[r.main] for r in shadow])
    y_target = target.fraction()[target.main]  # scoring only
    baseline = float(np.nanmean(y_shadow))
    for layer in config.layers:
        model = fit_ridge(np.concatenate([r.layers[layer][r.main] for r in shadow]), y_shadow,
                          group, np.concatenate([r.rounds[r.main] for r in shadow]))  # fmt: skip
        pred = model.predict(target.layers[layer][target.main], target.rounds[target.main])
        m = composition_metrics(y_target, pred, baseline, n_boot=config.bootstrap,
                                n_perm=config.permutations, rng=rng)  # fmt: skip
        rows.append({"layer": layer, "protocol": "cohort_composition", "n_avg": 1,
                     "threat_model": S.THREAT_AGGREGATE, "calibration": "shadow",
                     "threshold": 0.5 if m.get("uar") is not None else None,
                     "n_clients": len(target.labels), "degenerate": False,
                     "note": f"regress fraction {config.attribute}={config.positive} of the "
                             f"cohort; ridge alpha {model.alpha:g}, {model.centering} centering; shadow mean {baseline:.3f}",
                     **m})  # fmt: skip
        rows += _differencing(config, shadow, target, layer, rng=rng, preds=preds,
                              classes=classes)  # fmt: skip
    common = {"eval_id": eid, "status": "ok", "error": None, "attack": "ridge",
              "attribute": config.attribute, "attribute_kind": "binary",
              "adaptive": True, "target_run": config.target_run,
              "shadow_runs": json.dumps(list(config.shadow_runs)),
              "feature_set": target_row.get("feature_set"),
              "algorithm": target_row.get("algorithm"), "defense": target_row.get("defense"),
              "defense_level": target_row.get("defense_level"), "posthoc": "none",
              "cohort_size": k, "seed": config.seed, "wall_s": time.perf_counter() - t0,
              "config": canonical_json(config), "created_at": now_iso()}  # fmt: skip
    rows = [{**common, **r} for r in rows]
    if preds:
        store.write_table("predictions", schema.table_from_rows(preds, schema.PREDICTIONS),
                          partition=(schema.PREDICTIONS_PARTITION, eid), name="predictions")  # fmt: skip
    store.write_table("attacks", schema.table_from_rows(rows, schema.ATTACKS),
                      partition=(schema.ATTACKS_PARTITION, corpus), name=eid)  # fmt: skip
    return [{**r, "target_corpus": corpus} for r in rows]


def _classes(config: SecAggAttackConfig, shadow: list[RunView]) -> tuple[str, str]:
    """(positive, the other value) of a binary attribute, in the order the binary attack
    scores (classes[1] = 1: M for gender), from the shadow clients' values."""
    seen = {v for run in shadow for v in run.values.values() if v is not None}
    other = sorted(str(v) for v in seen - {config.positive})
    if len(other) != 1 or config.positive not in seen:
        raise DataError(
            f"attribute {config.attribute!r}: the shadow clients hold {sorted(map(str, seen))}; "
            f"the secure-aggregation attacks need {config.positive!r} and one other value"
        )
    return config.positive, other[0]


def _differencing(config, shadow, target, layer, *, rng, preds: list, classes) -> list[dict]:
    """The per-client attack on (S + {i}) - S differences, when the target server chose the
    cohorts; [] otherwise. Predictions: p_male = P(classes[1]) (the other value: M)."""
    t_diff, t_round, t_client = target.differences()
    if not t_client:
        return []
    xs, ys, gs, rs = [], [], [], []
    for i, run in enumerate(shadow):
        d, rounds, cl = run.differences()
        xs.append(d[layer])
        ys += [run.labels.get(c, np.nan) for c in cl]
        gs += [i] * len(cl)
        rs.append(rounds)
    if not gs:
        raise DataError("shadow runs hold no differencing pairs (sampling must match the target)")
    model = fit_ridge(np.concatenate(xs), np.array(ys), np.array(gs), np.concatenate(rs))
    p_pos = np.clip(model.predict(t_diff[layer], t_round), 0.0, 1.0)
    y = np.array([target.labels.get(c, np.nan) for c in t_client])
    ok = ~np.isnan(y)
    speakers = np.array([target.speakers.get(c, str(c)) for c in t_client], dtype=object)
    # binary_metrics scores "positive = 1" as in P(male): here 1 = NOT config.positive
    y_neg, p_neg = (1 - y[ok]).astype(np.int64), 1 - p_pos[ok]
    share = 1.0 - float(np.nanmean(np.array(ys)))  # shadow share of "not positive" clients
    out = []
    for cal in CALIBRATIONS:  # the threshold 0.5 (shadow) and the shadow share (prior)
        t = threshold_for(cal, y_true=y_neg, score=p_neg, share_positive=share)
        m = binary_metrics(y_neg, p_neg, groups=speakers[ok], n_boot=config.bootstrap, rng=rng,
                           threshold=t, clients=np.array(t_client)[ok])  # fmt: skip
        m["note"] = "; ".join(filter(None, [
            f"differences of aggregates (S+{{i}}, S); ridge alpha {model.alpha:g}, "
            f"{model.centering} centering", m["note"]]))  # fmt: skip
        out.append({"layer": layer, "protocol": "per_client", "n_avg": 1, "calibration": cal,
                    "threat_model": S.THREAT_CONTROLLED, "n_classes": 2, "chance": 0.5,
                    "classes": json.dumps(list(classes)), **m})  # fmt: skip
    for r, c, p, spk in zip(t_round, t_client, p_pos, speakers):
        lab = target.labels.get(c, np.nan)
        label = None if lab != lab else classes[0] if lab == 1 else classes[1]
        preds.append({"layer": layer, "protocol": "per_client", "n_avg": 1, "trial": 0,
                      "round": int(r), "client_id": int(c), "speaker_id": spk,
                      "attribute": config.attribute, "label": label, "p_male": float(1 - p),
                      "gender": label if config.attribute == "gender" else None})  # fmt: skip
    return out
