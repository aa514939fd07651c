"""udp_paper (closed-form std) and layer_perturbation (in-loop and post-hoc)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sergrad.attack.config import PostHocConfig
from sergrad.defenses import TrainingPlan, create_defense, create_posthoc
from sergrad.errors import ConfigError
from sergrad.fl.config import DefenseConfig
from sergrad.fl.update import ClientUpdate

torch.set_num_threads(1)
NAMES = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
SHAPES = {"fc1.weight": (16, 12), "fc1.bias": (16,), "fc2.weight": (4, 16), "fc2.bias": (4,)}


def tensors(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(SHAPES[n], generator=g) for n in NAMES}


def update(t, *, kind="delta", n_samples=30, client_id=3):
    return ClientUpdate(
        round=1, client_id=client_id, speaker_id="s", n_samples=n_samples, kind=kind,
        tensors=t,
    )  # fmt: skip


def paper_std(C, n, q, T, delta, eps):  # METHOD.md section 5, written out independently
    return 2 * C / n * math.sqrt(2 * q * T * math.log(1 / delta)) / eps


@pytest.mark.parametrize("eps", [5, 10, 25, 50])
def test_udp_paper_std_closed_form(eps):
    d = create_defense(DefenseConfig("udp_paper", {"epsilon": eps}))
    assert d.local_training().batch_clip == 0.25 and d.privacy_spent() is None
    t = {"w": torch.zeros(200, 50)}
    out = d.client_update(update(t, n_samples=24), generator=torch.Generator().manual_seed(eps))
    want = paper_std(0.25, 24, 0.1, 200, 0.5, eps)
    assert d.model_std(24) == pytest.approx(want, rel=1e-12)
    z = torch.randn((200, 50), generator=torch.Generator().manual_seed(eps))
    torch.testing.assert_close(out.tensors["w"], want * z)  # every parameter, that std


def test_udp_paper_pseudo_gradient_scale():
    plan = TrainingPlan(
        n_clients=10, rounds=200, clients_per_round=1, local_steps=2, sample_rate=0.5, local_lr=5e-4
    )
    d = create_defense(DefenseConfig("udp_paper", {"epsilon": 10}), plan=plan)
    u = update({"w": torch.zeros(3)}, kind="pseudo_gradient", n_samples=30)
    with pytest.raises(ConfigError, match="on_client_trained"):
        d.client_update(u, generator=torch.Generator())
    d.on_client_trained(3, sample_rate=0.5, steps=2)
    assert d.shared_std(u) == pytest.approx(paper_std(0.25, 30, 0.1, 200, 0.5, 10) / (5e-4 * 2))


def test_layer_perturbation_touches_only_selected():
    d = create_defense(DefenseConfig("layer_perturbation", {"std": 0.5}))
    t = tensors()
    out = d.client_update(update(t), generator=torch.Generator().manual_seed(0)).tensors
    assert d.selected == ["fc1.weight", "fc1.bias"] and d.privacy_spent() is None
    for n in ("fc2.weight", "fc2.bias"):
        assert torch.equal(out[n], t[n])
    for n in ("fc1.weight", "fc1.bias"):
        diff = (out[n] - t[n]).reshape(-1)
        assert not torch.equal(out[n], t[n])
        assert 0.3 < float(diff.std()) < 0.7


def test_layer_perturbation_relative_scale():
    d = create_defense(
        DefenseConfig(
            "layer_perturbation", {"std": 0.1, "relative": True, "layers": ["fc1.weight"]}
        )
    )
    t = tensors()
    out = d.client_update(update(t), generator=torch.Generator().manual_seed(0)).tensors
    rms = math.sqrt(float((t["fc1.weight"].double() ** 2).mean()))
    z = torch.randn(SHAPES["fc1.weight"], generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out["fc1.weight"], t["fc1.weight"] + 0.1 * rms * z)
    torch.testing.assert_close(out["fc1.bias"], t["fc1.bias"], rtol=0, atol=0)


@pytest.mark.parametrize("relative", [False, True])
def test_in_loop_and_posthoc_give_the_same_noise(relative):
    """Post-hoc with generator seeded s = in-loop with generator seeded s, row after row."""
    params = {"std": 0.05, "relative": relative, "layers": ["fc1.*", "fc2.bias"]}
    d = create_defense(DefenseConfig("layer_perturbation", params))
    rows = [tensors(seed) for seed in range(3)]
    rng = np.random.default_rng(7)
    seed = int(np.random.default_rng(7).integers(0, 2**63 - 1))  # what post-hoc draws from rng
    g = torch.Generator().manual_seed(seed)
    in_loop = [d.client_update(update(t), generator=g).tensors for t in rows]
    arrays = {n: np.stack([t[n].reshape(-1).numpy() for t in rows]) for n in NAMES}
    before = {n: a.copy() for n, a in arrays.items()}
    post = create_posthoc(PostHocConfig("layer_perturbation", params))(
        arrays, param_shapes=SHAPES, rng=rng
    )
    for n in NAMES:
        want = np.stack([r[n].reshape(-1).numpy() for r in in_loop])
        np.testing.assert_array_equal(post[n], want)
        np.testing.assert_array_equal(arrays[n], before[n])  # inputs untouched


def test_posthoc_skips_absent_layers_and_none_is_identity():
    arrays = {"fc2.weight": np.ones((2, 64), np.float16)}
    out = create_posthoc(PostHocConfig("layer_perturbation", {"std": 1.0}))(
        arrays, param_shapes=SHAPES, rng=np.random.default_rng(0)
    )
    np.testing.assert_array_equal(out["fc2.weight"], arrays["fc2.weight"])
    same = create_posthoc(PostHocConfig("none"))(arrays, param_shapes=SHAPES, rng=None)
    assert same["fc2.weight"] is arrays["fc2.weight"]
    half = create_posthoc(PostHocConfig("layer_perturbation", {"std": 1.0, "layers": ["fc2.*"]}))(
        arrays, param_shapes=SHAPES, rng=np.random.default_rng(0)
    )
    assert half["fc2.weight"].dtype == np.float32 and half["fc2.weight"].shape == (2, 64)
