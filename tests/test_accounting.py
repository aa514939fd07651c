"""Accounting against Opacus's accountants called directly (the oracle)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from opacus.accountants import PRVAccountant, RDPAccountant

from sergrad.defenses import TrainingPlan, dp_attack_ceiling
from sergrad.defenses.accounting import (
    ClientAccountants,
    CountAccountant,
    epsilon_for,
    noise_for_epsilon,
)
from sergrad.errors import ConfigError
from sergrad.privacy_bound import dp_attack_ceiling as ceiling_oracle

OPACUS = {"rdp": RDPAccountant, "prv": PRVAccountant}


def opacus_epsilon(name, steps_list, delta):
    """Drive an Opacus accountant step by step: [(noise, rate, steps), ...]."""
    acc = OPACUS[name]()
    for sigma, q, n in steps_list:
        for _ in range(n):
            acc.step(noise_multiplier=sigma, sample_rate=q)
    return acc.get_epsilon(delta=delta)


@pytest.mark.parametrize("name", ["rdp", "prv"])
def test_epsilon_for_equals_opacus(name):
    got = epsilon_for(1.1, sample_rate=0.25, steps=12, delta=1e-5, accountant=name)
    assert got == pytest.approx(opacus_epsilon(name, [(1.1, 0.25, 12)], 1e-5), rel=1e-9)


@pytest.mark.parametrize("name", ["rdp", "prv"])
def test_epsilon_monotonic_in_rounds(name):
    eps = [
        epsilon_for(1.0, sample_rate=0.5, steps=2 * r, delta=1e-5, accountant=name)
        for r in (1, 3, 6, 10)
    ]
    assert all(a < b for a, b in zip(eps, eps[1:]))
    assert epsilon_for(0.0, sample_rate=0.5, steps=1, delta=1e-5) == math.inf
    assert epsilon_for(1.0, sample_rate=0.5, steps=0, delta=1e-5) == 0.0


@pytest.mark.parametrize("name", ["rdp", "prv"])
def test_client_accountants_keep_state_per_client(name):
    accs = ClientAccountants(name)
    # client 0: two rounds of 3 steps at q=0.5; client 1: one round of 2 steps at q=0.25
    accs.step(0, noise_multiplier=1.0, sample_rate=0.5, steps=3)
    accs.step(1, noise_multiplier=1.0, sample_rate=0.25, steps=2)
    e0_first = accs.epsilon(0, 1e-5)
    accs.step(0, noise_multiplier=1.0, sample_rate=0.5, steps=3)
    e0 = accs.epsilon(0, 1e-5)
    e1 = accs.epsilon(1, 1e-5)
    assert e0 > e0_first
    assert e0 == pytest.approx(opacus_epsilon(name, [(1.0, 0.5, 6)], 1e-5), rel=1e-9)
    assert e1 == pytest.approx(opacus_epsilon(name, [(1.0, 0.25, 2)], 1e-5), rel=1e-9)
    assert accs.max_epsilon(1e-5) == max(e0, e1)
    assert accs.epsilon(99, 1e-5) == 0.0


def test_count_accountant_mixed_rates_equals_opacus():
    acc = CountAccountant("rdp")
    for q in (0.1, 0.1, 0.2, 0.1):
        acc.step(noise_multiplier=0.8, sample_rate=q)
    want = opacus_epsilon("rdp", [(0.8, 0.1, 2), (0.8, 0.2, 1), (0.8, 0.1, 1)], 1e-4)
    assert acc.epsilon(1e-4) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("name", ["rdp", "prv"])
def test_noise_for_epsilon_meets_target(name):
    sigma = noise_for_epsilon(3.0, sample_rate=0.2, steps=50, delta=1e-5, accountant=name)
    eps = epsilon_for(sigma, sample_rate=0.2, steps=50, delta=1e-5, accountant=name)
    assert 3.0 - 0.02 <= eps <= 3.0
    # a little less noise overshoots the target: the search returns (close to) the minimum
    assert (
        epsilon_for(sigma * 0.97, sample_rate=0.2, steps=50, delta=1e-5, accountant=name)
        > 3.0 - 0.02
    )


def test_unreachable_target_epsilon_gives_valid_range():
    with pytest.raises(ConfigError, match="valid range: target_epsilon >"):
        noise_for_epsilon(1e-9, sample_rate=1.0, steps=10**6, delta=1e-5)


def test_training_plan_expected_steps():
    plan = TrainingPlan.for_run(
        algorithm="fedavg", n_clients=50, rounds=100, client_fraction=0.1,
        batch_size=20, local_epochs=2, mean_train_samples=45,
    )  # fmt: skip
    assert plan.clients_per_round == 5 and plan.local_steps == 2 * 3
    assert plan.expected_client_steps == round(100 * 5 / 50 * 6)
    sgd = TrainingPlan.for_run(
        algorithm="fedsgd", n_clients=50, rounds=10, client_fraction=0.1,
        batch_size=20, local_epochs=1, mean_train_samples=40, full_batch=True,
    )  # fmt: skip
    assert sgd.local_steps == 1 and sgd.sample_rate == 1.0


def test_ceiling_is_reexported():
    assert dp_attack_ceiling(2.0, 1e-5) == ceiling_oracle(2.0, 1e-5)
    assert dp_attack_ceiling(2.0, 1e-5) == pytest.approx((math.e**2 + 1e-5) / (1 + math.e**2))


def test_max_epsilon_pruning_equals_brute_force(name="rdp"):  # pruning is accountant-agnostic
    rng = np.random.default_rng(0)
    accs = ClientAccountants(name)
    for _ in range(12):  # 12 participations over 6 clients with fixed per-client rates
        c = int(rng.integers(6))
        accs.step(c, noise_multiplier=1.0, sample_rate=0.1 + 0.1 * c, steps=int(rng.integers(1, 4)))
    accs.step(9, noise_multiplier=1.0, sample_rate=0.3, steps=1)
    accs.step(9, noise_multiplier=1.0, sample_rate=0.9, steps=1)  # two-entry history
    brute = max(
        opacus_epsilon(name, [tuple(h) for h in accs._accountants[c].history], 1e-5)
        for c in accs._accountants
    )
    assert accs.max_epsilon(1e-5) == pytest.approx(brute, rel=1e-9)
    assert len(accs._candidates()) <= len(accs)
