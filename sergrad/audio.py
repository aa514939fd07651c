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
    """Sample rate, frames and channels from the header; DataError for a missing, corrupt,
    empty or truncated file (a WAV whose data chunk promises more bytes than the file holds)."""
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        raise DataError(f"{path}: unreadable audio ({exc})") from exc
    if info.frames <= 0:
        raise DataError(f"{path}: empty audio (0 samples)")
    if info.format == "WAV":
        declared = wav_data_bytes(path)
        if declared is not None:
            promised, held = declared
            if held < promised:
                raise DataError(
                    f"{path}: truncated WAV (header promises {promised} bytes of audio, "
                    f"the file holds {held}: an incomplete copy?)"
                )
    return AudioInfo(
        sample_rate=int(info.samplerate), frames=int(info.frames), channels=int(info.channels)
    )


UNKNOWN_SIZE = 0xFFFFFFFF  # streaming writers leave the data size open


def wav_data_bytes(path: str | Path) -> tuple[int, int] | None:
    """(bytes the RIFF `data` chunk declares, bytes actually after its header), or None when
    the file is not a plain RIFF/WAVE, has no data chunk, or leaves the size open.

    >>> import io, struct, tempfile, os
    >>> body = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
    >>> f = tempfile.NamedTemporaryFile(suffix=".wav", delete=False)
    >>> _ = f.write(b"RIFF" + struct.pack("<I", 36 + 8) + b"WAVE" + body
    ...             + b"data" + struct.pack("<I", 8) + b"\\0" * 4)
    >>> f.close(); wav_data_bytes(f.name); os.unlink(f.name)
    (8, 4)
    """
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        size = Path(path).stat().st_size
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk = fh.read(8)
            cid, n = chunk[:4], int.from_bytes(chunk[4:8], "little")
            if cid == b"data":
                if n == UNKNOWN_SIZE or n == 0:
                    return None
                return n, size - (pos + 8)
            pos += 8 + n + (n & 1)  # chunks are word-aligned
    return None


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
