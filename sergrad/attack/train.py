"""Training an attack model on shadow feature rows, with a speaker-level validation split.

Validation is split by shadow SPEAKER, not by sample or client: one speaker appears as
several clients (IEMOCAP/MSP-Improv shards) and again in every shadow fold's run, so a
client- or run-level split would put the same voice on both sides and overstate the attack
(the paper split by sample, which leaks). Speakers are drawn per gender so that validation
holds both classes, and each gender keeps at least one speaker for training.

Loop: Adam, mini-batches from a seeded permutation, ReduceLROnPlateau on validation UAR
(factor 0.5, patience max(1, patience // 2)), early stopping after `patience` epochs without a
better validation UAR, an optional time budget (`model.params.max_seconds`: no epoch starts
after it is spent; the cnn on a CPU), and the weights of the best epoch restored at the end.
`TrainResult.stopped` says which ended it: "epochs", "patience" or "budget" (a budget makes
the epoch count depend on the machine: it is recorded in the evaluation's note). On CUDA,
`model.params.amp` (default true for the cnn) trains and predicts in bfloat16/float16
autocast with a gradient scaler for float16. Dropout draws
from torch's global RNG, so each training runs inside `torch.random.fork_rng` seeded from the
caller's generator: reproducible, and the caller's global RNG state is left untouched.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sergrad.attack.config import AttackModelConfig
from sergrad.attack.dataset import RowFile
from sergrad.attack.models import AttackModel
from sergrad.attack.optim import Adam, Plateau


def split_by_speaker(
    speakers: np.ndarray, labels: np.ndarray, *, val_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, val): val takes ~val_fraction of each class's speakers (`labels`:
    class index per row, gender F=0 / M=1; one stratum 0 for a numeric attribute; rows with
    a negative label, an unknown attribute value, are in neither set)."""
    val_speakers: set = set()
    known = labels >= 0
    if val_fraction > 0:
        for g in np.unique(labels[known]):
            spk = np.unique(speakers[labels == g])  # sorted: deterministic before shuffling
            if len(spk) < 2:
                continue
            k = min(len(spk) - 1, max(1, round(val_fraction * len(spk))))
            val_speakers.update(rng.permutation(spk)[:k].tolist())
    is_val = np.isin(speakers, list(val_speakers))
    return np.flatnonzero(~is_val & known), np.flatnonzero(is_val & known)


@dataclass(frozen=True)
class TrainResult:
    best_val_uar: float  # NaN without a validation set
    best_epoch: int
    epochs_run: int
    n_train: int
    n_val: int
    wall_s: float
    updates_per_s: float  # training throughput: updates / time in read+forward+backward+step
    history: tuple[dict, ...]
    stopped: str = "epochs"  # epochs | patience | budget
    reused: str = ""  # fit-cache key this fit was loaded from (`attack.fit_cache`); "" = trained


def use_amp(model: AttackModel, device: str) -> bool:
    """Mixed precision: on CUDA only, for models that ask for it (`amp`, default cnn)."""
    return device.startswith("cuda") and bool(model.train.get("amp", model.name == "cnn"))


def _autocast(model: AttackModel, device: str):
    if not use_amp(model, device):
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=_amp_dtype())


def _amp_dtype() -> torch.dtype:
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _to_device(rows: np.ndarray, device: str) -> torch.Tensor:
    x = torch.from_numpy(rows)
    if device.startswith("cuda"):
        return x.pin_memory().to(device, non_blocking=True)
    return x


