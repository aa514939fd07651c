"""HarvestWriter: stream the server's view of every client update into one Parquet file.

Rows are buffered `harvest.rows_per_group` at a time (at most MAX_GROUP_ELEMENTS values per
group, e.g. 16 rows of the paper's 256x988 fc1) and flushed as one row group. `add` (one
update) and `add_many` (a round's, as `fl.run` hands them over: rows of one stacked tensor are
copied with one conversion per parameter) check the updates (`harvest_checks`) and copy
(convert) their tensors into the buffer; the finite
check, the sign and byte-plane split (`harvest_codec.PlaneEncoder`) and the Parquet write
with zstd (most of the cost) run in one background thread, overlapping the next rows'
training. Two row-group buffers alternate and a flush first waits for the previous group's
write, so memory is bounded by two row groups, the encoder's scratch (2.25-2.5 more) and one
group's compressed pages however many rounds run. A background error (a NaN/inf or float16
overflow, a failed write) is raised by the next `add` or at the end of the `with` block. The
file is written under the store's `_tmp/` and published on a clean exit of the `with` block;
on an exception nothing is visible. With `harvest.sketch` the buffers hold float32 tensors
and the background thread stores their row/column statistics (`harvest_format.sketch_rowcol`).
torch is imported lazily (only `add` touches tensors).

    with HarvestWriter(store, run_id=rid, param_names=names, param_shapes=shapes,
                       config=cfg, harvest=cfg.harvest) as hw:
        hw.add_many(updates_of_round)  # rounds not wanted are skipped
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from sergrad import schema
from sergrad.config import canonical_json
from sergrad.errors import ConfigError, DataError
from sergrad.fl import harvest_format as fmt
from sergrad.fl.harvest_checks import check_tensor, nonfinite_error, update_keys
from sergrad.fl.records import check_partition_value, versions
from sergrad.store import Store

MAX_GROUP_ELEMENTS = 4 << 20  # values per row group (16 MiB as float32)
FLOAT16_MAX_EXCLUSIVE = 65520.0  # |x| >= this rounds to inf in float16 (65504 is the max)

if TYPE_CHECKING:
    from sergrad.fl.config import HarvestConfig
    from sergrad.fl.update import ClientUpdate


class HarvestWriter:
    """Context manager writing `updates/run_id=<run_id>/updates.parquet`.

    n_rows: rows added so far. bytes_written: size of the published file after exit (0 if none).
    background: encode and write row groups in a background thread (default) or inline.
    """

    def __init__(
        self,
        store: Store,
        *,
        run_id: str,
        param_names: Sequence[str],
        param_shapes: dict[str, tuple[int, ...]],
        config: Any,
        harvest: HarvestConfig,
        background: bool = True,
    ) -> None:
        check_partition_value(run_id, what="run_id")
        missing = [n for n in param_names if n not in param_shapes]
        if missing:
            raise ConfigError(f"harvest: no shape given for parameters {missing}")
        self.store = store
        self.run_id = run_id
        self.enabled = bool(harvest.enabled)
        self.params = fmt.check_harvest(harvest, list(param_names))
        self.dtype = harvest.dtype
        self.sketch = bool(getattr(harvest, "sketch", False))
        self.shapes = {n: tuple(int(s) for s in param_shapes[n]) for n in self.params}
        self.numel = {n: fmt.numel(self.shapes[n]) for n in self.params}
        # what lands in the file: the tensors, or their sketches (harvest_format's doc)
        stored = {n: fmt.sketch_shape(s) if self.sketch else s for n, s in self.shapes.items()}
        self.stored_shapes = stored
        self.stored_numel = {n: fmt.numel(s) for n, s in stored.items()}
        sel = harvest.rounds
        self.selection = fmt.RoundSelection.parse(list(sel) if isinstance(sel, tuple) else sel)
        # rows per row group: the configured count, capped so that one group holds at most
        # MAX_GROUP_ELEMENTS values (Parquet encoding takes ~9-17 bytes per value at flush)
        per_row = max(1, sum(self.numel.values()))
        self.rows_per_group = max(1, min(harvest.rows_per_group, MAX_GROUP_ELEMENTS // per_row))
        self.schema = self._schema(config)
        self.n_rows = 0
        self.bytes_written = 0
        self._keys: dict[str, list] = {f.name: [] for f in schema.UPDATE_KEYS}
        # two alternating sets of buffers: one being filled, one being written in the background
        self._bufs: list[dict[str, np.ndarray]] = [{}, {}]  # name -> [rows_per_group, numel]
        self._tensors: list[dict[str, Any]] = [{}, {}]  # name -> the buffer as a torch tensor
        self._cur = 0  # index of the set being filled
        self.background = bool(background)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future | None = None  # the previous row group's write
        self._cm: contextlib.AbstractContextManager | None = None
        self._pq = None
        self._encoders: dict[str, Any] = {}  # name -> harvest_codec.PlaneEncoder (writer side)
        self.write_cpu_s = 0.0  # CPU seconds spent encoding and writing (in whichever thread)

    def _schema(self, config: Any) -> pa.Schema:
        fields = list(schema.UPDATE_KEYS) + [
            pa.field(n, fmt.column_type(self.dtype, self.stored_numel[n])) for n in self.params
        ]
        shapes = self.stored_shapes
        meta = {
            schema.META_PARAM_NAMES: json.dumps(self.params),
            schema.META_PARAM_SHAPES: json.dumps({n: list(s) for n, s in shapes.items()}),
            schema.META_DTYPE: self.dtype,
            fmt.META_ENCODING: fmt.ENCODING,
            schema.META_CONFIG: canonical_json(config),
            schema.META_VERSIONS: json.dumps(versions(), sort_keys=True),
        }
        if self.sketch:
            meta[fmt.META_SKETCH] = fmt.SKETCH
            meta[fmt.META_SKETCH_OF] = json.dumps({n: list(s) for n, s in self.shapes.items()})
        return pa.schema(fields, metadata=meta)

    @property
    def path(self) -> str:
        return self.store.file_path(
            fmt.TABLE, partition=(fmt.PARTITION, self.run_id), name=fmt.FILE_NAME
        )

    # --- context manager ---------------------------------------------------------------
    def __enter__(self) -> HarvestWriter:
        if self.enabled:
            self._cm = self.store.open_writer(
                fmt.TABLE,
                self.schema,
                partition=(fmt.PARTITION, self.run_id),
                name=fmt.FILE_NAME,
                options=fmt.writer_options(max([1, *self.stored_numel.values()])),  # largest plane
            )
            self._pq = self._cm.__enter__()
            if self.background:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="harvest-writer")
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._cm is None:
            return False
        cm, self._cm = self._cm, None
        if exc_type is None:
            try:
                self._flush()
                self._wait()
            except BaseException as flush_exc:  # publish nothing, re-raise the flush error
                self._shutdown()
                if not cm.__exit__(type(flush_exc), flush_exc, flush_exc.__traceback__):
                    raise
                return False
            self._shutdown()
            cm.__exit__(None, None, None)
            self.bytes_written = self.store.fs.get_file_info(self.path).size or 0
            return False
        self._clear()
        self._shutdown()  # the writer must be idle before the file is discarded
        return bool(cm.__exit__(exc_type, exc, tb))

    def _wait(self) -> None:
        """Wait for the pending background write; re-raise its error here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _shutdown(self) -> None:
        """Stop the background thread (after its write ends; errors dropped) and free buffers."""
        with contextlib.suppress(BaseException):
            self._wait()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._bufs = [{}, {}]
        self._tensors = [{}, {}]

    # --- rows ----------------------------------------------------------------------------
    def wants_round(self, round: int) -> bool:
        if round < 1:
            raise DataError(f"harvest: round {round} is invalid; rounds are 1-based")
        return self.enabled and self.selection.wants(round)

    def add(self, update: ClientUpdate) -> None:
        """Buffer one update (rounds not wanted are skipped): `add_many([update])`."""
        self.add_many([update])

    def add_many(self, updates: Sequence[ClientUpdate]) -> None:
        """Buffer updates in their order (rounds not wanted are skipped). Raises DataError on a
        missing parameter, a wrong shape or a bad key, naming the round and client; every
        update is checked before any is copied, so a rejected one leaves none of them behind.
        NaN/inf (or a float16 overflow) is found by the background write of its row group,
        which raises DataError later (module doc) and publishes nothing. Consecutive updates
        whose tensors are consecutive rows of one tensor (the fast engine's round) are copied
        with one conversion copy per parameter. Only what the server sees is written: the
        client's ground truth goes to the `clients` side table (`records.write_clients`)."""
        updates = [u for u in updates if self.wants_round(u.round)]
        if not updates:
            return
        if self._pq is None:
            raise RuntimeError("HarvestWriter.add outside its `with` block")
        if self._pending is not None and self._pending.done():
            self._wait()  # surface a background write error as soon as it is known
        keys = [update_keys(u) for u in updates]
        for u in updates:  # every check before any copy
            for n in self.params:
                check_tensor(u.tensors, n, self.shapes[n], u)
        done = 0
        while done < len(updates):
            i = len(self._keys["round"])
            take = min(self.rows_per_group - i, len(updates) - done)
            self._copy_rows(updates[done : done + take], i)
            for k in keys[done : done + take]:
                for name, value in k.items():
                    self._keys[name].append(value)
            self.n_rows += take
            done += take
            if i + take >= self.rows_per_group:
                self._flush()

    def _copy_rows(self, updates: Sequence[ClientUpdate], first: int) -> None:
        """Copy (convert) the updates' tensors into rows first.. of the filling buffers."""
        import torch

        def f32(t):  # float64 etc. go through float32 first, then copy_ rounds (torch's rule)
            return t if t.dtype == torch.float32 else t.to(torch.float32)

        blocks = self._blocks()
        with torch.no_grad():
            for n in self.params:
                dst = blocks[n][first : first + len(updates)]
                tensors = [u.tensors[n] for u in updates]
                src = row_block(tensors)
                if src is not None:  # one conversion copy for the whole block
                    dst.copy_(f32(src))
                    continue
                for row, t in zip(dst, tensors):
                    row.view(t.shape).copy_(f32(t))

    def _blocks(self) -> dict[str, Any]:
        """name -> the filling buffer as a torch tensor [rows_per_group, numel] in the stored
        dtype (bfloat16: the uint16 buffer seen as torch.bfloat16; sketch: float32)."""
        bufs = self._bufs[self._cur]
        if not bufs:
            import torch

            np_dtype = {"float32": np.float32, "float16": np.float16, "bfloat16": np.int16}
            dtype = np.float32 if self.sketch else np_dtype[self.dtype]
            views = {}
            for n in self.params:
                buf = np.empty((self.rows_per_group, self.numel[n]), dtype=dtype)
                bufs[n] = buf.view(np.uint16) if dtype is np.int16 else buf
                rows = torch.from_numpy(buf)
                views[n] = rows.view(torch.bfloat16) if dtype is np.int16 else rows
            self._tensors[self._cur] = views
        return self._tensors[self._cur]

    def _flush(self) -> None:
        """Hand the filled buffers to the writer (background or inline) and switch buffers."""
        n_rows = len(self._keys["round"])
        if not n_rows:
            return
        keys = [pa.array(self._keys[f.name], type=f.type) for f in schema.UPDATE_KEYS]
        rows = [self._bufs[self._cur][n][:n_rows] for n in self.params]  # views
        self._clear()
        if self._pool is None:
            self._write(keys, rows)  # splits and encodes; buffers reusable after it
            return
        self._wait()  # the previous group is written: its buffers are free for the next rows
        self._pending = self._pool.submit(self._write, keys, rows)
        self._cur = 1 - self._cur

    def _write(self, keys: list[pa.Array], rows: list[np.ndarray]) -> None:
        """Check, split each parameter's rows into sbs1 values and write one row group."""
        start = time.thread_time()
        try:
            if self.sketch:
                rows = [self._sketch(n, r, keys) for n, r in zip(self.params, rows)]
            cols = list(keys)
            for n, r in zip(self.params, rows):
                cols.append(self._encoder(n)(r))
                self._check_finite(n, r, keys)
            batch = pa.RecordBatch.from_arrays(cols, schema=self.schema)
            self._pq.write_batch(batch, row_group_size=batch.num_rows)
        finally:
            self.write_cpu_s += time.thread_time() - start

    def _encoder(self, name: str):
        from sergrad.fl.harvest_codec import PlaneEncoder

        if name not in self._encoders:
            self._encoders[name] = PlaneEncoder(
                self.dtype, rows=self.rows_per_group, numel=self.stored_numel[name]
            )
        return self._encoders[name]

    def _check_finite(self, name: str, rows: np.ndarray, keys: list[pa.Array]) -> None:
        """DataError naming the first row of the group whose stored `name` holds NaN/inf
        (the encoder's top plane: exponent all ones; a float16 overflow is an inf)."""
        bad = self._encoders[name].nonfinite_rows()
        if len(bad):
            i = int(bad[0])
            raise nonfinite_error(name, rows[i], keys, i, dtype=self.dtype, sketch=self.sketch)

    def _sketch(self, name: str, rows: np.ndarray, keys: list[pa.Array]) -> np.ndarray:
        """Full float32 rows [R, numel] -> their sketches in the stored dtype [R, sketch]."""
        sk = fmt.sketch_rowcol(rows, self.shapes[name])
        if self.dtype == "float16" and np.abs(sk).max(initial=0.0) >= FLOAT16_MAX_EXCLUSIVE:
            bad = int(np.argmax(np.abs(sk).max(axis=1)))
            raise DataError(f"update of round {keys[0][bad].as_py()} client {keys[1][bad].as_py()}: "
                            f"the sketch of {name!r} overflows float16 (|x| > 65504); use "
                            "harvest.dtype float32 or bfloat16")  # fmt: skip
        return fmt.encode_numpy(sk, self.dtype)

    def _clear(self) -> None:
        for v in self._keys.values():
            v.clear()


def row_block(tensors: Sequence[Any]) -> Any:
    """The tensors as one [len, numel] view when each is the next row of one contiguous
    tensor (same storage, dtype and device, consecutive addresses), else None."""
    t0 = tensors[0]
    if not t0.is_contiguous():
        return None
    numel, step, storage = t0.numel(), t0.numel() * t0.element_size(), t0.untyped_storage()
    base = t0.data_ptr()
    for j, t in enumerate(tensors[1:], 1):
        if (
            t.data_ptr() != base + j * step
            or t.dtype != t0.dtype
            or not t.is_contiguous()
            or t.untyped_storage().data_ptr() != storage.data_ptr()
        ):
            return None
    return t0.as_strided((len(tensors), numel), (numel, 1))
