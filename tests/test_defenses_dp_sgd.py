"""DP-SGD: the fast clipping (sergrad.fl.dp_clip) against Opacus's own clipped step (the oracle),
noise std, and the dp_sgd defense's per-client accounting against Opacus's accountant."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from opacus import GradSampleModule
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.optimizers import DPOptimizer
from scipy import stats
from torch import nn

from sergrad.defenses import create_defense
from sergrad.fl import dp_clip  # noqa: E402
from sergrad.fl.config import DefenseConfig

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook")


def mlp(sizes, seed):
    layers = []
    for i in range(len(sizes) - 1):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.ReLU()]
    model = nn.Sequential(*layers[:-1]).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
    return model


def batch(sizes, b, seed):
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(b, sizes[0], generator=g, dtype=torch.float64)
    y = torch.randint(0, sizes[-1], (b,), generator=g)
    return x, y


def opacus_step(model, x, y, *, clip, noise, expected_batch, generator=None):
    """Opacus's DP gradient: GradSampleModule + DPOptimizer.pre_step (clip, noise, scale)."""
    gsm = GradSampleModule(model)
    opt = DPOptimizer(
        torch.optim.SGD(gsm.parameters(), lr=0.0),
        noise_multiplier=noise,
        max_grad_norm=clip,
        expected_batch_size=expected_batch,
        generator=generator,
    )
    opt.zero_grad()
    F.cross_entropy(gsm(x), y).backward()
    opt.pre_step()
    grads = [p.grad.detach().clone() for p in gsm.parameters()]
    gsm._close()
    return grads  # [W1, b1, W2, b2, ...]


def fast_step(model, x, y, *, clip, noise, expected_batch, generator=None):
    """Forward by hand, per-sample deltas from the SUM loss, then sergrad.fl.dp_clip."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    acts, outs, h = [], [], x
    for i, lin in enumerate(linears):
        acts.append(h)  # [B, I]
        z = h @ lin.weight.T + lin.bias  # [B, O]
        outs.append(z)
        h = torch.relu(z) if i < len(linears) - 1 else z
    loss = F.cross_entropy(h, y, reduction="sum")
    deltas = torch.autograd.grad(loss, outs)  # per-sample dloss_i / dz_i, [B, O]
    pairs = dp_clip.dp_sgd_grads(
        [a.detach() for a in acts],
        list(deltas),
        max_norm=clip,
        noise_multiplier=noise,
        expected_batch_size=expected_batch,
        generator=generator,
    )
    return [g for pair in pairs for g in pair]


def naive_step(model, x, y, *, clip):
    """Slow obvious oracle: per-sample autograd, clip each, average."""
    total = None
    for i in range(len(x)):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        g = [p.grad.detach().clone() for p in model.parameters()]
        norm = math.sqrt(sum(float((t**2).sum()) for t in g))
        c = min(1.0, clip / (norm + 1e-6))
        total = [c * t for t in g] if total is None else [a + c * t for a, t in zip(total, g)]
    return [t / len(x) for t in total]


@settings(max_examples=8, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 9), min_size=3, max_size=4),
    b=st.integers(1, 12),
    clip=st.floats(0.05, 5.0),
    seed=st.integers(0, 10**6),
)
def test_fast_clipping_matches_opacus_with_zero_noise(sizes, b, clip, seed):
    model = mlp(sizes, seed)
    x, y = batch(sizes, b, seed)
    kw = {"clip": clip, "noise": 0.0, "expected_batch": b}
    want = opacus_step(mlp(sizes, seed), x, y, **kw)
    got = fast_step(model, x, y, **kw)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-12)
    for g, w in zip(got, naive_step(mlp(sizes, seed), x, y, clip=clip)):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-12)


def test_paper_shape_matches_opacus():
    sizes, b = [988, 256, 128, 4], 20
    model = mlp(sizes, 3).float()
    x, y = batch(sizes, b, 3)
    kw = {"clip": 0.5, "noise": 0.0, "expected_batch": b}
    want = opacus_step(mlp(sizes, 3).float(), x.float(), y, **kw)
    got = fast_step(model, x.float(), y, **kw)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)


def test_noise_matches_opacus_draws_and_std():
    sizes, b, clip, sigma = [12, 10, 6, 4], 8, 0.7, 1.5
    x, y = batch(sizes, b, 5)
    x = x.float()  # float32 as in the engines (dp_clip draws float32 noise, Opacus the grad dtype)
    clean = fast_step(mlp(sizes, 5).float(), x, y, clip=clip, noise=0.0, expected_batch=b)
    diffs = []
    for i in range(30):
        kw = {"clip": clip, "noise": sigma, "expected_batch": b}
        g1, g2 = torch.Generator().manual_seed(i), torch.Generator().manual_seed(i)
        fast = fast_step(mlp(sizes, 5).float(), x, y, generator=g1, **kw)
        ref = opacus_step(mlp(sizes, 5).float(), x, y, generator=g2, **kw)
        for f, r in zip(fast, ref):  # same generator -> same noise as Opacus, draw for draw
            torch.testing.assert_close(f, r, rtol=1e-5, atol=1e-6)
        diffs.append(torch.cat([(f - c).reshape(-1) for f, c in zip(fast, clean)]))
    d = torch.cat(diffs).double().numpy()
    std = sigma * clip / b
    stat = float((d**2).sum() / std**2)
    lo, hi = stats.chi2.ppf([1e-4, 1 - 1e-4], df=d.size)
    assert lo < stat < hi, stat / d.size


@pytest.mark.parametrize("name, oracle", [("rdp", RDPAccountant), ("prv", PRVAccountant)])
def test_defense_accounts_per_client_like_opacus(name, oracle):
    d = create_defense(
        DefenseConfig("dp_sgd", {"noise_multiplier": 1.2, "max_grad_norm": 0.3, "accountant": name})
    )
    lt = d.local_training()
    assert (lt.per_example_clip, lt.noise_multiplier, lt.poisson) == (0.3, 1.2, True)
    # client 7 (q=0.5) trains in rounds 1 and 3 with 2 steps, client 2 (q=0.25) once, 4 steps
    eps = []
    for client, q, steps in [(7, 0.5, 2), (2, 0.25, 4), (7, 0.5, 2)]:
        d.on_client_trained(client, sample_rate=q, steps=steps)
        eps.append(d.privacy_spent().epsilon)
    per_client = {}
    for client, q, steps in [(7, 0.5, 4), (2, 0.25, 4)]:
        acc = oracle()
        for _ in range(steps):
            acc.step(noise_multiplier=1.2, sample_rate=q)
        per_client[client] = acc.get_epsilon(delta=1e-5)
    spent = d.privacy_spent()
    assert spent.epsilon == pytest.approx(max(per_client.values()), rel=1e-9)
    assert d.client_epsilon(2) == pytest.approx(per_client[2], rel=1e-9)
    assert eps[0] <= eps[1] < eps[2]
    assert (spent.delta, spent.accountant, spent.protects) == (1e-5, name, "utterances")
