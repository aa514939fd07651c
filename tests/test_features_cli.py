"""`sergrad features extract|list` through sergrad.cli.main."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
from test_features import make_corpus, utterance_table

from sergrad.cli import main
from sergrad.features.table import read_features


def test_list_prints_every_set_with_dims(capsys):
    assert main(["features", "list"]) == 0
    out = capsys.readouterr().out
    for name, dim in [
        ("combined", "549"),
        ("mfcc_stats", "312"),
        ("wav2vec2_base", "768"),
        ("egemaps", "88"),
    ]:
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert dim in line
    assert "external" in out and "table" in out


def test_extract_writes_features_and_prints_summary(tmp_path, capsys):
    paths = make_corpus(tmp_path / "wav", n=4)
    (tmp_path / "wav" / "bad.wav").write_bytes(b"junk")
    upath = tmp_path / "utts.parquet"
    pq.write_table(utterance_table([*paths, tmp_path / "wav" / "bad.wav"]), upath)
    out = tmp_path / "f.parquet"
    argv = ["features", "extract", "--utterances", str(upath), "--set", "mfcc_stats", "-o", str(out),
            "--param", "n_mfcc=5", "--param", "deltas=false", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "dimension: 40" in text and "utterances: 5  extracted: 4  skipped: 1" in text
    assert "bad.wav: unreadable audio" in text
    ids, x, meta = read_features(out)
    assert ids == ["u0", "u1", "u2", "u3"] and x.shape == (4, 40)
    assert meta["params"] == {"deltas": False, "mfcc_mels": 40, "n_mfcc": 5}

    assert main([*argv, "--strict"]) == 2
    assert "bad.wav" in capsys.readouterr().err


def test_extract_with_cache_dir_reuses(tmp_path, capsys):
    upath = tmp_path / "utts.parquet"
    pq.write_table(utterance_table(make_corpus(tmp_path / "wav", n=3)), upath)
    argv = ["features", "extract", "--utterances", str(upath), "--set", "prosody", "--cache-dir",
            str(tmp_path / "cache"), "--no-progress", "--workers", "2", "--batch-size", "1"]  # fmt: skip
    assert main([*argv, "-o", str(tmp_path / "a.parquet")]) == 0
    assert main([*argv, "-o", str(tmp_path / "b.parquet")]) == 0
    cached = list((tmp_path / "cache").iterdir())
    assert len(cached) == 1
    a, b = read_features(tmp_path / "a.parquet"), read_features(tmp_path / "b.parquet")
    assert a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2]["cache_key"] == b[2]["cache_key"]
    assert capsys.readouterr().out.count(f"cache: {cached[0]}") == 2


def test_bad_input_exits_2_naming_it(tmp_path, capsys):
    upath = tmp_path / "utts.parquet"
    pq.write_table(utterance_table(make_corpus(tmp_path / "wav", n=1)), upath)
    base = ["features", "extract", "--utterances", str(upath), "-o", str(tmp_path / "f.parquet")]
    assert main([*base, "--set", "nope"]) == 2
    assert "unknown feature set 'nope'; valid:" in capsys.readouterr().err
    assert main([*base, "--param", "oops"]) == 2
    assert "--param 'oops': expected key=value" in capsys.readouterr().err
    assert main([*base, "--set", "emobase"]) in (0, 2)  # 2 without the opensmile extra
    assert (
        main(["features", "extract", "--utterances", str(tmp_path / "none.parquet"), "-o", "x"])
        == 2
    )
    assert "none.parquet" in capsys.readouterr().err
    assert not (tmp_path / "f.parquet").exists()


def test_cli_import_stays_light():
    code = "import sys, sergrad.features.cli, sergrad.features; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
