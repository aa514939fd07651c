"""Issue 11 item 5: progress and time a user can believe. The ETA is per job kind from the
durations measured in this sweep; `sweep plan` prints a time estimate per kind and a harvest
estimate from the speaker counts of the corpora already indexed in the store."""

from __future__ import annotations

import io
import textwrap

import pyarrow as pa

from sergrad.cli import main
from sergrad.store import Store
from sergrad.sweep.count import count
from sergrad.sweep.driver import plan_summary
from sergrad.sweep.estimate import harvest_bytes, indexed_speakers
from sergrad.sweep.expand import expand, input_dir
from sergrad.sweep.progress import Progress
from sergrad.sweep.schema import load_sweep


def test_eta_is_per_kind_and_unknown_kinds_are_not_guessed():
    p = Progress(slots=2, stream=io.StringIO())
    p.add_total("fl run", 10, already_done=2)
    p.add_total("cnn eval", 3)
    for seconds in (4.0, 6.0):  # mean 5 s per FL run
        p.finished("fl run", ok=True, seconds=seconds)
    p.finished("fl run", ok=False, seconds=100.0)  # a failure's time is not a rate
    left, unknown = p.eta_seconds()
    assert left == (10 - 5) * 5.0 / 2 and unknown == ["cnn eval"]
    p.in_flight["cnn eval"] = 2
    line = p.line()
    assert "fl run 5/10" in line and "cnn eval 0/3" in line and "failed 1" in line
    assert "running 2 (2 cnn eval)" in line and "ETA >= 0:12" in line
    p.finished("cnn eval", ok=True, seconds=600.0)
    assert p.eta_seconds() == ((5 * 5.0 + 2 * 600.0) / 2, [])


SWEEP = """\
name: est
store: {store}
corpora:
  a: {{kind: synth, speakers: 10}}
  b: {{kind: synth, profile: synth-phone, speakers: 10}}
features: [{{name: prosody}}]
run:
  data: {{n_folds: 2}}
  algo: {{rounds: 3, client_fraction: 1.0}}
  harvest: {{params: ["fc1.*"]}}
attack:
  - {{models: [{{name: logreg_stats}}]}}
  - {{models: [{{name: cnn}}]}}
"""


