"""What a verdict cell is, shared by the class verdicts (`verdicts`) and the numeric ones
(`verdicts_numeric`): its keys, the attacker keys competing inside it, the protocols that may
give a verdict, the significance level, the random stream its resampling draws from, and how
the strongest attacker is picked and its p-value adjusted for the pick."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import polars as pl

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


def cell_keys(extra_keys: list[str] | None) -> list[str]:
    """CELL_KEYS, then the caller's extra keys (e.g. adaptive) that split cells further."""
    return [*CELL_KEYS, *(k for k in extra_keys or [] if k not in CELL_KEYS)]


def strongest(cand: pl.DataFrame, keys: list[str], score: str, *extra: pl.Expr) -> pl.DataFrame:
    """Per cell (`keys`), the candidate attacker with the highest `score` (a degenerate one,
    every prediction one class, only when nothing else competed), with `n_candidates`: how
    many competed (the Bonferroni factor) and any `extra` aggregates over all of them."""
    counted = cand.group_by(keys, maintain_order=True).agg(pl.len().alias("n_candidates"), *extra)
    return (
        cand.sort(["degenerate", score], descending=[False, True], nulls_last=True)
        .unique(subset=keys, keep="first", maintain_order=True)
        .join(counted, on=keys, how="left", nulls_equal=True)
    )


def selection_adjusted(p_value: float | None, n_candidates: int) -> dict:
    """p_value, its Bonferroni adjustment for the best of `n_candidates` (capped at 1), and
    whether the adjusted p is below ALPHA (None without a p-value)."""
    if p_value is None:
        return {"p_value": None, "p_value_adjusted": None, "significant": None}
    return {"p_value": p_value, "p_value_adjusted": min(1.0, p_value * n_candidates),
            "significant": bool(p_value * n_candidates < ALPHA)}  # fmt: skip
