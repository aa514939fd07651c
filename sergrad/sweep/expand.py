"""Expand a validated `Sweep` into FL run configs and attack evaluation configs.

- Target runs: each pairing's private corpus x feature set x run-grid point x in-loop
  defense x target fold x seed.
- Shadow runs: the pairing's shadow corpora concatenated, the same FL hyper-parameters,
  every shadow fold, the same seed; undefended for non-adaptive attackers, with the
  target's defense for adaptive ones.
- Evaluations: target run x attack-grid point x attack model x post-hoc defense x adaptive
  flag, each naming its target run and its shadow runs (all shadow folds of the same seed).
- Under the `secure_aggregation` defense: one `SecAggEvalJob` per target run and attack
  setting (sergrad.sweep.secagg_jobs), its shadow runs under the same secure aggregation.
- Canary audits (`audit.canary.enabled`, default on): one per target run whose in-loop
  defense is dp_sgd or central user_dp, i.e. per target corpus x feature set x run-grid point
  (algorithm, rounds, ...) x defense level x fold x seed. The granularity is the target run
  because the mechanism (the worst client's steps and sampling rate, the client rate) depends
  on the fold's partition and the seed's client sampling; analysis groups them by cell.

Runs are deduplicated by run id (content hash) and evaluations by eval id, so shadow runs
shared by many evaluations (or pairings) are counted and run once.
"""

from __future__ import annotations

import dataclasses
import itertools
import typing
from dataclasses import dataclass
from typing import Any

from sergrad.attack.config import AttackConfig, AttackModelConfig, PostHocConfig
from sergrad.attack.secagg import SecAggAttackConfig
from sergrad.audit.mechanism import needs_canary_audit
from sergrad.config import content_hash, from_dict, type_hints
from sergrad.fl.config import DefenseConfig, RunConfig
from sergrad.store import STORE_REF, join_uri
from sergrad.sweep.devices import default_device
from sergrad.sweep.jobs import (
    AuditJob,
    EvalJob,
    RunJob,
    make_audit_job,
    make_eval_job,
    make_run_job,
)
from sergrad.sweep.schema import CorpusSpec, FeatureSpec, Sweep, grid_values, is_grid
from sergrad.sweep.secagg_jobs import is_secagg, make_secagg_job, secagg_settings


@dataclass(frozen=True)
class InputSpec:
    """One corpus x feature set the inputs stage must materialise in the store."""

    corpus: str
    spec: CorpusSpec
    features: FeatureSpec
    utterances_uri: str
    features_uri: str
    utterances_ref: str  # `store:inputs/...`: what run configs hold (no store location, so a
    features_ref: str  # moved or copied store keeps its run ids and resumes without reruns)


@dataclass(frozen=True)
class Plan:
    inputs: tuple[InputSpec, ...]
    runs: tuple[RunJob, ...]
    evals: tuple[EvalJob, ...]  # and SecAggEvalJob
    audits: tuple[AuditJob, ...] = ()


# --- grids ---------------------------------------------------------------------------------
def _params_points(params: dict) -> list[dict]:
    keys = list(params)
    options = [params[k]["grid"] if is_grid(params[k]) else [params[k]] for k in keys]
    return [dict(zip(keys, combo)) for combo in itertools.product(*options)]


def grid_points(cls: type, data: dict) -> list[dict]:
    """Every combination of the grids in `data` (a mapping validated against `cls`).

    >>> from sergrad.fl.config import AlgoConfig
    >>> grid_points(AlgoConfig, {"lr": [0.1, 0.2], "name": {"grid": ["fedsgd"]}})
    [{'lr': 0.1, 'name': 'fedsgd'}, {'lr': 0.2, 'name': 'fedsgd'}]
    """
    hints = type_hints(cls)
    keys, options = list(data), []
    for key in keys:
        tp, value = hints[key], data[key]
        alts = grid_values(value, tp)
        opts: list[Any] = []
        for alt in alts if alts is not None else [value]:
            if isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(alt, dict):
                opts.extend(grid_points(tp, alt))
            elif isinstance(alt, dict) and (tp is dict or typing.get_origin(tp) is dict):
                opts.extend(_params_points(alt))
            else:
                opts.append(alt)
        options.append(opts)
    return [dict(zip(keys, combo)) for combo in itertools.product(*options)]


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


# --- store locations of inputs --------------------------------------------------------------
def input_dir(corpus: str, spec: CorpusSpec) -> str:
    """`inputs/<corpus>-<hash>`: the hash covers the corpus declaration and, for a synthetic
    corpus, what its generator makes of it (SYNTH_VERSION and every profile setting), so a
    store built from older synthetic corpora never reuses their stale inputs."""
    return f"inputs/{corpus}-{content_hash(_corpus_identity(corpus, spec), length=8)}"


def synth_profile(spec: CorpusSpec) -> str:
    """The synthetic profile a `kind: synth` corpus is generated with."""
    return spec.profile or "synth-studio"


def _corpus_identity(corpus: str, spec: CorpusSpec) -> Any:
    if spec.kind != "synth":
        return spec
    from sergrad.corpora.synth import PROFILES, SYNTH_VERSION, profile_digest
    from sergrad.errors import ConfigError

    name = synth_profile(spec)
    try:
        profile = PROFILES.get(name)
    except KeyError:
        raise ConfigError(
            f"corpora.{corpus}.profile: unknown synthetic profile {name!r}; "
            f"valid: {', '.join(sorted(PROFILES))}"
        ) from None
    return {"spec": spec, "synth_version": SYNTH_VERSION, "profile": profile_digest(profile)}


