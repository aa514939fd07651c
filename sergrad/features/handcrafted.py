"""Hand-crafted feature sets computed with torchaudio: mfcc_stats, logmel_stats, prosody, combined.

All share one analysis of the 16 kHz waveform: a power spectrogram (25 ms Hann window, 10 ms
hop, 512-point FFT, centred), from which
- mfcc_stats: torchaudio's MFCC (mel filterbank -> dB with top_db 80 -> orthonormal DCT), exactly
  as `torchaudio.transforms.MFCC(n_mfcc, melkwargs=dict(n_fft=512, win_length=400,
  hop_length=160, n_mels=mfcc_mels))` computes it, plus deltas and delta-deltas (window 5);
- logmel_stats: log-mel energies in dB (top_db 80);
then 8 functionals over time per descriptor (sergrad.features.functionals.FUNCTIONALS).
- prosody: F0 (sergrad.features.pitch), voicing, energy, spectral shape and rhythm, 29 values
  with names in PROSODY_NAMES.
- combined (the default, in the role of openSMILE's Emo-Base): mfcc_stats + logmel_stats +
  prosody, 549 values with default parameters.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torchaudio.functional as AF
import torchaudio.transforms as T

from sergrad.errors import DataError
from sergrad.features.base import FeatureSet, check_range, register
from sergrad.features.functionals import (
    functional_names,
    functionals,
    mean_std,
    quantiles_sorted,
    runs,
    slope,
    sort_rows,
)
from sergrad.features.pitch import HOP, pitch_track

SR = 16_000
N_FFT = 512
WIN = 400
DELTA_WIN = 5
TOP_DB = 80.0

MFCC_DEFAULTS: dict[str, Any] = {"n_mfcc": 13, "mfcc_mels": 40, "deltas": True}
LOGMEL_DEFAULTS: dict[str, Any] = {"n_mels": 26}
PROSODY_DEFAULTS: dict[str, Any] = {"f0_min": 60.0, "f0_max": 500.0, "voicing_threshold": 0.5}
PROSODY_NAMES: tuple[str, ...] = (
    "voiced_ratio", "pause_ratio",
    "f0_mean_hz", "f0_std_hz", "f0_p10_hz", "f0_p50_hz", "f0_p90_hz",
    "f0_range_st", "f0_slope_st_per_s", "f0_delta_st",
    "harmonicity_mean", "harmonicity_std",
    "energy_mean_db", "energy_std_db", "energy_p10_db", "energy_p50_db", "energy_p90_db",
    "energy_skew", "energy_delta_db",
    "centroid_mean_khz", "centroid_std_khz", "spectral_slope_mean", "spectral_slope_std",
    "alpha_ratio_mean_db", "alpha_ratio_std_db", "zcr_mean", "zcr_std",
    "voiced_onsets_per_s", "voiced_segment_mean_s",
)  # fmt: skip
ACTIVE_RANGE_DB = 40.0  # frames within this of the loudest count as active (not pause)


class Handcrafted:
    """Callable extractor: wave [T] float32 at 16 kHz -> float32 [dim]; `parts` in order."""

    single_thread = True  # small tensors: run with torch.set_num_threads(1) (see extract.py)

    def __init__(self, parts: tuple[str, ...], params: dict[str, Any]) -> None:
        self.parts = parts
        self.params = params
        self.spectrogram = T.Spectrogram(n_fft=N_FFT, win_length=WIN, hop_length=HOP, power=2.0)
        names: list[str] = []
        if "mfcc" in parts:
            n_mfcc, n_mels = params["n_mfcc"], params["mfcc_mels"]
            self.mfcc_fb = AF.melscale_fbanks(N_FFT // 2 + 1, 0.0, SR / 2, n_mels, SR)  # [K, M]
            self.dct = AF.create_dct(n_mfcc, n_mels, norm="ortho")  # [M, n_mfcc]
            llds = [f"mfcc{i}" for i in range(n_mfcc)]
            if params["deltas"]:
                llds += [f"{n}_d" for n in llds[:n_mfcc]] + [f"{n}_dd" for n in llds[:n_mfcc]]
            names += functional_names(llds)
        if "logmel" in parts:
            n_mels = params["n_mels"]
            self.logmel_fb = AF.melscale_fbanks(N_FFT // 2 + 1, 0.0, SR / 2, n_mels, SR)  # [K, M]
            names += functional_names([f"logmel{i}" for i in range(n_mels)])
        if "prosody" in parts:
            freqs = torch.linspace(0.0, SR / 2, N_FFT // 2 + 1) / 1000.0  # [K] kHz
            low = ((freqs >= 0.05) & (freqs < 1.0)).to(torch.float32)
            high = ((freqs >= 1.0) & (freqs < 5.0)).to(torch.float32)
            self.band_weights = torch.stack([torch.ones_like(freqs), freqs, low, high])  # [4, K]
            centred = freqs - freqs.mean()  # [K]
            self.slope_weights = centred / centred.square().sum()  # [K]: least-squares slope
            names += list(PROSODY_NAMES)
        self.names = tuple(names)
        self.dim = len(names)

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        if wave.shape[0] < N_FFT:
            raise DataError(f"audio too short: {wave.shape[0]} samples < {N_FFT} (32 ms at 16 kHz)")
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))  # [T]
            spec = self.spectrogram(x)  # [K, F] power
            out: list[torch.Tensor] = []
            if "mfcc" in self.parts:
                out.append(self._mfcc(spec))
            if "logmel" in self.parts:
                out.append(functionals(_to_db(self.logmel_fb.T @ spec)).flatten())
            if "prosody" in self.parts:
                out.append(self._prosody(x, spec))
            return torch.cat(out).numpy().astype(np.float32, copy=False)

    def _mfcc(self, spec: torch.Tensor) -> torch.Tensor:
        mel_db = _to_db(self.mfcc_fb.T @ spec)  # [M, F]
        mfcc = self.dct.T @ mel_db  # [n_mfcc, F]
        if self.params["deltas"]:
            d1 = AF.compute_deltas(mfcc, win_length=DELTA_WIN)  # [n_mfcc, F]
            d2 = AF.compute_deltas(d1, win_length=DELTA_WIN)
            mfcc = torch.cat([mfcc, d1, d2])  # [3 n_mfcc, F]
        return functionals(mfcc).flatten()

    def _prosody(self, x: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
        p = self.params
        track = pitch_track(
            x, sample_rate=SR, f0_min=p["f0_min"], f0_max=p["f0_max"],
            voicing_threshold=p["voicing_threshold"],
        )  # fmt: skip
        n = track.f0.shape[0]
        e_db = track.energy_db  # [F]
        active = e_db > max(float(e_db.max()) - ACTIVE_RANGE_DB, -60.0)  # [F]
        voiced = track.voiced
        f0 = track.f0[voiced]  # [V]
        st = 12.0 * torch.log2(f0 / 27.5) if f0.numel() else f0  # semitones re A0
        times = torch.nonzero(voiced).flatten().to(torch.float32) * HOP / SR  # [V] s
        q = (
            quantiles_sorted(sort_rows(f0[None]), (0.1, 0.5, 0.9))[:, 0]
            if f0.numel()
            else torch.zeros(3)
        )
        consecutive = voiced[1:] & voiced[:-1]  # [F-1]
        f0_all_st = 12.0 * torch.log2(track.f0.clamp_min(1.0) / 27.5)  # [F]
        f0_delta = (f0_all_st[1:] - f0_all_st[:-1]).abs()[consecutive]
        e_fun = functionals(e_db[None])[:, 0]  # [8]
        both_active = active[1:] & active[:-1]
        e_delta = (e_db[1:] - e_db[:-1]).abs()[both_active]

        bands = self.band_weights @ spec  # [4, F]: power, power-weighted kHz, low, high
        centroid = (bands[1] / bands[0].clamp_min(1e-12))[active]  # [A] kHz
        alpha = (10.0 * torch.log10((bands[3] + 1e-10) / (bands[2] + 1e-10)))[active]  # [A] dB
        spec_db = 10.0 * torch.log10(spec + 1e-10)  # [K, F]
        slopes = (self.slope_weights @ spec_db)[active]  # [A] dB per kHz (regression)
        frames = track.frames  # [F, FRAME]
        zcr = ((frames[:, 1:] * frames[:, :-1]) < 0).to(torch.float32).mean(dim=1)[active]  # [A]

        segments = runs(voiced)
        duration = n * HOP / SR
        values = [
            float(voiced.sum()) / n, 1.0 - float(active.sum()) / n,
            *mean_std(f0), *q.tolist(),
            float(12.0 * math.log2(q[2] / q[0])) if f0.numel() else 0.0,
            slope(times, st), float(f0_delta.mean()) if f0_delta.numel() else 0.0,
            *mean_std(track.peak[voiced]),
            *(float(e_fun[i]) for i in (0, 1, 4, 5, 6, 7)),
            float(e_delta.mean()) if e_delta.numel() else 0.0,
            *mean_std(centroid), *mean_std(slopes), *mean_std(alpha), *mean_std(zcr),
            len(segments) / duration, (sum(segments) / len(segments) * HOP / SR) if segments else 0.0,
        ]  # fmt: skip
        return torch.tensor(values, dtype=torch.float32)


def _to_db(power: torch.Tensor) -> torch.Tensor:
    """Power [M, F] -> dB clamped to 80 dB below its maximum (torchaudio AmplitudeToDB)."""
    return AF.amplitude_to_DB(power, multiplier=10.0, amin=1e-10, db_multiplier=0.0, top_db=TOP_DB)


def _validate(name: str, params: dict[str, Any]) -> None:
    if "n_mfcc" in params:
        check_range(name, "mfcc_mels", params["mfcc_mels"], low=8, high=128)
        check_range(name, "n_mfcc", params["n_mfcc"], low=1, high=params["mfcc_mels"])
    if "n_mels" in params:
        check_range(name, "n_mels", params["n_mels"], low=4, high=128)
    if "f0_min" in params:
        check_range(name, "f0_min", params["f0_min"], low=SR / 320, high=params["f0_max"] - 1)
        check_range(name, "f0_max", params["f0_max"], low=params["f0_min"] + 1, high=SR / 4)
        check_range(name, "voicing_threshold", params["voicing_threshold"], low=0.0, high=1.0)


def _spec(name: str, parts: tuple[str, ...], defaults: dict, dim: int, description: str) -> None:
    def build(params: dict[str, Any]) -> Handcrafted:
        _validate(name, params)
        return Handcrafted(parts, params)

    register(FeatureSet(name, description, defaults, build, default_dim=dim))


_spec(
    "mfcc_stats", ("mfcc",), MFCC_DEFAULTS, 312, "MFCC 0-12 + deltas + delta-deltas, 8 functionals"
)
_spec("logmel_stats", ("logmel",), LOGMEL_DEFAULTS, 208, "26 log-mel bands (dB), 8 functionals")
_spec("prosody", ("prosody",), PROSODY_DEFAULTS, len(PROSODY_NAMES),
      "F0, voicing, energy, spectral shape and rhythm functionals")  # fmt: skip
_spec(
    "combined",
    ("mfcc", "logmel", "prosody"),
    {**MFCC_DEFAULTS, **LOGMEL_DEFAULTS, **PROSODY_DEFAULTS},
    312 + 208 + len(PROSODY_NAMES),
    "default: mfcc_stats + logmel_stats + prosody (role of openSMILE Emo-Base)",
)
