"""The sweep YAML schema: nested frozen dataclasses, validated with YAML line numbers.

YAML keys equal field names. An unknown key or a bad value raises ConfigError naming the
file, the line, the key and (for unknown keys) the valid keys. Two sections are grids over
existing configs and are validated against them field by field:

- ``run``: any `sergrad.fl.config.RunConfig` field except the ones the sweep sets itself
  (data.features, data.utterances, data.fold, defenses, seed);
- ``attack``: one block or a list of blocks. A block takes any
  `sergrad.attack.config.AttackConfig` field except target_run, shadow_runs, model,
  posthoc, adaptive and seed, plus ``models`` (a list of AttackModelConfig), ``posthoc``
  (a list of PostHocConfig alternatives), ``adaptive`` and ``defenses`` (the in-loop
  defense names the block applies to; default all). Blocks let a costly attack (the CNN)
  run on a subset of the grid while a fast attack covers all of it.

``audit`` (not a grid): `sergrad.audit.config.AuditConfig`, e.g.
``audit: {canary: {enabled: true, n_canaries: 200}}``: a canary audit per target run of a
dp_sgd or central user_dp defense (on by default).

Grid syntax, for any field: ``{grid: [v1, v2]}``; a plain list is a grid too, except for
fields that are themselves lists (``hidden: [256, 128]`` is one value, so write
``hidden: {grid: [[256, 128], [512]]}``). Inside free-form ``params`` mappings only the
explicit ``{grid: [...]}`` form is a grid.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "s.yaml"
>>> _ = p.write_text("corpora:\\n  a: {kind: synth}\\nrun:\\n  algo: {lrr: 1}\\n")
>>> load_sweep(p)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
sergrad.errors.ConfigError: ...s.yaml:4: unknown key 'run.algo.lrr'; valid keys: ...
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sergrad.attack.config import MODEL_NAMES, AttackConfig, AttackModelConfig, PostHocConfig
from sergrad.audit.config import AuditConfig
from sergrad.config import from_dict, type_hints
from sergrad.errors import ConfigError
from sergrad.fl.config import DefenseConfig, RunConfig
from sergrad.fl.limits import LIMITS
from sergrad.yaml_load import compose_yaml

CORPUS_KINDS: tuple[str, ...] = ("synth", "iemocap", "crema-d", "msp-improv", "table")
RUN_SET_BY_SWEEP = ("data.features", "data.utterances", "data.fold", "defenses", "seed")
ATTACK_SET_BY_SWEEP = ("target_run", "shadow_runs", "model", "seed")
# Names that become store paths (sweep, corpus, feature set): one path component, no "+"
# (it joins concatenated shadow corpora), never "." / ".." or a hidden name.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ENV_REF = re.compile(r"\$\{(\w+)\}")


@dataclass(frozen=True)
class CorpusSpec:
    kind: str = "synth"  # synth | iemocap | crema-d | msp-improv
    root: str = ""  # dataset root (real corpora); ${ENV} references are expanded at run time
    profile: str = ""  # synth: profile (defaults to the corpus name when it is a profile)
    speakers: int = 0  # synth: number of speakers, 0 = profile default
    seed: int = 0  # synth: generator seed
    options: dict = field(default_factory=dict)  # passed to the corpus indexer

    def __post_init__(self) -> None:
        if self.kind not in CORPUS_KINDS:
            raise ConfigError(f"kind {self.kind!r} is not one of {', '.join(CORPUS_KINDS)}")
        if self.kind != "synth" and not self.root:
            raise ConfigError(f"corpus of kind {self.kind!r} needs a root")

    def __hash__(self) -> int:
        return hash((self.kind, self.root, self.profile, self.speakers, self.seed))


@dataclass(frozen=True)
class PairingSpec:
    target: str = ""  # private corpus (the attacked clients)
    shadow: tuple[str, ...] = ()  # attacker's public corpora, concatenated


@dataclass(frozen=True)
class FeatureSpec:
    name: str = ""  # feature-set registry name
    params: dict = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.name, tuple(sorted(map(str, self.params.items())))))


@dataclass(frozen=True)
class ResourcesSpec:
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0  # > 0: FL and attack trials request this many GPUs
    runs_per_trial: int = 0  # FL runs grouped in one Tune trial; 0 = automatic
    evals_per_trial: int = 0  # attack evaluations per trial; 0 = automatic
    max_retries: int = 2  # a job that raises is retried this often, then recorded failed
    trial_restarts: int = 3  # Tune restarts of a trial whose worker process died
    max_concurrent: int = 0  # concurrent trials; 0 = as many as the cluster's CPUs allow

    def __post_init__(self) -> None:
        if self.cpus_per_run <= 0 or self.gpus_per_run < 0:
            raise ConfigError("cpus_per_run must be > 0 and gpus_per_run >= 0")
        if min(self.runs_per_trial, self.evals_per_trial, self.max_retries) < 0:
            raise ConfigError("runs_per_trial, evals_per_trial, max_retries must be >= 0")


@dataclass(frozen=True)
class SweepFile:
    """The top level of a sweep YAML file (grid sections kept as raw mappings)."""

    name: str = "sweep"
    store: str = ""  # results store URI; `--store` overrides
    corpora: dict = field(default_factory=dict)  # name -> CorpusSpec
    pairings: Any = "loco"  # "loco" | {loco: [names]} | [{target, shadow}]
    features: tuple[dict, ...] = ({"name": "combined"},)  # FeatureSpec list
    run: dict = field(default_factory=dict)  # RunConfig fields with grids
    defenses: tuple[dict, ...] = ({"name": "none"},)  # in-loop DefenseConfig alternatives
    folds: Any = "all"  # target folds: "all" or a list
    shadow_folds: Any = "all"  # folds of each shadow run set: "all" or a list
    seeds: tuple[int, ...] = (0,)
    attack: Any = field(default_factory=dict)  # one block or a list of blocks (see docstring)
    resources: ResourcesSpec = ResourcesSpec()
    audit: AuditConfig = AuditConfig()  # canary audits of dp_sgd / central user_dp runs


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: typed sections; `run` and `attack` stay grids (see expand.py)."""

    name: str
    store: str
    corpora: dict[str, CorpusSpec]
    pairings: tuple[PairingSpec, ...]
    features: tuple[FeatureSpec, ...]
    run: dict
    defenses: tuple[dict, ...]
    folds: tuple[int, ...]
    shadow_folds: tuple[int, ...]
    seeds: tuple[int, ...]
    attack: tuple[dict, ...]  # attack blocks, each a grid (see _attack_block)
    resources: ResourcesSpec
    source: str = ""  # file it came from
    audit: AuditConfig = AuditConfig()  # sergrad.audit.config: canary audits


