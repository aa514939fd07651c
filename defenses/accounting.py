"""Privacy accounting via Opacus accountants (RDP or PRV), and the DP attack ceiling.

Pure functions (`epsilon_for`, `noise_for_epsilon`) plus two thin stateful shells:
`ClientAccountants` keeps one Opacus accountant per client across rounds (sample-level DP-SGD,
each client composes its own local steps at its own sampling rate), and `CountAccountant`
keeps a step count for one fixed (noise, sample rate) mechanism (user-level DP).

Every accountant models the Poisson-subsampled Gaussian mechanism. Where the engine samples
fixed-size batches or a fixed number of clients without replacement, the epsilon reported is
the usual Poisson approximation (as Opacus does for shuffled batches); document it as such.

>>> e1 = epsilon_for(1.0, sample_rate=0.1, steps=10, delta=1e-5)
>>> e2 = epsilon_for(1.0, sample_rate=0.1, steps=20, delta=1e-5)
>>> 0 < e1 < e2
True
>>> epsilon_for(0.0, sample_rate=0.1, steps=1, delta=1e-5)
inf
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Hashable

import numpy as np

from sergrad.errors import ConfigError
from sergrad.privacy_bound import dp_attack_ceiling

__all__ = [
    "ACCOUNTANTS",
    "ClientAccountants",
    "CountAccountant",
    "dp_attack_ceiling",
    "epsilon_for",
    "make_accountant",
    "noise_for_epsilon",
]

ACCOUNTANTS: tuple[str, ...] = ("rdp", "prv")
MAX_NOISE = 1e6  # opacus.accountants.utils.MAX_SIGMA


def make_accountant(name: str):
    """A fresh Opacus accountant: "rdp" (RDPAccountant) or "prv" (PRVAccountant)."""
    from opacus.accountants import PRVAccountant, RDPAccountant

    table = {"rdp": RDPAccountant, "prv": PRVAccountant}
    if name not in table:
        raise ConfigError(f"unknown accountant {name!r}; valid: {', '.join(ACCOUNTANTS)}")
    return table[name]()


@functools.lru_cache(maxsize=4096)
def _rdp_per_step(noise_multiplier: float, sample_rate: float) -> np.ndarray:
    """Opacus's compute_rdp for ONE step at the default orders (the slow part, cached)."""
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis import rdp as rdp_analysis

    return rdp_analysis.compute_rdp(
        q=sample_rate,
        noise_multiplier=noise_multiplier,
        steps=1,
        orders=RDPAccountant.DEFAULT_ALPHAS,
    )


def _rdp_epsilon(history: list[tuple[float, float, int]], delta: float) -> float:
    """RDPAccountant.get_epsilon, same arithmetic (compute_rdp is linear in steps), cached."""
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis import rdp as rdp_analysis

    rdp = sum([_rdp_per_step(sigma, q) * n for sigma, q, n in history])
    eps, _ = rdp_analysis.get_privacy_spent(
        orders=RDPAccountant.DEFAULT_ALPHAS, rdp=rdp, delta=delta
    )
    return float(eps)


def _history_epsilon(history: list[tuple[float, float, int]], delta: float, name: str) -> float:
    """Epsilon of an Opacus history [(noise_multiplier, sample_rate, steps), ...] at delta."""
    history = [(sigma, q, n) for sigma, q, n in history if q > 0 and n > 0]
    if not history:
        return 0.0
    if any(sigma <= 0 for sigma, _, _ in history):
        return math.inf
    with warnings.catch_warnings():  # q = 1 and tiny alphas make Opacus warn; results are fine
        warnings.simplefilter("ignore")
        if name == "rdp":
            return _rdp_epsilon(history, delta)
        accountant = make_accountant(name)
        accountant.history = list(history)
        return float(accountant.get_epsilon(delta=delta))


def epsilon_for(
    noise_multiplier: float,
    *,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: str = "rdp",
) -> float:
    """Epsilon after `steps` Poisson-subsampled Gaussian steps (inf when noise is 0)."""
    if steps <= 0:
        return 0.0
    return _history_epsilon([(noise_multiplier, sample_rate, steps)], delta, accountant)


