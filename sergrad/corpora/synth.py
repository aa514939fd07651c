"""Built-in synthetic corpora, written in CREMA-D's release layout.

The real corpora cannot ship, so sergrad generates speech procedurally (numpy only): a
source-filter voice per speaker (synth_speakers.py, render.py, voice.py), phoneme-like sentences
(phonemes.py) and a recording channel per corpus (channel.py). Each profile in PROFILES is
one corpus with its own speaker population and channel, so leave-one-corpus-out works.

    OUT/AudioWAV/<actor>_<SENT>_<EMO>_<LVL>.wav      16 kHz 16-bit PCM mono
    OUT/VideoDemographics.csv                        ActorID,Age,Sex,Race,Ethnicity,Language
    OUT/processedResults/summaryTable.csv            perceived votes (a few disagree / tie)
    OUT/sergrad_synth.json                           the parameters that made it

Speakers: genders interleaved, languages (L1 / L2) and ages stratified within each gender
(ages by the profile's mix of the groups <30, 30-49, >=50), so every profile holds every
class of gender, age_group and language for leave-one-corpus-out attacks.

Calibration (`python -m sergrad.corpora.calibrate --seeds 0,1`: default sizes, "combined"
features, logistic regression over 5 speaker folds; emotion on per-speaker z-normalised
features, the speaker attributes on raw ones), seed 0 / seed 1:

    profile        emotion      gender       age_group    language     age MAE (baseline)
    synth-studio   0.60 / 0.62  0.96 / 0.74  0.51 / 0.36  0.70 / 0.72  12.1 (13.9) / 12.0 (14.9)
    synth-phone    0.56 / 0.50  0.99 / 0.80  0.47 / 0.47  0.80 / 0.82  12.4 (15.7) / 11.5 (15.4)
    synth-room     0.57 / 0.57  0.97 / 0.97  0.31 / 0.20  0.77 / 0.78  12.9 (13.8) / 15.0 (14.2)

Age is the weakest trait, as in real speech: voices change little before 50, and the
far-field room channel hides the voice-quality cues of its few older speakers.

>>> sorted(PROFILES)
['synth-phone', 'synth-room', 'synth-studio']
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sergrad.corpora.channel import Channel, Session, apply_channel, draw_session
from sergrad.corpora.phonemes import sentence_plan
from sergrad.corpora.render import render_utterance
from sergrad.corpora.synth_layout import (
    EMO_CODES,
    perceived_vote,
    utterance_names,
    write_demographics,
    write_summary_table,
)
from sergrad.corpora.synth_speakers import Population, Voice, draw_voice, utterance_style
from sergrad.corpora.voice import SR
from sergrad.errors import ConfigError, DataError
from sergrad.registry import Registry
from sergrad.schema import EMOTIONS

# 2: gender-dependent emotional styles (speakers.GENDER_STYLE); 3: ageing voices, L1/L2
# language background (rhythm, vowels, pauses), stratified ages and languages
SYNTH_VERSION = 3
MANIFEST = "sergrad_synth.json"
SKIPPED_ACTORS = frozenset({1076})  # CREMA-D adapters skip 1076_MTI_SAD_XX (no audio there)


@dataclass(frozen=True)
class Profile:
    """One synthetic corpus: who speaks, how much, and through which channel."""

    name: str
    description: str
    speakers: int  # default number of speakers
    utterances_per_emotion: int  # default per speaker and emotion
    actor_base: int  # first actor id; profiles use disjoint ranges
    population: Population = field(default_factory=Population)
    channel: Channel = field(default_factory=Channel)
    emotion_strength: float = 1.0  # scales every speaker's emotion effects
    agreement: tuple[float, float, float] = (0.72, 0.8, 0.85)  # voice, face, multimodal votes


# Ageing at twice the literature's average slopes and strong L2 accents, so that corpora of
# 18-24 speakers show the trends (calibrated with `python -m sergrad.corpora.calibrate`);
# speakers of one age or background still overlap widely.
TRAIT_EFFECTS = {"age_effect": 2.0, "accent_effect": 1.5}
PROFILES: Registry[Profile] = Registry("synthetic corpus profile")
for _p in (
    Profile(
        name="synth-studio",
        description="acted, clean wideband studio, adults 20-74, 40% L2",
        speakers=24,
        utterances_per_emotion=9,
        actor_base=1001,
        population=Population(female_fraction=0.46, **TRAIT_EFFECTS),
        channel=Channel(snr_db=(35.0, 45.0), noise_colour=0.5),
    ),
    Profile(
        name="synth-phone",
        description="telephone band 300-3400 Hz, mu-law codec, older-leaning 25-80, 35% L2",
        speakers=20,
        utterances_per_emotion=8,
        actor_base=2001,
        population=Population(
            f0_median_hz=(188.0, 126.0),
            ages=(25, 80),
            age_mix=(0.25, 0.35, 0.4),
            open_quotient=(0.6, 0.54),
            l2_fraction=0.35,
            **TRAIT_EFFECTS,
        ),
        channel=Channel(
            band_hz=(300.0, 3400.0), codec_bits=8, snr_db=(20.0, 30.0), noise_colour=0.3
        ),
        agreement=(0.65, 0.8, 0.82),
    ),
    Profile(
        name="synth-room",
        description="far-field in reverberant rooms, younger-leaning 18-70, 50% L2",
        speakers=18,
        utterances_per_emotion=10,
        actor_base=3001,
        population=Population(
            f0_median_hz=(212.0, 114.0),
            ages=(18, 70),
            age_mix=(0.4, 0.35, 0.25),
            female_fraction=0.55,
            l2_fraction=0.5,
            **TRAIT_EFFECTS,
        ),
        channel=Channel(
            rt60_s=(0.3, 0.7), drr_db=(-2.0, 4.0), snr_db=(12.0, 22.0), noise_colour=1.5
        ),
    ),
):
    PROFILES.register(_p.name)(_p)


def _rng(seed: int, profile: str, *key: int) -> np.random.Generator:
    """Independent generator for (seed, profile, purpose, ...): never global state."""
    ss = np.random.SeedSequence(seed, spawn_key=(zlib.crc32(profile.encode()), *key))
    return np.random.default_rng(ss)


@dataclass(frozen=True)
class Speaker:
    actor_id: int
    voice: Voice
    session: Session


def actor_ids(profile: Profile, n: int) -> list[int]:
    ids = [
        i
        for i in range(profile.actor_base, profile.actor_base + n + len(SKIPPED_ACTORS))
        if i not in SKIPPED_ACTORS
    ]
    return ids[:n]


def genders(profile: Profile, n: int, seed: int) -> list[str]:
    """Interleaved F/M assignment (so speaker-ordered folds stay mixed), ~female_fraction F."""
    n_f = min(max(int(round(n * profile.population.female_fraction)), 1 if n > 1 else 0), n)
    out = ["M"] * n
    if n_f:
        u = _rng(seed, profile.name, 3, n).random()
        for j in range(n_f):
            out[min(int((j + u) * n / n_f), n - 1)] = "F"
    return out


def languages(profile: Profile, n: int, seed: int, sexes: list[str]) -> list[str]:
    """~l2_fraction L2 speakers spread evenly over both genders (both kinds when n > 1)."""
    frac = profile.population.l2_fraction
    n_l2 = int(round(n * frac))
    n_l2 = min(max(n_l2, 1 if n > 1 and frac > 0 else 0), n - 1 if n > 1 and frac < 1 else n)
    rng = _rng(seed, profile.name, 6, n)
    order = sorted(range(n), key=lambda i: (sexes[i], rng.random()))
    out = ["L1"] * n
    u = rng.random()
    for j in range(n_l2):
        out[order[min(int((j + u) * n / n_l2), n - 1)]] = "L2"
    return out


def age_quantile(pop: Population, q: float) -> int:
    """The age at quantile q of the population's age density: uniform within each of the
    age groups <30, 30-49, >=50 (clipped to pop.ages), the groups weighted by pop.age_mix."""
    lo, hi = pop.ages[0], pop.ages[1] + 1  # ages as [lo, hi) in years
    cuts = [lo, *(c for c in (30, 50) if lo < c < hi), hi]
    groups = [0 if a < 30 else 1 if a < 50 else 2 for a in cuts[:-1]]
    w = np.array([pop.age_mix[g] for g in groups], dtype=np.float64)
    cum = np.concatenate(([0.0], np.cumsum(w / w.sum())))  # [S+1]
    k = int(min(np.searchsorted(cum, q, side="right") - 1, len(groups) - 1))
    frac = (q - cum[k]) / max(cum[k + 1] - cum[k], 1e-12)
    return int(min(cuts[k] + np.floor(frac * (cuts[k + 1] - cuts[k])), pop.ages[1]))


def ages(profile: Profile, n: int, seed: int, sexes: list[str]) -> list[int]:
    """Stratified ages (age_quantile) within each gender, so every part of the range gets
    speakers of both genders, in random order."""
    rng = _rng(seed, profile.name, 7, n)
    out = [0] * n
    for g in sorted(set(sexes)):
        idx = [i for i in range(n) if sexes[i] == g]
        slots = (np.arange(len(idx)) + rng.random(len(idx))) / len(idx)  # [m] in (0, 1)
        for i, q in zip(idx, rng.permutation(slots)):
            out[i] = age_quantile(profile.population, float(q))
    return out


def plan_speakers(profile: Profile, n: int, seed: int) -> list[Speaker]:
    spk = []
    sexes = genders(profile, n, seed)
    langs = languages(profile, n, seed, sexes)
    years = ages(profile, n, seed, sexes)
    for i, (actor, gender) in enumerate(zip(actor_ids(profile, n), sexes)):
        voice = draw_voice(
            profile.population,
            gender,
            _rng(seed, profile.name, 0, i),
            strength=profile.emotion_strength,
            age=years[i],
            language=langs[i],
        )
        session = draw_session(profile.channel, _rng(seed, profile.name, 1, i))
        spk.append(Speaker(actor_id=actor, voice=voice, session=session))
    return spk


def synth_audio(
    profile: Profile,
    speaker: Speaker,
    emotion: str,
    sentence: str,
    *,
    intensity: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """One recorded utterance [T] float32 in (-1, 1)."""
    style = utterance_style(speaker.voice, emotion, intensity=intensity, rng=rng)
    clean = render_utterance(speaker.voice, style, sentence_plan(sentence), rng=rng)
    return apply_channel(clean, speaker.session, profile.channel, rng=rng).astype(np.float32)


def profile_digest(prof: Profile) -> str:
    """Short hash of every setting of a profile: an edited profile is a different corpus."""
    text = json.dumps(asdict(prof), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _params(prof: Profile, speakers: int, seed: int, upe: int) -> dict:
    return {
        "generator": "sergrad.corpora.synth",
        "version": SYNTH_VERSION,
        "profile": prof.name,
        "profile_digest": profile_digest(prof),
        "speakers": speakers,
        "seed": seed,
        "utterances_per_emotion": upe,
        "sample_rate": SR,
    }


def _previous(out: Path) -> dict | None:
    try:
        return json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def synthesize(
    out: Path,
    *,
    profile: str,
    speakers: int | None = None,
    seed: int = 0,
    utterances_per_emotion: int | None = None,
    progress: bool = True,
) -> Path:
    """Write a synthetic corpus in CREMA-D layout to `out` and return `out`.

    Built in a temporary sibling folder, then renamed into place. An `out` that already
    holds the same synth (same parameters) is returned untouched; one holding a synth of the
    same (profile, speakers, seed) with other settings is replaced; any other non-empty
    `out` is refused (DataError).
    """
    try:
        prof = PROFILES.get(profile)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None
    n_spk = prof.speakers if speakers is None else int(speakers)
    upe = prof.utterances_per_emotion
    upe = upe if utterances_per_emotion is None else int(utterances_per_emotion)
    if not 1 <= n_spk <= 998:
        raise ConfigError(f"speakers={n_spk}: must be between 1 and 998")
    if not 1 <= upe <= 48:
        raise ConfigError(f"utterances_per_emotion={upe}: must be between 1 and 48")
    if seed < 0:
        raise ConfigError(f"seed={seed}: must be >= 0")
    out = Path(out)
    params = _params(prof, n_spk, seed, upe)
    state = _target_state(out, params)
    if state == "same":
        return out
    tmp = out.parent / f".{out.name}.synth-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        files = _write_corpus(tmp, prof, n_spk, seed, upe, progress=progress)
        (tmp / MANIFEST).write_text(json.dumps({**params, "files": files}, indent=2) + "\n")
        _move_into_place(tmp, out, replace=state == "replace")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _target_state(out: Path, params: dict) -> str:
    """'new' (absent or empty), 'same' (identical synth), 'replace' (same triple); else refuse."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return "new"
    prev = _previous(out)
    if prev is None or any(
        prev.get(k) != params[k] for k in ("generator", "profile", "speakers", "seed")
    ):
        raise DataError(
            f"{out}: exists and is not a synthetic corpus of ({params['profile']}, "
            f"speakers={params['speakers']}, seed={params['seed']}); refusing to overwrite"
        )
    return "same" if all(prev.get(k) == v for k, v in params.items()) else "replace"


