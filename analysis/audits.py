"""The canary audits (audits table) per cell, beside the accountant's epsilon.

A canary audit is a DIFFERENT threat model from the gender attack: canaries (a worst-case
gradient per utterance for dp_sgd, a worst-case client for central user_dp), each included
with probability 1/2, test the accountant's (epsilon, delta) claim itself (Steinke, Nasr,
Jagielski 2023). The gender attack measures what a realistic attacker learns about a speaker
attribute from the updates. A canary eps_lb above the accountant's epsilon is a bug in
sergrad's DP code (a violation), never a finding about a defense.

`canary_table`: one row per setting (target corpus x feature set x algorithm) x defense x
level x mechanism, over the audited target runs (folds x seeds): the largest canary eps_lb,
canaries per audit, guesses, the accountant's epsilon of the audited mechanism (smallest and
largest over the runs), the runs' reported epsilon, delta, audits ok / failed and whether any
audit violated its accountant's epsilon.
"""

from __future__ import annotations

import os

import polars as pl

from . import load

CELL_KEYS: list[str] = ["target_corpus", "feature_set", "algorithm", "defense_name", "level"]
CANARY_LABEL = "canary audit"


def canary_table(store_uri: str | os.PathLike, *, where: str | None = None) -> pl.DataFrame:
    """Per cell x mechanism: the canary audit's eps_lb beside the accountant's epsilon."""
    lf = load.scan(store_uri, "audits").rename(
        {"defense": "defense_name", "defense_level": "level"}
    )
    if where:
        from .query import apply_where

        lf = apply_where(lf, where)
    rows = lf.collect()
    if rows.is_empty():
        return pl.DataFrame()
    ok = rows.filter(pl.col("status") == "ok")
    failed = rows.filter(pl.col("status") != "ok").height
    if ok.is_empty():
        return pl.DataFrame({"audits_failed": [failed]})
    out = (
        ok.group_by([*CELL_KEYS, "mechanism"], maintain_order=True)
        .agg(
            pl.col("eps_lb").max().alias("canary_eps_lb"),
            pl.col("n_canaries").max().alias("n_canaries"),
            pl.col("n_guesses").max().alias("n_guesses"),
            pl.col("n_correct").max().alias("n_correct_max"),
            pl.col("confidence").max().alias("confidence"),
            pl.col("accountant_epsilon").min().alias("accountant_epsilon_min"),
            pl.col("accountant_epsilon").max().alias("accountant_epsilon"),
            pl.col("run_epsilon").max().alias("run_epsilon"),
            pl.col("delta").max().alias("delta"),
            pl.len().alias("n_audits"),
            pl.col("eps_violation").fill_null(False).any().alias("canary_violation"),
        )
        .sort(CELL_KEYS, nulls_last=False)
    )
    return out.with_columns(pl.lit(failed).alias("audits_failed"))


def canary_text(row: dict) -> str:
    """`canary audit ε̂ ≥ 0.12 (95%, 200 canaries x 2 runs) vs accountant ε = 3.1`."""
    text = (
        f"{CANARY_LABEL} ε̂ ≥ {row['canary_eps_lb']:.2f} ({row['confidence'] * 100:.0f}%, "
        f"{row['n_canaries']} canaries x {row['n_audits']} run(s)) vs accountant ε = "
        f"{row['accountant_epsilon']:.3g}"
    )
    if row["canary_violation"]:
        text = f"DP VIOLATION (canary ε̂ above the accountant's ε: a bug): {text}"
    return text


def canary_table_or_empty(
    store_uri: str | os.PathLike, *, where: str | None = None
) -> pl.DataFrame:
    """`canary_table`, or an empty frame when the store has no audits or `where` names a
    column the audits table lacks (the attack tables then carry no canary columns)."""
    from sergrad.errors import ConfigError, DataError

    try:
        c = canary_table(store_uri, where=where)
    except (ConfigError, DataError):
        return pl.DataFrame()
    return c if "canary_eps_lb" in c.columns else pl.DataFrame()
