"""Synthetic speakers: voices shaped by gender, age and language background, and
idiosyncratic emotional styles.

A `Population` holds overlapping gender-conditional distributions (F0, vocal-tract length,
voice quality, speaking rate). `draw_voice` samples one speaker of a given age and language
background from it; each speaker also gets its own way of expressing emotions
(`Voice.styles`): the shared emotion effects of EFFECTS, shaped by gender (GENDER_STYLE),
scaled by a personal expressiveness, with per-dimension factors and offsets.
`utterance_style` then adds utterance-to-utterance variation. All draws use the generator
passed in.

Ageing (`age_effects`, weak and overlapping with the spread between speakers of one age):
female F0 falls steadily with age; male F0 falls into the fifties and rises again after
about 60 (Hollien & Shipp 1972; Torre & Barlow 2009); jitter, shimmer and breathiness grow
(incomplete glottal closure, Linville 2001) and a ~5 Hz vocal tremor appears after about
55; older speakers talk more slowly (about 15-20 %
slower at 75 than at 30); the vocal tract lengthens a little (lower formants). Language
background (`draw_accent`): L2 speakers get a continuous non-nativeness that makes their
rhythm more syllable-timed, their vowels less reduced and shifted towards a five-vowel
system, their pauses more frequent and longer and their speech a little slower
(phonemes.Accent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sergrad.corpora.phonemes import Accent
from sergrad.schema import EMOTIONS

# Style dimensions: pitch shift (semitones), pitch range (semitones, added to the base
# range), log tempo factor, loudness (dB), spectral tilt (dB/octave), open-quotient delta,
# breathiness delta.
STYLE_DIMS: tuple[str, ...] = (
    "f0_st",
    "range_st",
    "log_tempo",
    "loud_db",
    "tilt_db",
    "oq",
    "breath",
)
EFFECTS: dict[str, np.ndarray] = {  # shared effect of each emotion at intensity 1
    "neutral": np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    "happy": np.array([2.0, 2.0, 0.05, 2.5, 0.8, -0.03, 0.0]),
    "sad": np.array([-1.0, -1.3, -0.15, -3.5, -1.2, 0.05, 0.04]),
    "angry": np.array([2.5, 1.0, 0.07, 5.0, 2.0, -0.08, -0.02]),
}
# How each gender scales the shared effect, per style dimension. Women and men express
# emotions differently on average (e.g. larger pitch excursions and more breathy sadness in
# female speech, larger loudness and tilt changes in male anger and joy). These differences
# survive per-speaker z-normalisation (which removes a speaker's mean and scale but not the
# direction in which emotions move the features), which is what lets a speaker's gender
# leak through the gradients of an emotion model, as it does with real corpora.
GENDER_STYLE: dict[str, dict[str, np.ndarray]] = {
    "F": {
        "neutral": np.ones(7),
        "happy": np.array([1.6, 1.7, 1.0, 0.6, 0.5, 1.0, 1.0]),
        "sad": np.array([0.5, 0.7, 1.0, 0.8, 0.7, 1.5, 2.0]),
        "angry": np.array([1.5, 1.6, 1.0, 0.7, 0.6, 1.0, 1.0]),
    },
    "M": {
        "neutral": np.ones(7),
        "happy": np.array([0.5, 0.4, 1.0, 1.4, 1.5, 1.0, 1.0]),
        "sad": np.array([1.5, 1.3, 0.7, 1.2, 1.3, 0.5, 0.3]),
        "angry": np.array([0.5, 0.4, 1.0, 1.4, 1.5, 1.0, 1.0]),
    },
}
UTTERANCE_SD = np.array([1.0, 0.8, 0.07, 2.0, 0.8, 0.03, 0.02])  # per-utterance variation
BASE_RANGE_ST = 3.5


@dataclass(frozen=True)
class Population:
    """Gender-conditional voice distributions of one corpus; (female, male) pairs."""

    f0_median_hz: tuple[float, float] = (205.0, 118.0)
    f0_log_sd: float = 0.15
    vtl_cm: tuple[float, float] = (14.9, 17.0)
    vtl_sd_cm: float = 0.85
    open_quotient: tuple[float, float] = (0.62, 0.52)
    breathiness: tuple[float, float] = (0.10, 0.06)
    ages: tuple[int, int] = (20, 74)
    age_mix: tuple[float, float, float] = (1.0, 1.0, 1.0)  # weights of <30, 30-49, >=50
    female_fraction: float = 0.5
    l2_fraction: float = 0.4  # share of L2 (non-native) speakers
    age_effect: float = 1.0  # scales every ageing effect
    accent_effect: float = 1.0  # scales how far L2 speakers depart from L1 speech
    tempo_log_sd: float = 0.08  # personal speaking-rate spread


@dataclass(frozen=True)
class Voice:
    gender: str  # "F" | "M"
    age: int
    f0_hz: float
    formant_scale: float  # 17.5 cm / vocal-tract length
    formant_detune: tuple[float, float, float]  # per-formant personal factors
    open_quotient: float
    breathiness: float
    tilt_db: float  # personal spectral tilt, dB/octave
    jitter: float
    shimmer: float
    styles: dict[str, np.ndarray]  # emotion -> style vector over STYLE_DIMS
    language: str = "L1"  # L1 | L2
    accent: Accent = Accent()
    log_tempo: float = 0.0  # personal speaking rate (age and language included)
    tremor_st: float = 0.0  # vocal tremor depth (older voices), semitones


@dataclass(frozen=True)
class AgeEffects:
    """How a voice at `age` departs from a young adult's (multipliers and offsets)."""

    f0_st: float  # semitones
    jitter: float  # factor
    shimmer: float  # factor
    breathiness: float  # added
    log_tempo: float  # added
    vtl_cm: float  # added
    tremor_st: float  # depth of a ~5 Hz vocal tremor, semitones


