"""resources.gpus_per_run and `device: cuda` in sweep files (issue 14 item 3), plumbing only
(no GPU here): the device reaches every run and attack config, the GPUs reach each Tune
trial's resource request, and CUDA on a machine without it is refused at plan time."""

from __future__ import annotations

import pytest

from sergrad.cli import main
from sergrad.errors import ConfigError
from sergrad.sweep.devices import check_devices
from sergrad.sweep.driver import eval_options_for, options_for
from sergrad.sweep.expand import expand
from sergrad.sweep.runner import trial_resources
from sergrad.sweep.schema import load_sweep

SWEEP = """\
name: dev
store: {store}
corpora:
  a: {{kind: synth, speakers: 6}}
  b: {{kind: synth, profile: synth-phone, speakers: 6}}
features: [{{name: prosody}}]
run:
  algo: {{rounds: 2}}
{run_device}
attack:
  - {{models: [{{name: logreg_stats}}]{attack_device}}}
resources: {{cpus_per_run: 1, gpus_per_run: {gpus}}}
"""


def _sweep(tmp_path, *, gpus=0, run_device="", attack_device=""):
    path = tmp_path / "dev.yaml"
    path.write_text(SWEEP.format(
        store=tmp_path / "store", gpus=gpus,
        run_device=f"  device: {run_device}" if run_device else "",
        attack_device=f", device: {attack_device}" if attack_device else "",
    ))  # fmt: skip
    return path, load_sweep(path)


def test_gpus_per_run_puts_every_job_on_cuda_and_requests_gpus(tmp_path):
    _, sweep = _sweep(tmp_path, gpus=0.5)
    plan = expand(sweep, str(tmp_path / "store"))
    assert {r.config.device for r in plan.runs} == {"cuda"}
    assert {e.config.device for e in plan.evals} == {"cuda"}
    options = options_for(sweep, address=None, max_concurrent=0)
    assert trial_resources(options) == {"cpu": 1.0, "gpu": 0.5}
    assert trial_resources(eval_options_for(sweep, options)) == {"cpu": 1.0, "gpu": 0.5}


def test_cpu_sweeps_request_no_gpu_and_keep_their_ids(tmp_path):
    _, sweep = _sweep(tmp_path)
    plan = expand(sweep, str(tmp_path / "store"))
    assert {r.config.device for r in plan.runs} == {"cpu"}
    options = options_for(sweep, address=None, max_concurrent=0)
    assert trial_resources(options) == {"cpu": 1.0}
    assert trial_resources(eval_options_for(sweep, options)) == {"cpu": 1.0}
    _, explicit = _sweep(tmp_path, run_device="cpu")  # naming the default changes nothing
    assert {r.id for r in expand(explicit, str(tmp_path / "store")).runs} == {
        r.id for r in plan.runs
    }


def test_a_cuda_attack_alone_requests_a_gpu_for_evaluations_only(tmp_path):
    _, sweep = _sweep(tmp_path, attack_device="cuda")
    plan = expand(sweep, str(tmp_path / "store"))
    assert {r.config.device for r in plan.runs} == {"cpu"}
    assert {e.config.device for e in plan.evals} == {"cuda"}
    options = options_for(sweep, address=None, max_concurrent=0)
    assert trial_resources(options) == {"cpu": 1.0}
    assert trial_resources(eval_options_for(sweep, options)) == {"cpu": 1.0, "gpu": 1.0}


@pytest.mark.parametrize(
    "kw, named",
    [({"gpus": 1}, "resources.gpus_per_run: 1"), ({"run_device": "cuda"}, "run.device: cuda"),
     ({"attack_device": "cuda"}, "attack device: cuda")],
)  # fmt: skip
def test_cuda_without_a_gpu_is_refused_by_run_and_warned_by_plan(
    tmp_path, capsys, monkeypatch, kw, named
):
    path, sweep = _sweep(tmp_path, **kw)
    with pytest.raises(ConfigError, match="torch.cuda.is_available"):
        check_devices(sweep, cuda_available=False)
    check_devices(sweep, cuda_available=True)  # where a GPU is, the same sweep runs
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert main(["sweep", "run", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and named in err and "asks for CUDA" in err
    # a plan made here for a GPU cluster still plans, with the same sentence as a warning
    assert main(["sweep", "plan", str(path)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and named in err and "will refuse it" in err
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    assert main(["sweep", "plan", str(path)]) == 0
    assert "asks for CUDA" not in capsys.readouterr().err
    assert not (tmp_path / "store").exists()  # neither plan nor the refused run writes


def test_cpu_sweep_plans_without_asking_torch(tmp_path, monkeypatch):
    path, sweep = _sweep(tmp_path)

    def boom():
        raise AssertionError("a CPU sweep must not need CUDA")

    monkeypatch.setattr("torch.cuda.is_available", boom)
    check_devices(sweep)
    assert main(["sweep", "plan", str(path)]) == 0


@pytest.mark.slow
def test_a_cluster_without_the_gpus_is_an_error_not_a_hang(tmp_path):
    from sweep_jobs import toy

    from sergrad.sweep.runner import EngineOptions, run_jobs

    opts = EngineOptions(num_cpus=1, gpus_per_run=1.0)
    with pytest.raises(ConfigError, match=r"requests 1 GPU\(s\).*the Ray cluster has 0"):
        run_jobs([toy(0)], store_uri=str(tmp_path / "store"), options=opts)
