"""Calibration, degenerate detection and empirical epsilon against independent oracles:
randomized response with known epsilon, the classic Gaussian-mechanism bound, a numerical
integral of the Gaussian privacy-loss distribution, a Bayes threshold and brute-force loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from sergrad.attack.metrics import (
    binary_metrics,
    is_degenerate,
    oracle_threshold,
    prior_threshold,
    threshold_for,
    uar,
)
from sergrad.privacy_bound import (
    clopper_pearson,
    empirical_epsilon,
    gaussian_delta,
    gaussian_epsilon,
    local_gaussian_epsilon,
)


@pytest.mark.parametrize("k,n", [(0, 10), (1, 10), (7, 10), (10, 10), (3, 523), (990, 1000)])
def test_clopper_pearson_inverts_the_binomial_tail(k, n):
    """The exact bounds solve P(X <= k | p_hi) = alpha and P(X >= k | p_lo) = alpha (binomial
    tails, an independent closed form), and equal scipy.stats.beta's quantiles bit for bit."""
    alpha = 0.025
    hi = clopper_pearson(k, n, alpha=alpha, upper=True)
    lo = clopper_pearson(k, n, alpha=alpha, upper=False)
    if k < n:
        assert stats.binom.cdf(k, n, hi) == pytest.approx(alpha, rel=1e-9)
        assert hi == stats.beta.ppf(1 - alpha, k + 1, n - k)
    else:
        assert hi == 1.0
    if k > 0:
        assert stats.binom.sf(k - 1, n, lo) == pytest.approx(alpha, rel=1e-9)
        assert lo == stats.beta.ppf(alpha, k, n - k + 1)
    else:
        assert lo == 0.0


def _rr_counts(eps: float, n: int, rng) -> dict:
    """Randomized response on one bit: answer truthfully with prob e^eps / (1 + e^eps)."""
    keep = math.exp(eps) / (1 + math.exp(eps))
    tp = rng.binomial(n, keep)  # true 1 reported as 1
    fp = rng.binomial(n, 1 - keep)  # true 0 reported as 1
    return {"tp": int(tp), "n_pos": n, "fp": int(fp), "n_neg": n}


def test_randomized_response_bound_is_valid_over_seeds():
    eps = 1.0
    over = [
        empirical_epsilon(**_rr_counts(eps, 500, np.random.default_rng(s)), delta=0.0) > eps
        for s in range(400)
    ]
    assert np.mean(over) <= 0.06


def test_randomized_response_bound_is_tight_with_many_samples():
    eps = 1.0
    lbs = [
        empirical_epsilon(**_rr_counts(eps, 20000, np.random.default_rng(s)), delta=0.0)
        for s in range(20)
    ]
    assert min(lbs) >= eps / 2


def test_empirical_epsilon_zero_without_signal_and_delta_reduces_it():
    assert empirical_epsilon(tp=50, n_pos=100, fp=50, n_neg=100, delta=0.0) == 0.0
    a = empirical_epsilon(tp=900, n_pos=1000, fp=100, n_neg=1000, delta=0.0)
    b = empirical_epsilon(tp=900, n_pos=1000, fp=100, n_neg=1000, delta=0.1)
    assert 0 < b < a


def _delta_by_integration(mu: float, eps: float) -> float:
    """delta(eps) = E_P[(1 - e^(eps - L))_+], privacy loss L ~ N(mu^2/2, mu^2) under P."""
    m, s = mu * mu / 2, mu
    f = lambda x: (1 - math.exp(eps - x)) * stats.norm.pdf(x, m, s)  # noqa: E731
    return integrate.quad(f, eps, m + 40 * s, limit=200)[0]


@pytest.mark.parametrize("mu,eps", [(0.5, 0.1), (1.0, 1.0), (2.0, 3.0), (4.0, 2.0)])
def test_gaussian_delta_matches_privacy_loss_integral(mu, eps):
    assert gaussian_delta(mu=mu, epsilon=eps) == pytest.approx(
        _delta_by_integration(mu, eps), rel=1e-5, abs=1e-12
    )


@pytest.mark.parametrize("eps", [0.1, 0.5, 0.9])
def test_gaussian_epsilon_below_classic_bound(eps):
    """Classic mechanism: sigma = Delta sqrt(2 ln(1.25/delta)) / eps is (eps, delta)-DP for eps < 1."""
    delta = 1e-5
    sigma = math.sqrt(2 * math.log(1.25 / delta)) / eps
    exact = gaussian_epsilon(mu=1 / sigma, delta=delta)
    assert exact <= eps
    assert gaussian_delta(mu=1 / sigma, epsilon=exact) == pytest.approx(delta, rel=1e-4)


