"""Synthetic harvested runs whose updates leak gender, for tests, benchmarks and demos.

Each update of parameter p is `offset + scale * N(0, 1) + signal[layer] * sign(gender) *
pattern_p`, where pattern_p is a fixed rank-1 pattern (outer(u, v) for a weight, u for a
bias) drawn from `pattern_seed`, the same for every run, so shadow and target runs leak the
same way, as a real model's first layer does (W1's gradient is delta (x) x, and gender shifts
the input features x). n_samples and rounds carry no gender information.

>>> import tempfile
>>> from sergrad.store import Store
>>> s = Store(tempfile.mkdtemp())
>>> write_synthetic_run(s, "r1", corpus="a", shapes={"fc1.weight": (4, 6), "fc1.bias": (4,)},
...     speakers=[("s1", "F"), ("s2", "M")], rounds=3, seed=0)
6
"""

from __future__ import annotations

import math

import numpy as np

from sergrad.store import Store

TINY_SHAPES: dict[str, tuple[int, ...]] = {
    "fc1.weight": (8, 20),
    "fc1.bias": (8,),
    "fc2.weight": (6, 8),
    "fc2.bias": (6,),
    "fc3.weight": (4, 6),
    "fc3.bias": (4,),
}


def leak_pattern(shape: tuple[int, ...], *, seed: int) -> np.ndarray:
    """A fixed unit-RMS rank-1 pattern for a parameter shape (flattened)."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(shape[0])
    pat = np.outer(u, rng.standard_normal(shape[1])) if len(shape) == 2 else u
    pat = pat.ravel()
    return (pat / math.sqrt(np.mean(pat**2))).astype(np.float32)


def synthetic_updates(
    shapes: dict[str, tuple[int, ...]],
    genders: np.ndarray,
    *,
    signal: dict[str, float],
    rng: np.random.Generator,
    offset: float = 0.0,
    scale: float = 1.0,
    pattern_seed: int = 1234,
    strength: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """{param: float32 [len(genders), numel]}; genders are 0 (F) / 1 (M). `strength` [B]
    replaces the gender sign (+1 M, -1 F) as the multiplier of the leak pattern."""
    sign = np.where(np.asarray(genders) == 1, 1.0, -1.0)[:, None]  # [B, 1]
    if strength is not None:
        sign = np.asarray(strength, np.float64)[:, None]
    out = {}
    for i, (p, shape) in enumerate(shapes.items()):
        numel = math.prod(shape)
        s = signal.get(p.split(".")[0], 0.0)
        noise = rng.standard_normal((len(sign), numel), dtype=np.float32)
        pat = leak_pattern(shape, seed=pattern_seed + i)
        out[p] = (offset + scale * noise + (s * sign) * pat).astype(np.float32)
    return out


def write_synthetic_run(
    store: Store,
    run_id: str,
    *,
    corpus: str,
    shapes: dict[str, tuple[int, ...]],
    speakers: list[tuple[str, str]],
    rounds: int,
    seed: int,
    clients_per_speaker: int = 1,
    clients_per_round: int | None = None,
    signal: dict[str, float] | None = None,
    offset: float = 0.0,
    scale: float = 1.0,
    role: str = "shadow",
    write_run: bool = True,
    shuffle_labels: bool = False,
    attributes: dict[str, dict] | None = None,
    leak_by_speaker: dict[str, float] | None = None,
    harvest=None,
) -> int:
    """Harvest a synthetic run (updates + runs row) into `store`; returns the update count.

    shuffle_labels: the leak follows a random coin per update, not the recorded gender (a
    control: an attack trained on such shadow runs must score at chance).
    attributes: {speaker: {age, race, ethnicity, language}} written to the clients table.
    leak_by_speaker: {speaker: multiplier of the leak pattern}, instead of the gender sign
    (e.g. the speaker's standardised age: the updates then leak age, not gender).
    harvest: the HarvestConfig (default: every parameter, float32).
    """
    import torch

    from sergrad.fl.config import HarvestConfig
    from sergrad.fl.harvest import HarvestWriter
    from sergrad.fl.records import write_clients, write_run_row
    from sergrad.fl.update import ClientUpdate

    signal = {"fc1": 1.0, "fc2": 0.3, "fc3": 0.1} if signal is None else signal
    rng = np.random.default_rng(seed)
    clients = [(s, g) for s, g in speakers for _ in range(clients_per_speaker)]
    per_round = clients_per_round or len(clients)
    n = 0
    cfg = {"synthetic": True, "seed": seed, "corpus": corpus}
    with HarvestWriter(
        store, run_id=run_id, param_names=list(shapes), param_shapes=shapes, config=cfg,
        harvest=harvest or HarvestConfig(),
    ) as writer:  # fmt: skip
        for r in range(1, rounds + 1):
            picked = np.sort(rng.choice(len(clients), size=per_round, replace=False))
            genders = np.array([1 if clients[c][1] == "M" else 0 for c in picked])
            if shuffle_labels:
                genders = rng.integers(0, 2, size=len(picked))
            strength = None
            if leak_by_speaker is not None:
                strength = np.array([leak_by_speaker[clients[c][0]] for c in picked])
            arrays = synthetic_updates(
                shapes, genders, signal=signal, rng=rng, offset=offset, scale=scale,
                strength=strength,
            )  # fmt: skip
            for j, c in enumerate(picked):
                tensors = {
                    p: torch.from_numpy(arrays[p][j].reshape(shape)) for p, shape in shapes.items()
                }
                writer.add(ClientUpdate(
                    round=r, client_id=int(c), speaker_id=clients[c][0],
                    n_samples=int(rng.integers(20, 60)), kind="gradient", tensors=tensors,
                ))  # fmt: skip
                n += 1
    attributes = attributes or {}
    write_clients(store, run_id, [
        {"client_id": c, "speaker_id": s, "gender": g, "corpus": corpus, **attributes.get(s, {})}
        for c, (s, g) in enumerate(clients)
    ])  # fmt: skip
    if write_run:
        row = {"run_id": run_id, "status": "ok", "role": role, "feature_set": "synthetic",
               "algorithm": "fedsgd", "defense": "none", "rounds": rounds, "n_updates": n}  # fmt: skip
        write_run_row(store, row, corpus)
    return n
