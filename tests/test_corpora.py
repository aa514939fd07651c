"""Corpus adapters against hand-built fixture trees of the three real release layouts."""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from corpus_fixtures import (
    corrupt_wav,
    empty_wav,
    make_cremad,
    make_iemocap,
    make_mspimprov,
    wav,
    write_demographics,
)

from sergrad.cli import main
from sergrad.corpora import CORPORA, index_corpus, read_utterances, summarize, write_utterances
from sergrad.corpora.cli import CORPUS_NAMES
from sergrad.errors import ConfigError, DataError
from sergrad.schema import UTTERANCES

ROW = ("utt_id", "speaker_id", "gender", "emotion", "raw_label", "session", "duration_s")


def rows_of(table: pa.Table) -> list[tuple]:
    d = table.to_pydict()
    return [
        tuple(round(d[c][i], 4) if c == "duration_s" else d[c][i] for c in ROW)
        for i in range(table.num_rows)
    ]


def reasons(problems) -> list[tuple[str, str]]:
    return [(Path(p.split(" (")[0].split(":")[0]).name, r) for p, r in problems.items]


# --- IEMOCAP --------------------------------------------------------------------------
IEMOCAP_IMPRO = [
    ("Ses01F_impro01_F000", "Ses01F", "F", "neutral", "neu", "Ses01", 0.10),
    ("Ses01F_impro01_M000", "Ses01M", "M", "happy", "exc", "Ses01", 0.11),
    ("Ses01F_impro01_M001", "Ses01M", "M", "angry", "ang", "Ses01", 0.12),
    ("Ses02M_impro02_F000", "Ses02F", "F", "sad", "sad", "Ses02", 0.15),
    ("Ses02M_impro02_M000", "Ses02M", "M", "happy", "hap", "Ses02", 0.16),
    ("Ses02M_impro02_M001", "Ses02M", "M", "neutral", "neu", "Ses02", 0.17),
]
IEMOCAP_SCRIPTED = [
    ("Ses01F_script01_1_F000", "Ses01F", "F", "happy", "hap", "Ses01", 0.13),
    ("Ses01F_script01_1_M000", "Ses01M", "M", "sad", "sad", "Ses01", 0.14),
]


def test_iemocap_improvised_default(tmp_path, caplog):
    root = make_iemocap(tmp_path / "IEMOCAP_full_release")
    with caplog.at_level(logging.INFO, logger="sergrad.corpora"):
        table, problems = index_corpus("iemocap", tmp_path)  # release one level down
    assert caplog.messages == [
        "iemocap: kept 6 utterance(s); not kept: label fru 1, label xxx 1, scripted dialog 2"
    ]
    assert table.schema.equals(UTTERANCES)
    assert rows_of(table) == IEMOCAP_IMPRO
    assert problems.count == 0
    d = table.to_pydict()
    assert set(d["corpus"]) == {"iemocap"} and set(d["sample_rate"]) == {16000}
    assert d["path"][1] == str(
        root.resolve() / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M000.wav"
    )


def test_iemocap_scripted_too(tmp_path):
    make_iemocap(tmp_path)
    table, problems = index_corpus("iemocap", tmp_path, options={"improvised_only": "false"})
    expected = sorted(IEMOCAP_IMPRO + IEMOCAP_SCRIPTED, key=lambda r: (r[1], r[0]))
    assert rows_of(table) == expected
    assert problems.count == 0


