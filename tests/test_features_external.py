"""The `external` feature set: a user's own table keyed by utt_id (CSV or Parquet).

Oracle: the hand-written values of each fixture file.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sergrad.errors import ConfigError, DataError
from sergrad.features.extract import extract_features
from sergrad.features.keys import cache_key

UTTS = pa.table(
    {"utt_id": ["a", "b", "c"], "path": ["/nowhere/a.wav", "/nowhere/b.wav", "/nowhere/c.wav"]}
)
WANT = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.5]], np.float32)


def run(path, **kw):
    return extract_features(
        UTTS, feature_set="external", params={"path": str(path)}, progress=False, **kw
    )


def matrix(table: pa.Table) -> np.ndarray:
    return np.asarray(table.column("x").to_pylist(), dtype=np.float32)


def test_csv(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("utt_id,f1,f2,f3\nc,7,8,9.5\na,1,2,3\nb,4,5,6\nextra,0,0,0\n")
    table, problems = run(path)
    assert problems.count == 0
    assert table.column("utt_id").to_pylist() == ["a", "b", "c"]  # utterance-table order
    np.testing.assert_array_equal(matrix(table), WANT)


def test_parquet_list_column_and_numeric_columns(tmp_path):
    lists = tmp_path / "lists.parquet"
    pq.write_table(
        pa.table({"utt_id": ["a", "b", "c"], "emb": WANT.astype(np.float64).tolist()}), lists
    )
    cols = tmp_path / "cols.parquet"
    pq.write_table(
        pa.table(
            {"utt_id": ["b", "a", "c"], "d0": [4, 1, 7], "d1": [5, 2, 8], "d2": [6.0, 3.0, 9.5]}
        ),
        cols,
    )
    for path in (lists, cols):
        table, problems = run(path)
        assert problems.count == 0 and table.schema.field("x").type.list_size == 3
        np.testing.assert_array_equal(matrix(table), WANT)


def test_missing_rows_and_nans_are_problems_naming_file_and_utt_id(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("utt_id,f1,f2\na,1,2\nc,nan,3\n")
    table, problems = run(path)
    assert table.column("utt_id").to_pylist() == ["a"]
    assert problems.items == [
        (str(path), "no row for utt_id 'b'"),
        (str(path), "utt_id 'c': NaN, inf or empty values"),
    ]
    with pytest.raises(DataError, match=r"f.csv: no row for utt_id 'b'"):
        run(path, strict=True)


def test_no_matching_rows_is_a_data_error(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("utt_id,f1\nx,1\ny,2\n")
    with pytest.raises(DataError, match=r"f.csv: none of the 3 utterances has a row"):
        run(path)


def test_structural_errors_name_the_file(tmp_path):
    bad_col = tmp_path / "text.csv"
    bad_col.write_text("utt_id,f1,label\na,1,happy\nb,2,sad\nc,3,sad\n")
    with pytest.raises(
        DataError, match=r"text.csv: non-numeric feature columns \['label \(string\)'\]"
    ):
        run(bad_col)
    no_id = tmp_path / "noid.csv"
    no_id.write_text("id,f1\na,1\n")
    with pytest.raises(DataError, match="noid.csv: no 'utt_id' column"):
        run(no_id)
    dupes = tmp_path / "dupes.csv"
    dupes.write_text("utt_id,f1\na,1\na,2\nb,1\nc,1\n")
    with pytest.raises(DataError, match=r"dupes.csv: duplicate utt_ids \['a'\]"):
        run(dupes)
    ragged = tmp_path / "ragged.parquet"
    pq.write_table(
        pa.table({"utt_id": ["a", "b", "c"], "emb": [[1.0, 2.0], [1.0], [3.0, 4.0]]}), ragged
    )
    with pytest.raises(DataError, match=r"ragged.parquet: .*length != 2: utt_ids \['b'\]"):
        run(ragged)
    strings = tmp_path / "strings.parquet"
    pq.write_table(pa.table({"utt_id": ["a"], "emb": [["x"]]}), strings)
    with pytest.raises(DataError, match="strings.parquet: column 'emb' holds string"):
        run(strings)
    with pytest.raises(DataError, match="absent.csv: feature table not found"):
        run(tmp_path / "absent.csv")
    with pytest.raises(ConfigError, match="needs --param path="):
        extract_features(UTTS, feature_set="external", progress=False)


def test_cache_key_follows_file_content(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("utt_id,f1\na,1\nb,2\nc,3\n")
    first = cache_key(UTTS, feature_set="external", params={"path": str(path)})
    path.write_text("utt_id,f1\na,1\nb,2\nc,4\n")
    assert cache_key(UTTS, feature_set="external", params={"path": str(path)}) != first
