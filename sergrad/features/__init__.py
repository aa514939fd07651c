"""sergrad.features: one fixed-length float32 vector per utterance, cached as Parquet.

Public API (imported lazily, so `import sergrad.features` does not import torch):

    FEATURE_SETS                      registry of FeatureSet specs (see base.py)
    extract_features(utterances, *, feature_set="combined", params=None, workers=1,
                     strict=False, progress=True, batch_size=32) -> (pa.Table, Problems)
    features_cached(utterances_path, *, feature_set, params, cache_dir, ...) -> Path
    write_features(table, path) / read_features(path_or_uri) -> (utt_ids, X [N, D], meta)

Feature sets: mfcc_stats, logmel_stats, prosody, combined (default), wav2vec2_base,
hubert_base, wavlm_base, emobase, egemaps (openSMILE extra), external.
"""

from __future__ import annotations

import importlib
from typing import Any

# Modules that register feature sets into base.FEATURE_SETS when imported.
SET_MODULES: tuple[str, ...] = (
    "sergrad.features.handcrafted",
    "sergrad.features.ssl",
    "sergrad.features.opensmile_sets",
    "sergrad.features.external",
)
_LAZY: dict[str, str] = {
    "FEATURE_SETS": "sergrad.features.base",
    "FeatureSet": "sergrad.features.base",
    "get_feature_set": "sergrad.features.base",
    "extract_features": "sergrad.features.extract",
    "features_cached": "sergrad.features.cache",
    "cache_key": "sergrad.features.keys",
    "read_features": "sergrad.features.table",
    "write_features": "sergrad.features.table",
}
__all__ = sorted(_LAZY)


def load_sets() -> None:
    """Import every feature-set module so FEATURE_SETS is complete (idempotent)."""
    for name in SET_MODULES:
        importlib.import_module(name)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'sergrad.features' has no attribute {name!r}")
    if name in ("FEATURE_SETS", "get_feature_set"):
        load_sets()
    return getattr(importlib.import_module(_LAZY[name]), name)
