"""CREMA-D (release layout; also the layout the synthetic corpora are written in).

- Audio: `AudioWAV/<actor>_<sentence>_<EMO>_<level>.wav` (e.g. `1001_DFA_ANG_XX.wav`), 16 kHz
  in the release; any other rate (a resampled copy) is recorded as found and resampled to
  16 kHz when features are extracted (`summarize` counts the files per rate).
  `AudioWAV/`, `VideoDemographics.csv` and `summaryTable.csv` are found by searching the tree
  under ROOT (copies differ); `__MACOSX/`, hidden folders and `._*` files are ignored.
- Option `labels`:
  - `acted`: the 3rd field of the file name; NEU/HAP/SAD/ANG kept, DIS/FEA dropped.
  - `voice` / `multimodal` (default, as the paper): `VoiceVote` / `MultiModalVote` of
    `processedResults/summaryTable.csv` (first column a row number, then FileName, VoiceVote,
    VoiceLevel, FaceVote, FaceLevel, MultiModalVote, MultiModalLevel). N/H/S/A kept, D/F
    dropped, ties such as `N:S` mean no label (dropped).
- Gender: `Sex` (Male/Female) of the actor in `VideoDemographics.csv`
  (ActorID,Age,Sex,Race,Ethnicity). speaker_id = actor id; session = null. The speaker
  columns age, race, ethnicity (and language, which only the synthetic corpora write) come
  from the same file (sergrad.corpora.demographics).
- `1076_MTI_SAD_XX` has no audio in the release and is always skipped (not a problem).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any

from sergrad.corpora.demographics import read_demographics, speaker_columns
from sergrad.corpora.table import (
    Adapter,
    Option,
    find_unique,
    log_kept,
    parse_choice,
    probe,
    progress,
    read_text,
    utterance_row,
)
from sergrad.errors import DataError
from sergrad.problems import Problems

SILENT = frozenset({"1076_MTI_SAD_XX"})
ACTED = {"NEU": "neutral", "HAP": "happy", "SAD": "sad", "ANG": "angry"}
ACTED_KNOWN = frozenset({*ACTED, "DIS", "FEA"})
VOTED = {"N": "neutral", "H": "happy", "S": "sad", "A": "angry"}
VOTED_KNOWN = frozenset({*VOTED, "D", "F"})
VOTE_COLUMN = {"voice": "VoiceVote", "multimodal": "MultiModalVote"}
SEX = {"female": "F", "male": "M"}


def read_csv(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(read_text(path)))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; header is {header}")
    return [
        {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
        for row in reader
    ]


def read_votes(path: Path, column: str) -> dict[str, str]:
    """file stem -> vote string from `column` (e.g. 'A', 'N:S')."""
    return {r["FileName"]: r[column] for r in read_csv(path, ("FileName", column))}


def rows(root: Path, options: dict[str, Any], problems: Problems) -> list[dict]:
    root = root.resolve()
    labels = options["labels"]
    audio_dir = find_unique(root, ("AudioWAV",), is_dir=True, what="CREMA-D audio")
    demo_csv = find_unique(root, ("VideoDemographics.csv",), is_dir=False, what="CREMA-D sex")
    people = read_demographics(demo_csv)
    wavs = {
        p.stem: p
        for p in sorted(audio_dir.iterdir())
        if p.suffix.lower() == ".wav" and not p.name.startswith("._")
    }
    votes: dict[str, str] = {}
    if labels != "acted":
        summary = find_unique(root, ("summaryTable.csv",), is_dir=False, what="CREMA-D labels")
        votes = read_votes(summary, VOTE_COLUMN[labels])
    result: list[dict] = []
    dropped: Counter = Counter()
    for stem in progress(sorted(set(wavs) | set(votes)), "crema-d files"):
        wav = wavs.get(stem, audio_dir / f"{stem}.wav")
        if stem in SILENT:
            dropped[f"no audio ({stem})"] += 1
            continue
        parts = stem.split("_")
        if len(parts) != 4 or not parts[0].isdigit():
            problems.add(str(wav), "name is not <actor>_<sentence>_<EMO>_<level>")
            continue
        actor, code = parts[0], parts[2]
        if labels == "acted":
            known, keep = ACTED_KNOWN, ACTED
        else:
            known, keep = VOTED_KNOWN, VOTED
            if stem not in votes:
                problems.add(str(wav), f"no row in summaryTable.csv ({VOTE_COLUMN[labels]})")
                continue
            code = votes[stem]
            if ":" in code:
                dropped["tie"] += 1
                continue
        if code not in known:
            problems.add(str(wav), f"unknown emotion code {code!r} ({labels} labels)")
            continue
        if code not in keep:
            dropped[f"label {code}"] += 1
            continue
        person = people.get(actor)
        gender = SEX.get(person.sex.lower()) if person else None
        if gender is None:
            problems.add(str(wav), f"actor {actor} has no Male/Female Sex in {demo_csv}")
            continue
        info = probe(wav, problems, expected_sr=None)  # features resample
        if info is None:
            continue
        result.append(
            utterance_row(
                utt_id=stem,
                speaker_id=actor,
                gender=gender,
                emotion=keep[code],
                raw_label=code,
                wav=wav,
                info=info,
                session=None,
                speaker=speaker_columns(person),
            )
        )
    log_kept("crema-d", len(result), dropped)
    return result


ADAPTER = Adapter(
    name="crema-d",
    rows=rows,
    options={
        "labels": Option(
            "multimodal",
            parse_choice("acted", "voice", "multimodal"),
            "label source: acted (file name), voice or multimodal (summaryTable.csv votes)",
        )
    },
    description="CREMA-D release: AudioWAV/, VideoDemographics.csv, summaryTable.csv",
)
