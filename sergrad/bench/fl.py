"""`sergrad bench fl`: client updates per second, reference vs fast engine, and harvest cost.

For each shape (paper: D=988, batch 20, ~30 samples per client, 16 clients per round; demo:
the demo feature set's D=549, smaller clients) and algorithm (FedAvg 1 local epoch with
Adam, FedSGD), measures on random in-memory data:

- client updates/s of `reference` and `fast`, one thread in one process, and all cores
  (one single-threaded process per core, side by side; the sum of their rates);
- fast/reference ratio per core, achieved GFLOP/s (matmul FLOPs of forward + backward)
  against a measured single-core torch.mm peak, peak extra RSS of the measuring process;
- harvest with the fast engine: updates/s with harvest off / float32 / float16, bytes per
  update and the float16 throughput cost.

Prints markdown tables. Times are wall-clock over whole rounds after one warm-up round.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import tempfile
import time
from dataclasses import dataclass

SHAPES = {
    # name: (dim, hidden, batch, utterances per client, clients per round)
    "paper": (988, (256, 128), 20, 30, 16),
    "demo": (549, (256, 128), 20, 12, 16),
}
ALGOS = ("fedavg", "fedsgd")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="short timings (smoke run)")
    parser.add_argument("--seconds", type=float, default=None, help="time per measurement")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (all-cores rows: cpu only)")
    parser.add_argument(
        "--procs", type=int, default=os.cpu_count() or 1, help="processes for 'all cores'"
    )
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))


@dataclass(frozen=True)
class Setup:
    shape: str
    algo: str
    engine: str
    device: str = "cpu"


def _build(setup: Setup):
    import torch

    from sergrad.fl.config import AlgoConfig, DataConfig, ModelConfig
    from sergrad.fl.engine import create_engine
    from sergrad.fl.model import init_params
    from sergrad.fl.partition import partition
    from sergrad.fl.schedule import generator
    from sergrad.fl.synthetic import random_dataset

    dim, hidden, batch, per_client, per_round = SHAPES[setup.shape]
    n_speakers = per_round * 5 // 4  # 5 folds: 4/5 of the speakers train, one client each
    ds = random_dataset(n_speakers=n_speakers, utts_per_speaker=per_client, dim=dim, seed=0)
    part = partition(ds, DataConfig(clients_per_speaker=1), seed=0)
    model = ModelConfig(hidden=hidden)
    algo = AlgoConfig(
        name=setup.algo, batch_size=batch, server_lr=0.1 if setup.algo == "fedsgd" else 1.0
    )
    params = init_params(dim, model, generator=generator(0, "init"))
    params = {k: v.to(setup.device) for k, v in params.items()}
    engine = create_engine(
        setup.engine, part, model=model, algo=algo, local=None, seed=0, device=setup.device
    )
    torch.set_num_threads(1)
    return part, model, algo, params, engine


def flops_per_round(part, model, algo) -> float:
    """Matmul FLOPs of one round: forward, weight gradients and input gradients (not of X)."""
    dim = part.x.shape[1]
    h1, h2 = model.hidden
    fwd = dim * h1 + h1 * h2 + h2 * 4
    back = fwd + h1 * h2 + h2 * 4
    samples = 0
    for c in part.clients:
        n = c.n_train
        samples += min(n, algo.batch_size) if algo.name == "fedsgd" else n * algo.local_epochs
    return 2.0 * samples * (fwd + back)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(setup: Setup, seconds: float, harvest: str | None = None) -> dict:
    """Updates/s (and harvest bytes) of one setup, in this process."""
    import torch

    from sergrad.fl.update import ClientContext, ClientUpdate

    start_rss = _rss_mb()
    part, model, algo, params, engine = _build(setup)
    clients = list(part.clients)
    hw = None
    if harvest is not None:
        from sergrad.fl.config import HarvestConfig, RunConfig
        from sergrad.fl.run import harvest_writer
        from sergrad.store import Store

        store = Store(tempfile.mkdtemp(prefix="sergrad-bench-"))
        config = RunConfig(
            model=model,
            algo=algo,
            harvest=HarvestConfig(
                enabled=harvest != "off", dtype="float32" if harvest == "off" else harvest
            ),
        )
        hw = harvest_writer(store, "bench", part.x.shape[1], config)
        hw.__enter__()
    r, n, t0 = 0, 0, None
    while True:
        r += 1
        results = engine.train_round(params, clients, round=r)
        if hw is not None:
            for res in results:
                c = res.client
                hw.add(
                    ClientUpdate(
                        round=r,
                        client_id=c.client_id,
                        speaker_id=c.speaker_id,
                        n_samples=c.n_train,
                        kind="gradient",
                        tensors=res.tensors,
                    ),
                    ClientContext(c.client_id, c.speaker_id, c.gender),
                )
        if setup.device != "cpu":
            torch.cuda.synchronize()
        if t0 is None:  # first round = warm-up
            t0 = time.perf_counter()
            continue
        n += len(results)
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and r >= 3:
            break
    out = {
        "updates_per_s": n / elapsed,
        "gflops": flops_per_round(part, model, algo) * (r - 1) / elapsed / 1e9,
    }
    if hw is not None:
        hw.__exit__(None, None, None)
        out["bytes_per_update"] = hw.bytes_written / max(1, hw.n_rows)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["peak_mb"] = max(0.0, peak - start_rss)
    return out


def _child(setup: Setup, seconds: float, harvest: str | None, queue) -> None:
    queue.put(measure(setup, seconds, harvest))


def in_processes(
    setup: Setup, seconds: float, *, procs: int, harvest: str | None = None
) -> list[dict]:
    """Run `procs` measurements side by side, each in a fresh forked single-thread process."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    workers = [
        ctx.Process(target=_child, args=(setup, seconds, harvest, queue)) for _ in range(procs)
    ]
    for w in workers:
        w.start()
    results = [queue.get() for _ in workers]
    for w in workers:
        w.join()
    return results


