"""Read harvested updates back: metadata, key columns, and streamed batches of float32 arrays.

Needs numpy and pyarrow only (never torch). `iter_update_batches` reads pages through a small
buffer in steps of about READ_CHUNK_BYTES and decodes them straight into the batch being
filled, so memory is one output batch plus a few steps, whatever the row-group size.

    meta = read_update_meta(store, run_id)
    for batch in iter_update_batches(store, run_id, params=["fc1.weight"], rounds=[1, 2]):
        x = batch.arrays["fc1.weight"]            # float32 [rows, 256 * 988]
        ids = batch.keys["client_id"].to_pylist()  # ground truth: records.read_clients

For a whole-store scan with polars: `pl.scan_parquet(root / "updates",
hive_partitioning=True, hive_schema={"run_id": pl.String})` (pin run_id to a string: polars
infers an all-digit id as an integer); pyarrow: `store.dataset("updates")`; DuckDB:
`read_parquet('updates/*/*.parquet', hive_partitioning=true)`. Parameter columns come back as
struct values (one per update: sign bits and byte planes, see `harvest_format`);
`harvest_format.decode_value(value, dtype)` turns one into float32 with the file's
`sergrad.dtype`. Key columns scan fine across all runs; for parameter values
`iter_update_batches` decodes each file by its own dtype and encoding (the current "sbs1"
structs, the older "bss1" binary values and list<float> columns). A
sketch harvest (`UpdateMeta.sketch`) reads the same way: its arrays are the sketch vectors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sergrad import schema
from sergrad.errors import StoreError
from sergrad.fl import harvest_format as fmt
from sergrad.fl.harvest_codec import decode_sbs_into, field_names
from sergrad.store import Store

KEY_NAMES: list[str] = [f.name for f in schema.UPDATE_KEYS]
READ_CHUNK_BYTES = 8 << 20  # decoded parameter bytes per Parquet read step


@dataclass(frozen=True)
class UpdateMeta:
    """What a harvest file says about itself (from its Parquet metadata)."""

    run_id: str
    param_names: list[str]  # harvested parameters, in model order
    param_shapes: dict[str, tuple[int, ...]]
    dtype: str  # float32 | float16 | bfloat16
    encoding: str  # "sbs1" (structs) | older files: "bss1" (binary values), "list" (lists)
    config: dict  # the resolved run config
    n_rows: int
    versions: dict = field(default_factory=dict)
    sketch: str = ""  # harvest_format.SKETCH when the columns hold sketches, else ""
    full_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # before sketching


@dataclass(frozen=True)
class UpdateBatch:
    """keys: the UPDATE_KEYS columns; arrays: name -> float32 [rows, numel] (row-major flat)."""

    keys: pa.Table
    arrays: dict[str, np.ndarray]

    @property
    def num_rows(self) -> int:
        return self.keys.num_rows


def update_path(store: Store, run_id: str) -> str:
    return store.file_path(fmt.TABLE, partition=(fmt.PARTITION, run_id), name=fmt.FILE_NAME)


def _open(store: Store, run_id: str, *, streaming: bool = False) -> pq.ParquetFile:
    path = update_path(store, run_id)
    if not store.exists_path(path):
        have = store.partition_values(fmt.TABLE)
        shown = ", ".join(have[:10]) + (" ..." if len(have) > 10 else "")
        raise StoreError(
            f"no harvested updates for run {run_id!r} in store {store.uri} "
            f"(expected {path}); runs with updates: {shown or 'none'}"
        )
    try:
        # streaming: read pages through a small buffer instead of whole column chunks
        opts = {"pre_buffer": False, "buffer_size": 1 << 20} if streaming else {}
        return pq.ParquetFile(store.open_input(path), **opts)
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"cannot read updates of run {run_id!r} ({path}): {exc}") from exc


def _meta(pf: pq.ParquetFile, run_id: str) -> UpdateMeta:
    md = pf.schema_arrow.metadata or {}
    try:
        names = json.loads(md[schema.META_PARAM_NAMES])
        shapes = json.loads(md[schema.META_PARAM_SHAPES])
        dtype = md[schema.META_DTYPE].decode()
        encoding = md.get(fmt.META_ENCODING, b"list").decode()
        config = json.loads(md[schema.META_CONFIG])
        vers = json.loads(md.get(schema.META_VERSIONS, b"{}"))
        sketch = md.get(fmt.META_SKETCH, b"").decode()
        full = json.loads(md.get(fmt.META_SKETCH_OF, b"{}")) or shapes
    except (KeyError, ValueError) as exc:
        raise StoreError(f"updates of run {run_id!r}: missing or bad metadata ({exc})") from exc
    if (
        encoding not in (fmt.ENCODING, *fmt.LEGACY_ENCODINGS)
        or dtype not in fmt.DTYPES
        or sketch not in ("", fmt.SKETCH)
    ):
        raise StoreError(
            f"updates of run {run_id!r}: unknown encoding {encoding!r}, dtype {dtype!r} or "
            f"sketch {sketch!r} (this sergrad reads {fmt.ENCODING!r}, 'bss1' and 'list' of "
            f"{', '.join(fmt.DTYPES)}, sketches {fmt.SKETCH!r})"
        )
    return UpdateMeta(
        run_id=run_id,
        param_names=list(names),
        param_shapes={n: tuple(shapes[n]) for n in names},
        dtype=dtype,
        encoding=encoding,
        config=config,
        n_rows=pf.metadata.num_rows,
        versions=vers,
        sketch=sketch,
        full_shapes={n: tuple(full[n]) for n in names},
    )


def read_update_meta(store: Store, run_id: str) -> UpdateMeta:
    """Parameter names/shapes, dtype, config and row count of a run's harvest (footer only)."""
    return _meta(_open(store, run_id), run_id)


