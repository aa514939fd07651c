"""Extraction: an utterance table in, a feature table (+ per-file problems) out.

Utterances are cut into batches of `batch_size`; each batch is one task, run in this process
(workers=1; hand-crafted sets with one torch thread) or in a pool of `workers` processes (fork
start, torch.set_num_threads(1) each). The extractor is built once in the parent, so a missing
weight file fails before any work, and forked workers inherit it. A file that is missing,
unreadable, empty or too short, or whose vector has NaN / inf, becomes a problem naming the
file (and utt_id); the rest proceeds. Under strict=True the first problem raises DataError.
Rows keep the table's order.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from sergrad.audio import load_mono
from sergrad.errors import ConfigError, DataError
from sergrad.features.base import FEATURE_CODE_VERSION, get_feature_set, params_json, resolve_params
from sergrad.features.keys import cache_key, utterance_columns
from sergrad.features.table import features_table
from sergrad.problems import Problems

# Extractors built in this process, by (feature set, canonical params JSON). extract_features
# fills it and empties it when done (an SSL model holds ~400 MB); forked workers inherit it.
_EXTRACTORS: dict[tuple[str, str], Any] = {}
Outcome = tuple[np.ndarray | None, str | None]  # (vector [D], None) or (None, reason)


def get_extractor(feature_set: str, params: dict[str, Any]) -> Any:
    key = (feature_set, params_json(params))
    if key not in _EXTRACTORS:
        _EXTRACTORS[key] = get_feature_set(feature_set).build(params)
    return _EXTRACTORS[key]


def extract_one(extractor: Any, utt_id: str, path: str) -> Outcome:
    """Load, resample to 16 kHz mono, extract; a reason string instead of raising on bad data."""
    if not os.path.exists(path):
        return None, "audio file not found"
    try:
        wave, _ = load_mono(path)  # [T] float32 at 16 kHz
        vec = np.asarray(extractor(wave), dtype=np.float32)  # [D]
    except (DataError, RuntimeError, ValueError) as exc:
        reason = str(exc)
        prefix = f"{path}: "
        return None, reason[len(prefix) :] if reason.startswith(prefix) else reason
    if vec.shape != (extractor.dim,):
        return None, f"utt_id {utt_id!r}: vector of shape {vec.shape}, expected ({extractor.dim},)"
    if not np.isfinite(vec).all():
        return None, f"utt_id {utt_id!r}: NaN or inf in the computed feature vector"
    return vec, None


def extract_batch(
    feature_set: str, params: dict[str, Any], items: Sequence[tuple[str, str]]
) -> list[Outcome]:
    """One task: [(utt_id, path)] -> [Outcome], in order. Runs in a worker or in-process."""
    extractor = get_extractor(feature_set, params)
    return [extract_one(extractor, utt_id, path) for utt_id, path in items]


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_audio(
    feature_set: str,
    params: dict[str, Any],
    items: list[tuple[str, str]],
    *,
    workers: int,
    batch_size: int,
    progress: bool,
    problems: Problems,
) -> list[np.ndarray | None]:
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    results: list[list[Outcome] | None] = [None] * len(batches)
    bar = tqdm(
        total=len(items),
        unit="utt",
        desc=f"features {feature_set}",
        disable=not progress,
        file=sys.stderr,
    )

    def record(index: int, outcomes: list[Outcome]) -> None:
        results[index] = outcomes
        for (_, path), (_, reason) in zip(batches[index], outcomes):
            if reason is not None:
                problems.add(path, reason)  # raises under strict
        bar.update(len(outcomes))

    try:
        if workers <= 1 or len(batches) <= 1:
            # small per-utterance ops (hand-crafted sets): extra threads only add contention;
            # big models (SSL) keep torch's threads
            single = getattr(get_extractor(feature_set, params), "single_thread", False)
            with _one_torch_thread() if single else contextlib.nullcontext():
                for index, batch in enumerate(batches):
                    record(index, extract_batch(feature_set, params, batch))
        else:
            _run_pool(feature_set, params, batches, workers=workers, record=record)
    finally:
        bar.close()
    return [vec for outcomes in results for vec, _ in outcomes or []]


def _run_pool(
    feature_set: str, params: dict[str, Any], batches: list, *, workers: int, record
) -> None:
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(batches)), mp_context=context, initializer=_init_worker
    )
    try:
        futures: dict[Future, int] = {
            pool.submit(extract_batch, feature_set, params, batch): i
            for i, batch in enumerate(batches)
        }
        for future in as_completed(futures):
            record(futures[future], future.result())
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def extract_features(
    utterances: pa.Table,
    *,
    feature_set: str = "combined",
    params: dict[str, Any] | None = None,
    workers: int = 1,
    strict: bool = False,
    progress: bool = True,
    batch_size: int = 32,
) -> tuple[pa.Table, Problems]:
    """Feature table (schema features_schema(D), metadata attached) and the problems met.

    Utterances with problems are left out of the table (or raise under strict). DataError
    when no utterance yields a vector.
    """
    if workers < 1 or batch_size < 1:
        raise ConfigError(f"workers ({workers}) and batch_size ({batch_size}) must be >= 1")
    spec = get_feature_set(feature_set)
    resolved = resolve_params(feature_set, params, spec.defaults)
    ids, paths = utterance_columns(utterances)
    problems = Problems(strict=strict)
    key = cache_key(utterances, feature_set=feature_set, params=resolved)
    extractor = get_extractor(feature_set, resolved)  # fail early (params, weights, extras)
    try:
        if not spec.reads_audio:
            vectors = extractor.lookup(ids, problems)
        else:
            items = list(zip(ids, paths))
            vectors = _run_audio(
                feature_set,
                resolved,
                items,
                workers=workers,
                batch_size=batch_size,
                progress=progress,
                problems=problems,
            )
    finally:
        _EXTRACTORS.clear()
    keep = [i for i, v in enumerate(vectors) if v is not None]
    if not keep:
        raise DataError(
            f"no utterance gave {feature_set} features ({len(ids)} tried); {problems.summary()}"
        )
    x = np.stack([vectors[i] for i in keep])  # [N, D]
    meta = {
        "feature_set": feature_set,
        "params": resolved,
        "cache_key": key,
        "version": FEATURE_CODE_VERSION,
        "names": list(extractor.names) if extractor.names is not None else None,
        "problems": [list(p) for p in problems.items],
        "n_utterances": len(ids),
    }
    return features_table([ids[i] for i in keep], x, meta=meta), problems
