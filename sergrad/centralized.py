"""A quick centralized sanity check of a corpus + feature set (no federated learning).

Logistic regression with speaker-independent folds: emotion UAR on held-out speakers (features
z-normalised per speaker, as in the paper) and gender UAR on held-out speakers (raw features:
per-speaker normalisation would remove the speaker-level cues gender lives in).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CentralizedCheck:
    emotion_uar: float
    gender_uar: float
    n_folds: int


def per_speaker_znorm(x: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """z-normalise each speaker's rows with that speaker's own mean and std."""
    out = np.empty_like(x, dtype=np.float64)
    for spk in np.unique(speakers):
        rows = speakers == spk
        mu = x[rows].mean(axis=0)
        sd = x[rows].std(axis=0)
        out[rows] = (x[rows] - mu) / np.where(sd > 1e-8, sd, 1.0)
    return out


def speaker_folds(speakers: np.ndarray, n_folds: int) -> list[np.ndarray]:
    """Contiguous blocks of the sorted speaker list: the held-out speakers of each fold."""
    unique = np.array(sorted(set(speakers.tolist())))
    return [block for block in np.array_split(unique, n_folds) if len(block)]


def centralized_check(
    x: np.ndarray,
    *,
    emotion: np.ndarray,
    gender: np.ndarray,
    speakers: np.ndarray,
    n_folds: int = 5,
    progress=None,
) -> CentralizedCheck:
    """Mean held-out-speaker UAR of emotion and gender logistic regressions over folds.

    `progress(done, total)` is called after each fold (the demo shows it).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.preprocessing import StandardScaler

    x_emo = per_speaker_znorm(x, speakers)
    emo_scores, gen_scores = [], []
    folds = speaker_folds(speakers, n_folds)
    for k, held_out in enumerate(folds, start=1):
        test = np.isin(speakers, held_out)
        for feats, y, scores in ((x_emo, emotion, emo_scores), (x, gender, gen_scores)):
            if len(np.unique(y[~test])) < 2 or len(np.unique(y[test])) < 2:
                continue
            scaler = StandardScaler().fit(feats[~test])
            clf = LogisticRegression(max_iter=500, C=0.1)
            clf.fit(scaler.transform(feats[~test]), y[~test])
            pred = clf.predict(scaler.transform(feats[test]))
            scores.append(balanced_accuracy_score(y[test], pred))
        if progress is not None:
            progress(k, len(folds))
    return CentralizedCheck(
        emotion_uar=float(np.mean(emo_scores)) if emo_scores else float("nan"),
        gender_uar=float(np.mean(gen_scores)) if gen_scores else float("nan"),
        n_folds=n_folds,
    )
