"""Attack model shapes (the paper's CNN sizes), fast-attack transforms, seeded init."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sergrad.attack.models import ATTACK_MODELS, count_sketch, create, row_col_stats
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
    with pytest.raises(ConfigError, match="valid: cnn, logreg_stats, mlp_proj"):
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


@pytest.mark.parametrize("name", ATTACK_MODELS.names())
def test_init_is_seeded_by_the_generator(name):
    a = create(name, shapes=_shapes(6, 10), params={}, generator=_gen(7))
    b = create(name, shapes=_shapes(6, 10), params={}, generator=_gen(7))
    c = create(name, shapes=_shapes(6, 10), params={}, generator=_gen(8))
    sa, sb, sc = (m.module.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
