"""The update harvest: the server's view of every client update, streamed to Parquet.

Writer (`HarvestWriter`, needs torch only when adding updates) and reader (numpy + pyarrow,
never torch) of `updates/run_id=<id>/updates.parquet`; the format is spelled out in
`sergrad.fl.harvest_format`.
"""

from __future__ import annotations

from sergrad.fl.harvest_format import (
    DTYPES,
    ENCODING,
    RoundSelection,
    decode,
    decode_value,
    select_params,
    update_bytes_per_row,
)
from sergrad.fl.harvest_read import (
    UpdateBatch,
    UpdateMeta,
    iter_update_batches,
    read_update_keys,
    read_update_meta,
    update_path,
)
from sergrad.fl.harvest_write import HarvestWriter

__all__ = [
    "DTYPES",
    "ENCODING",
    "HarvestWriter",
    "RoundSelection",
    "UpdateBatch",
    "UpdateMeta",
    "decode",
    "decode_value",
    "iter_update_batches",
    "read_update_keys",
    "read_update_meta",
    "select_params",
    "update_bytes_per_row",
    "update_path",
]
