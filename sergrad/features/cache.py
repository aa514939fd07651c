"""The features cache: `<cache_dir>/<feature_set>-<key[:20]>.parquet`, reused when present.

The key (sergrad.features.keys.cache_key) hashes the utterance table's content (utt_id, path,
audio size and mtime), the feature set, its resolved parameters and FEATURE_CODE_VERSION.
Files are written atomically (temp + rename), so a crash leaves either nothing or a complete
file. Problems met during extraction are stored in the file's metadata, so a cache hit can
still report them (and strict=True refuses a cached file that had any).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sergrad.errors import DataError
from sergrad.features.extract import extract_features
from sergrad.features.keys import cache_key
from sergrad.features.table import read_meta, write_features
from sergrad.problems import Problems

log = logging.getLogger(__name__)


def read_utterances(path: str | os.PathLike) -> pa.Table:
    """The utterance table at `path` (via sergrad.corpora when available)."""
    try:
        from sergrad.corpora import read_utterances as corpora_read
    except ImportError:
        corpora_read = None
    if corpora_read is not None:
        return corpora_read(path)
    try:
        return pq.read_table(str(path))
    except FileNotFoundError as exc:
        raise DataError(f"{path}: utterance table not found") from exc
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: unreadable utterance table ({exc})") from exc


def cache_path(cache_dir: str | os.PathLike, *, feature_set: str, key: str) -> Path:
    return Path(cache_dir) / f"{feature_set}-{key[:20]}.parquet"


def cached_problems(path: Path, *, key: str) -> Problems | None:
    """The stored problems if `path` is a complete cache file for `key`, else None."""
    if not path.is_file():
        return None
    try:
        meta = read_meta(pq.read_schema(path))
    except (OSError, pa.ArrowException):
        log.warning("ignoring unreadable cache file %s", path)
        return None
    if meta["cache_key"] != key:
        return None
    return Problems(items=[tuple(p) for p in meta["problems"] or []])


def features_cached(
    utterances_path: str | os.PathLike,
    *,
    feature_set: str = "combined",
    params: dict[str, Any] | None = None,
    cache_dir: str | os.PathLike,
    workers: int = 1,
    strict: bool = False,
    progress: bool = True,
    batch_size: int = 32,
) -> Path:
    """Path of the cached feature file for this utterance table, extracting it on a miss."""
    path, _ = features_cached_with_problems(
        utterances_path, feature_set=feature_set, params=params, cache_dir=cache_dir,
        workers=workers, strict=strict, progress=progress, batch_size=batch_size,
    )  # fmt: skip
    return path


def features_cached_with_problems(
    utterances_path: str | os.PathLike,
    *,
    feature_set: str = "combined",
    params: dict[str, Any] | None = None,
    cache_dir: str | os.PathLike,
    workers: int = 1,
    strict: bool = False,
    progress: bool = True,
    batch_size: int = 32,
) -> tuple[Path, Problems]:
    """As features_cached, also returning the problems (stored ones on a cache hit)."""
    utterances = read_utterances(utterances_path)
    key = cache_key(utterances, feature_set=feature_set, params=params)
    path = cache_path(cache_dir, feature_set=feature_set, key=key)
    problems = cached_problems(path, key=key)
    if problems is not None:
        log.info("reusing cached features %s", path)
        if strict and problems.count:
            raise DataError(f"{path}: cached features skipped files (strict): {problems.summary()}")
        return path, problems
    table, problems = extract_features(
        utterances, feature_set=feature_set, params=params, workers=workers,
        strict=strict, progress=progress, batch_size=batch_size,
    )  # fmt: skip
    write_features(table, path)
    return path, problems
