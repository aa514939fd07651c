"""Evaluations grouped by shadow set: every attack input they need, built in one pass.

The API a sweep's job runner calls for a group of evaluations (e.g. all evaluations of one
target, or of one shadow set) before running them:

    from sergrad.attack.group import prepare_attack_inputs
    prepare_attack_inputs(store, configs)          # moments + all featurizers, shadow read 1x
    rows = [run_attack(c, store) for c in configs]  # each reads only its target harvest

`prepare_attack_inputs` groups the configs by shadow set (their moments key), computes the
moments once per set, then every (layer, featurizer) the set's evaluations need in ONE more
pass over its updates (from the moments pass's batches, kept in memory up to
`pipeline.RAW_IN_MEMORY_BYTES`, else a second read; one read per layer when the attacker
mimics a post-hoc defense), and
stores them in `attack_inputs/` (sergrad.attack.inputs). `run_attack` then finds them there.
Without this call the cache still works, but each new featurizer costs one more pass.
"""

from __future__ import annotations

from collections.abc import Sequence

from sergrad.attack import inputs, pipeline
from sergrad.attack.config import AttackConfig
from sergrad.attack.run import _posthoc, _validate, layer_layout
from sergrad.config import content_hash, to_dict
from sergrad.store import Store


def shadow_set(config: AttackConfig) -> str:
    """What decides an evaluation's shadow inputs, knowable before any harvest is read: the
    shadow runs, the layers, and the post-hoc defenses (and seed) when the attacker mimics
    them. Evaluations with equal values share their moments (`inputs.moments_key`)."""
    mimic = inputs.mimics_posthoc(config)
    return content_hash(
        {
            "shadow_runs": list(config.shadow_runs),
            "layers": list(config.layers),
            "posthoc": to_dict(config.posthoc) if mimic else [],
            "seed": config.seed if mimic else None,
        }
    )


def prepare_attack_inputs(store: Store, configs: Sequence[AttackConfig]) -> dict[str, int]:
    """Build the shadow inputs of `configs`; returns {moments key: featurizing passes made}."""
    groups: dict[str, list[tuple[AttackConfig, dict, dict, list[str]]]] = {}
    metas: dict = {}  # run id -> meta, read once for all configs
    for config in configs:
        _validate(config)
        layers, shapes, params = layer_layout(store, config, metas=metas)
        key = inputs.moments_key(config, params, batch_rows=pipeline.BATCH_ROWS)
        groups.setdefault(key, []).append((config, layers, shapes, params))
    passes = {}
    for key, members in groups.items():
        config, _, shapes, params = members[0]
        posthoc = _posthoc(config)[0]
        shadow = pipeline.load_shadow(store, config, params, shapes=shapes, posthoc=posthoc)
        jobs = [(ps, c.model) for c, lay, _, _ in members for ps in lay.values()]
        passes[key] = pipeline.featurize_shadow(store, config, shadow, jobs, shapes=shapes,
                                                posthoc=posthoc)  # fmt: skip
    return passes
