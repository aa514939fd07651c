"""Decoded harvest batches kept in the process: evaluations of one run in one worker read and
decode its updates once.

A sweep orders its evaluations by target run (`sweep.jobs.by_target`), so the evaluations of
one target (attack models, post-hoc noise levels) follow each other in a trial, and a worker
process runs many trials. Each reads the target's updates again: Parquet pages, zstd and the
sbs1 decode were about a fifth of a fast evaluation. Here the first read keeps the batches
and the next ones replay them.

The key is the store, the run, the parameters, the batch size and the harvest file's size and
modification time, so a re-written file is a new key. The cache holds at most CACHE_BYTES of
float32 arrays (least recently used runs go first); a run bigger than that streams as before
and is not kept. The arrays are read-only: a consumer that wrote into a batch would change
the next evaluation's input, so it raises instead. `clear()` empties it (tests).

>>> CACHE_BYTES >= 0
True
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence

from sergrad.fl.harvest_read import UpdateBatch, iter_update_batches, update_path
from sergrad.store import Store

CACHE_BYTES = int(float(os.environ.get("SERGRAD_BATCH_CACHE_MB", "256")) * 2**20)

_batches: OrderedDict[tuple, list[UpdateBatch]] = OrderedDict()
_sizes: dict[tuple, int] = {}


def batches(
    store: Store, run_id: str, *, params: Sequence[str], batch_rows: int
) -> Iterator[UpdateBatch]:
    """`iter_update_batches(store, run_id, params=..., batch_rows=...)`, from the cache when
    this process read the same file before (arrays read-only either way)."""
    key = _key(store, run_id, params, batch_rows)
    if key in _batches:
        _batches.move_to_end(key)
        yield from _batches[key]
        return
    kept: list[UpdateBatch] | None = [] if key is not None and CACHE_BYTES > 0 else None
    size = 0
    for batch in iter_update_batches(store, run_id, params=list(params), batch_rows=batch_rows):
        for a in batch.arrays.values():
            a.setflags(write=False)
        if kept is not None:
            size += sum(a.nbytes for a in batch.arrays.values())
            kept = kept if size <= CACHE_BYTES else None
            if kept is not None:
                kept.append(batch)
        yield batch
    if kept is not None:
        _put(key, kept, size)


def clear() -> None:
    _batches.clear()
    _sizes.clear()


def held_bytes() -> int:
    return sum(_sizes.values())


def _key(store: Store, run_id: str, params: Sequence[str], batch_rows: int) -> tuple | None:
    """None when the file cannot be looked at (the reader then raises its own error)."""
    try:
        info = store.fs.get_file_info(update_path(store, run_id))
    except (OSError, ValueError):
        return None
    if info.size is None:
        return None
    return (store.uri, run_id, tuple(params), batch_rows, info.size, info.mtime_ns)


def _put(key: tuple, kept: list[UpdateBatch], size: int) -> None:
    while _batches and held_bytes() + size > CACHE_BYTES:
        old, _ = _batches.popitem(last=False)
        _sizes.pop(old, None)
    _batches[key] = kept
    _sizes[key] = size
