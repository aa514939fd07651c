"""CREMA-D naming and metadata files for the synthetic corpora.

File names are `<actor>_<SENT>_<EMO>_<LVL>`: CREMA-D's twelve sentence codes, emotion codes
NEU/HAP/SAD/ANG and intensity levels XX (unspecified) / LO / MD / HI. The CSVs copy the
quoting of the real release:

    VideoDemographics.csv   "ActorID","Age","Sex","Race","Ethnicity","Language" / 1001,51,"Male",...
                            (Language, L1 | L2, is a synthetic addition to CREMA-D's file)
    summaryTable.csv        "","FileName","VoiceVote",... / "1","1001_DFA_ANG_XX","A","60.5",...
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SENTENCES: tuple[str, ...] = (
    "IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI",
)  # fmt: skip
EMO_CODES: dict[str, str] = {"neutral": "NEU", "happy": "HAP", "sad": "SAD", "angry": "ANG"}
LEVELS: dict[str, float] = {"LO": 0.6, "MD": 1.0, "HI": 1.4}
# Perceptual confusions: which other labels a rater picks instead of the acted one.
CONFUSIONS: dict[str, tuple[str, ...]] = {
    "N": ("S", "S", "H", "D"),
    "H": ("N", "N", "A", "F"),
    "S": ("N", "N", "F", "D"),
    "A": ("H", "D", "N", "F"),
}
RACES = ("African American", "Asian", "Caucasian", "Unknown")
RACE_P = (0.25, 0.1, 0.6, 0.05)


def utterance_names(emotion: str, n: int, rng: np.random.Generator) -> list[tuple[str, str, float]]:
    """n distinct (sentence, level, intensity) for one speaker and emotion (n <= 48).

    Like CREMA-D, sentence IEO is acted at LO/MD/HI in emotional conditions and every other
    sentence at XX, whose intensity varies around 1. Past 12, sentences repeat at levels.
    """
    order = [SENTENCES[i] for i in rng.permutation(len(SENTENCES))]
    combos = [(s, "XX") for s in order] + [(s, lvl) for lvl in LEVELS for s in order]
    out = []
    for sent, lvl in combos[:n]:
        if n <= len(SENTENCES) and sent == "IEO" and emotion != "neutral":
            lvl = str(rng.choice(list(LEVELS)))
        if emotion == "neutral":
            intensity = 1.0
        elif lvl == "XX":
            intensity = float(rng.uniform(0.75, 1.25))
        else:
            intensity = LEVELS[lvl]
        out.append((sent, lvl, intensity))
    return out


def _level(rng: np.random.Generator) -> str:
    return f"{rng.uniform(35.0, 95.0):.2f}".rstrip("0").rstrip(".")


def perceived_vote(acted: str, agreement: float, rng: np.random.Generator) -> tuple[str, str]:
    """(vote, level) of a rater pool: mostly the acted letter, sometimes another or a tie."""
    r = rng.random()
    if r < agreement:
        return acted, _level(rng)
    other = str(rng.choice(CONFUSIONS[acted]))
    if r < agreement + 0.3 * (1.0 - agreement):
        a, b = sorted((acted, other))
        return f"{a}:{b}", f"{_level(rng)}:{_level(rng)}"
    return other, _level(rng)


def write_demographics(
    path: Path, actors: list[tuple[int, int, str, str, np.random.Generator]]
) -> None:
    """actors: (actor id, age, gender F/M, language L1/L2, generator for race / ethnicity)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ['"ActorID","Age","Sex","Race","Ethnicity","Language"']
    for actor, age, gender, language, rng in actors:
        race = str(rng.choice(RACES, p=RACE_P))
        eth = "Hispanic" if rng.random() < 0.1 else "Not Hispanic"
        sex = "Female" if gender == "F" else "Male"
        lines.append(f'{actor},{age},"{sex}","{race}","{eth}","{language}"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_summary_table(
    path: Path, rows: list[tuple[str, tuple[str, str], tuple[str, str], tuple[str, str]]]
) -> None:
    """rows: (file stem, (voice vote, level), (face vote, level), (multimodal vote, level))."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = [
        "",
        "FileName",
        "VoiceVote",
        "VoiceLevel",
        "FaceVote",
        "FaceLevel",
        "MultiModalVote",
        "MultiModalLevel",
    ]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n")
        w.writerow(header)
        for i, (stem, voice, face, multi) in enumerate(rows, start=1):
            w.writerow([str(i), stem, *voice, *face, *multi])
