"""Cache keys: a hash of (utterance table content, feature set, resolved params, code version).

The utterance part covers each row's utt_id and path and, for sets that read audio, each
file's size and modification time, so re-recorded or repaired audio gets a new key.
Parameters are resolved against the set's defaults first, so `{}` and the explicit defaults
share a key. Feature sets may add outside material (a weight file, the user's table).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from typing import Any

import pyarrow as pa

from sergrad.errors import DataError
from sergrad.features.base import FEATURE_CODE_VERSION, get_feature_set, params_json, resolve_params

REQUIRED = ("utt_id", "path")


def utterance_columns(
    utterances: pa.Table, *, where: str = "utterance table"
) -> tuple[list[str], list[str]]:
    """(utt_ids, paths) after checking the columns exist, have no nulls and ids are unique."""
    missing = [c for c in REQUIRED if c not in utterances.column_names]
    if missing:
        raise DataError(f"{where}: missing columns {missing}; has {utterances.column_names}")
    ids = [str(u) if u is not None else None for u in utterances.column("utt_id").to_pylist()]
    paths = [str(p) if p is not None else None for p in utterances.column("path").to_pylist()]
    nulls = [i for i, (u, p) in enumerate(zip(ids, paths)) if u is None or p is None]
    if nulls:
        raise DataError(f"{where}: null utt_id or path in rows {nulls[:5]}")
    dupes = sorted(u for u, n in Counter(ids).items() if n > 1)
    if dupes:
        raise DataError(f"{where}: duplicate utt_ids {dupes[:5]}")
    return ids, paths  # type: ignore[return-value]


def utterances_hash(utterances: pa.Table, *, audio_stats: bool = True) -> str:
    ids, paths = utterance_columns(utterances)
    digest = hashlib.sha256()
    for utt_id, path in zip(ids, paths):
        stat = "-"
        if audio_stats:
            try:
                st = os.stat(path)
                stat = f"{st.st_size}:{st.st_mtime_ns}"
            except OSError:
                stat = "missing"
        digest.update(f"{utt_id}\0{path}\0{stat}\n".encode())
    return digest.hexdigest()


def cache_key(
    utterances: pa.Table, *, feature_set: str, params: dict[str, Any] | None = None
) -> str:
    """Hex sha256 naming the features of `utterances` under (feature_set, params)."""
    spec = get_feature_set(feature_set)
    resolved = resolve_params(feature_set, params, spec.defaults)
    material = {
        "utterances": utterances_hash(utterances, audio_stats=spec.reads_audio),
        "feature_set": feature_set,
        "params": json.loads(params_json(resolved)),
        "outside": spec.fingerprint(resolved),
        "version": FEATURE_CODE_VERSION,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
