"""Folds, clients, local splits and normalisation against naive loops."""

from __future__ import annotations

import numpy as np
import pytest

from sergrad.errors import DataError
from sergrad.fl.config import DataConfig
from sergrad.fl.data import Dataset
from sergrad.fl.partition import partition, sorted_speakers
from sergrad.fl.synthetic import random_dataset

DS = random_dataset(
    n_speakers=10, utts_per_speaker=[20, 31, 12, 25, 40, 22, 18, 25, 30, 33], dim=5, seed=1
)


def _iemocap() -> Dataset:
    spk = [f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"]
    n = 30
    rng = np.random.default_rng(0)
    return Dataset(
        x=rng.normal(size=(n * 10, 3)).astype(np.float32),
        emotion=np.tile(np.arange(4), n * 10 // 4 + 1)[: n * 10],
        utt_id=np.array([f"u{i}" for i in range(n * 10)], dtype=object),
        speaker_id=np.repeat(np.array(spk[::-1], dtype=object), n),  # rows not in speaker order
        gender=np.repeat(np.array([s[-1] for s in spk[::-1]], dtype=object), n),
        corpus=np.array(["iemocap"] * (n * 10), dtype=object),
    )


def test_iemocap_fold_k_is_session_k():
    ds = _iemocap()
    for k in range(5):
        part = partition(ds, DataConfig(fold=k), seed=0)
        assert part.test_speakers == (f"Ses0{k + 1}F", f"Ses0{k + 1}M")
        assert len(part.clients) == 8 * 10  # iemocap default: 10 clients per speaker


def test_folds_contiguous_and_speaker_independent():
    speakers = sorted_speakers(DS)
    seen = []
    for k in range(5):
        part = partition(DS, DataConfig(fold=k), seed=0)
        seen += list(part.test_speakers)
        test = set(part.test_speakers)
        assert not test & {c.speaker_id for c in part.clients}
        assert set(DS.speaker_id[part.test_idx]) == test
        train_rows = np.concatenate([np.r_[c.train_idx, c.val_idx] for c in part.clients])
        assert sorted(np.r_[train_rows, part.test_idx]) == list(range(DS.n))  # a partition
    assert seen == speakers  # folds are contiguous blocks in sorted order


def test_clients_split_sizes():
    part = partition(DS, DataConfig(fold=0, clients_per_speaker=3, val_fraction=0.2), seed=0)
    for spk in part.train_speakers:
        cl = [c for c in part.clients if c.speaker_id == spk]
        sizes = [c.n_train + len(c.val_idx) for c in cl]
        assert len(cl) == 3 and max(sizes) - min(sizes) <= 1
        assert sum(sizes) == int((DS.speaker_id == spk).sum())
        for c in cl:
            n = c.n_train + len(c.val_idx)
            assert c.n_train == int(np.floor(0.8 * n + 0.5))
    assert [c.client_id for c in part.clients] == list(range(len(part.clients)))


def test_seeded_split():
    a = partition(DS, DataConfig(fold=1), seed=0)
    b = partition(DS, DataConfig(fold=1), seed=0)
    c = partition(DS, DataConfig(fold=1), seed=1)
    assert all(np.array_equal(x.train_idx, y.train_idx) for x, y in zip(a.clients, b.clients))
    assert not all(np.array_equal(x.train_idx, y.train_idx) for x, y in zip(a.clients, c.clients))


def _naive_z(x: np.ndarray, stats: np.ndarray) -> np.ndarray:
    out = np.empty_like(x, dtype=np.float64)
    for j in range(x.shape[1]):
        col = [float(v) for v in stats[:, j]]
        mean = sum(col) / len(col)
        std = (sum((v - mean) ** 2 for v in col) / len(col)) ** 0.5
        out[:, j] = (x[:, j] - mean) / std
    return out


@pytest.mark.parametrize("mode", ["speaker", "client"])
def test_normalisation_matches_naive_loop(mode):
    part = partition(DS, DataConfig(fold=2, normalise=mode, clients_per_speaker=2), seed=0)
    for spk in part.test_speakers:  # test speakers: own statistics, no labels involved
        rows = np.flatnonzero(DS.speaker_id == spk)
        np.testing.assert_allclose(part.x[rows], _naive_z(DS.x[rows], DS.x[rows]), atol=1e-5)
    for c in part.clients:
        rows = np.r_[c.train_idx, c.val_idx]
        if mode == "speaker":
            stats = DS.x[np.flatnonzero(DS.speaker_id == c.speaker_id)]
        else:
            stats = DS.x[c.train_idx]
        np.testing.assert_allclose(part.x[rows], _naive_z(DS.x[rows], stats), atol=1e-5)
    # labels never enter: permuting emotions leaves the features unchanged
    shuffled = Dataset(**{**DS.__dict__, "emotion": DS.emotion[::-1].copy()})
    np.testing.assert_array_equal(
        partition(shuffled, DataConfig(fold=2, normalise=mode, clients_per_speaker=2), seed=0).x,
        part.x,
    )


def test_fold_without_one_gender():
    ds = Dataset(
        **{
            **DS.__dict__,
            "gender": np.where(np.isin(DS.speaker_id, ["s000", "s001"]), "F", "M").astype(object),
        }
    )
    with pytest.raises(DataError, match="fold 0: no training speaker of gender 'F'"):
        partition(ds, DataConfig(fold=0), seed=0)


def test_client_without_data():
    with pytest.raises(DataError, match="speaker 's002' has 12 utterances"):
        partition(DS, DataConfig(fold=0, clients_per_speaker=13), seed=0)
