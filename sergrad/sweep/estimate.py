"""Harvest-size and time estimates for `sergrad sweep plan` (nothing is run).

bytes(run) = harvested rounds x rows per round x bytes per update row, where rows per round =
clients per round (one row per client update; under secure aggregation one aggregate, two
with sampling adversarial_same_round), clients per round = the defense's cohort if set, else
max(1, round(client_fraction x training clients)), training clients = speakers in
the training folds x clients per speaker, and bytes per row come from
`sergrad.fl.harvest_format.update_bytes_per_row` over the harvested parameters' shapes (their
sketch shapes under `harvest.sketch`; every harvest option is checked here, at plan time). Speaker
counts come from the sweep's corpus declarations (synth profile defaults, or the published
counts of the real corpora, or the distinct speakers of a `kind: table` listing; unknown when
it cannot be read: then UNKNOWN_SPEAKERS is assumed and `sweep plan` says so) or, better, from the corpora already indexed in the store
(`indexed_speakers`: the real counts, e.g. a 40-speaker CREMA-D subset instead of 91); the
input dimension from the feature set's default dimension.

Time per job kind: the mean `wall_s` of the jobs of that kind already recorded in the store
(FL runs scaled per client update), else the documented rates below, measured on the shared
2-core CPU development machine with `sergrad sweep run sweeps/small.yaml` (FL_S_PER_UPDATE:
seconds per client update of its small MLP, FAST_EVAL_S: seconds per fast evaluation) and,
for CNN_EVAL_S, the demo's CNN evaluations on CPU (15-23 minutes each, issue 11). They are
rough: a sweep's own progress line re-estimates from the durations it measures.
"""

from __future__ import annotations

import functools

from sergrad.fl.config import RunConfig
from sergrad.sweep.schema import Sweep

REAL_SPEAKERS = {"iemocap": 10, "crema-d": 91, "msp-improv": 12}
DEFAULT_DIM = 312
FL_S_PER_UPDATE = 0.012  # seconds per client update (FL run), documented rate
FAST_EVAL_S = 3.3  # seconds per fast-attack evaluation, documented rate
CNN_EVAL_S = 18 * 60.0  # seconds per CNN evaluation on CPU, documented rate
CANARY_AUDIT_S = 2.0  # seconds per canary audit at 200 canaries (0.4-2 s measured on 1 core)


UNKNOWN_SPEAKERS = 10  # assumed for a corpus whose speaker count cannot be known at plan time


def speakers(sweep: Sweep, corpus: str, known: dict[str, int] | None = None) -> int:
    """Speakers of `corpus`: indexed in the store, else declared (synth), published (real
    corpora), counted in the listing (`kind: table`), else UNKNOWN_SPEAKERS (see
    `unknown_speakers`)."""
    if known and corpus in known:
        return known[corpus]
    spec = sweep.corpora[corpus]
    if spec.kind == "table":
        n = table_speakers(spec.root)
        return UNKNOWN_SPEAKERS if n is None else n
    if spec.kind != "synth":
        return REAL_SPEAKERS[spec.kind]
    if spec.speakers:
        return spec.speakers
    from sergrad.corpora.synth import PROFILES
    from sergrad.sweep.expand import synth_profile

    return PROFILES.get(synth_profile(spec)).speakers


