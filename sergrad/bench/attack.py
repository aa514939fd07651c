"""`sergrad bench attack`: training throughput, peak memory and UAR of the attack models.

Synthetic, random-but-separable updates at the paper's first-layer shape (fc1 256 x 988 plus
its bias, float32, ~1 MB each) go through the attack's real data path: one streaming pass of float64 moments, a second pass that
normalises, applies each model's fixed transform and writes a RowFile, then training
(speaker-free 80/20 split) and scoring on fresh updates. Updates are generated batch by batch,
so nothing holds the whole set. Reported per model: training updates/s (read + forward +
backward + step), feature-building updates/s, peak RSS of the process during that model
(Linux: VmHWM after resetting it via /proc/self/clear_refs, beside the RSS
before the model: torch alone is several hundred MB), and test UAR.
Prints a markdown table. `--quick` shrinks everything to a smoke test.

Two kinds of leak (`--leak`):
- `shift` (default): gender adds a fixed rank-1 pattern to every element (sergrad.attack.synth),
  the same hidden basis in every update: what element-wise attacks (cnn, stats) see best.
- `comovement`: gradient-like updates mean_i(a_i x_i^T) with a fresh random hidden basis per
  update, gender only choosing the signs with which the inputs co-move (each input moves as
  much for both genders): the part of a real first layer's leak that survives a change of
  run or round, and what `logreg_colcorr` is built for.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

DEFAULT_MODELS = ("logreg_colcorr", "logreg_stats", "mlp_proj", "cnn")
LEAKS = ("shift", "comovement")
DEFAULT_SIGNAL = {"shift": 0.05, "comovement": 0.15}
PATTERN_SEED = 7  # gender directions of the comovement leak


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--n-train", type=int, default=1000, help="shadow updates")
    parser.add_argument("--n-test", type=int, default=250, help="target updates")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--shape", type=int, nargs=2, default=(256, 988), metavar=("OUT", "IN"))
    parser.add_argument("--leak", choices=LEAKS, default="shift",
                        help="how gender shows in the updates (see module docstring)")  # fmt: skip
    parser.add_argument("--signal", type=float, default=None,
                        help="leak strength (default 0.05 for shift, 0.15 for comovement)")  # fmt: skip
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="training time budget per model (model.params.max_seconds)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _status_mb(key: str) -> float:
    """VmHWM (peak) or VmRSS (current) of this process in MB; ru_maxrss where no /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _batches(n: int, *, shapes, signal: float, seed: int, leak: str = "shift", batch: int = 32):
    """(genders [b], arrays) batches, regenerated identically for the same seed."""
    import numpy as np

    from sergrad.attack.synth import synthetic_updates

    rng = np.random.default_rng(seed)
    # The same two gender directions for shadow (seed) and target (seed + 1) updates, equal in
    # magnitude per input (M flips the sign of half of F's entries): only the sign of the
    # inputs' co-movement tells the genders apart, not how much each input moves.
    prng = np.random.default_rng(PATTERN_SEED)
    female = prng.standard_normal(shapes["fc1.weight"][1])
    patterns = np.stack([female, female * prng.choice([-1.0, 1.0], size=female.shape)])
    for s in range(0, n, batch):
        g = rng.integers(0, 2, size=min(batch, n - s))
        if leak == "comovement":
            yield g, comovement_updates(shapes, g, patterns, signal=signal, rng=rng)
        else:
            sig = {"fc1": signal}
            yield g, synthetic_updates(shapes, g, signal=sig, rng=rng, offset=0.01, scale=1.0)


def comovement_updates(shapes, genders, patterns, *, signal: float, rng, samples: int = 20):
    """Gradient-like fc1 updates mean_i(a_i x_i^T) with fresh hidden directions a_i per update
    (no two updates share a hidden basis, as across runs and rounds); each gender's inputs
    co-move along its own fixed direction (patterns [2, in]) with strength `signal`."""
    import numpy as np

    out_dim, in_dim = shapes["fc1.weight"]
    w = np.empty((len(genders), out_dim * in_dim), np.float32)
    b = np.empty((len(genders), out_dim), np.float32)
    for k, g in enumerate(genders):
        x = rng.standard_normal((samples, in_dim))
        x += signal * rng.standard_normal((samples, 1)) * patterns[g]  # [samples, in]
        a = rng.standard_normal((samples, out_dim))  # [samples, out]
        w[k] = (a.T @ x / samples).ravel()
        b[k] = a.mean(axis=0)
    return {"fc1.weight": w, "fc1.bias": b}


