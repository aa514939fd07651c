"""The utterance table: adapter plumbing, validation, atomic writing, reading and counts.

Every adapter returns plain row dicts (all `schema.UTTERANCES` columns but `corpus`);
`build_table` sorts them by (speaker_id, utt_id), checks them and makes the Arrow table.

>>> row = dict(utt_id="u1", speaker_id="s1", gender="F", emotion="sad", raw_label="sad",
...            path="/x/u1.wav", sample_rate=16000, duration_s=1.5, session=None)
>>> t = build_table([row], corpus="demo")
>>> print(summarize(t))
demo: 1 utterances, 1 speakers (1 F, 0 M)
         neutral   happy     sad   angry   total
  F            0       0       1       0       1
  M            0       0       0       0       0
  total        0       0       1       0       1
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from sergrad.audio import TARGET_SR, AudioInfo, audio_info
from sergrad.corpora import speaker_meta
from sergrad.errors import ConfigError, DataError
from sergrad.problems import Problems
from sergrad.schema import EMOTIONS, GENDERS, SPEAKER_COLUMNS, UTTERANCES, table_from_rows

log = logging.getLogger("sergrad.corpora")

# CREMA-D has no sessions; speaker columns are null where a corpus does not record them
NULLABLE = frozenset({"session", *SPEAKER_COLUMNS})


# --- adapter plumbing -------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One adapter option: default and a parser taking a Python value or a CLI string."""

    default: Any
    parse: Callable[[Any], Any]
    help: str = ""


@dataclass(frozen=True)
class Adapter:
    """A corpus adapter: `rows(root, options, problems)` -> row dicts without `corpus`."""

    name: str
    rows: Callable[[Path, dict[str, Any], Problems], list[dict]]
    options: dict[str, Option] = field(default_factory=dict)
    description: str = ""
    root_is_file: bool = False  # ROOT names a file (the `table` adapter's list), not a folder

    def resolve_options(self, given: dict[str, Any] | None) -> dict[str, Any]:
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            valid = ", ".join(sorted(self.options)) or "(none)"
            raise ConfigError(
                f"unknown option(s) {unknown} for corpus {self.name!r}; valid: {valid}"
            )
        out = {}
        for key, opt in self.options.items():
            value = given.get(key, opt.default)
            try:
                out[key] = opt.parse(value)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"corpus {self.name!r} option {key}={value!r}: {exc}") from exc
        return out


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def parse_choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return text

    return parse


def parse_letters(valid: str) -> Callable[[Any], tuple[str, ...]]:
    """A list of single letters from `valid`, given as a list or a comma-separated string."""

    def parse(value: Any) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else list(value)
        letters = [str(v).strip().upper() for v in items if str(v).strip()]
        bad = [x for x in letters if x not in valid]
        if bad or not letters:
            raise ValueError(f"expected a non-empty list of letters from {', '.join(valid)}")
        return tuple(dict.fromkeys(letters))

    return parse


# --- file helpers shared by adapters ------------------------------------------------------
def is_junk(name: str) -> bool:
    """macOS resource forks (`._x`) and metadata folders are never corpus files."""
    return name.startswith("._") or name in ("__MACOSX", ".DS_Store")


