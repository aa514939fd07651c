"""Attack model shapes (the paper's CNN sizes), fast-attack transforms, seeded init."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sergrad.attack.config import AttackModelConfig
from sergrad.attack.dataset import RowFile
from sergrad.attack.metrics import uar
from sergrad.attack.models import (
    ATTACK_MODELS,
    column_correlations,
    count_sketch,
    create,
    row_col_stats,
    spaced_columns,
)
from sergrad.attack.train import predict_features, train_attack
from sergrad.errors import ConfigError

torch.set_num_threads(1)

# flattened conv sizes of the authors' attack_model.py: emobase 3840, 768-d 3072, 512-d 3200,
# layer 2 (2176 - 128 bias) = 2048, layer 3 (1028 - 4 bias) = 1024
PAPER = [
    ((256, 988), 3840),
    ((256, 768), 3072),
    ((256, 512), 3200),
    ((128, 256), 2048),
    ((4, 128), 1024),
]


def _shapes(out_dim, in_dim):
    return {"fc.weight": (out_dim, in_dim), "fc.bias": (out_dim,)}


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("shape,flat", PAPER)
def test_cnn_flatten_sizes_match_the_paper(shape, flat):
    m = create("cnn", shapes=_shapes(*shape), params={}, generator=_gen())
    assert m.module.flat_conv == flat
    assert m.module.mlp[0].in_features == flat + shape[0]  # bias concatenated
    assert m.n_features == shape[0] * shape[1] + shape[0]


@pytest.mark.parametrize("shape", [(4, 128), (128, 256), (8, 20), (3, 5), (1, 1), (300, 7)])
def test_cnn_forward_any_shape(shape):
    m = create("cnn", shapes=_shapes(*shape), params={}, generator=_gen())
    x = torch.randn(3, m.n_features, generator=_gen(1))
    m.module.eval()
    assert m.module(x).shape == (3, 2)
    conv_out = m.module.conv(x[:, : shape[0] * shape[1]].reshape(3, 1, *shape))
    assert math.prod(conv_out.shape[1:]) == m.module.flat_conv > 0


def test_cnn_first_layer_forward_paper_shape():
    m = create("cnn", shapes=_shapes(256, 988), params={}, generator=_gen())
    m.module.eval()
    with torch.no_grad():
        assert m.module(torch.zeros(2, m.n_features)).shape == (2, 2)


def test_cnn_needs_a_weight():
    with pytest.raises(ConfigError, match="2-D weight"):
        create("cnn", shapes={"fc.bias": (4,)}, params={}, generator=_gen())
    with pytest.raises(ConfigError, match="valid: cnn, logreg_colcorr, logreg_stats, mlp_proj"):
        create("nope", shapes=_shapes(2, 3), params={}, generator=_gen())


def test_row_col_stats_against_a_loop():
    rng = np.random.default_rng(0)
    shapes = _shapes(3, 4)
    arrays = {"fc.weight": rng.standard_normal((2, 12)).astype(np.float32),
              "fc.bias": rng.standard_normal((2, 3)).astype(np.float32)}  # fmt: skip
    got = row_col_stats(arrays, shapes)
    for b in range(2):
        w = arrays["fc.weight"][b].reshape(3, 4)
        exp = []
        for v in (w, w.T):
            exp += [[r.mean() for r in v], [r.std() for r in v], [np.linalg.norm(r) for r in v]]
        exp = np.concatenate([np.concatenate(exp), arrays["fc.bias"][b]])
        np.testing.assert_allclose(got[b], exp, rtol=1e-5, atol=1e-6)
    m = create("logreg_stats", shapes=shapes, params={}, generator=_gen())
    assert m.n_features == got.shape[1] == 3 * 3 + 3 * 4 + 3


def test_count_sketch_against_a_loop():
    numel, dim = 50, 8
    s = count_sketch(numel, dim, seed=3)
    x = np.random.default_rng(1).standard_normal((2, numel)).astype(np.float32)
    got = np.asarray(s.T @ x.T).T
    rng = np.random.default_rng(3)
    buckets = rng.integers(0, dim, size=numel)
    signs = rng.choice(np.array([-1.0, 1.0], np.float32), size=numel)
    exp = np.zeros((2, dim))
    for i in range(numel):
        exp[:, buckets[i]] += signs[i] * x[:, i] * math.sqrt(dim / numel)
    np.testing.assert_allclose(got, exp, rtol=1e-5, atol=1e-6)
    m = create("mlp_proj", shapes=_shapes(5, 10), params={"dim": 8}, generator=_gen())
    feats = m.transform({"fc.weight": x[:, :50], "fc.bias": x[:, :5]})
    assert feats.shape == (2, 8) and feats.dtype == np.float32


def test_column_correlations_against_a_loop():
    rng = np.random.default_rng(0)
    shapes = _shapes(5, 9)
    w = rng.standard_normal((3, 45)).astype(np.float32)
    idx = spaced_columns(9, 4)
    assert idx.tolist() == [0, 3, 5, 8]
    got = column_correlations({"fc.weight": w}, shapes, {"fc.weight": idx})
    for b in range(3):
        cols = [w[b].reshape(5, 9)[:, j].astype(np.float64) for j in idx]
        norms = [np.linalg.norm(c) for c in cols]
        cos = [cols[i] @ cols[j] / norms[i] / norms[j] for i in range(4) for j in range(i + 1, 4)]
        exp = np.concatenate([cos, np.log(np.array(norms) / sum(norms))])
        np.testing.assert_allclose(got[b], exp, rtol=1e-4, atol=1e-5)
    m = create("logreg_colcorr", shapes=shapes, params={"columns": 4}, generator=_gen())
    assert m.n_features == got.shape[1] == 6 + 4
    assert spaced_columns(3, 96).tolist() == [0, 1, 2]  # fewer inputs than columns: all
    zero = column_correlations(
        {"fc.weight": np.zeros((1, 45), np.float32)}, shapes, {"fc.weight": idx}
    )
    assert np.isfinite(zero).all()  # an all-zero update (or column) gives finite features


def test_colcorr_ignores_rotations_of_the_hidden_units_and_stats_do_not():
    """Any orthogonal map of the output axis (another init, a permuted hidden layer) leaves
    the column cosines and norms unchanged, so the features transfer across runs."""
    rng = np.random.default_rng(1)
    shapes = _shapes(16, 30)
    w = rng.standard_normal((4, 16, 30)).astype(np.float32)
    q = np.linalg.qr(rng.standard_normal((16, 16)))[0].astype(np.float32)  # orthogonal
    rotated = np.einsum("ij,bjk->bik", q, w)
    m = create("logreg_colcorr", shapes=shapes, params={}, generator=_gen())
    a = m.transform({"fc.weight": w.reshape(4, -1), "fc.bias": np.zeros((4, 16), np.float32)})
    b = m.transform({"fc.weight": rotated.reshape(4, -1), "fc.bias": np.ones((4, 16), np.float32)})
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    s = create("logreg_stats", shapes=shapes, params={}, generator=_gen())
    sa = s.transform({"fc.weight": w.reshape(4, -1), "fc.bias": np.zeros((4, 16), np.float32)})
    sb = s.transform(
        {"fc.weight": rotated.reshape(4, -1), "fc.bias": np.zeros((4, 16), np.float32)}
    )
    assert not np.allclose(sa, sb, atol=1e-2)


def _comovement_updates(n, *, rng, out=24, d=20, batch=10):
    """Gradient-like updates sum_i a_i x_i^T with fresh random hidden directions a_i (a new
    'run' per update); gender only sets whether inputs 0 and 1 move together or apart."""
    genders = rng.integers(0, 2, n)
    w = np.empty((n, out * d), np.float32)
    for k, g in enumerate(genders):
        x = rng.standard_normal((batch, d))
        shared = rng.standard_normal(batch)
        x[:, 0] += 1.5 * shared
        x[:, 1] += 1.5 * shared * (1 if g == 0 else -1)
        a = rng.standard_normal((batch, out))
        w[k] = (a.T @ x).ravel()
    return genders, {"fc.weight": w, "fc.bias": np.zeros((n, out), np.float32)}


@pytest.mark.parametrize("name,expect_above", [("logreg_colcorr", 0.85), ("logreg_stats", None)])
def test_colcorr_learns_input_comovement_that_row_col_stats_miss(tmp_path, name, expect_above):
    rng = np.random.default_rng(2)
    y_tr, tr = _comovement_updates(1000, rng=rng)
    y_te, te = _comovement_updates(300, rng=rng)
    shapes = _shapes(24, 20)
    m = create(name, shapes=shapes, params={"columns": 20, "lr": 1e-2}, generator=_gen())
    rows = RowFile(str(tmp_path / "rows.bin"), width=m.n_features)
    rows.append(m.transform(tr))
    cfg = AttackModelConfig(name=name, epochs=40, patience=10)
    train_attack(m, rows, y_tr, train_idx=np.arange(800), val_idx=np.arange(800, 1000),
                 config=cfg, generator=_gen(3))  # fmt: skip
    got = uar(y_te, (predict_features(m, m.transform(te), device="cpu") >= 0.5).astype(int))
    if expect_above is not None:
        assert got > expect_above
    else:  # row/column statistics cannot see the sign of a correlation
        assert got < 0.65


def test_colcorr_needs_a_weight_and_two_columns():
    with pytest.raises(ConfigError, match="2-D weight"):
        create("logreg_colcorr", shapes={"fc.bias": (4,)}, params={}, generator=_gen())
    with pytest.raises(ConfigError, match="columns must be >= 2"):
        create("logreg_colcorr", shapes=_shapes(3, 4), params={"columns": 1}, generator=_gen())


@pytest.mark.parametrize("name", ATTACK_MODELS.names())
def test_init_is_seeded_by_the_generator(name):
    a = create(name, shapes=_shapes(6, 10), params={}, generator=_gen(7))
    b = create(name, shapes=_shapes(6, 10), params={}, generator=_gen(7))
    c = create(name, shapes=_shapes(6, 10), params={}, generator=_gen(8))
    sa, sb, sc = (m.module.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
