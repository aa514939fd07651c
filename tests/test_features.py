"""Hand-crafted feature sets, extraction, problems, cache and feature files.

Oracles: torchaudio's own MFCC transform, closed forms for pure tones (F0, energy of a sine),
the same signal written at 16 kHz vs 44.1 kHz, and extractor call counts for the cache.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torchaudio

from sergrad.audio import write_wav
from sergrad.errors import ConfigError, DataError
from sergrad.features import FEATURE_SETS, get_feature_set
from sergrad.features import extract as extract_mod
from sergrad.features.base import resolve_params
from sergrad.features.cache import features_cached, features_cached_with_problems
from sergrad.features.extract import extract_features
from sergrad.features.functionals import FUNCTIONALS, functionals
from sergrad.features.keys import cache_key
from sergrad.features.table import features_table, read_features, write_features
from sergrad.schema import UTTERANCES, features_schema, table_from_rows

SR = 16_000


def tone(freq: float, seconds: float, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def build(name: str, **params):
    spec = get_feature_set(name)
    return spec.build(resolve_params(name, params, spec.defaults))


def utterance_table(paths: list[Path], ids: list[str] | None = None) -> pa.Table:
    ids = ids or [p.stem for p in paths]
    rows = [
        dict(utt_id=u, corpus="t", speaker_id="s1", gender="F", emotion="happy", raw_label="HAP",
             path=str(p), sample_rate=SR, duration_s=1.0, session="1")
        for u, p in zip(ids, paths)
    ]  # fmt: skip
    return table_from_rows(rows, UTTERANCES)


def make_corpus(root: Path, n: int = 5, *, seed: int = 0) -> list[Path]:
    """n short WAVs: harmonic tones at different F0 plus a little noise."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        wave = tone(120 + 30 * i, 0.4 + 0.1 * i, amp=0.3) + 0.01 * rng.standard_normal(
            round((0.4 + 0.1 * i) * SR)
        ).astype(np.float32)
        paths.append(root / f"u{i}.wav")
        write_wav(paths[-1], wave, SR)
    return paths


# --- registry and dimensions ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["mfcc_stats", "logmel_stats", "prosody", "combined"])
def test_handcrafted_dims_match_registry_and_names(name):
    ex = build(name)
    vec = ex(tone(200, 0.5))
    assert vec.shape == (ex.dim,) == (FEATURE_SETS.get(name).default_dim,)
    assert vec.dtype == np.float32 and np.isfinite(vec).all()
    assert len(ex.names) == ex.dim and len(set(ex.names)) == ex.dim


def test_combined_is_concatenation_of_parts():
    wave = tone(150, 0.6) + tone(1100, 0.6, amp=0.1)
    parts = [build(n)(wave) for n in ("mfcc_stats", "logmel_stats", "prosody")]
    np.testing.assert_allclose(build("combined")(wave), np.concatenate(parts), rtol=1e-5, atol=1e-5)


def test_dims_follow_params():
    assert build("mfcc_stats", n_mfcc=20, deltas=False).dim == 20 * len(FUNCTIONALS)
    assert build("logmel_stats", n_mels=40).dim == 40 * len(FUNCTIONALS)


def test_unknown_set_and_bad_params_are_config_errors():
    with pytest.raises(ConfigError, match="valid: .*combined.*mfcc_stats"):
        get_feature_set("mfcc")
    with pytest.raises(ConfigError, match="unknown parameter 'nmfcc'"):
        build("mfcc_stats", nmfcc=3)
    with pytest.raises(ConfigError, match="n_mfcc='x' must be int"):
        build("mfcc_stats", n_mfcc="x")
    with pytest.raises(ConfigError, match="f0_min"):
        build("prosody", f0_min=600.0)


# --- oracles -------------------------------------------------------------------------------
def test_functionals_against_numpy():
    x = torch.randn(3, 101, generator=torch.Generator().manual_seed(0))
    got = dict(zip(FUNCTIONALS, functionals(x).numpy()))
    xn = x.numpy().astype(np.float64)
    np.testing.assert_allclose(got["mean"], xn.mean(1), atol=1e-5)
    np.testing.assert_allclose(got["std"], xn.std(1), atol=1e-5)
    np.testing.assert_allclose(got["min"], xn.min(1), atol=1e-6)
    np.testing.assert_allclose(got["p90"], np.percentile(xn, 90, axis=1), atol=1e-5)
    skew = ((xn - xn.mean(1, keepdims=True)) ** 3).mean(1) / xn.std(1) ** 3
    np.testing.assert_allclose(got["skew"], skew, atol=1e-4)