def walk(root: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    """os.walk in sorted order, skipping junk and hidden folders/files."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not is_junk(d) and not d.startswith("."))
        yield Path(dirpath), dirnames, sorted(f for f in filenames if not is_junk(f))


def find_unique(root: Path, names: tuple[str, ...], *, is_dir: bool, what: str) -> Path:
    """The one file/folder under `root` named one of `names`; DataError if none or several."""
    found = []
    for dirpath, dirnames, filenames in walk(root):
        found += [dirpath / n for n in (dirnames if is_dir else filenames) if n in names]
    spelled = " or ".join(names)
    if not found:
        raise DataError(f"{what}: no {spelled} found anywhere under {root}")
    if len(found) > 1:
        listed = ", ".join(str(p) for p in found)
        raise DataError(f"{what}: several {spelled} under {root} ({listed}); point ROOT at one")
    return found[0]


def read_text(path: Path, what: str = "label file") -> str:
    """A corpus text file as str (UTF-8 with or without BOM, else latin-1)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what} ({exc})") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def utterance_row(
    *, utt_id: str, speaker_id: str, gender: str, emotion: str, raw_label: str,
    wav: Path, info: AudioInfo, session: str | None, speaker: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One row of the utterance table (schema.UTTERANCES) for an indexed audio file;
    `speaker` holds the speaker columns the corpus records (schema.SPEAKER_COLUMNS)."""
    return dict(
        utt_id=utt_id, speaker_id=speaker_id, gender=gender, emotion=emotion,
        raw_label=raw_label, path=str(wav), sample_rate=info.sample_rate,
        duration_s=info.duration_s, session=session, **(speaker or {}),
    )  # fmt: skip


def probe(path: Path, problems: Problems, *, expected_sr: int | None) -> AudioInfo | None:
    """Audio info, or None after recording why the file is unusable."""
    if not path.is_file():
        problems.add(str(path), "audio file missing")
        return None
    try:
        info = audio_info(path)
    except DataError as exc:
        problems.add(str(path), str(exc).removeprefix(f"{path}: "))
        return None
    if expected_sr is not None and info.sample_rate != expected_sr:
        problems.add(str(path), f"sample rate {info.sample_rate} Hz, expected {expected_sr} Hz")
        return None
    return info


def progress(items: list, desc: str) -> Iterator:
    """A tqdm bar on stderr (hidden when stderr is not a terminal)."""
    return iter(tqdm(items, desc=desc, unit="item", file=sys.stderr, disable=None, leave=False))


def log_kept(corpus: str, kept: int, dropped: Counter) -> None:
    """One log line: how many utterances were kept and why the others were not."""
    why = ", ".join(f"{reason} {n}" for reason, n in sorted(dropped.items())) or "none"
    log.info("%s: kept %d utterance(s); not kept: %s", corpus, kept, why)


# --- the table ----------------------------------------------------------------------------
SPEAKER_EXTRA = "speaker_extra"  # optional row key: {column: value} describing the speaker


def build_table(rows: list[dict], *, corpus: str) -> pa.Table:
    """Rows (without `corpus`) -> validated table sorted by (speaker_id, utt_id); a row's
    `speaker_extra` dict goes to the table's speaker metadata (speaker_meta.py); its
    age, race, ethnicity and language also fill the schema's speaker columns."""
    rows = [_promote_speaker_columns(r, corpus) for r in rows]
    extra = {r["speaker_id"]: r[SPEAKER_EXTRA] for r in rows if r.get(SPEAKER_EXTRA)}
    full = [{**{k: v for k, v in row.items() if k != SPEAKER_EXTRA}, "corpus": corpus}
            for row in rows]  # fmt: skip
    full.sort(key=lambda r: (r["speaker_id"], r["utt_id"]))
    table = speaker_meta.attach(table_from_rows(full, UTTERANCES), extra)
    validate(table, where=f"corpus {corpus!r}")
    return table


def _promote_speaker_columns(row: dict, corpus: str) -> dict:
    if not row.get(SPEAKER_EXTRA):
        return row
    from sergrad.corpora.demographics import promote

    where = f"corpus {corpus!r} speaker {row['speaker_id']!r}"
    columns, _ = promote(row[SPEAKER_EXTRA], where=where)  # metadata keeps them as written
    return {**row, **columns}


def validate(table: pa.Table, *, where: str) -> None:
    """DataError (naming `where`) unless `table` has the utterance schema and sane values."""
    if not table.schema.remove_metadata().equals(UTTERANCES):
        raise DataError(f"{where}: columns {table.schema.names}; expected {UTTERANCES.names}")
    for name in UTTERANCES.names:
        if name not in NULLABLE and table[name].null_count:
            raise DataError(f"{where}: column {name!r} has {table[name].null_count} null(s)")
    cols = table.select(["utt_id", "corpus", "gender", "emotion", "sample_rate", "duration_s"])
    d = cols.to_pydict()
    for col, valid in (("gender", GENDERS), ("emotion", EMOTIONS)):
        bad = sorted(set(d[col]) - set(valid))
        if bad:
            raise DataError(f"{where}: {col} values {bad} not in {list(valid)}")
    if any(sr <= 0 for sr in d["sample_rate"]) or any(not t > 0 for t in d["duration_s"]):
        raise DataError(f"{where}: sample_rate and duration_s must be positive")
    keys = Counter(zip(d["corpus"], d["utt_id"]))
    dup = sorted(k[1] for k, n in keys.items() if n > 1)
    if dup:
        raise DataError(f"{where}: duplicate utt_id(s) {dup[:5]}")
    validate_speaker_columns(table, where=where)


