"""MSP-Improv (release layout), as described in METHOD.md section 1.

- Audio: `Audio/session{1..6}/<S01A>/<P|R|S|T>/MSP-IMPROV-S01A-F01-S-FM01.wav`; some copies
  drop the `Audio/` folder, so every `*.wav` under ROOT is indexed by name. The sample rate is
  not 16 kHz by design: it is recorded as found (features resample).
- Labels: `Evalution.txt` (sic) or `Evaluation.txt`, found anywhere under ROOT. Blocks start
  with a consensus line `UTD-IMPROV-S01A-F01-S-FM01.avi; N; A:2.5; V:3.0; D:2.5 ; N:4.0;`
  followed by per-rater lines (ignored). Values may be NaN; a NaN/empty emotion means no
  consensus (dropped). The id maps to the audio name by replacing `UTD-` with `MSP-`.
- Kept: A/H/S/N; O and X dropped. Condition = the field after the speaker (R read,
  T target-in-improvisation, S other improvised, P natural); option `conditions`
  (default S,T as the paper) selects which are kept.
- speaker_id = `F01`..`M06` from the id, gender = its first letter; session = the
  `session<n>` folder of the audio file (else `session<n>` from the speaker number).
- Speaker attributes: gender only. The release records no age, race or language
  background, so those columns stay null (never invented).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from sergrad.corpora.table import (
    Adapter,
    Option,
    find_unique,
    log_kept,
    parse_letters,
    probe,
    progress,
    read_text,
    utterance_row,
    walk,
)
from sergrad.problems import Problems

KEEP = {"A": "angry", "H": "happy", "S": "sad", "N": "neutral"}
KNOWN = frozenset({*KEEP, "O", "X"})
NO_LABEL = frozenset({"", "NAN"})
CONDITIONS = "PRST"
LABEL_FILES = ("Evalution.txt", "Evaluation.txt")
UTT_ID = re.compile(r"MSP-IMPROV-(\w+)-([FM])(\d\d)-([A-Z])-(\w+)")
SESSION_DIR = re.compile(r"session\d+", re.IGNORECASE)


def parse_labels(path: Path) -> list[tuple[int, str, str]]:
    """[(line number, MSP- utterance id, emotion field)] from the consensus lines."""
    out = []
    for n, line in enumerate(read_text(path).splitlines(), start=1):
        fields = [f.strip() for f in line.strip().split(";")]
        name = fields[0]
        if not name.startswith(("UTD-", "MSP-")):
            continue  # blank, header or per-rater line
        stem = name.rsplit(".", 1)[0] if name.lower().endswith(".avi") else name
        utt = "MSP-" + stem.split("-", 1)[1]
        out.append((n, utt, fields[1] if len(fields) > 1 else ""))
    return out


def index_audio(root: Path, problems: Problems) -> dict[str, Path]:
    wavs: dict[str, Path] = {}
    for dirpath, _, filenames in walk(root):
        for name in filenames:
            if not name.lower().endswith(".wav"):
                continue
            path = dirpath / name
            stem = path.stem
            if stem in wavs:
                problems.add(str(path), f"duplicate audio file (also {wavs[stem]}); first kept")
                continue
            wavs[stem] = path
    return wavs


def session_of(path: Path, speaker_number: str) -> str:
    for part in reversed(path.parts[:-1]):
        if SESSION_DIR.fullmatch(part):
            return part.lower()
    return f"session{int(speaker_number)}"


def rows(root: Path, options: dict[str, Any], problems: Problems) -> list[dict]:
    root = root.resolve()
    label_file = find_unique(root, LABEL_FILES, is_dir=False, what="MSP-Improv labels")
    labels = parse_labels(label_file)
    wavs = index_audio(root, problems)
    result: list[dict] = []
    seen: set[str] = set()
    dropped: Counter = Counter()
    for n, utt, code in progress(labels, "msp-improv labels"):
        where = f"{label_file}:{n} ({utt})"
        m = UTT_ID.fullmatch(utt)
        if m is None:
            problems.add(where, "id is not MSP-IMPROV-<sentence>-<F|M><nn>-<condition>-<turn>")
            continue
        _, gender, number, condition, _ = m.groups()
        if condition not in CONDITIONS:
            problems.add(where, f"unknown recording condition {condition!r}")
            continue
        if condition not in options["conditions"]:
            dropped[f"condition {condition}"] += 1
            continue
        code = code.upper()
        if code in NO_LABEL:
            dropped["no consensus (NaN)"] += 1
            continue
        if code not in KNOWN:
            problems.add(where, f"unknown emotion code {code!r}")
            continue
        if code not in KEEP:
            dropped[f"label {code}"] += 1
            continue
        if utt in seen:
            problems.add(where, "utterance labelled twice")
            continue
        seen.add(utt)
        wav = wavs.get(utt)
        if wav is None:
            problems.add(where, f"audio file {utt}.wav not found under {root}")
            continue
        info = probe(wav, problems, expected_sr=None)
        if info is None:
            continue
        result.append(
            utterance_row(
                utt_id=utt,
                speaker_id=gender + number,
                gender=gender,
                emotion=KEEP[code],
                raw_label=code,
                wav=wav,
                info=info,
                session=session_of(wav, number),
            )
        )
    log_kept("msp-improv", len(result), dropped)
    return result


ADAPTER = Adapter(
    name="msp-improv",
    rows=rows,
    options={
        "conditions": Option(
            ("S", "T"),
            parse_letters(CONDITIONS),
            "recording conditions kept (R read, T target, S improvised, P natural)",
        )
    },
    description="MSP-Improv release: Evalution.txt + Audio/session*/...",
)
