"""Where a sweep's jobs run: CPU or CUDA, and the GPUs their Ray trials request.

`resources.gpus_per_run > 0` makes every FL run and attack evaluation that does not name a
device run on `cuda` (`expand` fills it in) and makes their Tune trials request that many
GPUs; a `device: cuda` in `run:` or an `attack:` block alone requests one GPU per trial of
that phase. `check_devices` refuses a sweep that asks for CUDA on a machine where torch
sees none: `sweep run` exits 2, `sweep plan` (often made on a laptop for a cluster) warns.
A sweep joining a Ray cluster is checked against the cluster's GPUs instead (`runner`).
"""

from __future__ import annotations

from sergrad.errors import ConfigError
from sergrad.sweep.schema import Sweep


def default_device(sweep: Sweep) -> str:
    """The device of a run or evaluation that does not name one."""
    return "cuda" if sweep.resources.gpus_per_run > 0 else "cpu"


def _devices(points: list[dict], sweep: Sweep) -> set[str]:
    return {str(p.get("device") or default_device(sweep)) for p in points}


def run_devices(sweep: Sweep) -> set[str]:
    from sergrad.fl.config import RunConfig
    from sergrad.sweep.expand import grid_points

    return _devices(grid_points(RunConfig, sweep.run), sweep)


def attack_devices(sweep: Sweep) -> set[str]:
    from sergrad.sweep.expand import attack_variants

    return _devices([a for a, _ in attack_variants(sweep)], sweep)


def gpus(sweep: Sweep, devices: set[str]) -> float:
    """GPUs one trial of a phase requests: resources.gpus_per_run, else 1 if it uses CUDA."""
    if sweep.resources.gpus_per_run > 0:
        return sweep.resources.gpus_per_run
    return 1.0 if any(d.startswith("cuda") for d in devices) else 0.0


def check_devices(sweep: Sweep, *, cuda_available: bool | None = None) -> None:
    """ConfigError naming what asks for CUDA when this machine has none."""
    wanted = []
    if sweep.resources.gpus_per_run > 0:
        wanted.append(f"resources.gpus_per_run: {sweep.resources.gpus_per_run:g}")
    if any(d.startswith("cuda") for d in run_devices(sweep)) and not wanted:
        wanted.append("run.device: cuda")
    if any(d.startswith("cuda") for d in attack_devices(sweep)) and not wanted:
        wanted.append("attack device: cuda")
    if not wanted:
        return
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    if not cuda_available:
        raise ConfigError(
            f"{sweep.source}: {wanted[0]} asks for CUDA, but torch.cuda.is_available() is "
            "false on this machine; remove it to run on CPU, or run the sweep where a GPU is "
            "(sweep run --address joins a Ray cluster with GPUs)"
        )
