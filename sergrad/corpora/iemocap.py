"""IEMOCAP (release layout `Session{1..5}/...`), as described in METHOD.md section 1.

- Labels: `Session*/dialog/EmoEvaluation/<dialog>.txt`, top level only: the `Attribute/`,
  `Categorical/` and `Self-evaluation/` subfolders hold per-rater files and are ignored.
  Consensus lines: `[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5, 2.5, 2.5]`.
- Audio: `Session*/sentences/wav/<dialog>/<utt>.wav`, 16 kHz.
- Kept: neu, hap, exc (merged into happy), sad, ang; the other IEMOCAP codes are dropped.
- Speaker: the gender is the first letter of the LAST `_` field (`Ses01F_impro01_M013` is a
  man); speaker_id = session tag + that letter (`Ses01M`); session = `Ses01`.
- Speaker attributes: gender only. The release records no age, race or language
  background, so those columns stay null (never invented).
- Option `improvised_only` (default True, as the paper): keep dialogs with `impro` in the name.
- `._*` files (macOS resource forks) are skipped. ROOT may be the release folder or its parent.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from sergrad.corpora.table import (
    Adapter,
    Option,
    is_junk,
    log_kept,
    parse_bool,
    probe,
    progress,
    read_text,
    utterance_row,
)
from sergrad.errors import DataError
from sergrad.problems import Problems

SAMPLE_RATE = 16_000
KEEP = {"neu": "neutral", "hap": "happy", "exc": "happy", "sad": "sad", "ang": "angry"}
KNOWN = frozenset({*KEEP, "fru", "sur", "fea", "dis", "oth", "xxx"})
SESSION_DIR = re.compile(r"Session\d+")
UTT_ID = re.compile(r"(Ses\d\d)[A-Za-z]_.+_([A-Za-z])\d+")


def find_sessions(root: Path) -> list[Path]:
    """`Session<n>` folders in ROOT, or one level down (e.g. ROOT/IEMOCAP_full_release/)."""
    for base in [root, *sorted(p for p in root.iterdir() if p.is_dir() and not is_junk(p.name))]:
        found = sorted(p for p in base.iterdir() if p.is_dir() and SESSION_DIR.fullmatch(p.name))
        if found:
            return found
    raise DataError(f"IEMOCAP: no Session1..Session5 folders in {root} or its subfolders")


def label_files(session: Path) -> list[Path]:
    emo_dir = session / "dialog" / "EmoEvaluation"
    if not emo_dir.is_dir():
        raise DataError(f"IEMOCAP: label folder {emo_dir} missing (searched dialog/EmoEvaluation/)")
    files = sorted(p for p in emo_dir.glob("*.txt") if p.is_file() and not is_junk(p.name))
    if not files:
        raise DataError(f"IEMOCAP: no <dialog>.txt label files directly in {emo_dir}")
    return files


def parse_labels(path: Path, problems: Problems) -> list[tuple[str, str]]:
    """[(utt_id, code)] from the consensus lines of one EmoEvaluation file."""
    out = []
    for n, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.startswith("["):
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) < 3 or not fields[1] or not fields[2]:
            problems.add(f"{path}:{n}", f"malformed label line {line!r}")
            continue
        out.append((fields[1], fields[2]))
    return out


def rows(root: Path, options: dict[str, Any], problems: Problems) -> list[dict]:
    root = root.resolve()
    result: list[dict] = []
    seen: set[str] = set()
    dropped: Counter = Counter()
    files = [(s, f) for s in find_sessions(root) for f in label_files(s)]
    for session, label_file in progress(files, "iemocap dialogs"):
        dialog = label_file.stem
        for utt, code in parse_labels(label_file, problems):
            if options["improvised_only"] and "impro" not in dialog:
                dropped["scripted dialog"] += 1
                continue
            where = f"{label_file} ({utt})"
            if code not in KNOWN:
                problems.add(where, f"unknown emotion code {code!r}")
                continue
            if code not in KEEP:
                dropped[f"label {code}"] += 1
                continue
            m = UTT_ID.fullmatch(utt)
            if m is None or m.group(2) not in "FM":
                problems.add(where, "cannot tell the speaker's gender from the utterance id")
                continue
            if utt in seen:
                problems.add(where, "utterance labelled twice")
                continue
            seen.add(utt)
            wav = session / "sentences" / "wav" / dialog / f"{utt}.wav"
            info = probe(wav, problems, expected_sr=SAMPLE_RATE)
            if info is None:
                continue
            tag, gender = m.group(1), m.group(2)
            result.append(
                utterance_row(
                    utt_id=utt,
                    speaker_id=tag + gender,
                    gender=gender,
                    emotion=KEEP[code],
                    raw_label=code,
                    wav=wav,
                    info=info,
                    session=tag,
                )
            )
    log_kept("iemocap", len(result), dropped)
    return result


ADAPTER = Adapter(
    name="iemocap",
    rows=rows,
    options={
        "improvised_only": Option(True, parse_bool, "keep only dialogs with 'impro' in the name")
    },
    description="IEMOCAP release: Session*/dialog/EmoEvaluation + sentences/wav",
)
