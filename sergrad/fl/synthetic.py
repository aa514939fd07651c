"""In-memory datasets for tests and benchmarks (no files): random but learnable.

Each utterance's features = emotion centre + speaker offset + gender offset + noise, so a
model can learn emotion (UAR well above 25%) and a speaker's gender leaks into its updates.

>>> ds = random_dataset(n_speakers=4, utts_per_speaker=10, dim=8, seed=0)
>>> ds.x.shape, sorted(set(ds.gender.tolist()))
((40, 8), ['F', 'M'])
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sergrad.fl.data import Dataset


def random_dataset(
    *,
    n_speakers: int,
    utts_per_speaker: int | list[int],
    dim: int,
    seed: int,
    corpus: str = "synth-a",
    separation: float = 1.5,
) -> Dataset:
    """Speakers s000.. alternate F/M; emotions cycle 0..3 within each speaker."""
    rng = np.random.default_rng(seed)
    sizes = (
        [utts_per_speaker] * n_speakers if isinstance(utts_per_speaker, int) else utts_per_speaker
    )
    centres = rng.normal(size=(4, dim)) * separation
    gender_axis = rng.normal(size=dim)
    xs, ys, spk, gen = [], [], [], []
    for s, n in enumerate(sizes):
        g = "FM"[s % 2]
        y = np.arange(n) % 4
        offset = rng.normal(size=dim) * 0.5 + (1.0 if g == "M" else -1.0) * gender_axis
        xs.append(centres[y] + offset + rng.normal(size=(n, dim)))
        ys.append(y)
        spk += [f"s{s:03d}"] * n
        gen += [g] * n
    n_total = sum(sizes)
    return Dataset(
        x=np.concatenate(xs).astype(np.float32),
        emotion=np.concatenate(ys).astype(np.int64),
        utt_id=np.array([f"{corpus}-u{i:06d}" for i in range(n_total)], dtype=object),
        speaker_id=np.array(spk, dtype=object),
        gender=np.array(gen, dtype=object),
        corpus=np.array([corpus] * n_total, dtype=object),
        feature_set="random",
    )


def write_tables(ds: Dataset, directory: str | Path, *, stem: str = "random") -> tuple[str, str]:
    """Write `ds` as an utterance table and a feature table; return (utterances, features)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sergrad.schema import EMOTIONS, SPEAKER_COLUMNS, UTTERANCES, features_schema

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    n = ds.n
    utts = pa.table(
        {
            "utt_id": ds.utt_id.tolist(),
            "corpus": ds.corpus.tolist(),
            "speaker_id": ds.speaker_id.tolist(),
            "gender": ds.gender.tolist(),
            "emotion": [EMOTIONS[e] for e in ds.emotion],
            "raw_label": [EMOTIONS[e] for e in ds.emotion],
            "path": [f"{u}.wav" for u in ds.utt_id],
            "sample_rate": [16000] * n,
            "duration_s": [1.0] * n,
            "session": [""] * n,
            **{col: [None] * n for col in SPEAKER_COLUMNS},
        },
        schema=UTTERANCES,
    )
    flat = pa.array(ds.x.reshape(-1), type=pa.float32())
    vectors = pa.FixedSizeListArray.from_arrays(flat, ds.dim)
    feats = pa.table([pa.array(ds.utt_id.tolist()), vectors], schema=features_schema(ds.dim))
    utt_path, feat_path = directory / f"{stem}.utterances.parquet", directory / f"{stem}.parquet"
    pq.write_table(utts, utt_path)
    pq.write_table(feats, feat_path)
    return str(utt_path), str(feat_path)
