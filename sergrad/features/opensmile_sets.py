"""openSMILE functionals: emobase (988-d, the paper's Emo-Base) and egemaps (eGeMAPSv02, 88-d).

Optional: needs the `opensmile` Python package (`pip install sergrad[opensmile]`), whose
licence (audEERING) allows research, educational and personal use only; commercial use needs
a licence from audEERING. Without it, building these sets raises a DataError saying so; every
other feature set works without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sergrad.errors import DataError
from sergrad.features.base import FeatureSet, register

SR = 16_000
MISSING = (
    "feature set {name!r} needs openSMILE: pip install sergrad[opensmile] "
    "(the opensmile package's licence allows research/educational/personal use only; "
    "commercial use needs a licence from audEERING). The built-in 'combined' set needs nothing extra."
)
SETS: dict[str, tuple[str, int]] = {"emobase": ("emobase", 988), "egemaps": ("eGeMAPSv02", 88)}


class OpenSmileExtractor:
    """wave [T] float32 at 16 kHz -> openSMILE functionals [dim]."""

    def __init__(self, name: str) -> None:
        try:
            import opensmile
        except ImportError as exc:
            raise DataError(MISSING.format(name=name)) from exc
        feature_set, self.dim = SETS[name]
        self.smile = opensmile.Smile(
            feature_set=getattr(opensmile.FeatureSet, feature_set),
            feature_level=opensmile.FeatureLevel.Functionals,
        )
        self.names = tuple(self.smile.feature_names)
        if len(self.names) != self.dim:
            raise DataError(
                f"openSMILE {feature_set} gave {len(self.names)} features, expected {self.dim}"
            )

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        frame = self.smile.process_signal(np.asarray(wave, dtype=np.float32), SR)  # 1 x dim
        return frame.to_numpy(dtype=np.float32).reshape(-1)  # [dim]


def _build(name: str):
    def build(params: dict[str, Any]) -> OpenSmileExtractor:
        return OpenSmileExtractor(name)

    return build


def _version(params: dict[str, Any]) -> str:
    try:
        from importlib.metadata import version

        return f"opensmile=={version('opensmile')}"
    except ImportError:
        return "opensmile missing"


for _name, (_set, _dim) in SETS.items():
    register(
        FeatureSet(
            _name,
            f"openSMILE {_set} functionals (optional extra: sergrad[opensmile], research licence)",
            {},
            _build(_name),
            default_dim=_dim,
            fingerprint=_version,
        )
    )
