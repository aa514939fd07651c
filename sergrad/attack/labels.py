"""The attacked attribute's ground truth per client: the `clients` side table joined with the
speaker attributes of the run's corpora (never the server's view).

A client's value of attribute `a` (`sergrad.attributes`) is its `clients` row's column
`a.column` when that is filled (synthetic attack runs write their speakers' attributes there),
else the speaker's value in the utterance tables the run trained on (the run config's
`data.utterances`; `sergrad.attributes.speaker_table`), joined on (corpus, speaker_id; a run
on several corpora prefixes its speaker ids with "corpus/"), then derived (`age_group` bins `age`). `AttributeLabels.of` resolves the attribute for one
evaluation, checks that shadow and target speakers both hold every class (MissingClassError,
exit 2, naming the attribute, the corpus and the class) and fixes the class order and, for a
numeric attribute, the shadow mean and std the regression is standardised with.

Gender keeps its own path (`UpdateKeys.labels`: the side table, else an older store's
updates.gender column), so its numbers are exactly those of the gender-only attack.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sergrad.attack import source
from sergrad.attack.target import GENDER, Target
from sergrad.attributes import (
    ATTRIBUTES,
    Attribute,
    AttributeConfig,
    PopulationReport,
    check_populations,
    resolve_attribute,
    speaker_table,
)
from sergrad.errors import DataError, SergradError
from sergrad.fl.partition import unprefixed
from sergrad.fl.records import read_clients
from sergrad.store import Store

Values = dict[int, Any]  # client_id -> label (class name, float for numeric) or None


def _utterance_speakers(store: Store, run_row: dict | None, run_id: str) -> dict | None:
    """{(corpus, speaker_id): speaker row} of the run's utterance tables, or None if it has none."""
    from sergrad.corpora import read_utterances

    try:
        cfg = json.loads((run_row or {}).get("config") or "{}")
    except ValueError:
        cfg = {}
    refs = (cfg.get("data") or {}).get("utterances") or []
    if not refs:
        return None
    out: dict = {}
    for ref in refs:
        uri = store.uri_of(ref)
        for row in speaker_table(read_utterances(uri)).to_pylist():
            out[(row["corpus"], row["speaker_id"])] = row
    return out


def client_values(store: Store, run_id: str, attribute: Attribute) -> tuple[Values, list[str]]:
    """({client_id: label}, speaker columns available) of one run for `attribute`."""
    try:
        rows = read_clients(store, run_id)
    except SergradError as exc:
        raise DataError(f"run {run_id!r}: {exc}") from exc
    if rows is None:
        raise DataError(
            f"run {run_id!r}: no clients side table (an older store); only gender can be "
            f"attacked there, not {attribute.name!r}"
        )
    col = attribute.column
    need = [r for r in rows if r.get(col) is None]
    speakers = _utterance_speakers(store, source.run_row(store, run_id), run_id) if need else {}
    columns = sorted({c for r in rows for c, v in r.items() if v is not None})
    if speakers:
        columns = sorted({*columns, *next(iter(speakers.values())).keys()})
    out: Values = {}
    for r in rows:
        raw = r.get(col)
        if raw is None and speakers:
            raw = speakers.get(
                (r.get("corpus"), unprefixed(r.get("corpus"), r["speaker_id"])), {}
            ).get(col)
        out[int(r["client_id"])] = attribute.labels([raw])[0]
    return out, columns


def _speaker_labels(rows_by_run: dict[str, tuple[Values, dict[int, str]]]) -> list:
    """One label per distinct speaker over runs (the unit the population check counts)."""
    seen: dict[str, Any] = {}
    for values, speakers in rows_by_run.values():
        for c, v in values.items():
            seen.setdefault(speakers.get(c, f"client{c}"), v)
    return list(seen.values())


