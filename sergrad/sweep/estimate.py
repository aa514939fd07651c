"""Harvest-size estimate for `sergrad sweep plan` (nothing is read or run).

bytes(run) = harvested rounds x clients per round x bytes per update row, where clients per
round = max(1, round(client_fraction x training clients)), training clients = speakers in
the training folds x clients per speaker, and bytes per row come from
`sergrad.fl.harvest_format.update_bytes_per_row` over the harvested parameters' shapes. Speaker
counts come from the sweep's corpus declarations (synth profile defaults, or the published
counts of the real corpora); the input dimension from the feature set's default dimension.
"""

from __future__ import annotations

from sergrad.fl.config import RunConfig
from sergrad.sweep.schema import Sweep

REAL_SPEAKERS = {"iemocap": 10, "crema-d": 91, "msp-improv": 12}
DEFAULT_DIM = 312


def speakers(sweep: Sweep, corpus: str) -> int:
    spec = sweep.corpora[corpus]
    if spec.kind != "synth":
        return REAL_SPEAKERS[spec.kind]
    if spec.speakers:
        return spec.speakers
    from sergrad.corpora.synth import PROFILES

    return PROFILES.get(spec.profile or "synth-studio").speakers


def input_dim(sweep: Sweep, feature_uri: str) -> int:
    import sergrad.features.handcrafted  # noqa: F401  (registers the built-in sets)
    from sergrad.features.base import FEATURE_SETS

    for fs in sweep.features:
        if f"/{fs.name}-" in feature_uri and fs.name in FEATURE_SETS:
            return FEATURE_SETS.get(fs.name).default_dim or DEFAULT_DIM
    return DEFAULT_DIM


def harvest_bytes(config: RunConfig, sweep: Sweep) -> int:
    """Estimated bytes of one run's harvested updates (0 when harvesting is off)."""
    from sergrad.fl.harvest_format import RoundSelection, select_params, update_bytes_per_row
    from sergrad.fl.model import PARAM_NAMES, param_shapes
    from sergrad.fl.partition import clients_per_speaker

    h = config.harvest
    if not h.enabled:
        return 0
    clients = 0
    for uri in config.data.features:
        corpus = uri.rsplit("/", 2)[-2].rsplit("-", 1)[0]  # inputs/<corpus>-<hash>/<fs>.parquet
        n_spk = speakers(sweep, corpus) if corpus in sweep.corpora else 10
        train = max(1, round(n_spk * (config.data.n_folds - 1) / config.data.n_folds))
        clients += train * clients_per_speaker(corpus, config.data)
    per_round = min(clients, max(1, round(config.algo.client_fraction * clients)))
    sel = RoundSelection.parse(h.rounds if not isinstance(h.rounds, tuple) else list(h.rounds))
    rounds = sum(sel.wants(r) for r in range(1, config.algo.rounds + 1))
    shapes = param_shapes(input_dim(sweep, config.data.features[0]), config.model)
    chosen = select_params(PARAM_NAMES, h.params)
    row = update_bytes_per_row({p: shapes[p] for p in chosen}, h.dtype)
    return rounds * per_round * row


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KB' (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
