"""Attack inputs computed once per shadow set and reused: the `attack_inputs/` table.

An evaluation's shadow side is a pure function of (shadow runs, layer parameters, post-hoc
defense the attacker mimics, featurizer): the per-element normalisation moments, the shadow
updates' keys, and per layer and featurizer the feature rows its attack model trains on (the
fast attacks' statistics, cosines or projections; the cnn's normalised arrays). They are
stored content-addressed, Parquet only (no pickle), so every evaluation that shares the shadow
set (other targets, attack models with the same featurizer, post-hoc defenses applied to the
target only, seeds of the attack model) reads them instead of the harvest:

    attack_inputs/key=<moments key>/keys.parquet       the shadow updates' key columns + run
    attack_inputs/key=<moments key>/moments.parquet    param, mean, std (float64 values)
    attack_inputs/key=<features key>/features.parquet  one binary value per shadow update

A features value is the row in the featurizer's storage dtype (float32, or float16 for the
cnn), byte-stream split like a harvest value (`harvest_format.decode_value`). Keys:

    moments key  = content hash of {shadow_runs (in order), params, the post-hoc defenses and
                   seed when the attacker mimics them (adaptive), BATCH_ROWS, VERSION}
    features key = content hash of {feature base, the layer's params, featurizer}
    feature base = the moments key when the attacker mimics a post-hoc defense (its noise
                   draws depend on every param of the pass), else {shadow_runs, BATCH_ROWS,
                   VERSION}: each param's moments are its own, so evaluations of other layer
                   sets (fc1 alone, fc1-fc3) share a layer's feature rows and fits
    featurizer   = {attack model name, its params minus training-only ones}

Models fitted on a features key's rows are stored beside them (`sergrad.attack.fit_cache`).

Files are written atomically; two processes computing the same key write identical content.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sergrad.attack import dataset as D
from sergrad.attack.config import AttackConfig, AttackModelConfig
from sergrad.config import content_hash, to_dict
from sergrad.errors import StoreError
from sergrad.fl import harvest_format as fmt
from sergrad.store import Store

TABLE = "attack_inputs"
PARTITION = "key"
# 2: logreg_colcorr cosines by batched matmul (float rounding differs from 1); 3: features
# keyed by the feature base (same rows as 2)
VERSION = 3
# model params that do not change the fixed input transform
TRAINING_ONLY = ("lr", "batch_size", "max_seconds", "amp", "dropout", "hidden")
KEY_FIELDS = ("round", "client_id", "speaker_id", "gender", "n_samples")
ROWS_PER_GROUP = 64


def featurizer(model: AttackModelConfig) -> dict:
    """What determines an attack model's fixed input transform (not its training)."""
    params = {k: v for k, v in sorted(model.params.items()) if k not in TRAINING_ONLY}
    return {"name": model.name, "params": params}


def mimics_posthoc(config: AttackConfig) -> bool:
    """Whether the shadow inputs get the target's post-hoc defenses (an adaptive attacker),
    so those defenses and the seed are part of every shadow-input key."""
    return config.adaptive and any(p.name != "none" for p in config.posthoc)


def moments_key(config: AttackConfig, params: Sequence[str], *, batch_rows: int) -> str:
    mimic = mimics_posthoc(config)
    return content_hash(
        {
            "kind": "moments",
            "version": VERSION,
            "shadow_runs": list(config.shadow_runs),
            "params": list(params),
            "posthoc": to_dict(config.posthoc) if mimic else [],
            "seed": config.seed if mimic else None,
            "batch_rows": batch_rows,
        }
    )


def feature_base(config: AttackConfig, params: Sequence[str], *, batch_rows: int) -> str:
    """What a layer's feature rows depend on besides its own params and featurizer (see the
    module docstring)."""
    if mimics_posthoc(config):
        return moments_key(config, params, batch_rows=batch_rows)
    return content_hash(
        {
            "kind": "shadow rows",
            "version": VERSION,
            "shadow_runs": list(config.shadow_runs),
            "batch_rows": batch_rows,
        }
    )


def features_key(base: str, params: Sequence[str], feat: dict) -> str:
    return content_hash(
        {
            "kind": "features",
            "version": VERSION,
            "base": base,
            "params": list(params),
            "featurizer": feat,
        }  # fmt: skip
    )


def _path(store: Store, key: str, name: str) -> str:
    return store.file_path(TABLE, partition=(PARTITION, key), name=name)


def has(store: Store, key: str, name: str) -> bool:
    return store.exists(TABLE, partition=(PARTITION, key), name=name)


# --- moments and keys -----------------------------------------------------------------------
def save_moments(store: Store, key: str, keys: D.UpdateKeys, stats: dict) -> None:
    """The shadow set's keys and per-param (mean, std) float64, written atomically."""
    cols = {"run": keys.run, **{f: getattr(keys, f) for f in KEY_FIELDS}}
    store.write_table(TABLE, pa.table(cols), partition=(PARTITION, key), name="keys")
    table = pa.table(
        {
            "param": list(stats),
            "mean": [np.asarray(m, "<f8").tobytes() for m, _ in stats.values()],
            "std": [np.asarray(s, "<f8").tobytes() for _, s in stats.values()],
        }
    )
    store.write_table(TABLE, table, partition=(PARTITION, key), name="moments")


def load_moments(store: Store, key: str) -> tuple[D.UpdateKeys, dict] | None:
    """(keys, {param: (mean, std)}) of a stored shadow set, or None when not stored."""
    if not (has(store, key, "moments") and has(store, key, "keys")):
        return None
    try:
        k = store.read_file(_path(store, key, "keys")).to_pydict()
        m = store.read_file(_path(store, key, "moments")).to_pydict()
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"{TABLE}/key={key}: unreadable ({exc})") from exc
    touch(store, key, "keys", "moments")
    keys = D.UpdateKeys(run=k["run"], **{f: k[f] for f in KEY_FIELDS})
    stats = {
        p: (np.frombuffer(mu, "<f8").copy(), np.frombuffer(sd, "<f8").copy())
        for p, mu, sd in zip(m["param"], m["mean"], m["std"])
    }
    return keys, stats


