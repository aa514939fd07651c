"""`secure_aggregation`: the server sees each round's aggregate only (sergrad.fl.secagg).

Not a perturbation: every hook is the identity. Its presence switches the run loop to the
secure-aggregation view (one aggregate row per round in the harvest, cohorts in the
`cohorts` side table) and its params set the cohort:

    {name: secure_aggregation, params: {cohort: 5, min_cohort: 2, sampling: uniform}}

`level` is the cohort size k (clients per round), so tables and plots facet by it. The
runs/attacks `defense` label is `secure_aggregation` (uniform sampling), or
`secure_aggregation_differencing` / `secure_aggregation_same_round` (a server that controls
sampling: pairs of rounds S + {i} then S; two aggregates of one round): other threat models.

>>> from sergrad.fl.config import DefenseConfig
>>> from sergrad.defenses import create_defense
>>> create_defense(DefenseConfig("secure_aggregation", {"cohort": 5})).level
5.0
>>> create_defense(DefenseConfig("secure_aggregation", {"cohort": 2, "min_cohort": 3}))
Traceback (most recent call last):
...
sergrad.errors.ConfigError: defense 'secure_aggregation': min_cohort 3 refuses 2 clients per round; raise the cohort / client_fraction or lower min_cohort
"""

from __future__ import annotations

from sergrad.fl.secagg import NAME, SecAggSpec
from sergrad.fl.update import Defense


class SecureAggregation(Defense):
    name = NAME

    def __init__(self, spec: SecAggSpec, *, clients_per_round: int | None) -> None:
        self.spec = spec
        if spec.sampling != "uniform":  # adversarial_differencing | adversarial_same_round
            self.name = f"{NAME}_{spec.sampling.removeprefix('adversarial_')}"
        self.level = None if clients_per_round is None else float(clients_per_round)


def build(params: dict, *, plan=None) -> SecureAggregation:
    """Validated now: with a plan (or an explicit cohort) min_cohort is checked here."""
    spec = SecAggSpec.from_params(params)
    k = spec.cohort or None
    if plan is not None:
        k = spec.clients_per_round(plan.n_clients, plan.clients_per_round / plan.n_clients)
    elif k is not None:
        spec.check_min_cohort(k)
    return SecureAggregation(spec, clients_per_round=k)
