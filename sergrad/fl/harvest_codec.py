"""Harvest value codecs (spec: `harvest_format`'s module doc), numpy + pyarrow only: "sbs1"
(the current struct values) and "bss1" (older files' binary values; the attack's input cache).

One update's tensor, stored dtype with k bytes per element (float32: 4; float16, bfloat16: 2),
becomes a struct of binary fields: `sign` (the sign bits, `np.packbits` order) and `b0` ..
`b{k-1}`, the little-endian byte planes of the element bits shifted left by one (the sign
dropped; the top plane of float32 and bfloat16 is exactly the exponent). Parquet stores each
field as its own column chunk, so zstd sees plane j of all of a row group's updates in a row:
no mixing of planes in one zstd block, and the random signs (1 bit per element) stay out of
the exponent plane, where they made zstd slow (many short matches).

`PlaneEncoder` is the writer's side (reused scratch buffers); `decode_sbs_into` the reader's.

>>> enc = PlaneEncoder("float16", rows=1, numel=2)
>>> arr = enc(np.array([[1.0, -2.5]], np.float16))
>>> {k: v.hex() for k, v in arr[0].as_py().items()}
{'sign': '40', 'b0': '0000', 'b1': '7882'}
>>> decode_sbs_value(arr[0].as_py(), "float16")
array([ 1. , -2.5], dtype=float32)
"""

from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa

ITEM_BYTES: dict[str, int] = {"float32": 4, "float16": 2, "bfloat16": 2}
STORAGE: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"),
    "float16": np.dtype("<f2"),
    "bfloat16": np.dtype("<u2"),
}
_LITTLE = sys.byteorder == "little"
# top plane (bits shifted left by one) at or above this: exponent all ones, i.e. NaN or inf
TOP_NONFINITE = {"float32": 0xFF, "float16": 0xF8, "bfloat16": 0xFF}
_FINITE_ABS = {"float32": 0x7F800000, "float16": 0x7C00, "bfloat16": 0x7F80}  # +inf bits


def field_names(dtype: str) -> list[str]:
    return ["sign"] + [f"b{j}" for j in range(ITEM_BYTES[dtype])]


def struct_type(dtype: str) -> pa.DataType:
    return pa.struct([pa.field(n, pa.binary()) for n in field_names(dtype)])


def _binary(data: np.ndarray, offsets: pa.Buffer, n_rows: int) -> pa.BinaryArray:
    return pa.Array.from_buffers(pa.binary(), n_rows, [None, offsets, pa.py_buffer(data)])


def _offsets(n_rows: int, size: int) -> pa.Buffer:
    offsets = np.arange(n_rows + 1, dtype=np.int64) * size
    if offsets[-1] >= 2**31:
        raise ValueError(f"{n_rows} values of {size} bytes exceed a binary array's 2 GiB")
    return pa.py_buffer(offsets.astype(np.int32))


class PlaneEncoder:
    """Stored-dtype rows [R, numel] -> R sbs1 struct values, reusing scratch buffers sized for
    `rows` x `numel`. The returned array wraps this encoder's buffers: valid until its next
    call (the Parquet writer copies what it writes)."""

    def __init__(self, dtype: str, *, rows: int, numel: int) -> None:
        if sys.byteorder != "little":
            raise NotImplementedError("the harvest codec needs a little-endian host")
        self.dtype = dtype
        self.item = ITEM_BYTES[dtype]
        self.uint = np.dtype(f"<u{self.item}")
        self._shifted = np.empty((rows, numel), self.uint)
        self._neg = np.empty((rows, numel), bool)
        self._planes = np.empty((self.item, rows, numel), np.uint8)
        self.top = self._planes[-1]  # after a call: the top plane of its rows (exponent bits)

    def __call__(self, stored: np.ndarray) -> pa.StructArray:
        u = np.ascontiguousarray(stored).view(self.uint)
        n_rows, n = u.shape
        shifted, neg = self._shifted[:n_rows, :n], self._neg[:n_rows, :n]
        np.left_shift(u, self.uint.type(1), out=shifted)
        planes = self._planes[:, :n_rows, :n]
        for j in range(self.item):  # truncating casts (3x faster than strided byte copies)
            if j:
                np.right_shift(shifted, self.uint.type(8), out=shifted)
            np.copyto(planes[j], shifted, casting="unsafe")
        np.greater_equal(u, self.uint.type(1 << (8 * self.item - 1)), out=neg)
        signs = np.packbits(neg, axis=-1)  # [R, ceil(n / 8)]
        self.top = planes[-1]
        off = _offsets(n_rows, n)
        fields = [_binary(signs, _offsets(n_rows, signs.shape[1]), n_rows)] + [
            _binary(np.ascontiguousarray(planes[j]), off, n_rows) for j in range(self.item)
        ]
        return pa.StructArray.from_arrays(fields, names=field_names(self.dtype))

    def nonfinite_rows(self) -> np.ndarray:
        """Indexes of the last call's rows holding a NaN or inf (a max over the top plane)."""
        top, thr = self.top, TOP_NONFINITE[self.dtype]
        if not top.size or int(top.max()) < thr:
            return np.empty(0, np.int64)
        return np.flatnonzero((top >= thr).any(axis=1))


