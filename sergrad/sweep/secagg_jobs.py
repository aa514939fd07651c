"""Sweep jobs of attacks under secure aggregation (`sergrad.attack.secagg`).

A target run whose in-loop defense is `secure_aggregation` gets one `SecAggEvalJob` instead
of the per-update attack evaluations (there are no individual updates to attack): the
cohort-composition regression, plus per-client differencing where its server chose the
cohorts. Its shadow runs always use the same secure_aggregation settings (same cohort size
and sampling): the attacker knows the protocol. Settings come from the sweep's first attack
block (layers, seed, bootstrap, and `attribute` where that block has one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

from sergrad.attack.secagg import SecAggAttackConfig, secagg_eval_id
from sergrad.config import canonical_json
from sergrad.errors import ConfigError
from sergrad.fl.records import now_iso
from sergrad.fl.secagg import NAME
from sergrad.schema import ATTACKS_PARTITION
from sergrad.store import Store
from sergrad.sweep.jobs import check_id, clear_record, stored_status

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
class SecAggEvalJob:
    id: str
    target_corpus: str
    config: SecAggAttackConfig

    table: ClassVar[str] = "attacks"
    id_column: ClassVar[str] = "eval_id"
    eta_kind: ClassVar[str] = "fast eval"

    @property
    def partition(self) -> tuple[str, str]:
        return (ATTACKS_PARTITION, self.target_corpus)

    @property
    def needs(self) -> tuple[str, ...]:
        return (self.config.target_run, *self.config.shadow_runs)

    def is_done(self, store: Store) -> bool:
        return stored_status(store, self) == "ok"

    def run(self, store: Store) -> None:
        from sergrad.attack.secagg import run_secagg_attack

        check_id(self.id, secagg_eval_id(self.config), what="evaluation")
        if self.is_done(store):
            return
        clear_record(store, self)
        run_secagg_attack(self.config, store)

    def failure_row(self, error: str) -> dict:
        cfg = self.config
        return {"eval_id": self.id, "status": "failed", "error": error, "attack": "ridge",
                "adaptive": True, "target_run": cfg.target_run,
                "shadow_runs": json.dumps(list(cfg.shadow_runs)), "seed": cfg.seed,
                "config": canonical_json(cfg), "created_at": now_iso()}  # fmt: skip


def make_secagg_job(target_corpus: str, config: SecAggAttackConfig) -> SecAggEvalJob:
    """The one place a secure-aggregation evaluation id is computed (plan time)."""
    return SecAggEvalJob(secagg_eval_id(config), target_corpus, config)
