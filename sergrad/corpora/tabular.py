"""Bring your own corpus (`kind: table`): one CSV or Parquet file listing the utterances.

ROOT is the table file itself. Columns (header names, case-sensitive):

- required: `path` (audio file; relative paths are relative to the table's folder),
  `speaker_id`, `gender` (F/M, female/male in any case), `emotion` (neutral, happy, sad,
  angry in any case, or the codes neu/hap/sad/ang; other labels such as fear are not kept
  and counted in the log line);
- optional: `utt_id` (default: the path relative to the table, without suffix), `session`,
  `raw_label` (default: emotion as written);
- any other column that is constant within every speaker (`age`, `dialect`, ...) is kept
  as a speaker column (`sergrad.corpora.speaker_columns(table)`); a column that varies within a
  speaker (a transcript, say) is not kept, and the log says so.

Per-file problems (audio missing, unreadable, empty or truncated, gender missing or not F/M,
an utt_id or path listed twice) skip the row; `--strict` makes the first one fatal. Any
sample rate is accepted (features resample to 16 kHz). A missing required column, an
unreadable table or an unknown suffix is an error naming the file.

Example (`my_corpus/utterances.csv`):

    path,speaker_id,gender,emotion,session,age
    wav/spk01/0001.wav,spk01,F,neutral,day1,34
    wav/spk01/0002.wav,spk01,F,happy,day1,34
    wav/spk02/0001.wav,spk02,M,angry,day2,51

    sergrad corpus index --corpus table my_corpus/utterances.csv -o my_corpus.parquet \\
        --name mine
    # in a sweep:  corpora: {mine: {kind: table, root: my_corpus/utterances.csv}}
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sergrad.corpora.table import (
    SPEAKER_EXTRA,
    Adapter,
    log,
    log_kept,
    probe,
    progress,
    read_text,
    utterance_row,
)
from sergrad.errors import DataError
from sergrad.problems import Problems

REQUIRED = ("path", "speaker_id", "gender", "emotion")
OPTIONAL = ("utt_id", "session", "raw_label")
GENDER = {"f": "F", "female": "F", "m": "M", "male": "M"}
EMOTION = {
    "neutral": "neutral", "neu": "neutral", "happy": "happy", "hap": "happy",
    "sad": "sad", "angry": "angry", "ang": "angry",
}  # fmt: skip
SUFFIXES = (".csv", ".parquet")


def read_listing(path: Path) -> list[dict[str, str | None]]:
    """The table's rows as {column: stripped string or None}; DataError naming the file."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{path}: expected a .csv or .parquet utterance list")
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(read_text(path)))
        header = [h.strip() for h in (reader.fieldnames or [])]
        rows = [{(k or "").strip(): v for k, v in r.items() if k is not None} for r in reader]
    else:
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
        header = table.schema.names
        rows = table.to_pylist()
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; header is {header}")
    return [{k: _text(v) for k, v in r.items()} for r in rows]


def _text(v: Any) -> str | None:
    if v is None:
        return None
    text = str(v).strip()
    return text or None


def split_speaker_columns(rows: list[dict], candidates: list[str]) -> tuple[list[str], list[str]]:
    """(columns constant within every speaker, columns that vary within one)."""
    keep, vary = [], []
    for col in candidates:
        seen: dict[str | None, set] = {}
        for r in rows:
            seen.setdefault(r["speaker_id"], set()).add(r.get(col))
        (vary if any(len(v) > 1 for v in seen.values()) else keep).append(col)
    return keep, vary


def rows(root: Path, options: dict[str, Any], problems: Problems) -> list[dict]:
    listing = root.resolve()
    base = listing.parent
    entries = read_listing(listing)
    header = list(entries[0]) if entries else []
    extra_cols, varying = split_speaker_columns(
        [e for e in entries if e["speaker_id"]],
        [c for c in header if c not in REQUIRED and c not in OPTIONAL],
    )
    if varying:
        log.info("table %s: column(s) vary within a speaker, not kept: %s", listing.name,
                 ", ".join(varying))  # fmt: skip
    result: list[dict] = []
    dropped: Counter = Counter()
    seen_ids: set[str] = set()
    seen_paths: set[Path] = set()
    for line, e in enumerate(progress(entries, "table rows"), start=2):
        where = f"{listing}:{line}"
        if not e["path"] or not e["speaker_id"]:
            problems.add(where, "empty path or speaker_id")
            continue
        wav = Path(e["path"]) if Path(e["path"]).is_absolute() else base / e["path"]
        utt_id = e.get("utt_id") or Path(e["path"]).with_suffix("").as_posix()
        if utt_id in seen_ids or wav in seen_paths:
            problems.add(str(wav), f"listed twice ({where}, utt_id {utt_id!r})")
            continue
        emotion = EMOTION.get((e["emotion"] or "").lower())
        if emotion is None:
            dropped[f"label {e['emotion']}"] += 1
            continue
        gender = GENDER.get((e["gender"] or "").lower())
        if gender is None:
            problems.add(str(wav), f"gender {e['gender']!r} is not F/M ({where})")
            continue
        info = probe(wav, problems, expected_sr=None)  # any rate: features resample
        if info is None:
            continue
        seen_ids.add(utt_id)
        seen_paths.add(wav)
        row = utterance_row(
            utt_id=utt_id, speaker_id=e["speaker_id"], gender=gender, emotion=emotion,
            raw_label=e.get("raw_label") or e["emotion"], wav=wav, info=info,
            session=e.get("session"),
        )  # fmt: skip
        if extra_cols:
            row[SPEAKER_EXTRA] = {c: e.get(c) for c in extra_cols}
        result.append(row)
    log_kept(f"table {listing.name}", len(result), dropped)
    return result


ADAPTER = Adapter(
    name="table",
    rows=rows,
    options={},
    description="a CSV/Parquet list: path, speaker_id, gender, emotion [, session, age, ...]",
    root_is_file=True,
)
