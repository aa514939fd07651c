"""A small store with attacks on gender, age_group, language and age (synthetic runs whose
updates leak age in fc1 only), for the attribute analysis tests and figures."""

from __future__ import annotations

from sergrad.attack.config import AttackConfig, AttackModelConfig
from sergrad.attack.run import run_attack
from sergrad.attack.synth import TINY_SHAPES, write_synthetic_run
from sergrad.store import Store

AGES = [22, 27, 35, 41, 47, 55, 63, 71]
SIGNAL = {"fc1": 0.6, "fc2": 0.0, "fc3": 0.0}
ATTRIBUTES = ("gender", "age_group", "language", "age")


def speakers(prefix: str, n: int, *, ages=AGES):
    """Speakers whose updates leak their age (the leak's strength is the standardised age)."""
    out, attrs, leak = [], {}, {}
    for i in range(n):
        s, age = f"{prefix}{i}", ages[i % len(ages)] + i // len(ages)
        out.append((s, "FM"[i % 2]))
        attrs[s] = {"age": float(age), "language": "L1" if i % 3 else "L2"}
        leak[s] = (age - 45) / 15
    return out, attrs, leak


def write_runs(store: Store, *, target_ages=AGES, targets=("tg",)) -> tuple[str, ...]:
    for i in range(2):
        s, a, leak = speakers("a", 16)
        write_synthetic_run(store, f"sh{i}", corpus="a", shapes=TINY_SHAPES, speakers=s,
                            rounds=12, clients_per_round=8, seed=i, signal=SIGNAL, attributes=a,
                            leak_by_speaker=leak)  # fmt: skip
    for j, rid in enumerate(targets):
        s, a, leak = speakers(f"b{j}_", 12, ages=target_ages)
        write_synthetic_run(store, rid, corpus="b", shapes=TINY_SHAPES, speakers=s, rounds=16,
                            clients_per_round=6, seed=9 + j, signal=SIGNAL, attributes=a,
                            leak_by_speaker=leak, role="target")  # fmt: skip
    return ("sh0", "sh1")


def attack_config(attribute: str, shadows, target: str = "tg", **kw) -> AttackConfig:
    base = dict(target_run=target, shadow_runs=shadows, layers=("fc1", "fc2"), n_avg=(1, 0),
                model=AttackModelConfig(name="logreg_stats", epochs=10), trials=2,
                bootstrap=200, attribute=attribute,
                calibrations=("shadow", "prior", "oracle"))  # fmt: skip
    return AttackConfig(**{**base, **kw})


def build(root) -> Store:
    """Two target runs (folds) x every attribute, layers fc1 (leaks age) and fc2 (no leak)."""
    store = Store(root)
    targets = ("tg", "tg2")
    shadows = write_runs(store, targets=targets)
    for target in targets:
        for attribute in ATTRIBUTES:
            run_attack(attack_config(attribute, shadows, target), store)
    return store