def read_update_keys(store: Store, run_id: str) -> pa.Table:
    """The key columns (round, client_id, speaker_id, n_samples, kind) of every row, plus
    `gender` in stores written before the clients side table."""
    pf = _open(store, run_id)
    return pf.read(columns=key_names(pf))


def key_names(pf: pq.ParquetFile) -> list[str]:
    """KEY_NAMES, plus the legacy label column when this (older) file has one."""
    return KEY_NAMES + [n for n in [schema.LEGACY_LABEL] if n in pf.schema_arrow.names]


def _resolve(params: Sequence[str], stored: list[str], run_id: str) -> list[str]:
    from sergrad.fl.param_names import select

    return select(
        stored, params, what=f"updates of run {run_id!r}", order="patterns", error=StoreError,
        missing="{what}: parameter {pattern!r} was not harvested; stored: {names}",
    )  # fmt: skip


def iter_update_batches(
    store: Store,
    run_id: str,
    *,
    params: Sequence[str],
    batch_rows: int = 512,
    rounds: Sequence[int] | None = None,
) -> Iterator[UpdateBatch]:
    """Stream a run's updates in file order as batches of `batch_rows` rows (the last fewer).

    params: stored parameter names or globs (unknown -> StoreError listing the stored ones).
    rounds: keep only these rounds (row groups whose round range misses them are skipped).
    Memory: the batch being filled plus a few READ_CHUNK_BYTES of Parquet decoding.
    """
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise ValueError(f"batch_rows must be an integer >= 1, got {batch_rows!r}")
    pf = _open(store, run_id, streaming=True)
    meta = _meta(pf, run_id)
    names = _resolve(params, meta.param_names, run_id)
    sizes = {n: fmt.numel(meta.param_shapes[n]) for n in names}
    wanted = None if rounds is None else pa.array(sorted(set(rounds)), pa.int32())
    groups = _row_groups(pf, wanted)
    if not groups:
        return
    if wanted is None:
        remaining = sum(pf.metadata.row_group(g).num_rows for g in groups)
    else:  # count the matching rows first (reads the small round column only)
        round_col = pf.read_row_groups(groups, columns=["round"])["round"]
        remaining = pc.sum(pc.is_in(round_col, value_set=wanted)).as_py() or 0
    chunk = max(1, min(batch_rows, READ_CHUNK_BYTES // max(1, 4 * sum(sizes.values()))))
    keys: list[pa.Table] = []
    out: dict[str, np.ndarray] = {}
    filled = size = 0
    key_cols = key_names(pf)
    for rb in pf.iter_batches(
        batch_size=chunk, row_groups=groups, columns=key_cols + names, use_threads=False
    ):
        table = pa.Table.from_batches([rb])
        if wanted is not None:
            table = table.filter(pc.is_in(table["round"], value_set=wanted))
        pos = 0
        while pos < table.num_rows:
            if not out:
                size, filled = min(batch_rows, remaining), 0
                out = {n: np.empty((size, k), dtype=np.float32) for n, k in sizes.items()}
            take = min(size - filled, table.num_rows - pos)
            part = table.slice(pos, take)
            for n in names:  # decode straight into the batch being filled
                _decode_into(part[n], meta.dtype, sizes[n], out[n][filled : filled + take],
                             where=f"updates of run {run_id!r}, {n}")  # fmt: skip
            keys.append(part.select(key_cols))
            filled, pos, remaining = filled + take, pos + take, remaining - take
            if filled == size:
                yield UpdateBatch(keys=pa.concat_tables(keys).combine_chunks(), arrays=out)
                keys, out = [], {}


def _row_groups(pf: pq.ParquetFile, wanted: pa.Array | None) -> list[int]:
    """Row groups that may hold a wanted round (by the round column's min/max statistics)."""
    groups = list(range(pf.num_row_groups))
    if wanted is None or len(wanted) == 0:
        return groups if wanted is None else []
    col = pf.schema_arrow.get_field_index("round")
    values = wanted.to_pylist()
    keep = []
    for rg in groups:
        stats = pf.metadata.row_group(rg).column(col).statistics
        if stats is None or not stats.has_min_max:
            keep.append(rg)
        elif any(stats.min <= v <= stats.max for v in values):
            keep.append(rg)
    return keep


def _decode_into(
    col: pa.ChunkedArray, dtype: str, size: int, out: np.ndarray, *, where: str
) -> None:
    """A parameter column (sbs1 structs, bss1 binary values or fixed-size lists) -> float32
    rows of `out`."""
    row = 0
    item = fmt.ITEM_BYTES[dtype]
    for c in col.chunks:
        n = len(c)
        if pa.types.is_struct(c.type):
            _decode_struct_into(c, dtype, size, out[row : row + n], where=where)
            row += n
            continue
        if pa.types.is_fixed_size_list(c.type):  # files written before the binary encoding
            stored = c.flatten().to_numpy(zero_copy_only=False).reshape(n, size)
            fmt.decode_into(stored, dtype, out[row : row + n])
            row += n
            continue
        data = _binary_rows(c, item * size, where=where, what=f"{size} x {item} bytes ({dtype})")
        fmt.decode_planes_into(data.reshape(n, item, size), dtype, out[row : row + n])
        row += n


def _binary_rows(c: pa.Array, width: int, *, where: str, what: str) -> np.ndarray:
    """Non-null binary values of `width` bytes each -> uint8 [len(c), width] (zero-copy)."""
    if not pa.types.is_binary(c.type) or c.null_count:
        raise StoreError(f"{where}: expected non-null binary values, found {c.type}")
    offsets_buf, data_buf = c.buffers()[1:3]
    offsets = np.frombuffer(offsets_buf, np.int32)[c.offset : c.offset + len(c) + 1]
    if np.any(np.diff(offsets) != width):
        raise StoreError(f"{where}: a value is not {what}")
    return np.frombuffer(data_buf, np.uint8)[offsets[0] : offsets[-1]].reshape(len(c), width)


def _decode_struct_into(c: pa.StructArray, dtype: str, size: int, out: np.ndarray, *,
                        where: str) -> None:  # fmt: skip
    """sbs1 struct values (harvest_codec) -> float32 rows of `out`."""
    names = field_names(dtype)
    if [f.name for f in c.type] != names or c.null_count:
        raise StoreError(f"{where}: expected non-null structs of {names}, found {c.type}")
    fields = c.flatten()  # honours the struct's offset
    sign = _binary_rows(fields[0], (size + 7) // 8, where=where, what=f"{size} sign bits")
    planes = [_binary_rows(f, size, where=where, what=f"{size} bytes") for f in fields[1:]]
    decode_sbs_into(sign, planes, dtype, out)
