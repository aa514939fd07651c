"""Evaluation protocols as pure functions: per-client trials, averaging, fusion, baselines.

- per_update: every target update is scored on its own (see metrics.binary_metrics).
- per_client: for each n (0 = all) and trial t, each client's prediction comes from the
  average of n of its updates drawn without replacement (generator seeded by
  (seed, n, trial, client)); a client with fewer than n updates uses all of them (noted).
  With n = 0, or n >= every client's count, all trials are identical and one trial is kept.
- per_client_vote: the same draws, but the client's prediction is the mean of the n
  updates' own P(male) (average the predictions, not the updates). An average of n updates
  is not distributed like one update (row/column statistics and cosines shrink or sharpen),
  so a model trained on single updates can do worse on it; voting avoids that shift.
- fusion: per-layer P(male) averaged with weights = the layer's parameter count.
- baselines: `majority` predicts the shadow set's majority class for every target;
  `no_updates` is a logistic regression on update metadata only (log n_samples, round),
  trained on shadow keys: what an attacker learns without looking at any update.

>>> sel, note = client_selections({7: np.arange(3)}, n=2, trials=2, seed=0)
>>> [(s.client, s.trial, len(s.rows)) for s in sel], note
([(7, 0, 2), (7, 1, 2)], '')
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Selection:
    client: int
    trial: int
    rows: np.ndarray  # row indices into the target set, sorted


def client_rows(client_ids: np.ndarray) -> dict[int, np.ndarray]:
    """{client: sorted row indices} for a target set."""
    client_ids = np.asarray(client_ids)
    return {int(c): np.flatnonzero(client_ids == c) for c in np.unique(client_ids)}


def client_selections(
    rows_by_client: dict[int, np.ndarray], *, n: int, trials: int, seed: int
) -> tuple[list[Selection], str]:
    """The (client, trial, rows) draws of the per-client protocol, and a note."""
    counts = [len(r) for r in rows_by_client.values()]
    everything = n <= 0 or n >= max(counts)
    n_trials = 1 if everything else trials
    out = []
    for t in range(n_trials):
        for client, rows in sorted(rows_by_client.items()):
            if n <= 0 or len(rows) <= n:
                pick = rows
            else:
                rng = np.random.default_rng([seed, n, t, client])
                pick = np.sort(rng.choice(rows, size=n, replace=False))
            out.append(Selection(client=client, trial=t, rows=pick))
    return out, selection_note(counts, n=n, trials=trials)


def selection_note(counts: list[int], *, n: int, trials: int) -> str:
    """The note of `client_selections` from the clients' update counts alone (no draws)."""
    short = sum(1 for c in counts if 0 < n and c < n)
    note = f"{short}/{len(counts)} clients had fewer than {n} updates (all used)" if short else ""
    if (n <= 0 or n >= max(counts)) and trials > 1 and n > 0:
        note = "; ".join(filter(None, [note, "every client fully averaged: 1 trial"]))
    return note


def average_rows(x: np.ndarray) -> np.ndarray:
    """Mean of normalised update rows [k, D] -> [D], accumulated in float64."""
    return np.asarray(x, np.float64).mean(axis=0).astype(np.float32)


def average_selections(
    take: Callable[[np.ndarray], np.ndarray], selections: Sequence[Selection], *, width: int
) -> np.ndarray:
    """`average_rows(take(s.rows))` of every selection, [S, width] float32, bit for bit:
    the same float64 sums in the same row order, accumulated in place in one [width] buffer
    that stays in cache (no float64 copy of the rows). `take(idx)` returns rows `idx` as
    float32 [len(idx), width]."""
    out = np.empty((len(selections), width), np.float32)  # [S, D]
    acc = np.empty(width, np.float64)  # [D]
    for i, sel in enumerate(selections):
        x = take(sel.rows)  # [k, D] float32
        acc[:] = x[0]
        for row in x[1:]:
            np.add(acc, row, out=acc)
        np.true_divide(acc, len(x), out=acc)  # what mean() does after its sum
        out[i] = acc  # rounded to float32 like astype
    return out


def vote(p_update: np.ndarray, selections: list[Selection]) -> np.ndarray:
    """Per selection: the mean P(male) of its updates (float64); for class probabilities
    [N, C] or numeric predictions, the mean over the selection's rows likewise."""
    p = np.asarray(p_update, np.float64)
    return np.array([p[s.rows].mean(axis=0) for s in selections], dtype=np.float64)


def fuse(probs: dict[str, np.ndarray], weights: dict[str, int]) -> np.ndarray:
    """Parameter-count-weighted average of per-layer P(male)."""
    total = float(sum(weights[k] for k in probs))
    return sum(np.asarray(probs[k], np.float64) * (weights[k] / total) for k in probs)


def majority_baseline(shadow_labels: np.ndarray, n_targets: int) -> np.ndarray:
    """P(male) of the majority-class predictor (ties -> male): constant 0 or 1."""
    p = 1.0 if np.mean(shadow_labels) >= 0.5 else 0.0
    return np.full(n_targets, p)


def metadata_features(n_samples: np.ndarray, rounds: np.ndarray) -> np.ndarray:
    """What an attacker knows without updates: [log1p(n_samples), round] per update."""
    return np.column_stack([np.log1p(np.asarray(n_samples, np.float64)), np.asarray(rounds, float)])


_NO_UPDATES: dict[str, object] = {}  # fitted no_updates models of recent shadow sets
_NO_UPDATES_KEEP = 16


def no_updates_model(shadow_x: np.ndarray, shadow_y: np.ndarray):
    """The metadata-only attacker: a standardised logistic regression fitted on the shadow
    keys once; its `predict_proba(x)[:, 1]` is P(male) for any metadata rows x. The fit is
    deterministic, so a process reuses the model of the same shadow rows (evaluations that
    share a shadow set); callers only predict with it."""
    from sergrad.attack.metadata_model import LogisticModel

    x, y = np.ascontiguousarray(shadow_x, np.float64), np.ascontiguousarray(shadow_y)
    key = hashlib.sha256(f"{x.shape}{y.dtype.str}{y.shape}".encode() + x.tobytes() + y.tobytes())
    key = key.hexdigest()
    if key not in _NO_UPDATES:
        if len(_NO_UPDATES) >= _NO_UPDATES_KEEP:
            _NO_UPDATES.pop(next(iter(_NO_UPDATES)))  # the oldest
        _NO_UPDATES[key] = LogisticModel.fit(x, y)
    return _NO_UPDATES[key]


def baseline_outputs(target, shadow_x: np.ndarray, shadow_y: np.ndarray):
    """(majority(n), no_updates(x)) output functions for a categorical or numeric `target`
    (`sergrad.attack.target.Target`): the majority class as one-hot probabilities [n, C] or
    the shadow mean [n]; a multinomial logistic / linear regression on metadata features."""
    from sergrad.attack.metadata_model import LinearModel, LogisticModel

    if target.kind == "numeric":
        mean = float(np.mean(shadow_y))
        reg = LinearModel.fit(shadow_x, shadow_y)
        return (lambda n: np.full(n, mean)), (lambda x: reg.predict(x) if len(x) else np.zeros(0))
    c = len(target.classes)
    one_hot = np.eye(c)[int(np.argmax(np.bincount(shadow_y, minlength=c)))]
    clf = LogisticModel.fit(shadow_x, shadow_y)
    cols = clf.classes_

    def meta(x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), c))
        if len(x):
            out[:, cols] = clf.predict_proba(x)
        return out

    return (lambda n: np.tile(one_hot, (n, 1))), meta
