"""Speaker-level validation split and the training loop's contract."""

from __future__ import annotations

import numpy as np
import torch

from sergrad.attack.config import AttackModelConfig
from sergrad.attack.dataset import RowFile
from sergrad.attack.models import create
from sergrad.attack.train import split_by_speaker, train_attack

torch.set_num_threads(1)


def test_no_speaker_on_both_sides_and_both_genders_in_val():
    rng = np.random.default_rng(0)
    speakers = np.array([f"s{i}" for i in rng.integers(0, 12, 500)])
    gender = {f"s{i}": i % 2 for i in range(12)}
    labels = np.array([gender[s] for s in speakers])
    tr, va = split_by_speaker(speakers, labels, val_fraction=0.25, rng=np.random.default_rng(1))
    assert set(speakers[tr]).isdisjoint(speakers[va])
    assert len(tr) + len(va) == 500 and set(labels[va]) == {0, 1} and set(labels[tr]) == {0, 1}
    assert len(set(speakers[va])) == 4  # 25% of each gender's 6 speakers, rounded


def test_split_keeps_a_training_speaker_per_gender():
    speakers = np.array(["a", "a", "b", "c", "c"])
    labels = np.array([0, 0, 1, 1, 1])
    tr, va = split_by_speaker(speakers, labels, val_fraction=0.9, rng=np.random.default_rng(0))
    assert set(labels[tr]) == {0, 1}
    assert set(speakers[va]) in ({"b"}, {"c"})
    tr0, va0 = split_by_speaker(speakers, labels, val_fraction=0.0, rng=np.random.default_rng(0))
    assert len(va0) == 0 and len(tr0) == 5


def test_training_learns_keeps_best_and_is_reproducible(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    x = rng.standard_normal((300, 12)).astype(np.float32)
    x[:, :4] += (2 * y[:, None] - 1) * 0.8
    rows = RowFile(str(tmp_path / "x.bin"), width=12)
    rows.append(x)
    cfg = AttackModelConfig(name="logreg_stats", epochs=10, patience=4)
    shapes = {"w.bias": (12,)}
    results = []
    for _ in range(2):
        m = create(
            "logreg_stats", shapes=shapes, params={}, generator=torch.Generator().manual_seed(0)
        )
        r = train_attack(m, rows, y, train_idx=np.arange(200), val_idx=np.arange(200, 300),
                         config=cfg, generator=torch.Generator().manual_seed(1))  # fmt: skip
        results.append((r, m))
    (r1, m1), (r2, m2) = results
    assert r1.best_val_uar > 0.8
    assert r1.best_val_uar == max(h["val_uar"] for h in r1.history)
    assert [h["val_uar"] for h in r1.history] == [h["val_uar"] for h in r2.history]
    s1, s2 = m1.module.state_dict(), m2.module.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert r1.epochs_run <= 10 and r1.n_train == 200 and r1.n_val == 100


def _noise_rows(tmp_path, n=120, width=6):
    rng = np.random.default_rng(3)
    rows = RowFile(str(tmp_path / "n.bin"), width=width)
    rows.append(rng.standard_normal((n, width)).astype(np.float32))
    return rows, rng.integers(0, 2, n)


def test_time_budget_stops_after_the_epoch_that_spends_it(tmp_path):
    rows, y = _noise_rows(tmp_path)
    cfg = AttackModelConfig(name="logreg_stats", epochs=6, patience=100)
    got = {}
    for budget in (None, 0.0):
        params = {} if budget is None else {"max_seconds": budget}
        m = create("logreg_stats", shapes={"w.bias": (6,)}, params=params,
                   generator=torch.Generator().manual_seed(0))  # fmt: skip
        got[budget] = train_attack(m, rows, y, train_idx=np.arange(90), val_idx=np.arange(90, 120),
                                   config=cfg, generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert (got[None].epochs_run, got[None].stopped) == (6, "epochs")
    assert (got[0.0].epochs_run, got[0.0].stopped) == (1, "budget")
    # the budgeted run is the unbudgeted one cut short: same first epoch
    assert got[0.0].history[0] == got[None].history[0]


def test_patience_stops_on_speaker_split_validation(tmp_path):
    rows, y = _noise_rows(tmp_path)
    cfg = AttackModelConfig(name="logreg_stats", epochs=50, patience=2)
    m = create("logreg_stats", shapes={"w.bias": (6,)}, params={},
               generator=torch.Generator().manual_seed(0))  # fmt: skip
    r = train_attack(m, rows, y, train_idx=np.arange(90), val_idx=np.arange(90, 120),
                     config=cfg, generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert r.stopped == "patience" and r.epochs_run == r.best_epoch + 2 < 50
