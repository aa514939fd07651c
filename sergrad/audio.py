"""Audio I/O shared by corpora and features: soundfile for reading, torchaudio for resampling.

`audio_info` checks a file without decoding it; `load_mono` returns float32 mono samples.
Both raise DataError naming the file when it is missing, corrupt or empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from sergrad.errors import DataError

TARGET_SR = 16_000


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    frames: int
    channels: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def audio_info(path: str | Path) -> AudioInfo:
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        raise DataError(f"{path}: unreadable audio ({exc})") from exc
    if info.frames <= 0:
        raise DataError(f"{path}: empty audio (0 samples)")
    return AudioInfo(
        sample_rate=int(info.samplerate), frames=int(info.frames), channels=int(info.channels)
    )


def load_mono(path: str | Path, *, target_sr: int | None = TARGET_SR) -> tuple[np.ndarray, int]:
    """(samples float32 [T], sample_rate); averaged to mono, resampled to target_sr if given."""
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # [T, C]
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        raise DataError(f"{path}: unreadable audio ({exc})") from exc
    if data.shape[0] == 0:
        raise DataError(f"{path}: empty audio (0 samples)")
    mono = data.mean(axis=1)  # [T]
    if not np.isfinite(mono).all():
        raise DataError(f"{path}: audio contains NaN or inf samples")
    if target_sr is not None and sr != target_sr:
        import torch
        import torchaudio.functional as AF

        mono = AF.resample(torch.from_numpy(mono), sr, target_sr).numpy()
        sr = target_sr
    return mono.astype(np.float32, copy=False), sr


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM WAV, as the real corpora ship."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(samples, -1.0, 1.0), sample_rate, subtype="PCM_16")
