"""The sweep's `audit:` section. YAML keys equal these field names.

    audit:
      canary: {enabled: true, n_canaries: 200, guess_fraction: 0.2, confidence: 0.95}

`canary` plans one one-run canary audit (sergrad.audit.run_audit) per target run whose
in-loop defense is `dp_sgd` or `user_dp` with `mode: central`; enabled by default (a few
seconds per run on one core at the default size).

>>> CanaryAuditConfig(n_canaries=1)
Traceback (most recent call last):
...
sergrad.errors.ConfigError: audit.canary.n_canaries must be an integer in [10, 100000], got 1
"""

from __future__ import annotations

from dataclasses import dataclass

from sergrad.errors import ConfigError


@dataclass(frozen=True)
class CanaryAuditConfig:
    enabled: bool = True
    n_canaries: int = 200  # m: canaries, each included with probability 1/2
    guess_fraction: float = 0.2  # the auditor guesses on this share (half in, half out)
    confidence: float = 0.95  # of the epsilon lower bound

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"audit.canary.enabled must be true or false, got {self.enabled!r}")
        m = self.n_canaries
        if isinstance(m, bool) or not isinstance(m, int) or not 10 <= m <= 100_000:
            raise ConfigError(
                f"audit.canary.n_canaries must be an integer in [10, 100000], got {m!r}"
            )
        if not 0 < self.guess_fraction <= 1:
            raise ConfigError(
                f"audit.canary.guess_fraction must be in (0, 1], got {self.guess_fraction!r}"
            )
        if not 0.5 <= self.confidence < 1:
            raise ConfigError(
                f"audit.canary.confidence must be in [0.5, 1), got {self.confidence!r}"
            )


@dataclass(frozen=True)
class AuditConfig:
    canary: CanaryAuditConfig = CanaryAuditConfig()
