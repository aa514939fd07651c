"""Speaker attributes: derivation from each adapter, declared attributes, population checks."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from corpus_fixtures import (
    CREMAD_DEMOGRAPHICS,
    make_cremad,
    make_iemocap,
    make_mspimprov,
    make_table_corpus,
)

from sergrad.attributes import (
    ATTRIBUTES,
    AgeBins,
    AttributeConfig,
    MissingClassError,
    check_populations,
    resolve_attribute,
    speaker_table,
)
from sergrad.corpora import index_corpus, read_utterances, write_utterances
from sergrad.corpora.demographics import read_demographics
from sergrad.errors import ConfigError, DataError
from sergrad.schema import SPEAKER_COLUMNS, UTTERANCES


def speaker_values(table: pa.Table) -> dict[str, dict]:
    d = table.to_pydict()
    return {s: {c: d[c][i] for c in SPEAKER_COLUMNS} for i, s in enumerate(d["speaker_id"])}


def test_cremad_speaker_columns_come_from_video_demographics(tmp_path):
    table, _ = index_corpus("crema-d", make_cremad(tmp_path), options={"labels": "acted"})
    assert table.schema.equals(UTTERANCES)
    expected = {
        actor: {"age": float(age), "race": race, "ethnicity": eth, "language": None}
        for actor, age, _, race, eth in CREMAD_DEMOGRAPHICS
    }
    got = speaker_values(table)
    assert got and all(got[s] == expected[s] for s in got)


def test_demographics_unknown_values_are_null_never_invented(tmp_path):
    path = tmp_path / "VideoDemographics.csv"
    path.write_text(
        "ActorID,Age,Sex,Race,Ethnicity,Language\n"
        "1,33,Male,Unknown,,L2\n2,old,Female,Asian,Not Hispanic,\n3,,Female,,,\n"
    )
    people = read_demographics(path)
    assert (people["1"].age, people["1"].race, people["1"].ethnicity) == (33.0, None, None)
    assert people["1"].language == "L2"
    assert (people["2"].age, people["2"].race, people["2"].language) == (None, "Asian", None)
    assert people["3"].sex == "Female" and people["3"].age is None
    (tmp_path / "bad.csv").write_text("Actor,Age\n1,2\n")
    with pytest.raises(DataError, match=r"bad.csv: missing column\(s\) \['ActorID', 'Sex'\]"):
        read_demographics(tmp_path / "bad.csv")


@pytest.mark.parametrize("maker,name", [(make_iemocap, "iemocap"), (make_mspimprov, "msp-improv")])
def test_gender_only_corpora_have_null_speaker_columns(tmp_path, maker, name):
    table, _ = index_corpus(name, maker(tmp_path))
    assert table.num_rows > 0
    for col in SPEAKER_COLUMNS:
        assert table[col].null_count == table.num_rows, col


def test_table_adapter_age_becomes_a_column(tmp_path):
    table, _ = index_corpus("table", make_table_corpus(tmp_path), corpus_name="mine")
    ages = {s: v["age"] for s, v in speaker_values(table).items()}
    assert ages == {"spk01": 34.0, "spk02": 51.0}
    assert "dialect" in speaker_table(table).column_names  # extra column kept beside


def test_old_tables_without_speaker_columns_read_as_null(tmp_path):
    table, _ = index_corpus("crema-d", make_cremad(tmp_path), options={"labels": "acted"})
    old = table.drop_columns(list(SPEAKER_COLUMNS))
    pq.write_table(old, tmp_path / "old.parquet")
    back = read_utterances(tmp_path / "old.parquet")
    assert back.schema.equals(UTTERANCES)
    assert all(back[c].null_count == back.num_rows for c in SPEAKER_COLUMNS)


def test_a_speaker_with_two_ages_is_refused(tmp_path):
    table, _ = index_corpus("crema-d", make_cremad(tmp_path), options={"labels": "acted"})
    ages = table["age"].to_pylist()
    spk = table["speaker_id"].to_pylist()
    first = spk.index(spk[0])
    assert spk.count(spk[0]) > 1
    ages[first] = 99.0
    bad = table.set_column(table.schema.get_field_index("age"), "age", pa.array(ages, pa.float32()))
    with pytest.raises(DataError, match=rf"speaker '{spk[0]}' has several age values"):
        write_utterances(bad, tmp_path / "bad.parquet")


def test_speaker_table_one_row_per_speaker(tmp_path):
    table, _ = index_corpus("crema-d", make_cremad(tmp_path), options={"labels": "acted"})
    spk = speaker_table(table).to_pylist()
    assert [r["speaker_id"] for r in spk] == sorted(set(table["speaker_id"].to_pylist()))
    by_actor = {a: (float(age), sex[0]) for a, age, sex, _, _ in CREMAD_DEMOGRAPHICS}
    assert all(by_actor[r["speaker_id"]] == (r["age"], r["gender"]) for r in spk)


# --- declared attributes -----------------------------------------------------------------
def test_registry_declares_kinds_and_lists_valid_names():
    kinds = {n: resolve_attribute(n).kind for n in ATTRIBUTES.names()}
    assert kinds == {
        "age": "numeric",
        "age_group": "categorical",
        "ethnicity": "categorical",
        "gender": "binary",
        "language": "categorical",
        "race": "categorical",
    }
    with pytest.raises(ConfigError, match=r"unknown attribute 'dialect'; declared: age, age_group"):
        resolve_attribute("dialect")
    with pytest.raises(ConfigError, match="speaker columns of the data: dialect"):
        resolve_attribute("accent", columns=["speaker_id", "age", "dialect"])
    dialect = resolve_attribute("dialect", columns=["speaker_id", "dialect"])
    assert (dialect.kind, dialect.column, dialect.classes) == ("categorical", "dialect", None)


def test_age_group_bins_from_config_against_a_naive_loop():
    ages = [0.0, 17, 29.9, 30, 44, 49, 49.99, 50, 64, 65, 90, None]
    for edges in [(30, 50), (25, 45, 65), (40,)]:
        attr = resolve_attribute(AttributeConfig(name="age_group", age_bins=edges))
        labels = attr.labels(ages)
        for age, label in zip(ages, labels):
            if age is None:
                assert label is None
                continue
            k = 0
            while k < len(edges) and age >= edges[k]:
                k += 1
            assert label == attr.classes[k]
        assert len(attr.classes) == len(edges) + 1
    assert AgeBins((30, 50)).labels == ("<30", "30-49", ">=50")
    assert AgeBins((30.5, 50)).labels == ("<30.5", "30.5-<50", ">=50")
    for bad in [(), (50, 30), (30, 30), (0, 40), (200,)]:
        with pytest.raises(ConfigError, match="age_bins"):
            AgeBins(bad)


def test_numeric_and_gender_labels():
    assert resolve_attribute("age").labels([31, None, 40.5]) == [31.0, None, 40.5]
    assert resolve_attribute("gender").classes == ("F", "M")


# --- population checks --------------------------------------------------------------------
def test_check_populations_counts_match_a_counter():
    attr = resolve_attribute("language")
    shadow = ["L1", "L2", "L1", None, "L1"]
    target = ["L2", "L1", "L2"]
    report = check_populations(attr, shadow=("s1+s2", shadow), target=("t", target))
    assert report.classes == ("L1", "L2")
    for pop, labels in (("shadow", shadow), ("target", target)):
        tally = Counter(x for x in labels if x is not None)
        assert report.counts[pop] == {c: tally[c] for c in ("L1", "L2")}
    assert report.unknown == {"shadow": 1, "target": 0}
    assert report.lines()[0] == "language shadow (s1+s2): L1 3, L2 1; unknown 1"


@pytest.mark.parametrize(
    "name,shadow,target,pop,corpus,missing",
    [
        ("gender", ["F", "M"], ["M", "M"], "target", "tgt", "F"),
        ("gender", ["F", "F"], ["F", "M"], "shadow", "shd", "M"),
        ("language", ["L1", "L2"], ["L1"], "target", "tgt", "L2"),
        ("race", ["Asian"], ["Caucasian"], "shadow", "shd", "Caucasian"),
    ],
)
def test_missing_class_names_attribute_corpus_and_class(name, shadow, target, pop, corpus, missing):
    attr = resolve_attribute(name)
    with pytest.raises(MissingClassError) as err:
        check_populations(attr, shadow=("shd", shadow), target=("tgt", target))
    msg = str(err.value)
    assert f"attribute {name!r}" in msg and f"{pop} corpus {corpus!r}" in msg
    assert f"of class {missing!r}" in msg
    assert isinstance(err.value, DataError)  # the CLI maps it to exit 2


def test_numeric_population_needs_two_values():
    age = resolve_attribute("age")
    report = check_populations(age, shadow=("s", [20, 30, None]), target=("t", [40, 61]))
    assert report.counts["target"] == {"n": 2, "min": 40, "max": 61}
    with pytest.raises(MissingClassError, match="target corpus 't' has 1 distinct known"):
        check_populations(age, shadow=("s", [20, 30]), target=("t", [40, 40, None]))


def test_stray_value_outside_declared_classes():
    with pytest.raises(DataError, match=r"values \['X'\] outside the declared classes"):
        check_populations(resolve_attribute("gender"), shadow=("s", ["F", "M", "X"]),
                          target=("t", ["F", "M"]))  # fmt: skip


def test_attribute_config_reads_strictly_from_yaml_keys():
    from sergrad.config import from_dict

    cfg = from_dict(AttributeConfig, {"name": "age_group", "age_bins": [25, 45, 65]})
    assert resolve_attribute(cfg).classes == ("<25", "25-44", "45-64", ">=65")
    with pytest.raises(ConfigError, match="unknown key 'nme'"):
        from_dict(AttributeConfig, {"nme": "age"})
    with pytest.raises(ConfigError, match="edges must increase"):
        from_dict(AttributeConfig, {"name": "age_group", "age_bins": [50, 30]})
