"""Loading utterance + feature tables, their errors, and the SER metrics."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from sergrad.errors import DataError
from sergrad.fl.config import DataConfig
from sergrad.fl.data import load_dataset
from sergrad.fl.metrics import accuracy, uar
from sergrad.fl.synthetic import random_dataset, write_tables
from sergrad.schema import features_schema


def _pair(tmp_path, **kw):
    ds = random_dataset(n_speakers=4, utts_per_speaker=8, dim=6, seed=0, **kw)
    return ds, write_tables(ds, tmp_path, stem=kw.get("corpus", "synth-a"))


def test_round_trip_and_two_corpora(tmp_path):
    ds_a, (ua, fa) = _pair(tmp_path, corpus="synth-a")
    ds_b, (ub, fb) = _pair(tmp_path, corpus="synth-b")
    got = load_dataset(DataConfig(features=(fa, fb), utterances=(ua, ub)))
    assert got.n == 64 and got.dim == 6 and got.corpora == ("synth-a", "synth-b")
    np.testing.assert_array_equal(got.x[:32], ds_a.x)
    np.testing.assert_array_equal(got.x[32:], ds_b.x)
    np.testing.assert_array_equal(got.emotion[:32], ds_a.emotion)
    assert got.feature_set == "synth-a+synth-b"  # file stems without metadata


def test_feature_rows_in_any_order_and_extra_rows(tmp_path):
    ds, (u, f) = _pair(tmp_path)
    table = pq.read_table(f)
    extra = pa.table(
        {"utt_id": ["other"], "x": pa.array([[0.0] * 6], type=pa.list_(pa.float32(), 6))}
    )
    pq.write_table(
        pa.concat_tables([table.take(np.arange(31, -1, -1)), extra.cast(table.schema)]), f
    )
    got = load_dataset(DataConfig(features=(f,), utterances=(u,)))
    np.testing.assert_array_equal(got.x, ds.x)


def test_missing_features_named(tmp_path):
    ds, (u, f) = _pair(tmp_path)
    pq.write_table(pq.read_table(f).slice(2), f)
    with pytest.raises(DataError, match="synth-a-u000000"):
        load_dataset(DataConfig(features=(f,), utterances=(u,)))


def test_nan_features_named(tmp_path):
    ds, (u, f) = _pair(tmp_path)
    x = ds.x.copy()
    x[5, 2] = np.nan
    x[7, 0] = np.inf
    vec = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 6)
    pq.write_table(pa.table([pa.array(ds.utt_id.tolist()), vec], schema=features_schema(6)), f)
    with pytest.raises(DataError, match=r"2 utterance\(s\), e.g. synth-a-u000005, synth-a-u000007"):
        load_dataset(DataConfig(features=(f,), utterances=(u,)))


def test_dimension_mismatch(tmp_path):
    _, (ua, fa) = _pair(tmp_path, corpus="synth-a")
    other = random_dataset(n_speakers=4, utts_per_speaker=8, dim=5, seed=0, corpus="synth-b")
    ub, fb = write_tables(other, tmp_path, stem="synth-b")
    with pytest.raises(DataError, match="dimensions differ.*6.*5"):
        load_dataset(DataConfig(features=(fa, fb), utterances=(ua, ub)))


def test_unknown_emotion(tmp_path):
    _, (u, f) = _pair(tmp_path)
    t = pq.read_table(u)
    emo = t.column("emotion").to_pylist()
    emo[3] = "fear"
    pq.write_table(t.set_column(t.schema.get_field_index("emotion"), "emotion", pa.array(emo)), u)
    with pytest.raises(DataError, match="fear"):
        load_dataset(DataConfig(features=(f,), utterances=(u,)))


def test_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 4, size=50)
        p = np.where(rng.random(50) < 0.5, y, rng.integers(0, 4, size=50))
        assert uar(y, p) == pytest.approx(balanced_accuracy_score(y, p))
        assert accuracy(y, p) == pytest.approx(accuracy_score(y, p))


def test_feature_set_from_metadata(tmp_path):
    _, (u, f) = _pair(tmp_path)
    t = pq.read_table(f)
    pq.write_table(t.replace_schema_metadata({b"sergrad.features.feature_set": b'"combined"'}), f)
    assert load_dataset(DataConfig(features=(f,), utterances=(u,))).feature_set == "combined"
