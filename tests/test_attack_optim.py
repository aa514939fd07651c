"""The attack's Adam and plateau schedule against torch.optim itself (the oracle)."""

from __future__ import annotations

import math
import subprocess
import sys

import torch

from sergrad.attack.optim import Adam, Plateau


def _module(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(7, 5), torch.nn.BatchNorm1d(5), torch.nn.ReLU(), torch.nn.Linear(5, 3)
    )


def test_adam_and_plateau_match_torch_optim_bit_for_bit():
    ours, theirs = _module(0), _module(0)
    opt_o = Adam(ours.parameters(), lr=3e-3)
    opt_t = torch.optim.Adam(theirs.parameters(), lr=3e-3)
    sched_o = Plateau(opt_o, factor=0.5, patience=2)
    sched_t = torch.optim.lr_scheduler.ReduceLROnPlateau(opt_t, mode="max", factor=0.5, patience=2)
    gen = torch.Generator().manual_seed(1)
    # scores: rises, ties, tiny gains under the 1e-4 threshold, NaN, negatives (numeric -MAE)
    scores = [0.5, 0.6, 0.6, 0.60001, 0.55, float("nan"), 0.7, 0.7, 0.7, 0.7, -1.0, -0.5]
    scores += [-0.49999, -0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    lrs = []
    for epoch, score in enumerate(scores):
        for _ in range(5):
            x = torch.randn(16, 7, generator=gen)
            y = torch.randint(0, 3, (16,), generator=gen)
            for module, opt in ((ours, opt_o), (theirs, opt_t)):
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(module(x), y).backward()
                opt.step()
        sched_o.step(score)
        sched_t.step(score)
        lrs.append(opt_o.param_groups[0]["lr"])
        assert opt_o.param_groups[0]["lr"] == opt_t.param_groups[0]["lr"], epoch
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()):
        assert torch.equal(a, b)
    assert min(lrs) < 3e-3 and math.isclose(lrs[0], 3e-3)  # the schedule did reduce


def test_adam_steps_under_a_disabled_grad_scaler_like_torch():
    ours, theirs = _module(2), _module(2)
    opts = [Adam(ours.parameters(), lr=1e-2), torch.optim.Adam(theirs.parameters(), lr=1e-2)]
    scalers = [torch.amp.GradScaler("cuda", enabled=False) for _ in opts]
    x, y = torch.randn(8, 7), torch.randint(0, 3, (8,))
    for module, opt, scaler in zip((ours, theirs), opts, scalers):
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            scaler.scale(torch.nn.functional.cross_entropy(module(x), y)).backward()
            scaler.step(opt)
            scaler.update()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)


def test_training_an_attack_does_not_import_torch_dynamo(tmp_path):
    """What the optimizer is for: a fresh process trains an attack without torch._dynamo."""
    code = f"""
import sys
import numpy as np
import torch
from sergrad.attack.config import AttackModelConfig
from sergrad.attack.dataset import RowFile
from sergrad.attack.models import create
from sergrad.attack.train import train_attack
rng = np.random.default_rng(0)
x = rng.standard_normal((60, 6)).astype(np.float32)
y = (x[:, 0] > 0).astype(np.int64)
rows = RowFile({str(tmp_path / "x.bin")!r}, width=6)
rows.append(x)
m = create("logreg_stats", shapes={{"w.bias": (6,)}}, params={{}},
           generator=torch.Generator().manual_seed(0))
r = train_attack(m, rows, y, train_idx=np.arange(40), val_idx=np.arange(40, 60),
                 config=AttackModelConfig(name="logreg_stats", epochs=3, patience=2),
                 generator=torch.Generator().manual_seed(1))
print(r.epochs_run, "torch._dynamo" in sys.modules)
"""
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["3", "False"]
