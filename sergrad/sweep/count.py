"""Count a sweep's runs and evaluations without building their configs (`sergrad sweep plan`).

`expand` builds every run and evaluation config and hashes it (tens of microseconds each), so
a 10^6-job grid takes minutes and gigabytes. Counting walks the same loops over small keys
instead: a run is (corpora, feature set, run-grid point, defense variant, fold, seed), an
evaluation is (target run, attack variant, effective adaptive flag, shadow runs); two keys are
the same job exactly when `expand` would give them the same content hash (grid points and
attack variants are deduplicated by content first). Only a 64-bit hash of each key is kept.
tests/test_sweep_count.py checks the counts against `expand` on every shipped sweep.

The harvest estimate is computed once per (corpora, feature set, run-grid point), the only
things it depends on, and multiplied by the number of runs sharing them.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass, field

from sergrad.audit.mechanism import needs_canary_audit
from sergrad.fl.config import RunConfig
from sergrad.store import STORE_REF
from sergrad.sweep.expand import (
    _merge,
    attack_variants,
    defense_variants,
    feature_name,
    grid_points,
    input_dir,
)
from sergrad.sweep.schema import Sweep
from sergrad.sweep.secagg_jobs import is_secagg, secagg_settings

WARN_JOBS = 10_000  # `plan` and `run` warn above this many runs + evaluations


@dataclass
class Counts:
    inputs: int = 0
    target_runs: int = 0
    shadow_runs: int = 0
    evaluations: int = 0
    audits: int = 0  # canary audits (dp_sgd / central user_dp target runs)
    # (corpora, fs index, point index, defense index; -1 = none) -> runs
    groups: Counter = field(default_factory=Counter)
    points: list = field(default_factory=list)  # deduplicated run-grid points
    defenses: list = field(default_factory=list)  # defense variants (expand.defense_variants)
    eval_kinds: Counter = field(default_factory=Counter)  # "fast eval" / "cnn eval" -> count

    @property
    def runs(self) -> int:
        return self.target_runs + self.shadow_runs


def _unique(items: list, key) -> list:
    seen, out = set(), []
    for item in items:
        k = json.dumps(key(item), sort_keys=True, default=str)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out


def count(sweep: Sweep) -> Counts:
    """Exact counts of `expand(sweep, ...)` (runs by role, evaluations), in bounded memory."""
    points = _unique(grid_points(RunConfig, sweep.run), key=lambda p: p)
    defenses = defense_variants(sweep)
    index = {d: i for i, d in enumerate(defenses)}
    undefended = index.get((), -1)
    attacks = [
        (attack, only, json.dumps({k: v for k, v in attack.items() if k != "adaptive"},
                                  sort_keys=True, default=str))
        for attack, only in _unique(attack_variants(sweep), key=lambda a: a)
    ]  # fmt: skip
    roles: dict[int, bool] = {}  # hash(run key) -> is a target
    audited: set[int] = set()  # target run keys with a canary audit
    canary = sweep.audit.canary.enabled
    evals: set[int] = set()
    eval_kinds: Counter = Counter()
    groups: Counter = Counter()
    for pairing, (f_i, _), (pt_i, _), seed in itertools.product(
        sweep.pairings, enumerate(sweep.features), enumerate(points), sweep.seeds
    ):
        shadow_sets: dict[int, tuple[int, ...]] = {}
        for (d_i, defense), fold in itertools.product(enumerate(defenses), sweep.folds):
            target = hash(((pairing.target,), f_i, pt_i, d_i, fold, seed))
            if not roles.get(target):
                if target not in roles:
                    groups[((pairing.target,), f_i, pt_i, d_i)] += 1
                roles[target] = True
            name = defense[0].name if defense else "none"
            if canary and any(needs_canary_audit(d.name, d.params) for d in defense):
                audited.add(target)
            for attack, only, attack_key in attacks:
                if only is not None and name not in only:
                    continue
                secagg = is_secagg(defense)  # its own attack, shadows under secagg too
                if secagg:
                    attack_key = json.dumps(secagg_settings(attack), sort_keys=True)
                adaptive = bool(attack["adaptive"] and defense) or secagg
                shadow_defense = d_i if adaptive else undefended
                if shadow_defense not in shadow_sets:
                    keys = []
                    for fold_s in sweep.shadow_folds:
                        k = hash((pairing.shadow, f_i, pt_i, shadow_defense, fold_s, seed))
                        if k not in roles:
                            roles[k] = False
                            groups[(pairing.shadow, f_i, pt_i, shadow_defense)] += 1
                        keys.append(k)
                    shadow_sets[shadow_defense] = tuple(keys)
                key = hash((target, attack_key, adaptive, shadow_sets[shadow_defense]))
                if key not in evals:
                    evals.add(key)
                    eval_kinds["fast eval" if secagg else eval_kind(attack)] += 1
    targets = sum(roles.values())
    return Counts(
        inputs=len(sweep.corpora) * len(sweep.features),
        target_runs=targets,
        shadow_runs=len(roles) - targets,
        evaluations=len(evals),
        audits=len(audited),
        groups=groups,
        points=points,
        defenses=defenses,
        eval_kinds=eval_kinds,
    )


def eval_kind(attack: dict) -> str:
    """As `EvalJob.eta_kind`: the CNN costs minutes per evaluation, the others seconds."""
    return "cnn eval" if attack["model"].get("name", "cnn") == "cnn" else "fast eval"


def group_config(
    sweep: Sweep, corpora: tuple[str, ...], fs, point: dict, defense: tuple = ()
) -> RunConfig:
    """The RunConfig of one (corpora, feature set, grid point, defense variant), its inputs as
    store refs (the defense matters to estimates: secure aggregation harvests aggregates)."""
    from sergrad.config import from_dict, to_dict

    refs = [f"{input_dir(c, sweep.corpora[c])}/{feature_name(fs)}.parquet" for c in corpora]
    data = {"features": [STORE_REF + r for r in refs], "utterances": [STORE_REF] * len(refs)}
    return from_dict(
        RunConfig, _merge(point, {"data": data, "defenses": [to_dict(d) for d in defense]})
    )


def run_groups(sweep: Sweep, counts: Counts):
    """(a representative RunConfig, number of runs like it) per (corpora, feature set, point,
    defense variant)."""
    for (corpora, f_i, pt_i, d_i), n in counts.groups.items():
        defense = counts.defenses[d_i] if d_i >= 0 else ()
        yield group_config(sweep, corpora, sweep.features[f_i], counts.points[pt_i], defense), n


def harvest_bytes(sweep: Sweep, counts: Counts, *, known: dict[str, int] | None = None) -> int:
    """Estimated harvest of the whole sweep (see `sergrad.sweep.estimate`); `known`: speaker
    counts of corpora already indexed in the store."""
    from sergrad.sweep.estimate import harvest_bytes as run_bytes

    return sum(n * run_bytes(cfg, sweep, known=known) for cfg, n in run_groups(sweep, counts))
