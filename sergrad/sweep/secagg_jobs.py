"""Sweep jobs of attacks under secure aggregation (`sergrad.attack.secagg`).

A target run whose in-loop defense is `secure_aggregation` gets one `SecAggEvalJob` instead
of the per-update attack evaluations (there are no individual updates to attack): the
cohort-composition regression, plus per-client differencing where its server chose the
cohorts. Its shadow runs always use the same secure_aggregation settings (same cohort size
and sampling): the attacker knows the protocol. Settings come from the sweep's first attack
block (layers, seed, bootstrap, and `attribute` where that block has one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sergrad.attack.secagg import SecAggAttackConfig, secagg_eval_id
from sergrad.errors import ConfigError
from sergrad.fl.secagg import NAME
from sergrad.store import Store
from sergrad.sweep.jobs import EvaluationRecord

# the attribute value whose fraction in a cohort is regressed
POSITIVE: dict[str, str] = {"gender": "F", "language": "L2"}


def is_secagg(defense: tuple) -> bool:
    return any(d.name == NAME for d in defense)


def secagg_settings(attack: dict) -> dict:
    """(layers, attribute, positive, bootstrap) of an attack-grid point, as config fields."""
    attribute = attack.get("attribute", "gender")
    if attribute not in POSITIVE:
        raise ConfigError(
            f"attack.attribute: {attribute!r} has no binary class for the secure-aggregation "
            f"attacks (cohort fraction); valid: {', '.join(POSITIVE)}"
        )
    return {"layers": tuple(attack.get("layers", ("fc1",))), "attribute": attribute,
            "positive": POSITIVE[attribute],
            "bootstrap": int(attack.get("bootstrap", 1000))}  # fmt: skip


@dataclass(frozen=True)
class SecAggEvalJob(EvaluationRecord):
    id: str
    target_corpus: str
    config: SecAggAttackConfig

    eta_kind: ClassVar[str] = "fast eval"

    def run(self, store: Store) -> None:
        from sergrad.attack.secagg import run_secagg_attack

        if not self.starts(store, secagg_eval_id(self.config), what="evaluation"):
            return
        run_secagg_attack(self.config, store)

    def failure_row(self, error: str) -> dict:
        return self.evaluation_failure(error, attack="ridge", adaptive=True)


def make_secagg_job(target_corpus: str, config: SecAggAttackConfig) -> SecAggEvalJob:
    """The one place a secure-aggregation evaluation id is computed (plan time)."""
    return SecAggEvalJob(secagg_eval_id(config), target_corpus, config)
