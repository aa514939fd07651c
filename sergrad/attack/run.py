"""`run_attack`: one attack evaluation, from harvested updates to `attacks` and `predictions`.

Reads like the method (METHOD.md section 4): the shadow runs' updates, labelled with their
clients' attribute (gender by default; `sergrad.attack.labels` for any other), are
normalised element-wise with shadow statistics; one attack model per layer group is trained
with a speaker-level validation split; the target run's updates (after any post-hoc defense)
are scored per update and per client (averages of n updates), per layer and fused;
baselines (majority class, metadata-only attacker) are scored beside them. Binary attributes
(gender) are scored by `metrics.binary_metrics`, categorical and numeric ones by
`sergrad.attack.scoring`; every row names its `attribute` and, for classes, the per-class
recall and counts.

Outputs (written atomically; `predictions` first, the `attacks` file last as the completion
marker; an evaluation whose `attacks` file exists is skipped and its rows returned):
    attacks/target_corpus=<corpus>/<eval_id>.parquet     schema.ATTACKS
    predictions/eval_id=<eval_id>/predictions.parquet    schema.PREDICTIONS
"""

from __future__ import annotations

import json
import tempfile
import time
import zlib
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq
import torch

from sergrad import schema
from sergrad.attack import pipeline, scoring, source
from sergrad.attack.config import AttackConfig, eval_id
from sergrad.attack.empirical_privacy import (
    NO_PRIVACY_COLUMNS,
    local_noise,
    privacy_columns,
    warn_violations,
)
from sergrad.attack.labels import AttributeLabels, known, strata
from sergrad.attack.metrics import CALIBRATIONS, binary_metrics, threshold_for
from sergrad.attack.protocols import (
    baseline_outputs,
    client_rows,
    client_selections,
    fuse,
    majority_baseline,
    metadata_features,
    no_updates_model,
    selection_note,
    vote,
)
from sergrad.attack.secagg import NO_REGRESSION_COLUMNS
from sergrad.attack.target import Target
from sergrad.attack.train import split_by_speaker
from sergrad.config import canonical_json
from sergrad.errors import ConfigError, DataError
from sergrad.fl.records import now_iso
from sergrad.fl.secagg import THREAT_INDIVIDUAL
from sergrad.store import Store

PROTOCOLS = ("per_update", "per_client", "per_client_vote")
CLIENT_PROTOCOLS = ("per_client", "per_client_vote")


def layer_layout(
    store: Store, config: AttackConfig, *, metas: dict | None = None
) -> tuple[dict[str, list[str]], dict[str, tuple[int, ...]], list[str]]:
    """({layer: params}, {param: shape}, all params) of an evaluation, checked compatible
    across its target and shadow runs. `metas` caches run metadata across evaluations."""
    metas = {} if metas is None else metas

    def meta(run: str, role: str):
        if run not in metas:
            metas[run] = source.run_meta(store, run, role=role)
        return metas[run]

    runs = [meta(config.target_run, "target")]
    runs += [meta(r, "shadow") for r in config.shadow_runs]
    source.check_sketch(runs, config.model.name)
    groups = source.check_compatible(runs, config.layers)
    shapes = {p: tuple(runs[0].param_shapes[p]) for ps in groups.values() for p in ps}
    return groups, shapes, [p for ps in groups.values() for p in ps]