def table_speakers(root: str) -> int | None:
    """Distinct speaker_id values in a `kind: table` listing (CSV or Parquet); None when it
    cannot be read here (missing file, unset ${VAR}, bad table)."""
    import os

    from sergrad.errors import SergradError
    from sergrad.sweep.inputs import expand_env

    try:
        path = expand_env(root, what="root")
        stat = os.stat(path)
    except (SergradError, OSError):
        return None
    return _listing_speakers(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _listing_speakers(path: str, mtime_ns: int, size: int) -> int | None:
    from pathlib import Path

    from sergrad.corpora.tabular import read_listing
    from sergrad.errors import SergradError

    try:
        rows = read_listing(Path(path))
    except (SergradError, OSError):
        return None
    return len({r["speaker_id"] for r in rows if r.get("speaker_id")}) or None


def unknown_speakers(sweep: Sweep, known: dict[str, int] | None = None) -> list[str]:
    """Corpora whose speaker count the estimates had to assume (UNKNOWN_SPEAKERS)."""
    return [
        c for c, spec in sweep.corpora.items()
        if spec.kind == "table" and c not in (known or {}) and table_speakers(spec.root) is None
    ]  # fmt: skip


def input_dim(sweep: Sweep, feature_uri: str) -> int:
    import sergrad.features.handcrafted  # noqa: F401  (registers the built-in sets)
    from sergrad.features.base import FEATURE_SETS

    for fs in sweep.features:
        if f"/{fs.name}-" in feature_uri and fs.name in FEATURE_SETS:
            return FEATURE_SETS.get(fs.name).default_dim or DEFAULT_DIM
    return DEFAULT_DIM


def updates_per_run(config: RunConfig, sweep: Sweep, known: dict[str, int] | None = None) -> int:
    """Client updates of one run: rounds x clients per round."""
    from sergrad.fl.partition import clients_per_speaker
    from sergrad.fl.schedule import clients_per_round

    clients = 0
    for uri in config.data.features:
        corpus = uri.rsplit("/", 2)[-2].rsplit("-", 1)[0]  # inputs/<corpus>-<hash>/<fs>.parquet
        n_spk = speakers(sweep, corpus, known) if corpus in sweep.corpora else 10
        train = max(1, round(n_spk * (config.data.n_folds - 1) / config.data.n_folds))
        clients += train * clients_per_speaker(corpus, config.data)
    secagg = _secagg_spec(config)
    if secagg is not None and secagg.cohort:
        return config.algo.rounds * secagg.cohort  # the defense fixes the cohort size
    return config.algo.rounds * clients_per_round(clients, config.algo.client_fraction)


def _secagg_spec(config: RunConfig):
    """The run's secure_aggregation spec (sergrad.fl.secagg.SecAggSpec), or None."""
    from sergrad.fl.secagg import NAME, SecAggSpec

    found = [d for d in config.defenses if d.name == NAME]
    return SecAggSpec.from_params(dict(found[0].params)) if found else None


def harvest_rows_per_round(config: RunConfig, updates_per_round: int) -> int:
    """Rows the harvest keeps per round: one per client update, or under secure aggregation
    the round's aggregate (two with sampling adversarial_same_round; sergrad.fl.secagg)."""
    secagg = _secagg_spec(config)
    return updates_per_round if secagg is None else secagg.sessions_per_round


def harvest_bytes(config: RunConfig, sweep: Sweep, *, known: dict[str, int] | None = None) -> int:
    """Estimated bytes of one run's harvested updates (0 when harvesting is off)."""
    from sergrad.fl import harvest_format as fmt
    from sergrad.fl.model import PARAM_NAMES, param_shapes

    h = config.harvest
    if not h.enabled:
        return 0
    chosen = fmt.check_harvest(h, PARAM_NAMES)  # every option checked at plan time
    per_round = harvest_rows_per_round(
        config, updates_per_run(config, sweep, known) // config.algo.rounds
    )
    sel = fmt.RoundSelection.parse(h.rounds if not isinstance(h.rounds, tuple) else list(h.rounds))
    rounds = sum(sel.wants(r) for r in range(1, config.algo.rounds + 1))
    shapes = param_shapes(input_dim(sweep, config.data.features[0]), config.model)
    if h.sketch:
        shapes = {p: fmt.sketch_shape(s) for p, s in shapes.items()}
    row = fmt.update_bytes_per_row({p: shapes[p] for p in chosen}, h.dtype)
    return rounds * per_round * row


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KB' (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def indexed_speakers(store_uri: str, sweep: Sweep) -> dict[str, int]:
    """Speaker counts of the sweep's corpora already indexed in the store ({} if none)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from sergrad.errors import StoreError
    from sergrad.store import Store
    from sergrad.sweep.expand import input_dir

    try:
        store = Store(store_uri, create=False)
    except StoreError:
        return {}
    out = {}
    for corpus, spec in sweep.corpora.items():
        path = store.file_path(input_dir(corpus, spec), partition=None, name="utterances")
        if store.exists_path(path) and store.readable(path):
            with store.open_input(path) as f:
                ids = pq.read_table(f, columns=["speaker_id"]).column("speaker_id")
            out[corpus] = len(pc.unique(ids))
    return out


def measured_rates(store_uri: str) -> dict[str, tuple[float, int]]:
    """{kind: (seconds per unit, jobs measured)} from the ok jobs already in the store; FL runs
    per client update, evaluations per job."""
    import json

    from sergrad.errors import StoreError
    from sergrad.store import Store

    try:
        store = Store(store_uri, create=False)
    except StoreError:
        return {}
    out: dict[str, tuple[float, int]] = {}
    runs = store.read("runs", columns=["status", "wall_s", "n_updates"])
    if runs.num_rows:
        ok = [r for r in runs.to_pylist() if r["status"] == "ok" and r["n_updates"] and r["wall_s"]]
        if ok:
            out["fl run"] = (
                sum(r["wall_s"] for r in ok) / sum(r["n_updates"] for r in ok),
                len(ok),
            )
    cols = ["eval_id", "status", "wall_s", "config"]
    attacks = store.read("attacks", columns=cols)
    if attacks.num_rows:
        per_eval: dict[str, tuple[str, float]] = {}
        for r in attacks.to_pylist():
            if r["status"] == "ok" and r["wall_s"]:
                model = (json.loads(r["config"] or "{}").get("model") or {}).get("name", "cnn")
                kind = "cnn eval" if model == "cnn" else "fast eval"
                per_eval[r["eval_id"]] = (
                    kind,
                    max(r["wall_s"], per_eval.get(r["eval_id"], ("", 0))[1]),
                )
        for kind in ("fast eval", "cnn eval"):
            walls = [w for k, w in per_eval.values() if k == kind]
            if walls:
                out[kind] = (sum(walls) / len(walls), len(walls))
    audits = store.read("audits", columns=["status", "wall_s"])
    walls = [r["wall_s"] for r in audits.to_pylist() if r["status"] == "ok" and r["wall_s"]]
    if walls:
        out["canary audit"] = (sum(walls) / len(walls), len(walls))
    return out


def time_estimate(sweep: Sweep, counts, store_uri: str, *, known=None, cpus: int = 1) -> dict:
    """Per kind: jobs, seconds each (measured in the store, else documented), source; and the
    total wall time on `cpus` parallel slots."""
    from sergrad.sweep.count import run_groups

    measured = measured_rates(store_uri) if store_uri else {}  # "" is no store, not the cwd
    per_update, fl_n = measured.get("fl run", (FL_S_PER_UPDATE, 0))
    updates = sum(n * updates_per_run(cfg, sweep, known) for cfg, n in run_groups(sweep, counts))
    kinds = {
        "fl run": (counts.runs, per_update * updates / max(1, counts.runs), fl_n),
        "fast eval": (counts.eval_kinds["fast eval"], *measured.get("fast eval", (FAST_EVAL_S, 0))),
        "cnn eval": (counts.eval_kinds["cnn eval"], *measured.get("cnn eval", (CNN_EVAL_S, 0))),
        "canary audit": (counts.audits, *measured.get("canary audit", (CANARY_AUDIT_S, 0))),
    }
    out = {
        kind: {"jobs": n, "seconds_each": each,
               "source": f"measured ({m} in store)" if m else "documented rate"}
        for kind, (n, each, m) in kinds.items() if n
    }  # fmt: skip
    total = sum(v["jobs"] * v["seconds_each"] for v in out.values())
    return {"kinds": out, "total_s": total / max(1, cpus), "cpus": cpus}


MAX_CNN_WARNINGS = 5


def cnn_warnings(sweep: Sweep, *, known: dict[str, int] | None = None) -> list[str]:
    """`attack.cost.cnn_warning` for each cnn evaluation kind of the sweep (one per pairing,
    feature set, run-grid point and cnn model; repeated texts once), without building the
    sweep's jobs. Update counts as in the harvest estimate; the layer size from the model."""
    import itertools
    import math

    from sergrad.attack.config import AttackConfig
    from sergrad.attack.cost import cnn_warning
    from sergrad.config import from_dict
    from sergrad.fl.model import param_shapes
    from sergrad.sweep.count import group_config
    from sergrad.sweep.devices import default_device
    from sergrad.sweep.expand import attack_variants, grid_points

    cnns = [a for a, _ in attack_variants(sweep) if a["model"].get("name", "cnn") == "cnn"]
    if not cnns:
        return []

    device = default_device(sweep)
    seen: dict[str, str] = {}
    for pairing, fs, point in itertools.product(
        sweep.pairings, sweep.features, grid_points(RunConfig, sweep.run)
    ):
        target = group_config(sweep, (pairing.target,), fs, point)
        shadow = group_config(sweep, tuple(pairing.shadow), fs, point)
        shadow_updates = len(sweep.shadow_folds) * updates_per_run(shadow, sweep, known)
        target_updates = updates_per_run(target, sweep, known)
        shapes = param_shapes(input_dim(sweep, target.data.features[0]), target.model)
        for attack in cnns:
            config = from_dict(AttackConfig, {"device": device, **attack, "target_run": "t",
                                              "shadow_runs": ["s"]})  # fmt: skip
            numel = max(
                (sum(math.prod(s) for p, s in shapes.items() if p.startswith(f"{layer}.") or p == layer)
                 for layer in config.layers), default=0,
            )  # fmt: skip
            text = cnn_warning(config, shadow_updates=shadow_updates,
                               target_updates=target_updates, weight_numel=numel or 1)  # fmt: skip
            if text and text not in seen:
                seen[text] = f"{pairing.target} ({fs.name}): {text}"
    lines = list(seen.values())
    if len(lines) > MAX_CNN_WARNINGS:
        extra = len(lines) - MAX_CNN_WARNINGS
        lines = lines[:MAX_CNN_WARNINGS] + [f"... and {extra} more cnn warning(s)"]
    return lines