def _write_corpus(
    root: Path, prof: Profile, n_spk: int, seed: int, upe: int, *, progress: bool
) -> int:
    """Audio, demographics and vote table under root; returns the number of files."""
    from tqdm import tqdm

    from sergrad.audio import write_wav

    spk = plan_speakers(prof, n_spk, seed)
    jobs = [(i, e, u) for i in range(n_spk) for e in range(len(EMOTIONS)) for u in range(upe)]
    names = {
        (i, e): utterance_names(EMOTIONS[e], upe, _rng(seed, prof.name, 2, i, e))
        for i in range(n_spk)
        for e in range(len(EMOTIONS))
    }
    rows = []
    bar = tqdm(jobs, desc=f"synth {prof.name}", file=sys.stderr, disable=not progress, unit="utt")
    for i, e, u in bar:
        sentence, level, intensity = names[(i, e)][u]
        rng = _rng(seed, prof.name, 4, i, e, u)
        audio = synth_audio(prof, spk[i], EMOTIONS[e], sentence, intensity=intensity, rng=rng)
        code = EMO_CODES[EMOTIONS[e]]
        stem = f"{spk[i].actor_id}_{sentence}_{code}_{level}"
        write_wav(root / "AudioWAV" / f"{stem}.wav", audio, SR)
        rows.append((stem, *(perceived_vote(code[0], agree, rng) for agree in prof.agreement)))
    actors = [
        (s.actor_id, s.voice.age, s.voice.gender, s.voice.language, _rng(seed, prof.name, 5, i))
        for i, s in enumerate(spk)
    ]
    write_demographics(root / "VideoDemographics.csv", actors)
    write_summary_table(root / "processedResults" / "summaryTable.csv", sorted(rows))
    return len(rows)


def _move_into_place(tmp: Path, out: Path, *, replace: bool) -> None:
    if replace:
        old = out.parent / f".{out.name}.synth-old-{os.getpid()}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
        return
    if out.exists():
        out.rmdir()  # empty
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(out)