def test_mfcc_stats_equal_torchaudio_mfcc():
    rng = np.random.default_rng(1)
    wave = (tone(180, 0.8) + 0.05 * rng.standard_normal(round(0.8 * SR))).astype(np.float32)
    mfcc = torchaudio.transforms.MFCC(
        sample_rate=SR,
        n_mfcc=13,
        melkwargs=dict(n_fft=512, win_length=400, hop_length=160, n_mels=40),
    )(torch.from_numpy(wave))  # [13, F]
    full = torch.cat([mfcc, torchaudio.functional.compute_deltas(mfcc)])
    ex = build("mfcc_stats")
    got = dict(zip(ex.names, ex(wave)))
    for i in range(13):
        assert got[f"mfcc{i}_mean"] == pytest.approx(float(mfcc[i].mean()), abs=1e-3)
        assert got[f"mfcc{i}_std"] == pytest.approx(float(mfcc[i].std(unbiased=False)), abs=1e-3)
        assert got[f"mfcc{i}_max"] == pytest.approx(float(mfcc[i].max()), abs=1e-3)
        assert got[f"mfcc{i}_d_std"] == pytest.approx(
            float(full[13 + i].std(unbiased=False)), abs=1e-3
        )


@pytest.mark.parametrize("f0", [110.0, 200.0, 320.0])
def test_prosody_f0_of_pure_tone(f0):
    ex = build("prosody")
    got = dict(zip(ex.names, ex(tone(f0, 1.0))))
    assert got["f0_mean_hz"] == pytest.approx(f0, rel=0.01)
    assert got["f0_p50_hz"] == pytest.approx(f0, rel=0.01)
    assert got["voiced_ratio"] > 0.9
    # torchaudio's own pitch detector agrees on the median
    ta = torchaudio.functional.detect_pitch_frequency(torch.from_numpy(tone(f0, 1.0)), SR)
    assert float(ta.median()) == pytest.approx(got["f0_p50_hz"], rel=0.03)


def test_prosody_energy_of_sine_and_silence():
    ex = build("prosody")
    got = dict(zip(ex.names, ex(tone(200, 1.0, amp=0.5))))
    assert got["energy_p50_db"] == pytest.approx(10 * math.log10(0.5**2 / 2), abs=0.1)  # -9.03 dB
    noise = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    got = dict(zip(ex.names, ex(noise)))
    assert got["voiced_ratio"] < 0.1  # white noise is not voiced
    silent = dict(zip(ex.names, ex(np.zeros(SR, np.float32))))
    assert silent["voiced_ratio"] == 0 and silent["f0_mean_hz"] == 0


def test_resampling_from_44k_gives_same_features(tmp_path):
    wave16 = tone(200, 0.8)
    write_wav(tmp_path / "a16.wav", wave16, SR)
    write_wav(tmp_path / "a44.wav", tone(200, 0.8, sr=44_100), 44_100)
    table, problems = extract_features(
        utterance_table([tmp_path / "a16.wav", tmp_path / "a44.wav"]),
        feature_set="prosody",
        progress=False,
    )
    assert problems.count == 0
    x = np.asarray(table.column("x").to_pylist(), dtype=np.float32)
    names = build("prosody").names
    f0 = x[:, names.index("f0_mean_hz")]
    np.testing.assert_allclose(f0, [200.0, 200.0], rtol=0.01)
    energy = x[:, names.index("energy_p50_db")]
    np.testing.assert_allclose(energy[0], energy[1], atol=0.3)


# --- extraction ----------------------------------------------------------------------------
def test_extract_matches_direct_calls_and_metadata(tmp_path):
    paths = make_corpus(tmp_path)
    utts = utterance_table(paths)
    table, problems = extract_features(utts, feature_set="mfcc_stats", progress=False, batch_size=2)
    assert problems.count == 0
    assert table.schema.remove_metadata() == features_schema(312)
    ex = build("mfcc_stats")
    for row, path in zip(table.to_pylist(), paths):
        from sergrad.audio import load_mono

        np.testing.assert_allclose(row["x"], ex(load_mono(path)[0]), rtol=1e-6)
    out = tmp_path / "f.parquet"
    write_features(table, out)
    ids, x, meta = read_features(out)
    assert ids == [p.stem for p in paths] and x.shape == (5, 312)
    assert meta["feature_set"] == "mfcc_stats" and meta["dim"] == 312
    assert meta["params"] == {"deltas": True, "mfcc_mels": 40, "n_mfcc": 13}
    assert meta["cache_key"] == cache_key(utts, feature_set="mfcc_stats", params={})
    assert meta["names"][0] == "mfcc0_mean"


