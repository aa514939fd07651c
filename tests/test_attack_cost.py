"""`sweep plan`'s cnn cost hook against the closed form of its documented rate."""

from __future__ import annotations

from sergrad.attack.config import AttackConfig, AttackModelConfig
from sergrad.attack.cost import CPU_CNN_UPDATES_PER_S, cnn_seconds, cnn_warning


def _cfg(name="cnn", epochs=2, device="cpu", layers=("fc1",), **params):
    model = AttackModelConfig(name=name, epochs=epochs, params=params)
    return AttackConfig(model=model, device=device, layers=layers)


def test_cnn_seconds_closed_form_and_budget():
    s = cnn_seconds(_cfg(), shadow_updates=1200, target_updates=300)
    assert s == (2 * 1200 * 1.5 + 300) / CPU_CNN_UPDATES_PER_S
    two = cnn_seconds(_cfg(layers=("fc1", "fc2")), shadow_updates=1200, target_updates=300)
    assert two == 2 * s
    capped = cnn_seconds(_cfg(epochs=50, max_seconds=100), shadow_updates=1200, target_updates=300)
    assert capped == 100 + 300 / CPU_CNN_UPDATES_PER_S
    assert cnn_seconds(_cfg(name="logreg_colcorr"), shadow_updates=1, target_updates=1) is None


def test_warning_only_when_expensive_and_plain_about_cuda():
    assert cnn_warning(_cfg(), shadow_updates=1200, target_updates=300) is None  # ~5 min
    text = cnn_warning(_cfg(epochs=50), shadow_updates=18000, target_updates=3200)
    assert text.startswith("cnn on CPU: about 31.3 h per evaluation")
    assert "unmeasured" in cnn_warning(_cfg(device="cuda"), shadow_updates=1, target_updates=1)
    assert cnn_warning(_cfg(name="logreg_stats"), shadow_updates=10**6, target_updates=1) is None
