"""The resolved configuration of one attack evaluation; its id is the content hash.

An evaluation trains an attack model on the chosen layer(s) of the shadow runs' harvested
updates (labelled with the shadow clients' `attribute`: gender by default, or any speaker
attribute, `sergrad.attributes`) and scores the target run's updates. The id of a gender
evaluation with default age bins is what it was before the attribute existed (the two keys
are left out of the hash at their defaults), so older stores resume without reruns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sergrad.attributes import DEFAULT_AGE_EDGES
from sergrad.config import content_hash, stable_hash

# Names in the attack-model registry (models.py, which imports torch). Kept here so that
# planning a sweep can reject an unknown name without importing torch; a test keeps the
# two in step.
MODEL_NAMES: tuple[str, ...] = ("cnn", "logreg_colcorr", "logreg_stats", "mlp_proj")


@dataclass(frozen=True)
class AttackModelConfig:
    name: str = "cnn"  # registry name: cnn, and the fast attacks
    params: dict = field(default_factory=dict)  # model-specific options
    epochs: int = 50
    batch_size: int = 20
    lr: float = 1e-4
    patience: int = 5  # early stopping on validation UAR
    val_fraction: float = 0.2  # of shadow CLIENTS held out for validation

    def __hash__(self) -> int:
        return hash(content_hash(self))


@dataclass(frozen=True)
class PostHocConfig:
    """A post-hoc defense applied to stored target updates before the attack."""

    name: str = "none"
    params: dict = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash(content_hash(self))


@dataclass(frozen=True)
class AttackConfig:
    target_run: str = ""  # run id of the private (target) FL run
    shadow_runs: tuple[str, ...] = ()  # run ids of the attacker's shadow FL runs
    layers: tuple[str, ...] = ("fc1",)  # layer groups: "fc1" = fc1.weight + fc1.bias
    fusion: bool = True  # also fuse per-layer predictions weighted by parameter count
    model: AttackModelConfig = AttackModelConfig()
    posthoc: tuple[PostHocConfig, ...] = ()
    protocols: tuple[str, ...] = ("per_update", "per_client")  # + "per_client_vote"
    n_avg: tuple[int, ...] = (1, 3, 5, 10, 0)  # per_client: updates averaged; 0 = all
    trials: int = 10  # per_client: seeded trials per client and n
    bootstrap: int = 1000  # bootstrap resamples (over clients) for the CI
    # how the decision threshold is set (metrics.py): shadow | prior | oracle (upper bound)
    calibrations: tuple[str, ...] = ("shadow", "prior")
    adaptive: bool = False  # label: shadow runs applied the target's defense
    seed: int = 0
    device: str = "cpu"
    # the attacked speaker attribute: gender | age_group | age | race | ethnicity | language |
    # any speaker column of the data (sergrad.attributes); age_bins: age_group's edges
    attribute: str = "gender"
    age_bins: tuple[float, ...] = DEFAULT_AGE_EDGES


# fields added after stores existed: left out of the evaluation id at their defaults
ADDED_FIELDS = {("attribute",): "gender", ("age_bins",): DEFAULT_AGE_EDGES}


def eval_id(config: AttackConfig) -> str:
    return stable_hash(config, ADDED_FIELDS)
