"""Closed-form privacy facts shared by defenses and analysis (pure Python, no torch).

>>> round(dp_attack_ceiling(0.0, 0.0), 3)
0.5
>>> round(dp_attack_ceiling(1.0, 1e-5), 4)
0.7311
"""

from __future__ import annotations

import math


def dp_attack_ceiling(epsilon: float, delta: float) -> float:
    """Upper bound on balanced attack accuracy under (epsilon, delta)-DP: (e^eps + delta)/(1 + e^eps)."""
    if epsilon < 0 or not 0 <= delta < 1:
        raise ValueError(f"need epsilon >= 0 and 0 <= delta < 1, got {epsilon}, {delta}")
    if epsilon > 700:
        return 1.0
    e = math.exp(epsilon)
    return min(1.0, (e + delta) / (1.0 + e))