def run_attack(config: AttackConfig, store: Store, *, progress: bool = False) -> list[dict]:
    """Evaluate `config` against `store`; returns the `attacks` rows (with target_corpus)."""
    _validate(config)
    eid = eval_id(config)
    target_row = source.run_row(store, config.target_run)
    if target_row is None:
        raise DataError(f"target run {config.target_run!r}: no row in {store.uri}/runs")
    corpus = target_row[schema.RUNS_PARTITION]
    part = (schema.ATTACKS_PARTITION, corpus)
    if store.exists("attacks", partition=part, name=eid):
        with store.open_input(store.file_path("attacks", partition=part, name=eid)) as f:
            return [{**r, "target_corpus": corpus} for r in pq.read_table(f).to_pylist()]
    t0 = time.perf_counter()
    groups, shapes, params = layer_layout(store, config)  # layer -> params, shapes, params
    posthoc, posthoc_name, posthoc_level = _posthoc(config)
    attribute = _attribute(store, config, corpus)  # None: gender, its own (legacy) path

    shadow = pipeline.load_shadow(store, config, params, shapes=shapes, posthoc=posthoc,
                                  attribute=attribute)  # fmt: skip
    jobs = [(ps, config.model) for ps in groups.values()]  # one shadow pass for all layers
    pipeline.featurize_shadow(store, config, shadow, jobs, shapes=shapes, posthoc=posthoc)
    split = split_by_speaker(shadow.keys.speaker_groups(), strata(shadow.target, shadow.labels),
                             val_fraction=config.model.val_fraction,
                             rng=np.random.default_rng([config.seed, 2]))  # fmt: skip
    results: list[dict] = []
    preds: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="sergrad-attack-") as tmp:
        target = pipeline.load_target(store, config, groups, shadow, shapes=shapes,
                                      posthoc=posthoc, tmp=tmp, attribute=attribute)  # fmt: skip
        scored = known(shadow.target, target.labels)
        sels = _selections(config, target)
        ctx = _ScoreContext.of(config, shadow, target_row)
        # averaged-update predictions are only needed by the per_client protocol
        averaged = sels if "per_client" in config.protocols else {}
        probs: dict[str, tuple[np.ndarray, dict]] = {}
        for li, (layer, ps) in enumerate(groups.items()):
            tl = time.perf_counter()
            gen = torch.Generator().manual_seed(
                int(np.random.default_rng([config.seed, 1, li]).integers(2**62))
            )
            model, fit = pipeline.fit_layer(store, config, shadow, ps, shapes=shapes,
                                            posthoc=posthoc, split=split, generator=gen,
                                            tmp=tmp, name=str(li), progress=progress)  # fmt: skip
            probs[layer] = pipeline.score_layer(model, target.rows[layer], ps, shapes=shapes,
                                                selections=averaged, device=config.device)  # fmt: skip
            note = (f"train: val_uar={fit.best_val_uar:.3f} best_epoch={fit.best_epoch} "
                    f"epochs={fit.epochs_run} stopped={fit.stopped} n_train={fit.n_train} "
                    f"n_val={fit.n_val} {fit.updates_per_s:.0f} updates/s"
                    + (f" (fit reused from {fit.reused})" if fit.reused else ""))  # fmt: skip
            results += _score(ctx, layer, probs[layer], target, sels, scored, note=note,
                              wall=time.perf_counter() - tl, attack=config.model.name)  # fmt: skip
        if config.fusion and len(groups) > 1:
            weights = {
                layer: sum(int(np.prod(shapes[p])) for p in ps) for layer, ps in groups.items()
            }
            pu = fuse({k: v[0] for k, v in probs.items()}, weights)
            pc = {n: fuse({k: v[1][n] for k, v in probs.items()}, weights) for n in averaged}
            probs["fusion"] = (pu, pc)
            results += _score(ctx, "fusion", probs["fusion"], target, sels, scored,
                              note=f"weights={json.dumps(weights)}",
                              wall=time.perf_counter() - t0, attack=config.model.name)  # fmt: skip
        results += _baselines(ctx, shadow, target, sels, scored)
        preds = _prediction_rows(probs, target, sels, config.protocols, shadow.target,
                                 attribute)  # fmt: skip
    wall = time.perf_counter() - t0
    common = {"eval_id": eid, "status": "ok", "error": None, "adaptive": config.adaptive,
              "target_run": config.target_run, "shadow_runs": json.dumps(list(config.shadow_runs)),
              "feature_set": target_row.get("feature_set"), "algorithm": target_row.get("algorithm"),
              "defense": target_row.get("defense"), "defense_level": target_row.get("defense_level"),
              "posthoc": posthoc_name, "posthoc_level": posthoc_level, "seed": config.seed,
              "threat_model": THREAT_INDIVIDUAL, **NO_REGRESSION_COLUMNS,
              "config": canonical_json(config), "created_at": now_iso(),
              "attribute": shadow.target.attribute, "attribute_kind": shadow.target.kind}  # fmt: skip
    rows = [{**common, "wall_s": wall, **r} for r in results]
    warn_violations(rows)
    store.write_table("predictions", schema.table_from_rows(preds, schema.PREDICTIONS),
                      partition=(schema.PREDICTIONS_PARTITION, eid), name="predictions")  # fmt: skip
    store.write_table("attacks", schema.table_from_rows(rows, schema.ATTACKS), partition=part,
                      name=eid)  # fmt: skip
    return [{**r, "target_corpus": corpus} for r in rows]


