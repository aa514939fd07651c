"""Start a sweep driver in its own process group and kill -9 that group mid-sweep."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path


def kill_driver_after(cmd: list[str], runs_dir: Path, *, n_files: int, timeout: float = 300):
    """Run `cmd`; once `runs_dir` holds `n_files` Parquet files (or the driver ends or
    `timeout` passes), kill -9 the driver and the private Ray processes it started (its
    process group)."""
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(runs_dir.rglob("*.parquet"))) >= n_files:
                break
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
