"""Defenses against attribute inference on client updates, and their privacy accounting.

A defense is a `sergrad.fl.update.Defense`: hooks with identity defaults that the FL engines
call (local_training, on_client_trained, client_update, server_update, on_round_end,
privacy_spent). Build them from config with the registry:

    defenses = create_defenses(run_config.defenses, n_clients=n, plan=TrainingPlan.for_run(...))

Registered: none, dp_sgd, user_dp, udp_paper, layer_perturbation, secure_aggregation. Parameters are validated on
construction; a bad one is a sergrad.errors.ConfigError naming the valid range or names.
Post-hoc defenses (applied to stored updates by the attack): `create_posthoc`.

>>> from sergrad.fl.config import DefenseConfig
>>> d = create_defense(DefenseConfig("dp_sgd", {"noise_multiplier": 1.0, "max_grad_norm": 0.5}))
>>> d.local_training().per_example_clip, d.privacy_spent().epsilon
(0.5, 0.0)
>>> create_defense(DefenseConfig("dp_sgd", {"noise_multiplier": -1.0}))
Traceback (most recent call last):
...
sergrad.errors.ConfigError: defense 'dp_sgd': noise_multiplier must be in [0, 1e+06], got -1.0
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sergrad.errors import ConfigError
from sergrad.fl.update import Defense, PrivacySpent
from sergrad.registry import Registry

from . import dp_sgd, layer_perturbation, secure_aggregation, udp_paper, user_dp
from .accounting import dp_attack_ceiling, epsilon_for, noise_for_epsilon
from .plan import TrainingPlan
from .posthoc import POSTHOC, create_posthoc

__all__ = [
    "DEFENSES",
    "POSTHOC",
    "TrainingPlan",
    "create_defense",
    "create_defenses",
    "create_posthoc",
    "defense_label",
    "dp_attack_ceiling",
    "epsilon_for",
    "noise_for_epsilon",
    "privacy_spent",
]

Factory = Callable[..., Defense]
DEFENSES: Registry[Factory] = Registry("defense")


@DEFENSES.register("none")
def _none(params: dict, **_: Any) -> Defense:
    if params:
        raise ConfigError(f"defense 'none' takes no params, got {', '.join(sorted(params))}")
    return Defense()


DEFENSES.register("dp_sgd")(lambda params, *, plan=None, **_: dp_sgd.build(params, plan=plan))
DEFENSES.register("user_dp")(
    lambda params, *, plan=None, n_clients=None, **_: user_dp.build(
        params, plan=plan, n_clients=n_clients
    )
)
DEFENSES.register("udp_paper")(lambda params, *, plan=None, **_: udp_paper.build(params, plan=plan))
DEFENSES.register("layer_perturbation")(lambda params, **_: layer_perturbation.build(params))
DEFENSES.register("secure_aggregation")(
    lambda params, *, plan=None, **_: secure_aggregation.build(params, plan=plan)
)


def create_defense(
    cfg, *, n_clients: int | None = None, plan: TrainingPlan | None = None
) -> Defense:
    """One Defense from a sergrad.fl.config.DefenseConfig(name, params), validated now.

    n_clients: clients in the federation (bounds user_dp's delta below 1/n_clients).
    plan: the TrainingPlan, needed for target_epsilon and for udp_paper on pseudo-gradients.
    """
    try:
        factory = DEFENSES.get(cfg.name)
    except KeyError as exc:
        raise ConfigError(exc.args[0]) from None
    if not isinstance(cfg.params, dict):
        raise ConfigError(f"defense {cfg.name!r}: params must be a mapping, got {cfg.params!r}")
    if n_clients is None and plan is not None:
        n_clients = plan.n_clients
    return factory(dict(cfg.params), n_clients=n_clients, plan=plan)


def create_defenses(
    cfgs: Iterable, *, n_clients: int | None = None, plan: TrainingPlan | None = None
) -> list[Defense]:
    """Defenses in config order ("none" entries dropped): client hooks run in this order,
    server hooks in reverse."""
    out = [create_defense(c, n_clients=n_clients, plan=plan) for c in cfgs]
    return [d for d in out if d.name != "none"]


def privacy_spent(defenses: Iterable[Defense]) -> PrivacySpent | None:
    """The guarantee to record for a run: the first defense that claims one (None if none)."""
    for d in defenses:
        spent = d.privacy_spent()
        if spent is not None:
            return spent
    return None


def defense_label(defenses: Iterable[Defense]) -> tuple[str, float | None]:
    """(short label for runs/attacks tables, swept level of the first defense); ("none", None)."""
    defenses = list(defenses)
    if not defenses:
        return "none", None
    return "+".join(d.name for d in defenses), defenses[0].level
