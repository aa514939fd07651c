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
  (speaker-level bootstrap), predictions stored for the verdict machinery.

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
from sergrad.attack.metrics import binary_metrics
from sergrad.config import canonical_json, content_hash
from sergrad.errors import ConfigError, DataError
from sergrad.fl import secagg as S
from sergrad.fl.harvest_read import iter_update_batches, read_update_meta
from sergrad.fl.records import now_iso, read_clients, read_cohorts, read_run_row
from sergrad.store import Store

# the attacks columns only these attacks fill (null in the per-update attack's rows)
NO_REGRESSION_COLUMNS = {c: None for c in ("cohort_size", "mae", "mae_baseline", "spearman",
                                           "spearman_ci_low", "spearman_ci_high", "p_value")}  # fmt: skip
ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # x mean(diag K)


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
    if clients and config.attribute not in clients[0]:
        raise ConfigError(
            f"attribute: {config.attribute!r} is not a column of the clients table of "
            f"{role} run {run_id!r}; columns: {', '.join(clients[0])}"
        )
    labels = {
        int(c["client_id"]): (
            np.nan if c[config.attribute] is None else float(c[config.attribute] == config.positive)
        )
        for c in clients
    }
    return RunView(run_id=run_id, rounds=rounds, session=session,
                   n=np.array([k["n_samples"] for k in keys], float), layers=layers,
                   cohorts=[by_key[(int(r), int(e))] for r, e in zip(rounds, session)],
                   labels=labels,
                   speakers={int(c["client_id"]): c["speaker_id"] for c in clients})  # fmt: skip


# --- the model: dual ridge on shadow-normalised vectors ---------------------------------------
CENTERINGS = ("global", "round")  # subtract the shadow mean over all rows | of the same round


@dataclass
class Ridge:
    centering: str
    means: dict  # round -> shadow mean [p] ("round"), or {None: mean} ("global")
    std: np.ndarray
    z: np.ndarray  # normalised shadow rows [n, p]
    coef: np.ndarray  # dual coefficients [n]
    intercept: float
    alpha: float

    def predict(self, x: np.ndarray, rounds: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0)
        zt = _centred(x, rounds, self.means, self.centering) / self.std
        return zt @ self.z.T @ self.coef / self.z.shape[1] + self.intercept


def _round_means(x: np.ndarray, rounds: np.ndarray, centering: str) -> dict:
    overall = x.mean(0)
    if centering == "global":
        return {None: overall}
    return {None: overall, **{int(r): x[rounds == r].mean(0) for r in np.unique(rounds)}}


def _centred(x, rounds, means: dict, centering: str) -> np.ndarray:
    if centering == "global":
        return x - means[None]
    return x - np.stack([means.get(int(r), means[None]) for r in rounds])


