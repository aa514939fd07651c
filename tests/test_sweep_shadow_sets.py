"""Through the sweep runner, evaluations that share a shadow set read and featurize its
harvest once (issue 14 item 1): `run_jobs` builds each shared set's inputs (`PrepareJob`)
before the evaluations run. Counted as harvest streams per run, never timed; Tune is
replaced by an in-process executor so the counting hooks see every read."""

from __future__ import annotations

import collections
import shutil

import torch

from sergrad.attack import source
from sergrad.attack.config import AttackConfig, AttackModelConfig, PostHocConfig
from sergrad.attack.synth import TINY_SHAPES, write_synthetic_run
from sergrad.fl.config import RunConfig
from sergrad.store import Store
from sergrad.sweep import runner
from sergrad.sweep.executors import execute
from sergrad.sweep.jobs import PrepareJob, RunJob, make_eval_job, prepare_jobs
from sergrad.sweep.runner import EngineOptions, run_jobs

torch.set_num_threads(1)
LEAK = {"fc1": 0.8, "fc2": 0.15, "fc3": 0.0}
SHADOWS = ("shadow0", "shadow1")
TARGETS = ("target0", "target1")


def _world(path) -> Store:
    store = Store(path)
    for i, rid in enumerate(SHADOWS):
        write_synthetic_run(store, rid, corpus="a", shapes=TINY_SHAPES,
                            speakers=[(f"a{j}", "FM"[j % 2]) for j in range(12)], rounds=10,
                            clients_per_round=6, seed=i, signal=LEAK)  # fmt: skip
    for k, rid in enumerate(TARGETS):
        write_synthetic_run(store, rid, corpus="b", shapes=TINY_SHAPES,
                            speakers=[(f"b{j}", "FM"[j % 2]) for j in range(10)], rounds=6,
                            clients_per_round=5, seed=50 + k, signal=LEAK, role="target")  # fmt: skip
    return store


def _config(target: str, name: str, shadows=SHADOWS, layers=("fc1", "fc2"), **kw) -> AttackConfig:
    return AttackConfig(target_run=target, shadow_runs=shadows, layers=layers,
                        model=AttackModelConfig(name=name, epochs=3), n_avg=(1,), trials=1,
                        bootstrap=0, **kw)  # fmt: skip


def _evals():
    # two evaluations sharing one shadow set, with different featurizers
    return [make_eval_job("b", _config("target0", "logreg_colcorr")),
            make_eval_job("b", _config("target1", "logreg_stats"))]  # fmt: skip


def _runs():
    """The harvested runs as (already recorded ok) run jobs, so evaluations are ready."""
    return [RunJob(rid, "shadow", "a", RunConfig()) for rid in SHADOWS] + [
        RunJob(rid, "target", "b", RunConfig()) for rid in TARGETS
    ]


class InProcess:
    """Tune replaced by a sequential in-process executor; counts harvest streams per run."""

    def __init__(self, monkeypatch) -> None:
        self.reads: collections.Counter = collections.Counter()
        self.phases: list[list[str]] = []
        real_iter = source.iter_batches

        def iter_batches(store, run_id, **kw):
            self.reads[run_id] += 1
            yield from real_iter(store, run_id, **kw)

        def tune_phase(jobs, *, store_uri, options, progress, outcomes, lost, shadow_sets=()):
            groups = runner.trial_groups(jobs, shadow_sets=shadow_sets, per_trial=0, slots=1)
            ordered = [j for g in groups for j in g]  # trials one after another
            self.phases.append([j.eta_kind for j in ordered])
            for job in ordered:
                outcomes[job.id] = execute(job, Store(store_uri), max_retries=0)

        monkeypatch.setattr(source, "iter_batches", iter_batches)
        monkeypatch.setattr(runner, "_tune_phase", tune_phase)
        monkeypatch.setattr(runner, "ray_session", lambda options: lambda: None)


def _metrics(store: Store) -> list[tuple]:
    rows = store.read("attacks", columns=["eval_id", "layer", "protocol", "calibration", "uar"])
    return sorted(tuple(r.values()) for r in rows.to_pylist())


def test_shared_shadow_set_is_read_once_through_the_runner(tmp_path, monkeypatch):
    _world(tmp_path / "grouped")
    shutil.copytree(tmp_path / "grouped", tmp_path / "control")
    hooks = InProcess(monkeypatch)
    result = run_jobs(_runs(), _evals(), store_uri=str(tmp_path / "grouped"),
                      options=EngineOptions(max_retries=0))  # fmt: skip
    assert result.all_ok, result.problems
    # one phase: the set's inputs first, in the trial of the evaluations that use them
    assert hooks.phases == [["shadow inputs", "fast eval", "fast eval"]]
    # one moments pass whose batches feed both featurizers, then none per evaluation
    assert {r: hooks.reads[r] for r in SHADOWS} == {r: 1 for r in SHADOWS}
    assert {r: hooks.reads[r] for r in TARGETS} == {r: 1 for r in TARGETS}
    grouped = dict(hooks.reads)

    # control: without the grouping the second featurizer costs one more shadow pass
    hooks.reads.clear()
    monkeypatch.setattr(runner, "prepare_jobs", lambda evals: [])
    result = run_jobs(_runs(), _evals(), store_uri=str(tmp_path / "control"),
                      options=EngineOptions(max_retries=0))  # fmt: skip
    assert result.all_ok and {r: hooks.reads[r] for r in SHADOWS} == {r: 2 for r in SHADOWS}
    assert sum(hooks.reads.values()) > sum(grouped.values())
    # grouping changes nothing in the results
    assert _metrics(Store(tmp_path / "grouped")) == _metrics(Store(tmp_path / "control"))


