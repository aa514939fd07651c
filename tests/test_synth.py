"""Synthetic corpora: determinism, CREMA-D layout, and the acoustics checked by independent oracles."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from sergrad.corpora.channel import mu_law, room_response
from sergrad.corpora.synth import PROFILES, plan_speakers, synth_audio, synthesize
from sergrad.corpora.synth_speakers import Population, draw_voice
from sergrad.corpora.voice import BIN_HZ, SR, formant_response, n_frames, stft_filter
from sergrad.errors import ConfigError, DataError

NAME = re.compile(r"^(\d{4})_([A-Z]{3})_(NEU|HAP|SAD|ANG)_(XX|LO|MD|HI)\.wav$")


def tiny(out: Path, profile: str = "synth-studio", *, seed: int = 0, speakers: int = 3) -> Path:
    return synthesize(
        out, profile=profile, speakers=speakers, seed=seed, utterances_per_emotion=1, progress=False
    )


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def f0_autocorr(x: np.ndarray, *, fmin: float = 60.0, fmax: float = 450.0) -> float:
    """Median F0 over loud frames by plain normalised autocorrelation (the oracle)."""
    frame, hop = int(0.04 * SR), int(0.01 * SR)
    frames = [x[i : i + frame] for i in range(0, len(x) - frame, hop)]
    energy = np.array([np.sum(f * f) for f in frames])
    lo, hi = int(SR / fmax), int(SR / fmin)
    f0s = []
    for f, e in zip(frames, energy):
        if e < energy.max() * 0.1:
            continue
        f = f - f.mean()
        ac = np.correlate(f, f, mode="full")[frame - 1 :]
        ac = ac / ac[0]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.5:
            f0s.append(SR / lag)
    return float(np.median(f0s))


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = tree_bytes(tiny(tmp_path / "a", seed=7))
    b = tree_bytes(tiny(tmp_path / "b", seed=7))
    c = tree_bytes(tiny(tmp_path / "c", seed=8))
    assert a == b
    wavs = [k for k in a if k.endswith(".wav")]
    assert wavs and any(a[k] != c.get(k) for k in wavs)


def test_crema_d_layout(tmp_path):
    out = tiny(tmp_path / "studio", speakers=4)
    wavs = sorted((out / "AudioWAV").glob("*.wav"))
    assert len(wavs) == 4 * 4 * 1
    for w in wavs:
        assert NAME.match(w.name), w.name
        info = sf.info(str(w))
        assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
        assert 0.8 < info.duration < 3.0
    with (out / "VideoDemographics.csv").open() as fh:
        demo = list(csv.DictReader(fh))
    assert list(demo[0]) == ["ActorID", "Age", "Sex", "Race", "Ethnicity", "Language"]
    speakers = plan_speakers(PROFILES.get("synth-studio"), 4, 0)
    assert {r["ActorID"]: r["Sex"] for r in demo} == {
        str(s.actor_id): {"F": "Female", "M": "Male"}[s.voice.gender] for s in speakers
    }
    assert {s.voice.gender for s in speakers} == {"F", "M"}
    with (out / "processedResults" / "summaryTable.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["", "FileName", "VoiceVote", "VoiceLevel", "FaceVote", "FaceLevel",
                       "MultiModalVote", "MultiModalLevel"]  # fmt: skip
    assert [r[0] for r in rows[1:]] == [str(i) for i in range(1, len(wavs) + 1)]
    assert sorted(r[1] for r in rows[1:]) == [w.stem for w in wavs]
    for r in rows[1:]:
        for vote in (r[2], r[4], r[6]):
            assert re.fullmatch(r"[ADFHNS](:[ADFHNS])?", vote)
    assert json.loads((out / "sergrad_synth.json").read_text())["speakers"] == 4


def test_profiles_use_disjoint_actor_ranges_and_votes_sometimes_disagree(tmp_path):
    ids = {}
    for name in PROFILES:
        ids[name] = {s.actor_id for s in plan_speakers(PROFILES.get(name), 30, 0)}
    names = list(ids)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not ids[a] & ids[b]
    from sergrad.corpora.synth_layout import perceived_vote

    rng = np.random.default_rng(0)
    votes = [perceived_vote("A", 0.7, rng)[0] for _ in range(2000)]
    agree = np.mean([v == "A" for v in votes])
    assert 0.65 < agree < 0.75
    assert any(":" in v for v in votes) and any(v not in ("A",) and ":" not in v for v in votes)


def test_identical_rerun_is_skipped_and_foreign_folders_are_refused(tmp_path):
    out = tiny(tmp_path / "c")
    wav = next((out / "AudioWAV").glob("*.wav"))
    stamp = wav.stat().st_mtime_ns
    assert tiny(tmp_path / "c") == out
    assert wav.stat().st_mtime_ns == stamp  # not rewritten
    with pytest.raises(DataError, match="refusing"):
        tiny(tmp_path / "c", seed=1)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="mine"):
        tiny(foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
    # same (profile, speakers, seed), other size: replaced in place
    synthesize(out, profile="synth-studio", speakers=3, utterances_per_emotion=2, progress=False)
    assert len(list((out / "AudioWAV").glob("*.wav"))) == 3 * 4 * 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers
    with pytest.raises(ConfigError, match="valid"):
        tiny(tmp_path / "x", profile="synth-nowhere")


def test_gender_f0_differs_in_audio_and_distributions_overlap():
    prof = PROFILES.get("synth-studio")
    speakers = plan_speakers(prof, 12, 3)
    est = {"F": [], "M": []}
    for i, spk in enumerate(speakers):
        audio = synth_audio(
            prof, spk, "neutral", "IWW", intensity=1.0, rng=np.random.default_rng(i)
        ).astype(np.float64)
        f0 = f0_autocorr(audio)
        assert abs(np.log(f0 / spk.voice.f0_hz)) < np.log(1.35), (f0, spk.voice.f0_hz)
        est[spk.voice.gender].append(f0)
    assert np.mean(est["F"]) > 1.3 * np.mean(est["M"])
    rng = np.random.default_rng(0)
    pop = Population()
    f0 = {
        g: np.array([draw_voice(pop, g, rng, strength=1.0).f0_hz for _ in range(300)]) for g in "FM"
    }
    assert np.median(f0["F"]) > np.median(f0["M"])
    assert f0["M"].max() > f0["F"].min()  # overlapping, not two disjoint clusters


def test_angry_is_louder_than_sad():
    prof = PROFILES.get("synth-studio")
    speakers = plan_speakers(prof, 6, 0)
    rms = {"angry": [], "sad": []}
    for i, spk in enumerate(speakers):
        for emo in rms:
            x = synth_audio(prof, spk, emo, "DFA", intensity=1.0, rng=np.random.default_rng(i))
            rms[emo].append(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    assert np.mean(np.log(rms["angry"])) > np.mean(np.log(rms["sad"])) + np.log(10 ** (4 / 20))


@pytest.mark.parametrize("profile,limited", [("synth-phone", True), ("synth-studio", False)])
def test_phone_band_has_little_energy_above_4khz(profile, limited):
    prof = PROFILES.get(profile)
    spk = plan_speakers(prof, 2, 0)
    x = np.concatenate(
        [
            synth_audio(prof, s, "angry", "TSI", intensity=1.0, rng=np.random.default_rng(1))
            for s in spk
        ]
    ).astype(np.float64)
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / SR)
    high = power[freqs > 4000].sum() / power.sum()
    low = power[freqs < 250].sum() / power.sum()
    if limited:
        assert high < 1e-4 and low < 2e-3  # full-band male speech: ~10-30% below 250 Hz
    else:
        assert high > 1e-3


def test_stft_filter_identity_and_formants_match_scipy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(5000)
    y = stft_filter(x, np.ones((n_frames(5000), BIN_HZ.shape[0])))
    np.testing.assert_allclose(y, x, atol=1e-9)
    freqs, bws = np.array([[500.0, 1500.0, 2500.0]]), np.array([[80.0, 100.0, 150.0]])
    h = formant_response(freqs, bws)[0]
    a = np.array([1.0])
    for f, b in zip(freqs[0], bws[0]):
        r = np.exp(-np.pi * b / SR)
        a = np.convolve(a, [1.0, -2 * r * np.cos(2 * np.pi * f / SR), r * r])
    _, ref = signal.freqz([a.sum()], a, worN=BIN_HZ, fs=SR)
    np.testing.assert_allclose(h, ref, rtol=2e-3, atol=1e-4)


def test_room_response_decays_at_rt60_and_mu_law_is_fine_at_16_bits():
    nfft = 1 << 15
    h = np.fft.irfft(room_response(0.5, 0.0, nfft, np.random.default_rng(0)), nfft)
    tail = h.copy()
    tail[0] = 0.0
    assert np.sum(tail**2) == pytest.approx(1.0, rel=1e-6)  # DRR 0 dB
    edc = np.cumsum(tail[::-1] ** 2)[::-1]  # Schroeder backward integration
    edc_db = 10 * np.log10(edc / edc[0])
    t20 = np.argmax(edc_db < -5.0), np.argmax(edc_db < -25.0)  # T20 fit, times 3
    rt60 = 3.0 * (t20[1] - t20[0]) / SR
    assert rt60 == pytest.approx(0.5, rel=0.15)
    x = np.random.default_rng(1).uniform(-0.5, 0.5, 1000)
    assert np.abs(mu_law(x, 16) - x).max() < 1e-3
    assert np.abs(mu_law(x, 8) - x).max() > 1e-3


def test_cremad_adapter_indexes_a_synth_corpus(tmp_path):
    from sergrad import corpora

    out = tiny(tmp_path / "room", profile="synth-room", speakers=4)
    table, problems = corpora.index_corpus(
        "crema-d", out, options={"labels": "acted"}, corpus_name="synth-room"
    )
    d = table.to_pydict()
    assert problems.count == 0
    assert len(d["utt_id"]) == 16
    assert set(d["corpus"]) == {"synth-room"}
    assert sorted(set(d["speaker_id"])) == ["3001", "3002", "3003", "3004"]
    assert {e: d["emotion"].count(e) for e in set(d["emotion"])} == {
        "neutral": 4, "happy": 4, "sad": 4, "angry": 4
    }  # fmt: skip
    genders = {s.actor_id: s.voice.gender for s in plan_speakers(PROFILES.get("synth-room"), 4, 0)}
    for spk, g in zip(d["speaker_id"], d["gender"]):
        assert genders[int(spk)] == g
    voted, _ = corpora.index_corpus("crema-d", out, options={"labels": "multimodal"})
    assert 0 < voted.num_rows <= 16