def fit_ridge(x: np.ndarray, y: np.ndarray, groups: np.ndarray, rounds: np.ndarray) -> Ridge:
    """Dual ridge y ~ z w. z: each element centred (on the shadow mean of all rows, or of the
    same FL round: shadow runs share the target's init and schedule, so this removes the
    round's common direction) and scaled by its shadow std. The centering and the penalty
    (ALPHAS x mean diag K) are chosen by leave-one-group-out MAE (groups = shadow runs;
    with one group: global centering, the middle penalty). Rows with an unknown label drop."""
    keep = ~np.isnan(y)
    x, y, groups, rounds = x[keep], y[keep], groups[keep], rounds[keep]
    if len(y) < 3:
        raise DataError(f"{len(y)} labelled shadow aggregates: too few to train an attack")
    uniq = np.unique(groups)
    best, best_err = ("global", ALPHAS[len(ALPHAS) // 2]), np.inf
    for centering in CENTERINGS if len(uniq) >= 2 else ("global",):
        z, _, _ = _normalised(x, rounds, centering)
        k = z @ z.T / z.shape[1]  # [n, n]
        scale = float(np.mean(np.diag(k))) or 1.0
        for alpha in ALPHAS if len(uniq) >= 2 else ():
            err = 0.0
            for g in uniq:  # leave one shadow run out; its rows also leave the round means
                tr, te = np.flatnonzero(groups != g), np.flatnonzero(groups == g)
                zt, _, _ = _normalised(x[tr], rounds[tr], centering, apply=(x[te], rounds[te]))
                ztr = zt[: len(tr)]
                kk = ztr @ ztr.T / z.shape[1] + alpha * scale * np.eye(len(tr))
                b = float(y[tr].mean())
                c = np.linalg.solve(kk, y[tr] - b)
                err += float(np.abs(zt[len(tr) :] @ ztr.T @ c / z.shape[1] + b - y[te]).sum())
            if err < best_err:
                best, best_err = (centering, alpha), err
    centering, alpha = best
    z, means, std = _normalised(x, rounds, centering)
    k = z @ z.T / z.shape[1]
    scale = float(np.mean(np.diag(k))) or 1.0
    b = float(y.mean())
    c = np.linalg.solve(k + alpha * scale * np.eye(len(y)), y - b)
    return Ridge(centering=centering, means=means, std=std, z=z, coef=c, intercept=b, alpha=alpha)


def _normalised(x, rounds, centering, *, apply=None):
    """(rows of x [and of `apply`'s rows after them] centred and scaled by x's statistics,
    the means, the std)."""
    means = _round_means(x, rounds, centering)
    cx = _centred(x, rounds, means, centering)
    std = cx.std(0)
    std = np.where(std > 1e-12, std, 1.0)
    z = cx / std
    if apply is not None:
        z = np.concatenate([z, _centred(apply[0], apply[1], means, centering) / std])
    return z, means, std


# --- statistics --------------------------------------------------------------------------------
def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def composition_metrics(y, pred, baseline: float, *, n_boot: int, n_perm: int, rng) -> dict:
    """MAE vs the shadow-mean baseline, Spearman with a bootstrap interval over aggregates and
    a one-sided permutation p-value (H0: no association)."""
    ok = ~np.isnan(y)
    y, pred = y[ok], np.clip(pred[ok], 0.0, 1.0)
    rho = spearman(y, pred)
    boots = []
    for _ in range(n_boot if rho == rho else 0):
        i = rng.integers(0, len(y), len(y))
        r = spearman(y[i], pred[i])
        if r == r:
            boots.append(r)
    lo, hi = np.quantile(boots, [0.025, 0.975]) if boots else (np.nan, np.nan)
    hits = sum(spearman(rng.permutation(y), pred) >= rho - 1e-12 for _ in range(n_perm))
    out = {
        "mae": float(np.mean(np.abs(pred - y))) if len(y) else np.nan,
        "mae_baseline": float(np.mean(np.abs(baseline - y))) if len(y) else np.nan,
        "spearman": rho, "spearman_ci_low": float(lo), "spearman_ci_high": float(hi),
        "p_value": (1 + hits) / (1 + n_perm) if rho == rho and n_perm else None,
        "n_scored": int(len(y)),
    }  # fmt: skip
    if len(y) and set(np.unique(y)) <= {0.0, 1.0}:  # cohorts of one: a per-client classifier
        hit = (pred >= 0.5) == (y == 1)
        recalls = [float(hit[y == v].mean()) for v in (0.0, 1.0) if (y == v).any()]
        out["uar"] = float(np.mean(recalls)) if len(recalls) == 2 else None
    return out


# --- one evaluation ----------------------------------------------------------------------------
def run_secagg_attack(config: SecAggAttackConfig, store: Store) -> list[dict]:
    """Both attacks (the differencing one where the target's server chose the cohorts) on
    one target run; writes `attacks` (and `predictions` for differencing); returns the rows."""
    if not config.target_run or not config.shadow_runs:
        raise ConfigError("secure-aggregation attack: target_run and shadow_runs are required")
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
        rows += _differencing(config, shadow, target, layer, rng=rng, preds=preds)
    common = {"eval_id": eid, "status": "ok", "error": None, "attack": "ridge",
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


def _differencing(config, shadow, target, layer, *, rng, preds: list) -> list[dict]:
    """The per-client attack on (S + {i}) - S differences, when the target server chose the
    cohorts; [] otherwise. Predictions are P(not positive) = P(male) for gender."""
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
    m = binary_metrics((1 - y[ok]).astype(np.int64), 1 - p_pos[ok], groups=speakers[ok],
                       n_boot=config.bootstrap, rng=rng, threshold=0.5,
                       clients=np.array(t_client)[ok])  # fmt: skip
    if config.attribute == "gender":
        for r, c, p, spk in zip(t_round, t_client, p_pos, speakers):
            lab = target.labels.get(c, np.nan)
            preds.append({"layer": layer, "protocol": "per_client", "n_avg": 1, "trial": 0,
                          "round": int(r), "client_id": int(c), "speaker_id": spk,
                          "gender": None if lab != lab else ("F" if lab == 1 else "M"),
                          "p_male": float(1 - p)})  # fmt: skip
    m["note"] = "; ".join(filter(None, [
        f"differences of rounds (S+{{i}}, S); ridge alpha {model.alpha:g}, "
        f"{model.centering} centering", m["note"]]))  # fmt: skip
    return [{"layer": layer, "protocol": "per_client", "n_avg": 1, "calibration": "shadow",
             "threat_model": S.THREAT_CONTROLLED, **m}]  # fmt: skip
