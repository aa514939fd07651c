"""Speaker attributes an attack can target, declared as data (not hard-coded to gender).

An `Attribute` is binary, categorical or numeric; it reads one speaker column of the
utterance table (`schema.UTTERANCES`: gender, age, race, ethnicity, language, or any extra
speaker column a `table` corpus keeps) and may derive its label from it (`age_group` bins
`age` with edges from the config). `ATTRIBUTES` is the registry; `resolve_attribute` also
accepts any speaker column present in the data (as categorical). `check_populations`
verifies that shadow and target populations both hold every class and reports per-class
counts; a missing class is a `MissingClassError` (a DataError: the CLI exits 2).

>>> age_group = resolve_attribute(AttributeConfig(name="age_group"))
>>> age_group.kind, age_group.classes
('categorical', ('<30', '30-49', '>=50'))
>>> age_group.labels([18, 30, 49.5, 50, None])
['<30', '30-49', '30-49', '>=50', None]
>>> report = check_populations(
...     age_group,
...     shadow=("synth-studio", age_group.labels([25, 35, 60, 70])),
...     target=("synth-phone", age_group.labels([28, 45, 77])),
... )
>>> report.counts["shadow"]
{'<30': 1, '30-49': 1, '>=50': 2}
>>> check_populations(age_group, shadow=("a", ["<30", "30-49", ">=50"]), target=("b", [">=50"]))
Traceback (most recent call last):
...
sergrad.attributes.MissingClassError: attribute 'age_group': target corpus 'b' has no speaker of class '<30' (counts: <30 0, 30-49 0, >=50 1); shadow and target populations must both contain every class
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from sergrad.errors import ConfigError, DataError
from sergrad.registry import Registry
from sergrad.schema import GENDERS, SPEAKER_COLUMNS

KINDS: tuple[str, ...] = ("binary", "categorical", "numeric")
DEFAULT_AGE_EDGES: tuple[float, ...] = (30.0, 50.0)


class MissingClassError(DataError):
    """Shadow or target population lacks a class of the attacked attribute."""


def _num(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class AgeBins:
    """Age groups from increasing edges: (30, 50) -> '<30', '30-49', '>=50' (left-closed)."""

    edges: tuple[float, ...] = DEFAULT_AGE_EDGES

    def __post_init__(self) -> None:
        edges = tuple(float(e) for e in self.edges)
        if not edges or any(not 0 < e < 120 for e in edges):
            raise ConfigError(f"age_bins {list(self.edges)}: need 1+ edges between 0 and 120")
        if any(b <= a for a, b in zip(edges, edges[1:])):
            raise ConfigError(f"age_bins {list(self.edges)}: edges must increase strictly")
        object.__setattr__(self, "edges", edges)

    @property
    def labels(self) -> tuple[str, ...]:
        e = self.edges
        inner = []
        for lo, hi in zip(e, e[1:]):
            top = _num(hi - 1) if float(hi).is_integer() and float(lo).is_integer() else f"<{hi:g}"
            inner.append(f"{_num(lo)}-{top}")
        return (f"<{_num(e[0])}", *inner, f">={_num(e[-1])}")

    def label(self, age: float | None) -> str | None:
        if age is None or (isinstance(age, float) and math.isnan(age)):
            return None
        return self.labels[sum(float(age) >= e for e in self.edges)]


@dataclass(frozen=True)
class AttributeConfig:
    """The attacked attribute (config section `attribute`); YAML keys equal field names."""

    name: str = "gender"
    age_bins: tuple[float, ...] = DEFAULT_AGE_EDGES

    def __post_init__(self) -> None:  # bad bins fail when the config is read
        object.__setattr__(self, "age_bins", AgeBins(tuple(self.age_bins)).edges)


@dataclass(frozen=True)
class Attribute:
    """One speaker attribute: where its value comes from and what kind of target it is."""

    name: str
    kind: str  # binary | categorical | numeric
    column: str  # the speaker column it reads
    classes: tuple[str, ...] | None = None  # declared class order; None: the values found
    derive: Callable[[Any], Any] | None = field(default=None, compare=False)
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"attribute {self.name!r}: kind {self.kind!r} not in {KINDS}")
        if self.kind == "binary" and self.classes is not None and len(self.classes) != 2:
            raise ConfigError(f"attribute {self.name!r}: binary needs 2 classes")

    def labels(self, values: Sequence[Any]) -> list[Any]:
        """Column values -> labels (str classes, float for numeric); None stays None."""
        out = []
        for v in values:
            if v is None or (isinstance(v, float) and math.isnan(v)):
                out.append(None)
            elif self.derive is not None:
                out.append(self.derive(v))
            else:
                out.append(float(v) if self.kind == "numeric" else str(v))
        return out


ATTRIBUTES: Registry[Callable[[AttributeConfig], Attribute]] = Registry("speaker attribute")


def _declare(attr: Attribute) -> None:
    ATTRIBUTES.register(attr.name)(lambda cfg, a=attr: a)


_declare(Attribute("gender", "binary", "gender", GENDERS, description="F / M"))
_declare(Attribute("age", "numeric", "age", description="age in years"))
_declare(Attribute("race", "categorical", "race", description="as the corpus records it"))
_declare(Attribute("ethnicity", "categorical", "ethnicity", description="e.g. Hispanic"))
_declare(Attribute("language", "categorical", "language", description="L1 / L2 background"))


@ATTRIBUTES.register("age_group")
def _age_group(cfg: AttributeConfig) -> Attribute:
    bins = AgeBins(tuple(cfg.age_bins))
    return Attribute(
        "age_group", "categorical", "age", bins.labels, derive=bins.label,
        description=f"age binned at {', '.join(_num(e) for e in bins.edges)}",
    )  # fmt: skip


def resolve_attribute(config: AttributeConfig | str, *, columns: Sequence[str] = ()) -> Attribute:
    """The declared attribute `config.name`, or a categorical one over a speaker column.

    `columns`: the speaker columns the data holds (e.g. `speaker_table(t).column_names`).
    """
    cfg = AttributeConfig(name=config) if isinstance(config, str) else config
    if cfg.name in ATTRIBUTES:
        return ATTRIBUTES.get(cfg.name)(cfg)
    if cfg.name in columns and cfg.name not in ("corpus", "speaker_id"):
        return Attribute(cfg.name, "categorical", cfg.name, description="speaker column")
    extra = sorted(set(columns) - {"corpus", "speaker_id", *ATTRIBUTES.names()})
    raise ConfigError(
        f"unknown attribute {cfg.name!r}; declared: {', '.join(ATTRIBUTES.names())}"
        + (f"; speaker columns of the data: {', '.join(extra)}" if extra else "")
    )


# Speaker columns each corpus kind records (schema.UTTERANCES); a `table` corpus may keep any.
KIND_COLUMNS: dict[str, tuple[str, ...] | None] = {
    "synth": ("gender", "age", "language"),
    "crema-d": ("gender", "age", "race", "ethnicity"),
    "iemocap": ("gender",),
    "msp-improv": ("gender",),
    "table": None,  # gender plus any speaker column of the user's table
}


def check_attribute_for_corpora(
    name: str, age_bins: Sequence[float], kinds: dict[str, str]
) -> None:
    """Plan-time check of an attacked attribute against the sweep's corpora ({name: kind}):
    ConfigError naming the attribute and the corpus whose kind does not record its column
    (IEMOCAP and MSP-Improv give gender only), or bad age bins."""
    cfg = AttributeConfig(name=name, age_bins=tuple(age_bins))
    if name in ATTRIBUTES:
        column = ATTRIBUTES.get(name)(cfg).column
    elif all(KIND_COLUMNS.get(k, ()) is not None for k in kinds.values()):
        raise ConfigError(
            f"unknown attribute {name!r}; declared: {', '.join(ATTRIBUTES.names())} (any other "
            "speaker column needs a corpus of kind 'table')"
        )
    else:
        column = name
    for corpus, kind in sorted(kinds.items()):
        cols = KIND_COLUMNS.get(kind, ())
        if cols is not None and column not in cols:
            raise ConfigError(
                f"attribute {name!r}: corpus {corpus!r} (kind {kind}) records no {column!r} "
                f"speaker column (it records {', '.join(cols)})"
            )


def speaker_table(utterances: pa.Table) -> pa.Table:
    """One row per (corpus, speaker): gender, the schema's speaker columns and any extra
    speaker column kept in the table metadata (a `table` corpus's), sorted by speaker."""
    from sergrad.corpora.speaker_meta import speaker_columns as extra_columns

    cols = ["corpus", "speaker_id", "gender", *SPEAKER_COLUMNS]
    d = utterances.select(cols).to_pydict()
    first: dict[tuple[str, str], int] = {}
    for i, key in enumerate(zip(d["corpus"], d["speaker_id"])):
        first.setdefault(key, i)
    order = sorted(first)
    table = pa.table({c: [d[c][first[k]] for k in order] for c in cols}).cast(
        pa.schema([utterances.schema.field(c) for c in cols])
    )
    extra = extra_columns(utterances)
    for name in extra.column_names[1:]:
        if name in table.column_names:
            continue
        by_id = dict(zip(extra["speaker_id"].to_pylist(), extra[name].to_pylist()))
        table = table.append_column(name, pa.array([by_id.get(k[1]) for k in order], pa.string()))
    return table


@dataclass(frozen=True)
class PopulationReport:
    """Per-class counts of both populations (numeric: n, min, max); the classes checked."""

    attribute: str
    kind: str
    classes: tuple[str, ...]  # empty for numeric
    counts: dict[str, dict[str, float]]  # "shadow" | "target" -> class (or statistic) -> n
    unknown: dict[str, int]  # units without a value, per population
    corpora: dict[str, str]

    def lines(self) -> list[str]:
        out = []
        for pop in ("shadow", "target"):
            cells = ", ".join(f"{k} {_num(v)}" for k, v in self.counts[pop].items())
            out.append(
                f"{self.attribute} {pop} ({self.corpora[pop]}): {cells}; "
                f"unknown {self.unknown[pop]}"
            )
        return out


def check_populations(
    attribute: Attribute,
    *,
    shadow: tuple[str, Sequence[Any]],
    target: tuple[str, Sequence[Any]],
    unit: str = "speaker",
) -> PopulationReport:
    """Per-class counts of shadow and target labels (one per `unit`); MissingClassError
    naming the attribute, the corpus and the class when a population lacks a class.

    Classes are the attribute's declared ones, else every value either population holds.
    A numeric attribute needs two distinct known values in each population.
    """
    pops = {"shadow": shadow, "target": target}
    known = {p: [v for v in labels if v is not None] for p, (_, labels) in pops.items()}
    unknown = {p: len(labels) - len(known[p]) for p, (_, labels) in pops.items()}
    corpora = {p: str(c) for p, (c, _) in pops.items()}
    if attribute.kind == "numeric":
        counts: dict[str, dict[str, float]] = {}
        for pop, vals in known.items():
            if len(set(vals)) < 2:
                raise MissingClassError(
                    f"attribute {attribute.name!r}: {pop} corpus {corpora[pop]!r} has "
                    f"{len(set(vals))} distinct known value(s) over {len(vals)} {unit}(s); "
                    "a numeric attribute needs at least 2 in each population"
                )
            counts[pop] = {"n": len(vals), "min": min(vals), "max": max(vals)}
        return PopulationReport(attribute.name, attribute.kind, (), counts, unknown, corpora)
    classes = attribute.classes or tuple(sorted({*known["shadow"], *known["target"]}))
    counts = {}
    for pop, vals in known.items():
        tally = Counter(vals)
        stray = sorted(set(tally) - set(classes))
        if stray:
            raise DataError(
                f"attribute {attribute.name!r}: {pop} corpus {corpora[pop]!r} has values "
                f"{stray} outside the declared classes {list(classes)}"
            )
        counts[pop] = {c: tally[c] for c in classes}
    for pop in ("shadow", "target"):
        absent = [c for c in classes if counts[pop][c] == 0]
        if absent or len(classes) < 2:
            cells = ", ".join(f"{c} {counts[pop][c]}" for c in classes)
            missing = absent[0] if absent else "(a second class)"
            raise MissingClassError(
                f"attribute {attribute.name!r}: {pop} corpus {corpora[pop]!r} has no {unit} "
                f"of class {missing!r} (counts: {cells}); shadow and target populations "
                "must both contain every class"
            )
    return PopulationReport(attribute.name, attribute.kind, classes, counts, unknown, corpora)