def test_workers_give_the_same_table(tmp_path):
    utts = utterance_table(make_corpus(tmp_path, n=6))
    one, _ = extract_features(utts, feature_set="combined", progress=False, batch_size=2)
    two, _ = extract_features(utts, feature_set="combined", workers=2, progress=False, batch_size=2)
    assert one.column("utt_id").to_pylist() == two.column("utt_id").to_pylist()
    np.testing.assert_allclose(
        np.asarray(one.column("x").to_pylist()),
        np.asarray(two.column("x").to_pylist()),
        rtol=1e-5,
        atol=1e-5,
    )


def bad_corpus(tmp_path: Path) -> tuple[pa.Table, dict[str, Path]]:
    good = make_corpus(tmp_path, n=3)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00garbage")
    empty = tmp_path / "empty.wav"
    import soundfile as sf

    sf.write(str(empty), np.zeros(0, np.float32), SR, subtype="PCM_16")
    short = tmp_path / "short.wav"
    write_wav(short, tone(200, 0.01), SR)  # 160 samples
    bad = {"corrupt": corrupt, "empty": empty, "short": short, "missing": tmp_path / "missing.wav"}
    return utterance_table([good[0], corrupt, good[1], empty, short, bad["missing"], good[2]]), bad


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_files_are_named_and_the_rest_proceeds(tmp_path, workers):
    utts, bad = bad_corpus(tmp_path)
    table, problems = extract_features(
        utts, feature_set="combined", workers=workers, progress=False, batch_size=2
    )
    assert table.column("utt_id").to_pylist() == ["u0", "u1", "u2"]
    reasons = dict(problems.items)
    assert set(reasons) == {str(p) for p in bad.values()}
    assert "unreadable" in reasons[str(bad["corrupt"])]
    assert "empty" in reasons[str(bad["empty"])]
    assert "too short" in reasons[str(bad["short"])]
    assert "not found" in reasons[str(bad["missing"])]
    assert str(bad["corrupt"]) in problems.summary()


def test_strict_makes_the_first_problem_fatal(tmp_path):
    utts, bad = bad_corpus(tmp_path)
    with pytest.raises(DataError, match="corrupt.wav"):
        extract_features(utts, feature_set="prosody", strict=True, progress=False)
    with pytest.raises(DataError, match="corrupt.wav"):
        extract_features(
            utts, feature_set="prosody", strict=True, workers=2, batch_size=1, progress=False
        )


def test_nan_vector_is_a_problem_naming_the_utt_id(tmp_path, monkeypatch):
    utts = utterance_table(make_corpus(tmp_path, n=3))
    real = extract_mod.get_extractor(
        "prosody", resolve_params("prosody", {}, get_feature_set("prosody").defaults)
    )

    class Flaky:
        dim, names = real.dim, real.names

        def __call__(self, wave):
            vec = real(wave)
            if wave.shape[0] == round(0.5 * SR):  # u1
                vec[3] = np.nan
            return vec

    monkeypatch.setattr(extract_mod, "get_extractor", lambda name, params: Flaky())
    table, problems = extract_features(utts, feature_set="prosody", progress=False)
    assert table.column("utt_id").to_pylist() == ["u0", "u2"]
    assert problems.count == 1 and "'u1'" in problems.items[0][1] and "NaN" in problems.items[0][1]


def test_all_bad_is_a_data_error(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"nope")
    with pytest.raises(DataError, match="no utterance gave"):
        extract_features(utterance_table([tmp_path / "x.wav"]), progress=False)


def test_utterance_table_checks(tmp_path):
    with pytest.raises(DataError, match="missing columns"):
        extract_features(pa.table({"utt_id": ["a"]}), progress=False)
    paths = make_corpus(tmp_path, n=2)
    with pytest.raises(DataError, match="duplicate utt_ids"):
        extract_features(utterance_table(paths, ids=["a", "a"]), progress=False)


