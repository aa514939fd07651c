"""Post-hoc defenses: applied by the attack to stored target updates before scoring.

`create_posthoc(PostHocConfig)` returns a callable

    apply(arrays: dict[str, np.ndarray [rows, numel]], *, param_shapes: dict[str, tuple],
          rng: np.random.Generator) -> dict[str, np.ndarray]

which returns new arrays (inputs are not modified). Registered: "none" (identity) and
"layer_perturbation" (the same math as the in-loop defense, `perturb_rows`). Names are
checked against `param_shapes` plus the array names: a layer glob that matches none of them is
a ConfigError naming the valid parameters; selected parameters absent from `arrays` (another
layer is being attacked) are simply left out. The noise stream: one 63-bit seed drawn from
`rng` seeds a torch CPU generator, then rows in order, selected names in model order.

>>> import numpy as np
>>> from sergrad.attack.config import PostHocConfig
>>> apply = create_posthoc(PostHocConfig("layer_perturbation", {"std": 0.0}))
>>> x = {"fc1.weight": np.ones((2, 6), np.float32), "fc2.weight": np.ones((2, 3), np.float32)}
>>> y = apply(x, param_shapes={"fc1.weight": (3, 2), "fc2.weight": (1, 3)}, rng=np.random.default_rng(0))
>>> bool((y["fc1.weight"] == 1).all())
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sergrad.errors import ConfigError
from sergrad.registry import Registry

from .layer_perturbation import build as build_layer_perturbation
from .layer_perturbation import perturb_arrays, select

PostHoc = Callable[..., dict]
POSTHOC: Registry[Callable[[Mapping[str, Any]], PostHoc]] = Registry("post-hoc defense")


@POSTHOC.register("none")
def _none(params: Mapping[str, Any]) -> PostHoc:
    if params:
        raise ConfigError(
            f"post-hoc defense 'none' takes no params, got {', '.join(sorted(params))}"
        )

    def apply(arrays, *, param_shapes=None, rng=None):
        return dict(arrays)

    return apply


@POSTHOC.register("layer_perturbation")
def _layer_perturbation(params: Mapping[str, Any]) -> PostHoc:
    spec = build_layer_perturbation(params)  # validates params

    def apply(arrays, *, param_shapes, rng):
        import torch

        known = list(param_shapes) + [n for n in arrays if n not in param_shapes]
        names = select(known, spec.layers, who="post-hoc defense 'layer_perturbation'")
        generator = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
        return perturb_arrays(
            arrays, names=names, std=spec.std, relative=spec.relative, generator=generator
        )

    apply.level = spec.std  # type: ignore[attr-defined]
    return apply


def create_posthoc(cfg) -> PostHoc:
    """A post-hoc defense from a sergrad.attack.config.PostHocConfig(name, params)."""
    try:
        factory = POSTHOC.get(cfg.name)
    except KeyError as exc:
        raise ConfigError(exc.args[0]) from None
    return factory(dict(cfg.params))
