"""Speaker-independent folds, clients, local train/validation splits and normalisation.

- Speakers are sorted by (corpus, speaker_id); fold k is the k-th contiguous block of that
  order (np.array_split sizes, no shuffle), so IEMOCAP fold k = session k+1.
- Each training speaker's utterances are shuffled (seeded) and split into m near-equal
  clients (m = DataConfig.clients_per_speaker, 0 = CLIENTS_PER_SPEAKER[corpus]).
- Each client keeps the first round(n * (1 - val_fraction)) of its shuffled rows for local
  training and the rest for local validation (at least one training row).
- normalise="speaker" (paper): every speaker, training or test, is z-normalised with the
  mean/std of all its own utterances. normalise="client" (faithful FL): each client uses its
  own training-split mean/std for its train and validation rows; test speakers use their own
  statistics. No labels are used by either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sergrad.errors import ConfigError, DataError
from sergrad.fl.config import DataConfig
from sergrad.fl.data import Dataset
from sergrad.fl.schedule import generator, round_half_up
from sergrad.schema import GENDERS

CLIENTS_PER_SPEAKER: dict[str, int] = {"crema-d": 1, "iemocap": 10, "msp-improv": 10}
DEFAULT_CLIENTS_PER_SPEAKER = 1  # any other corpus (synthetic corpora included)


@dataclass(frozen=True, eq=False)
class Client:
    client_id: int
    speaker_id: str
    gender: str
    corpus: str
    train_idx: np.ndarray  # [n_train] int64 rows of Partition.x
    val_idx: np.ndarray  # [n_val] int64

    @property
    def n_train(self) -> int:
        return len(self.train_idx)


@dataclass(frozen=True, eq=False)
class Partition:
    x: np.ndarray  # [N, D] float32, normalised
    y: np.ndarray  # [N] int64 emotion
    clients: tuple[Client, ...]
    test_idx: np.ndarray  # rows of the test fold's speakers
    train_speakers: tuple[str, ...]
    test_speakers: tuple[str, ...]

    @property
    def val_idx(self) -> np.ndarray:
        return np.concatenate([c.val_idx for c in self.clients])


def speaker_keys(ds: Dataset) -> np.ndarray:
    """Speaker label per row: speaker_id, or corpus/speaker_id when corpora are mixed."""
    if len(ds.corpora) == 1:
        return ds.speaker_id.astype(str)
    return np.array([f"{c}/{s}" for c, s in zip(ds.corpus, ds.speaker_id)], dtype=object)


def unprefixed(corpus: str | None, speaker_key: str) -> str:
    """The corpus's own speaker id of a `speaker_keys` label ("corpus/speaker_id" when
    corpora are mixed)."""
    prefix = f"{corpus}/"
    return speaker_key[len(prefix) :] if speaker_key.startswith(prefix) else speaker_key


def sorted_speakers(ds: Dataset) -> list[str]:
    keys = speaker_keys(ds)
    pairs = sorted({(c, s, k) for c, s, k in zip(ds.corpus, ds.speaker_id, keys)})
    return [str(k) for _, _, k in pairs]


def fold_speakers(speakers: list[str], *, n_folds: int) -> list[list[str]]:
    """Contiguous near-equal blocks of the sorted speaker list, in order."""
    if not 1 < n_folds <= len(speakers):
        raise ConfigError(f"data.n_folds={n_folds}: need 2..{len(speakers)} (number of speakers)")
    return [[str(s) for s in b] for b in np.array_split(np.array(speakers, dtype=object), n_folds)]


def clients_per_speaker(corpus: str, data: DataConfig) -> int:
    if data.clients_per_speaker > 0:
        return data.clients_per_speaker
    return CLIENTS_PER_SPEAKER.get(corpus, DEFAULT_CLIENTS_PER_SPEAKER)


def partition(ds: Dataset, data: DataConfig, *, seed: int) -> Partition:
    """Folds -> clients -> local splits -> normalisation (see the module docstring)."""
    folds = fold_speakers(sorted_speakers(ds), n_folds=data.n_folds)
    if not 0 <= data.fold < data.n_folds:
        raise ConfigError(f"data.fold={data.fold}: must be in 0..{data.n_folds - 1}")
    test = folds[data.fold]
    train = [s for k, f in enumerate(folds) if k != data.fold for s in f]
    keys = speaker_keys(ds)
    rows_of = {s: np.flatnonzero(keys == s) for s in set(keys.tolist())}
    train_genders = {ds.gender[rows_of[s][0]] for s in train}
    for g in GENDERS:
        if g not in train_genders:
            raise DataError(
                f"fold {data.fold}: no training speaker of gender {g!r} "
                f"(training speakers: {', '.join(train)})"
            )
    clients = []
    for speaker in train:
        rows = rows_of[speaker]
        first = rows[0]
        m = clients_per_speaker(ds.corpus[first], data)
        perm = torch.randperm(len(rows), generator=generator(seed, "split", speaker)).numpy()
        for chunk in np.array_split(rows[perm], m):
            if len(chunk) == 0:
                raise DataError(
                    f"speaker {speaker!r} has {len(rows)} utterances: too few for {m} clients "
                    "(lower data.clients_per_speaker)"
                )
            n_train = max(1, round_half_up(len(chunk) * (1 - data.val_fraction)))
            clients.append(
                Client(
                    client_id=len(clients),
                    speaker_id=str(speaker),
                    gender=str(ds.gender[first]),
                    corpus=str(ds.corpus[first]),
                    train_idx=chunk[:n_train],
                    val_idx=chunk[n_train:],
                )
            )
    x = ds.x.astype(np.float64)
    out = np.empty_like(x)
    test_rows = np.concatenate([rows_of[s] for s in test])
    if data.normalise == "speaker":
        for s in train:
            out[rows_of[s]] = zscore(x[rows_of[s]], stats_of=x[rows_of[s]])
    else:
        for c in clients:
            both = np.concatenate([c.train_idx, c.val_idx])
            out[both] = zscore(x[both], stats_of=x[c.train_idx])
    for s in test:
        out[rows_of[s]] = zscore(x[rows_of[s]], stats_of=x[rows_of[s]])
    return Partition(
        x=out.astype(np.float32),
        y=ds.emotion,
        clients=tuple(clients),
        test_idx=test_rows,
        train_speakers=tuple(train),
        test_speakers=tuple(test),
    )


def zscore(x: np.ndarray, *, stats_of: np.ndarray) -> np.ndarray:
    """(x - mean) / std with stats over rows of `stats_of` (float64; std 0 -> 1)."""
    mean = stats_of.mean(axis=0)
    std = stats_of.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return (x - mean) / std
