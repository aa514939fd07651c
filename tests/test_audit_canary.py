"""One-run canary audits: the statistics against a naive loop and randomized response with a
known epsilon; the audits of sergrad's DP-SGD and central user-level DP against their
accountants (positive without noise, below the accountant with noise)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from sergrad.audit.canary import central_user_dp_canary_audit, dp_sgd_canary_audit
from sergrad.audit.one_run import epsilon_lower_bound, guesses, p_value


def _p_value_naive(m, r, v, eps, delta):
    """The paper's Appendix D loop, written out term by term."""
    q = 1 / (1 + math.exp(-eps))
    tail = sum(binom.pmf(j, r, q) for j in range(v, r + 1))
    alpha, acc = 0.0, 0.0
    for i in range(1, v + 1):
        acc += binom.pmf(v - i, r, q)
        alpha = max(alpha, acc / i)
    return min(1.0, tail + alpha * delta * 2 * m)


@pytest.mark.parametrize("m,r,v,eps,delta", [(100, 40, 30, 0.5, 1e-5), (1000, 100, 90, 2.0, 1e-4),
                                             (50, 10, 10, 0.0, 0.0), (200, 40, 25, 1.0, 1e-3)])  # fmt: skip
def test_p_value_matches_the_naive_loop(m, r, v, eps, delta):
    assert p_value(m=m, r=r, v=v, epsilon=eps, delta=delta) == pytest.approx(
        _p_value_naive(m, r, v, eps, delta), rel=1e-9, abs=1e-12
    )


def _rr_canaries(eps, m, rng):
    """Scores from eps-randomized response on membership: the score tells the truth with
    probability e^eps / (1 + e^eps), plus a tiny jitter to break ties."""
    included = rng.random(m) < 0.5
    truthful = rng.random(m) < math.exp(eps) / (1 + math.exp(eps))
    scores = np.where(truthful, included, ~included).astype(float) + rng.normal(0, 1e-3, m)
    return scores, included


def test_randomized_response_canaries_never_overshoot_much_and_reach_half():
    eps = 1.0
    over, lbs = 0, []
    for s in range(100):
        scores, inc = _rr_canaries(eps, 400, np.random.default_rng(s))
        r, v = guesses(scores, inc, k_pos=200, k_neg=200)
        lb = epsilon_lower_bound(m=400, r=r, v=v, delta=0.0)
        over += lb > eps
        lbs.append(lb)
    assert over <= 7
    big = [epsilon_lower_bound(m=20000, r=r, v=v, delta=0.0)
           for r, v in [guesses(*_rr_canaries(eps, 20000, np.random.default_rng(s)),
                                k_pos=10000, k_neg=10000) for s in range(5)]]  # fmt: skip
    assert min(big) >= eps / 2


def test_guesses_count_by_hand():
    scores = np.array([0.9, 0.8, 0.1, 0.2, 0.5])
    inc = np.array([True, False, False, True, True])
    assert guesses(scores, inc, k_pos=2, k_neg=2) == (4, 2)  # top: T, F; bottom: out, in


def test_dp_sgd_audit_positive_without_noise_below_accountant_with_noise():
    free = dp_sgd_canary_audit(noise_multiplier=0.0, seed=1)
    assert math.isinf(free.accountant_epsilon) and free.eps_lb > 1.5
    for seed in range(3):
        noisy = dp_sgd_canary_audit(noise_multiplier=3.0, seed=seed)
        assert noisy.eps_lb <= noisy.accountant_epsilon
        assert noisy.accountant_epsilon < 2  # large noise: a small guarantee to test


def test_central_user_dp_audit_positive_without_noise_below_accountant_with_noise():
    free = central_user_dp_canary_audit(noise_multiplier=0.0, rounds=30, seed=1)
    assert free.eps_lb > 1.5
    for seed in range(2):
        noisy = central_user_dp_canary_audit(noise_multiplier=5.0, rounds=10, seed=seed)
        assert noisy.eps_lb <= noisy.accountant_epsilon


def test_cli(capsys):
    from sergrad.cli import main

    assert main(["audit", "canary", "user_dp", "--noise-multiplier", "5", "--rounds", "5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("user_dp: eps_lb") and "accountant epsilon" in out
    assert main(["audit", "canary", "dp_sgd", "--noise-multiplier", "1", "--delta", "2"]) == 2
    assert "--delta" in capsys.readouterr().err
