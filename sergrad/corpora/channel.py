"""Recording channels of the synthetic corpora: room, microphone, noise, telephone band, codec.

A `Channel` describes a corpus's recording setup as ranges; `draw_session` fixes one
speaker's session within them (as each real speaker was recorded in one session);
`apply_channel` runs clean speech through it with fresh noise per utterance:

    speech -> reverberation (exponentially decaying noise impulse response)
           -> microphone tilt and session gain -> additive coloured noise at an SNR
           -> band limit -> mu-law codec (re-band-limited) -> soft limiter
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sergrad.corpora.voice import (
    SR,
    band_mask,
    fast_len,
    fft_filter,
    noise_spectrum,
    spectrum_rms,
)


@dataclass(frozen=True)
class Channel:
    band_hz: tuple[float, float] = (0.0, SR / 2)  # pass band
    codec_bits: int | None = None  # mu-law quantiser bits (None: no codec)
    snr_db: tuple[float, float] = (35.0, 45.0)  # per-session range
    noise_colour: float = 1.0  # noise spectrum exponent: 0 white, 1 pink, 2 brown
    rt60_s: tuple[float, float] | None = None  # reverberation time range (None: dry)
    drr_db: tuple[float, float] = (0.0, 6.0)  # direct-to-reverberant ratio range
    mic_tilt_db: float = 0.5  # sd of the session microphone tilt (dB/octave)
    gain_db: float = 2.0  # sd of the session gain (dB)


@dataclass(frozen=True)
class Session:
    snr_db: float
    rt60_s: float | None
    drr_db: float
    mic_tilt_db: float
    gain_db: float


def draw_session(ch: Channel, rng: np.random.Generator) -> Session:
    return Session(
        snr_db=float(rng.uniform(*ch.snr_db)),
        rt60_s=None if ch.rt60_s is None else float(rng.uniform(*ch.rt60_s)),
        drr_db=float(rng.uniform(*ch.drr_db)),
        mic_tilt_db=float(rng.normal(0.0, ch.mic_tilt_db)),
        gain_db=float(rng.normal(0.0, ch.gain_db)),
    )


def room_response(rt60_s: float, drr_db: float, nfft: int, rng: np.random.Generator) -> np.ndarray:
    """rfft (size nfft) of a room impulse response: direct path 1 + decaying noise tail.

    The tail is Gaussian noise under an exp envelope reaching -60 dB at rt60_s, starting
    3 ms after the direct sound, low-passed at 6 kHz (walls absorb the highs) and scaled so
    that direct / tail energy = drr_db.
    """
    n = min(int(rt60_s * SR), nfft)
    t = np.arange(n) / SR
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60_s)  # [L]
    tail[: int(0.003 * SR)] = 0.0
    spec = np.fft.rfft(tail, nfft) * band_mask(np.fft.rfftfreq(nfft, 1.0 / SR), 0.0, 6000.0)
    energy = spectrum_rms(spec, nfft) ** 2 * nfft
    return 1.0 + spec * np.sqrt(10.0 ** (-drr_db / 10.0) / max(energy, 1e-12))


def mu_law(x: np.ndarray, bits: int, *, mu: float = 255.0) -> np.ndarray:
    """Quantise through a mu-law compander with 2^bits levels (telephone codec noise)."""
    y = np.sign(x) * np.log1p(mu * np.minimum(np.abs(x), 1.0)) / np.log1p(mu)
    levels = 2 ** (bits - 1)
    y = np.round(y * levels) / levels
    return np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu


def limit(x: np.ndarray) -> np.ndarray:
    """Soft limiter (a saturating recorder) keeping samples inside (-0.98, 0.98)."""
    return 0.98 * np.tanh(x / 0.98)


def apply_channel(
    speech: np.ndarray, session: Session, ch: Channel, *, rng: np.random.Generator
) -> np.ndarray:
    """Speech [T] through the session's channel -> recorded samples [T] in (-1, 1).

    Reverberation, microphone tilt, noise and band limit are applied in one rfft pass.
    """
    n = speech.shape[0]
    ref = float(np.sqrt(np.mean(speech**2)))
    tail = 0 if session.rt60_s is None else int(session.rt60_s * SR)
    nfft = fast_len(n + tail)  # room enough that the reverberant tail does not wrap around
    f = np.fft.rfftfreq(nfft, 1.0 / SR)  # [B]
    spec = np.fft.rfft(speech, nfft)  # [B]
    if session.rt60_s is not None:
        spec *= room_response(session.rt60_s, session.drr_db, nfft, rng)
    spec *= 10.0 ** (session.mic_tilt_db * np.log2(np.maximum(f, 500.0) / 500.0) / 20.0)
    snr = session.snr_db + float(rng.normal(0.0, 1.5))
    spec += noise_spectrum(nfft, rng, exponent=ch.noise_colour) * ref * 10.0 ** (-snr / 20.0)
    lo, hi = ch.band_hz
    spec *= band_mask(f, lo, hi) * 10.0 ** (session.gain_db / 20.0)
    y = limit(np.fft.irfft(spec, n=nfft)[:n])
    if ch.codec_bits is not None:  # codec after the limiter; its noise is band-limited again
        y = fft_filter(mu_law(y, ch.codec_bits), lo=lo, hi=hi)
    return y
