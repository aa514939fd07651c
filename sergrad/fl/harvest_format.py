"""The on-disk format of harvested client updates: selection, element types and the codec.

File: `updates/run_id=<id>/updates.parquet` (the run id lives in the directory name only).
Columns: the key columns of `schema.UPDATE_KEYS`, then one column per harvested parameter,
named by the parameter: ONE struct value per update holding the whole tensor (format "sbs1",
schema metadata `sergrad.encoding`; code in `harvest_codec`):

    bits    = the tensor flattened row-major, each element in the stored dtype as an
              unsigned integer of k bytes (k = 4 float32, 2 float16 / bfloat16)
    value   = struct {
        sign: binary   the elements' sign bits, np.packbits order (ceil(numel / 8) bytes)
        b0 .. b{k-1}: binary   byte planes of (bits << 1) mod 2^(8k), i.e. the element without
                       its sign, left-aligned: b0 = the lowest byte of every element, ...
                       (numel bytes each; the top plane of float32/bfloat16 is the exponent)
    }
    Parquet stores each field as a column chunk: PLAIN, zstd level 1 pages.

Stored element dtype (schema metadata `sergrad.dtype`):

    float32   -> IEEE binary32       lossless; bit-exact round trip
    float16   -> IEEE binary16       torch's `.half()`
    bfloat16  -> bfloat16 bits       the top 16 bits of the float32, round-to-nearest-even,
                                     i.e. torch's `.bfloat16()`

Why this layout: a struct field is its own Parquet column chunk, so zstd compresses plane j
of all of a row group's updates in a row (like the old Parquet BYTE_STREAM_SPLIT pages, and
no zstd block mixes two planes); the random sign bits, packed 8 to a byte, stay out of the
exponent plane, where they made zstd slow (a two-valued sign+exponent byte gives many short
matches). `sergrad bench fl` measures the bytes against the previous list-column layout
(`bench.harvest_reference`, Parquet BYTE_STREAM_SPLIT + zstd) in the same run: FedAvg
updates take 0.99x its bytes at the paper shape (float16 and float32), 0.77x (float16) and
0.94x (float32) at the demo shape, whose one-step Adam updates are nearly all +-lr (their
signs are most of the information). pyarrow's Parquet writer on a list<float> column spends
~2-3 ms per 1 MB tensor (repetition levels per element); a binary field is one copy. DuckDB
could not read BYTE_STREAM_SPLIT float16 columns at all; it reads these structs. Most of the
harvest's CPU is zstd (~1 ms per MB of planes at the paper shape); the writer encodes and
writes in a background thread. Any reader gets the floats back with
numpy (`decode_value`; `v` is the struct as a dict, n = numel = len(v["b0"])):

    sign = np.unpackbits(np.frombuffer(v["sign"], np.uint8), count=n)
    m = np.stack([np.frombuffer(v[f"b{j}"], np.uint8) for j in range(k)], 1).view(f"<u{k}")[:, 0]
    bits = (m >> 1) | (sign.astype(m.dtype) << (8 * k - 1))
    x = bits.view("<f2")   # "<f4" for float32; bfloat16: the uint16 bits of a float32's top half

e.g. `duckdb.sql("SELECT \"fc1.weight\" FROM 'updates/*/*.parquet'")` or
`pl.read_parquet(path)["fc1.weight"]` give the structs, `decode_value` the array. Files of
the previous formats are still read: "bss1" (a `binary` column per parameter, value = the
little-endian byte planes of the elements, all byte 0s then all byte 1s ...: `decode_value`
of bytes) and "list" (fixed-size list columns, no `sergrad.encoding`).

Non-finite values (NaN, inf, or a float16/bfloat16 overflow) are refused by the writer's
background thread from the top plane (exponent all ones) of each row group: the error names
the round, client and parameter and is raised by a later `add` or at the end of the `with`
block, which then publishes nothing.

Under the `secure_aggregation` defense (sergrad.fl.secagg) the file holds the server's view
only: ONE row per round, the cohort's sample-weighted mean in server space (FedSGD gradients,
kind "gradient"; FedAvg model deltas, kind "delta"), with client_id -1, speaker_id
"aggregate" and n_samples = the cohort's total samples N_r; no individual update is written
(sampling adversarial_same_round adds the round's second aggregate, over the cohort minus its
isolated client, with client_id -2). The cohort's members are in the `cohorts` side table (schema.COHORTS).

Schema metadata holds the harvested parameter names and shapes, the dtype, the encoding, the
canonical JSON of the run config and package versions (`schema.META_*`, `META_ENCODING`).

Reductions (`HarvestConfig`, checked at plan time by `check_harvest`): `params` (names or
globs, `sergrad.fl.param_names`), `rounds` (`all`, `{every: k}` or a list), `dtype`, and
`sketch: true`, which stores per update only what the fast statistics attack reads (format
"rowcol1", schema metadata `sergrad.sketch`; the full shapes in `sergrad.sketch_of`):

    2-D parameter [out, in] -> float vector [3 * (out + in)]:
        row mean [out], row std [out], row L2 norm [out]        (over the `in` axis)
        column mean [in], column std [in], column L2 norm [in]  (over the `out` axis)
        (population std; see `sketch_rowcol` for the arithmetic; stored in `dtype`)
    other parameters (biases) -> stored in full

A sketch column is an ordinary parameter column (same bss1 values) whose stored shape
(`sergrad.param_shapes`) is the vector's; `sketch_rowcol` is the reference computation.

This module needs numpy and pyarrow only: readers never import torch.

>>> select_params(["fc1.weight", "fc1.bias", "fc2.weight"], ("fc1.*",))
['fc1.weight', 'fc1.bias']
>>> RoundSelection.parse({"every": 5}).wants(10), RoundSelection.parse([1, 3]).wants(2)
(True, False)
>>> decode(encode_numpy(np.array([[1.0, -2.5]], np.float32), "bfloat16"), "bfloat16")
array([[ 1. , -2.5]], dtype=float32)
>>> sketch_rowcol(np.array([[[3.0, 4.0], [0.0, 0.0]]]), (2, 2)).tolist()
[[3.5, 0.0, 0.5, 0.0, 5.0, 0.0, 1.5, 2.0, 1.5, 2.0, 3.0, 4.0]]
>>> decode_value({"sign": b"\\x40", "b0": b"\\x00\\x00", "b1": b"\\x78\\x82"}, "float16")
array([ 1. , -2.5], dtype=float32)
>>> blobs = to_blobs(np.array([[1.0, -2.5], [3.0, 0.5]], np.float16))  # "bss1" values
>>> blobs[0].as_py().hex(), decode_value(blobs[1].as_py(), "float16")
('00003cc1', array([3. , 0.5], dtype=float32))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from sergrad.errors import ConfigError
from sergrad.fl.harvest_codec import (  # noqa: F401  (re-exported: the bss1 codec, dtypes)
    ITEM_BYTES,
    STORAGE,
    bfloat16_bits,
    decode,
    decode_into,
    decode_planes_into,
    encode_numpy,
    to_blobs,
)

DTYPES: dict[str, pa.DataType] = {
    "float32": pa.float32(),
    "float16": pa.float16(),
    "bfloat16": pa.uint16(),  # bit pattern
}
ENCODING = "sbs1"  # one struct of sign bits and byte planes per tensor (see the module doc)
LEGACY_ENCODINGS = ("bss1", "list")  # older files, still read: binary values, list columns
META_ENCODING = b"sergrad.encoding"
SKETCH = "rowcol1"  # harvest.sketch: per-row and per-column statistics of each 2-D update
META_SKETCH = b"sergrad.sketch"  # SKETCH when the file holds sketches (absent: full tensors)
META_SKETCH_OF = b"sergrad.sketch_of"  # JSON {name: full shape} of a sketch file's params
TABLE = "updates"
PARTITION = "run_id"
FILE_NAME = "updates"
# Writer options: dictionary encoding only for the string keys; the tensor fields are PLAIN
# binary (split in numpy by `harvest_codec.PlaneEncoder`) in zstd level-1 pages; statistics
# only on the key columns (round pruning; min/max of 1 MB values would bloat the footer).
WRITER_OPTIONS = {
    "use_dictionary": ["speaker_id", "kind"],
    "use_byte_stream_split": False,
    "compression": "zstd",
    "compression_level": 1,
    "write_statistics": ["round", "client_id", "n_samples"],
}
PAGE_BYTES = 1 << 20  # target bytes of one data page of a parameter column


def writer_options(value_bytes: int) -> dict:
    """WRITER_OPTIONS with pages of about PAGE_BYTES: Parquet checks the page size only every
    `write_batch_size` values, and stages (and compresses) that many values at once."""
    return {**WRITER_OPTIONS, "write_batch_size": max(1, min(1024, PAGE_BYTES // value_bytes))}


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise ConfigError(f"harvest.dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    return dtype


def numel(shape: Sequence[int]) -> int:
    return math.prod(int(s) for s in shape)


def check_harvest(harvest, param_names: Sequence[str]) -> list[str]:
    """Validate every option of a HarvestConfig (ConfigError naming the key and value);
    returns the selected parameter names. Called at plan time and by the writer."""
    check_dtype(harvest.dtype)
    RoundSelection.parse(
        list(harvest.rounds) if isinstance(harvest.rounds, tuple) else harvest.rounds
    )
    rows = harvest.rows_per_group
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ConfigError(f"harvest.rows_per_group: {rows!r} must be an integer >= 1")
    sketch = getattr(harvest, "sketch", False)
    if not isinstance(sketch, bool):
        raise ConfigError(f"harvest.sketch: {sketch!r} must be true or false")
    return select_params(param_names, harvest.params)


def sketch_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """The stored shape of a parameter under `harvest.sketch` (see the module doc)."""
    shape = tuple(int(s) for s in shape)
    return (3 * (shape[0] + shape[1]),) if len(shape) == 2 else shape


def sketch_rowcol(x: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Full updates [R, numel] (or [R, *shape]) -> their sketches float32 [R, sketch numel].

    One pass of sums: each update is shifted by its overall mean g (so an offset common to
    the tensor does not cancel), then row and column sums of (x - g) and (x - g)^2 by float32
    matrix-vector products, combined in float64: mean = g + s1/n, var = s2/n - (s1/n)^2,
    norm^2 = s2 + 2 g s1 + n g^2 (relative error ~1e-6 unless a row's mean is far from g
    in units of its std)."""
    x = np.asarray(x)
    n_rows = x.shape[0]
    if len(shape) != 2:
        return x.reshape(n_rows, -1).astype(np.float32)
    n_out, n_in = (int(s) for s in shape)
    ones_in, ones_out = np.ones(n_in, np.float32), np.ones(n_out, np.float32)
    out = np.empty((n_rows, 3 * (n_out + n_in)), np.float32)
    d, sq = np.empty((n_out, n_in), np.float32), np.empty((n_out, n_in), np.float32)
    for r in range(n_rows):  # 2-D BLAS matrix-vector products, one update at a time
        w = np.asarray(x[r], np.float32).reshape(n_out, n_in)
        g = np.float32(w.mean())  # the shift, exactly as subtracted
        np.subtract(w, g, out=d)  # [out, in]
        np.square(d, out=sq)
        feats = []
        for s1, s2, n in ((d @ ones_in, sq @ ones_in, n_in), (ones_out @ d, ones_out @ sq, n_out)):
            s1, s2, gg = s1.astype(np.float64), s2.astype(np.float64), np.float64(g)
            m = s1 / n
            var = np.maximum(s2 / n - np.square(m), 0.0)
            norm2 = np.maximum(s2 + 2 * gg * s1 + n * gg * gg, 0.0)
            feats += [gg + m, np.sqrt(var), np.sqrt(norm2)]
        out[r] = np.concatenate(feats)
    return out  # [R, 3 * (out + in)]


