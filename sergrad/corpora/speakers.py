"""Synthetic speakers: gender-dependent voices and idiosyncratic emotional styles.

A `Population` holds overlapping gender-conditional distributions (F0, vocal-tract length,
voice quality). `draw_voice` samples one speaker from it; each speaker also gets its own
way of expressing emotions (`Voice.styles`): the shared emotion effects of EFFECTS, shaped
by gender (GENDER_STYLE), scaled by a personal expressiveness, with per-dimension factors and offsets. `utterance_style` then
adds utterance-to-utterance variation. All draws use the generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
    female_fraction: float = 0.5


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


def draw_voice(pop: Population, gender: str, rng: np.random.Generator, *, strength: float) -> Voice:
    """One speaker: voice drawn from the gender's distributions, plus personal emotion styles."""
    g = 0 if gender == "F" else 1
    age = int(rng.integers(pop.ages[0], pop.ages[1] + 1))
    vtl = float(rng.normal(pop.vtl_cm[g], pop.vtl_sd_cm))
    # F0 is weakly tied to body size: longer tracts tend to come with lower voices.
    z_size = (vtl - pop.vtl_cm[g]) / pop.vtl_sd_cm
    f0 = pop.f0_median_hz[g] * float(
        np.exp(pop.f0_log_sd * (0.8 * rng.standard_normal() - 0.6 * z_size))
    )
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
        breathiness=float(np.clip(rng.normal(pop.breathiness[g], 0.03), 0.0, 0.3)),
        tilt_db=float(rng.normal(0.0, 1.0)),
        jitter=float(rng.uniform(0.004, 0.015)),
        shimmer=float(rng.uniform(0.02, 0.08)),
        styles=styles,
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
        tempo=float(np.exp(log_tempo)),
        loud_db=loud_db,
        tilt_db=voice.tilt_db + tilt_db,
        open_quotient=float(np.clip(voice.open_quotient + oq, 0.32, 0.85)),
        breathiness=float(np.clip(voice.breathiness + breath, 0.0, 0.4)),
        jitter=voice.jitter * (1.0 + 0.3 * arousal),
        shimmer=voice.shimmer * (1.0 + 0.3 * arousal),
    )
