"""Tiny corpus trees in the three real release layouts, traps included.

Each builder writes short sine WAVs (duration chosen per utterance, so tests can check
duration_s) and label files in the real formats, and returns the folder it built.
Expected rows live in tests/test_corpora.py, written out by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from sergrad.audio import write_wav

APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \x00\x02"


def wav(path: Path, seconds: float, sr: int = 16_000) -> None:
    n = round(seconds * sr)
    t = np.arange(n) / sr
    write_wav(path, 0.3 * np.sin(2 * np.pi * 220.0 * t), sr)


def empty_wav(path: Path, sr: int = 16_000) -> None:
    """A valid WAV header with zero samples (like CREMA-D's 1076_MTI_SAD_XX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.zeros(0, dtype=np.float32), sr, subtype="PCM_16")


def corrupt_wav(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunkjunkjunk")


def junk(path: Path, text: str = "") -> None:
    """A macOS `._` resource fork: binary header, optionally followed by label-like text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(APPLE_DOUBLE + b"\n" + text.encode())


# --- IEMOCAP --------------------------------------------------------------------------
IEMOCAP_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"


def iemocap_block(start: float, utt: str, code: str) -> str:
    return (
        f"[{start:.4f} - {start + 2:.4f}]\t{utt}\t{code}\t[2.5000, 3.0000, 2.5000]\n"
        "C-E2:\tNeutral;\t()\nC-E3:\tAnger;\t(a bit)\nC-F1:\tNeutral;\t()\n"
        "A-E3:\tval 3; act 2; dom  2;\t()\nA-F1:\tval 2; act 3; dom  3;\t()\n\n"
    )


# (session, dialog, utterance, code, seconds)
IEMOCAP_UTTS = [
    (1, "Ses01F_impro01", "Ses01F_impro01_F000", "neu", 0.10),
    (1, "Ses01F_impro01", "Ses01F_impro01_M000", "exc", 0.11),  # male turn in an F dialog
    (1, "Ses01F_impro01", "Ses01F_impro01_F001", "fru", 0.05),
    (1, "Ses01F_impro01", "Ses01F_impro01_M001", "ang", 0.12),
    (1, "Ses01F_impro01", "Ses01F_impro01_F002", "xxx", 0.05),
    (1, "Ses01F_script01_1", "Ses01F_script01_1_F000", "hap", 0.13),
    (1, "Ses01F_script01_1", "Ses01F_script01_1_M000", "sad", 0.14),
    (2, "Ses02M_impro02", "Ses02M_impro02_F000", "sad", 0.15),  # female turn in an M dialog
    (2, "Ses02M_impro02", "Ses02M_impro02_M000", "hap", 0.16),
    (2, "Ses02M_impro02", "Ses02M_impro02_M001", "neu", 0.17),
]


def make_iemocap(root: Path) -> Path:
    """Session1/, Session2/ directly in `root`, with rater subfolders and `._` files."""
    texts: dict[Path, str] = {}
    for k, (session, dialog, utt, code, seconds) in enumerate(IEMOCAP_UTTS):
        sess = root / f"Session{session}"
        label = sess / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
        texts[label] = texts.get(label, IEMOCAP_HEADER) + iemocap_block(3.0 * k, utt, code)
        wav(sess / "sentences" / "wav" / dialog / f"{utt}.wav", seconds)
    for path, text in texts.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    emo = root / "Session1" / "dialog" / "EmoEvaluation"
    # rater subfolders: per-rater files that must not be read as consensus labels
    (emo / "Categorical").mkdir()
    (emo / "Categorical" / "Ses01F_impro01_e2_cat.txt").write_text(
        "Ses01F_impro01_F000 :Anger; ()\nSes01F_impro01_M000 :Sadness; ()\n"
    )
    (emo / "Attribute").mkdir()
    (emo / "Attribute" / "Ses01F_impro01_e3_atr.txt").write_text(
        "Ses01F_impro01_F000 :act 2; val 3; dom 2; ()\n"
    )
    (emo / "Self-evaluation").mkdir()
    (emo / "Self-evaluation" / "Ses01F_impro01.txt").write_text(
        IEMOCAP_HEADER
        + iemocap_block(0.0, "Ses01F_impro01_F000", "ang")
        + iemocap_block(9.0, "Ses01F_impro01_F009", "sad")
    )
    junk(emo / "._Ses01F_impro01.txt", iemocap_block(0.0, "Ses01F_impro01_F007", "neu"))
    junk(root / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "._Ses01F_impro01_F000.wav")
    return root


# --- CREMA-D --------------------------------------------------------------------------
# (file stem, seconds or None for the empty file, VoiceVote, MultiModalVote)
CREMAD_FILES = [
    ("1001_DFA_ANG_XX", 0.20, "A", "A"),
    ("1001_DFA_DIS_XX", 0.21, "D", "D"),
    ("1001_IEO_HAP_HI", 0.22, "H", "N:H"),
    ("1002_DFA_NEU_XX", 0.23, "N", "N"),
    ("1002_ITS_SAD_LO", 0.24, "S:N", "S"),
    ("1002_DFA_FEA_XX", 0.25, "F", "F"),
    ("1002_TIE_ANG_MD", 0.26, "A", "H"),
    ("1076_MTI_SAD_XX", None, "S", "S"),
    ("1076_DFA_NEU_XX", 0.27, "N", "N"),
]
CREMAD_DEMOGRAPHICS = [
    ("1001", "51", "Male", "Caucasian", "Not Hispanic"),
    ("1002", "21", "Female", "Caucasian", "Not Hispanic"),
    ("1076", "25", "Female", "African American", "Not Hispanic"),
]


def write_summary_table(path: Path, files: list[tuple[str, str, str]]) -> None:
    """summaryTable.csv from [(stem, voice vote, multimodal vote)]."""
    lines = [",FileName,VoiceVote,VoiceLevel,FaceVote,FaceLevel,MultiModalVote,MultiModalLevel"]
    for i, (stem, voice, multi) in enumerate(files, start=1):
        level = "50:50" if ":" in multi else "80"
        lines.append(f"{i},{stem},{voice},60,{multi},62.5,{multi},{level}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def write_demographics(path: Path, actors: list[tuple[str, ...]]) -> None:
    lines = ["ActorID,Age,Sex,Race,Ethnicity", *(",".join(a) for a in actors)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def make_cremad(root: Path) -> Path:
    """A CREMA-D copy in `root/CREMA-D-master/` (found by searching), with `__MACOSX/` junk."""
    top = root / "CREMA-D-master"
    for stem, seconds, _, _ in CREMAD_FILES:
        path = top / "AudioWAV" / f"{stem}.wav"
        empty_wav(path) if seconds is None else wav(path, seconds)
    junk(top / "AudioWAV" / "._1001_DFA_ANG_XX.wav")
    junk(root / "__MACOSX" / "CREMA-D-master" / "AudioWAV" / "._1001_DFA_ANG_XX.wav")
    junk(root / "__MACOSX" / "CREMA-D-master" / "._VideoDemographics.csv")
    write_summary_table(
        top / "processedResults" / "summaryTable.csv",
        [(stem, v, m) for stem, _, v, m in CREMAD_FILES],
    )
    write_demographics(top / "VideoDemographics.csv", CREMAD_DEMOGRAPHICS)
    return root


# --- MSP-Improv -----------------------------------------------------------------------
MSP_SR = 44_100
# (utterance id as in the audio name, emotion field, seconds)
MSP_UTTS = [
    ("MSP-IMPROV-S01A-F01-S-FM01", "A", 0.05),
    ("MSP-IMPROV-S01A-M01-T-FM01", "H", 0.06),  # its A/V/D/N values are NaN
    ("MSP-IMPROV-S01A-F01-R-FM01", "N", 0.07),
    ("MSP-IMPROV-S01A-M01-P-FM02", "S", 0.08),
    ("MSP-IMPROV-S02H-F02-S-FM01", "O", 0.09),
    ("MSP-IMPROV-S02H-M02-T-MF01", "N", 0.10),
    ("MSP-IMPROV-S02H-F02-T-FM02", "NaN", 0.11),
    ("MSP-IMPROV-S02H-M02-S-MF02", "S", 0.12),
    ("MSP-IMPROV-S02H-F02-S-FM03", "X", 0.13),
]


def msp_block(utt: str, code: str) -> str:
    dims = (
        "A:NaN; V:NaN; D:NaN ; N:NaN;"
        if utt.endswith("M01-T-FM01")
        else ("A:2.500000; V:3.000000; D:2.500000 ; N:4.000000;")
    )
    ident = "UTD-" + utt.removeprefix("MSP-")
    return (
        f"{ident}.avi; {code}; {dims}\n"
        f"sre-p01-{ident}.txt; Neutral; A:2.0; V:3.0; D:2.0; N:4.0;\n"
        f"sre-p02-{ident}.txt; Angry; Frustrated; A:3.0; V:2.0; D:3.0; N:4.0;\n\n"
    )


def make_mspimprov(
    root: Path, *, label_name: str = "Evalution.txt", audio_prefix: bool = True
) -> Path:
    """`root/MSP-IMPROV/` with the label file and `[Audio/]session<n>/<S01A>/<cond>/...`."""
    top = root / "MSP-IMPROV"
    audio = top / "Audio" if audio_prefix else top
    for utt, _, seconds in MSP_UTTS:
        sentence, speaker, condition = utt.split("-")[2:5]
        session = f"session{int(speaker[1:])}"
        wav(audio / session / sentence / condition / f"{utt}.wav", seconds, MSP_SR)
    junk(audio / "session1" / "S01A" / "S" / "._MSP-IMPROV-S01A-F01-S-FM01.wav")
    (top / label_name).write_text("".join(msp_block(u, c) for u, c, _ in MSP_UTTS))
    junk(top / f"._{label_name}", msp_block("MSP-IMPROV-S09A-F09-S-FM01", "A"))
    return root


# --- bring your own corpus (`kind: table`) ----------------------------------------------
def truncated_wav(path: Path, seconds: float, sr: int = 16_000) -> None:
    """A WAV whose header promises `seconds` of audio but whose file holds only half."""
    wav(path, seconds, sr)
    data = path.read_bytes()
    path.write_bytes(data[: 44 + (len(data) - 44) // 2])


# (path relative to lists/, speaker, gender, emotion, session, age, dialect, text, audio)
# audio: seconds, (seconds, rate), "missing", "truncated"
TABLE_ROWS = [
    ("../wav/spk01/0001.wav", "spk01", "F", "neutral", "day1", "34", "north", "hi", 0.10),
    (
        "../wav/spk01/0002.wav",
        "spk01",
        "female",
        "HAP",
        "day1",
        "34",
        "north",
        "yo",
        (0.11, 22_050),
    ),
    ("../wav/spk01/0003.wav", "spk01", "F", "fear", "day1", "34", "north", "oh", 0.12),
    ("../wav/spk02/0001.wav", "spk02", "m", "Angry", "day2", "51", "", "no", 0.13),
    ("../wav/spk02/0002.wav", "spk02", "M", "sad", "day2", "51", "", "ah", "truncated"),
    ("../wav/spk02/0001.wav", "spk02", "M", "sad", "day2", "51", "", "no", 0.13),  # twice
    ("../wav/spk03/0001.wav", "spk03", "F", "sad", "", "27", "south", "eh", "missing"),
    ("../wav/spk04/0001.wav", "spk04", "x", "sad", "", "60", "south", "um", 0.14),
    ("ABS", "spk04", "x", "neutral", "", "60", "south", "er", 0.15),
]
TABLE_HEADER = ("path", "speaker_id", "gender", "emotion", "session", "age", "dialect", "text")


def make_table_corpus(root: Path, *, fmt: str = "csv") -> Path:
    """`root/mine/wav/...` audio and `root/mine/lists/utterances.<fmt>`; returns the list."""
    top = root / "mine"
    lines = []
    for path, *cols, audio in TABLE_ROWS:
        target = top / "elsewhere" / "abs.wav" if path == "ABS" else top / "lists" / path
        if isinstance(audio, float):
            wav(target, audio)
        elif isinstance(audio, tuple):
            wav(target, *audio)
        elif audio == "truncated":
            truncated_wav(target, 0.2)
        lines.append((str(target.resolve()) if path == "ABS" else path, *cols))
    listing = top / "lists" / f"utterances.{fmt}"
    listing.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        text = "\n".join(",".join(row) for row in [TABLE_HEADER, *lines])
        listing.write_text(text + "\n")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols = {h: [r[i] or None for r in lines] for i, h in enumerate(TABLE_HEADER)}
        cols["age"] = [int(a) for a in cols["age"]]  # a typed column stays a speaker column
        pq.write_table(pa.table(cols), listing)
    return listing