def _attribute(store: Store, config: AttackConfig, corpus: str) -> AttributeLabels | None:
    """The attacked attribute's labels (None for gender, which keeps the gender-only path);
    MissingClassError (exit 2) when shadow or target speakers lack one of its classes."""
    if config.attribute == "gender":
        return None
    corpora = {config.target_run: corpus}
    for r in config.shadow_runs:
        row = source.run_row(store, r)
        corpora[r] = row[schema.RUNS_PARTITION] if row else "?"
    return AttributeLabels.of(store, config, corpora=corpora)


def _validate(config: AttackConfig) -> None:
    if not config.target_run:
        raise ConfigError("target_run: missing (run id of the private FL run)")
    if not config.shadow_runs:
        raise ConfigError("shadow_runs: empty (run ids of the attacker's shadow FL runs)")
    if config.target_run in config.shadow_runs:
        raise ConfigError(f"shadow_runs: contains the target run {config.target_run!r}")
    bad = [p for p in config.protocols if p not in PROTOCOLS]
    if bad:
        raise ConfigError(f"protocols: unknown {bad}; valid: {', '.join(PROTOCOLS)}")
    if not config.layers:
        raise ConfigError("layers: empty; e.g. [fc1]")
    bad = [c for c in config.calibrations if c not in CALIBRATIONS]
    if bad or not config.calibrations:
        raise ConfigError(f"calibrations: {bad or 'empty'}; valid: {', '.join(CALIBRATIONS)}")
    if config.attribute == "age_group":
        from sergrad.attributes import AgeBins

        AgeBins(tuple(config.age_bins))  # ConfigError naming the bins
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {config.device!r} requested but CUDA is not available")


def _posthoc(config: AttackConfig):
    """(callable or None, label, level) for the configured post-hoc defenses, applied in order."""
    active = [c for c in config.posthoc if c.name != "none"]
    if not active:
        return None, "none", None
    from sergrad.defenses.posthoc import create_posthoc

    fns = [create_posthoc(c) for c in active]

    def apply(arrays, *, param_shapes, rng):
        for fn in fns:
            arrays = fn(arrays, param_shapes=param_shapes,
                        rng=np.random.default_rng(int(rng.integers(0, 2**63 - 1))))  # fmt: skip
        return arrays

    level = getattr(fns[-1], "level", None)
    return apply, "+".join(c.name for c in active), (None if level is None else float(level))


def _selections(config: AttackConfig, target: pipeline.TargetSet) -> dict[int, list]:
    if not any(p in config.protocols for p in CLIENT_PROTOCOLS):
        return {}
    by_client = client_rows(np.asarray(target.keys.client_id))
    out = {}
    for n in config.n_avg:
        out[n], _ = client_selections(by_client, n=n, trials=config.trials, seed=config.seed)
    return out


def _client_probs(protocol: str, p_update, p_client: dict, n: int, sel: list) -> np.ndarray:
    """P(male) per selection: of the averaged update (per_client) or the mean of the
    updates' own predictions (per_client_vote)."""
    return p_client[n] if protocol == "per_client" else vote(p_update, sel)


def _client_labels(target: pipeline.TargetSet, sels: list) -> np.ndarray:
    return np.array([target.labels[s.rows[0]] for s in sels], dtype=target.labels.dtype)


@dataclass(frozen=True)
class _ScoreContext:
    """What scoring needs besides the predictions: the config, the shadow population's male
    shares (for the prior calibration) and the target's privacy facts (for eps_lb)."""

    config: AttackConfig
    share_updates: float  # binary: class-1 (male) share of shadow updates
    share_clients: float  # binary: class-1 (male) share of shadow clients (speakers)
    delta: float  # delta eps_lb is stated at: the target run's, else 0
    local_noise: float | None  # user_dp local noise multiplier of the target run, if any
    target: Target = pipeline.GENDER
    priors_updates: np.ndarray | None = None  # categorical: shadow class shares [C]
    priors_clients: np.ndarray | None = None
    shadow_mean: float = float("nan")  # numeric: the baseline's prediction

    @classmethod
    def of(cls, config: AttackConfig, shadow, target_row: dict) -> _ScoreContext:
        t = shadow.target
        ok = known(t, shadow.labels)
        labels = shadow.labels[ok]
        groups = shadow.keys.speaker_groups()[ok]
        _, first = np.unique(groups, return_index=True)
        delta = target_row.get("delta")
        extra = {}
        if t.kind == "categorical":
            c = len(t.classes)
            extra["priors_updates"] = np.bincount(labels, minlength=c) / max(1, len(labels))
            extra["priors_clients"] = np.bincount(labels[first], minlength=c) / max(1, len(first))
        if t.kind == "numeric":
            extra["shadow_mean"] = float(np.mean(labels))
        binary = t.kind == "binary"
        return cls(config=config,
                   share_updates=float(np.mean(labels)) if binary else float("nan"),
                   share_clients=float(np.mean(labels[first])) if binary else float("nan"),
                   delta=float(delta) if delta is not None and delta == delta else 0.0,
                   local_noise=local_noise(target_row.get("config")), target=t,
                   **extra)  # fmt: skip


