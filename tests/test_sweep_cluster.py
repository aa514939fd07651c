"""cluster.yaml passes Ray's own launcher validation (offline), and the commented on-prem
variant does too once uncommented."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def validate(config: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_cluster_yaml_validates():
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    prepared = validate(config)
    types = prepared["available_node_types"]
    assert set(types) == {"head", "cpu_worker", "gpu_worker"}
    assert types["cpu_worker"]["max_workers"] >= types["cpu_worker"]["min_workers"] == 0
    assert any("sergrad==0.1.0" in c for c in prepared["setup_commands"])


def test_cluster_yaml_keeps_the_dashboard_on_loopback_and_requires_a_token():
    """Issue 12 item 10."""
    for name in ("cluster.yaml", "cluster.local.yaml"):
        text = (ROOT / name).read_text()
        assert "0.0.0.0" not in text
        starts = [ln for ln in text.splitlines() if "ray start" in ln and "ray stop" not in ln]
        assert starts and all("RAY_AUTH_MODE=token" in ln for ln in starts), name
        assert all("--dashboard-host=127.0.0.1" in ln for ln in starts if "--head" in ln)


def test_cluster_yaml_pins_the_package_version():
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"sergrad=={version}" in (ROOT / "cluster.yaml").read_text()


def test_local_variant_validates_when_uncommented():
    lines = (ROOT / "cluster.local.yaml").read_text().splitlines()
    start = lines.index("#") + 1  # the prose ends at a lone "#"; the config follows
    body = "\n".join(line[2:] for line in lines[start:])
    config = yaml.safe_load(body)
    assert config["provider"]["type"] == "local"
    validate(config)


# --- a real two-node Ray cluster on this machine ---------------------------------------------
import os  # noqa: E402
import secrets  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """End exactly the process group this test started (never `ray stop`)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    else:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.slow
def test_multi_node_cluster_sweep(tmp_path):
    ray_bin = str(Path(sys.executable).parent / "ray")
    tmp = tempfile.mkdtemp(prefix="sgr-", dir="/tmp")  # short: Ray's socket paths are limited
    env = {
        **os.environ,
        "RAY_TMPDIR": tmp,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),  # head, worker and client share it
        "SERGRAD_CACHE": str(tmp_path / "cache"),
        "RAY_DISABLE_USAGE_STATS": "1",
    }
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--block", "--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    head = subprocess.Popen(
        [ray_bin, "start", "--head", f"--port={port}", "--include-dashboard=false",
         f"--temp-dir={tmp}", *common],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    worker = None
    try:
        time.sleep(8)
        assert head.poll() is None, "ray head did not start"
        worker = subprocess.Popen(
            [ray_bin, "start", f"--address={address}", *common],
            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        probe = (
            "import ray,time\n"
            f"ray.init(address='{address}', logging_level='ERROR')\n"
            "for _ in range(60):\n"
            "    if len([n for n in ray.nodes() if n['Alive']]) >= 2: break\n"
            "    time.sleep(1)\n"
            "print(len([n for n in ray.nodes() if n['Alive']]))\n"
        )
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
        assert out.stdout.strip().splitlines()[-1] == "2", out.stderr[-2000:]
        store = tmp_path / "store"
        small = ROOT / "sweeps" / "small.yaml"
        cmd = [sys.executable, "-m", "sergrad.cli", "sweep", "run", str(small),
               "--store", str(store), "--address", address]  # fmt: skip
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        status = subprocess.run(
            [sys.executable, "-m", "sergrad.cli", "sweep", "status", str(store), "--json"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        import json

        counts = json.loads(status.stdout)
        assert counts["runs"] == {"total": 4, "ok": 4, "failed": 0, "pending": 0}
        assert counts["evals"]["ok"] == counts["evals"]["total"] == 2
    finally:
        if worker is not None:
            _stop(worker)
        _stop(head)
