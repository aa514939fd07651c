"""The synthetic-corpus calibration report: its classifier folds and its command line."""

from __future__ import annotations

import numpy as np

from sergrad.corpora.calibrate import main, pooled_predictions


def test_pooled_predictions_hold_speakers_out_and_learn_a_separable_target():
    rng = np.random.default_rng(0)
    speakers = np.repeat(np.arange(10), 6).astype(str)
    y = np.where(np.repeat(np.arange(10), 6) % 2 == 0, "L1", "L2")
    x = rng.normal(size=(60, 4))
    x[:, 0] += np.where(y == "L2", 4.0, -4.0)  # separable along one feature
    pred = pooled_predictions(x, y, speakers, n_folds=5)
    assert np.all(pred == y)
    # a feature that only identifies the speaker says nothing about a held-out speaker
    ident = np.eye(10)[np.repeat(np.arange(10), 6)]
    age = np.repeat(rng.uniform(20, 80, 10), 6)
    held = pooled_predictions(ident, age, speakers, n_folds=5, regress=True)
    for s in range(10):
        rows = speakers == str(s)
        others = age[(speakers != str(s))]
        assert np.all(held[rows] <= others.max()) and np.all(held[rows] >= others.min())


def test_command_prints_the_table_and_refuses_bad_seeds(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SERGRAD_CACHE", str(tmp_path))
    assert main(["--seeds", "zero"]) == 2
    args = ["--profiles", "synth-room", "--speakers", "10", "--utterances-per-emotion", "2"]
    assert main([*args, "--seeds", "0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| profile | speakers (seed 0) | emotion UAR | gender UAR")
    row = out[2].split("|")
    assert row[1].strip() == "synth-room" and row[2].strip().startswith("6F/4M")
    for cell in row[3:7]:
        assert 0.0 <= float(cell) <= 1.0
