"""Source-filter voice DSP for the synthetic corpora: glottal source, formant filter, STFT.

The signal model (per utterance, 16 kHz):

    excitation[t] = voice_amp[t] * glottal'(t; f0, open quotient, jitter, shimmer)
                    + voice_amp[t] * breathiness * aspiration noise (pulse-synchronous)
                    + noise_amp[t] * white noise                     (frication, bursts)
    speech        = ISTFT( STFT(excitation) * H[frame, bin] )

with H per frame a mix of an all-pole formant cascade (vowels, nasals) and a fricative
band shape, times a per-utterance spectral tilt. Filtering in the STFT domain makes the
formant transitions time-varying without a per-sample Python loop. Every function is pure:
randomness comes in as an explicit `np.random.Generator`.

Shape letters: T samples, N frames, K formants, B frequency bins.
"""

from __future__ import annotations

import numpy as np

SR = 16_000
N_FFT = 512
HOP = 256
_PULSE_TABLE = 2048  # samples of the tabulated glottal pulse
BIN_HZ = np.fft.rfftfreq(N_FFT, 1.0 / SR)  # [B]


def fast_len(n: int) -> int:
    """Smallest 2^a * 3^b >= n (an FFT size pocketfft handles fast)."""
    best = 1 << max(n - 1, 0).bit_length()
    p3 = 1
    while p3 < best:
        p2 = p3
        while p2 < n:
            p2 *= 2
        best = min(best, p2)
        p3 *= 3
    return best


def smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Centered moving average of `width` samples (cumulative-sum form, O(T))."""
    if width <= 1:
        return x
    pad = np.pad(x, (width // 2, width - 1 - width // 2), mode="edge")
    c = np.concatenate(([0.0], np.cumsum(pad)))
    return (c[width:] - c[:-width]) / width


def glottal_source(
    f0: np.ndarray,
    *,
    open_quotient: float,
    jitter: float,
    shimmer: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Differentiated Rosenberg glottal flow and the open-phase mask, both [T].

    f0 [T] in Hz (per sample). Jitter perturbs the frequency and shimmer the amplitude
    period by period (relative standard deviations). The derivative is scaled by 1/f0 so the
    amplitude does not grow with pitch; lower open quotients give sharper closures and so a
    flatter (more "pressed") spectrum.
    """
    n = f0.shape[0]
    mean_period = max(int(SR / max(float(np.mean(f0)), 50.0)), 1)
    n_blocks = n // mean_period + 2
    jit = 1.0 + jitter * rng.standard_normal(n_blocks)  # [P]
    f0j = f0 * np.repeat(jit, mean_period)[:n]  # [T]
    phase = np.cumsum(f0j / SR)  # [T] periods elapsed
    frac = phase - np.floor(phase)  # [T] position within the period
    oq = float(np.clip(open_quotient, 0.3, 0.9))
    tp, tn = 0.65 * oq, 0.35 * oq  # opening / closing durations (fractions of a period)
    grid = np.arange(_PULSE_TABLE + 1) / _PULSE_TABLE  # one period, tabulated
    rising = 0.5 * (1.0 - np.cos(np.pi * grid / tp))
    falling = np.cos(0.5 * np.pi * np.clip((grid - tp) / tn, 0.0, 1.0))
    table = np.where(grid < tp, rising, np.where(grid < oq, falling, 0.0))  # [S+1]
    pos = frac * _PULSE_TABLE
    i0 = pos.astype(np.int64)
    flow = table[i0] + (pos - i0) * (table[i0 + 1] - table[i0])  # [T] linear interpolation
    dflow = np.diff(flow, prepend=flow[0]) * SR / np.maximum(f0j, 1.0)  # [T]
    period = np.floor(phase).astype(np.int64)  # [T]
    amp = 1.0 + shimmer * rng.standard_normal(int(period[-1]) + 2)  # [P]
    return dflow * np.clip(amp[period], 0.2, None), (frac < oq).astype(np.float64)


def formant_response(freqs: np.ndarray, bandwidths: np.ndarray) -> np.ndarray:
    """All-pole resonator cascade evaluated at the STFT bins, unit gain at DC.

    freqs, bandwidths [N, K] in Hz -> complex64 [N, B].
    """
    theta = 2.0 * np.pi * np.clip(freqs, 50.0, 0.47 * SR) / SR  # [N, K]
    r = np.exp(-np.pi * bandwidths / SR)  # [N, K]
    a1 = (-2.0 * r * np.cos(theta)).astype(np.float32)  # [N, K]
    a2 = (r * r).astype(np.float32)  # [N, K]
    w = (2.0 * np.pi * BIN_HZ / SR).astype(np.float32)  # [B]
    c1, s1, c2, s2 = np.cos(w), np.sin(w), np.cos(2 * w), np.sin(2 * w)  # [B]
    out = np.ones((freqs.shape[0], w.shape[0]), dtype=np.complex64)  # [N, B]
    for k in range(freqs.shape[1]):
        b1, b2 = a1[:, k : k + 1], a2[:, k : k + 1]  # [N, 1]
        den = (1.0 + b1 * c1 + b2 * c2) - 1j * (b1 * s1 + b2 * s2)  # [N, B] = 1 + a1 z^-1 + a2 z^-2
        out *= (1.0 + b1 + b2) / den
    return out