def count_nonfinite(stored_row: np.ndarray, dtype: str) -> tuple[int, int]:
    """(NaN count, inf count) of one stored-dtype row (bits compared as unsigned integers)."""
    u = np.ascontiguousarray(stored_row).view(f"<u{ITEM_BYTES[dtype]}")
    inf = _FINITE_ABS[dtype]
    mag = u & np.array(inf | (inf - 1) | (inf >> 1), u.dtype)  # all bits but the sign
    return int(np.count_nonzero(mag > inf)), int(np.count_nonzero(mag == inf))


def decode_sbs_into(
    sign: np.ndarray, planes: list[np.ndarray], dtype: str, out: np.ndarray
) -> None:
    """sbs1 fields of R values (sign uint8 [R, ceil(n/8)], planes k x uint8 [R, n]) -> float32
    `out` [R, n], in place. The float32 bits are assembled with whole-array shifts (no strided
    byte copies); float16 is widened exactly without numpy's slow float16 cast: its magnitude
    bits << 13, read as a float32, times 2**112 (subnormals included; inf/NaN patched), or by
    torch's float16 cast when the process has imported torch and the rows are finite (an
    attack worker: half the time; the same values)."""
    if sys.byteorder != "little":
        raise NotImplementedError("decoding harvests needs a little-endian host")
    if dtype == "float16" and _torch_widens(planes[-1], out):
        _decode_half_with_torch(sign, planes, out)
        return
    n = out.shape[1]
    bits = out.view(np.uint32)
    np.left_shift(planes[-1], 8 * (len(planes) - 1), out=bits, dtype=np.uint32)
    for j in range(len(planes) - 2, -1, -1):  # the shifted bits, little-endian planes
        np.bitwise_or(bits, np.left_shift(planes[j], 8 * j, dtype=np.uint32), out=bits)
    if dtype == "float32":
        bits >>= np.uint32(1)  # the magnitude bits are the float32's
    elif dtype == "bfloat16":
        bits <<= np.uint32(15)  # magnitude (shifted >> 1) in the float32's high half
    else:
        _widen_half_magnitudes(bits, out)
    neg = np.unpackbits(sign, axis=-1, count=n)  # 0/1 per element
    np.bitwise_or(bits, np.left_shift(neg, 31, dtype=np.uint32), out=bits)


def _torch_widens(top: np.ndarray, out: np.ndarray) -> bool:
    """Whether to widen float16 with torch: only when the process has imported it already
    (readers never import torch) and no element is inf or NaN (torch quiets signalling NaNs;
    numpy's widening, the reference, keeps their bits): then both give the same float32."""
    return (
        "torch" in sys.modules
        and out.flags.c_contiguous
        and out.size > 0
        and int(top.max(initial=0)) < TOP_NONFINITE["float16"]
    )


def _decode_half_with_torch(sign: np.ndarray, planes: list[np.ndarray], out: np.ndarray) -> None:
    """float16 sbs1 fields -> float32 `out`: the 16-bit patterns assembled in numpy, widened by
    torch's vectorised float16 cast (2x faster than the float32 bit arithmetic below)."""
    import torch

    n = out.shape[1]
    half = np.left_shift(planes[1], 8, dtype=np.uint16)  # [R, n]
    np.bitwise_or(half, planes[0], out=half)
    np.right_shift(half, np.uint16(1), out=half)
    neg = np.unpackbits(sign, axis=-1, count=n)
    np.bitwise_or(half, np.left_shift(neg, 15, dtype=np.uint16), out=half)
    torch.from_numpy(out).copy_(torch.from_numpy(half.view(np.int16)).view(torch.float16))


_HALF_TO_SINGLE = np.float32(2.0**112)  # 2**(127 - 15): float16 exponent bias -> float32's


def _widen_half_magnitudes(shifted: np.ndarray, out: np.ndarray) -> None:
    """uint32 `shifted` (float16 bits << 1, sign dropped; a view of float32 `out`) -> the
    float32 magnitudes, exactly: (bits << 13) is a float32 2**112 times too small."""
    nonfinite = shifted >= np.uint32(0xF800) if shifted.max(initial=0) >= 0xF800 else None
    shifted <<= np.uint32(12)
    np.multiply(out, _HALF_TO_SINGLE, out=out)
    if nonfinite is not None:  # inf / NaN: all-ones exponent, the mantissa kept
        shifted[nonfinite] = (shifted[nonfinite] & np.uint32(0x007FE000)) | np.uint32(0x7F800000)


