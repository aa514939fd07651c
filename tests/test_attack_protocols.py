"""Per-client trials, averaging, fusion and baselines against naive loops."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sergrad.attack.dataset import Moments, normalise
from sergrad.attack.protocols import (
    average_rows,
    average_selections,
    client_rows,
    client_selections,
    fuse,
    majority_baseline,
    metadata_features,
    no_updates_model,
)


def test_selections_match_a_naive_loop():
    clients = np.array([3, 3, 1, 3, 1, 7, 3, 1, 3])  # client 7 has a single update
    by_client = client_rows(clients)
    n, trials, seed = 2, 4, 11
    sels, note = client_selections(by_client, n=n, trials=trials, seed=seed)
    expected = []
    for t in range(trials):
        for c in sorted(set(clients.tolist())):
            rows = np.flatnonzero(clients == c)
            if len(rows) <= n:
                pick = rows
            else:
                pick = np.sort(
                    np.random.default_rng([seed, n, t, c]).choice(rows, n, replace=False)
                )
            expected.append((c, t, pick.tolist()))
    assert [(s.client, s.trial, s.rows.tolist()) for s in sels] == expected
    assert note == "1/3 clients had fewer than 2 updates (all used)"
    for s in sels:  # drawn without replacement, from the client's own rows
        assert len(set(s.rows.tolist())) == len(s.rows)
        assert set(clients[s.rows]) == {s.client}


def test_all_updates_is_a_single_trial():
    by_client = client_rows(np.array([0, 0, 1, 1, 1]))
    sels, note = client_selections(by_client, n=0, trials=10, seed=0)
    assert [(s.client, s.trial, s.rows.tolist()) for s in sels] == [
        (0, 0, [0, 1]),
        (1, 0, [2, 3, 4]),
    ]
    sels5, note5 = client_selections(by_client, n=5, trials=10, seed=0)
    assert len(sels5) == 2 and "1 trial" in note5 and "2/2 clients" in note5


def test_trials_differ_and_are_seeded():
    by_client = client_rows(np.repeat([0, 1], 20))
    a, _ = client_selections(by_client, n=3, trials=5, seed=1)
    b, _ = client_selections(by_client, n=3, trials=5, seed=1)
    assert [s.rows.tolist() for s in a] == [s.rows.tolist() for s in b]
    assert len({tuple(s.rows) for s in a if s.client == 0}) > 1


def test_average_then_normalise_equals_normalise_then_average():
    rng = np.random.default_rng(0)
    shadow = (50 + 0.01 * rng.standard_normal((200, 6))).astype(np.float32)
    m = Moments.zeros(6)
    m.update(shadow)
    mean, std = m.mean, m.std()
    raw = (50 + 0.01 * rng.standard_normal((5, 6))).astype(np.float32)
    oracle = (raw.astype(np.float64).mean(0) - mean) / std  # raw averaged, then normalised
    got = average_rows(normalise(raw, mean, std))
    np.testing.assert_allclose(got, oracle, rtol=1e-5, atol=1e-5)


@given(
    counts=st.lists(st.integers(1, 9), min_size=1, max_size=6),
    n=st.integers(0, 6),
    width=st.integers(1, 300),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=60, deadline=None)
def test_selections_averaged_in_place_equal_average_rows_bit_for_bit(counts, n, width, seed):
    rng = np.random.default_rng(seed)
    rows = (rng.standard_normal((sum(counts), width)) * 10 ** rng.uniform(-3, 3)).astype(np.float32)
    by_client = client_rows(rng.permutation(np.repeat(np.arange(len(counts)), counts)))
    sels, _ = client_selections(by_client, n=n, trials=3, seed=seed)
    got = average_selections(lambda idx: rows[idx], sels, width=width)
    want = np.stack([average_rows(rows[s.rows]) for s in sels])  # the one-by-one oracle
    assert got.dtype == np.float32 and got.tobytes() == want.tobytes()


def test_wide_rows_averaged_in_place_equal_average_rows_bit_for_bit():
    rng = np.random.default_rng(3)  # a demo fc1 row is 64 x 549 + 64 wide
    rows = rng.standard_normal((90, 64 * 549 + 64)).astype(np.float32)
    by_client = client_rows(np.repeat(np.arange(6), [30, 20, 15, 12, 8, 5]))
    for n in (1, 5, 0):
        sels, _ = client_selections(by_client, n=n, trials=5, seed=n)
        got = average_selections(lambda idx: rows[idx], sels, width=rows.shape[1])
        want = np.stack([average_rows(rows[s.rows]) for s in sels])
        assert got.tobytes() == want.tobytes()


def test_fusion_weights_by_parameter_count():
    p = {"fc1": np.array([0.9, 0.2]), "fc2": np.array([0.1, 0.6])}
    w = {"fc1": 300, "fc2": 100}
    np.testing.assert_allclose(fuse(p, w), [0.75 * 0.9 + 0.25 * 0.1, 0.75 * 0.2 + 0.25 * 0.6])


def test_majority_and_no_updates_baselines():
    assert majority_baseline(np.array([1, 1, 0]), 4).tolist() == [1, 1, 1, 1]
    assert majority_baseline(np.array([0, 0, 1]), 2).tolist() == [0, 0]
    rng = np.random.default_rng(0)
    # metadata that does carry gender (n_samples): the baseline must find it
    y = rng.integers(0, 2, 400)
    n = np.where(y == 1, 50, 20) + rng.integers(0, 5, 400)
    x = metadata_features(n, rng.integers(1, 100, 400))
    p = no_updates_model(x[:300], y[:300]).predict_proba(x[300:])[:, 1]
    assert np.mean((p >= 0.5) == y[300:]) > 0.95
    # metadata that does not: about chance
    xr = metadata_features(rng.integers(20, 60, 400), rng.integers(1, 100, 400))
    pr = no_updates_model(xr[:300], y[:300]).predict_proba(xr[300:])[:, 1]
    assert np.mean((pr >= 0.5) == y[300:]) == pytest.approx(0.5, abs=0.15)


def test_no_updates_model_of_the_same_shadow_rows_is_fitted_once():
    from sergrad.attack.metadata_model import LogisticModel

    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 200)
    x = metadata_features(
        np.where(y == 1, 50, 20) + rng.integers(0, 9, 200), rng.integers(1, 30, 200)
    )
    first = no_updates_model(x, y)
    assert no_updates_model(x.copy(), y.copy()) is first  # equal rows: the same model
    assert no_updates_model(x, 1 - y) is not first  # other labels: another one
    fresh = LogisticModel.fit(x, y)
    assert first.predict_proba(x).tobytes() == fresh.predict_proba(x).tobytes()
