"""`sergrad demo`: the whole pipeline on the built-in synthetic corpora, on this machine.

synthesize three corpora -> index them -> extract features (the sweep's inputs stage) ->
print a corpus summary and a centralized check -> run sweeps/demo.yaml with Ray Tune (FL
runs, harvest, attacks, defenses) -> write the HTML report. Re-running resumes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEFAULT_SWEEP = Path(__file__).resolve().parent.parent / "sweeps" / "demo.yaml"


def add_commands(sub) -> None:
    p = sub.add_parser("demo", help="synthetic corpora -> features -> demo sweep -> report")
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--sweep", default=str(DEFAULT_SWEEP), help="sweep file (default: demo)")
    p.add_argument("--inputs-only", action="store_true", help="stop after the corpus summary")
    p.set_defaults(func=main)


def print_summary(store_uri: str, inputs, *, say=None) -> None:
    """Per corpus: speakers by gender, utterances by emotion, dimension, centralized check."""
    import pyarrow.parquet as pq

    from sergrad.corpora import summarize
    from sergrad.fl.data import DataConfig, load_dataset
    from sergrad.store import Store, open_filesystem

    store = Store(store_uri)
    for spec in inputs:
        ds = load_dataset(
            DataConfig(features=(spec.features_uri,), utterances=(spec.utterances_uri,))
        )
        fs, path = open_filesystem(spec.utterances_uri)
        utts = pq.read_table(path, filesystem=fs)
        check = cached_centralized_check(store, spec, ds, say=say)
        print(f"\n== {spec.corpus} ({spec.spec.profile}) ==")
        print(summarize(utts))
        print(f"feature set {spec.features.name}: dimension {ds.x.shape[1]}")
        print(
            "centralized check (logistic regression, held-out speakers): "
            f"emotion UAR {check.emotion_uar:.3f}, gender UAR {check.gender_uar:.3f}",
            flush=True,
        )


def cached_centralized_check(store, spec, ds, *, say=None):
    """The centralized check of one input, computed once: its result is kept in the store
    beside the features (`inputs/<corpus>-<hash>/<feature set>-<hash>.centralized.json`, a
    name that changes with the input's content), so a resumed demo does not recompute it."""
    import dataclasses

    import numpy as np

    from sergrad.centralized import CentralizedCheck, centralized_check
    from sergrad.sweep.expand import feature_name, input_dir

    name = f"{input_dir(spec.corpus, spec.spec)}/{feature_name(spec.features)}.centralized.json"
    cached = store.read_json(name)
    if isinstance(cached, dict):
        return CentralizedCheck(**cached)

    def progress(done: int, total: int) -> None:
        if say is not None:
            say(f"centralized check {spec.corpus} x {spec.features.name}: fold {done}/{total}")

    check = centralized_check(
        ds.x,
        emotion=ds.emotion,
        gender=np.asarray(ds.gender),
        speakers=np.asarray(ds.speaker_id),
        progress=progress,
    )
    store.write_json(name, dataclasses.asdict(check))
    return check


def main(args: argparse.Namespace) -> int:
    from sergrad.store import Store
    from sergrad.sweep.driver import options_for, run_sweep
    from sergrad.sweep.expand import expand
    from sergrad.sweep.inputs import ensure_inputs
    from sergrad.sweep.schema import load_sweep

    start = time.time()
    out = Path(args.out).resolve()
    store_uri = str(out / "store")
    sweep = load_sweep(args.sweep)
    say = lambda m: print(f"[demo] {m}", file=sys.stderr, flush=True)  # noqa: E731
    say(f"synthetic corpora and features -> {store_uri}/inputs")
    plan = expand(sweep, store_uri)
    ensure_inputs(Store(store_uri), plan.inputs, progress=say)
    print_summary(store_uri, plan.inputs, say=say)
    if args.inputs_only:
        return 0
    say(f"sweep {sweep.name}: {len(plan.runs)} FL runs, {len(plan.evals)} attack evaluations, "
        f"{len(plan.audits)} canary audits")  # fmt: skip
    result = run_sweep(
        sweep,
        store_uri=store_uri,
        options=options_for(sweep, address=None, max_concurrent=None),
        log=say,
    )
    from sergrad.analysis.report import write_report

    report = write_report(store_uri, out / "report")
    print(
        f"\n[demo] runs {result.oks['runs']}/{result.totals['runs']} ok, "
        f"evaluations {result.oks['evals']}/{result.totals['evals']} ok, "
        f"canary audits {result.oks.get('audits', 0)}/{result.totals.get('audits', 0)} ok, "
        f"not ok {len(result.problems)}, {(time.time() - start) / 60:.1f} min"
    )
    if result.timing_line():
        print(f"[demo] time: {result.timing_line()}")
    for line in result.problem_lines():
        print(line)
    print(f"[demo] results store: {store_uri}")
    print(f"[demo] report: {report}")
    return result.exit_code()