def validate_speaker_columns(table: pa.Table, *, where: str) -> None:
    """Each speaker column holds one value per (corpus, speaker); ages lie in 0-120."""
    d = table.select(["corpus", "speaker_id", *SPEAKER_COLUMNS]).to_pydict()
    ages = [a for a in d["age"] if a is not None]
    if any(not 0.0 <= a <= 120.0 for a in ages):
        raise DataError(f"{where}: age values outside 0-120: {sorted(set(ages))[:5]}")
    keys = list(zip(d["corpus"], d["speaker_id"]))
    for col in SPEAKER_COLUMNS:
        seen: dict[tuple[str, str], Any] = {}
        for key, value in zip(keys, d[col]):
            if seen.setdefault(key, value) != value:
                raise DataError(
                    f"{where}: speaker {key[1]!r} has several {col} values "
                    f"({seen[key]!r}, {value!r}); a speaker column is constant per speaker"
                )


def write_utterances(table: pa.Table, path: str | os.PathLike) -> Path:
    """Validate and write atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    validate(table, where=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_utterances(path: str | os.PathLike) -> pa.Table:
    """Read and validate an utterance table; DataError naming the file if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: utterance table not found")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
    for col in SPEAKER_COLUMNS:  # tables written before speaker columns existed
        if col not in table.schema.names:
            table = table.append_column(col, pa.nulls(table.num_rows, UTTERANCES.field(col).type))
    missing = [n for n in UTTERANCES.names if n not in table.schema.names]
    extra = [n for n in table.schema.names if n not in UTTERANCES.names]
    if missing or extra:
        raise DataError(
            f"{path}: not an utterance table (missing columns {missing}, unexpected {extra})"
        )
    try:
        table = speaker_meta.keep_metadata(table, table.select(UTTERANCES.names).cast(UTTERANCES))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"{path}: column types do not match the utterance schema ({exc})") from exc
    validate(table, where=str(path))
    return table


def summarize(table: pa.Table) -> str:
    """Per corpus: utterances and speakers by gender, and a gender x emotion count grid."""
    d = table.select(["corpus", "speaker_id", "gender", "emotion"]).to_pydict()
    lines = []
    for corpus in sorted(set(d["corpus"])):
        idx = [i for i, c in enumerate(d["corpus"]) if c == corpus]
        speakers = {d["speaker_id"][i]: d["gender"][i] for i in idx}
        by_g = Counter(speakers.values())
        cells = Counter((d["gender"][i], d["emotion"][i]) for i in idx)
        lines.append(
            f"{corpus}: {len(idx)} utterances, {len(speakers)} speakers "
            f"({by_g['F']} F, {by_g['M']} M)"
        )
        lines.append(" " * 8 + "".join(f"{e:>8}" for e in (*EMOTIONS, "total")))
        for g in GENDERS:
            row = [cells[(g, e)] for e in EMOTIONS]
            lines.append(f"  {g:<6}" + "".join(f"{n:>8}" for n in (*row, sum(row))))
        totals = [sum(cells[(g, e)] for g in GENDERS) for e in EMOTIONS]
        lines.append("  total " + "".join(f"{n:>8}" for n in (*totals, sum(totals))))
        rates = Counter(table["sample_rate"].to_pylist()[i] for i in idx)
        other = sum(n for sr, n in rates.items() if sr != TARGET_SR)
        if other:
            by_rate = ", ".join(f"{n} at {sr} Hz" for sr, n in sorted(rates.items()))
            lines.append(f"  sample rates: {by_rate}; {other} file(s) resampled to "
                         f"{TARGET_SR} Hz when features are extracted")  # fmt: skip
    extra = speaker_meta.speaker_columns(table)
    if extra.num_columns > 1:
        names = ", ".join(extra.column_names[1:])
        lines.append(f"speaker columns kept (speaker_columns(table)): {names}")
    return "\n".join(lines) if lines else "no utterances"