def bench_model(name: str, args, tmp: str) -> dict:
    import numpy as np
    import torch

    from sergrad.attack import dataset as D
    from sergrad.attack.config import AttackModelConfig
    from sergrad.attack.metrics import uar
    from sergrad.attack.models import create
    from sergrad.attack.train import predict_features, train_attack

    out_dim, in_dim = args.shape
    shapes = {"fc1.weight": (out_dim, in_dim), "fc1.bias": (out_dim,)}
    _reset_peak()
    base_mb = _status_mb("VmRSS")
    moments = {p: D.Moments.zeros(int(np.prod(s))) for p, s in shapes.items()}
    data = {"shapes": shapes, "signal": args.signal, "leak": args.leak}
    for _, arrays in _batches(args.n_train, seed=args.seed, **data):
        for p in shapes:
            moments[p].update(arrays[p])
    stats = {p: (m.mean, m.std()) for p, m in moments.items()}
    gen = torch.Generator().manual_seed(args.seed)
    params = {} if args.max_seconds is None else {"max_seconds": args.max_seconds}
    model = create(name, shapes=shapes, params=params, generator=gen)
    rows = D.RowFile(os.path.join(tmp, f"{name}.bin"), width=model.n_features,
                     dtype=model.storage_dtype)  # fmt: skip
    labels = []
    t0 = time.perf_counter()
    for g, arrays in _batches(args.n_train, seed=args.seed, **data):
        rows.append(model.transform(D.normalise_arrays(arrays, stats)))
        labels.append(g)
    build_s = time.perf_counter() - t0
    y = np.concatenate(labels)
    perm = np.random.default_rng(args.seed).permutation(len(y))
    n_val = max(2, len(y) // 5)
    cfg = AttackModelConfig(name=name, epochs=args.epochs, patience=args.epochs)
    fit = train_attack(model, rows, y, train_idx=np.sort(perm[n_val:]), val_idx=np.sort(perm[:n_val]),
                       config=cfg, generator=gen, device=args.device)  # fmt: skip
    preds, truth = [], []
    for g, arrays in _batches(args.n_test, seed=args.seed + 1, **data):
        feats = model.transform(D.normalise_arrays(arrays, stats))
        preds.append(predict_features(model, feats, device=args.device) >= 0.5)
        truth.append(g)
    rows.close()
    return {
        "model": name,
        "features": model.n_features,
        "build_ups": args.n_train / build_s,
        "train_ups": fit.updates_per_s,
        "epochs": fit.epochs_run,
        "val_uar": fit.best_val_uar,
        "test_uar": uar(np.concatenate(truth), np.concatenate(preds).astype(int)),
        "base_mb": base_mb,
        "peak_mb": _status_mb("VmHWM"),
        "disk_mb": rows.n_rows * rows.row_bytes / 2**20,
    }


def format_markdown(results: list[dict], *, reference: str = "cnn") -> str:
    ref = next((r for r in results if r["model"] == reference), None)
    lines = [
        "| model | features/update | build upd/s | train upd/s | x cnn speed | epochs | val UAR | test UAR | RSS before MB | peak RSS MB | rows on disk MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = r["train_ups"] / ref["train_ups"] if ref else float("nan")
        lines.append(
            f"| {r['model']} | {r['features']} | {r['build_ups']:.0f} | {r['train_ups']:.1f} | "
            f"{ratio:.1f} | {r['epochs']} | {r['val_uar']:.3f} | {r['test_uar']:.3f} | "
            f"{r['base_mb']:.0f} | {r['peak_mb']:.0f} | {r['disk_mb']:.0f} |"
        )
    return "\n".join(lines)


def main(args) -> int:
    import torch

    if args.quick:
        args.n_train, args.n_test, args.epochs = 60, 20, 1
        args.shape = (16, 40)
    if args.signal is None:
        args.signal = DEFAULT_SIGNAL[args.leak]
    torch.set_num_threads(args.threads)
    results = []
    with tempfile.TemporaryDirectory(prefix="sergrad-bench-attack-") as tmp:
        for name in args.models:
            results.append(bench_model(name, args, tmp))
    out_dim, in_dim = args.shape
    print(f"attack bench: fc1 {out_dim}x{in_dim}, {args.leak} leak (signal {args.signal}), "
          f"{args.n_train} train / {args.n_test} test updates, {args.epochs} epochs, "
          f"device {args.device}, {args.threads} thread(s)")  # fmt: skip
    print(format_markdown(results))
    return 0