def age_effects(age: float, gender: str, *, scale: float = 1.0) -> AgeEffects:
    """Literature-shaped ageing of the voice (module docstring); `scale` weakens or
    strengthens all of it. Ages below 25 get no effect.

    >>> young, old = age_effects(25, "F"), age_effects(75, "F")
    >>> old.f0_st < young.f0_st == 0.0, old.log_tempo < 0.0
    (True, True)
    >>> age_effects(55, "M").f0_st < 0.0 < age_effects(80, "M").f0_st
    True
    """
    over = lambda a: max(age - a, 0.0)  # noqa: E731
    if gender == "F":
        f0_st = -0.05 * over(25)
    else:
        f0_st = -0.03 * (min(age, 60.0) - 25.0 if age > 25 else 0.0) + 0.10 * over(60)
    return AgeEffects(
        f0_st=scale * f0_st,
        jitter=1.0 + scale * 0.02 * over(30),
        shimmer=1.0 + scale * 0.015 * over(30),
        breathiness=scale * 0.0012 * over(35),
        log_tempo=-scale * 0.004 * over(30),
        vtl_cm=scale * 0.006 * over(25),
        tremor_st=scale * 0.012 * over(55),
    )


def draw_accent(language: str, rng: np.random.Generator, *, scale: float = 1.0) -> Accent:
    """An L1 speaker varies a little around native timing; an L2 speaker gets a
    non-nativeness d in (0.15, 0.85) that moves rhythm, vowels and pauses (module docstring)."""
    if language == "L1":
        return Accent(
            reduction=float(np.clip(rng.normal(1.0, 0.15), 0.5, 1.4)),
            stress_ratio=float(rng.normal(1.4, 0.08)),
            vowel_shift=0.0,
            pause_rate=float(rng.uniform(0.0, 0.04)),
            pause_ms=float(rng.uniform(120.0, 220.0)),
        )
    d = min(scale * float(rng.uniform(0.15, 0.85)), 1.0)
    return Accent(
        reduction=float(np.clip(1.0 - 0.9 * d + rng.normal(0.0, 0.1), 0.0, 1.4)),
        stress_ratio=float(1.4 - 0.35 * d + rng.normal(0.0, 0.05)),
        vowel_shift=float(np.clip(d + rng.normal(0.0, 0.1), 0.0, 1.0)),
        pause_rate=float(0.03 + 0.25 * d * rng.uniform(0.5, 1.5)),
        pause_ms=float(170.0 + 200.0 * d * rng.uniform(0.6, 1.4)),
    )


