"""Self-supervised embeddings: wav2vec2_base, hubert_base, wavlm_base (768-d, mean-pooled).

The architecture comes from torchaudio.models (the same one the torchaudio.pipelines bundle
builds); the weights come ONLY from a local file, never the network:
- `weights=/path/to/file.pth` (param), else
- `torch.hub.get_dir()/checkpoints/<bundle file>`, where `bundle.get_model()` would have
  cached it (e.g. ~/.cache/torch/hub/checkpoints/wav2vec2_fairseq_base_ls960.pth).
The file is a plain state_dict read with `torch.load(weights_only=True)`. When it is absent the
DataError says which file to put where. `layer` (1..12, default 12) picks the transformer layer
whose output is averaged over time. Each utterance runs alone (batch of one), so padding never
leaks into the group-norm statistics of the convolutional front end.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sergrad.errors import DataError
from sergrad.features.base import FeatureSet, check_range, register

DIM = 768
N_LAYERS = 12
MIN_SAMPLES = 400  # receptive field of the convolutional front end (25 ms)
DOWNLOAD_ROOT = "https://download.pytorch.org/torchaudio/models"


@dataclass(frozen=True)
class SSLModel:
    name: str
    bundle: str  # torchaudio.pipelines attribute
    file: str  # the bundle's weight file name (torchaudio.pipelines.<bundle>._path)
    constructor: str  # torchaudio.models factory


MODELS: dict[str, SSLModel] = {
    m.name: m
    for m in (
        SSLModel(
            "wav2vec2_base", "WAV2VEC2_BASE", "wav2vec2_fairseq_base_ls960.pth", "wav2vec2_base"
        ),
        SSLModel("hubert_base", "HUBERT_BASE", "hubert_fairseq_base_ls960.pth", "hubert_base"),
        SSLModel("wavlm_base", "WAVLM_BASE", "wavlm_base.pth", "wavlm_base"),
    )
}
DEFAULTS: dict[str, Any] = {"layer": N_LAYERS, "weights": None}


def default_weights_path(model: SSLModel) -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / model.file


def weights_path(model: SSLModel, params: dict[str, Any]) -> Path:
    """The local weight file to use; DataError naming the file and where it goes when absent."""
    path = (
        Path(params["weights"]).expanduser() if params["weights"] else default_weights_path(model)
    )
    if not path.is_file():
        raise DataError(
            f"{model.name}: weight file {path} not found. sergrad never downloads; fetch "
            f"{DOWNLOAD_ROOT}/{model.file} yourself and put it at "
            f"{default_weights_path(model)} (the torch hub cache), or pass "
            f"--param weights=/path/to/{model.file}"
        )
    return path


class SSLExtractor:
    """wave [T] float32 at 16 kHz -> mean over frames of layer `layer` [768]."""

    def __init__(self, model: SSLModel, params: dict[str, Any]) -> None:
        import torch
        import torchaudio.models

        self.name = model.name
        self.layer = params["layer"]
        self.dim = DIM
        self.names = None
        path = weights_path(model, params)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net = getattr(torchaudio.models, model.constructor)(aux_num_out=None)
            net.load_state_dict(state)
        except (
            RuntimeError,
            OSError,
            ValueError,
            KeyError,
            TypeError,
            EOFError,
            pickle.UnpicklingError,
        ) as exc:
            raise DataError(
                f"{path}: not a {model.name} state_dict ({type(exc).__name__}: {str(exc)[:300]})"
            ) from exc
        self.net = net.eval()

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        import torch

        if wave.shape[0] < MIN_SAMPLES:
            raise DataError(f"audio too short for {self.name}: {wave.shape[0]} samples < 400")
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None]  # [1, T]
            layers, _ = self.net.extract_features(x, num_layers=self.layer)  # L x [1, F, 768]
            return layers[self.layer - 1][0].mean(dim=0).numpy().astype(np.float32)  # [768]


def _fingerprint(model: SSLModel):
    def fingerprint(params: dict[str, Any]) -> str:
        stat = os.stat(weights_path(model, params))
        return f"{model.file}:{stat.st_size}:{stat.st_mtime_ns}"

    return fingerprint


def _build(model: SSLModel):
    def build(params: dict[str, Any]) -> SSLExtractor:
        check_range(model.name, "layer", params["layer"], low=1, high=N_LAYERS)
        return SSLExtractor(model, params)

    return build


for _m in MODELS.values():
    register(
        FeatureSet(
            _m.name,
            f"torchaudio {_m.bundle}, layer-selectable mean-pooled (local weights: {_m.file})",
            DEFAULTS,
            _build(_m),
            default_dim=DIM,
            fingerprint=_fingerprint(_m),
        )
    )