# --- feature rows ---------------------------------------------------------------------------
class FeatureWriter:
    """Streams feature rows [B, F] into `attack_inputs/key=<key>/features.parquet`."""

    def __init__(self, store: Store, key: str, *, width: int, dtype: str) -> None:
        self.width, self.dtype = width, fmt.check_dtype(dtype)
        meta = {b"sergrad.dtype": dtype, b"sergrad.width": str(width)}
        schema = pa.schema([pa.field("x", pa.binary())], metadata=meta)
        self._cm = store.open_writer(
            TABLE, schema, partition=(PARTITION, key), name="features",
            options={"compression": "zstd", "compression_level": 1, "use_dictionary": False,
                     "write_statistics": False,
                     "write_batch_size": max(1, fmt.PAGE_BYTES // (width * 4 or 1))},
        )  # fmt: skip
        self._pq = self._cm.__enter__()
        self.n_rows = 0

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=fmt.STORAGE[self.dtype])
        for s in range(0, len(rows), ROWS_PER_GROUP):
            part = rows[s : s + ROWS_PER_GROUP]
            self._pq.write_table(pa.table({"x": fmt.to_blobs(part)}), row_group_size=len(part))
        self.n_rows += len(rows)

    def close(self, exc: BaseException | None = None) -> None:
        if exc is None:
            self._cm.__exit__(None, None, None)
        else:
            self._cm.__exit__(type(exc), exc, exc.__traceback__)


def load_features(store: Store, key: str, path: str) -> D.RowFile | None:
    """The stored feature rows copied into a RowFile at `path`, or None when not stored."""
    if not has(store, key, "features"):
        return None
    try:
        pf = pq.ParquetFile(store.open_input(_path(store, key, "features")))
        md = pf.schema_arrow.metadata or {}
        dtype, width = md[b"sergrad.dtype"].decode(), int(md[b"sergrad.width"])
    except (OSError, pa.ArrowException, KeyError, ValueError) as exc:
        raise StoreError(f"{TABLE}/key={key}/features: unreadable ({exc})") from exc
    touch(store, key, "features")
    rows = D.RowFile(path, width=width, dtype=dtype, memory_bytes=D.IN_MEMORY_BYTES)
    for rb in pf.iter_batches(batch_size=ROWS_PER_GROUP, columns=["x"]):
        out = np.empty((rb.num_rows, width), np.float32)
        col = rb.column(0)
        offsets_buf, data_buf = col.buffers()[1:3]
        offsets = np.frombuffer(offsets_buf, np.int32)[col.offset : col.offset + len(col) + 1]
        item = fmt.ITEM_BYTES[dtype]
        data = np.frombuffer(data_buf, np.uint8)[offsets[0] : offsets[-1]]
        fmt.decode_planes_into(data.reshape(len(col), item, width), dtype, out)
        rows.append(out)
    return rows


# --- size cap ---------------------------------------------------------------------------
DEFAULT_MAX_GB = 4.0  # sweep `resources.attack_inputs_max_gb`; the cnn's arrays dominate


def touch(store: Store, key: str, *names: str) -> None:
    """Mark files of a key used now (their mtime; local stores only: on an object store a
    key's age is its write time), so `evict` removes the least recently USED keys."""
    if store.is_local:
        for name in names:
            try:
                os.utime(_path(store, key, name))
            except OSError:
                pass  # evicted meanwhile: the reader already holds it open


def usage(store: Store) -> list[dict]:
    """One row per stored key: key, bytes, last_used (the newest file mtime, seconds)."""
    keys: dict[str, dict] = {}
    for path in store.files(TABLE):
        info = store.fs.get_file_info(path)
        key = path.rsplit("/", 2)[-2].split("=", 1)[-1]
        row = keys.setdefault(key, {"key": key, "bytes": 0, "last_used": 0.0})
        row["bytes"] += info.size or 0
        mtime = info.mtime.timestamp() if info.mtime is not None else 0.0
        row["last_used"] = max(row["last_used"], mtime)
    return list(keys.values())


def evict(store: Store, max_bytes: float) -> list[str]:
    """Delete whole keys, least recently used first, until `attack_inputs/` holds at most
    `max_bytes`; returns the deleted keys. A deleted key is rebuilt from the harvest when an
    evaluation needs it again (a cache, never a result)."""
    rows = sorted(usage(store), key=lambda r: (r["last_used"], r["key"]))
    total = sum(r["bytes"] for r in rows)
    gone = []
    for row in rows:
        if total <= max_bytes:
            break
        store.fs.delete_dir_contents(store.table_dir(TABLE, (PARTITION, row["key"])),
                                     missing_dir_ok=True)  # fmt: skip
        try:
            store.fs.delete_dir(store.table_dir(TABLE, (PARTITION, row["key"])))
        except OSError:
            pass  # an object store has no directories to remove
        total -= row["bytes"]
        gone.append(row["key"])
    return gone


def describe(store: Store) -> list[dict]:
    """One row per stored key and file (for `bench` and tests): key, name, bytes."""
    out = []
    for path in store.files(TABLE):
        key = path.rsplit("/", 2)[-2].split("=", 1)[-1]
        size = store.fs.get_file_info(path).size or 0
        out.append({"key": key, "name": path.rsplit("/", 1)[-1], "bytes": size})
    return out