def _calibrated(ctx: _ScoreContext, y, p, *, groups, clients, unit: str, rng) -> list[dict]:
    """Metrics once per configured calibration (same scores, different decisions); the CI
    resamples `groups` (speakers). `unit`: "updates" | "clients", whose shadow class shares
    the prior calibration uses. A numeric attribute has one row (no decision to calibrate)."""
    t, n_boot = ctx.target, ctx.config.bootstrap
    if t.kind == "numeric":
        m = scoring.numeric_metrics(y, p, shadow_mean=ctx.shadow_mean, groups=groups,
                                    clients=clients, n_boot=n_boot, rng=rng)  # fmt: skip
        return [{**m, **NO_PRIVACY_COLUMNS}]
    out = []
    for cal in ctx.config.calibrations:
        if t.kind == "categorical":
            priors = ctx.priors_updates if unit == "updates" else ctx.priors_clients
            m = scoring.categorical_metrics(y, p, classes=t.classes, calibration=cal,
                                            priors=priors, groups=groups, clients=clients,
                                            n_boot=n_boot, rng=rng)  # fmt: skip
            out.append({**m, **NO_PRIVACY_COLUMNS})
            continue
        share = ctx.share_updates if unit == "updates" else ctx.share_clients
        th = threshold_for(cal, y_true=y, score=p, share_positive=share)
        m = binary_metrics(y, p, groups=groups, n_boot=n_boot, rng=rng,
                           threshold=th, clients=clients)  # fmt: skip
        pred = (np.asarray(p, np.float64) >= th).astype(np.int64)
        out.append({"calibration": cal, **m, **NO_PRIVACY_COLUMNS,
                    **scoring.per_class_columns(t.classes, np.asarray(y), pred)})  # fmt: skip
    return out


def _score(ctx, layer, probs, target, sels, scored, *, note, wall, attack) -> list[dict]:
    """Metric rows of one layer (or fusion / baseline) for the configured protocols and
    calibrations; wall_s is the layer's own fit + scoring time (the whole evaluation's for
    fusion)."""
    config = ctx.config
    p_update, p_client = probs
    rng = np.random.default_rng([config.seed, 3, zlib.crc32(f"{attack}/{layer}".encode())])
    rows = []
    client_ids = np.asarray(target.keys.client_id)
    speakers = np.asarray(target.keys.speaker_groups())
    if "per_update" in config.protocols:
        for m in _calibrated(ctx, target.labels[scored], p_update[scored],
                             groups=speakers[scored], clients=client_ids[scored],
                             unit="updates", rng=rng):  # fmt: skip
            m["note"] = "; ".join(filter(None, [note, m["note"]]))
            rows.append({"attack": attack, "layer": layer, "protocol": "per_update", "n_avg": 1,
                         "wall_s": wall, **m})  # fmt: skip
    by_client = client_rows(client_ids)
    for protocol in (p for p in CLIENT_PROTOCOLS if p in config.protocols):
        for n, sel in sels.items():
            p_sel = _client_probs(protocol, p_update, p_client, n, sel)
            keep = np.array([known(ctx.target, target.labels[s.rows[:1]])[0] for s in sel],
                            dtype=bool)  # fmt: skip
            y = _client_labels(target, sel)[keep]
            kept = [s for s, k in zip(sel, keep) if k]
            sel_note = selection_note([len(r) for r in by_client.values()], n=n,
                                      trials=config.trials)  # fmt: skip
            for m in _calibrated(ctx, y, p_sel[keep],
                                 groups=np.array([speakers[s.rows[0]] for s in kept]),
                                 clients=np.array([s.client for s in kept]),
                                 unit="clients", rng=rng):  # fmt: skip
                m["note"] = "; ".join(filter(None, [sel_note, m["note"]]))
                if m["calibration"] == "shadow" and len(y) and ctx.target.kind == "binary":
                    m.update(privacy_columns(y, p_sel[keep], kept, n=n, threshold=m["threshold"],
                                             delta=ctx.delta, noise=ctx.local_noise))  # fmt: skip
                rows.append({"attack": attack, "layer": layer, "protocol": protocol,
                             "n_avg": n, "wall_s": wall, **m})  # fmt: skip
    return rows


