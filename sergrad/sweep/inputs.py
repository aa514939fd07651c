"""The sweep's inputs stage (on the driver): every corpus x feature set in the store.

For each `InputSpec` of a plan, make sure `<store>/inputs/<corpus>-<hash>/utterances.parquet`
and `<store>/inputs/<corpus>-<hash>/<feature set>-<hash>.parquet` exist, so FL runs on any
node read them through pyarrow.fs URIs (the run configs hold those URIs). Synthetic corpora
are generated into a local cache folder first; real corpora are indexed from their root
(`${ENV}` references expanded). Existing files are reused: the names carry content hashes.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from sergrad.errors import ConfigError
from sergrad.schema import FEATURE_ID, FEATURE_VECTOR
from sergrad.store import Store
from sergrad.sweep.expand import InputSpec, feature_name, input_dir, synth_profile

log = logging.getLogger(__name__)
SYNTH_LAYOUT = "crema-d"  # synthetic corpora are written in CREMA-D layout


def expand_env(value: str, *, what: str) -> str:
    """Expand ${VAR} / $VAR; an unset variable is a ConfigError naming it."""
    for name in re.findall(r"\$\{(\w+)\}|\$(\w+)", value):
        var = name[0] or name[1]
        if var not in os.environ:
            raise ConfigError(f"{what}: environment variable {var} is not set (in {value!r})")
    return os.path.expandvars(value)


def cache_dir() -> Path:
    base = os.environ.get("SERGRAD_CACHE") or os.path.join(tempfile.gettempdir(), "sergrad-cache")
    return Path(base)


def _utterances(spec: InputSpec) -> pa.Table:
    from sergrad.corpora import index_corpus

    cs = spec.spec
    if cs.kind == "synth":
        from sergrad.corpora.synth import synthesize

        profile = synth_profile(cs)
        key = f"{profile}-s{cs.speakers}-u{cs.options.get('utterances_per_emotion', 0)}-{cs.seed}"
        out = cache_dir() / "synth" / key
        synthesize(
            out,
            profile=profile,
            speakers=cs.speakers or None,
            seed=cs.seed,
            utterances_per_emotion=cs.options.get("utterances_per_emotion") or None,
            progress=False,
        )
        root, kind, options = out, SYNTH_LAYOUT, {}
    else:
        root = Path(expand_env(cs.root, what=f"corpora.{spec.corpus}.root"))
        kind, options = cs.kind, dict(cs.options)
    table, problems = index_corpus(kind, root, options=options, corpus_name=spec.corpus)
    if problems.count:
        log.warning("%s: %s", spec.corpus, problems.summary())
    return table


def _features(spec: InputSpec, utterances: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(features table, utterances that got a vector); per-file problems are logged."""
    from sergrad.features import extract_features

    table, problems = extract_features(
        utterances,
        feature_set=spec.features.name,
        params=dict(spec.features.params),
        workers=max(1, os.cpu_count() or 1),
        progress=True,
    )
    if problems.count:
        log.warning("%s/%s: %s", spec.corpus, spec.features.name, problems.summary())
    kept = pa.compute.is_in(utterances.column("utt_id"), value_set=table.column("utt_id"))
    return table, utterances.filter(kept)


def ensure_inputs(store: Store, inputs: tuple[InputSpec, ...], *, progress=None) -> int:
    """Materialise missing inputs in `store`; returns how many files were written."""
    written = 0
    for spec in inputs:
        base = input_dir(spec.corpus, spec.spec)
        feat_name = feature_name(spec.features)
        have_utts = store.exists(base, partition=None, name="utterances")
        have_feats = store.exists(base, partition=None, name=feat_name)
        if have_utts and have_feats:
            continue
        if progress:
            progress(f"inputs: {spec.corpus} x {spec.features.name}")
        utterances = _read(store, base, "utterances") if have_utts else _utterances(spec)
        if not have_feats:
            features, utterances = _features(spec, utterances)
        if not have_utts:  # only utterances that have a vector reach the FL runs
            store.write_table(base, utterances, partition=None, name="utterances")
            written += 1
        if not have_feats:
            store.write_table(base, features, partition=None, name=feat_name)
            written += 1
    return written


def _read(store: Store, base: str, name: str) -> pa.Table:
    return store.read_file(store.file_path(base, partition=None, name=name))


__all__ = ["ensure_inputs", "expand_env", "FEATURE_ID", "FEATURE_VECTOR"]
