"""Speaker attributes from a corpus's demographics: CREMA-D's VideoDemographics.csv.

`VideoDemographics.csv` has one row per actor: `ActorID,Age,Sex,Race,Ethnicity` (the real
release; values such as `1001,51,Male,Caucasian,Not Hispanic`). The synthetic corpora write
the same file plus a `Language` column (`L1` | `L2`). `read_demographics` returns one
`Person` per actor; `speaker_columns(person)` gives the utterance-table speaker columns
(`schema.SPEAKER_COLUMNS`). Nothing is invented: an empty or `Unknown` value, or a column
the file does not have, is null; an unreadable age is null and logged.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "VideoDemographics.csv"
>>> _ = path.write_text('"ActorID","Age","Sex","Race","Ethnicity"\\n1001,51,"Male","Caucasian",'
...                     '"Not Hispanic"\\n1002,,"Female","Unknown","Hispanic"\\n')
>>> people = read_demographics(path)
>>> speaker_columns(people["1001"])
{'age': 51.0, 'race': 'Caucasian', 'ethnicity': 'Not Hispanic', 'language': None}
>>> speaker_columns(people["1002"])
{'age': None, 'race': None, 'ethnicity': 'Hispanic', 'language': None}
"""

from __future__ import annotations

import csv
import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sergrad.errors import DataError
from sergrad.schema import SPEAKER_COLUMNS

log = logging.getLogger("sergrad.corpora")

MISSING = frozenset({"", "unknown", "na", "n/a", "nan", "none", "null"})
AGE_RANGE = (0.0, 120.0)
# utterance-table column -> VideoDemographics.csv header (case-insensitive)
CSV_COLUMNS: dict[str, str] = {
    "age": "Age",
    "race": "Race",
    "ethnicity": "Ethnicity",
    "language": "Language",
}


@dataclass(frozen=True)
class Person:
    actor_id: str
    sex: str  # as written (Male / Female expected); "" when absent
    age: float | None
    race: str | None
    ethnicity: str | None
    language: str | None


def clean(value: str | None) -> str | None:
    """A demographic value as written, or None when empty / Unknown / NA."""
    text = (value or "").strip()
    return None if text.lower() in MISSING else text


def parse_age(value: Any, *, where: str) -> float | None:
    """Age in years from a number or text; None when missing; ValueError naming `where`."""
    if value is None or (isinstance(value, str) and clean(value) is None):
        return None
    try:
        age = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: age {value!r} is not a number") from None
    if math.isnan(age):
        return None
    if not AGE_RANGE[0] <= age <= AGE_RANGE[1]:
        raise ValueError(f"{where}: age {age:g} outside {AGE_RANGE[0]:g}-{AGE_RANGE[1]:g}")
    return age


def read_demographics(path: Path) -> dict[str, Person]:
    """actor id -> Person; DataError naming the file when ActorID or Sex is missing."""
    from sergrad.corpora.table import read_text  # lazily: table imports this module

    reader = csv.DictReader(io.StringIO(read_text(path, "demographics")))
    header = {(h or "").strip().lower(): h for h in reader.fieldnames or []}
    missing = [c for c in ("ActorID", "Sex") if c.lower() not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; header is {list(header)}")
    people: dict[str, Person] = {}
    for row in reader:

        def get(col: str, row: dict = row) -> str | None:
            return clean(row.get(header.get(col.lower(), ""), ""))

        actor = get("ActorID")
        if actor is None:
            continue
        try:
            age = parse_age(get("Age"), where=f"{path} actor {actor}")
        except ValueError as exc:
            log.warning("%s; age left empty", exc)
            age = None
        people[actor] = Person(
            actor_id=actor,
            sex=get("Sex") or "",
            age=age,
            race=get("Race"),
            ethnicity=get("Ethnicity"),
            language=get("Language"),
        )
    return people


def speaker_columns(person: Person | None) -> dict[str, Any]:
    """The utterance table's speaker columns for `person` (all None for an unknown actor)."""
    return {col: None if person is None else getattr(person, col) for col in SPEAKER_COLUMNS}


def promote(extra: dict[str, Any], *, where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a row's extra speaker values into (schema speaker columns, the rest).

    Used for the `table` adapter's extra columns: `age`, `race`, `ethnicity` and `language`
    (any case) become real columns; anything else stays in the table metadata.
    """
    columns: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in extra.items():
        col = key.strip().lower()
        if col not in SPEAKER_COLUMNS:
            rest[key] = value
        elif col == "age":
            try:
                columns[col] = parse_age(value, where=where)
            except ValueError as exc:
                raise DataError(str(exc)) from None
        else:
            columns[col] = clean(None if value is None else str(value))
    return columns, rest
