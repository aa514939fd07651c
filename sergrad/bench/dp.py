"""`sergrad bench dp`: DP-SGD step time, fast path vs Opacus, relative to a non-private step.

One local SGD step of the SER MLP (D-H1-H2-4, ReLU, cross-entropy) on one mini-batch, timed
as the median over repeats after warm-up, the rows in turn (round-robin, so a changing load
slows all rows alike), single-threaded by default. Rows:

- non-private (nn.Module): forward, loss.backward(), SGD step; the baseline (ratio 1.00);
- non-private (manual): the same step with a hand-written backward, as the fast engine runs it;
- fast DP-SGD, clip only / clip + noise: the manual step with the fast engine's DP-SGD
  (sergrad.fl.dp_clip.dp_sgd_grads_: per-sample clipping from closed-form per-sample norms, no
  per-sample gradient tensors; Opacus-style Gaussian noise (sigma C) on every parameter drawn
  into the gradient buffer, the clipped sum accumulated onto it);
- Opacus hooks: GradSampleModule + DPOptimizer (per-sample gradients materialised);
- Opacus ghost clipping: PrivacyEngine.make_private(grad_sample_mode="ghost");
- Gaussian noise draw alone: N(0, (sigma C)^2) for every parameter, drawn into preallocated
  buffers from the same kind of generator (what DP-SGD must pay on top of a non-private step
  whatever the clipping).

Targets: fast DP-SGD <= 2x the non-private step, and fast DP-SGD with noise within 10% of
(non-private manual step + the noise draw): printed per batch as "clip + noise / (manual +
noise draw)". The Opacus rows are skipped when opacus is not installed. Prints a Markdown
table per shape.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

# The weights never move (lr 0; the optimiser step is still done), so every timed step sees
# the same weights: with noise and a real lr they random-walk and the timings drift.
LR = 0.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dim", type=int, default=988, help="input dimension D (paper: 988)")
    parser.add_argument("--hidden", type=int, nargs=2, default=(256, 128), metavar=("H1", "H2"))
    parser.add_argument(
        "--batch", type=int, nargs="+", default=[20, 256], help="batch sizes (paper: 20)"
    )
    parser.add_argument("--repeats", type=int, default=200, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--noise", type=float, default=1.0, help="noise multiplier sigma")
    parser.add_argument("--clip", type=float, default=1.0, help="per-example clip norm C")
    parser.add_argument("--device", default="cpu")


def _time(
    steps: dict[str, Callable[[], None]], *, repeats: int, warmup: int, sync: Callable[[], None]
) -> dict[str, float]:
    """Median seconds per step of each closure, timed round-robin (one step of each in turn)
    so that a machine whose load changes slows every row alike."""
    for name, step in steps.items():
        print(f"  warm-up: {name} ...", file=sys.stderr)
        for _ in range(warmup):
            step()
    sync()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            sync()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def _steps(args, batch: int) -> dict[str, Callable[[], None]]:
    """Name -> a closure that performs one step (state lives in the closures)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from sergrad.fl.dp_clip import dp_sgd_grads_, draw_normal_

    dev = torch.device(args.device)
    sizes = [args.dim, *args.hidden, 4]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, args.dim, generator=g).to(dev)  # [B, D]
    y = torch.randint(0, 4, (batch,), generator=g).to(dev)  # [B]

    def model() -> nn.Module:
        layers = [nn.Linear(sizes[0], sizes[1]), nn.ReLU(), nn.Linear(sizes[1], sizes[2])]
        m = nn.Sequential(*layers, nn.ReLU(), nn.Linear(sizes[2], sizes[3]))
        init = torch.Generator().manual_seed(0)  # same weights in every row
        with torch.no_grad():
            for p in m.parameters():
                p.copy_((torch.rand(p.shape, generator=init) - 0.5) * 0.1)
        return m.to(dev)

    def module_step(m: nn.Module, opt) -> Callable[[], None]:
        def step():
            opt.zero_grad()
            F.cross_entropy(m(x), y).backward()
            opt.step()

        return step

    plain = model()
    params = [p.detach().clone() for p in model().parameters()]  # W1 b1 W2 b2 W3 b3
    noise_g = torch.Generator().manual_seed(1)  # CPU draws, as the engines make them

    grads = [torch.empty_like(p) for p in params]  # preallocated, as in the fast engine
    pairs = [
        (grads[0][None], grads[1][None]),
        (grads[2][None], grads[3][None]),
        (grads[4][None], grads[5][None]),
    ]  # fmt: skip  (a cohort of one client)
    ebs = torch.tensor([float(batch)])

    def manual(dp: bool, noise: float) -> Callable[[], None]:
        """One step as the fast engine runs it (sergrad.fl.dp_clip.dp_sgd_grads_ when dp)."""

        def step():
            w1, b1, w2, b2, w3, b3 = params
            z1 = torch.addmm(b1, x, w1.T)  # [B, H1]
            h1 = torch.relu(z1)
            z2 = torch.addmm(b2, h1, w2.T)  # [B, H2]
            h2 = torch.relu(z2)
            d3 = torch.softmax(torch.addmm(b3, h2, w3.T), dim=1)  # [B, K]
            d3[torch.arange(batch, device=dev), y] -= 1.0  # per-sample dloss_i/dlogits
            d2 = (d3 @ w3) * (z2 > 0)  # [B, H2]
            d1 = (d2 @ w2) * (z1 > 0)  # [B, H1]
            acts, deltas = [x, h1, h2], [d1, d2, d3]
            if dp:
                dp_sgd_grads_([a[None] for a in acts], [d[None] for d in deltas], pairs,
                              max_norm=args.clip, noise_std=noise * args.clip,
                              expected_batch_sizes=ebs, generators=[noise_g])  # fmt: skip
            else:
                d3.div_(batch)  # the batch mean
                for a, d, (w, b) in zip(acts, deltas, pairs):
                    torch.mm(d.T, a, out=w[0])  # [O, I]
                    torch.sum(d, dim=0, out=b[0])  # [O]
            for p, grad in zip(params, grads):
                p.add_(grad, alpha=-LR)

        return step

    noise_bufs = [torch.empty_like(p) for p in params]

    def noise_draw() -> None:  # the cheapest draw: into preallocated buffers
        for buf in noise_bufs:
            draw_normal_(buf, args.noise * args.clip, generator=noise_g)

    steps = {
        "non-private (nn.Module)": module_step(plain, torch.optim.SGD(plain.parameters(), lr=LR)),
        "non-private (manual)": manual(dp=False, noise=0.0),
        "fast DP-SGD, clip only": manual(dp=True, noise=0.0),
        "fast DP-SGD, clip + noise": manual(dp=True, noise=args.noise),
        "Gaussian noise draw alone": noise_draw,
    }
    try:
        steps.update(_opacus_steps(args, batch, model, module_step, x, y))
    except ModuleNotFoundError as exc:  # opacus is optional here
        print(f"  opacus rows skipped: {exc}", file=sys.stderr)
    return steps


