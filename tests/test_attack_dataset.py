"""Normalisation statistics and the row file against float64 numpy oracles."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sergrad.attack.dataset import Moments, RowFile, normalise


def _moments(batches: list[np.ndarray]) -> Moments:
    m = Moments.zeros(batches[0].shape[1])
    for b in batches:
        m.update(b)
    return m


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 7), min_size=1, max_size=6).filter(lambda s: sum(s) >= 2),
    dim=st.integers(1, 5),
    seed=st.integers(0, 2**31),
)
def test_streamed_moments_equal_numpy_over_concatenation(sizes, dim, seed):
    rng = np.random.default_rng(seed)
    batches = [rng.normal(3.0, 2.0, size=(n, dim)).astype(np.float32) for n in sizes]
    m = _moments(batches)
    x = np.concatenate(batches).astype(np.float64)
    assert m.count == len(x)
    np.testing.assert_allclose(m.mean, x.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.std(), x.std(0), rtol=1e-10)


def test_float32_cancellation_case_large_mean_tiny_variance():
    # values 1e4 + 1e-3 * noise: float32 E[x^2] - E[x]^2 loses every digit of the variance
    rng = np.random.default_rng(0)
    x = (1e4 + 1e-3 * rng.standard_normal((3000, 4))).astype(np.float32)
    oracle = x.astype(np.float64).std(0)
    naive = np.sqrt(np.abs((x * x).mean(0) - x.mean(0) ** 2))  # float32 shortcut: wrong
    assert np.max(np.abs(naive - oracle) / oracle) > 0.5
    m = _moments([x[i : i + 64] for i in range(0, len(x), 64)])
    np.testing.assert_allclose(m.std(), oracle, rtol=1e-6)
    z = normalise(x, m.mean, m.std())
    np.testing.assert_allclose(z.astype(np.float64).std(0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(z.astype(np.float64).mean(0), 0.0, atol=1e-5)


def test_constant_elements_are_centred_not_divided_by_zero():
    x = np.tile(np.array([[5.0, 1.0]], np.float32), (10, 1))
    x[:, 1] += np.arange(10, dtype=np.float32)
    m = _moments([x])
    assert m.std()[0] == 1.0
    z = normalise(x, m.mean, m.std())
    assert np.all(np.isfinite(z)) and np.all(z[:, 0] == 0)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_rowfile_roundtrip_any_index_order(tmp_path, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((23, 7)).astype(np.float32)
    rf = RowFile(str(tmp_path / "r.bin"), width=7, dtype=dtype)
    rf.append(x[:10])
    rf.append(x[10:])
    assert rf.n_rows == 23
    idx = np.array([22, 0, 1, 2, 9, 10, 5])
    got = rf.read(idx)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, x[idx].astype(dtype).astype(np.float32))
    with pytest.raises(ValueError):
        rf.append(np.zeros((2, 6), np.float32))
    rf.close()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("memory_rows", [0, 5, 23, 100])  # none, spills, exactly fits, fits
def test_rowfile_held_in_memory_or_spilled_reads_what_the_file_does(tmp_path, dtype, memory_rows):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((23, 7)).astype(np.float32)
    itemsize = np.dtype(dtype).itemsize
    rf = RowFile(
        str(tmp_path / "m.bin"), width=7, dtype=dtype, memory_bytes=memory_rows * 7 * itemsize
    )
    plain = RowFile(str(tmp_path / "p.bin"), width=7, dtype=dtype)
    for part in (x[:4], x[4:10], x[10:]):
        rf.append(part)
        plain.append(part)
        part[:] = 0  # the caller reuses its buffer: held rows are copies
    assert rf.n_rows == plain.n_rows == 23
    on_disk = (tmp_path / "m.bin").stat().st_size
    assert on_disk == (0 if memory_rows >= 23 else 23 * 7 * itemsize)
    idx = np.array([22, 0, 1, 2, 9, 10, 5])
    assert rf.read(idx).dtype == np.float32
    assert rf.read(idx).tobytes() == plain.read(idx).tobytes()
    assert rf.reader()(idx).tobytes() == plain.reader()(idx).tobytes()
    assert plain.read(np.arange(23)).tobytes() != np.zeros((23, 7), np.float32).tobytes()


def test_in_place_moments_and_normalise_equal_the_plain_formulas_bit_for_bit():
    rng = np.random.default_rng(7)
    batches = [rng.normal(0.1, 3.0, size=(n, 2113)).astype(np.float32) for n in (32, 32, 5)]
    m = _moments(batches)
    mean, m2, count = np.zeros(2113), np.zeros(2113), 0  # Chan et al., written out plainly
    for b in batches:
        xb = b.astype(np.float64)
        mb = xb.mean(axis=0)
        m2b = np.square(xb - mb).sum(axis=0)
        n = count + len(b)
        delta = mb - mean
        mean = mean + delta * (len(b) / n)
        m2 = m2 + (m2b + np.square(delta) * (count * len(b) / n))
        count = n
    assert m.mean.tobytes() == mean.tobytes() and m.m2.tobytes() == m2.tobytes()
    sd = m.std()
    want = ((batches[0].astype(np.float64) - mean) / sd).astype(np.float32)
    assert normalise(batches[0], mean, sd).tobytes() == want.tobytes()
    assert batches[0].dtype == np.float32  # the input is left alone


def test_normalise_in_blocks_of_rows_equals_whole_array_float64(monkeypatch):
    from sergrad.attack import dataset

    rng = np.random.default_rng(8)
    x = rng.normal(0.1, 3.0, size=(32, 301)).astype(np.float32)
    mean, sd = rng.normal(size=301), rng.random(301) + 0.1
    want = ((x.astype(np.float64) - mean) / sd).astype(np.float32)
    monkeypatch.setattr(dataset, "NORMALISE_BLOCK_BYTES", 8 * 301 * 3)  # 3 rows a block, 2 left
    assert dataset.normalise(x, mean, sd).tobytes() == want.tobytes()
    assert dataset.normalise(x[:0], mean, sd).shape == (0, 301)


def test_moments_in_blocks_of_columns_equal_one_block(monkeypatch):
    from sergrad.attack import dataset

    rng = np.random.default_rng(9)
    for dim in (301, 21, 3, 2, 1):
        batches = [rng.normal(0.1, 3.0, size=(n, dim)).astype(np.float32) for n in (32, 7, 1)]
        monkeypatch.setattr(dataset, "NORMALISE_BLOCK_BYTES", 1 << 20)
        whole = _moments(batches)  # one block
        for cols in (10, 2, 1):  # blocks of 10, of 2, and the floor of 2 columns
            monkeypatch.setattr(dataset, "NORMALISE_BLOCK_BYTES", 8 * 32 * cols)
            blocked = _moments(batches)
            assert blocked.mean.tobytes() == whole.mean.tobytes(), (dim, cols)
            assert blocked.m2.tobytes() == whole.m2.tobytes(), (dim, cols)
            assert blocked.count == whole.count == 40