# --- YAML with line numbers ---------------------------------------------------------------
Path_ = tuple[Any, ...]


def _lines(node: yaml.Node, path: Path_, out: dict[Path_, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[(*path, key.value)] = key.start_mark.line + 1
            _lines(value, (*path, key.value), out)
            out[(*path, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            _lines(value, (*path, i), out)


class _Where:
    """Turns a key path into `file:line` for error messages."""

    def __init__(self, source: str, lines: dict[Path_, int]) -> None:
        self.source, self.lines = source, lines

    def __call__(self, path: Path_) -> str:
        for n in range(len(path), -1, -1):
            if tuple(path[:n]) in self.lines:
                return f"{self.source}:{self.lines[tuple(path[:n])]}"
        return self.source

    def error(self, path: Path_, message: str) -> ConfigError:
        return ConfigError(f"{self(path)}: {message}")


def _dotted(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


# --- grid-aware validation against a dataclass -------------------------------------------
def is_grid(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"grid"}


def is_list_type(tp: Any) -> bool:
    return typing.get_origin(tp) in (tuple, list)


def grid_values(value: Any, tp: Any) -> list[Any] | None:
    """The alternatives if `value` is a grid for a field of type `tp`, else None."""
    if is_grid(value):
        return list(value["grid"]) if isinstance(value["grid"], list) else None
    if isinstance(value, list) and not is_list_type(tp) and tp is not Any:
        return list(value)
    return None


def check_grid(cls: type, data: Any, path: Path_, where: _Where, *, forbidden=()) -> None:
    """Validate a mapping with grids against dataclass `cls` (keys, then every value)."""
    if not isinstance(data, dict):
        raise where.error(path, f"{_dotted(path)}: expected a mapping, got {data!r}")
    hints = type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    for key, value in data.items():
        sub = (*path, key)
        if key not in names:
            valid = ", ".join(names)
            raise where.error(sub, f"unknown key {_dotted(sub)!r}; valid keys: {valid}")
        tp = hints[key]
        dotted_rel = ".".join(str(p) for p in sub[1:])
        if dotted_rel in forbidden:
            raise where.error(sub, f"{_dotted(sub)} is set by the sweep, not in this section")
        alternatives = grid_values(value, tp)
        if is_grid(value) and alternatives is None:
            raise where.error(sub, f"{_dotted(sub)}: grid must be a list")
        if alternatives == []:
            raise where.error(sub, f"{_dotted(sub)}: empty grid (give at least one value)")
        for alt in alternatives if alternatives is not None else [value]:
            if isinstance(tp, type) and dataclasses.is_dataclass(tp):
                check_grid(tp, alt, sub, where, forbidden=forbidden)
            elif isinstance(alt, dict) and (typing.get_origin(tp) is dict or tp is dict):
                _check_params(alt, sub, where)
            else:
                try:
                    typed = getattr(from_dict(cls, {key: alt}), key)
                except ConfigError as exc:
                    raise where.error(sub, f"{_dotted(sub)}: {exc}") from None
                ok, rule = LIMITS.get((cls, key), (None, ""))
                if ok is not None and not ok(typed):
                    raise where.error(sub, f"{_dotted(sub)}: {alt!r} {rule}")


def _check_params(params: dict, path: Path_, where: _Where) -> None:
    for key, value in params.items():
        if isinstance(value, dict) and "grid" in value and not is_grid(value):
            raise where.error((*path, key), f"{_dotted((*path, key))}: grid takes no other keys")
        if is_grid(value) and not isinstance(value["grid"], list):
            raise where.error((*path, key), f"{_dotted((*path, key))}: grid must be a list")
        if is_grid(value) and not value["grid"]:
            raise where.error((*path, key), f"{_dotted((*path, key))}: empty grid")


def _strict(cls: type, data: Any, path: Path_, where: _Where):
    """from_dict with the YAML line of the offending key in the message."""
    if not isinstance(data, dict):
        raise where.error(path, f"{_dotted(path)}: expected a mapping, got {data!r}")
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    for key in data:
        if key not in names:
            sub = (*path, key)
            raise where.error(sub, f"unknown key {_dotted(sub)!r}; valid keys: {', '.join(names)}")
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        raise where.error(path, f"{_dotted(path) or 'top level'}: {exc}") from None


# --- the sweep file --------------------------------------------------------------------
def _folds(value: Any, n_folds: int, path: Path_, where: _Where) -> tuple[int, ...]:
    if value == "all":
        return tuple(range(n_folds))
    values = value if isinstance(value, list) else [value]
    if not values:
        raise where.error(path, f"{_dotted(path)}: empty list (give at least one fold, or all)")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < n_folds:
            raise where.error(path, f"{_dotted(path)}: fold {v!r} not in 0..{n_folds - 1}")
    return tuple(values)


def _pairings(value: Any, corpora: dict, where: _Where) -> tuple[PairingSpec, ...]:
    path: Path_ = ("pairings",)
    if value == "loco" or (isinstance(value, dict) and set(value) == {"loco"}):
        names = list(corpora) if value == "loco" else value["loco"]
        if not isinstance(names, list) or len(names) < 2:
            raise where.error(path, "pairings: loco needs at least two corpora")
        out = [PairingSpec(t, tuple(n for n in names if n != t)) for t in names]
    elif isinstance(value, list):
        out = [_strict(PairingSpec, v, (*path, i), where) for i, v in enumerate(value)]
    else:
        raise where.error(
            path, "pairings: expected 'loco', {loco: [...]} or a list of {target, shadow}"
        )
    for i, p in enumerate(out):
        for name in (p.target, *p.shadow):
            if name not in corpora:
                valid = ", ".join(corpora)
                raise where.error(
                    (*path, i), f"pairings: unknown corpus {name!r}; declared: {valid}"
                )
        if not p.shadow or p.target in p.shadow:
            raise where.error(
                (*path, i), f"pairings: {p.target!r} needs shadow corpora other than itself"
            )
    return tuple(out)


def _attack_block(block: Any, path: Path_, where: _Where, *, defense_names: set) -> dict:
    """One attack block: AttackConfig grid fields plus models, posthoc, adaptive, defenses."""
    if not isinstance(block, dict):
        raise where.error(path, f"{_dotted(path)}: expected a mapping, got {block!r}")
    attack = dict(block)
    models = attack.pop("models", [{"name": "cnn"}])
    posthoc = attack.pop("posthoc", [{"name": "none"}])
    adaptive = attack.pop("adaptive", [False])
    only = attack.pop("defenses", None)  # in-loop defense names this block applies to
    check_grid(AttackConfig, attack, path, where, forbidden=ATTACK_SET_BY_SWEEP)
    for key, items, cls in (
        ("models", models, AttackModelConfig),
        ("posthoc", posthoc, PostHocConfig),
    ):
        if not isinstance(items, list) or not items:
            raise where.error((*path, key), f"{_dotted((*path, key))}: expected a non-empty list")
        for i, m in enumerate(items):
            check_grid(cls, m, (*path, key, i), where)
    for i, m in enumerate(models):
        name = m.get("name", AttackModelConfig.name)
        if isinstance(name, str) and name not in MODEL_NAMES:
            at = (*path, "models", i, "name")
            raise where.error(
                at, f"{_dotted(at)}: unknown attack model {name!r}; valid: {', '.join(MODEL_NAMES)}"
            )
    adaptive = adaptive if isinstance(adaptive, list) else [adaptive]
    if not all(isinstance(a, bool) for a in adaptive):
        raise where.error((*path, "adaptive"), "adaptive: expected true/false or a list")
    if only is not None:
        if not isinstance(only, list) or not all(isinstance(n, str) for n in only):
            raise where.error((*path, "defenses"), "defenses: expected a list of defense names")
        unknown = sorted(set(only) - defense_names)
        if unknown:
            raise where.error(
                (*path, "defenses"),
                f"defenses: {unknown[0]!r} is not a defense of this sweep; "
                f"valid: {', '.join(sorted(defense_names))}",
            )
    return {**attack, "models": models, "posthoc": posthoc, "adaptive": adaptive, "defenses": only}


def parse_sweep(data: dict, *, source: str = "<sweep>", lines: dict | None = None) -> Sweep:
    """Validate a sweep mapping (as loaded from YAML) into a `Sweep`."""
    where = _Where(source, lines or {})
    _check_env(data, (), where)
    top = _strict(SweepFile, data, (), where)
    _check_name(top.name, ("name",), where, what="sweep name")
    if not top.corpora:
        raise where.error(("corpora",), "corpora: declare at least one corpus")
    for name in top.corpora:
        _check_name(name, ("corpora", name), where, what="corpus name")
    for key in ("features", "defenses", "seeds"):
        if not getattr(top, key):
            raise where.error((key,), f"{key}: empty list (give at least one)")
    corpora = {
        name: _strict(CorpusSpec, spec, ("corpora", name), where)
        for name, spec in top.corpora.items()
    }
    features = tuple(
        _strict(FeatureSpec, f, ("features", i), where) for i, f in enumerate(top.features)
    )
    for i, f in enumerate(features):
        _check_name(f.name, ("features", i, "name"), where, what="feature set name")
    check_grid(RunConfig, top.run, ("run",), where, forbidden=RUN_SET_BY_SWEEP)
    for i, d in enumerate(top.defenses):
        check_grid(DefenseConfig, d, ("defenses", i), where)
        _check_secure_aggregation(d, ("defenses", i), where)
    blocks = top.attack if isinstance(top.attack, list) else [top.attack]
    if not blocks:
        raise where.error(("attack",), "attack: expected a mapping or a non-empty list of them")
    defense_names = {d.get("name", "none") for d in top.defenses if isinstance(d, dict)}
    attacks = tuple(
        _attack_block(
            b,
            ("attack", i) if isinstance(top.attack, list) else ("attack",),
            where,
            defense_names=defense_names,
        )
        for i, b in enumerate(blocks)
    )
    _check_attributes(attacks, corpora, blocks, top.attack, where)
    n_folds = (
        top.run.get("data", {}).get("n_folds", 5) if isinstance(top.run.get("data"), dict) else 5
    )
    if not isinstance(n_folds, int):
        raise where.error(("run", "data", "n_folds"), "run.data.n_folds cannot be a grid")
    return Sweep(
        name=top.name,
        store=os.path.expandvars(top.store),  # every ${VAR} is set (checked above)
        corpora=corpora,
        pairings=_pairings(top.pairings, corpora, where),
        features=features,
        run=top.run,
        defenses=tuple(top.defenses),
        folds=_folds(top.folds, n_folds, ("folds",), where),
        shadow_folds=_folds(top.shadow_folds, n_folds, ("shadow_folds",), where),
        seeds=tuple(top.seeds),
        attack=attacks,
        resources=top.resources,
        source=source,
        audit=top.audit,
    )


def _check_secure_aggregation(entry: Any, path: Path_, where: _Where) -> None:
    """Refuse a secure_aggregation grid point now (unknown param, bad sampling, an explicit
    cohort below min_cohort), naming the key and its line. A cohort from client_fraction
    is checked when the run starts, before anything is written."""
    if not isinstance(entry, dict) or entry.get("name") != "secure_aggregation":
        return
    from sergrad.fl.secagg import SecAggSpec
    from sergrad.sweep.expand import grid_points

    for point in grid_points(DefenseConfig, entry):
        params = point.get("params", {})
        try:
            spec = SecAggSpec.from_params(params)
            if spec.cohort:
                spec.check_min_cohort(spec.cohort)
        except ConfigError as exc:
            key = "min_cohort" if "min_cohort" in str(exc) and "min_cohort" in params else None
            at = (*path, "params", key) if key else (*path, "params")
            raise where.error(at, f"{_dotted(at)}: {exc}") from None


def _check_attributes(attacks, corpora, blocks, raw, where: _Where) -> None:
    """Every attacked attribute (a grid axis) is one the sweep's corpora record."""
    from sergrad.attributes import DEFAULT_AGE_EDGES, check_attribute_for_corpora

    kinds = {name: spec.kind for name, spec in corpora.items()}
    for i, block in enumerate(attacks):
        path = ("attack", i) if isinstance(raw, list) else ("attack",)
        names = grid_values(block.get("attribute", "gender"), str) or [
            block.get("attribute", "gender")
        ]
        bins = grid_values(block.get("age_bins"), tuple[float, ...]) or [
            block.get("age_bins", DEFAULT_AGE_EDGES)
        ]
        for name in names:
            for b in bins:
                try:
                    check_attribute_for_corpora(name, b or DEFAULT_AGE_EDGES, kinds)
                except ConfigError as exc:
                    raise where.error(
                        (*path, "attribute"), f"{_dotted((*path, 'attribute'))}: {exc}"
                    ) from None


def _check_name(name: Any, path: Path_, where: _Where, *, what: str) -> None:
    if not isinstance(name, str) or not NAME.match(name):
        raise where.error(
            path,
            f"{what} {name!r} becomes a store path: use letters, digits and . _ - only, "
            "starting with a letter or digit",
        )


def _check_env(value: Any, path: Path_, where: _Where) -> None:
    """Every `${VAR}` anywhere in the file must be set now (not mid-run after other work)."""
    if isinstance(value, dict):
        for key, sub in value.items():
            _check_env(sub, (*path, key), where)
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            _check_env(sub, (*path, i), where)
    elif isinstance(value, str):
        for var in ENV_REF.findall(value):
            if var not in os.environ:
                raise where.error(
                    path, f"{_dotted(path)}: environment variable {var} is not set (in {value!r})"
                )


def load_sweep(path: str | os.PathLike) -> Sweep:
    """Read and validate a sweep YAML file; errors carry `file:line`."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such file")
    data, node = compose_yaml(path.read_text(), source=path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    lines: dict[Path_, int] = {}
    _lines(node, (), lines)
    return parse_sweep(data, source=str(path), lines=lines)
