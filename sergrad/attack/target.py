"""What an attack model predicts: a binary, categorical or numeric speaker attribute.

`Target` fixes the attack head and its training signal: binary and categorical targets get a
softmax head over the attribute's classes (index order = `classes`; gender F=0, M=1) trained
with cross-entropy; numeric targets (age in years) get one regression output trained with
squared error on labels standardised with the shadow mean and std. `outputs` turns logits
into what the attack scores: P(classes[1]) [N] for binary (P(male) for gender, exactly as
before the attack knew other attributes), class probabilities [N, C] for categorical,
predicted values [N] for numeric. `val_score` is what early stopping maximises: UAR over
classes (binary: at P >= 0.5), or minus the MAE for numeric.

>>> t = Target("age_group", "categorical", ("<30", "30-49", ">=50"))
>>> t.n_outputs, round(t.chance, 3)
(3, 0.333)
>>> GENDER.n_outputs, GENDER.classes
(2, ('F', 'M'))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sergrad.attack.metrics import uar
from sergrad.schema import GENDERS


@dataclass(frozen=True)
class Target:
    attribute: str
    kind: str  # binary | categorical | numeric
    classes: tuple[str, ...] = ()  # class order of the head (empty for numeric)
    mean: float = 0.0  # numeric: shadow label mean and std (the regression is standardised)
    std: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("binary", "categorical", "numeric"):
            raise ValueError(f"target kind {self.kind!r}")
        if self.kind == "binary" and len(self.classes) != 2:
            raise ValueError(f"binary target {self.attribute!r} needs 2 classes: {self.classes}")

    @property
    def n_outputs(self) -> int:
        return 1 if self.kind == "numeric" else len(self.classes)

    @property
    def chance(self) -> float:
        """UAR of any guess that ignores the input: 1 / classes (NaN for numeric)."""
        return float("nan") if self.kind == "numeric" else 1.0 / len(self.classes)

    def loss(self) -> nn.Module:
        return nn.MSELoss() if self.kind == "numeric" else nn.CrossEntropyLoss()

    def y_tensor(self, labels: np.ndarray) -> torch.Tensor:
        """Training targets: class indices (int64), or standardised values (float32 [N, 1])."""
        if self.kind == "numeric":
            z = (np.asarray(labels, np.float64) - self.mean) / self.std
            return torch.from_numpy(np.nan_to_num(z).astype(np.float32)[:, None])
        return torch.from_numpy(np.asarray(labels).astype(np.int64))

    def outputs(self, logits: torch.Tensor) -> np.ndarray:
        """Binary P(classes[1]) [N]; categorical probabilities [N, C]; numeric values [N]."""
        logits = logits.float()
        if self.kind == "numeric":
            return (logits[:, 0].double() * self.std + self.mean).cpu().numpy()
        proba = torch.softmax(logits, dim=1)
        if self.kind == "binary":
            return proba[:, 1].double().cpu().numpy()
        return proba.double().cpu().numpy()

    def empty(self) -> np.ndarray:
        return np.zeros((0, len(self.classes))) if self.kind == "categorical" else np.zeros(0)

    def val_score(self, y: np.ndarray, out: np.ndarray) -> float:
        """Higher is better: UAR (binary at 0.5, categorical by argmax), numeric -MAE."""
        if self.kind == "numeric":
            return -float(np.mean(np.abs(np.asarray(out) - np.asarray(y))))
        if self.kind == "binary":
            return uar(y, (out >= 0.5).astype(np.int64))
        return uar(y, np.asarray(out).argmax(axis=1))


GENDER = Target("gender", "binary", GENDERS)