def draw_voice(
    pop: Population,
    gender: str,
    rng: np.random.Generator,
    *,
    strength: float,
    age: int | None = None,
    language: str = "L1",
) -> Voice:
    """One speaker of `gender`, `age` (drawn from pop.ages when None) and `language`
    (L1 | L2): voice from the gender's distributions, aged (age_effects), with an accent
    (draw_accent) and personal emotion styles."""
    if language not in ("L1", "L2"):
        raise ValueError(f"language {language!r}: expected L1 or L2")
    g = 0 if gender == "F" else 1
    age = int(rng.integers(pop.ages[0], pop.ages[1] + 1)) if age is None else int(age)
    aged = age_effects(age, gender, scale=pop.age_effect)
    vtl = float(rng.normal(pop.vtl_cm[g], pop.vtl_sd_cm))
    # F0 is weakly tied to body size: longer tracts tend to come with lower voices.
    z_size = (vtl - pop.vtl_cm[g]) / pop.vtl_sd_cm
    vtl += aged.vtl_cm
    f0 = pop.f0_median_hz[g] * float(
        np.exp(pop.f0_log_sd * (0.8 * rng.standard_normal() - 0.6 * z_size))
    )
    f0 *= 2.0 ** (aged.f0_st / 12.0)
    accent = draw_accent(language, rng, scale=pop.accent_effect)
    l2_slow = 0.15 * accent.vowel_shift  # 0 for L1 speakers
    log_tempo = float(rng.normal(0.0, pop.tempo_log_sd)) + aged.log_tempo - l2_slow
    expressiveness = float(np.exp(rng.normal(0.0, 0.3))) * strength
    styles = {}
    for emo in EMOTIONS:
        factor = 1.0 + 0.4 * rng.standard_normal(len(STYLE_DIMS))
        offset = 0.5 * UTTERANCE_SD * rng.standard_normal(len(STYLE_DIMS))
        effect = EFFECTS[emo] * GENDER_STYLE[gender][emo]
        styles[emo] = effect * expressiveness * factor + offset
    return Voice(
        gender=gender,
        age=age,
        f0_hz=f0,
        formant_scale=17.5 / max(vtl, 10.0),
        formant_detune=tuple(float(x) for x in 1.0 + 0.04 * rng.standard_normal(3)),
        open_quotient=float(np.clip(rng.normal(pop.open_quotient[g], 0.06), 0.35, 0.8)),
        breathiness=float(
            np.clip(rng.normal(pop.breathiness[g], 0.03) + aged.breathiness, 0.0, 0.35)
        ),
        tilt_db=float(rng.normal(0.0, 1.0)),
        jitter=float(rng.uniform(0.004, 0.015)) * aged.jitter,
        shimmer=float(rng.uniform(0.02, 0.08)) * aged.shimmer,
        styles=styles,
        language=language,
        accent=accent,
        log_tempo=log_tempo,
        tremor_st=aged.tremor_st * float(rng.uniform(0.5, 1.5)),
    )


@dataclass(frozen=True)
class Style:
    """The resolved prosody and voice-quality settings of one utterance."""

    f0_hz: float
    range_st: float
    tempo: float
    loud_db: float
    tilt_db: float
    open_quotient: float
    breathiness: float
    jitter: float
    shimmer: float
    tremor_st: float = 0.0


def utterance_style(
    voice: Voice, emotion: str, *, intensity: float, rng: np.random.Generator
) -> Style:
    """A speaker's style for the emotion at an intensity, plus utterance-level variation."""
    s = voice.styles[emotion] * intensity + UTTERANCE_SD * rng.standard_normal(len(STYLE_DIMS))
    f0_st, range_st, log_tempo, loud_db, tilt_db, oq, breath = (float(x) for x in s)
    arousal = max(0.0, loud_db) / 5.0  # shouting adds a little jitter/shimmer
    return Style(
        f0_hz=voice.f0_hz * 2.0 ** (f0_st / 12.0),
        range_st=float(np.clip(BASE_RANGE_ST + range_st, 0.5, 12.0)),
        tempo=float(np.exp(voice.log_tempo + log_tempo)),
        loud_db=loud_db,
        tilt_db=voice.tilt_db + tilt_db,
        open_quotient=float(np.clip(voice.open_quotient + oq, 0.32, 0.85)),
        breathiness=float(np.clip(voice.breathiness + breath, 0.0, 0.4)),
        jitter=voice.jitter * (1.0 + 0.3 * arousal),
        shimmer=voice.shimmer * (1.0 + 0.3 * arousal),
        tremor_st=voice.tremor_st,
    )
