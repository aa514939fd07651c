"""Gaussian noise on selected parameters of the shared update only (no epsilon is claimed).

The paper's first-layer perturbation: noise on W1, b1 of the shared update (`layers` globs,
fnmatch syntax, default ["fc1.*"]). Two scales:
- absolute (relative: false): + N(0, std^2) per element;
- relative (relative: true): + N(0, (std * rms(u))^2) per element, rms(u) = ||u||_2 / sqrt(numel)
  of that tensor's update in that row, so the noise vector's norm is about std * ||u||_2
  (a noise-to-signal ratio, independent of the tensor's size). Each tensor is scaled on its own.

One pure function, `perturb_rows`, does the math for both uses:
- in-loop (`LayerPerturbation.client_update`): the noise enters training and the harvest;
- post-hoc (`perturb_arrays`, registered in sergrad.defenses.posthoc): on stored updates,
  arrays [rows, numel], before an attack, so a grid of noise levels needs no new FL runs.
Both draw standard normals with torch's CPU generator in the same order (per row, per
selected parameter in model order), so post-hoc with a generator seeded s on the update of
one client gives bit-for-bit the in-loop result with a generator seeded s.

Params: layers (globs, default ["fc1.*"]), std (>= 0, default 0.01), relative (default false).
A glob matching no parameter is a ConfigError listing the parameter names (checked by
`bind(param_names)`, which client_update calls on first use).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from sergrad.fl.update import ClientUpdate, Defense

from . import params as P

DEFAULTS: dict[str, Any] = {"layers": ["fc1.*"], "std": 0.01, "relative": False}


def select(names: Iterable[str], globs: Iterable[str], *, who: str) -> list[str]:
    """Names (in their order) matched by any glob; a glob matching nothing is a ConfigError."""
    from sergrad.fl.param_names import select as select_names

    return select_names(
        list(names), list(globs), what=who,
        missing="{what}: layer glob {pattern!r} matches no parameter; valid names: {names}",
    )  # fmt: skip


def perturb_rows(rows: torch.Tensor, noise: torch.Tensor, *, std: float, relative: bool):
    """rows [R, N] + scale [R, 1] * noise [R, N]; scale = std, or std * rms of each row."""
    if relative:
        rms = rows.double().square().mean(dim=1, keepdim=True).sqrt()  # [R, 1]
        scale = (std * rms).to(rows.dtype)
    else:
        scale = torch.full((rows.shape[0], 1), std, dtype=rows.dtype, device=rows.device)
    return rows + scale * noise.to(rows.dtype)  # [R, N]


def _normal(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=torch.float32, device=generator.device)


class LayerPerturbation(Defense):
    name = "layer_perturbation"

    def __init__(self, *, layers: tuple[str, ...], std: float, relative: bool) -> None:
        self.layers, self.std, self.relative = layers, std, relative
        self.level = std
        self.selected: list[str] | None = None

    def bind(self, param_names: Iterable[str]) -> list[str]:
        """Resolve the globs against the model's parameter names (ConfigError if one is unused)."""
        self.selected = select(param_names, self.layers, who="defense 'layer_perturbation'")
        return self.selected

    def client_update(self, update: ClientUpdate, *, generator: torch.Generator) -> ClientUpdate:
        if self.selected is None:
            self.bind(update.tensors)
        out = dict(update.tensors)
        for name in self.selected:
            t = out[name]
            z = _normal(tuple(t.shape), generator).to(t.device)
            row = perturb_rows(
                t.reshape(1, -1), z.reshape(1, -1), std=self.std, relative=self.relative
            )
            out[name] = row.reshape(t.shape)
        return update.with_tensors(out)


def perturb_arrays(
    arrays: Mapping[str, Any],
    *,
    names: list[str],
    std: float,
    relative: bool,
    generator: torch.Generator,
) -> dict[str, Any]:
    """Post-hoc: arrays name -> np.ndarray [rows, numel]; the `names` columns get noise.

    Rows are processed in order, and within a row the names in the given order, drawing
    from `generator` exactly as the in-loop defense does. Returns new arrays (float32 or wider).
    """
    import numpy as np

    out = dict(arrays)
    present = [n for n in names if n in arrays]
    tensors = {}
    for n in present:
        a = np.asarray(arrays[n])
        dtype = np.result_type(a.dtype, np.float32)
        tensors[n] = torch.from_numpy(np.array(a, dtype=dtype, copy=True)).reshape(a.shape[0], -1)
    n_rows = len(next(iter(tensors.values()))) if tensors else 0
    for r in range(n_rows):
        for n in present:
            row = tensors[n][r : r + 1]  # [1, N]
            z = _normal(tuple(row.shape), generator)
            tensors[n][r : r + 1] = perturb_rows(row, z, std=std, relative=relative)
    for n in present:
        out[n] = tensors[n].numpy().reshape(np.shape(arrays[n]))
    return out


def build(params: Mapping[str, Any], **_: Any) -> LayerPerturbation:
    p = P.resolve("layer_perturbation", params, DEFAULTS)
    return LayerPerturbation(
        layers=P.globs("layer_perturbation", "layers", p["layers"]),
        std=P.number("layer_perturbation", "std", p["std"], low=0),
        relative=P.flag("layer_perturbation", "relative", p["relative"]),
    )
