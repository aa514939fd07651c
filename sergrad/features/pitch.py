"""F0 by normalised autocorrelation (Boersma 1993), vectorised over frames.

Frames of 40 ms every 10 ms (centred, zero-padded, so the frame count equals torchaudio's
centred spectrogram: 1 + T // hop). Each frame is de-meaned and Hann-windowed; its
autocorrelation is divided by the window's own autocorrelation, so a periodic signal peaks
near 1 at its period. The F0 candidate is the shortest lag among local maxima within 90% of
the best peak in [sr/f0_max, sr/f0_min] (guards against octave-down errors), refined by a
parabola through its neighbours. A frame is voiced when that peak >= voicing_threshold and
its energy is within 30 dB of the loudest frame and above -60 dBFS.

>>> import math, torch
>>> t = torch.arange(16000) / 16000
>>> track = pitch_track(0.5 * torch.sin(2 * math.pi * 200 * t), sample_rate=16000)
>>> round(float(track.f0[track.voiced].median()))
200
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

FRAME = 640  # 40 ms at 16 kHz: 2.4 periods of a 60 Hz voice
HOP = 160  # 10 ms
NFFT = 1024  # >= 2 * FRAME, so the circular autocorrelation is linear
ENERGY_FLOOR_DB = -60.0
ENERGY_RANGE_DB = 30.0
OCTAVE_TOLERANCE = 0.9


@dataclass(frozen=True)
class PitchTrack:
    f0: torch.Tensor  # [F] Hz, 0 where unvoiced
    voiced: torch.Tensor  # [F] bool
    peak: torch.Tensor  # [F] normalised autocorrelation at the chosen lag (harmonicity)
    energy_db: torch.Tensor  # [F] 10 log10(mean square of the windowed frame), dBFS-like
    frames: torch.Tensor  # [F, FRAME] raw (unwindowed, not de-meaned) frames


def frame_signal(wave: torch.Tensor) -> torch.Tensor:
    """[T] -> [F, FRAME] centred frames, F = 1 + T // HOP."""
    padded = torch.nn.functional.pad(wave, (FRAME // 2, FRAME // 2))  # [T + FRAME]
    return padded.unfold(0, FRAME, HOP)  # [F, FRAME]


def _power(spec: torch.Tensor) -> torch.Tensor:
    """|z|^2 of a complex tensor (faster than abs().pow(2))."""
    return (spec * spec.conj()).real


@functools.cache
def _window(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(Hann window [FRAME], its autocorrelation normalised to 1 at lag 0 [FRAME // 2 + 2])."""
    window = torch.hann_window(FRAME, periodic=False, dtype=dtype)
    r = torch.fft.irfft(_power(torch.fft.rfft(window, n=NFFT)), n=NFFT)[: FRAME // 2 + 2]
    return window, r / r[0]


def pitch_track(
    wave: torch.Tensor,
    *,
    sample_rate: int,
    f0_min: float = 60.0,
    f0_max: float = 500.0,
    voicing_threshold: float = 0.5,
) -> PitchTrack:
    """wave [T] float32 -> PitchTrack over F = 1 + T // HOP frames."""
    frames = frame_signal(wave)  # [F, FRAME]
    window, window_r = _window(wave.dtype)  # [FRAME], [FRAME // 2 + 2]
    x = (frames - frames.mean(dim=1, keepdim=True)) * window  # [F, FRAME]
    energy = (frames * window).pow(2).sum(dim=1) / window.pow(2).sum()  # [F] mean square
    energy_db = 10.0 * torch.log10(energy + 1e-10)  # [F]

    lag_min = max(2, int(sample_rate // f0_max))
    lag_max = min(FRAME // 2, int(-(-sample_rate // f0_min)))
    spec = torch.fft.rfft(x, n=NFFT, dim=1)  # [F, NFFT/2+1]
    r = torch.fft.irfft(_power(spec), n=NFFT, dim=1)[:, : lag_max + 2]  # [F, L]
    r0 = r[:, :1].clamp_min(1e-12)  # [F, 1]
    r = r / r0 / window_r[: lag_max + 2].clamp_min(1e-3)  # [F, L]

    lags = torch.arange(r.shape[1])
    in_range = (lags >= lag_min) & (lags <= lag_max)  # [L]
    local_max = torch.zeros_like(r, dtype=torch.bool)  # [F, L]
    local_max[:, 1:-1] = (r[:, 1:-1] > r[:, :-2]) & (r[:, 1:-1] >= r[:, 2:])
    candidates = local_max & in_range
    masked = torch.where(candidates, r, torch.full_like(r, -2.0))  # [F, L]
    best = masked.amax(dim=1)  # [F]
    good = candidates & (r >= OCTAVE_TOLERANCE * best[:, None])  # [F, L]
    lag = torch.where(
        good.any(dim=1), good.to(torch.int8).argmax(dim=1), torch.ones_like(best, dtype=torch.long)
    )
    lag = lag.clamp(1, r.shape[1] - 2)  # [F]

    rows = torch.arange(r.shape[0])
    a, b, c = r[rows, lag - 1], r[rows, lag], r[rows, lag + 1]  # [F] each
    curvature = a - 2 * b + c
    shift = torch.where(curvature.abs() > 1e-9, 0.5 * (a - c) / curvature, torch.zeros_like(b))
    period = lag.to(wave.dtype) + shift.clamp(-0.5, 0.5)  # [F] samples
    peak = torch.where(candidates.any(dim=1), b, torch.zeros_like(b)).clamp(-1.0, 1.0)

    loud = (energy_db > ENERGY_FLOOR_DB) & (energy_db > energy_db.max() - ENERGY_RANGE_DB)
    voiced = (peak >= voicing_threshold) & loud & candidates.any(dim=1)
    f0 = torch.where(voiced, sample_rate / period, torch.zeros_like(period))
    return PitchTrack(f0=f0, voiced=voiced, peak=peak, energy_db=energy_db, frames=frames)
