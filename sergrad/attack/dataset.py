"""The attack dataset: streamed from Parquet, normalised element-wise with shadow statistics.

Memory model (the paper-scale shadow set is 15k-18k updates of fc1 = 256x988 float32, ~1 MB
each, i.e. 15-18 GB raw): nothing is ever held whole in RAM.

1. `shadow_moments`: ONE streaming pass over the shadow runs computes per-element mean and
   variance in float64 (batch moments merged with Chan et al.'s parallel formula, which is
   Welford's update for a batch; the float32 E[x^2]-E[x]^2 form cancels catastrophically).
2. `stream_normalised`: a second pass yields normalised batches; the caller applies the attack
   model's fixed input transform and appends the rows to a `RowFile` (a flat binary file of
   fixed-width rows in a temp dir). Training reads mini-batches with `os.pread`, so rows live
   in the OS page cache, not in the process: peak RSS stays at a few hundred MB (measured by
   `sergrad bench attack`). The cnn stores normalised rows as float16 (z-scores; 9 GB of disk
   at paper scale), the fast attacks store their small feature vectors as float32.

The target run is streamed once with the same statistics and kept as float32 normalised rows,
so that per-client averaging is exact: mean_i((x_i - mu) / sd) == (mean_i(x_i) - mu) / sd,
i.e. "average raw updates, then normalise" is computed as "normalise, then average".
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from sergrad.attack import source
from sergrad.schema import GENDER_INDEX, LEGACY_LABEL
from sergrad.store import Store

PostHoc = Callable[..., dict[str, np.ndarray]]
IN_MEMORY_BYTES = 256 * 2**20  # RowFile.reader: files up to this are read once into memory


NORMALISE_BLOCK_BYTES = 1 << 20  # float64 scratch of `normalise` and `Moments`: stays in L2


@dataclass
class Moments:
    """Per-element running mean and sum of squared deviations (float64)."""

    count: int
    mean: np.ndarray  # [D] float64
    m2: np.ndarray  # [D] float64

    @classmethod
    def zeros(cls, dim: int) -> Moments:
        return cls(0, np.zeros(dim, np.float64), np.zeros(dim, np.float64))

    def update(self, x: np.ndarray) -> None:
        """Merge a batch x [B, D] (Chan et al. 1979; exact up to float64 rounding). The batch's
        column means and squared deviations go through a float64 scratch block of a few
        columns at a time that stays in cache (each column's sums in the same row order as
        over the whole batch: the same values)."""
        x = np.asarray(x)
        nb = x.shape[0]
        if nb == 0:
            return
        dim = x.shape[1]
        mb, m2b = np.empty(dim, np.float64), np.empty(dim, np.float64)
        # even blocks of at least 2 columns: numpy sums a 1-column block pairwise, not in
        # row order as it sums the columns of a wider block
        n_blocks = max(1, min(dim // 2, -(-dim // max(2, NORMALISE_BLOCK_BYTES // (8 * nb)))))
        edges = np.linspace(0, dim, n_blocks + 1).round().astype(int).tolist()
        scratch = np.empty((nb, max(b - a for a, b in zip(edges, edges[1:]))), np.float64)
        for a, b in zip(edges, edges[1:]):
            z = scratch[:, : b - a]
            z[...] = x[:, a:b]
            np.mean(z, axis=0, out=mb[a:b])
            np.subtract(z, mb[a:b], out=z)
            np.sum(np.square(z, out=z), axis=0, out=m2b[a:b])
        n = self.count + nb
        delta = mb - self.mean
        self.mean += delta * (nb / n)
        self.m2 += m2b + np.square(delta) * (self.count * nb / n)
        self.count = n

    def std(self) -> np.ndarray:
        """Population std; elements with (near) zero variance get std 1 (centred only)."""
        var = self.m2 / max(self.count, 1)
        sd = np.sqrt(var)
        tiny = 1e-12 * np.maximum(1.0, np.abs(self.mean))
        return np.where(sd > tiny, sd, 1.0)


def normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(x - mean) / std computed in float64, returned as float32 [B, D]. A few rows at a
    time through one float64 scratch block that stays in cache (the same values as whole-array
    float64 arithmetic, 2-3x faster than it on the paper's fc1)."""
    x = np.asarray(x)
    out = np.empty(x.shape, np.float32)
    rows = max(1, NORMALISE_BLOCK_BYTES // max(1, 8 * x.shape[-1]))
    scratch = np.empty((min(rows, len(x)), *x.shape[1:]), np.float64)
    for s in range(0, len(x), rows):
        z = scratch[: len(x[s : s + rows])]
        z[...] = x[s : s + rows]
        np.subtract(z, mean, out=z)
        np.divide(z, std, out=z)
        out[s : s + rows] = z  # rounded to float32 as astype rounds
    return out


@dataclass
class UpdateKeys:
    """Key columns of a set of updates, as numpy arrays aligned with the rows."""

    run: list[str] = field(default_factory=list)
    round: list[int] = field(default_factory=list)
    client_id: list[int] = field(default_factory=list)
    speaker_id: list[str] = field(default_factory=list)
    gender: list[str] = field(default_factory=list)
    n_samples: list[int] = field(default_factory=list)

    def extend(self, run_id: str, keys, genders: dict[int, str] | None = None) -> None:
        """Append a batch's key table; `genders` ({client_id: gender}, the run's clients side
        table) labels the rows, else an older store's `gender` key column, else "" (unknown)."""
        d = keys.to_pydict()
        self.run += [run_id] * keys.num_rows
        self.round += d["round"]
        self.client_id += d["client_id"]
        self.speaker_id += [s if s is not None else "" for s in d["speaker_id"]]
        if genders is not None:
            self.gender += [genders.get(c, "") for c in d["client_id"]]
        else:
            self.gender += [g or "" for g in d.get(LEGACY_LABEL, [None] * keys.num_rows)]
        self.n_samples += d["n_samples"]

    def __len__(self) -> int:
        return len(self.round)

    def labels(self) -> np.ndarray:
        """Gender label per row: F=0, M=1, -1 unknown."""
        return np.array([GENDER_INDEX.get(g, -1) for g in self.gender], dtype=np.int64)

    def speaker_groups(self) -> np.ndarray:
        """Group id per row for the client-level split: the speaker (else run:client)."""
        return np.array(
            [s if s else f"{r}:{c}" for s, r, c in zip(self.speaker_id, self.run, self.client_id)]
        )


class RowFile:
    """Fixed-width rows in a flat binary file; rows are read back with os.pread (not mmap),
    so the data stays in the page cache and out of the process's resident set. With
    `memory_bytes` > 0 the rows are held in memory while they total at most that (no write,
    no read back: a small target or feature set), and go to the file once they exceed it."""

    def __init__(
        self, path: str, *, width: int, dtype: str = "float32", memory_bytes: int = 0
    ) -> None:
        self.path, self.width, self.dtype = path, width, np.dtype(dtype)
        self.row_bytes = width * self.dtype.itemsize
        self.n_rows = 0
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self._memory_bytes = memory_bytes
        self._held: list[np.ndarray] | None = [] if memory_bytes > 0 else None
        self._whole: np.ndarray | None = None  # the held rows as one float32 array

    def append(self, rows: np.ndarray) -> None:
        given, rows = rows, np.ascontiguousarray(rows, dtype=self.dtype)  # [B, width]
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise ValueError(f"expected rows [B, {self.width}], got {rows.shape}")
        if self._held is not None:
            if (self.n_rows + rows.shape[0]) * self.row_bytes <= self._memory_bytes:
                # keep a copy when `rows` is the caller's array (it may reuse the buffer)
                self._held.append(rows.copy() if rows is given else rows)
                self._whole = None
                self.n_rows += rows.shape[0]
                return
            held, self._held, self._whole = self._held, None, None  # too big: to the file
            if held:
                os.pwrite(self._fd, np.concatenate(held).tobytes(), 0)
        os.pwrite(self._fd, rows.tobytes(), self.n_rows * self.row_bytes)
        self.n_rows += rows.shape[0]

    def _in_memory(self) -> np.ndarray:
        """[n_rows, width] float32 of the held rows."""
        if self._whole is None or len(self._whole) != self.n_rows:
            held = np.concatenate(self._held) if self._held else np.empty((0, self.width))
            self._whole = held.astype(np.float32, copy=False)
        return self._whole

    def read(self, idx: np.ndarray) -> np.ndarray:
        """Rows `idx` as float32 [len(idx), width]; contiguous runs are read in one call."""
        idx = np.asarray(idx, dtype=np.int64)
        if self._held is not None:
            return self._in_memory()[idx]
        out = np.empty((len(idx), self.width), dtype=self.dtype)
        ends = np.r_[np.flatnonzero(np.diff(idx) != 1) + 1, len(idx)].tolist()
        start = 0
        for stop in ends if len(idx) else []:  # one pread per contiguous run
            nbytes = (stop - start) * self.row_bytes
            buf = os.pread(self._fd, nbytes, int(idx[start]) * self.row_bytes)
            out[start:stop] = np.frombuffer(buf, dtype=self.dtype).reshape(stop - start, -1)
            start = stop
        return out.astype(np.float32, copy=False)

    def reader(self, max_bytes: int = IN_MEMORY_BYTES) -> Callable[[np.ndarray], np.ndarray]:
        """A `read` for repeated scattered reads: with the file at most `max_bytes` it is read
        once and rows are indexed in memory (same float32 rows), else `read` itself."""
        if self._held is not None:
            whole = self._in_memory()
            return lambda idx: whole[np.asarray(idx, dtype=np.int64)]
        if self.n_rows * self.row_bytes > max_bytes:
            return self.read
        whole = self.read(np.arange(self.n_rows))  # [N, width] float32
        return lambda idx: whole[np.asarray(idx, dtype=np.int64)]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


def posthoc_rng(seed: int, run_index: int, batch_index: int, role: int) -> np.random.Generator:
    """The generator post-hoc defenses use for one batch: same batch -> same noise in every pass."""
    return np.random.default_rng([seed, role, run_index, batch_index])


def stream_raw(
    store: Store,
    runs: list[str],
    params: list[str],
    *,
    batch_rows: int,
    posthoc: PostHoc | None = None,
    param_shapes: dict | None = None,
    seed: int = 0,
    role: int = 0,
) -> Iterator[tuple[str, object, dict[str, np.ndarray]]]:
    """(run_id, keys table, arrays) per batch, post-hoc defense applied (deterministically)."""
    for r, run_id in enumerate(runs):
        batches = source.iter_batches(store, run_id, params=params, batch_rows=batch_rows)
        for b, batch in enumerate(batches):
            arrays = batch.arrays
            if posthoc is not None:
                rng = posthoc_rng(seed, r, b, role)
                arrays = posthoc(dict(arrays), param_shapes=param_shapes, rng=rng)
            yield run_id, batch.keys, arrays


def shadow_moments(batches: Iterator[tuple[str, object, dict]], params: list[str]) -> dict:
    """One streaming pass: {param: Moments} over every row of every batch."""
    moments: dict[str, Moments] = {}
    for _, _, arrays in batches:
        for p in params:
            x = arrays[p]  # [B, numel]
            if p not in moments:
                moments[p] = Moments.zeros(x.shape[1])
            moments[p].update(x)
    return moments


def normalise_arrays(arrays: dict[str, np.ndarray], stats: dict[str, tuple]) -> dict:
    """{param: normalised float32 [B, numel]} for the params in `stats` ({p: (mean, std)})."""
    return {p: normalise(arrays[p], *stats[p]) for p in stats}