def select_params(param_names: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """Names matching any pattern (exact name or fnmatch glob; "all" = every name), model order.

    Each pattern must match at least one name, else ConfigError listing the parameter names.
    """
    from sergrad.fl.param_names import select

    return select(param_names, patterns, what="harvest.params")


@dataclass(frozen=True)
class RoundSelection:
    """Which (1-based) rounds to harvest: all, every k-th (k, 2k, 3k, ...) or an explicit list."""

    every: int = 1
    rounds: frozenset[int] | None = None  # explicit list; None = use `every`

    @classmethod
    def parse(cls, spec: object) -> RoundSelection:
        if spec == "all":
            return cls()
        if isinstance(spec, dict):
            k = spec.get("every")
            if set(spec) != {"every"} or isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise ConfigError(
                    f"harvest.rounds: {spec!r} is invalid; expected {{'every': k}} with integer k >= 1"
                )
            return cls(every=k)
        if isinstance(spec, list | tuple):
            bad = [r for r in spec if isinstance(r, bool) or not isinstance(r, int) or r < 1]
            if bad or not spec:
                raise ConfigError(
                    f"harvest.rounds: {spec!r} is invalid; expected a non-empty list of "
                    f"round numbers >= 1 (rounds are 1-based)"
                )
            return cls(rounds=frozenset(spec))
        raise ConfigError(
            f"harvest.rounds: {spec!r} is invalid; expected 'all', {{'every': k}} or a list of rounds"
        )

    def wants(self, round: int) -> bool:
        if self.rounds is not None:
            return round in self.rounds
        return round >= 1 and round % self.every == 0


def column_type(dtype: str, size: int) -> pa.DataType:
    """The Arrow type of a parameter column (every size: one sbs1 struct value per row)."""
    from sergrad.fl.harvest_codec import struct_type

    return struct_type(check_dtype(dtype))


def decode_value(value: bytes | dict, dtype: str) -> np.ndarray:
    """One stored value -> float32 [numel] (flattened row-major tensor): an sbs1 struct (a
    dict of bytes, as pyarrow, polars and DuckDB return it) or a bss1 binary value."""
    if isinstance(value, dict):
        from sergrad.fl.harvest_codec import decode_sbs_value

        return decode_sbs_value(value, check_dtype(dtype))
    item = ITEM_BYTES[check_dtype(dtype)]
    raw = np.frombuffer(value, np.uint8)
    if raw.size % item:
        raise ValueError(f"a {dtype} value must hold a multiple of {item} bytes, got {raw.size}")
    out = np.empty((1, raw.size // item), np.float32)
    decode_planes_into(raw.reshape(1, item, -1), dtype, out)
    return out[0]


def update_bytes_per_row(
    shapes: dict[str, Sequence[int]] | Sequence[int], dtype: str = "float32", *, ratio: float = 1.0
) -> int:
    """Estimated stored bytes of one harvested update: raw element bytes x `ratio` + keys.

    `shapes` is {name: shape} or a single shape. The default ratio 1.0 is an upper bound.
    Stored bytes / raw bytes of the stored dtype, paper shape, FedAvg (Adam) deltas: about
    0.76 (float32) and 0.68 (float16) (`sergrad bench fl` prints the current bytes).

    >>> update_bytes_per_row((256, 988), "float16")
    505888
    """
    check_dtype(dtype)
    if isinstance(shapes, dict):
        n = sum(numel(s) for s in shapes.values())
    else:
        n = numel(shapes)
    return int(n * ITEM_BYTES[dtype] * ratio) + 32
