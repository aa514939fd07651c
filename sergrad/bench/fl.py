"""`sergrad bench fl`: client updates per second, reference vs fast engine, and harvest cost.

For each shape (paper: D=988, batch 20, ~30 samples per client, 16 clients per round; demo:
the demo feature set's D=549, smaller clients) and algorithm (FedAvg 1 local epoch with
Adam, FedSGD), measures on random in-memory data:

- client updates/s of `reference` and `fast`, one thread in one process (the best of three
  measurements taken alternately, so a changing load hits both engines alike), and all cores
  (one single-threaded process per core, side by side; the sum of their rates);
- fast/reference ratio per core, from wall time and from the process's CPU time (one
  thread: updates per CPU-second; on a machine shared with other jobs, CPU time leaves out
  the time the process waited for a core, not the memory stalls it suffers), achieved GFLOP/s (matmul FLOPs of forward + backward)
  against a measured single-core torch.mm peak, peak extra RSS of the measuring process;
- stacked runs (`--stack` runs of the same shape, seeds 0..k-1; several sizes allowed) in one
  StackedFastEngine against the same runs one by one, one thread (on a CPU stacking only adds
  the per-client weight copies; it is meant to fill a GPU); on a GPU also against the CPU
  reference engine on one core, measured in the same run (the ">= 20x per device" ratio);
- harvest with the fast engine (FedAvg, one training thread; the harvest's background
  writer thread may use another core): updates/s and process CPU seconds per trained update
  with harvest off and per harvest option (float32, float16, bfloat16; the reductions: fc1
  only, every 5th round, sketch), stored bytes per harvested update and per trained update,
  bytes against the previous plain Parquet layout (`harvest_reference`, same dtype, same
  run), the cost against harvest off in wall time (throughput) and in CPU time, and the
  background writer thread's own CPU per trained update, also as a fraction of the training's
  (harvest off) CPU per update: with a free core for the writer, the harvest keeps up with
  training while that fraction is below 1, and costs <= 20% of the throughput only while it
  is below 1.25 and the training thread's own extra work (the copy into the buffer, cache
  and memory contention) stays under 20%.

Prints markdown tables. Times are wall-clock over whole rounds after one warm-up round. Temp
harvest folders are deleted.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue as _queue
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass

SHAPES = {
    # name: (dim, hidden, batch, utterances per client, clients per round)
    "paper": (988, (256, 128), 20, 30, 16),
    "demo": (549, (256, 128), 20, 12, 16),
}
ALGOS = ("fedavg", "fedsgd")
# harvest options: name -> HarvestConfig fields (None = harvest off); "reference" options
# write the previous plain Parquet layout (`harvest_reference`), the bytes baseline
HARVESTS: dict[str, dict | None] = {
    "off": None,
    "reference layout, float32": {"dtype": "float32", "writer": "reference"},
    "reference layout, float16": {"dtype": "float16", "writer": "reference"},
    "float32": {"dtype": "float32"},
    "float16": {"dtype": "float16"},
    "bfloat16": {"dtype": "bfloat16"},
    "float16, fc1 only": {"dtype": "float16", "params": ("fc1.*",)},
    "float16, every 5th round": {"dtype": "float16", "rounds": {"every": 5}},
    "float32, sketch": {"dtype": "float32", "sketch": True},
    "float16, sketch": {"dtype": "float16", "sketch": True},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="short timings (smoke run)")
    parser.add_argument("--seconds", type=float, default=None, help="time per measurement")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (all-cores rows: cpu only)")
    parser.add_argument(
        "--procs", type=int, default=os.cpu_count() or 1, help="processes for 'all cores'"
    )
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--stack", type=int, nargs="+", default=[4],
                        help="runs stacked in 'stacked' (several sizes: one row each)")  # fmt: skip
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["engines", "harvest", "stacked"],
        choices=["engines", "harvest", "stacked"],
        help="which tables to measure",
    )


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
    """Updates/s (and harvest bytes) of one setup, in this process; `harvest` names an
    option of HARVESTS (None: no writer at all)."""
    start_rss = _rss_mb()
    part, model, algo, params, engine = _build(setup)
    tmp = tempfile.mkdtemp(prefix="sergrad-bench-")
    try:
        return _measure(setup, seconds, harvest, part, model, algo, params, engine, tmp, start_rss)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _measure(setup, seconds, harvest, part, model, algo, params, engine, tmp, start_rss) -> dict:
    import torch

    from sergrad.fl.update import ClientUpdate

    clients = list(part.clients)
    hw = None
    if harvest is not None:
        from sergrad.fl.config import HarvestConfig, RunConfig
        from sergrad.fl.run import harvest_writer
        from sergrad.store import Store

        extra = dict(HARVESTS[harvest] or {})
        writer = extra.pop("writer", None)
        config = RunConfig(
            model=model,
            algo=algo,
            harvest=HarvestConfig(enabled=bool(extra), **extra),
        )
        if writer == "reference":
            from sergrad.bench.harvest_reference import ReferenceWriter
            from sergrad.fl.model import PARAM_NAMES, param_shapes

            hw = ReferenceWriter(
                Store(tmp), run_id="bench", param_names=list(PARAM_NAMES),
                param_shapes=param_shapes(part.x.shape[1], model), config=config,
                harvest=config.harvest,
            )  # fmt: skip
        else:
            hw = harvest_writer(Store(tmp), "bench", part.x.shape[1], config)
        hw.__enter__()
    r, n, t0, c0 = 0, 0, None, None
    rows0 = 0
    while True:
        r += 1
        results = engine.train_round(params, clients, round=r)
        if hw is not None:  # a round's updates at once, as `fl.run` hands them over
            hw.add_many([
                ClientUpdate(
                    round=r, client_id=res.client.client_id, speaker_id=res.client.speaker_id,
                    n_samples=res.client.n_train, kind="gradient", tensors=res.tensors,
                ) for res in results
            ])  # fmt: skip
        if setup.device != "cpu":
            torch.cuda.synchronize()
        if t0 is None:  # first round = warm-up
            t0, c0 = time.perf_counter(), time.process_time()
            rows0 = hw.n_rows if hw is not None else 0
            continue
        n += len(results)
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and r >= 3 and (r - 1) % 5 == 0:  # whole 5-round cycles
            break
    out = {
        "updates_per_s": n / elapsed,
        "updates_per_cpu_s": n / max(1e-9, time.process_time() - c0),  # one thread: per core
        "gflops": flops_per_round(part, model, algo) * (r - 1) / elapsed / 1e9,
    }
    if hw is not None:
        hw.__exit__(None, None, None)  # the last row group's write counts as harvest time
        out["updates_per_s"] = n / (time.perf_counter() - t0)
        out["cpu_s_per_update"] = (time.process_time() - c0) / n
        out["bytes_per_update"] = hw.bytes_written / max(1, hw.n_rows)
        # the writer's CPU (background thread) per trained update, warm-up rows left out
        share = (hw.n_rows - rows0) / max(1, hw.n_rows)
        out["write_cpu_s_per_update"] = getattr(hw, "write_cpu_s", 0.0) * share / n
        out["bytes_per_trained_update"] = (
            hw.bytes_written * (hw.n_rows - rows0) / max(1, hw.n_rows) / n
        )
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
    results = []
    while len(results) < len(workers):  # a child that dies is an error, not a hang
        try:
            results.append(queue.get(timeout=1.0))
        except _queue.Empty:
            dead = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            if dead:
                for w in workers:
                    w.terminate()
                raise RuntimeError(
                    f"bench fl: a measuring process failed (exit {dead[0]})"
                ) from None
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
    if "engines" in args.parts:
        engines_table(args.shapes, seconds, procs, args.device)
    if "harvest" in args.parts:
        harvest_table(args.shapes, seconds, args.device)
    if "stacked" in args.parts:
        stacked_table(args.shapes, seconds, args.device, args.stack)
    return 0


def stacked_rate(shape: str, algo: str, device: str, runs: int, seconds: float) -> dict:
    """Updates/s of `runs` runs (seeds 0..runs-1, same data) stacked in one engine, and of the
    same runs one after another in their own engines (one thread)."""
    import torch

    from sergrad.fl.fast import FastEngine
    from sergrad.fl.stacked import StackedFastEngine

    part, model, algo_cfg, params, _ = _build(Setup(shape, algo, "fast", device))
    alone = [
        FastEngine(part, model=model, algo=algo_cfg, local=None, seed=s, device=device)
        for s in range(runs)
    ]
    stacked = StackedFastEngine([part] * runs, model=model, algo=algo_cfg, local=None,
                                seeds=list(range(runs)), device=device)  # fmt: skip
    clients = list(part.clients)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def rate(step) -> float:
        step(1)  # warm-up
        sync()
        r, t0 = 1, time.perf_counter()
        while True:
            r += 1
            step(r)
            sync()
            if time.perf_counter() - t0 >= seconds and r >= 3:
                return (r - 1) * runs * len(clients) / (time.perf_counter() - t0)

    def one_by_one(r):
        for e in alone:
            e.train_round(params, clients, round=r)

    return {
        "alone": rate(one_by_one),
        "stacked": rate(
            lambda r: stacked.train_round_runs([params] * runs, [clients] * runs, round=r)
        ),  # fmt: skip
    }


def stacked_table(shapes: list[str], seconds: float, device: str, sizes: list[int]) -> None:
    on_gpu = device != "cpu"
    extra = " CPU reference (1 core), updates/s | stacked / CPU reference |" if on_gpu else ""
    print(f"\n| shape | algo | runs | one by one, updates/s | stacked, updates/s | "
          f"stacked / alone |{extra}")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|" + ("---:|---:|" if on_gpu else ""))
    for shape in shapes:
        for algo in ALGOS:
            ref = None
            if on_gpu:  # the CPU reference engine, one thread, in its own process
                ref = in_processes(Setup(shape, algo, "reference", "cpu"), seconds, procs=1)[0]
            for runs in sizes:
                ctx = mp.get_context("fork")
                with ctx.Pool(1) as pool:
                    got = pool.apply(stacked_rate, (shape, algo, device, runs, seconds))
                row = (f"| {shape} | {algo} | {runs} | {got['alone']:.0f} | {got['stacked']:.0f} | "
                       f"{got['stacked'] / got['alone']:.2f}x |")  # fmt: skip
                if ref is not None:
                    cpu = ref["updates_per_s"]
                    row += f" {cpu:.0f} | {got['stacked'] / cpu:.1f}x |"
                print(row, flush=True)


def engines_table(shapes: list[str], seconds: float, procs: int, device: str) -> None:
    peak = in_processes_peak(seconds)
    print(f"single-core torch.mm peak: {peak:.1f} GFLOP/s; {procs} process(es) for 'all cores'\n")
    print(
        "| shape | algo | engine | updates/s 1 core | updates/s all cores | GFLOP/s (1 core) "
        "| % of mm peak | peak extra RSS MB | updates/CPU-s | fast/ref per core (wall) "
        "| fast/ref per core (CPU time) |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for shape in shapes:
        for algo in ALGOS:
            best: dict[str, dict] = {}
            for _ in range(3):  # interleaved repeats, best kept: a changing load hits both alike
                for engine in ("reference", "fast"):
                    got = in_processes(Setup(shape, algo, engine, device), seconds, procs=1)[0]
                    cpu = max(got["updates_per_cpu_s"], best.get(engine, got)["updates_per_cpu_s"])
                    if engine not in best or got["updates_per_s"] > best[engine]["updates_per_s"]:
                        best[engine] = got
                    best[engine]["updates_per_cpu_s"] = cpu
            for engine in ("reference", "fast"):
                setup = Setup(shape, algo, engine, device)
                one = best[engine]
                many = in_processes(setup, seconds, procs=procs) if device == "cpu" else [one]
                ratios = ["", ""]
                if engine == "fast":
                    ref = best["reference"]
                    ratios = [
                        f"{one[k] / ref[k]:.1f}x" for k in ("updates_per_s", "updates_per_cpu_s")
                    ]
                print(
                    f"| {shape} | {algo} | {engine} | {one['updates_per_s']:.0f} | "
                    f"{sum(m['updates_per_s'] for m in many):.0f} | {one['gflops']:.2f} | "
                    f"{100 * one['gflops'] / peak:.0f}% | {one['peak_mb']:.0f} | "
                    f"{one['updates_per_cpu_s']:.0f} | {ratios[0]} | {ratios[1]} |",
                    flush=True,
                )


def harvest_table(shapes: list[str], seconds: float, device: str) -> None:
    """Harvest options against harvest off, each measured twice interleaved (best kept);
    bytes against the reference layout of the same dtype, measured in the same run."""
    print(
        "\n| shape | harvest | updates/s (fast, FedAvg) | CPU ms/update | bytes/harvested update "
        "| bytes/trained update | bytes/trained update vs reference | wall cost vs off "
        "| CPU cost vs off | writer-thread CPU ms/update | writer CPU / training CPU |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for shape in shapes:
        setup = Setup(shape, "fedavg", "fast", device)
        res: dict[str, dict] = {}
        for _ in range(2):  # interleaved repeats: a loaded machine slows all options alike
            for mode in HARVESTS:
                got = in_processes(setup, seconds, procs=1, harvest=mode)[0]
                if mode not in res or got["updates_per_s"] > res[mode]["updates_per_s"]:
                    res[mode] = got
        off = res["off"]
        for mode, m in res.items():
            wall = 1 - m["updates_per_s"] / off["updates_per_s"]
            cpu = m["cpu_s_per_update"] / off["cpu_s_per_update"] - 1
            dtype = (HARVESTS[mode] or {}).get("dtype")
            ref = res.get(f"reference layout, {dtype}")
            vs_ref = f"{m['bytes_per_trained_update'] / ref['bytes_per_trained_update']:.3f}" if (
                ref and ref["bytes_per_trained_update"]) else ""  # fmt: skip
            writer = m.get("write_cpu_s_per_update", 0.0)
            print(
                f"| {shape} | {mode} | {m['updates_per_s']:.0f} | "
                f"{1e3 * m['cpu_s_per_update']:.2f} | {m['bytes_per_update']:.0f} | "
                f"{m['bytes_per_trained_update']:.0f} | {vs_ref} | {100 * wall:.0f}% | "
                f"{100 * cpu:.0f}% | {1e3 * writer:.2f} | "
                f"{writer / off['cpu_s_per_update']:.2f} |",
                flush=True,
            )


def in_processes_peak(seconds: float) -> float:
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        return pool.apply(matmul_peak_gflops, (seconds,))