@dataclass(frozen=True)
class AttributeLabels:
    """The evaluation's target (head, classes) and every run's {client_id: label index/value}."""

    target: Target
    attribute: Attribute
    values: dict[str, Values]  # run -> client_id -> label (class name / float / None)
    population: PopulationReport

    @classmethod
    def of(cls, store: Store, config, *, corpora: dict[str, str]) -> AttributeLabels:
        """Resolve `config.attribute` for the target and shadow runs; `corpora`: run -> corpus."""
        cfg = AttributeConfig(name=config.attribute, age_bins=tuple(config.age_bins))
        runs = [config.target_run, *config.shadow_runs]
        declared = cfg.name in ATTRIBUTES
        probe = resolve_attribute(cfg, columns=() if declared else _columns(store, runs))
        values, speakers = {}, {}
        for run in runs:
            values[run], _ = client_values(store, run, probe)
            speakers[run] = {int(r["client_id"]): r["speaker_id"]
                             for r in read_clients(store, run) or []}  # fmt: skip
        shadow_corpus = "+".join(dict.fromkeys(corpora[r] for r in config.shadow_runs))
        report = check_populations(
            probe,
            shadow=(shadow_corpus, _speaker_labels(
                {r: (values[r], speakers[r]) for r in config.shadow_runs})),
            target=(corpora[config.target_run], _speaker_labels(
                {config.target_run: (values[config.target_run], speakers[config.target_run])})),
        )  # fmt: skip
        if probe.kind == "numeric":
            known = [v for r in config.shadow_runs for v in values[r].values() if v is not None]
            mean, std = float(np.mean(known)), float(np.std(known))
            target = Target(probe.name, "numeric", (), mean, std if std > 0 else 1.0)
        elif probe.name == "gender":
            target = GENDER
        else:
            kind = "binary" if len(report.classes) == 2 else "categorical"
            target = Target(probe.name, kind, tuple(report.classes))
        return cls(target=target, attribute=probe, values=values, population=report)

    def encode(self, run: list[str], client_id: list[int]) -> np.ndarray:
        """Label per row: class index (-1 unknown), or float value (NaN unknown) if numeric."""
        numeric = self.target.kind == "numeric"
        index = {c: i for i, c in enumerate(self.target.classes)}
        out = np.empty(len(run), np.float64 if numeric else np.int64)
        for i, (r, c) in enumerate(zip(run, client_id)):
            v = self.values[r].get(int(c))
            if numeric:
                out[i] = math.nan if v is None else float(v)
            else:
                out[i] = -1 if v is None else index.get(v, -1)
        return out

    def names(self, run: list[str], client_id: list[int]) -> list[str | None]:
        """The true class name (or the value as text) per row: the predictions' `label`."""
        out: list[str | None] = []
        for r, c in zip(run, client_id):
            v = self.values[r].get(int(c))
            out.append(None if v is None else f"{v:g}" if isinstance(v, float) else str(v))
        return out


def _columns(store: Store, runs: list[str]) -> list[str]:
    """Speaker columns the runs' clients tables and utterance tables hold (for resolving a
    name that is not a declared attribute)."""
    cols: set[str] = set()
    for run in runs:
        rows = read_clients(store, run) or []
        cols.update(c for r in rows for c, v in r.items() if v is not None)
        speakers = _utterance_speakers(store, source.run_row(store, run), run)
        if speakers:
            cols.update(next(iter(speakers.values())).keys())
    return sorted(cols - {"client_id"})


def strata(target: Target, labels: np.ndarray) -> np.ndarray:
    """What the speaker-level validation split stratifies on: the class index; for a numeric
    attribute one stratum 0 (-1 for an unknown value)."""
    if target.kind != "numeric":
        return labels
    return np.where(np.isnan(labels), -1, 0).astype(np.int64)


def known(target: Target, labels: np.ndarray) -> np.ndarray:
    """Rows whose attribute value is known [N] bool."""
    return ~np.isnan(labels) if target.kind == "numeric" else labels >= 0