def band_shape(centres: np.ndarray, *, octaves: float = 0.7) -> np.ndarray:
    """Log-frequency Gaussian band around each frame's centre: [N] Hz -> real [N, B]."""
    f = np.maximum(BIN_HZ, 20.0)  # [B]
    d = np.log2(f[None, :] / np.maximum(centres[:, None], 20.0))  # [N, B]
    return np.exp(-0.5 * (d / octaves) ** 2)


def tilt_gain(db_per_octave: float, *, pivot_hz: float = 500.0) -> np.ndarray:
    """Spectral tilt as a gain per bin [B]: 0 dB at and below `pivot_hz`."""
    octs = np.log2(np.maximum(BIN_HZ, pivot_hz) / pivot_hz)  # [B]
    return 10.0 ** (db_per_octave * octs / 20.0)


def _window() -> np.ndarray:
    return np.hanning(N_FFT + 1)[:N_FFT]  # periodic Hann


def n_frames(n_samples: int) -> int:
    """Frames the STFT below produces for a signal of n_samples."""
    return n_samples // HOP + 1


def frame_times(n_samples: int) -> np.ndarray:
    """Centre time of each STFT frame in samples: [N]."""
    return np.arange(n_frames(n_samples)) * HOP


def stft_filter(x: np.ndarray, response: np.ndarray) -> np.ndarray:
    """Filter x [T] with a per-frame frequency response [N, B] by weighted overlap-add."""
    n = x.shape[0]
    frames = n_frames(n)
    if response.shape != (frames, BIN_HZ.shape[0]):
        raise ValueError(f"response shape {response.shape} != {(frames, BIN_HZ.shape[0])}")
    win = _window()
    pad = N_FFT // 2
    total = (frames - 1) * HOP + N_FFT
    xp = np.zeros(total)
    xp[pad : pad + n] = x
    framed = np.lib.stride_tricks.sliding_window_view(xp, N_FFT)[::HOP]  # [N, n_fft]
    spec = np.fft.rfft(framed * win, axis=1) * response  # [N, B]
    y_frames = np.fft.irfft(spec, n=N_FFT, axis=1) * win  # [N, n_fft]
    y = np.zeros(total)
    norm = np.zeros(total)
    step = N_FFT // HOP
    for k in range(step):  # frames k, k+step, ... do not overlap each other
        sel = y_frames[k::step]  # [n_k, n_fft]
        start = k * HOP
        end = start + sel.shape[0] * N_FFT
        y[start:end] += sel.reshape(-1)
        norm[start:end] += np.tile(win * win, sel.shape[0])
    return y[pad : pad + n] / np.maximum(norm[pad : pad + n], 1e-3)


def band_mask(freqs: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Pass band lo..hi Hz with 100 Hz half-cosine edges (outside: 0), evaluated at freqs."""
    mask = np.ones_like(freqs)
    if lo > 0:
        mask *= np.clip((freqs - (lo - 100.0)) / 100.0, 0.0, 1.0)
    if hi < SR / 2:
        mask *= np.clip((hi - freqs) / 100.0, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * mask)


def fft_filter(x: np.ndarray, *, lo: float = 0.0, hi: float = SR) -> np.ndarray:
    """Zero-phase whole-signal band-pass lo..hi Hz (see band_mask)."""
    nfft = fast_len(x.shape[0])
    spec = np.fft.rfft(x, nfft)
    mask = band_mask(np.fft.rfftfreq(nfft, 1.0 / SR), lo, hi)
    return np.fft.irfft(spec * mask, n=nfft)[: x.shape[0]]


def spectrum_rms(spec: np.ndarray, nfft: int) -> float:
    """RMS over nfft samples of the real signal whose rfft is spec (Parseval)."""
    p = np.abs(spec) ** 2
    total = 2.0 * p.sum() - p[0] - (p[-1] if nfft % 2 == 0 else 0.0)
    return float(np.sqrt(total / nfft / nfft))


def noise_spectrum(nfft: int, rng: np.random.Generator, *, exponent: float = 1.0) -> np.ndarray:
    """rfft of nfft samples of unit-RMS Gaussian noise with power ~ 1/f^exponent."""
    bins = nfft // 2 + 1
    spec = rng.standard_normal(bins) + 1j * rng.standard_normal(bins)  # [B]
    spec /= np.maximum(np.fft.rfftfreq(nfft, 1.0 / SR), 20.0) ** (exponent / 2.0)
    spec[0] = 0.0
    return spec / max(spectrum_rms(spec, nfft), 1e-12)