def test_prepare_jobs_groups_only_shared_shadow_sets():
    noise = (PostHocConfig("layer_perturbation", {"std": 0.5}),)
    evals = [
        make_eval_job("b", _config("target0", "logreg_colcorr")),
        make_eval_job("b", _config("target1", "cnn")),
        # the target's post-hoc defense does not change the shadow side (non-adaptive)
        make_eval_job("b", _config("target1", "logreg_stats", posthoc=noise)),
        # another shadow set: alone, so nothing to share
        make_eval_job("b", _config("target0", "logreg_stats", shadows=("shadow0",))),
        # an adaptive attacker mimics the defense: its own shadow inputs, alone
        make_eval_job("b", _config("target1", "logreg_stats", posthoc=noise, adaptive=True)),
    ]
    jobs = prepare_jobs(evals)
    assert len(jobs) == 1 and isinstance(jobs[0], PrepareJob)
    assert [c.target_run for c in jobs[0].configs] == ["target0", "target1", "target1"]
    assert prepare_jobs(evals[:1]) == [] and prepare_jobs([]) == []


def test_trial_groups_put_each_shadow_set_ahead_of_its_evaluations():
    noise = (PostHocConfig("layer_perturbation", {"std": 0.5}),)
    shared = [make_eval_job("b", _config(t, m)) for t in TARGETS for m in ("logreg_colcorr", "cnn")]
    alone = [make_eval_job("b", _config("target0", "logreg_stats", shadows=("shadow0",))),
             make_eval_job("b", _config("target1", "logreg_stats", posthoc=noise, adaptive=True))]  # fmt: skip
    jobs = [alone[0], *shared, alone[1]]
    prepare = prepare_jobs(jobs)
    groups = runner.trial_groups(jobs, shadow_sets=prepare, per_trial=0, slots=2)
    assert groups[0] == [prepare[0], *shared]  # the set's trial, evaluations in jobs' order
    assert sorted(j.id for g in groups[1:] for j in g) == sorted(j.id for j in alone)
    split = runner.trial_groups(jobs, shadow_sets=prepare, per_trial=2, slots=2)
    assert split[:2] == [[prepare[0], shared[0]], shared[1:3]]
    assert sorted(j.id for g in split for j in g) == sorted([prepare[0].id] + [j.id for j in jobs])
    # without shared sets: group_jobs alone
    assert runner.trial_groups(jobs, per_trial=0, slots=2) == runner.group_jobs(
        jobs, per_trial=0, slots=2
    )


def test_shadow_sets_of_the_same_runs_share_a_trial_widest_first(tmp_path):
    """An fc1-only set (post-hoc noise, not mimicked) and an fc1+fc2 set of the same shadow
    runs: one trial, the wider set first, so its featurizing pass serves both (the narrow
    set finds fc1's feature rows: no pass of its own); other shadow runs keep their trial."""
    from sergrad.attack.group import prepare_attack_inputs

    noise = (PostHocConfig("layer_perturbation", {"std": 0.5}),)
    narrow = [make_eval_job("b", _config(t, "logreg_colcorr", layers=("fc1",), posthoc=noise))
              for t in TARGETS]  # fmt: skip
    wide = [make_eval_job("b", _config(t, "logreg_colcorr")) for t in TARGETS]
    other = [make_eval_job("b", _config(t, "logreg_stats", shadows=SHADOWS[:1])) for t in TARGETS]
    jobs = [*narrow, *other, *wide]
    prepare = prepare_jobs(jobs)
    assert [len(p.configs[0].layers) for p in prepare] == [1, 2, 2]
    groups = runner.trial_groups(jobs, shadow_sets=prepare, per_trial=0, slots=2)
    assert groups[0] == [prepare[2], prepare[0], *narrow, *wide]  # the fc1+fc2 set's build first
    assert groups[1] == [prepare[1], *other]
    for order, narrow_passes in (("wide first", 0), ("narrow first", 1)):
        store = _world(tmp_path / order.replace(" ", "_"))
        builds = [prepare[2], prepare[0]] if order == "wide first" else [prepare[0], prepare[2]]
        passes = [prepare_attack_inputs(store, list(p.configs)) for p in builds]
        got = passes[0] if order == "narrow first" else passes[1]
        assert list(got.values()) == [narrow_passes], (order, passes)


def test_a_failed_preparation_is_a_warning_and_evaluations_still_run(tmp_path, monkeypatch, caplog):
    _world(tmp_path)
    hooks = InProcess(monkeypatch)

    def broken(store, configs):
        raise OSError("disk gone")

    monkeypatch.setattr("sergrad.attack.group.prepare_attack_inputs", broken)
    result = run_jobs(_runs(), _evals(), store_uri=str(tmp_path),
                      options=EngineOptions(max_retries=0))  # fmt: skip
    assert result.all_ok and result.oks["evals"] == 2
    assert hooks.phases[0][0] == "shadow inputs"
    assert "not prepared (OSError: disk gone)" in caplog.text
    assert Store(tmp_path).files("attacks")  # the evaluations recorded their own rows


def test_runner_caps_attack_inputs_after_the_evaluations(tmp_path, monkeypatch):
    from sergrad.attack import inputs

    InProcess(monkeypatch)
    for name, cap, kept in (("default", None, True), ("zero", 0.0, False)):
        store = _world(tmp_path / name)
        result = run_jobs(_runs(), _evals(), store_uri=str(tmp_path / name),
                          options=EngineOptions(max_retries=0, attack_inputs_max_gb=cap))  # fmt: skip
        assert result.all_ok, result.problems
        assert bool(inputs.usage(store)) is kept  # evicted only after both evaluations ran
        assert set(result.wall_s) == {"runs", "evals"} and "FL runs" in result.timing_line()
