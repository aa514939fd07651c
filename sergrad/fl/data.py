"""Load an FL dataset: utterance tables joined with feature tables, validated.

`DataConfig.utterances[i]` pairs with `DataConfig.features[i]` (local paths or pyarrow.fs
URIs such as s3://bucket/x.parquet); several pairs are concatenated (a shadow set = two
corpora). Every utterance must have a feature vector; features without an utterance are
ignored (a feature cache may cover more than one table).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sergrad.errors import ConfigError, DataError
from sergrad.fl.config import DataConfig
from sergrad.schema import EMOTION_INDEX, FEATURE_ID, FEATURE_VECTOR, GENDERS, SPEAKER_COLUMNS

FEATURE_SET_META_KEY = b"sergrad.features.feature_set"  # JSON string (sergrad.features.table)


@dataclass(frozen=True, eq=False)
class Dataset:
    """All utterances of a run, one row each (N rows, D features)."""

    x: np.ndarray  # [N, D] float32, raw (not normalised)
    emotion: np.ndarray  # [N] int64 in 0..3 (schema.EMOTIONS)
    utt_id: np.ndarray  # [N] str
    speaker_id: np.ndarray  # [N] str
    gender: np.ndarray  # [N] str, F | M
    corpus: np.ndarray  # [N] str
    feature_set: str = "unknown"
    # (corpus, speaker_id) -> the speaker columns the utterance table records (age, language,
    # ...; schema.SPEAKER_COLUMNS); ground truth for the clients side table, never a feature
    speakers: dict = dataclasses.field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def dim(self) -> int:
        return int(self.x.shape[1])

    @property
    def corpora(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.corpus.tolist())))


def load_dataset(data: DataConfig) -> Dataset:
    """Read and join every (utterances, features) pair of `data`; see the module docstring."""
    if not data.features or len(data.features) != len(data.utterances):
        raise ConfigError(
            f"data.features ({len(data.features)} files) and data.utterances "
            f"({len(data.utterances)} files) must be non-empty and pair up one to one"
        )
    parts = [_load_pair(u, f) for u, f in zip(data.utterances, data.features)]
    dims = {p.dim for p in parts}
    if len(dims) > 1:
        listing = ", ".join(f"{f}: {p.dim}" for f, p in zip(data.features, parts))
        raise DataError(f"feature dimensions differ between files: {listing}")
    names = sorted({p.feature_set for p in parts})
    return Dataset(
        x=np.concatenate([p.x for p in parts]),
        emotion=np.concatenate([p.emotion for p in parts]),
        utt_id=np.concatenate([p.utt_id for p in parts]),
        speaker_id=np.concatenate([p.speaker_id for p in parts]),
        gender=np.concatenate([p.gender for p in parts]),
        corpus=np.concatenate([p.corpus for p in parts]),
        feature_set="+".join(names),
        speakers={k: v for p in parts for k, v in p.speakers.items()},
    )


def _open(uri: str) -> tuple[pafs.FileSystem, str]:
    from sergrad.store import open_filesystem  # the one store-opening path (timeouts)

    return open_filesystem(uri)


def _read(uri: str) -> pa.Table:
    try:
        fs, path = _open(uri)
        return pq.read_table(path, filesystem=fs)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{uri}: cannot read parquet: {exc}") from exc


def _feature_matrix(table: pa.Table, uri: str) -> np.ndarray:
    if FEATURE_ID not in table.column_names or FEATURE_VECTOR not in table.column_names:
        raise DataError(f"{uri}: feature table needs columns {FEATURE_ID!r}, {FEATURE_VECTOR!r}")
    col = table.column(FEATURE_VECTOR).combine_chunks()
    if len(col) == 0:
        raise DataError(f"{uri}: no feature vectors")
    if pa.types.is_fixed_size_list(col.type):
        dim = col.type.list_size
    else:
        lengths = np.asarray(pa.compute.list_value_length(col))
        dim = int(lengths[0])
        if (lengths != dim).any():
            raise DataError(f"{uri}: feature vectors of different lengths {sorted(set(lengths))}")
    values = np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    return values.reshape(len(col), dim)


def _load_pair(utt_uri: str, feat_uri: str) -> Dataset:
    utts = _read(utt_uri)
    feats = _read(feat_uri)
    need = ["utt_id", "corpus", "speaker_id", "gender", "emotion"]
    missing = [c for c in need if c not in utts.column_names]
    if missing:
        raise DataError(f"{utt_uri}: utterance table lacks columns {missing}")
    x_all = _feature_matrix(feats, feat_uri)
    row_of = {u: i for i, u in enumerate(feats.column(FEATURE_ID).to_pylist())}
    utt_id = np.asarray(utts.column("utt_id").to_pylist(), dtype=object)
    rows = np.array([row_of.get(u, -1) for u in utt_id], dtype=np.int64)
    absent = utt_id[rows < 0]
    if len(absent):
        raise DataError(
            f"{feat_uri}: no features for {len(absent)} utterance(s) of {utt_uri}, "
            f"e.g. {', '.join(map(str, absent[:5]))}"
        )
    x = x_all[rows]
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise DataError(
            f"{feat_uri}: NaN/inf features for {int(bad.sum())} utterance(s), "
            f"e.g. {', '.join(map(str, utt_id[bad][:5]))}"
        )
    emotion_names = np.asarray(utts.column("emotion").to_pylist(), dtype=object)
    unknown = sorted({str(e) for e in emotion_names if e not in EMOTION_INDEX})
    if unknown:
        raise DataError(f"{utt_uri}: unknown emotion(s) {unknown}; valid: {list(EMOTION_INDEX)}")
    gender = np.asarray(utts.column("gender").to_pylist(), dtype=object)
    unknown = sorted({str(g) for g in gender if g not in GENDERS})
    if unknown:
        raise DataError(f"{utt_uri}: unknown gender(s) {unknown}; valid: {list(GENDERS)}")
    meta = feats.schema.metadata or {}
    name = json.loads(meta[FEATURE_SET_META_KEY]) if FEATURE_SET_META_KEY in meta else None
    return Dataset(
        x=np.ascontiguousarray(x, dtype=np.float32),
        emotion=np.array([EMOTION_INDEX[e] for e in emotion_names], dtype=np.int64),
        utt_id=utt_id,
        speaker_id=np.asarray(utts.column("speaker_id").to_pylist(), dtype=object),
        gender=gender,
        corpus=np.asarray(utts.column("corpus").to_pylist(), dtype=object),
        feature_set=name or Path(feat_uri.rsplit("/", 1)[-1]).stem,
        speakers=_speaker_columns(utts),
    )


def _speaker_columns(utts) -> dict:
    """(corpus, speaker_id) -> {column: the speaker's first non-null value} for the
    schema.SPEAKER_COLUMNS the table has (a speaker's rows agree; corpora.table checks)."""
    cols = [c for c in SPEAKER_COLUMNS if c in utts.column_names]
    if not cols:
        return {}
    data = utts.select(["corpus", "speaker_id", *cols]).to_pydict()
    out: dict = {}
    for i, key in enumerate(zip(data["corpus"], data["speaker_id"])):
        row = out.setdefault(key, dict.fromkeys(cols))
        for c in cols:
            if row[c] is None and data[c][i] is not None:
                row[c] = data[c][i]
    return out
