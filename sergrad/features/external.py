"""`external`: import a user's own feature table, keyed by utt_id (param `path`, required).

Accepted layouts (a local path or a pyarrow.fs URI such as s3://bucket/feats.parquet):
- CSV: a `utt_id` column plus numeric columns (one per dimension, header required);
- Parquet: `utt_id` plus one list column (list / large_list / fixed_size_list of numbers,
  every row the same length), or `utt_id` plus numeric columns.
Structural faults (no utt_id column, non-numeric columns, duplicate utt_ids, ragged lists,
several list columns) are DataErrors naming the file and the columns or utt_ids. Per-utterance
faults (an utterance with no row, NaN / inf / empty values) are per-utterance problems naming
the file and the utt_id: skipped, or fatal under strict. Extra rows in the file are ignored.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sergrad.errors import ConfigError, DataError
from sergrad.features.base import FeatureSet, register
from sergrad.problems import Problems

ID = "utt_id"


def open_fs(path: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a pyarrow.fs URI."""
    try:
        if "://" in path:
            return pafs.FileSystem.from_uri(path)
        return pafs.LocalFileSystem(), str(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: cannot open ({exc})") from exc


def read_table(path: str) -> pa.Table:
    fs, inner = open_fs(path)
    try:
        if inner.lower().endswith((".csv", ".csv.gz", ".tsv")):
            with fs.open_input_stream(inner) as stream:
                return pacsv.read_csv(
                    stream,
                    parse_options=pacsv.ParseOptions(
                        delimiter="\t" if inner.endswith(".tsv") else ","
                    ),
                    convert_options=pacsv.ConvertOptions(column_types={ID: pa.string()}),
                )
        return pq.read_table(inner, filesystem=fs)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: feature table not found") from exc
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: unreadable feature table ({exc})") from exc


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def table_to_matrix(table: pa.Table, *, path: str) -> tuple[list[str], np.ndarray]:
    """(utt_ids, float64 [N, D]) from either layout; NaN where a value is null."""
    if ID not in table.column_names:
        raise DataError(f"{path}: no {ID!r} column; columns: {table.column_names}")
    ids = [str(u) for u in table.column(ID).to_pylist()]
    dupes = sorted(u for u, n in Counter(ids).items() if n > 1)
    if dupes:
        raise DataError(f"{path}: duplicate utt_ids {dupes[:5]}")
    value_cols = [n for n in table.column_names if n != ID]
    if not value_cols:
        raise DataError(f"{path}: no feature columns besides {ID!r}")
    types = {n: table.schema.field(n).type for n in value_cols}
    lists = [
        n
        for n, t in types.items()
        if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
    ]
    if lists:
        if len(value_cols) != 1:
            raise DataError(
                f"{path}: a list column must be the only feature column; found {value_cols}"
            )
        col = table.column(lists[0]).combine_chunks()
        if not _is_number(col.type.value_type):
            raise DataError(f"{path}: column {lists[0]!r} holds {col.type.value_type}, not numbers")
        lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
        if len(set(lengths.tolist())) > 1:
            dim = int(np.bincount(lengths).argmax())
            bad = [u for u, n in zip(ids, lengths) if n != dim]
            raise DataError(
                f"{path}: column {lists[0]!r} has rows of length != {dim}: utt_ids {bad[:5]}"
            )
        dim = int(lengths[0]) if len(lengths) else 0
        values = pc.cast(col.flatten(), pa.float64()).to_numpy(zero_copy_only=False)
        matrix = values.reshape(len(ids), dim) if dim else np.zeros((len(ids), 0))
        if col.null_count:
            matrix = matrix.copy()
            matrix[np.asarray(col.is_null())] = np.nan
        return ids, matrix
    bad = [f"{n} ({t})" for n, t in types.items() if not (_is_number(t) or pa.types.is_null(t))]
    if bad:
        raise DataError(
            f"{path}: non-numeric feature columns {bad[:10]}; expected {ID} plus numbers"
        )
    cols = [
        pc.cast(table.column(n), pa.float64()).to_numpy(zero_copy_only=False) for n in value_cols
    ]
    return ids, np.stack(cols, axis=1).astype(np.float64)  # [N, D]


class ExternalTable:
    """A TableSource: vectors from the user's file, looked up by utt_id."""

    def __init__(self, path: str) -> None:
        self.path = path
        ids, matrix = table_to_matrix(read_table(path), path=path)
        self.index = {u: i for i, u in enumerate(ids)}
        self.matrix = matrix  # [N, D] float64
        self.dim = int(matrix.shape[1])
        if self.dim == 0:
            raise DataError(f"{path}: feature vectors are empty (dimension 0)")
        self.names = None

    def lookup(self, utt_ids: Sequence[str], problems: Problems) -> list[np.ndarray | None]:
        missing = [u for u in utt_ids if u not in self.index]
        if missing and len(missing) == len(utt_ids):
            raise DataError(
                f"{self.path}: none of the {len(utt_ids)} utterances has a row (e.g. {missing[:3]}); "
                f"is {ID!r} keyed like the utterance table?"
            )
        out: list[np.ndarray | None] = []
        for u in utt_ids:
            i = self.index.get(u)
            if i is None:
                problems.add(self.path, f"no row for utt_id {u!r}")
                out.append(None)
            elif not np.isfinite(self.matrix[i]).all():
                problems.add(self.path, f"utt_id {u!r}: NaN, inf or empty values")
                out.append(None)
            else:
                out.append(self.matrix[i].astype(np.float32))
        return out


def _path(params: dict[str, Any]) -> str:
    if not params.get("path"):
        raise ConfigError("feature set 'external' needs --param path=FEATURES.{parquet,csv}")
    return str(params["path"])


def fingerprint(params: dict[str, Any]) -> str:
    """sha256 of the file's bytes, so an edited table gets a new cache key."""
    path = _path(params)
    fs, inner = open_fs(path)
    digest = hashlib.sha256()
    try:
        with fs.open_input_stream(inner) as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: feature table not found") from exc
    return digest.hexdigest()


register(
    FeatureSet(
        "external",
        "your own table: --param path=FILE (CSV or Parquet, keyed by utt_id)",
        {"path": None},
        lambda params: ExternalTable(_path(params)),
        default_dim=None,
        reads_audio=False,
        fingerprint=fingerprint,
    )
)
