"""Phoneme-like sequences for the synthetic voice: an inventory, sentence plans, control tracks.

A sentence code (e.g. "DFA") maps deterministically to a pseudo-word sequence of CV(C)
syllables (same "text" for every speaker, as in CREMA-D). `control_tracks` turns a plan into
the per-sample and per-frame controls the source-filter model needs: voicing and noise
amplitudes, formant targets (male reference values, scaled by the caller for vocal-tract
length) with linear transitions between segment centres, and the frication band.

A speaker's `Accent` shapes the rhythm and vowels of the plan. Native (L1) English is
stress-timed: stressed vowels lengthen, unstressed ones shorten and centralise towards schwa.
L2 speakers whose first language is syllable-timed (e.g. Spanish) reduce less (more equal
syllables, full vowel quality), merge tense/lax pairs towards a five-vowel system (I -> i,
U -> u, ^ -> a, ae -> E, er loses its low F3) and pause more often and longer inside
sentences (Grabe & Low 2002 on rhythm metrics; Flege 1995 on L2 vowels; Riazantseva 2001 on
L2 pauses).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from sergrad.corpora.voice import SR, frame_times, smooth


@dataclass(frozen=True)
class Phone:
    kind: str  # V vowel, N nasal, L approximant, F fricative, P plosive, S pause
    dur_ms: float
    formants: tuple[float, float, float] | None  # F1-F3 targets / loci (male reference)
    voice: float = 0.0  # voicing amplitude
    noise: float = 0.0  # noise amplitude
    fric_hz: float = 0.0  # frication band centre (0: noise goes through the formants)


_V = {  # Peterson & Barney style male averages
    "i": (270, 2290, 3010),
    "I": (390, 1990, 2550),
    "E": (530, 1840, 2480),
    "ae": (660, 1720, 2410),
    "a": (730, 1090, 2440),
    "o": (570, 840, 2410),
    "U": (440, 1020, 2240),
    "u": (300, 870, 2240),
    "^": (640, 1190, 2390),
    "er": (490, 1350, 1690),
}
INVENTORY: dict[str, Phone] = {k: Phone("V", 120, v, voice=1.0) for k, v in _V.items()}
INVENTORY.update(
    {
        "m": Phone("N", 65, (250, 1100, 2300), voice=0.35),
        "n": Phone("N", 60, (250, 1600, 2500), voice=0.35),
        "l": Phone("L", 60, (360, 1050, 2700), voice=0.6),
        "r": Phone("L", 60, (350, 1200, 1600), voice=0.6),
        "w": Phone("L", 55, (300, 700, 2200), voice=0.6),
        "y": Phone("L", 55, (280, 2200, 2900), voice=0.6),
        "s": Phone("F", 95, (350, 1700, 2600), noise=0.35, fric_hz=5500),
        "sh": Phone("F", 100, (350, 1900, 2400), noise=0.4, fric_hz=3000),
        "f": Phone("F", 90, (350, 900, 2300), noise=0.15, fric_hz=4500),
        "z": Phone("F", 75, (300, 1700, 2600), voice=0.25, noise=0.22, fric_hz=5500),
        "v": Phone("F", 65, (300, 900, 2300), voice=0.3, noise=0.1, fric_hz=4000),
        "h": Phone("F", 60, None, noise=0.12),
        "p": Phone("P", 60, (300, 900, 2300), noise=0.5, fric_hz=1200),
        "t": Phone("P", 55, (300, 1800, 2700), noise=0.5, fric_hz=4200),
        "k": Phone("P", 60, (300, 2000, 2400), noise=0.5, fric_hz=2300),
        "b": Phone("P", 50, (300, 900, 2300), voice=0.08, noise=0.3, fric_hz=1200),
        "d": Phone("P", 45, (300, 1800, 2700), voice=0.08, noise=0.3, fric_hz=4000),
        "g": Phone("P", 50, (300, 2000, 2400), voice=0.08, noise=0.3, fric_hz=2300),
        "_": Phone("S", 160, None),
    }
)
SCHWA = np.array([500.0, 1500.0, 2500.0])
# Where a five-vowel (syllable-timed) first language puts each English vowel target.
L2_VOWELS: dict[str, tuple[float, float, float]] = {
    "i": (280, 2250, 2950),
    "I": (300, 2200, 2900),
    "E": (480, 1850, 2500),
    "ae": (560, 1800, 2500),
    "a": (720, 1200, 2500),
    "o": (500, 900, 2450),
    "U": (320, 900, 2300),
    "u": (320, 900, 2300),
    "^": (720, 1200, 2500),
    "er": (500, 1550, 2500),
}


@dataclass(frozen=True)
class Accent:
    """How a speaker times syllables, reduces vowels and pauses (see the module docstring)."""

    reduction: float = 1.0  # unstressed-vowel reduction, 1 = typical native English
    stress_ratio: float = 1.35  # stressed / plain vowel duration
    vowel_shift: float = 0.0  # 0 = English targets, 1 = the L2_VOWELS system
    pause_rate: float = 0.0  # chance of a hesitation pause at each syllable boundary
    pause_ms: float = 200.0  # mean hesitation pause


_ONSETS = [
    "p",
    "t",
    "k",
    "b",
    "d",
    "g",
    "m",
    "n",
    "l",
    "r",
    "w",
    "y",
    "s",
    "sh",
    "f",
    "z",
    "v",
    "h",
]
_CODAS = ["t", "k", "n", "m", "s", "z", "l", "r", "d"]
_VOWELS = list(_V)
BURST_MS = 15.0


@dataclass(frozen=True)
class SentencePlan:
    code: str
    phones: tuple[str, ...]
    stressed: tuple[bool, ...]  # per phone; True on stressed vowels
    syllable_end: tuple[bool, ...] = ()  # per phone; True on a syllable's last phone


def sentence_plan(code: str) -> SentencePlan:
    """The fixed pseudo-word "text" of a sentence code (deterministic, speaker-independent)."""
    rng = np.random.default_rng(zlib.crc32(code.encode()))
    n_syll = int(rng.integers(4, 8))
    pause_after = int(rng.integers(2, n_syll - 1)) if rng.random() < 0.35 else -1
    n_stress = int(rng.integers(1, 4))
    stress_at = set(rng.choice(n_syll, size=n_stress, replace=False).tolist())
    phones: list[str] = []
    stressed: list[bool] = []
    ends: list[bool] = []
    for s in range(n_syll):
        for _ in range(int(rng.choice([0, 1, 1, 1, 2]))):
            phones.append(str(rng.choice(_ONSETS)))
            stressed.append(False)
        phones.append(str(rng.choice(_VOWELS)))
        stressed.append(s in stress_at)
        if rng.random() < 0.35:
            phones.append(str(rng.choice(_CODAS)))
            stressed.append(False)
        ends += [False] * (len(phones) - len(ends) - 1) + [True]
        if s == pause_after:
            phones.append("_")
            stressed.append(False)
            ends.append(False)
    return SentencePlan(
        code=code, phones=tuple(phones), stressed=tuple(stressed), syllable_end=tuple(ends)
    )


@dataclass(frozen=True)
class Tracks:
    voice_amp: np.ndarray  # [T]
    noise_amp: np.ndarray  # [T]
    accents: np.ndarray  # [A] sample positions of stressed-vowel centres
    formants: np.ndarray  # [N, 3] Hz, male reference (caller scales)
    fric_mix: np.ndarray  # [N] 0 = formant filter, 1 = frication band
    fric_hz: np.ndarray  # [N]
    speech_end: int  # last sample of speech (before trailing silence)


def vowel_target(sym: str, *, stressed: bool, accent: Accent) -> np.ndarray:
    """F1-F3 target of vowel `sym` for a speaker with `accent` (male reference) [3]."""
    native = np.asarray(_V[sym], dtype=np.float64)
    shifted = native + accent.vowel_shift * (np.asarray(L2_VOWELS[sym]) - native)
    if stressed:
        return shifted
    return shifted + min(0.45 * accent.reduction, 0.9) * (SCHWA - shifted)


def _segments(
    plan: SentencePlan, tempo: float, rng: np.random.Generator, accent: Accent
) -> list[tuple[Phone, float, bool]]:
    """Expand plosives into closure + burst, apply the accent, draw durations (ms)."""
    segs: list[tuple[Phone, float, bool]] = []
    ends = plan.syllable_end or (False,) * len(plan.phones)
    for sym, stress, end in zip(plan.phones, plan.stressed, ends):
        ph = INVENTORY[sym]
        dur = ph.dur_ms * float(np.exp(rng.normal(0.0, 0.15))) / tempo
        if ph.kind == "V":
            ph = Phone("V", ph.dur_ms, tuple(vowel_target(sym, stressed=stress, accent=accent)),
                       voice=ph.voice)  # fmt: skip
            if stress:
                dur *= accent.stress_ratio
            else:
                dur *= max(1.0 - 0.3 * accent.reduction, 0.4)
        if ph.kind == "P":
            closure = Phone("S", 0.0, ph.formants, voice=ph.voice)
            segs.append((closure, dur, False))
            burst = Phone("F", 0.0, ph.formants, noise=ph.noise, fric_hz=ph.fric_hz)
            segs.append((burst, BURST_MS, False))
        else:
            segs.append((ph, dur, stress))
        if end and accent.pause_rate > 0 and rng.random() < accent.pause_rate:
            pause = accent.pause_ms * float(np.exp(rng.normal(0.0, 0.35))) / tempo
            segs.append((INVENTORY["_"], pause, False))
    return segs


def control_tracks(
    plan: SentencePlan,
    *,
    tempo: float,
    rng: np.random.Generator,
    lead_ms: tuple[float, float],
    accent: Accent = Accent(),
) -> Tracks:
    """Per-sample amplitudes and per-frame formant / frication controls for one utterance."""
    segs = _segments(plan, tempo, rng, accent)
    lead, trail = (float(rng.uniform(*lead_ms)) for _ in range(2))
    durs = np.array([lead] + [d for _, d, _ in segs] + [trail]) * SR / 1000.0
    bounds = np.concatenate(([0.0], np.cumsum(durs))).round().astype(np.int64)  # [S+3]
    n = int(bounds[-1])
    phones = [INVENTORY["_"]] + [p for p, _, _ in segs] + [INVENTORY["_"]]
    seg_len = np.diff(bounds)  # [S+2]
    voice = np.repeat([p.voice for p in phones], seg_len)  # [T]
    noise = np.repeat([p.noise for p in phones], seg_len)  # [T]
    ramp = int(0.012 * SR)
    centres = (bounds[:-1] + bounds[1:]) / 2.0  # [S+2]
    stress = np.array([False] + [s for _, _, s in segs] + [False])
    times = frame_times(n).astype(np.float64)  # [N]
    anchor = np.array([p.formants is not None for p in phones])
    anchors = np.array([p.formants for p in phones if p.formants is not None], dtype=np.float64)
    formants = np.stack(
        [np.interp(times, centres[anchor], anchors[:, k]) for k in range(3)], axis=1
    )  # [N, 3]
    fric = np.array([1.0 if p.fric_hz > 0 else 0.0 for p in phones])
    fric_hz = np.array([p.fric_hz if p.fric_hz > 0 else 3000.0 for p in phones])
    seg_of_frame = np.clip(np.searchsorted(bounds, times, side="right") - 1, 0, len(phones) - 1)
    return Tracks(
        voice_amp=smooth(voice, ramp),
        noise_amp=smooth(noise, ramp // 3),
        accents=centres[stress].astype(np.int64),
        formants=formants,
        fric_mix=smooth(fric[seg_of_frame], 3),
        fric_hz=fric_hz[seg_of_frame],
        speech_end=int(bounds[-2]),
    )