def predict_proba(
    model: AttackModel,
    rows: RowFile,
    idx: np.ndarray,
    *,
    device: str,
    batch_size: int = 20,
    read: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """`model.target.outputs` for rows `idx` (gender: P(male) [N]), eval mode (dropout off,
    batch-norm running stats); `read` (default `rows.read`) fetches rows, e.g.
    `rows.reader()` when they fit in memory."""
    read = read or rows.read
    model.module.eval()
    out = []
    with torch.no_grad(), _autocast(model, device):
        for s in range(0, len(idx), batch_size):
            x = _to_device(read(idx[s : s + batch_size]), device)  # [b, F]
            out.append(model.target.outputs(model.module(x)))
    return np.concatenate(out) if out else model.target.empty()


def predict_features(model: AttackModel, feats: np.ndarray, *, device: str) -> np.ndarray:
    """`model.target.outputs` (gender: P(male)) for in-memory feature rows [B, F]."""
    model.module.eval()
    with torch.no_grad(), _autocast(model, device):
        x = _to_device(np.ascontiguousarray(feats, np.float32), device)
        return model.target.outputs(model.module(x))


def train_attack(
    model: AttackModel,
    rows: RowFile,
    labels: np.ndarray,
    *,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    config: AttackModelConfig,
    generator: torch.Generator,
    device: str = "cpu",
    progress: bool = False,
) -> TrainResult:
    """Train `model.module` in place; it ends with the best-validation-UAR weights."""
    lr = float(model.train.get("lr", config.lr))
    batch_size = int(model.train.get("batch_size", config.batch_size))
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return _train(model, rows, labels, train_idx, val_idx, config, lr, batch_size, device,
                      torch.Generator().manual_seed(seed), progress)  # fmt: skip


def _train(model, rows, labels, train_idx, val_idx, config, lr, batch_size, device, gen, progress):
    module: nn.Module = model.module.to(device)
    opt = Adam(module.parameters(), lr=lr)  # torch.optim.Adam's rule, no torch._dynamo import
    sched = Plateau(opt, factor=0.5, patience=max(1, config.patience // 2))
    loss_fn = model.target.loss()  # cross-entropy; squared error for a numeric attribute
    amp = use_amp(model, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp and _amp_dtype() == torch.float16)
    budget = model.train.get("max_seconds")
    budget = None if budget is None else float(budget)
    stopped = "epochs"
    y_all = model.target.y_tensor(labels)  # [N] class index, or [N, 1] standardised value
    read = rows.reader()  # fast attacks' rows fit in memory: no read per mini-batch
    best, best_epoch, best_state, stale, history = -np.inf, 0, None, 0, []
    t0, seen, step_s = time.perf_counter(), 0, 0.0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.epochs, desc=f"train {model.name}", unit="epoch", leave=False)
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        module.train()
        perm = train_idx[torch.randperm(len(train_idx), generator=gen).numpy()]
        total = 0.0
        for s in range(0, len(perm), batch_size):
            idx = np.sort(perm[s : s + batch_size])  # sorted: contiguous reads
            if len(idx) < 2 and len(perm) > 1:
                continue  # batch-norm needs 2 rows
            ts = time.perf_counter()
            x = _to_device(read(idx), device)  # [b, F]
            y = y_all[idx].to(device)  # [b]
            with _autocast(model, device):
                loss = loss_fn(module(x).float(), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            total += float(loss.detach()) * len(idx)  # float() syncs the device: honest step time
            step_s += time.perf_counter() - ts
            seen += len(idx)
        val = np.nan
        if len(val_idx):
            p = predict_proba(model, rows, val_idx, device=device, batch_size=batch_size,
                              read=read)  # fmt: skip
            val = model.target.val_score(labels[val_idx], p)  # UAR; numeric: -MAE
        score = val if len(val_idx) else -total  # no validation: keep the last/lowest loss
        history.append(
            {"epoch": epoch, "train_loss": total / max(1, len(train_idx)), "val_uar": val}
        )
        if bar is not None:
            bar.update(1)
            bar.set_postfix(val_uar=f"{val:.3f}")
        if score > best:
            best, best_epoch, stale = score, epoch, 0
            best_state = copy.deepcopy(module.state_dict())
        else:
            stale += 1
        sched.step(score)
        if stale >= config.patience:
            stopped = "patience"
            break
        if budget is not None and epoch < config.epochs and time.perf_counter() - t0 >= budget:
            stopped = "budget"
            break
    if bar is not None:
        bar.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    wall = time.perf_counter() - t0
    return TrainResult(
        best_val_uar=float(best) if len(val_idx) else float("nan"),
        best_epoch=best_epoch,
        epochs_run=epoch,
        n_train=len(train_idx),
        n_val=len(val_idx),
        wall_s=wall,
        updates_per_s=seen / step_s if step_s > 0 else float("nan"),
        history=tuple(history),
        stopped=stopped,
    )
