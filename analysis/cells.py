"""What a verdict cell is, shared by the class verdicts (`verdicts`) and the numeric ones
(`verdicts_numeric`): its keys, the attacker keys competing inside it, the protocols that may
give a verdict, the significance level, and the random stream its resampling draws from."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from sergrad.analysis import tables as T

VERDICT_PROTOCOLS: tuple[str, ...] = ("per_client", "per_client_vote")
CELL_KEYS: list[str] = [*T.SETTING_KEYS, *T.DEFENSE_KEYS, "layer"]  # attribute first
ATTACKER_KEYS: list[str] = ["attack", "adaptive", "calibration", "protocol"]
ALPHA = 0.05


def evidence_rng(seed: int, layer: str, protocol: str, evidence: list) -> np.random.Generator:
    """A generator seeded by the evidence itself (evaluations and their thresholds or
    baselines, layer, protocol), so a cell's interval and p-value are the same whatever else
    the query selects or its order."""
    ident = json.dumps([seed, layer, protocol, evidence])
    return np.random.default_rng(
        int.from_bytes(hashlib.sha256(ident.encode()).digest()[:8], "little")
    )
