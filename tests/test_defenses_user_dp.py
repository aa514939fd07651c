"""user_dp: clipping (hypothesis), noise std (chi-square), local vs central, accounting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from opacus.accountants import RDPAccountant
from scipy import stats

from sergrad.defenses import create_defense
from sergrad.defenses.user_dp import clip_update
from sergrad.fl.config import DefenseConfig
from sergrad.fl.update import ClientUpdate

torch.set_num_threads(1)


def update(tensors, client_id=0):
    return ClientUpdate(
        round=1, client_id=client_id, speaker_id="s", n_samples=10, kind="delta",
        tensors=tensors,
    )  # fmt: skip


def naive_norm(tensors):
    return math.sqrt(sum(float(v) ** 2 for t in tensors.values() for v in t.reshape(-1).tolist()))


shapes = st.lists(st.lists(st.integers(1, 4), min_size=1, max_size=2), min_size=1, max_size=3)


@settings(max_examples=40, deadline=None)
@given(
    shapes=shapes, scale=st.floats(1e-3, 1e3), clip=st.floats(1e-2, 10), seed=st.integers(0, 2**31)
)
def test_clip_bounds_norm_and_keeps_direction(shapes, scale, clip, seed):
    g = torch.Generator().manual_seed(seed)
    tensors = {
        f"p{i}": scale * torch.randn(s, generator=g, dtype=torch.float64)
        for i, s in enumerate(shapes)
    }
    out = clip_update(tensors, clip)
    before, after = naive_norm(tensors), naive_norm(out)
    assert after <= clip * (1 + 1e-9)
    assert after == pytest.approx(min(before, clip), rel=1e-9)
    flat_in = torch.cat([t.reshape(-1) for t in tensors.values()])
    flat_out = torch.cat([t.reshape(-1) for t in out.values()])
    cos = float(flat_in @ flat_out) / (before * after)
    assert cos == pytest.approx(1.0, abs=1e-9)  # same direction, every tensor scaled alike


def noise_draws(defense, tensors, n_draws, *, central=False, n_clients=4):
    diffs = []
    for i in range(n_draws):
        g = torch.Generator().manual_seed(1000 + i)
        if central:
            out = defense.server_update(dict(tensors), n_clients=n_clients, generator=g)
        else:
            out = defense.client_update(update(tensors, client_id=i % 3), generator=g).tensors
        clipped = clip_update(tensors, defense.clip_norm) if not central else tensors
        diffs.append(torch.cat([(out[k] - clipped[k]).reshape(-1) for k in tensors]))
    return torch.stack(diffs).double().numpy().reshape(-1)


def assert_std(samples, sigma):
    """Chi-square test of the sample variance (df = n), plus zero mean."""
    n = samples.size
    stat = float((samples**2).sum() / sigma**2)
    lo, hi = stats.chi2.ppf([1e-4, 1 - 1e-4], df=n)
    assert lo < stat < hi, (stat / n, "variance ratio")
    assert abs(samples.mean()) < 5 * sigma / math.sqrt(n)


def test_local_noise_std_is_z_times_clip():
    d = create_defense(DefenseConfig("user_dp", {"noise_multiplier": 0.7, "clip_norm": 0.5}))
    tensors = {"a.weight": torch.full((6, 5), 3.0), "a.bias": torch.ones(5)}  # norm >> clip
    assert_std(noise_draws(d, tensors, 400), 0.7 * 0.5)


def test_central_noise_on_mean_is_z_clip_over_n():
    d = create_defense(
        DefenseConfig("user_dp", {"noise_multiplier": 1.3, "clip_norm": 2.0, "mode": "central"})
    )
    agg = {"a.weight": torch.zeros(7, 3), "a.bias": torch.zeros(3)}
    assert_std(noise_draws(d, agg, 400, central=True, n_clients=5), 1.3 * 2.0 / 5)


def test_local_vs_central_what_the_harvest_sees():
    tensors = {"w": torch.arange(12.0).reshape(3, 4), "b": torch.ones(4)}
    clipped = clip_update(tensors, 1.0)
    central = create_defense(DefenseConfig("user_dp", {"noise_multiplier": 2.0, "mode": "central"}))
    local = create_defense(DefenseConfig("user_dp", {"noise_multiplier": 2.0, "mode": "local"}))
    g = torch.Generator().manual_seed(0)
    seen_central = central.client_update(update(tensors), generator=g).tensors
    seen_local = local.client_update(update(tensors), generator=g).tensors
    for k in tensors:  # central: the harvest sees the clipped, UN-noised update
        torch.testing.assert_close(seen_central[k], clipped[k], rtol=0, atol=0)
    assert naive_norm(seen_local) > 2.0  # local: noised (noise norm ~ 2 * sqrt(16))
    # central puts the noise on the aggregate; local leaves the aggregate alone
    agg = {k: v.clone() for k, v in clipped.items()}
    out = central.server_update(agg, n_clients=2, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(out["w"], agg["w"])
    assert local.server_update(agg, n_clients=2, generator=g) is agg


def rdp_eps(sigma, q, steps, delta):
    acc = RDPAccountant()
    for _ in range(steps):
        acc.step(noise_multiplier=sigma, sample_rate=q)
    return acc.get_epsilon(delta=delta)


def test_central_accounting_over_rounds_at_client_rate():
    d = create_defense(DefenseConfig("user_dp", {"noise_multiplier": 1.0, "mode": "central"}))
    assert d.privacy_spent().epsilon == 0.0
    eps = []
    for r in range(1, 6):
        d.on_round_end(r, n_clients_total=40, n_sampled=4)
        eps.append(d.privacy_spent().epsilon)
    assert eps[-1] == pytest.approx(rdp_eps(1.0, 0.1, 5, 1e-5), rel=1e-9)
    assert all(a < b for a, b in zip(eps, eps[1:]))
    assert d.privacy_spent().protects == "speakers"


def test_local_accounting_counts_participations_without_amplification():
    d = create_defense(DefenseConfig("user_dp", {"noise_multiplier": 3.0}))
    g = torch.Generator().manual_seed(0)
    t = {"w": torch.ones(3)}
    for client in (0, 1, 0, 2, 0):  # client 0 took part 3 times
        d.client_update(update(t, client_id=client), generator=g)
    assert d.privacy_spent().epsilon == pytest.approx(rdp_eps(3.0, 1.0, 3, 1e-5), rel=1e-9)


def test_local_noise_is_reproducible_from_generator():
    d = create_defense(DefenseConfig("user_dp", {"noise_multiplier": 1.0}))
    t = {"w": torch.ones(4, 2)}
    a = d.client_update(update(t), generator=torch.Generator().manual_seed(5)).tensors["w"]
    b = d.client_update(update(t), generator=torch.Generator().manual_seed(5)).tensors["w"]
    assert torch.equal(a, b)
    np.testing.assert_allclose(
        (a - clip_update(t, 1.0)["w"]).numpy(),
        torch.randn((4, 2), generator=torch.Generator().manual_seed(5)).numpy(),
        rtol=1e-6,
    )
