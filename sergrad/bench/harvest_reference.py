"""The harvest layout before the binary values, kept as the reference `bench fl` measures.

`ReferenceWriter` is `HarvestWriter` (same buffering, checks and background thread) writing
the previous plain Parquet layout (commit 164c6b6 .. f85deec^): one fixed-size list column
per parameter (float32 / halffloat / uint16 bits), Parquet BYTE_STREAM_SPLIT encoding and
zstd at pyarrow's default level. It is a benchmark baseline only: the store never holds it
(DuckDB cannot read its float16 columns) and `harvest_read` still reads such files.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from sergrad.fl import harvest_format as fmt
from sergrad.fl.harvest_write import HarvestWriter

OPTIONS = {
    "use_dictionary": ["speaker_id", "kind"],
    "use_byte_stream_split": True,
    "compression": "zstd",
    "write_statistics": ["round", "client_id", "n_samples"],
}


class ReferenceWriter(HarvestWriter):
    """HarvestWriter with the previous layout (fixed-size lists, Parquet byte-stream split)."""

    def __enter__(self) -> ReferenceWriter:
        if self.sketch:
            raise ValueError("the reference layout has no sketch")
        self.schema = pa.schema(
            [
                f if f.name not in self.params else pa.field(
                    f.name, pa.list_(fmt.DTYPES[self.dtype], self.numel[f.name])
                )
                for f in self.schema
            ],
            metadata={k: v for k, v in self.schema.metadata.items() if k != fmt.META_ENCODING},
        )  # fmt: skip
        if self.enabled:
            self._cm = self.store.open_writer(
                fmt.TABLE, self.schema, partition=(fmt.PARTITION, self.run_id),
                name=fmt.FILE_NAME, options=OPTIONS,
            )  # fmt: skip
            self._pq = self._cm.__enter__()
            if self.background:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(1, thread_name_prefix="harvest-reference")
        return self

    def _write(self, keys: list[pa.Array], rows: list[np.ndarray]) -> None:
        start = time.thread_time()
        try:
            self._write_lists(keys, rows)
        finally:
            self.write_cpu_s += time.thread_time() - start

    def _write_lists(self, keys: list[pa.Array], rows: list[np.ndarray]) -> None:
        cols = list(keys)
        for n, r in zip(self.params, rows):
            flat = pa.array(np.ascontiguousarray(r).reshape(-1))  # [rows * numel]
            cols.append(pa.FixedSizeListArray.from_arrays(flat, self.numel[n]))
        batch = pa.RecordBatch.from_arrays(cols, schema=self.schema)
        self._pq.write_batch(batch, row_group_size=batch.num_rows)
