"""Where the attack reads harvested updates and run rows from, with errors naming the run.

Thin layer over `sergrad.fl.harvest` (read_update_meta, iter_update_batches) and
`sergrad.fl.records.read_run_row`: a missing run, a missing layer, or runs whose shapes differ
raise DataError naming the runs involved.
"""

from __future__ import annotations

from collections.abc import Iterator

from sergrad.errors import DataError, SergradError
from sergrad.fl.harvest import UpdateBatch, UpdateMeta, iter_update_batches, read_update_meta
from sergrad.fl.records import read_clients, read_run_row
from sergrad.store import Store

__all__ = [
    "UpdateBatch", "UpdateMeta", "check_compatible", "check_sketch", "client_genders",
    "iter_batches", "layer_params",
]  # fmt: skip


# --- the API the attack uses ----------------------------------------------------------------
def run_meta(store: Store, run_id: str, *, role: str) -> UpdateMeta:
    """Metadata of a run's harvested updates; DataError naming the run when it has none."""
    if run_id not in store.partition_values("updates"):
        raise DataError(f"{role} run {run_id!r}: no harvested updates in {store.uri}/updates")
    try:
        return read_update_meta(store, run_id)
    except SergradError as exc:
        raise DataError(f"{role} run {run_id!r}: {exc}") from exc


def iter_batches(
    store: Store, run_id: str, *, params: list[str], batch_rows: int
) -> Iterator[UpdateBatch]:
    """Batches of a run's updates restricted to `params` (float32 arrays)."""
    yield from iter_update_batches(store, run_id, params=list(params), batch_rows=batch_rows)


def layer_params(meta: UpdateMeta, layer: str) -> list[str]:
    """Parameters of a layer group: "fc1" -> fc1.weight, fc1.bias (prefix "fc1."), or a name."""
    from sergrad.fl.param_names import select

    return select(
        meta.param_names, [layer], what=f"run {meta.run_id!r}", error=DataError,
        missing="{what}: layer {pattern!r} not harvested; parameters: {names}",
    )  # fmt: skip


def check_compatible(metas: list[UpdateMeta], layers: tuple[str, ...]) -> dict[str, list[str]]:
    """Each layer's parameters, identical in name and shape across all runs, else DataError."""
    first = metas[0]
    groups = {layer: layer_params(first, layer) for layer in layers}
    for meta in metas[1:]:
        for layer, params in groups.items():
            other = layer_params(meta, layer)
            if other != params:
                raise DataError(
                    f"runs {first.run_id!r} and {meta.run_id!r}: layer {layer!r} has "
                    f"parameters {params} vs {other}"
                )
            for p in params:
                if tuple(first.param_shapes[p]) != tuple(meta.param_shapes[p]):
                    raise DataError(
                        f"runs {first.run_id!r} and {meta.run_id!r}: {p} has shape "
                        f"{tuple(first.param_shapes[p])} vs {tuple(meta.param_shapes[p])}"
                    )
    return groups


# attack models that run on a sketch harvest (`harvest.sketch`: per-row and per-column
# statistics of each weight update, biases in full): they read the stored vectors as 1-D
# parameters; the cnn and logreg_colcorr need the full weight tensors
SKETCH_MODELS = ("logreg_stats", "mlp_proj")


def check_sketch(metas: list[UpdateMeta], model: str) -> None:
    """Target and shadow runs all full or all sketches, and a model that reads sketches."""
    kinds = {m.run_id: m.sketch or "full" for m in metas}
    if len(set(kinds.values())) > 1:
        raise DataError(f"runs mix full and sketch harvests ({kinds}); harvest them alike")
    if metas[0].sketch and model not in SKETCH_MODELS:
        raise DataError(
            f"runs {list(kinds)} hold sketches (harvest.sketch), not the full updates that "
            f"attack model {model!r} needs; use one of {', '.join(SKETCH_MODELS)}"
        )


def run_row(store: Store, run_id: str) -> dict | None:
    """The run's row in `runs` (schema.RUNS columns plus "corpus"), or None."""
    return read_run_row(store, run_id)


def client_genders(store: Store, run_id: str) -> dict[int, str] | None:
    """{client_id: gender} from the run's `clients` side table (the ground truth the server
    never sees: shadow labels, and target labels for scoring only); None when the run has no
    side table (an older store: the labels are then the updates' legacy gender column)."""
    try:
        rows = read_clients(store, run_id)
    except SergradError as exc:
        raise DataError(f"run {run_id!r}: {exc}") from exc
    if rows is None:
        return None
    return {int(r["client_id"]): r["gender"] or "" for r in rows}