def test_plan_uses_indexed_speaker_counts_and_prints_time_per_kind(tmp_path, capsys):
    store_dir = tmp_path / "store"
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(SWEEP).format(store=store_dir))
    sweep = load_sweep(path)
    declared = plan_summary(sweep, str(store_dir))
    assert declared["speakers_indexed"] == {} and not store_dir.exists()  # plan creates nothing
    # corpus a is indexed with 4 speakers (10 declared): the estimate follows the real count
    store = Store(store_dir)
    utts = pa.table(
        {"utt_id": [f"u{i}" for i in range(8)], "speaker_id": [f"s{i % 4}" for i in range(8)]}
    )
    store.write_table(input_dir("a", sweep.corpora["a"]), utts, partition=None, name="utterances")
    assert indexed_speakers(str(store_dir), sweep) == {"a": 4}
    real = plan_summary(sweep, str(store_dir))
    oracle = sum(
        harvest_bytes(r.config, sweep, known={"a": 4}) for r in expand(sweep, str(store_dir)).runs
    )
    assert real["harvest_bytes"] == oracle < declared["harvest_bytes"]
    c = count(sweep)
    assert c.eval_kinds == {"fast eval": c.evaluations // 2, "cnn eval": c.evaluations // 2}
    kinds = real["time"]["kinds"]
    assert set(kinds) == {"fl run", "fast eval", "cnn eval"}
    assert kinds["cnn eval"]["seconds_each"] > kinds["fast eval"]["seconds_each"]
    assert all(v["source"] == "documented rate" for v in kinds.values())
    capsys.readouterr()
    assert main(["sweep", "plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "speakers of the indexed corpora: a 4" in out
    assert f"time         cnn eval: {c.eval_kinds['cnn eval']} x ~18:00 (documented rate)" in out


CNN_SWEEP = """\
name: cnncost
store: {store}
corpora:
  a: {{kind: synth, speakers: 30}}
  b: {{kind: synth, profile: synth-phone, speakers: 24}}
features: [{{name: prosody}}]
run:
  model: {{hidden: [256, 8]}}
  data: {{n_folds: 3}}
  algo: {{rounds: 200, client_fraction: 1.0}}
  harvest: {{params: ["fc1.*"]}}
attack:
  - {{models: [{{name: logreg_stats}}]}}
  - {{models: [{{name: {model}, epochs: 50}}], layers: [fc1]}}
"""


def test_plan_warns_about_costly_cnn_evaluations(tmp_path, capsys):
    import sergrad.features.handcrafted  # noqa: F401  (registers prosody)
    from sergrad.attack.cost import cnn_warning
    from sergrad.features.base import FEATURE_SETS
    from sergrad.sweep.estimate import updates_per_run

    path = tmp_path / "cnn.yaml"
    path.write_text(CNN_SWEEP.format(store=tmp_path / "store", model="cnn"))
    sweep = load_sweep(path)
    plan = expand(sweep, str(tmp_path / "store"))
    runs = {r.id: r for r in plan.runs}
    dim = FEATURE_SETS.get("prosody").default_dim
    expected = {}
    for job in plan.evals:  # the oracle: every cnn evaluation, from the expanded jobs
        if job.config.model.name != "cnn":
            continue
        shadow = sum(updates_per_run(runs[r].config, sweep) for r in job.config.shadow_runs)
        target = updates_per_run(runs[job.config.target_run].config, sweep)
        text = cnn_warning(job.config, shadow_updates=shadow, target_updates=target,
                           weight_numel=256 * dim + 256)  # fmt: skip
        expected[job.target_corpus] = text
    assert set(expected) == {"a", "b"} and all(expected.values())  # costly: a warning each
    capsys.readouterr()
    assert main(["sweep", "plan", str(path)]) == 0
    err = capsys.readouterr().err
    for corpus, text in expected.items():
        assert f"warning: cnn evaluations of {corpus} (prosody): {text}" in err
    assert plan_summary(sweep)["cnn_warnings"] == [
        f"{c} (prosody): {t}" for c, t in expected.items()
    ]
    # no cnn, no warning
    path.write_text(CNN_SWEEP.format(store=tmp_path / "store", model="logreg_colcorr"))
    assert main(["sweep", "plan", str(path)]) == 0
    assert "cnn" not in capsys.readouterr().err


TABLE_SWEEP = """\
name: tb
store: {store}
corpora:
  a: {{kind: synth, speakers: 10}}
  mine: {{kind: table, root: {root}}}
features: [{{name: prosody}}]
run:
  data: {{n_folds: 2}}
  algo: {{rounds: 3, client_fraction: 1.0}}
attack:
  - {{models: [{{name: logreg_stats}}]}}
"""


def test_plan_counts_a_table_corpus_before_it_is_indexed(tmp_path, capsys):
    from sergrad.sweep.estimate import UNKNOWN_SPEAKERS, speakers

    listing = tmp_path / "mine.csv"
    path = tmp_path / "s.yaml"
    path.write_text(TABLE_SWEEP.format(store=tmp_path / "store", root=listing))
    sweep = load_sweep(path)
    # not there yet: the count is unknown, the plan says so and assumes UNKNOWN_SPEAKERS
    assert speakers(sweep, "mine") == UNKNOWN_SPEAKERS
    assert plan_summary(sweep)["speakers_unknown"] == ["mine"]
    assert main(["sweep", "plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"unknown for mine (table not readable here): harvest and time estimates assume " \
           f"{UNKNOWN_SPEAKERS} each" in out  # fmt: skip
    # the listing exists (never indexed): its distinct speakers, 3 here, 2 rows each
    rows = ["path,speaker_id,gender,emotion"]
    rows += [f"w/{s}-{i}.wav,s{s},{'FM'[s % 2]},neutral" for s in range(3) for i in range(2)]
    listing.write_text("\n".join(rows) + "\n")
    assert speakers(sweep, "mine") == 3
    summary = plan_summary(sweep, str(tmp_path / "store"))
    assert summary["speakers_unknown"] == []
    oracle = sum(harvest_bytes(r.config, sweep, known={"mine": 3})
                 for r in expand(sweep, str(tmp_path / "store")).runs)  # fmt: skip
    assert summary["harvest_bytes"] == oracle
    assert main(["sweep", "plan", str(path)]) == 0
    assert "unknown for" not in capsys.readouterr().out


SECAGG_SWEEP = """\
name: estsecagg
store: {store}
corpora:
  a: {{kind: synth, speakers: 10}}
  b: {{kind: synth, profile: synth-phone, speakers: 10}}
pairings:
  - {{target: a, shadow: [b]}}
features: [{{name: prosody}}]
run:
  data: {{n_folds: 2}}
  algo: {{rounds: 4, client_fraction: 1.0}}
  harvest: {{params: ["fc1.*"]}}
defenses:
  - {{name: none}}
  - {{name: secure_aggregation, params: {{cohort: 3, sampling: uniform}}}}
  - {{name: secure_aggregation, params: {{cohort: 3, sampling: adversarial_same_round}}}}
attack:
  - {{models: [{{name: logreg_stats}}]}}
"""


def test_plan_harvest_counts_one_aggregate_row_per_round_under_secure_aggregation(tmp_path):
    """Secure aggregation harvests the round's aggregate (two sessions: two rows), not one
    row per client: the plan's estimate is the per-run closed form summed over the runs."""
    from sergrad.fl import harvest_format as fmt
    from sergrad.fl.model import param_shapes
    from sergrad.sweep.estimate import input_dim

    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(SECAGG_SWEEP).format(store=tmp_path / "store"))
    sweep = load_sweep(path)
    runs = expand(sweep, str(tmp_path / "store")).runs
    per_run = {}
    for r in runs:
        name = r.config.defenses[0].params.get("sampling", "") if r.config.defenses else "none"
        per_run[name] = harvest_bytes(r.config, sweep)
    dim = input_dim(sweep, runs[0].config.data.features[0])
    shapes = param_shapes(dim, runs[0].config.model)
    row = fmt.update_bytes_per_row({p: shapes[p] for p in ("fc1.weight", "fc1.bias")}, "float32")
    clients = 5 * 1  # 10 speakers, 2 folds: 5 train, one client each
    assert per_run["none"] == 4 * clients * row
    assert per_run["uniform"] == 4 * 1 * row
    assert per_run["adversarial_same_round"] == 4 * 2 * row
    summary = plan_summary(sweep, str(tmp_path / "store"))
    assert summary["harvest_bytes"] == sum(harvest_bytes(r.config, sweep) for r in runs)