# --- cache ---------------------------------------------------------------------------------
def test_cache_reuses_the_file_and_counts_calls(tmp_path, monkeypatch):
    utts = utterance_table(make_corpus(tmp_path / "wav", n=4))
    upath = tmp_path / "utts.parquet"
    pq.write_table(utts, upath)
    calls = []
    real_one = extract_mod.extract_one
    monkeypatch.setattr(extract_mod, "extract_one", lambda *a: calls.append(a[1]) or real_one(*a))
    cache = tmp_path / "cache"
    first = features_cached(
        upath, feature_set="prosody", params={}, cache_dir=cache, progress=False
    )
    assert len(calls) == 4
    second = features_cached(
        upath, feature_set="prosody", params={"f0_min": 60}, cache_dir=cache, progress=False
    )
    assert second == first and len(calls) == 4  # same resolved params -> same key, no work
    third = features_cached(
        upath, feature_set="prosody", params={"f0_min": 70}, cache_dir=cache, progress=False
    )
    assert third != first and len(calls) == 8
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [first.name, third.name]
    )  # no temp files
    ids, x, meta = read_features(first)
    assert meta["params"]["f0_min"] == 60.0 and x.shape == (4, 29)


def test_cache_key_tracks_table_and_audio(tmp_path):
    paths = make_corpus(tmp_path, n=3)
    base = cache_key(utterance_table(paths), feature_set="combined")
    assert cache_key(utterance_table(paths[:2]), feature_set="combined") != base
    assert cache_key(utterance_table(paths), feature_set="mfcc_stats") != base
    write_wav(paths[0], tone(300, 0.7), SR)  # re-recorded audio
    assert cache_key(utterance_table(paths), feature_set="combined") != base


def test_cache_hit_reports_stored_problems_and_strict_refuses(tmp_path):
    utts, bad = bad_corpus(tmp_path)
    upath = tmp_path / "utts.parquet"
    pq.write_table(utts, upath)
    with pytest.raises(DataError, match="corrupt.wav"):  # strict miss: nothing cached
        features_cached(
            upath, feature_set="prosody", cache_dir=tmp_path / "c", strict=True, progress=False
        )
    assert not (tmp_path / "c").exists() or list((tmp_path / "c").iterdir()) == []
    path, problems = features_cached_with_problems(
        upath, feature_set="prosody", cache_dir=tmp_path / "c", progress=False
    )
    again, stored = features_cached_with_problems(
        upath, feature_set="prosody", cache_dir=tmp_path / "c", progress=False
    )
    assert again == path and stored.items == problems.items and stored.count == 4
    with pytest.raises(DataError, match="strict"):
        features_cached(
            upath, feature_set="prosody", cache_dir=tmp_path / "c", strict=True, progress=False
        )


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    table = features_table(["a"], np.ones((1, 2), np.float32), meta={"feature_set": "t"})

    def boom(*args, **kwargs):
        Path(args[1]).write_bytes(b"half")  # a partial temp file, then a crash
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(OSError, match="disk full"):
        write_features(table, tmp_path / "out" / "f.parquet")
    assert list((tmp_path / "out").iterdir()) == []


# --- feature files -------------------------------------------------------------------------
def test_read_features_rejects_wrong_schema_and_nan(tmp_path):
    wrong = tmp_path / "wrong.parquet"
    pq.write_table(pa.table({"utt_id": ["a"], "x": [[1.0, 2.0]]}), wrong)  # variable list<double>
    with pytest.raises(DataError, match="wrong.parquet: not a feature file"):
        read_features(wrong)
    nan = tmp_path / "nan.parquet"
    write_features(
        features_table(["a", "b"], np.array([[1, 2], [np.nan, 0]], np.float32), meta={}), nan
    )
    with pytest.raises(
        DataError, match=r"nan.parquet: NaN or inf in 1 vectors, e.g. utt_ids \['b'\]"
    ):
        read_features(nan)
    with pytest.raises(DataError, match="missing.parquet: feature file not found"):
        read_features(tmp_path / "missing.parquet")


def test_read_features_from_file_uri(tmp_path):
    path = tmp_path / "f.parquet"
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    write_features(features_table(["a", "b", "c"], x, meta={"feature_set": "t"}), f"file://{path}")
    ids, got, meta = read_features(f"file://{path}")
    assert ids == ["a", "b", "c"] and np.array_equal(got, x) and meta["feature_set"] == "t"


def test_opensmile_missing_extra_names_the_install_and_licence():
    try:
        import opensmile  # noqa: F401
    except ImportError:
        for name in ("emobase", "egemaps"):
            with pytest.raises(DataError, match=r"pip install sergrad\[opensmile\].*research"):
                build(name)
    else:  # the extra is installed: real openSMILE functionals
        assert build("egemaps")(tone(200, 1.0)).shape == (88,)