def test_local_gaussian_composition_is_sqrt_n():
    one = local_gaussian_epsilon(noise_multiplier=4.0, n_updates=4, delta=1e-5)
    assert one == pytest.approx(gaussian_epsilon(mu=math.sqrt(4) * 2 / 4.0, delta=1e-5))
    assert local_gaussian_epsilon(noise_multiplier=4.0, n_updates=1, delta=1e-5) < one
    assert math.isinf(local_gaussian_epsilon(noise_multiplier=0.0, n_updates=1, delta=1e-5))


def test_simulated_local_dp_never_exceeds_mechanism_epsilon():
    """Worst pair of clients for clip S: updates +S and -S along one axis, noise z*S; the best
    test thresholds at 0. Over seeds eps_lb stays below the mechanism's epsilon."""
    z, S, delta, n = 1.0, 1.0, 1e-5, 4000
    bound = local_gaussian_epsilon(noise_multiplier=z, n_updates=1, delta=delta)
    lbs = []
    for s in range(30):
        rng = np.random.default_rng(s)
        pos = S + rng.normal(0, z * S, n) >= 0
        neg = -S + rng.normal(0, z * S, n) >= 0
        lbs.append(empirical_epsilon(tp=int(pos.sum()), n_pos=n, fp=int(neg.sum()), n_neg=n,
                                     delta=delta))  # fmt: skip
    assert max(lbs) <= bound
    # the threshold-0 test itself can show at most log(Phi(1/z) / Phi(-1/z)) at delta ~ 0
    reachable = math.log(stats.norm.cdf(S / (z * S)) / stats.norm.cdf(-S / (z * S)))
    assert reachable < bound and np.median(lbs) > 0.8 * reachable


def test_prior_threshold_recovers_bayes_threshold_under_shift():
    rng = np.random.default_rng(0)
    n, shift = 20000, 3.0
    y = np.r_[np.zeros(n), np.ones(n)].astype(int)
    score = np.r_[rng.normal(0, 1, n), rng.normal(2, 1, n)] + shift  # Bayes threshold 1 + shift
    t = threshold_for("prior", y_true=y, score=score, share_positive=0.5)
    assert t == pytest.approx(1.0 + shift, abs=0.05)
    perm = threshold_for("prior", y_true=rng.permutation(y), score=score, share_positive=0.5)
    assert perm == t  # no target label is used
    assert uar(y, score >= t) > 0.82  # Phi(1) = 0.841
    assert uar(y, score >= 0.5) == pytest.approx(0.5, abs=0.01)  # the fixed threshold fails


def test_prior_threshold_matches_share():
    score = np.arange(100.0)
    for share in (0.0, 0.1, 0.37, 1.0):
        t = prior_threshold(score, share_positive=share)
        assert np.mean(score >= t) == pytest.approx(share, abs=0.01)


def test_oracle_threshold_is_the_best_of_a_brute_force_loop():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    score = np.round(rng.normal(y * 0.8, 1.0), 1)  # ties
    best = max(uar(y, (score >= t).astype(int)) for t in np.unique(score))
    t = oracle_threshold(y, score)
    assert uar(y, (score >= t).astype(int)) == pytest.approx(best)


def test_degenerate_flag_and_recovery_by_prior():
    rng = np.random.default_rng(2)
    y = np.r_[np.zeros(50), np.ones(50)].astype(int)
    p = 0.7 + 0.1 * y + rng.normal(0, 0.02, 100)  # every score above 0.5: all predicted M
    g = np.arange(100) // 2
    shadow = binary_metrics(y, p, groups=g, n_boot=50, rng=rng)
    assert shadow["degenerate"] and shadow["uar"] == 0.5 and "degenerate" in shadow["note"]
    assert shadow["auc"] > 0.95  # threshold-free metrics show the leak
    t = threshold_for("prior", y_true=y, score=p, share_positive=0.5)
    prior = binary_metrics(y, p, groups=g, n_boot=50, rng=rng, threshold=t)
    assert not prior["degenerate"] and prior["uar"] > 0.9
    assert not is_degenerate(np.array([0, 1])) and is_degenerate(np.array([1, 1]))
    assert 0 <= prior["uar_ci_low"] <= prior["uar_ci_high"] <= 1


@pytest.mark.parametrize("z", [0.05, 0.01])
def test_local_gaussian_epsilon_small_noise_is_finite(z):
    """Small noise: eps ~ mu^2/2 is in the hundreds; exp(eps) must not overflow. For large mu
    the second term of delta(eps) vanishes, so eps -> mu * (mu/2 + Phi^-1(1 - delta))."""
    from scipy.stats import norm

    delta = 1e-5
    eps = local_gaussian_epsilon(noise_multiplier=z, n_updates=4, delta=delta)
    mu = 2.0 * 2 / z
    closed = mu * (mu / 2 + norm.ppf(1 - delta))
    assert math.isfinite(eps)
    assert eps == pytest.approx(closed, rel=1e-3)
