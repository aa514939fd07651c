"""Synthetic speaker traits: age and language background, written as data and heard in audio."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from test_synth import f0_autocorr, tiny

from sergrad.attributes import check_populations, resolve_attribute
from sergrad.corpora import index_corpus
from sergrad.corpora.phonemes import INVENTORY, SCHWA, Accent, _segments, sentence_plan
from sergrad.corpora.render import render_utterance
from sergrad.corpora.synth import PROFILES, SYNTH_VERSION, plan_speakers
from sergrad.corpora.synth_layout import SENTENCES
from sergrad.corpora.synth_speakers import (
    Population,
    age_effects,
    draw_accent,
    draw_voice,
    utterance_style,
)
from sergrad.corpora.voice import SR

AGE_GROUP = resolve_attribute("age_group")
LANGUAGE = resolve_attribute("language")


def test_age_and_language_reach_the_utterance_table(tmp_path):
    out = tiny(tmp_path / "studio", speakers=5)
    with (out / "VideoDemographics.csv").open() as fh:
        demo = list(csv.DictReader(fh))
    assert list(demo[0]) == ["ActorID", "Age", "Sex", "Race", "Ethnicity", "Language"]
    table, _ = index_corpus("crema-d", out, options={"labels": "acted"})
    planned = {str(s.actor_id): s.voice for s in plan_speakers(PROFILES.get("synth-studio"), 5, 0)}
    d = table.to_pydict()
    for spk, age, lang in zip(d["speaker_id"], d["age"], d["language"]):
        assert (age, lang) == (float(planned[spk].age), planned[spk].language)
    assert set(d["language"]) == {"L1", "L2"}
    assert SYNTH_VERSION >= 3


@pytest.mark.parametrize("seed", range(4))
def test_every_profile_holds_every_class_for_leave_one_corpus_out(seed):
    pops = {}
    for name in PROFILES:
        prof = PROFILES.get(name)
        voices = [s.voice for s in plan_speakers(prof, prof.speakers, seed)]
        lo, hi = prof.population.ages
        assert all(lo <= v.age <= hi for v in voices)
        pops[name] = voices
    for target in pops:
        shadow = [v for name, vs in pops.items() if name != target for v in vs]
        for attr, get in ((AGE_GROUP, lambda v: AGE_GROUP.labels([v.age])[0]),
                          (LANGUAGE, lambda v: v.language)):  # fmt: skip
            check_populations(attr, shadow=("others", [get(v) for v in shadow]),
                              target=(target, [get(v) for v in pops[target]]))  # fmt: skip


@pytest.mark.parametrize("name", ["synth-studio", "synth-phone", "synth-room"])
def test_age_groups_follow_the_profile_mix_within_each_gender(name):
    prof = PROFILES.get(name)
    pop = prof.population
    voices = [s.voice for s in plan_speakers(prof, 60, 0)]
    lo, hi = pop.ages
    # the share of each age group the density assigns, by a naive sum over whole years
    years = np.arange(lo, hi + 1)
    group = np.array([0 if a < 30 else 1 if a < 50 else 2 for a in years])
    present = [g for g in range(3) if (group == g).any()]
    weights = np.array([pop.age_mix[g] if g in present else 0.0 for g in range(3)])
    share = weights / weights.sum()
    for g in "FM":
        ages = [v.age for v in voices if v.gender == g]
        assert all(lo <= a <= hi for a in ages)
        counts = np.bincount([0 if a < 30 else 1 if a < 50 else 2 for a in ages], minlength=3)
        assert np.abs(counts - share * len(ages)).max() <= 1.0  # stratified, not just random


def clean_audio(voice, sentence: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    style = utterance_style(voice, "neutral", intensity=1.0, rng=rng)
    return render_utterance(voice, style, sentence_plan(sentence), rng=rng)


def voice_at(age: int, gender: str, *, seed: int, language: str = "L1"):
    """The same speaker draws (same generator) at another age / language background."""
    return draw_voice(Population(), gender, np.random.default_rng(seed), strength=1.0,
                      age=age, language=language)  # fmt: skip


@pytest.mark.parametrize("gender,young,old", [("F", 25, 75), ("M", 55, 80)])
def test_f0_moves_with_age_as_the_literature_says_measured_by_autocorrelation(gender, young, old):
    ratios = []
    for seed in range(3):
        a, b = voice_at(young, gender, seed=seed), voice_at(old, gender, seed=seed)
        f_a = f0_autocorr(clean_audio(a, "IWW", seed))
        f_b = f0_autocorr(clean_audio(b, "IWW", seed))
        ratios.append(f_b / f_a)
    expected = 2.0 ** ((age_effects(old, gender).f0_st - age_effects(young, gender).f0_st) / 12)
    assert np.median(ratios) == pytest.approx(expected, rel=0.05)
    assert (expected < 0.92) if gender == "F" else (expected > 1.08)  # female falls, male rises


def speech_seconds(x: np.ndarray) -> float:
    """Time from the first to the last 10 ms frame within 35 dB of the loudest (oracle)."""
    hop = int(0.01 * SR)
    energy = np.array([np.sum(x[i : i + hop] ** 2) for i in range(0, len(x) - hop, hop)])
    loud = np.flatnonzero(energy > energy.max() * 10 ** (-35 / 10))
    return (loud[-1] - loud[0] + 1) * hop / SR


def test_older_speakers_talk_more_slowly_and_are_rougher():
    slower = []
    for seed in range(4):
        young, old = voice_at(30, "F", seed=seed), voice_at(75, "F", seed=seed)
        assert old.jitter > young.jitter and old.shimmer > young.shimmer
        assert old.breathiness >= young.breathiness
        slower.append(speech_seconds(clean_audio(old, "TSI", 1)) / speech_seconds(
            clean_audio(young, "TSI", 1)))  # fmt: skip
    expected = float(np.exp(-age_effects(75, "F").log_tempo))
    assert np.median(slower) == pytest.approx(expected, rel=0.08)


def test_age_effects_are_weak_and_overlap_between_speakers():
    rng = np.random.default_rng(0)
    pop = Population()
    young = np.array([draw_voice(pop, "F", rng, strength=1, age=25).f0_hz for _ in range(300)])
    old = np.array([draw_voice(pop, "F", rng, strength=1, age=75).f0_hz for _ in range(300)])
    assert np.median(old) < np.median(young)
    assert np.mean(old > np.median(young)) > 0.1  # older women above the young median


def npvi(durations: list[float]) -> float:
    """Normalised pairwise variability index of successive vowel durations (Grabe & Low)."""
    d = np.asarray(durations)
    return float(100 * np.mean(np.abs(np.diff(d)) / ((d[1:] + d[:-1]) / 2)))


def vowel_durations(accent: Accent, seed: int) -> list[float]:
    durs = []
    for k, code in enumerate(SENTENCES):
        segs = _segments(sentence_plan(code), 1.0, np.random.default_rng(seed * 100 + k), accent)
        durs.append([dur for ph, dur, _ in segs if ph.kind == "V"])
    return durs


def test_l2_rhythm_is_more_syllable_timed_and_pauses_more():
    l1 = [draw_accent("L1", np.random.default_rng(s)) for s in range(20)]
    l2 = [draw_accent("L2", np.random.default_rng(s)) for s in range(20)]
    pvi = {
        name: np.mean([np.mean([npvi(d) for d in vowel_durations(a, s)]) for s, a in enumerate(acc)])
        for name, acc in (("L1", l1), ("L2", l2))
    }  # fmt: skip
    assert pvi["L1"] > pvi["L2"] + 5
    pauses = {}
    for name, acc in (("L1", l1), ("L2", l2)):
        n = 0
        for s, a in enumerate(acc):
            for code in SENTENCES:
                segs = _segments(sentence_plan(code), 1.0, np.random.default_rng(s), a)
                n += sum(ph is INVENTORY["_"] for ph, _, _ in segs)
        pauses[name] = n
    assert pauses["L2"] > 2 * pauses["L1"]


def test_l2_vowels_reduce_less_and_merge_tense_lax_pairs():
    from sergrad.corpora.phonemes import _V, vowel_target

    native, l2 = Accent(reduction=1.0), Accent(reduction=0.1, vowel_shift=0.8)

    def target(sym: str, acc: Accent, *, stressed: bool) -> np.ndarray:
        return vowel_target(sym, stressed=stressed, accent=acc)

    def to_schwa(acc: Accent) -> float:  # mean distance of unstressed vowels from schwa
        return float(np.mean([np.linalg.norm(target(s, acc, stressed=False) - SCHWA) for s in _V]))

    full = float(np.mean([np.linalg.norm(np.asarray(v) - SCHWA) for v in _V.values()]))
    assert to_schwa(native) < 0.6 * full  # native unstressed vowels centralise
    assert to_schwa(l2) > to_schwa(native) + 0.25 * full  # L2 keeps their quality
    for lax, tense in (("I", "i"), ("U", "u")):
        gap_l2 = np.linalg.norm(target(lax, l2, stressed=True) - target(tense, l2, stressed=True))
        gap_l1 = np.linalg.norm(
            target(lax, native, stressed=True) - target(tense, native, stressed=True)
        )
        assert gap_l2 < 0.5 * gap_l1  # tense/lax pairs merge


def test_same_seed_same_traits():
    a = [(s.voice.age, s.voice.language, s.voice.accent) for s in
         plan_speakers(PROFILES.get("synth-room"), 18, 5)]  # fmt: skip
    b = [(s.voice.age, s.voice.language, s.voice.accent) for s in
         plan_speakers(PROFILES.get("synth-room"), 18, 5)]  # fmt: skip
    c = [(s.voice.age, s.voice.language) for s in plan_speakers(PROFILES.get("synth-room"), 18, 6)]
    assert a == b and [x[:2] for x in a] != c


def test_an_edited_profile_is_a_different_corpus(tmp_path, monkeypatch):
    import dataclasses
    import json

    out = tiny(tmp_path / "s", speakers=3)
    before = json.loads((out / "sergrad_synth.json").read_text())["profile_digest"]
    prof = PROFILES.get("synth-studio")
    edited = dataclasses.replace(
        prof, population=dataclasses.replace(prof.population, age_effect=0.0)
    )
    monkeypatch.setitem(PROFILES._items, "synth-studio", edited)
    tiny(tmp_path / "s", speakers=3)  # replaced in place, not reused
    after = json.loads((out / "sergrad_synth.json").read_text())["profile_digest"]
    assert before != after
