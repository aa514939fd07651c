"""What an attack evaluation costs before it runs: the hook `sweep plan` calls to warn.

Rates are documented measurements (sergrad bench attack, one CPU core, paper fc1 256x988):
the cnn trains at about CPU_CNN_UPDATES_PER_S shadow updates per second per epoch (forward +
backward; validation and scoring add a forward pass each), the fast attacks are limited by
building their features once (`bench eval`) and cost seconds. On CUDA the cnn is not measured
yet (no GPU has been available to this project): the estimate says so instead of guessing.
Rates scale with the weight's element count relative to the paper's fc1.

    warning = cnn_warning(config, shadow_updates=18000, target_updates=3200)
    if warning: print(warning)
"""

from __future__ import annotations

from sergrad.attack.config import AttackConfig

CPU_CNN_UPDATES_PER_S = 12.0  # README "The paper's CNN, trained properly": 11-13 updates/s
PAPER_FC1 = 256 * 988
WARN_SECONDS = 600.0  # warn when one evaluation's cnn training may exceed this


def cnn_seconds(
    config: AttackConfig, *, shadow_updates: int, target_updates: int, weight_numel: int = PAPER_FC1
) -> float | None:
    """Estimated CPU seconds of one cnn evaluation (all its layers at `weight_numel` each; an
    upper bound: early stopping or a `max_seconds` budget may end sooner); None when the
    evaluation does not use the cnn or runs on CUDA (unmeasured)."""
    if config.model.name != "cnn" or config.device.startswith("cuda"):
        return None
    rate = CPU_CNN_UPDATES_PER_S * PAPER_FC1 / max(1, weight_numel)
    epochs = config.model.epochs
    per_layer = (epochs * shadow_updates * 1.5 + target_updates) / rate  # 1.5: validation
    seconds = per_layer * len(config.layers)
    budget = config.model.params.get("max_seconds")
    if budget is not None:
        seconds = min(seconds, (float(budget) + target_updates / rate) * len(config.layers))
    return seconds


def cnn_warning(
    config: AttackConfig, *, shadow_updates: int, target_updates: int, weight_numel: int = PAPER_FC1
) -> str | None:
    """A one-line warning for `sweep plan` when a cnn evaluation is expensive on this CPU."""
    if config.model.name == "cnn" and config.device.startswith("cuda"):
        return (
            "cnn on CUDA: cost unmeasured (no GPU run yet); "
            "run `sergrad bench attack --device cuda` first"
        )
    s = cnn_seconds(config, shadow_updates=shadow_updates, target_updates=target_updates,
                    weight_numel=weight_numel)  # fmt: skip
    if s is None or s < WARN_SECONDS:
        return None
    hours = s / 3600
    return (
        f"cnn on CPU: about {hours:.1f} h per evaluation ({config.model.epochs} epochs x "
        f"{shadow_updates} shadow updates x {len(config.layers)} layer(s) at "
        f"~{CPU_CNN_UPDATES_PER_S:g} updates/s on the paper's 256x988 fc1); set "
        "model.params.max_seconds, fewer epochs, a fast attack (logreg_colcorr), or device cuda"
    )
