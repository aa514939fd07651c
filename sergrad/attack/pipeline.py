"""The steps of one attack evaluation, each a function over streamed data.

`ShadowSet` (keys, labels, per-element statistics: one streaming pass, or read from the
`attack_inputs` cache) -> `featurize_shadow` (one second pass computing every layer's and
featurizer's feature rows still missing from the cache, over the first pass's batches when
they fit in RAW_IN_MEMORY_BYTES, else over the harvest again) -> `TargetSet` (keys and each layer's
normalised rows: one streaming pass, post-hoc defenses applied first) -> `fit_layer` (cached
feature rows, then training) -> `score_layer` (P(male) per target update and per
client-trial selection). An evaluation whose shadow set was seen before reads no shadow
harvest at all (`sergrad.attack.inputs`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from sergrad.attack import dataset as D
from sergrad.attack import fit_cache, inputs, source
from sergrad.attack.config import AttackConfig, AttackModelConfig
from sergrad.attack.labels import AttributeLabels
from sergrad.attack.models import AttackModel, create
from sergrad.attack.protocols import Selection, average_selections
from sergrad.attack.target import GENDER, Target
from sergrad.attack.train import TrainResult, predict_features, train_attack
from sergrad.errors import DataError
from sergrad.store import Store

RAW_IN_MEMORY_BYTES = 256 * 2**20  # a shadow set's decoded updates kept between its passes
BATCH_ROWS = 32  # updates per streamed batch: 32 x 1 MB (fc1 at 988-d) plus float64 temporaries
PREDICT_ROWS = 20  # cnn activations at 256x988: ~0.3 GB per 20 rows in conv1
KEEP_FEATURE_BYTES = 64 * 2**20  # score_layer keeps the target's feature rows up to this


@dataclass
class ShadowSet:
    runs: list[str]
    keys: D.UpdateKeys
    labels: np.ndarray  # [N] class index (gender F=0, M=1; -1 unknown) or value (NaN unknown)
    stats: dict[str, tuple[np.ndarray, np.ndarray]]  # param -> (mean, std) float64 [numel]
    key: str = ""  # attack_inputs key of the moments
    feature_base: str = ""  # what its features keys derive from (`inputs.feature_base`)
    target: Target = GENDER  # what the labels are
    # the moments pass's batches [(run, keys, {param: rows})], kept when they fit in
    # RAW_IN_MEMORY_BYTES so the featurizing pass needs no second read (non-adaptive only)
    raw: list | None = None


@dataclass
class TargetSet:
    keys: D.UpdateKeys
    labels: np.ndarray  # [N] like ShadowSet.labels (scoring only)
    rows: dict[str, D.RowFile]  # layer -> normalised float32 [N, layer numel]


def load_shadow(
    store: Store,
    config: AttackConfig,
    params: list[str],
    *,
    shapes: dict,
    posthoc,
    attribute: AttributeLabels | None = None,
) -> ShadowSet:
    """Keys, labels and per-element moments of the shadow runs: from the `attack_inputs`
    cache, else one streaming pass over every shadow run (then cached). Labels: gender
    (F=0, M=1) unless `attribute` names another one (class index / value per row)."""
    runs = list(config.shadow_runs)
    mkey = inputs.moments_key(config, params, batch_rows=BATCH_ROWS)
    base = inputs.feature_base(config, params, batch_rows=BATCH_ROWS)
    cached = inputs.load_moments(store, mkey)
    raw = None
    if cached is not None:
        keys, stats = cached
    else:
        keys = D.UpdateKeys()
        moments: dict[str, D.Moments] = {}
        use = posthoc if config.adaptive else None  # adaptive: the attacker mimics the defense
        stream = D.stream_raw(store, runs, params, batch_rows=BATCH_ROWS, posthoc=use,
                              param_shapes=shapes, seed=config.seed, role=0)  # fmt: skip
        genders = {r: source.client_genders(store, r) for r in runs}
        raw, held = ([] if use is None else None), 0
        for run_id, k, arrays in stream:
            keys.extend(run_id, k, genders[run_id])
            for p in params:
                moments.setdefault(p, D.Moments.zeros(arrays[p].shape[1])).update(arrays[p])
            held += sum(arrays[p].nbytes for p in params)
            if raw is not None and held <= RAW_IN_MEMORY_BYTES:
                raw.append((run_id, k, {p: np.array(arrays[p]) for p in params}))
            else:
                raw = None  # too big: the featurizing pass streams the harvest again
        stats = {p: (m.mean, m.std()) for p, m in moments.items()}
    if attribute is not None and attribute.target.attribute != "gender":
        labels = attribute.encode(keys.run, keys.client_id)  # checked by AttributeLabels.of
        if cached is None:  # the moments and keys do not depend on the attacked attribute
            inputs.save_moments(store, mkey, keys, stats)
        return ShadowSet(runs=runs, keys=keys, labels=labels, stats=stats, key=mkey,
                         feature_base=base, target=attribute.target, raw=raw)  # fmt: skip
    labels = keys.labels()
    if (labels < 0).any():
        bad = sorted({r for r, y in zip(keys.run, labels) if y < 0})
        raise DataError(f"shadow runs {bad}: updates without a gender (F/M) label")
    if len(np.unique(labels)) < 2:
        only = keys.gender[0] if len(keys) else "none"
        raise DataError(
            f"shadow runs {runs}: all {len(labels)} updates have gender {only!r}; "
            "the attack needs both F and M shadow clients"
        )
    if cached is None:
        inputs.save_moments(store, mkey, keys, stats)
    return ShadowSet(runs=runs, keys=keys, labels=labels, stats=stats, key=mkey,
                     feature_base=base, raw=raw)  # fmt: skip


def featurize_shadow(
    store: Store,
    config: AttackConfig,
    shadow: ShadowSet,
    jobs: list[tuple[list[str], AttackModelConfig]],
    *,
    shapes: dict,
    posthoc,
) -> int:
    """Compute and cache the shadow feature rows of every (layer params, attack model) job not
    yet in `attack_inputs`, in one streaming pass (one per layer when the attacker mimics a
    post-hoc defense, which sees exactly the layer's params). Returns the passes made."""
    todo: dict[tuple[str, ...], list[tuple[str, AttackModelConfig]]] = {}
    for params, model_config in jobs:
        fkey = inputs.features_key(shadow.feature_base, params, inputs.featurizer(model_config))
        if not inputs.has(store, fkey, "features"):
            todo.setdefault(tuple(params), [])
            if fkey not in [k for k, _ in todo[tuple(params)]]:
                todo[tuple(params)].append((fkey, model_config))
    use = posthoc if config.adaptive else None
    passes = [list(todo)] if use is None else [[ps] for ps in todo]
    for group in passes if todo else []:
        _featurize_pass(store, config, shadow, {ps: todo[ps] for ps in group}, shapes, use)
    shadow.raw = None  # every feature row is built: free the kept batches
    return len(passes) if todo else 0


def _featurize_pass(store, config, shadow, todo, shapes, use) -> None:
    params = list(dict.fromkeys(p for ps in todo for p in ps))
    models, writers = [], []
    try:
        for ps, items in todo.items():
            for fkey, mc in items:
                model = create(mc.name, shapes={p: shapes[p] for p in ps}, params=mc.params,
                               generator=torch.Generator().manual_seed(0))  # fmt: skip
                models.append((list(ps), model))
                writers.append(inputs.FeatureWriter(store, fkey, width=model.n_features,
                                                    dtype=model.storage_dtype))  # fmt: skip
        if use is None and shadow.raw is not None:
            stream = iter(shadow.raw)  # the moments pass's batches: no second harvest read
        else:
            stream = D.stream_raw(store, shadow.runs, params, batch_rows=BATCH_ROWS,
                                  posthoc=use, param_shapes=shapes, seed=config.seed,
                                  role=0)  # fmt: skip
        for _, _, arrays in stream:
            normed = D.normalise_arrays(arrays, {p: shadow.stats[p] for p in params})
            for (ps, model), w in zip(models, writers):
                w.append(model.transform({p: normed[p] for p in ps}))  # [B, F]
        for w in writers:
            if w.n_rows != len(shadow.labels):
                raise DataError(f"shadow runs {shadow.runs}: rows changed between passes")
    except BaseException as exc:
        for w in writers:
            w.close(exc)
        raise
    for w in writers:
        w.close()


def load_target(
    store: Store,
    config: AttackConfig,
    groups: dict[str, list[str]],
    shadow: ShadowSet,
    *,
    shapes: dict,
    posthoc,
    tmp: str,
    attribute: AttributeLabels | None = None,
) -> TargetSet:
    """One streaming pass over the target run: post-hoc defense, normalise, store per layer."""
    params = [p for ps in groups.values() for p in ps]
    memory = D.IN_MEMORY_BYTES // max(1, len(groups))  # held in memory up to this per layer
    rows = {
        layer: D.RowFile(os.path.join(tmp, f"target-{i}.f32"),
                         width=sum(math.prod(shapes[p]) for p in ps), memory_bytes=memory)
        for i, (layer, ps) in enumerate(groups.items())
    }  # fmt: skip
    keys = D.UpdateKeys()
    stream = D.stream_raw(store, [config.target_run], params, batch_rows=BATCH_ROWS,
                          posthoc=posthoc, param_shapes=shapes, seed=config.seed, role=1)  # fmt: skip
    genders = source.client_genders(store, config.target_run)  # for scoring only
    for run_id, k, arrays in stream:
        keys.extend(run_id, k, genders)
        normed = D.normalise_arrays(arrays, {p: shadow.stats[p] for p in params})
        for layer, ps in groups.items():
            rows[layer].append(np.concatenate([normed[p] for p in ps], axis=1))
    if len(keys) == 0:
        raise DataError(f"target run {config.target_run!r}: no harvested updates")
    if shadow.target.attribute != "gender":
        labels = attribute.encode(keys.run, keys.client_id)
        return TargetSet(keys=keys, labels=labels, rows=rows)
    return TargetSet(keys=keys, labels=keys.labels(), rows=rows)


def fit_layer(
    store: Store,
    config: AttackConfig,
    shadow: ShadowSet,
    params: list[str],
    *,
    shapes: dict,
    posthoc,
    split: tuple[np.ndarray, np.ndarray],
    generator: torch.Generator,
    tmp: str,
    name: str,
    progress: bool = False,
) -> tuple[AttackModel, TrainResult]:
    """The fit stored under the same content key (`fit_cache`), else the layer's shadow
    feature rows (cached, else one more shadow pass), then train (and store the fit)."""
    fkey = inputs.features_key(shadow.feature_base, params, inputs.featurizer(config.model))
    layer_shapes = {p: shapes[p] for p in params}
    gen_state = generator.get_state()  # before create() draws the initial weights
    model = create(config.model.name, shapes=layer_shapes, params=config.model.params,
                   generator=generator, target=shadow.target)  # fmt: skip
    ckey = fit_cache.fit_key(features_key=fkey, model=model, model_config=config.model,
                             labels=shadow.labels, split=split, generator_state=gen_state,
                             shapes=layer_shapes, device=config.device)  # fmt: skip
    reused = fit_cache.load(store, fkey, ckey, model) if ckey else None
    if reused is not None:
        return model, reused
    path = os.path.join(tmp, f"shadow-{name}.bin")
    feats = inputs.load_features(store, fkey, path)
    if feats is None:
        featurize_shadow(store, config, shadow, [(params, config.model)], shapes=shapes,
                         posthoc=posthoc)  # fmt: skip
        feats = inputs.load_features(store, fkey, path)
    if feats.n_rows != len(shadow.labels) or feats.width != model.n_features:
        raise DataError(
            f"attack_inputs/key={fkey}: {feats.n_rows} x {feats.width} feature rows, expected "
            f"{len(shadow.labels)} x {model.n_features} (shadow runs {shadow.runs})"
        )
    result = train_attack(model, feats, shadow.labels, train_idx=split[0], val_idx=split[1],
                          config=config.model, generator=generator, device=config.device,
                          progress=progress)  # fmt: skip
    feats.close()
    os.unlink(feats.path)
    if ckey:
        fit_cache.save(store, fkey, ckey, model, result)
    return model, result


def _split_params(row: np.ndarray, params: list[str], shapes: dict) -> dict[str, np.ndarray]:
    out, start = {}, 0
    for p in params:
        n = math.prod(shapes[p])
        out[p] = row[:, start : start + n]
        start += n
    return out


def score_layer(
    model: AttackModel,
    rows: D.RowFile,
    params: list[str],
    *,
    shapes: dict,
    selections: dict[int, list[Selection]],
    device: str,
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """The model's outputs (gender: P(male)) per target update, and per selection for each n
    (rows averaged first). A target set up to `dataset.IN_MEMORY_BYTES` is read once and
    indexed in memory (the per-client draws pick scattered rows: one read per row otherwise).
    A selection of one update is that update: its feature row is the update's own (kept when
    the target's feature rows fit in KEEP_FEATURE_BYTES), not transformed again; every batch
    the model predicts is the same PREDICT_ROWS selections as ever (same outputs, bit for bit)."""
    take = rows.reader()
    keep = rows.n_rows * model.n_features * 4 <= KEEP_FEATURE_BYTES
    per_update, feats_u = [], []
    for s in range(0, rows.n_rows, PREDICT_ROWS):
        x = take(np.arange(s, min(s + PREDICT_ROWS, rows.n_rows)))  # [b, D]
        feats = model.transform(_split_params(x, params, shapes))  # [b, F]
        feats_u += [feats] if keep else []
        per_update.append(predict_features(model, feats, device=device))
    feats_u = np.concatenate(feats_u) if feats_u else None  # [N, F]
    per_client = {}
    for n, sels in selections.items():
        out = []
        for s in range(0, len(sels), PREDICT_ROWS):
            chunk = sels[s : s + PREDICT_ROWS]
            out.append(predict_features(model, _selection_features(model, take, chunk, feats_u,
                                        params=params, shapes=shapes, width=rows.width),
                                        device=device))  # fmt: skip
        per_client[n] = np.concatenate(out) if out else model.target.empty()
    return np.concatenate(per_update), per_client


def _selection_features(model, take, chunk, feats_u, *, params, shapes, width) -> np.ndarray:
    """Feature rows [c, F] of averaged selections; one-update selections from `feats_u`."""
    if feats_u is None:
        avg = average_selections(take, chunk, width=width)  # [c, D]
        return model.transform(_split_params(avg, params, shapes))
    single = np.array([len(sel.rows) == 1 for sel in chunk], dtype=bool)
    feats = np.empty((len(chunk), feats_u.shape[1]), feats_u.dtype)  # [c, F]
    feats[single] = feats_u[[int(sel.rows[0]) for sel, one in zip(chunk, single) if one]]
    several = [sel for sel, one in zip(chunk, single) if not one]
    if several:
        avg = average_selections(take, several, width=width)  # [c', D]
        feats[~single] = model.transform(_split_params(avg, params, shapes))
    return feats
