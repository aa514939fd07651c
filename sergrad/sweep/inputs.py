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

import numpy as np
import pyarrow as pa

from sergrad.errors import ConfigError, DataError
from sergrad.schema import FEATURE_ID, FEATURE_VECTOR, features_schema
from sergrad.store import Store
from sergrad.sweep.expand import InputSpec, feature_name, input_dir

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

        profile = cs.profile or "synth-studio"
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


def _features(spec: InputSpec, utterances: pa.Table) -> pa.Table:
    """One vector per utterance (feature-set registry + sergrad.audio), schema (utt_id, x)."""
    import sergrad.features.handcrafted  # noqa: F401  (registers the built-in sets)
    from sergrad.audio import load_mono
    from sergrad.features.base import get_feature_set, params_json, resolve_params

    fs = get_feature_set(spec.features.name)
    params = resolve_params(fs.name, spec.features.params, fs.defaults)
    extractor = fs.build(params)
    if not fs.reads_audio:
        raise ConfigError(f"feature set {fs.name!r} is a table source; not supported in sweeps")
    vectors = [extractor(load_mono(p)[0]) for p in utterances.column("path").to_pylist()]
    x = np.stack(vectors).astype(np.float32)  # [N, D]
    if not np.isfinite(x).all():
        raise DataError(f"{spec.corpus}/{fs.name}: non-finite feature values")
    schema = features_schema(x.shape[1]).with_metadata(
        {
            b"sergrad.feature_set": fs.name.encode(),
            b"sergrad.feature_params": params_json(params).encode(),
        }
    )
    values = pa.array(x.reshape(-1), type=pa.float32())
    col = pa.FixedSizeListArray.from_arrays(values, x.shape[1])
    return pa.Table.from_arrays([utterances.column("utt_id"), col], schema=schema)


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
        utterances = _utterances(spec) if not have_utts else _read(store, base, "utterances")
        if not have_utts:
            store.write_table(base, utterances, partition=None, name="utterances")
            written += 1
        if not have_feats:
            store.write_table(base, _features(spec, utterances), partition=None, name=feat_name)
            written += 1
    return written


def _read(store: Store, base: str, name: str) -> pa.Table:
    import pyarrow.parquet as pq

    with store.open_input(store.file_path(base, partition=None, name=name)) as f:
        return pq.read_table(f)


__all__ = ["ensure_inputs", "expand_env", "FEATURE_ID", "FEATURE_VECTOR"]