def decode_sbs_value(value: dict, dtype: str) -> np.ndarray:
    """One stored struct value ({"sign": bytes, "b0": bytes, ...}) -> float32 [numel]."""
    names = field_names(dtype)
    if set(value) != set(names):
        raise ValueError(f"a {dtype} sbs1 value has fields {names}, got {sorted(value)}")
    planes = [np.frombuffer(value[f], np.uint8) for f in names[1:]]
    n = planes[0].size
    if any(p.size != n for p in planes) or len(value["sign"]) != (n + 7) // 8:
        raise ValueError(f"sbs1 value: planes of unequal size or a sign field not of {n} bits")
    out = np.empty((1, n), np.float32)
    sign = np.frombuffer(value["sign"], np.uint8).reshape(1, -1)
    decode_sbs_into(sign, [p.reshape(1, n) for p in planes], dtype, out)
    return out[0]


# --- the bss1 codec (older harvests, the attack's input cache) and dtype conversions -------
def bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit pattern (uint16), round-to-nearest-even; NaN kept quiet NaN."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = u + (np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))
    bits = (rounded >> np.uint32(16)).astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        bits[nan] = ((u[nan] >> np.uint32(16)) | np.uint32(0x0040)).astype(np.uint16)
    return bits


def encode_numpy(x: np.ndarray, dtype: str) -> np.ndarray:
    """float32 [rows, numel] -> the stored element dtype (numpy only; the writer uses torch)."""
    x = np.asarray(x, dtype=np.float32)
    if dtype == "float32":
        return x
    if dtype == "float16":
        return x.astype(np.float16)
    return bfloat16_bits(x)


def decode(stored: np.ndarray, dtype: str) -> np.ndarray:
    """Stored elements (float32 | float16 | uint16 bits) -> float32, same shape."""
    if dtype == "float32":
        return np.asarray(stored, dtype=np.float32)
    if dtype == "float16":
        return np.asarray(stored, dtype=np.float16).astype(np.float32)
    bits = np.asarray(stored, dtype=np.uint16).astype(np.uint32) << np.uint32(16)
    return bits.view(np.float32)


def decode_into(stored: np.ndarray, dtype: str, out: np.ndarray) -> None:
    """decode() writing into the float32 array `out` (same shape) without temporaries."""
    if dtype == "bfloat16":
        bits = out.view(np.uint32)
        bits[...] = stored
        bits <<= np.uint32(16)
    else:
        out[...] = stored


def to_blobs(rows: np.ndarray) -> pa.BinaryArray:
    """Stored-dtype rows [R, numel] -> R binary values (byte-stream split), zero-copy wrapped:
    the "bss1" values of older harvests (and of the attack's input cache)."""
    rows = np.asarray(rows)
    rows = rows.astype(rows.dtype.newbyteorder("<"), copy=False)
    n_rows, n = rows.shape
    item = rows.dtype.itemsize
    planes = np.empty((n_rows, item, n), np.uint8)
    if item == 2:  # 16-bit: low byte by truncation, high byte by a shift (no strided reads)
        bits = rows.view("<u2")
        np.copyto(planes[:, 0, :], bits, casting="unsafe")
        np.copyto(planes[:, 1, :], bits >> np.uint16(8), casting="unsafe")
    else:
        as_bytes = rows.view(np.uint8).reshape(n_rows, n, item)
        for k in range(item):  # one strided copy per byte plane (numpy releases the GIL)
            planes[:, k, :] = as_bytes[:, :, k]
    offsets = np.arange(n_rows + 1, dtype=np.int64) * (item * n)
    if offsets[-1] >= 2**31:
        raise ValueError(f"{n_rows} rows of {item * n} bytes exceed a binary array's 2 GiB")
    return pa.Array.from_buffers(
        pa.binary(), n_rows, [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(planes)]
    )


def decode_planes_into(planes: np.ndarray, dtype: str, out: np.ndarray) -> None:
    """Byte planes uint8 [R, item, numel] of `dtype` -> float32 `out` [R, numel], in place."""
    item = ITEM_BYTES[dtype]
    if planes.ndim != 3 or planes.shape[1] != item or planes.shape[0] != out.shape[0]:
        raise ValueError(f"planes {planes.shape} do not match {dtype} rows {out.shape}")
    if not _LITTLE:  # pragma: no cover - every supported platform is little-endian
        raise NotImplementedError("decoding harvests needs a little-endian host")
    if dtype == "float32":
        target = out.view(np.uint8).reshape(*out.shape, 4)
        for k in range(4):
            target[:, :, k] = planes[:, k, :]
        return
    if dtype == "bfloat16":  # the bits are the high half of the float32
        out[...] = 0
        target = out.view(np.uint8).reshape(*out.shape, 4)
        for k in range(2):
            target[:, :, k + 2] = planes[:, k, :]
        return
    half = np.empty(out.shape, STORAGE[dtype])
    target = half.view(np.uint8).reshape(*out.shape, 2)
    for k in range(2):
        target[:, :, k] = planes[:, k, :]
    out[...] = half