def noise_for_epsilon(
    target_epsilon: float,
    *,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: str = "rdp",
    who: str = "defense",
) -> float:
    """Smallest noise multiplier (Opacus binary search) meeting target_epsilon after `steps`.

    A target that cannot be met with noise <= 1e6 is a ConfigError giving the valid range.
    """
    from opacus.accountants.utils import get_noise_multiplier

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(
                get_noise_multiplier(
                    target_epsilon=target_epsilon,
                    target_delta=delta,
                    sample_rate=sample_rate,
                    steps=steps,
                    accountant=accountant,
                )
            )
    except ValueError as exc:
        floor = epsilon_for(
            MAX_NOISE, sample_rate=sample_rate, steps=steps, delta=delta, accountant=accountant
        )
        raise ConfigError(
            f"{who}: target_epsilon {target_epsilon:g} cannot be met at delta {delta:g}, "
            f"sample rate {sample_rate:g}, {steps} steps; valid range: target_epsilon > "
            f"{floor:.3g} ({exc})"
        ) from None


class ClientAccountants:
    """One accountant history per client, composed across rounds; epsilon cached per client."""

    def __init__(self, accountant: str = "rdp") -> None:
        self.accountant = accountant
        self._accountants: dict[Hashable, object] = {}
        self._epsilon: dict[Hashable, float] = {}  # valid until the client steps again
        self._by_history: dict[tuple, float] = {}  # same history -> same epsilon

    def step(self, client: Hashable, *, noise_multiplier: float, sample_rate: float, steps: int):
        """Record `steps` Gaussian steps of this client (Opacus's accountant.step per step)."""
        acc = self._accountants.get(client)
        if acc is None:
            acc = self._accountants[client] = make_accountant(self.accountant)
        for _ in range(steps):
            acc.step(noise_multiplier=noise_multiplier, sample_rate=sample_rate)
        self._epsilon.pop(client, None)

    def epsilon(self, client: Hashable, delta: float) -> float:
        if client not in self._accountants:
            return 0.0
        if client not in self._epsilon:
            history = tuple(self._accountants[client].history)
            key = (history, delta)
            if key not in self._by_history:
                self._by_history[key] = _history_epsilon(list(history), delta, self.accountant)
            self._epsilon[client] = self._by_history[key]
        return self._epsilon[client]

    def max_epsilon(self, delta: float) -> float:
        """The worst client's epsilon (0 before any client trained).

        Epsilon grows with the sample rate and the step count, so a client whose single-entry
        history (sigma, q, n) is dominated by another's (same sigma, q' >= q, n' >= n) cannot
        be the maximum and is not evaluated (PRV costs ~1 s per evaluation).
        """
        return max((self.epsilon(c, delta) for c in self._candidates()), default=0.0)

    def _candidates(self) -> list[Hashable]:
        singles, out = [], []
        for c, acc in self._accountants.items():
            if len(acc.history) == 1:
                sigma, q, n = acc.history[0]
                singles.append((sigma, -q, -n, c))
            else:
                out.append(c)
        best_n: dict[float, float] = {}  # sigma -> most steps seen at a higher or equal q
        for sigma, _neg_q, neg_n, c in sorted(singles, key=lambda t: t[:3]):
            if -neg_n > best_n.get(sigma, -1):
                best_n[sigma] = -neg_n
                out.append(c)
        return out

    def __len__(self) -> int:
        return len(self._accountants)


class CountAccountant:
    """Composition of one mechanism at varying sample rates, steps counted per (noise, rate)."""

    def __init__(self, accountant: str = "rdp") -> None:
        self.accountant = accountant
        self.history: list[tuple[float, float, int]] = []  # Opacus layout, merged runs
        self._cache: dict[tuple, float] = {}

    def step(self, *, noise_multiplier: float, sample_rate: float, steps: int = 1) -> None:
        if self.history and self.history[-1][:2] == (noise_multiplier, sample_rate):
            sigma, q, n = self.history.pop()
            self.history.append((sigma, q, n + steps))
        else:
            self.history.append((noise_multiplier, sample_rate, steps))

    def epsilon(self, delta: float) -> float:
        key = (tuple(self.history), delta)
        if key not in self._cache:
            self._cache[key] = _history_epsilon(self.history, delta, self.accountant)
        return self._cache[key]
