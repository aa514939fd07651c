"""Feature files: Parquet with `utt_id` + fixed-size list<float32> `x` (sergrad.schema.features_schema).

File metadata (JSON-encoded values under META keys) carries the feature set, dimension,
resolved parameters, cache key, feature-code version, per-dimension names and the per-file
problems met while extracting. Writes are atomic (a temp file in the same directory, then a
rename / server-side move); readers validate the schema and reject NaN / inf.

>>> import tempfile, numpy as np
>>> t = features_table(["a", "b"], np.ones((2, 3), np.float32), meta={"feature_set": "demo"})
>>> path = tempfile.mkdtemp() + "/f.parquet"
>>> write_features(t, path)
>>> ids, x, meta = read_features(path)
>>> ids, x.shape, meta["dim"], meta["feature_set"]
(['a', 'b'], (2, 3), 3, 'demo')
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sergrad.errors import DataError
from sergrad.features.external import open_fs
from sergrad.schema import FEATURE_ID, FEATURE_VECTOR, features_schema

META_PREFIX = "sergrad.features."
META_FIELDS: tuple[str, ...] = (
    "feature_set", "dim", "params", "cache_key", "version", "names", "problems", "n_utterances",
)  # fmt: skip


def features_table(utt_ids: Sequence[str], x: np.ndarray, *, meta: dict[str, Any]) -> pa.Table:
    """utt_ids [N] + x [N, D] float32 -> a table with features_schema(D) and `meta` attached."""
    n, dim = x.shape
    if len(utt_ids) != n:
        raise ValueError(f"{len(utt_ids)} utt_ids for {n} rows")
    values = pa.array(np.ascontiguousarray(x, dtype=np.float32).reshape(-1), type=pa.float32())
    vectors = pa.FixedSizeListArray.from_arrays(values, dim)
    schema = features_schema(dim)
    full = {**meta, "dim": dim}
    unknown = set(full) - set(META_FIELDS)
    if unknown:
        raise ValueError(f"unknown feature metadata {sorted(unknown)}; valid: {META_FIELDS}")
    encoded = {(META_PREFIX + k).encode(): json.dumps(v).encode() for k, v in full.items()}
    return pa.Table.from_arrays(
        [pa.array(list(utt_ids), pa.string()), vectors], schema=schema.with_metadata(encoded)
    )


def write_features(table: pa.Table, path: str | os.PathLike) -> None:
    """Write atomically: temp file beside `path`, then rename (local) or move (URI)."""
    fs, inner = open_fs(str(path))
    parent, _, name = inner.rpartition("/")
    tmp = (
        f"{parent}/.{name}.{uuid.uuid4().hex}.tmp" if parent else f".{name}.{uuid.uuid4().hex}.tmp"
    )
    if parent:
        fs.create_dir(parent, recursive=True)
    try:
        pq.write_table(table, tmp, filesystem=fs, compression="zstd")
        if isinstance(fs, pafs.LocalFileSystem):
            os.replace(tmp, inner)
        else:
            fs.move(tmp, inner)
    except BaseException:
        try:
            fs.delete_file(tmp)
        except (OSError, pa.ArrowException):
            pass  # nothing was written
        raise


def read_meta(schema: pa.Schema) -> dict[str, Any]:
    raw = schema.metadata or {}
    meta: dict[str, Any] = {k: None for k in META_FIELDS}
    for key, value in raw.items():
        name = key.decode(errors="replace")
        if name.startswith(META_PREFIX) and name[len(META_PREFIX) :] in META_FIELDS:
            meta[name[len(META_PREFIX) :]] = json.loads(value)
    return meta


def read_features(path: str | os.PathLike) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """(utt_ids [N], x float32 [N, D], meta) from a local path or a pyarrow.fs URI (s3://...).

    DataError naming the file for: unreadable file, wrong schema, nulls, duplicate utt_ids,
    NaN / inf values, metadata dimension disagreeing with the data.
    """
    where = str(path)
    fs, inner = open_fs(where)
    try:
        table = pq.read_table(inner, filesystem=fs)
    except FileNotFoundError as exc:
        raise DataError(f"{where}: feature file not found") from exc
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{where}: unreadable feature file ({exc})") from exc
    schema = table.schema
    vec_type = schema.field(FEATURE_VECTOR).type if FEATURE_VECTOR in schema.names else None
    ok = (
        schema.names == [FEATURE_ID, FEATURE_VECTOR]
        and schema.field(FEATURE_ID).type == pa.string()
        and vec_type is not None
        and pa.types.is_fixed_size_list(vec_type)
        and vec_type.value_type == pa.float32()
    )
    if not ok:
        found = ", ".join(f"{f.name}: {f.type}" for f in schema)
        raise DataError(
            f"{where}: not a feature file: expected {FEATURE_ID}: string, "
            f"{FEATURE_VECTOR}: fixed_size_list<float>[D]; found {found}"
        )
    dim = vec_type.list_size
    meta = read_meta(schema)
    if meta["dim"] is not None and meta["dim"] != dim:
        raise DataError(f"{where}: metadata says dimension {meta['dim']} but vectors have {dim}")
    meta["dim"] = dim
    ids_col, vec_col = table.column(FEATURE_ID), table.column(FEATURE_VECTOR).combine_chunks()
    if ids_col.null_count or vec_col.null_count:
        raise DataError(
            f"{where}: null utt_id or vector in {ids_col.null_count + vec_col.null_count} rows"
        )
    ids = ids_col.to_pylist()
    dupes = sorted(u for u, n in Counter(ids).items() if n > 1)
    if dupes:
        raise DataError(f"{where}: duplicate utt_ids {dupes[:5]}")
    x = vec_col.flatten().to_numpy(zero_copy_only=False).reshape(len(ids), dim)  # [N, D]
    finite = np.isfinite(x).all(axis=1)  # [N]
    if not finite.all():
        bad = [u for u, f in zip(ids, finite) if not f]
        raise DataError(f"{where}: NaN or inf in {len(bad)} vectors, e.g. utt_ids {bad[:5]}")
    return ids, np.ascontiguousarray(x, dtype=np.float32), meta