def matmul_peak_gflops(seconds: float = 0.5) -> float:
    """Best single-thread torch.mm GFLOP/s on 512x512 float32 matrices."""
    import torch

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(512, 512, generator=g), torch.randn(512, 512, generator=g)
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        best = max(best, 4 * 2 * 512**3 / (time.perf_counter() - t) / 1e9)
    return best


def main(args: argparse.Namespace) -> int:
    seconds = args.seconds or (0.3 if args.quick else 1.5)
    procs = max(1, args.procs)
    peak = in_processes_peak(seconds)
    print(f"single-core torch.mm peak: {peak:.1f} GFLOP/s; {procs} process(es) for 'all cores'\n")
    print(
        "| shape | algo | engine | updates/s 1 core | updates/s all cores | GFLOP/s (1 core) | % of mm peak | peak extra RSS MB | fast/ref per core |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for shape in args.shapes:
        for algo in ALGOS:
            rates = {}
            for engine in ("reference", "fast"):
                setup = Setup(shape, algo, engine, args.device)
                one = in_processes(setup, seconds, procs=1)[0]
                many = in_processes(setup, seconds, procs=procs) if args.device == "cpu" else [one]
                rates[engine] = one["updates_per_s"]
                ratio = f"{rates['fast'] / rates['reference']:.1f}x" if engine == "fast" else ""
                print(
                    f"| {shape} | {algo} | {engine} | {one['updates_per_s']:.0f} | "
                    f"{sum(m['updates_per_s'] for m in many):.0f} | {one['gflops']:.2f} | "
                    f"{100 * one['gflops'] / peak:.0f}% | {one['peak_mb']:.0f} | {ratio} |",
                    flush=True,
                )
    print(
        "\n| shape | harvest | updates/s (fast, FedAvg, 1 core) | bytes/update | cost vs off | bytes vs float32 |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for shape in args.shapes:
        res = {}
        for mode in ("off", "float32", "float16"):
            res[mode] = in_processes(
                Setup(shape, "fedavg", "fast", args.device), seconds, procs=1, harvest=mode
            )[0]
            cost = 1 - res[mode]["updates_per_s"] / res["off"]["updates_per_s"]
            b = res[mode].get("bytes_per_update", 0.0)
            rel = f"{b / res['float32']['bytes_per_update']:.2f}x" if mode != "off" else ""
            print(
                f"| {shape} | {mode} | {res[mode]['updates_per_s']:.0f} | {b:.0f} | {100 * cost:.0f}% | {rel} |",
                flush=True,
            )
    return 0


def in_processes_peak(seconds: float) -> float:
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        return pool.apply(matmul_peak_gflops, (seconds,))
