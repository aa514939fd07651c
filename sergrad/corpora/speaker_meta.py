"""Extra speaker columns (age, dialect, ...) carried in the utterance table's metadata.

The utterance table has a fixed schema (`schema.UTTERANCES`); columns that describe a
speaker beyond gender ride along in the Parquet schema metadata under `sergrad.speakers`,
so every reader of the table keeps working and `speaker_columns(table)` gives them back.

>>> t = pa.table({"speaker_id": ["s1", "s2"]})
>>> t = attach(t, {"s1": {"age": "31"}, "s2": {"age": "45"}})
>>> speaker_columns(t).to_pylist()
[{'speaker_id': 's1', 'age': '31'}, {'speaker_id': 's2', 'age': '45'}]
"""

from __future__ import annotations

import json

import pyarrow as pa

META_KEY = b"sergrad.speakers"


def attach(table: pa.Table, extra: dict[str, dict[str, str | None]]) -> pa.Table:
    """`table` with `extra` ({speaker_id: {column: value}}) in its schema metadata."""
    if not extra:
        return table
    columns = sorted({c for values in extra.values() for c in values})
    rows = {sid: [values.get(c) for c in columns] for sid, values in sorted(extra.items())}
    meta = dict(table.schema.metadata or {})
    meta[META_KEY] = json.dumps({"columns": columns, "speakers": rows}).encode()
    return table.replace_schema_metadata(meta)


def speaker_columns(table: pa.Table) -> pa.Table:
    """speaker_id plus the extra speaker columns (strings); just speaker_id when there are none."""
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw is None:
        ids = (
            sorted(set(table["speaker_id"].to_pylist()))
            if "speaker_id" in table.schema.names
            else []
        )
        return pa.table({"speaker_id": pa.array(ids, pa.string())})
    data = json.loads(raw)
    ids = list(data["speakers"])
    cols = {"speaker_id": pa.array(ids, pa.string())}
    for j, name in enumerate(data["columns"]):
        cols[name] = pa.array([data["speakers"][s][j] for s in ids], pa.string())
    return pa.table(cols)


def keep_metadata(source: pa.Table, target: pa.Table) -> pa.Table:
    """`target` with `source`'s speaker metadata (a cast or select drops it)."""
    raw = (source.schema.metadata or {}).get(META_KEY)
    if raw is None:
        return target
    return target.replace_schema_metadata({**(target.schema.metadata or {}), META_KEY: raw})