def feature_name(fs: FeatureSpec) -> str:
    return f"{fs.name}-{content_hash(fs, length=8)}"


def inputs_for(sweep: Sweep, store_uri: str) -> dict[tuple[str, FeatureSpec], InputSpec]:
    out = {}
    for corpus, spec in sweep.corpora.items():
        base = input_dir(corpus, spec)
        for fs in sweep.features:
            utts, feats = f"{base}/utterances.parquet", f"{base}/{feature_name(fs)}.parquet"
            out[(corpus, fs)] = InputSpec(
                corpus=corpus,
                spec=spec,
                features=fs,
                utterances_uri=join_uri(store_uri, utts),
                features_uri=join_uri(store_uri, feats),
                utterances_ref=STORE_REF + utts,
                features_ref=STORE_REF + feats,
            )
    return out


# --- expansion -----------------------------------------------------------------------------
def defense_variants(sweep: Sweep) -> list[tuple[DefenseConfig, ...]]:
    out: list[tuple[DefenseConfig, ...]] = []
    for entry in sweep.defenses:
        for point in grid_points(DefenseConfig, entry):
            d = from_dict(DefenseConfig, point)
            variant = () if d.name == "none" else (d,)
            if variant not in out:
                out.append(variant)
    return out


def attack_variants(sweep: Sweep) -> list[tuple[dict, tuple[str, ...] | None]]:
    """(attack-config mapping minus target/shadow/seed, defense-name filter) per grid point."""
    out = []
    for block in sweep.attack:
        attack = dict(block)
        models = [p for m in attack.pop("models") for p in grid_points(AttackModelConfig, m)]
        posthocs = [p for m in attack.pop("posthoc") for p in grid_points(PostHocConfig, m)]
        adaptive = attack.pop("adaptive")
        only = attack.pop("defenses", None)
        for base, model, posthoc, adapt in itertools.product(
            grid_points(AttackConfig, attack), models, posthocs, adaptive
        ):
            ph = () if posthoc.get("name", "none") == "none" else (posthoc,)
            variant = {**base, "model": model, "posthoc": ph, "adaptive": adapt}
            out.append((variant, tuple(only) if only is not None else None))
    return out


def expand(sweep: Sweep, store_uri: str) -> Plan:
    """All inputs, runs and evaluations of `sweep`, deduplicated, in a stable order."""
    inputs = inputs_for(sweep, store_uri)
    runs: dict[str, RunJob] = {}
    evals: dict[str, EvalJob] = {}
    audits: dict[str, AuditJob] = {}
    run_points = grid_points(RunConfig, sweep.run)
    defenses = defense_variants(sweep)
    attacks = attack_variants(sweep)
    device = default_device(sweep)  # cuda when resources.gpus_per_run > 0

    def add_run(role: str, corpora: tuple[str, ...], fs, point, defense, fold, seed) -> str:
        data = {
            "features": [inputs[(c, fs)].features_ref for c in corpora],
            "utterances": [inputs[(c, fs)].utterances_ref for c in corpora],
            "fold": fold,
        }
        cfg_dict = _merge(point, {"data": data, "seed": seed})
        cfg_dict.setdefault("device", device)
        cfg_dict["defenses"] = [dataclasses.asdict(d) for d in defense]
        job = make_run_job(role, "+".join(corpora), from_dict(RunConfig, cfg_dict))
        if job.id not in runs or (role == "target" and runs[job.id].role != "target"):
            runs[job.id] = job
        return job.id

    for pairing, fs, point, seed in itertools.product(
        sweep.pairings, sweep.features, run_points, sweep.seeds
    ):
        shadow_sets: dict[tuple, tuple[str, ...]] = {}

        def shadows(defense, pairing=pairing, fs=fs, point=point, seed=seed, cache=shadow_sets):
            if defense not in cache:
                cache[defense] = tuple(
                    add_run("shadow", pairing.shadow, fs, point, defense, f, seed)
                    for f in sweep.shadow_folds
                )
            return cache[defense]

        for defense, fold in itertools.product(defenses, sweep.folds):
            target = add_run("target", (pairing.target,), fs, point, defense, fold, seed)
            defense_name = defense[0].name if defense else "none"
            canary = sweep.audit.canary
            if canary.enabled and any(needs_canary_audit(d.name, d.params) for d in defense):
                job = make_audit_job(pairing.target, runs[target], canary)
                audits.setdefault(job.id, job)
            if is_secagg(defense):  # no individual updates: the aggregate attacks only
                for attack, only in attacks:
                    if only is None or defense_name in only:
                        cfg = SecAggAttackConfig(target_run=target, seed=seed,
                                                 shadow_runs=shadows(defense),
                                                 **secagg_settings(attack))  # fmt: skip
                        job = make_secagg_job(pairing.target, cfg)
                        evals.setdefault(job.id, job)
                continue
            for attack, only in attacks:
                if only is not None and defense_name not in only:
                    continue
                adaptive = attack["adaptive"] and bool(defense)
                cfg = from_dict(
                    AttackConfig,
                    {
                        "device": device,
                        **attack,
                        "adaptive": adaptive,
                        "target_run": target,
                        "shadow_runs": list(shadows(defense if adaptive else ())),
                        "seed": seed,
                    },
                )
                job = make_eval_job(pairing.target, cfg)
                evals.setdefault(job.id, job)
    ordered_runs = sorted(runs.values(), key=lambda r: r.role != "shadow")  # shadows first
    return Plan(tuple(inputs.values()), tuple(ordered_runs), tuple(evals.values()),
                tuple(audits.values()))  # fmt: skip
