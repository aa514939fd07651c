"""Render one clean utterance: plan + voice + style -> samples [T] at 16 kHz.

The pitch contour is base F0 * 2^(semitones/12) with declination, accent bumps on stressed
vowels (height set by the style's pitch range), a final fall (sometimes a rise), slow
drift and, in older voices, a 4-7 Hz tremor. The speech is scaled so that its voiced parts
have RMS REF_RMS * 10^(loud_db/20).
"""

from __future__ import annotations

import numpy as np

from sergrad.corpora.phonemes import SentencePlan, control_tracks
from sergrad.corpora.synth_speakers import Style, Voice
from sergrad.corpora.voice import (
    SR,
    band_shape,
    formant_response,
    glottal_source,
    stft_filter,
    tilt_gain,
)

REF_RMS = 0.04  # about -28 dBFS for neutral speech
_HIGHER_FORMANTS = np.array([3500.0, 4500.0])  # F4, F5 male reference
_BANDWIDTHS = np.array([70.0, 95.0, 140.0, 220.0, 280.0])


def pitch_contour(
    n: int, accents: np.ndarray, speech_end: int, style: Style, rng: np.random.Generator
) -> np.ndarray:
    """F0 in Hz per sample [T] (computed every 16 samples, linearly interpolated)."""
    t = np.arange(0, n + 16, 16, dtype=np.float64)  # coarse time grid (samples)
    end = max(speech_end, 1)
    st = -1.5 * np.clip(t / end, 0.0, 1.0)  # declination
    width = 0.07 * SR
    for a in accents:
        st += style.range_st * rng.uniform(0.5, 1.0) * np.exp(-0.5 * ((t - a) / width) ** 2)
    final = np.clip((t - (end - 0.3 * SR)) / (0.3 * SR), 0.0, 1.0)  # 0 -> 1 over 300 ms
    direction = 0.6 if rng.random() < 0.2 else -0.5
    st += direction * style.range_st * final
    for _ in range(2):  # slow drift
        st += 0.25 * np.sin(2 * np.pi * rng.uniform(0.5, 3.0) * t / SR + rng.uniform(0, 2 * np.pi))
    rate, phase = rng.uniform(4.0, 7.0), rng.uniform(0, 2 * np.pi)  # vocal tremor (older voices)
    st += style.tremor_st * np.sin(2 * np.pi * rate * t / SR + phase)
    return style.f0_hz * 2.0 ** (np.interp(np.arange(n), t, st) / 12.0)


def render_utterance(
    voice: Voice,
    style: Style,
    plan: SentencePlan,
    *,
    rng: np.random.Generator,
    lead_ms: tuple[float, float] = (80.0, 200.0),
) -> np.ndarray:
    """Clean (pre-channel) speech samples [T], float64."""
    tr = control_tracks(plan, tempo=style.tempo, rng=rng, lead_ms=lead_ms, accent=voice.accent)
    n = tr.voice_amp.shape[0]
    f0 = pitch_contour(n, tr.accents, tr.speech_end, style, rng)  # [T]
    src, open_phase = glottal_source(
        f0, open_quotient=style.open_quotient, jitter=style.jitter, shimmer=style.shimmer, rng=rng
    )
    aspiration = rng.standard_normal(n) * (0.3 + 0.7 * open_phase) * (4.0 * style.breathiness)
    excitation = tr.voice_amp * (src + aspiration) + tr.noise_amp * 3.0 * rng.standard_normal(n)

    n_frames = tr.formants.shape[0]
    scale = voice.formant_scale * np.array(voice.formant_detune)  # [3]
    freqs = np.concatenate(
        [
            tr.formants * scale,
            np.broadcast_to(_HIGHER_FORMANTS * voice.formant_scale, (n_frames, 2)),
        ],
        axis=1,
    )  # [N, 5]
    bws = np.broadcast_to(_BANDWIDTHS * (1.0 + 2.0 * style.breathiness), (n_frames, 5))  # [N, 5]
    vocal = formant_response(freqs, bws) * tilt_gain(style.tilt_db)  # [N, B]
    fric = band_shape(tr.fric_hz * np.sqrt(voice.formant_scale)) * 3.0  # [N, B]
    mix = tr.fric_mix[:, None]  # [N, 1]
    speech = stft_filter(excitation, (1.0 - mix) * vocal + mix * fric)  # [T]

    voiced = tr.voice_amp > 0.5
    rms = float(np.sqrt(np.mean(speech[voiced] ** 2))) if voiced.any() else 1.0
    return speech * (REF_RMS * 10.0 ** (style.loud_db / 20.0) / max(rms, 1e-9))