def _baselines(ctx, shadow, target, sels, scored) -> list[dict]:
    """Majority-class and metadata-only attackers, per update and per client."""
    n_t = len(target.labels)
    sx = metadata_features(shadow.keys.n_samples, shadow.keys.round)
    tx = metadata_features(target.keys.n_samples, target.keys.round)
    if ctx.target.kind != "binary":
        ok = known(ctx.target, shadow.labels)
        maj, meta = baseline_outputs(ctx.target, sx[ok], shadow.labels[ok])
        maj_u, meta_u = maj(n_t), meta(tx)
        maj_c = {n: maj(len(sel)) for n, sel in sels.items()}
        meta_c = {n: meta(np.stack([tx[s.rows].mean(axis=0) for s in sel]) if sel else
                          np.zeros((0, 2))) for n, sel in sels.items()}  # fmt: skip
        return _baseline_rows(ctx, target, sels, scored, maj_u, meta_u, maj_c, meta_c)
    ok = known(ctx.target, shadow.labels)  # every row for gender
    sx, sy = sx[ok], shadow.labels[ok]
    maj_u = majority_baseline(sy, n_t)
    meta = no_updates_model(sx, sy)  # fitted once, scores every protocol
    meta_u = meta.predict_proba(tx)[:, 1]
    maj_c, meta_c = {}, {}
    for n, sel in sels.items():
        maj_c[n] = majority_baseline(sy, len(sel))
        avg = np.stack([tx[s.rows].mean(axis=0) for s in sel]) if sel else np.zeros((0, 2))
        meta_c[n] = meta.predict_proba(avg)[:, 1] if sel else np.zeros(0)
    return _baseline_rows(ctx, target, sels, scored, maj_u, meta_u, maj_c, meta_c)


def _baseline_rows(ctx, target, sels, scored, maj_u, meta_u, maj_c, meta_c) -> list[dict]:
    rows = []
    for name, pu, pc in (("majority", maj_u, maj_c), ("no_updates", meta_u, meta_c)):
        for r in _score(ctx, "none", (pu, pc), target, sels, scored, note="",
                        wall=0.0, attack=name):  # fmt: skip
            suffix = "" if r["protocol"] == "per_update" else f"_{r['protocol']}"
            r["protocol"] = f"baseline_{name}{suffix}"
            rows.append(r)
    return rows


def _prediction_rows(
    probs: dict,
    target: pipeline.TargetSet,
    sels: dict,
    protocols: tuple[str, ...],
    t: Target,
    attribute: AttributeLabels | None,
) -> list[dict]:
    """One row per scored update / client selection. Binary: `p_male` = P(classes[1]) (for
    gender, P(male)); categorical: `proba` over the classes; numeric: `prediction`."""
    k = target.keys
    names = attribute.names(k.run, k.client_id) if attribute is not None else k.gender
    truth = [{"attribute": t.attribute, "label": None if t.kind == "numeric" else names[i],
              "value": float(target.labels[i]) if t.kind == "numeric" else None}
             for i in range(len(k))]  # fmt: skip

    def out_cols(p) -> dict:
        if t.kind == "binary":
            return {"p_male": float(p)}
        if t.kind == "categorical":
            return {"proba": [float(x) for x in p]}
        return {"prediction": float(p)}

    out = []
    for layer, (pu, pc) in probs.items():
        for i in range(len(pu)):
            out.append({"layer": layer, "protocol": "per_update", "n_avg": 1, "trial": 0,
                        "round": k.round[i], "client_id": k.client_id[i],
                        "speaker_id": k.speaker_id[i], "gender": k.gender[i],
                        **truth[i], **out_cols(pu[i])})  # fmt: skip
        for protocol in (p for p in CLIENT_PROTOCOLS if p in protocols):
            for n, sel in sels.items():
                p_sel = _client_probs(protocol, pu, pc, n, sel)
                for s, p in zip(sel, p_sel):
                    i = int(s.rows[0])
                    out.append({"layer": layer, "protocol": protocol, "n_avg": n,
                                "trial": s.trial, "client_id": s.client,
                                "round": k.round[i] if len(s.rows) == 1 else -1,
                                "speaker_id": k.speaker_id[i], "gender": k.gender[i],
                                **truth[i], **out_cols(p)})  # fmt: skip
    return out
