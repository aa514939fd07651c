"""Registry and parameter validation: bad input is a ConfigError naming the valid range/names."""

from __future__ import annotations

import doctest

import pytest
import torch

import sergrad.defenses as defenses_pkg
from sergrad.attack.config import PostHocConfig
from sergrad.defenses import (
    DEFENSES,
    TrainingPlan,
    create_defense,
    create_defenses,
    create_posthoc,
    defense_label,
    privacy_spent,
)
from sergrad.errors import ConfigError
from sergrad.fl.config import DefenseConfig
from sergrad.fl.update import ClientUpdate, Defense

PLAN = TrainingPlan(
    n_clients=20, rounds=10, clients_per_round=2, local_steps=3, sample_rate=0.4, local_lr=0.01
)


def update(tensors):
    return ClientUpdate(
        round=1, client_id=0, speaker_id="s", n_samples=10, kind="delta",
        tensors=tensors,
    )  # fmt: skip


def test_registry_names():
    assert DEFENSES.names() == [
        "dp_sgd",
        "layer_perturbation",
        "none",
        "secure_aggregation",
        "udp_paper",
        "user_dp",
    ]


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("dp_sgd", {"noise_multiplier": -0.5}, r"noise_multiplier must be in \[0, 1e\+06\]"),
        (
            "dp_sgd",
            {"noise_multiplier": 1.0, "max_grad_norm": 0},
            r"max_grad_norm must be in \(0, inf\)",
        ),
        ("dp_sgd", {"noise_multiplier": 1.0, "delta": 1.0}, r"delta must be in \(0, 1\)"),
        (
            "dp_sgd",
            {"noise_multiplier": 1.0, "clip": 1.0},
            "unknown param 'clip'; valid params: accountant, delta, max_grad_norm",
        ),
        ("dp_sgd", {}, "exactly one of noise_multiplier"),
        (
            "dp_sgd",
            {"noise_multiplier": 1.0, "target_epsilon": 2.0},
            "exactly one of noise_multiplier",
        ),
        (
            "dp_sgd",
            {"noise_multiplier": 1.0, "accountant": "gdp"},
            "accountant must be one of rdp, prv",
        ),
        ("dp_sgd", {"noise_multiplier": "big"}, "must be a number"),
        ("dp_sgd", {"noise_multiplier": 1.0, "poisson": "yes"}, "poisson must be true or false"),
        ("dp_sgd", {"target_epsilon": 1.0}, "needs the training plan"),
        (
            "user_dp",
            {"noise_multiplier": 1.0, "clip_norm": 0.0},
            r"clip_norm must be in \(0, inf\)",
        ),
        (
            "user_dp",
            {"noise_multiplier": 1.0, "mode": "global"},
            "mode must be one of local, central",
        ),
        ("user_dp", {"noise_multiplier": 1.0, "delta": 0.1}, r"delta must be in \(0, 0.05\)"),
        ("udp_paper", {"epsilon": 0}, r"epsilon must be in \(0, inf\)"),
        ("udp_paper", {"delta": 1.5}, r"delta must be in \(0, 1\)"),
        ("udp_paper", {"q": 0}, r"q must be in \(0, 1\]"),
        ("udp_paper", {"rounds": 2.5}, "rounds must be an integer"),
        ("layer_perturbation", {"std": -1e-3}, r"std must be in \[0, inf\)"),
        ("layer_perturbation", {"layers": []}, "non-empty list of name globs"),
        ("none", {"std": 1}, "takes no params"),
    ],
)
def test_bad_params_are_config_errors(name, params, match):
    with pytest.raises(ConfigError, match=match):
        create_defense(DefenseConfig(name, params), plan=PLAN if name == "user_dp" else None)


def test_unknown_defense_lists_valid_names():
    with pytest.raises(
        ConfigError, match="unknown defense 'dpsgd'; valid: dp_sgd, layer_perturbation"
    ):
        create_defense(DefenseConfig("dpsgd", {}))
    with pytest.raises(ConfigError, match="valid: layer_perturbation, none"):
        create_posthoc(PostHocConfig("blur", {}))


def test_unreachable_target_epsilon_is_rejected_with_range():
    with pytest.raises(ConfigError, match="valid range: target_epsilon >"):
        create_defense(
            DefenseConfig("dp_sgd", {"target_epsilon": 1e-12, "delta": 1e-12}), plan=PLAN
        )


def test_layer_glob_matching_nothing_names_the_parameters():
    d = create_defense(DefenseConfig("layer_perturbation", {"layers": ["conv1.*"]}))
    names = ["fc1.weight", "fc1.bias", "fc2.weight"]
    with pytest.raises(
        ConfigError,
        match="'conv1.\\*' matches no parameter; valid names: fc1.weight, fc1.bias, fc2.weight",
    ):
        d.bind(names)
    # client_update binds lazily with the update's parameter names
    with pytest.raises(ConfigError, match="valid names: fc1.weight"):
        d.client_update(update({"fc1.weight": torch.zeros(2)}), generator=torch.Generator())
    apply = create_posthoc(PostHocConfig("layer_perturbation", {"layers": "conv*"}))
    with pytest.raises(ConfigError, match="valid names: fc1.weight"):
        apply(
            {"fc1.weight": torch.zeros(1, 2).numpy()}, param_shapes={"fc1.weight": (2,)}, rng=None
        )


def test_create_defenses_order_label_and_privacy():
    ds = create_defenses(
        [
            DefenseConfig("layer_perturbation", {"std": 0.1}),
            DefenseConfig("none"),
            DefenseConfig("user_dp", {"noise_multiplier": 1.0, "mode": "central"}),
        ],
        plan=PLAN,
    )
    assert [d.name for d in ds] == ["layer_perturbation", "user_dp"]
    assert defense_label(ds) == ("layer_perturbation+user_dp", 0.1)
    assert defense_label([]) == ("none", None)
    assert privacy_spent(ds).protects == "speakers"
    assert privacy_spent([Defense()]) is None


def test_target_epsilon_plans_the_noise():
    from sergrad.defenses.accounting import epsilon_for

    d = create_defense(DefenseConfig("dp_sgd", {"target_epsilon": 4.0}), plan=PLAN)
    steps = round(PLAN.rounds * PLAN.client_rate * PLAN.local_steps)
    eps = epsilon_for(d.noise_multiplier, sample_rate=PLAN.sample_rate, steps=steps, delta=1e-5)
    assert 3.95 <= eps <= 4.0 and d.level == 4.0


def test_doctests_of_the_package_run():
    import sergrad.defenses.accounting as a
    import sergrad.defenses.params as p
    import sergrad.defenses.plan as pl
    import sergrad.defenses.posthoc as ph
    import sergrad.defenses.udp_paper as u

    for module in (defenses_pkg, a, p, pl, ph, u):
        result = doctest.testmod(module)
        assert result.failed == 0, module.__name__