def _opacus_steps(args, batch, model, module_step, x, y) -> dict[str, Callable[[], None]]:
    import torch
    from opacus import GradSampleModule, PrivacyEngine
    from opacus.optimizers import DPOptimizer
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    hooked = GradSampleModule(model())
    hooked_opt = DPOptimizer(
        torch.optim.SGD(hooked.parameters(), lr=LR),
        noise_multiplier=args.noise,
        max_grad_norm=args.clip,
        expected_batch_size=batch,
    )
    ghost_model = model()
    engine = PrivacyEngine()
    loader = DataLoader(TensorDataset(x, y), batch_size=batch)
    ghost, ghost_opt, criterion, _ = engine.make_private(
        module=ghost_model,
        optimizer=torch.optim.SGD(ghost_model.parameters(), lr=LR),
        data_loader=loader,
        noise_multiplier=args.noise,
        max_grad_norm=args.clip,
        grad_sample_mode="ghost",
        criterion=nn.CrossEntropyLoss(),
        poisson_sampling=False,
    )

    def ghost_step():
        ghost_opt.zero_grad()
        criterion(ghost(x), y).backward()
        ghost_opt.step()

    return {
        "Opacus hooks (GradSampleModule)": module_step(hooked, hooked_opt),
        "Opacus ghost clipping": ghost_step,
    }


def run(args) -> list[tuple[int, str, float, float, float]]:
    """[(batch, row, ms per step, ratio to non-private nn.Module, ratio to non-private manual)]."""
    import warnings

    import torch

    torch.set_num_threads(args.threads)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    out = []
    for batch in args.batch:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Opacus warns about secure RNG and hooks
            steps = _steps(args, batch)
            print(f"  batch {batch}: timing {len(steps)} rows round-robin ...", file=sys.stderr)
            times = _time(steps, repeats=args.repeats, warmup=args.warmup, sync=sync)
        base, manual = times["non-private (nn.Module)"], times["non-private (manual)"]
        out += [(batch, name, t * 1e3, t / base, t / manual) for name, t in times.items()]
        floor = manual + times["Gaussian noise draw alone"]
        dp = times["fast DP-SGD, clip + noise"]
        out.append((batch, "clip + noise / (manual + noise draw)", floor * 1e3, dp / floor, 0.0))
    return out


def table(rows, args) -> str:
    head = (
        f"DP-SGD step, D={args.dim}, hidden={tuple(args.hidden)}, sigma={args.noise}, "
        f"C={args.clip}, {args.threads} thread(s), {args.device}, median of {args.repeats}\n\n"
        "| batch | step | ms / step | x non-private (nn.Module) | x non-private (manual) |\n"
        "|---:|---|---:|---:|---:|\n"
    )
    body = ""
    for b, n, ms, r, m in rows:
        if n.startswith("clip + noise /"):  # ms = the floor, r = the ratio to it
            body += f"| {b} | fast DP-SGD / (manual + noise draw) | {ms:.3f} floor | {r:.2f} | |\n"
        else:
            body += f"| {b} | {n} | {ms:.3f} | {r:.2f} | {m:.2f} |\n"
    return head + body


def main(args) -> int:
    rows = run(args)
    print(table(rows, args))
    return 0
