"""What the harvest writer (`harvest_write.HarvestWriter`) checks in a client update, and the
errors that name the round, client and speaker of a bad one: its key columns (integers,
strings, a known kind), each harvested tensor's presence, shape and float dtype (in `add`,
before anything is copied), and NaN / inf / float16 overflow (found by the background write
from the stored top plane).

>>> from types import SimpleNamespace as U
>>> update_keys(U(round=3, client_id=7, n_samples=20, speaker_id="s1", kind="gradient"))
{'round': 3, 'client_id': 7, 'n_samples': 20, 'speaker_id': 's1', 'kind': 'gradient'}
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

import numpy as np

from sergrad import schema
from sergrad.errors import DataError

if TYPE_CHECKING:
    from sergrad.fl.update import ClientUpdate


def where(update: ClientUpdate) -> str:
    return f"round {update.round} client {update.client_id} (speaker {update.speaker_id})"


def update_keys(update: ClientUpdate) -> dict[str, object]:
    """The key columns of one update, type-checked (numpy integers are accepted)."""
    out: dict[str, object] = {}
    for name in ("round", "client_id", "n_samples"):
        try:
            out[name] = operator.index(getattr(update, name))
        except TypeError:
            raise DataError(
                f"update of {where(update)}: {name} {getattr(update, name)!r} is not an integer"
            ) from None
    values = {"speaker_id": update.speaker_id, "kind": update.kind}
    for name, value in values.items():
        if not isinstance(value, str):
            raise DataError(f"update of {where(update)}: {name} {value!r} is not a string")
        out[name] = value
    if out["kind"] not in schema.UPDATE_KINDS:
        raise DataError(
            f"update of {where(update)}: kind {out['kind']!r} not in {schema.UPDATE_KINDS}"
        )
    return out


def check_tensor(tensors: dict, name: str, shape: tuple[int, ...], update: ClientUpdate) -> None:
    """Presence, shape and float dtype of tensor `name` (NaN/inf: `nonfinite_error`)."""
    t = tensors.get(name)
    if t is None:
        raise DataError(
            f"update of {where(update)}: parameter {name!r} missing; has {list(tensors)}"
        )
    if t.shape != shape:
        raise DataError(
            f"update of {where(update)}: {name!r} has shape {tuple(t.shape)}, expected {shape}"
        )
    if not t.is_floating_point():
        raise DataError(f"update of {where(update)}: {name!r} has dtype {t.dtype}, expected float")


def nonfinite_error(
    name: str, row: np.ndarray, keys: list[Any], i: int, *, dtype: str, sketch: bool
) -> DataError:
    """The error for stored row `row` (row `i` of a row group whose key columns are `keys`:
    round, client_id, speaker_id first) holding NaN / inf, or overflowing float16 /
    bfloat16."""
    from sergrad.fl.harvest_codec import count_nonfinite

    at = f"round {keys[0][i].as_py()} client {keys[1][i].as_py()} (speaker {keys[2][i].as_py()})"
    nan, inf = count_nonfinite(row, dtype)
    if dtype != "float32" and not nan and not sketch:
        return DataError(
            f"update of {at}: {name!r} overflows {dtype} (|x| > "
            f"{'65504' if dtype == 'float16' else '3.4e38'}) or holds inf ({inf} values); "
            f"use harvest.dtype float32{' or bfloat16' if dtype == 'float16' else ''}"
        )
    what = "the sketch of " if sketch else ""
    return DataError(f"update of {at}: {what}{name!r} has {nan + inf} NaN/inf values")
