"""Fitted attack models reused across evaluations, stored beside the feature rows they were
trained on: `attack_inputs/key=<features key>/fit-<fit key>.parquet`.

Many evaluations of a sweep train the SAME attack model on the SAME shadow feature rows: every
defense level attacked by the non-adaptive attacker, every post-hoc defense (applied to the
target only), every target of one shadow set. Training on a CPU is deterministic (seeded
permutations, dropout inside `torch.random.fork_rng`), so the fitted weights are a pure
function of what the fit reads; they are stored once, content-addressed, and later
evaluations load them instead of training (and skip reading the feature rows).

    fit key = content hash of {FIT_VERSION, features key (shadow runs, params, post-hoc
              defenses the attacker mimics, featurizer), sha256 of the shadow labels and of
              the train/validation row indices, the generator's state when the fit starts
              (initialisation and training seed), the attack model config and its effective
              training options, the target (attribute, kind, classes, label scaling), the
              layer's param shapes, torch version and intra-op thread count}

A fit is cached only on a CPU (CUDA kernels are not bit-reproducible) and never when it was
stopped by its time budget (`max_seconds`: the epoch count depends on the machine). The file
holds one row per state-dict entry (name, dtype, shape, little-endian bytes; no pickle) and
the `TrainResult` as JSON in the file's metadata. A fit lives in its features key's folder:
loading it marks that key used (`inputs.touch`), and `inputs.evict` removes it together with
the feature rows (least recently used keys first, under `resources.attack_inputs_max_gb`); an
evicted fit is trained again. A loaded fit's `TrainResult.reused` names its file, and the
evaluation's note says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pyarrow as pa
import torch

from sergrad.attack import inputs
from sergrad.attack.models import AttackModel
from sergrad.attack.train import TrainResult
from sergrad.config import content_hash, to_dict
from sergrad.errors import StoreError
from sergrad.store import Store

FIT_VERSION = 1
PREFIX = "fit-"  # file name of a stored fit in its features key's folder: fit-<fit key>
_RESULT_META = b"sergrad.train_result"


def _digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return f"{a.dtype.str}{list(a.shape)}:" + hashlib.sha256(a.tobytes()).hexdigest()


def fit_key(
    *,
    features_key: str,
    model: AttackModel,
    model_config,
    labels: np.ndarray,
    split: tuple[np.ndarray, np.ndarray],
    generator_state: torch.Tensor,
    shapes: dict,
    device: str,
) -> str | None:
    """The content key of a fit about to start (`generator_state`: its generator's state
    before the model's initial weights are drawn); None on CUDA (not bit-reproducible)."""
    if device != "cpu":
        return None
    return content_hash(
        {
            "kind": "fit",
            "version": FIT_VERSION,
            "features": features_key,
            "labels": _digest(np.asarray(labels)),
            "train_idx": _digest(np.asarray(split[0], np.int64)),
            "val_idx": _digest(np.asarray(split[1], np.int64)),
            "generator": _digest(generator_state.numpy()),
            "model": to_dict(model_config),
            "train": {k: model.train[k] for k in sorted(model.train)},
            "target": to_dict(model.target),
            "shapes": {p: list(s) for p, s in shapes.items()},
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        length=24,
    )


def _name(key: str) -> str:
    return f"{PREFIX}{key}"


def save(
    store: Store, features_key: str, key: str, model: AttackModel, result: TrainResult
) -> None:
    """Store the trained module's state and its TrainResult (not one stopped by a budget)."""
    if result.stopped == "budget":
        return
    state = model.module.state_dict()
    arrays = [t.detach().cpu().contiguous().numpy() for t in state.values()]
    table = pa.table(
        {
            "name": list(state),
            "dtype": [a.dtype.str for a in arrays],  # e.g. "<f4", "<i8"
            "shape": [list(a.shape) for a in arrays],
            "value": [a.tobytes() for a in arrays],
        }
    )
    meta = json.dumps(dataclasses.asdict(result), allow_nan=True)
    table = table.replace_schema_metadata({_RESULT_META: meta})
    part = (inputs.PARTITION, features_key)
    store.write_table(inputs.TABLE, table, partition=part, name=_name(key))


def load(store: Store, features_key: str, key: str, model: AttackModel) -> TrainResult | None:
    """Load a stored fit into `model.module` (exact weights and buffers): its TrainResult with
    `reused` naming the file, or None when no fit is stored under `key`."""
    name = _name(key)
    if not inputs.has(store, features_key, name):
        return None
    path = store.file_path(inputs.TABLE, partition=(inputs.PARTITION, features_key), name=name)
    where = f"{inputs.TABLE}/key={features_key}/{name}"
    try:
        table = store.read_file(path)
        d = table.to_pydict()
        fields = json.loads(table.schema.metadata[_RESULT_META])
    except (OSError, pa.ArrowException, KeyError, ValueError) as exc:
        raise StoreError(f"{where}: unreadable ({exc})") from exc
    state = {
        param: torch.from_numpy(np.frombuffer(value, dtype).reshape(shape).copy())
        for param, dtype, shape, value in zip(d["name"], d["dtype"], d["shape"], d["value"])
    }
    try:
        model.module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise StoreError(f"{where}: does not fit the model ({exc})") from exc
    inputs.touch(store, features_key, name)
    fields["history"] = tuple(fields["history"])
    return dataclasses.replace(TrainResult(**fields), reused=where)


def delete_all(store: Store) -> int:
    """Delete every stored fit (the feature rows stay); returns how many (for `bench eval`)."""
    paths = [p for p in store.files(inputs.TABLE) if p.rsplit("/", 1)[-1].startswith(PREFIX)]
    for path in paths:
        store.fs.delete_file(path)
    return len(paths)