def test_iemocap_bad_files(tmp_path):
    make_iemocap(tmp_path)
    wavs = tmp_path / "Session2" / "sentences" / "wav" / "Ses02M_impro02"
    corrupt_wav(tmp_path / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M001.wav")
    empty_wav(wavs / "Ses02M_impro02_M001.wav")
    (wavs / "Ses02M_impro02_F000.wav").unlink()
    wav(wavs / "Ses02M_impro02_M000.wav", 0.16, sr=8000)
    label = tmp_path / "Session2/dialog/EmoEvaluation/Ses02M_impro02.txt"
    with label.open("a") as f:
        f.write("[20.0000 - 21.0000]\tSes02M_impro02_M002\tzzz\t[2.5000, 2.5000, 2.5000]\n")
        f.write("[22.0000 - 23.0000]\tSes02M_impro02_X003\tneu\t[2.5000, 2.5000, 2.5000]\n")
    table, problems = index_corpus("iemocap", tmp_path)
    assert rows_of(table) == IEMOCAP_IMPRO[:2]
    got = {(name, reason.split(" (")[0]) for name, reason in reasons(problems)}
    assert got == {
        ("Ses01F_impro01_M001.wav", "unreadable audio"),
        ("Ses02M_impro02_F000.wav", "audio file missing"),
        ("Ses02M_impro02_M000.wav", "sample rate 8000 Hz, expected 16000 Hz"),
        ("Ses02M_impro02_M001.wav", "empty audio"),
        ("Ses02M_impro02.txt", "unknown emotion code 'zzz'"),
        ("Ses02M_impro02.txt", "cannot tell the speaker's gender from the utterance id"),
    }
    with pytest.raises(DataError, match="Ses01F_impro01_M001.wav"):
        index_corpus("iemocap", tmp_path, strict=True)


def test_iemocap_missing_label_folder(tmp_path):
    make_iemocap(tmp_path)
    emo = tmp_path / "Session2" / "dialog" / "EmoEvaluation"
    emo.rename(emo.with_name("Evaluation_moved"))
    with pytest.raises(DataError, match=r"Session2/dialog/EmoEvaluation.*missing"):
        index_corpus("iemocap", tmp_path)
    with pytest.raises(DataError, match="no Session1..Session5"):
        index_corpus("iemocap", tmp_path / "Session1" / "sentences")


# --- CREMA-D --------------------------------------------------------------------------
CREMAD = {
    "acted": [
        ("1001_DFA_ANG_XX", "1001", "M", "angry", "ANG", None, 0.20),
        ("1001_IEO_HAP_HI", "1001", "M", "happy", "HAP", None, 0.22),
        ("1002_DFA_NEU_XX", "1002", "F", "neutral", "NEU", None, 0.23),
        ("1002_ITS_SAD_LO", "1002", "F", "sad", "SAD", None, 0.24),
        ("1002_TIE_ANG_MD", "1002", "F", "angry", "ANG", None, 0.26),
        ("1076_DFA_NEU_XX", "1076", "F", "neutral", "NEU", None, 0.27),
    ],
    "voice": [
        ("1001_DFA_ANG_XX", "1001", "M", "angry", "A", None, 0.20),
        ("1001_IEO_HAP_HI", "1001", "M", "happy", "H", None, 0.22),
        ("1002_DFA_NEU_XX", "1002", "F", "neutral", "N", None, 0.23),
        ("1002_TIE_ANG_MD", "1002", "F", "angry", "A", None, 0.26),
        ("1076_DFA_NEU_XX", "1076", "F", "neutral", "N", None, 0.27),
    ],
    "multimodal": [
        ("1001_DFA_ANG_XX", "1001", "M", "angry", "A", None, 0.20),
        ("1002_DFA_NEU_XX", "1002", "F", "neutral", "N", None, 0.23),
        ("1002_ITS_SAD_LO", "1002", "F", "sad", "S", None, 0.24),
        ("1002_TIE_ANG_MD", "1002", "F", "happy", "H", None, 0.26),
        ("1076_DFA_NEU_XX", "1076", "F", "neutral", "N", None, 0.27),
    ],
}


@pytest.mark.parametrize("labels", ["acted", "voice", "multimodal"])
def test_cremad_label_sources(tmp_path, labels):
    make_cremad(tmp_path)
    table, problems = index_corpus("crema-d", tmp_path, options={"labels": labels})
    assert rows_of(table) == CREMAD[labels]
    assert problems.count == 0


def test_cremad_default_is_multimodal_and_logs_drops(tmp_path, caplog):
    make_cremad(tmp_path)
    with caplog.at_level(logging.INFO, logger="sergrad.corpora"):
        table, _ = index_corpus("crema-d", tmp_path, corpus_name="synth-a")
    assert rows_of(table) == CREMAD["multimodal"]
    assert set(table["corpus"].to_pylist()) == {"synth-a"}
    assert (
        "crema-d: kept 5 utterance(s); not kept: label D 1, label F 1, "
        "no audio (1076_MTI_SAD_XX) 1, tie 1"
    ) in caplog.messages


def test_cremad_bad_input(tmp_path):
    make_cremad(tmp_path)
    top = tmp_path / "CREMA-D-master"
    wav(top / "AudioWAV" / "1003_DFA_SAD_XX.wav", 0.1)  # actor not in VideoDemographics
    wav(top / "AudioWAV" / "1001_DFA_XYZ_XX.wav", 0.1)  # unknown acted code
    (top / "AudioWAV" / "1002_DFA_NEU_XX.wav").unlink()
    table, problems = index_corpus("crema-d", tmp_path, options={"labels": "acted"})
    assert rows_of(table) == [r for r in CREMAD["acted"] if r[0] != "1002_DFA_NEU_XX"]
    assert {(n, r.split(" in ")[0]) for n, r in reasons(problems)} == {
        ("1001_DFA_XYZ_XX.wav", "unknown emotion code 'XYZ' (acted labels)"),
        ("1003_DFA_SAD_XX.wav", "actor 1003 has no Male/Female Sex"),
    }
    # multimodal: the deleted file is still listed in summaryTable.csv; the new ones are not
    table, problems = index_corpus("crema-d", tmp_path)
    assert {(n, r) for n, r in reasons(problems)} == {
        ("1001_DFA_XYZ_XX.wav", "no row in summaryTable.csv (MultiModalVote)"),
        ("1003_DFA_SAD_XX.wav", "no row in summaryTable.csv (MultiModalVote)"),
        ("1002_DFA_NEU_XX.wav", "audio file missing"),
    }
    with pytest.raises(DataError, match="1001_DFA_XYZ_XX.wav"):
        index_corpus("crema-d", tmp_path, strict=True)


def test_cremad_missing_label_files(tmp_path):
    make_cremad(tmp_path)
    top = tmp_path / "CREMA-D-master"
    (top / "processedResults" / "summaryTable.csv").unlink()
    with pytest.raises(DataError, match=rf"no summaryTable.csv found anywhere under {tmp_path}"):
        index_corpus("crema-d", tmp_path, options={"labels": "voice"})
    table, _ = index_corpus("crema-d", tmp_path, options={"labels": "acted"})
    assert rows_of(table) == CREMAD["acted"]
    (top / "VideoDemographics.csv").unlink()
    with pytest.raises(DataError, match="no VideoDemographics.csv found"):
        index_corpus("crema-d", tmp_path, options={"labels": "acted"})


def test_cremad_ambiguous_copies_and_bad_sex(tmp_path):
    make_cremad(tmp_path)
    write_demographics(
        tmp_path / "CREMA-D-master" / "VideoDemographics.csv",
        [("1001", "51", "Unknown", "x", "y"), ("1002", "21", "Female", "x", "y")],
    )
    table, problems = index_corpus("crema-d", tmp_path, options={"labels": "acted"})
    assert [r[0] for r in rows_of(table)] == [
        "1002_DFA_NEU_XX",
        "1002_ITS_SAD_LO",
        "1002_TIE_ANG_MD",
    ]
    assert sorted(n for n, _ in reasons(problems)) == [
        "1001_DFA_ANG_XX.wav",
        "1001_IEO_HAP_HI.wav",
        "1076_DFA_NEU_XX.wav",
    ]
    (tmp_path / "copy2" / "AudioWAV").mkdir(parents=True)
    with pytest.raises(DataError, match="several AudioWAV"):
        index_corpus("crema-d", tmp_path)


# --- MSP-Improv -----------------------------------------------------------------------
MSP_ST = [
    ("MSP-IMPROV-S01A-F01-S-FM01", "F01", "F", "angry", "A", "session1", 0.05),
    ("MSP-IMPROV-S01A-M01-T-FM01", "M01", "M", "happy", "H", "session1", 0.06),
    ("MSP-IMPROV-S02H-M02-S-MF02", "M02", "M", "sad", "S", "session2", 0.12),
    ("MSP-IMPROV-S02H-M02-T-MF01", "M02", "M", "neutral", "N", "session2", 0.10),
]
MSP_RP = [
    ("MSP-IMPROV-S01A-F01-R-FM01", "F01", "F", "neutral", "N", "session1", 0.07),
    ("MSP-IMPROV-S01A-M01-P-FM02", "M01", "M", "sad", "S", "session1", 0.08),
]


@pytest.mark.parametrize("label_name", ["Evalution.txt", "Evaluation.txt"])
@pytest.mark.parametrize("audio_prefix", [True, False])
def test_mspimprov_layouts(tmp_path, label_name, audio_prefix):
    make_mspimprov(tmp_path, label_name=label_name, audio_prefix=audio_prefix)
    table, problems = index_corpus("msp-improv", tmp_path)
    assert rows_of(table) == MSP_ST
    assert problems.count == 0
    assert set(table["sample_rate"].to_pylist()) == {44100}
    audio = "MSP-IMPROV/Audio" if audio_prefix else "MSP-IMPROV"
    assert table["path"][0].as_py() == str(
        tmp_path.resolve() / audio / "session1/S01A/S/MSP-IMPROV-S01A-F01-S-FM01.wav"
    )


def test_mspimprov_all_conditions(tmp_path, caplog):
    make_mspimprov(tmp_path)
    with caplog.at_level(logging.INFO, logger="sergrad.corpora"):
        table, _ = index_corpus("msp-improv", tmp_path, options={"conditions": "P,R,S,T"})
    assert caplog.messages == [
        "msp-improv: kept 6 utterance(s); not kept: label O 1, label X 1, no consensus (NaN) 1"
    ]
    assert rows_of(table) == sorted(MSP_ST + MSP_RP, key=lambda r: (r[1], r[0]))
    table, _ = index_corpus("msp-improv", tmp_path, options={"conditions": ["r"]})
    assert rows_of(table) == MSP_RP[:1]


def test_mspimprov_bad_input(tmp_path):
    make_mspimprov(tmp_path)
    top = tmp_path / "MSP-IMPROV"
    with (top / "Evalution.txt").open("a") as f:
        f.write("UTD-IMPROV-S03A-F03-S-FM01.avi; Z; A:1.0; V:1.0; D:1.0 ; N:1.0;\n\n")
        f.write("UTD-IMPROV-S03A-F03-T-FM01.avi; A; A:1.0; V:1.0; D:1.0 ; N:1.0;\n\n")
    corrupt_wav(top / "Audio/session2/S02H/T/MSP-IMPROV-S02H-M02-T-MF01.wav")
    table, problems = index_corpus("msp-improv", tmp_path)
    assert rows_of(table) == MSP_ST[:3]
    got = [(p.rsplit("/", 1)[-1], r.split(" (")[0]) for p, r in problems.items]
    assert got == [
        ("MSP-IMPROV-S02H-M02-T-MF01.wav", "unreadable audio"),
        ("Evalution.txt:37 (MSP-IMPROV-S03A-F03-S-FM01)", "unknown emotion code 'Z'"),
        (
            "Evalution.txt:39 (MSP-IMPROV-S03A-F03-T-FM01)",
            "audio file MSP-IMPROV-S03A-F03-T-FM01.wav not found under " + str(tmp_path),
        ),
    ]
    (top / "Evalution.txt").unlink()
    with pytest.raises(DataError, match="no Evalution.txt or Evaluation.txt found anywhere"):
        index_corpus("msp-improv", tmp_path)


# --- options, registry, table I/O --------------------------------------------------------
def test_registry_and_options(tmp_path):
    assert CORPORA.names() == list(CORPUS_NAMES)
    make_cremad(tmp_path)
    with pytest.raises(ConfigError, match="unknown corpus 'timit'; valid: crema-d, iemocap"):
        index_corpus("timit", tmp_path)
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['label'\].*valid: labels"):
        index_corpus("crema-d", tmp_path, options={"label": "acted"})
    with pytest.raises(ConfigError, match="labels='face'"):
        index_corpus("crema-d", tmp_path, options={"labels": "face"})
    with pytest.raises(ConfigError, match="conditions"):
        index_corpus("msp-improv", tmp_path, options={"conditions": "S,Q"})
    with pytest.raises(ConfigError, match="improvised_only"):
        index_corpus("iemocap", tmp_path, options={"improvised_only": "maybe"})
    with pytest.raises(DataError, match="does not exist"):
        index_corpus("crema-d", tmp_path / "nope")


def test_write_read_roundtrip_and_summary(tmp_path):
    make_cremad(tmp_path / "c")
    make_iemocap(tmp_path / "i")
    crema, _ = index_corpus("crema-d", tmp_path / "c")
    iemo, _ = index_corpus("iemocap", tmp_path / "i")
    out = write_utterances(crema, tmp_path / "out" / "u.parquet")
    assert sorted(p.name for p in out.parent.iterdir()) == ["u.parquet"]  # no temp files left
    assert read_utterances(out).equals(crema)
    assert summarize(pa.concat_tables([iemo, crema])) == "\n".join(
        [
            "crema-d: 5 utterances, 3 speakers (2 F, 1 M)",
            "         neutral   happy     sad   angry   total",
            "  F            2       1       1       0       4",
            "  M            0       0       0       1       1",
            "  total        2       1       1       1       5",
            "iemocap: 6 utterances, 4 speakers (2 F, 2 M)",
            "         neutral   happy     sad   angry   total",
            "  F            1       0       1       0       2",
            "  M            1       2       0       1       4",
            "  total        2       2       1       1       6",
        ]
    )


def test_read_and_write_reject_bad_tables(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_utterances(tmp_path / "missing.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="junk.parquet: not a readable Parquet"):
        read_utterances(tmp_path / "junk.parquet")
    pq.write_table(pa.table({"utt_id": ["a"]}), tmp_path / "other.parquet")
    with pytest.raises(DataError, match=r"other.parquet: not an utterance table.*speaker_id"):
        read_utterances(tmp_path / "other.parquet")
    make_cremad(tmp_path / "c")
    table, _ = index_corpus("crema-d", tmp_path / "c")
    bad = table.set_column(3, "gender", pa.array(["X"] * table.num_rows))
    with pytest.raises(DataError, match=r"gender values \['X'\]"):
        write_utterances(bad, tmp_path / "bad.parquet")
    assert not (tmp_path / "bad.parquet").exists()
    pq.write_table(bad, tmp_path / "bad2.parquet")
    with pytest.raises(DataError, match="bad2.parquet: gender values"):
        read_utterances(tmp_path / "bad2.parquet")
    dup = pa.concat_tables([table, table.slice(0, 1)])
    with pytest.raises(DataError, match="duplicate utt_id"):
        write_utterances(dup, tmp_path / "dup.parquet")


# --- CLI ------------------------------------------------------------------------------
def test_cli_index_end_to_end(tmp_path, capsys):
    make_cremad(tmp_path / "c")
    out = tmp_path / "u.parquet"
    argv = ["corpus", "index", "--corpus", "crema-d", str(tmp_path / "c"), "-o", str(out)]
    assert main([*argv, "--option", "labels=acted", "--name", "synth-x"]) == 0
    table = read_utterances(out)
    assert rows_of(table) == CREMAD["acted"]
    assert set(table["corpus"].to_pylist()) == {"synth-x"}
    printed = capsys.readouterr().out
    assert "synth-x: 6 utterances, 3 speakers (2 F, 1 M)" in printed
    assert "no problems" in printed

    out.unlink()
    corrupt_wav(tmp_path / "c" / "CREMA-D-master" / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    assert main([*argv, "--strict"]) == 2
    assert "1001_DFA_ANG_XX.wav: unreadable audio" in capsys.readouterr().err
    assert not out.exists()
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "1 file(s) skipped:" in printed and "1001_DFA_ANG_XX.wav" in printed
    assert main([*argv, "--option", "labels"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert main([*argv, "--option", "colour=red"]) == 2
    assert "valid: labels" in capsys.readouterr().err


def test_cli_synth_wiring(tmp_path, capsys, monkeypatch):
    calls = []

    def synthesize(out, *, profile, speakers, seed):
        calls.append((out, profile, speakers, seed))
        return out / "corpus"

    fake = types.ModuleType("sergrad.corpora.synth")
    fake.synthesize = synthesize
    fake.PROFILES = types.SimpleNamespace(names=lambda: ["studio", "phone"])
    monkeypatch.setitem(sys.modules, "sergrad.corpora.synth", fake)
    assert main(["corpus", "synth", str(tmp_path), "--profile", "phone", "--speakers", "4"]) == 0
    assert calls == [(tmp_path, "phone", 4, 0)]
    assert capsys.readouterr().out.strip() == str(tmp_path / "corpus")
    assert main(["corpus", "synth", str(tmp_path), "--profile", "radio", "--seed", "3"]) == 2
    assert "unknown profile 'radio'; valid: studio, phone" in capsys.readouterr().err
    assert len(calls) == 1


def test_fixture_audio_is_what_the_rows_claim(tmp_path):
    """Oracle check of duration/sample rate against soundfile directly."""
    import soundfile as sf

    make_mspimprov(tmp_path)
    table, _ = index_corpus("msp-improv", tmp_path)
    for path, sr, dur in zip(
        *(table[c].to_pylist() for c in ("path", "sample_rate", "duration_s"))
    ):
        info = sf.info(path)
        assert info.samplerate == sr
        assert np.isclose(info.frames / info.samplerate, dur, atol=1e-6)


# --- bring your own corpus, CREMA-D at other rates, truncated WAVs ---------------------------
TABLE_KEPT = [
    ("../wav/spk01/0001", "spk01", "F", "neutral", "neutral", "day1", 0.10),
    ("../wav/spk01/0002", "spk01", "F", "happy", "HAP", "day1", 0.11),
    ("../wav/spk02/0001", "spk02", "M", "angry", "Angry", "day2", 0.13),
]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_table_adapter(tmp_path, fmt, caplog):
    from corpus_fixtures import make_table_corpus

    from sergrad.corpora import speaker_columns

    listing = make_table_corpus(tmp_path, fmt=fmt)
    with caplog.at_level(logging.INFO, logger="sergrad.corpora"):
        table, problems = index_corpus("table", listing, corpus_name="mine")
    assert rows_of(table) == TABLE_KEPT
    paths = table["path"].to_pylist()
    assert paths[0] == str(listing.parent / "../wav/spk01/0001.wav")  # relative to the list
    assert Path(paths[0]).resolve() == (tmp_path / "mine/wav/spk01/0001.wav").resolve()
    assert table["sample_rate"].to_pylist() == [16_000, 22_050, 16_000]
    assert sorted((n, r.split(" (")[0]) for n, r in reasons(problems)) == [
        ("0001.wav", "audio file missing"),
        ("0001.wav", "gender 'x' is not F/M"),
        ("0001.wav", "listed twice"),
        ("0002.wav", "truncated WAV"),
        ("abs.wav", "gender 'x' is not F/M"),
    ]
    assert any("kept 3 utterance(s); not kept: label fear 1" in m for m in caplog.messages)
    assert any("vary within a speaker, not kept: text" in m for m in caplog.messages)
    extra = speaker_columns(table).to_pylist()
    assert extra == [
        {"speaker_id": "spk01", "age": "34", "dialect": "north"},
        {"speaker_id": "spk02", "age": "51", "dialect": None},
    ]
    text = summarize(table)
    assert "sample rates: 2 at 16000 Hz, 1 at 22050 Hz; 1 file(s) resampled" in text
    assert "speaker columns kept (speaker_columns(table)): age, dialect" in text
    out = write_utterances(table, tmp_path / "u.parquet")  # the speaker columns survive a file
    assert speaker_columns(read_utterances(out)).to_pylist() == extra
    with pytest.raises(DataError, match="truncated WAV|audio file missing|gender|listed twice"):
        index_corpus("table", listing, strict=True)


def test_table_adapter_bad_input(tmp_path):
    from corpus_fixtures import make_table_corpus

    listing = make_table_corpus(tmp_path)
    with pytest.raises(DataError, match="utterance list .* does not exist"):
        index_corpus("table", listing.parent)  # a folder is not the list
    bad = listing.with_name("bad.csv")
    bad.write_text("path,speaker,gender,emotion\nx.wav,s1,F,sad\n")
    with pytest.raises(DataError, match=r"bad.csv: missing column\(s\) \['speaker_id'\]"):
        index_corpus("table", bad)
    other = listing.with_name("list.txt")
    other.write_text("x")
    with pytest.raises(DataError, match="list.txt: expected a .csv or .parquet"):
        index_corpus("table", other)


def test_table_adapter_cli_and_sweep_kind(tmp_path, capsys):
    from corpus_fixtures import make_table_corpus

    from sergrad.sweep.schema import CORPUS_KINDS

    assert "table" in CORPUS_KINDS and "table" in CORPUS_NAMES
    listing = make_table_corpus(tmp_path)
    out = tmp_path / "mine.parquet"
    assert main(["corpus", "index", "--corpus", "table", str(listing), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "table: 3 utterances, 2 speakers (1 F, 1 M)" in printed
    assert "5 file(s) skipped" in printed
    assert read_utterances(out).num_rows == 3
    assert main(["corpus", "index", "--corpus", "table", str(listing), "-o",
                 str(tmp_path / "s.parquet"), "--strict"]) == 2  # fmt: skip
    assert not (tmp_path / "s.parquet").exists()


def test_cremad_any_sample_rate_and_truncated_files(tmp_path):
    from corpus_fixtures import truncated_wav

    from sergrad.audio import load_mono

    make_cremad(tmp_path)
    audio = tmp_path / "CREMA-D-master" / "AudioWAV"
    wav(audio / "1001_DFA_ANG_XX.wav", 0.20, 22_050)  # a resampled copy
    table, problems = index_corpus("crema-d", tmp_path)
    assert rows_of(table) == CREMAD["multimodal"] and problems.count == 0
    rates = dict(zip(table["utt_id"].to_pylist(), table["sample_rate"].to_pylist()))
    assert rates["1001_DFA_ANG_XX"] == 22_050 and set(rates.values()) == {16_000, 22_050}
    assert "1 at 22050 Hz; 1 file(s) resampled to 16000 Hz" in summarize(table)
    samples, sr = load_mono(audio / "1001_DFA_ANG_XX.wav")  # what feature extraction reads
    assert sr == 16_000 and len(samples) == pytest.approx(0.20 * 16_000, abs=2)
    truncated_wav(audio / "1002_DFA_NEU_XX.wav", 0.23)
    table, problems = index_corpus("crema-d", tmp_path)
    assert [r[0] for r in rows_of(table)] == [
        r[0] for r in CREMAD["multimodal"] if r[0] != "1002_DFA_NEU_XX"
    ]
    [(name, reason)] = reasons(problems)
    assert name == "1002_DFA_NEU_XX.wav" and reason.startswith("truncated WAV (header promises")
    with pytest.raises(DataError, match="1002_DFA_NEU_XX.wav: truncated WAV"):
        index_corpus("crema-d", tmp_path, strict=True)
