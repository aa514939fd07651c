"""Every column name and dtype sergrad writes, in one place.

Tables of the results store (one root per sweep, hive-partitioned):

    runs/corpus=<c>/<run_id>.parquet          one row per FL run (config, final SER metrics)
    rounds/run_id=<id>/rounds.parquet         one row per evaluated round of a run
    updates/run_id=<id>/updates.parquet       one row per (round, client): the server's view
    clients/run_id=<id>/clients.parquet       one row per client: its ground truth (gender, ...)
    cohorts/run_id=<id>/cohorts.parquet       secure aggregation: one row per round's cohort
    attacks/target_corpus=<c>/<eval_id>.parquet   one row per attack evaluation
    predictions/eval_id=<id>/predictions.parquet  one row per scored target update / client
    audits/target_corpus=<c>/<audit_id>.parquet   one row per canary audit of a target run

The partition column lives in the directory name only (hive style); readers get it back
through `Store.read` / `polars.scan_parquet(..., hive_partitioning=True)`.
"""

from __future__ import annotations

import pyarrow as pa

EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry")
EMOTION_INDEX: dict[str, int] = {e: i for i, e in enumerate(EMOTIONS)}
GENDERS: tuple[str, ...] = ("F", "M")
GENDER_INDEX: dict[str, int] = {"F": 0, "M": 1}

# --- corpora: the utterance table -----------------------------------------------------------
UTTERANCES = pa.schema(
    [
        ("utt_id", pa.string()),
        ("corpus", pa.string()),
        ("speaker_id", pa.string()),
        ("gender", pa.string()),
        ("emotion", pa.string()),
        ("raw_label", pa.string()),
        ("path", pa.string()),
        ("sample_rate", pa.int32()),
        ("duration_s", pa.float32()),
        ("session", pa.string()),
        # speaker attributes where the corpus records them (null elsewhere; never invented):
        # CREMA-D's VideoDemographics.csv gives age, race and ethnicity; the synthetic
        # corpora write age and language (L1 | L2); IEMOCAP and MSP-Improv give gender only.
        ("age", pa.float32()),  # years
        ("race", pa.string()),
        ("ethnicity", pa.string()),
        ("language", pa.string()),  # language background, e.g. L1 | L2
    ]
)
SPEAKER_COLUMNS: tuple[str, ...] = ("age", "race", "ethnicity", "language")

# --- features: utt_id + one fixed-size float32 vector -------------------------------------
FEATURE_ID = "utt_id"
FEATURE_VECTOR = "x"


def features_schema(dim: int) -> pa.Schema:
    return pa.schema([(FEATURE_ID, pa.string()), (FEATURE_VECTOR, pa.list_(pa.float32(), dim))])


# --- harvest: the server's view of every client update ------------------------------------
UPDATE_KEYS = pa.schema(
    [
        ("round", pa.int32()),
        ("client_id", pa.int32()),
        ("speaker_id", pa.string()),  # the client's pseudonym: the server knows who sent it
        ("n_samples", pa.int32()),
        ("kind", pa.string()),  # gradient | delta | pseudo_gradient
    ]
)
# No speaker attribute is a key column: ground truth lives in the `clients` side table.
# Stores written before that kept the client's gender here; readers fall back to it.
LEGACY_LABEL = "gender"
UPDATE_KINDS: tuple[str, ...] = ("gradient", "delta", "pseudo_gradient")
# Parameter columns follow the key columns, one per tensor, named by the parameter
# (e.g. "fc1.weight"), flattened row-major into a fixed-size list. File metadata keys:
META_PARAM_NAMES = b"sergrad.param_names"  # JSON list
META_PARAM_SHAPES = b"sergrad.param_shapes"  # JSON {name: shape}
META_DTYPE = b"sergrad.dtype"  # float32 | float16 | bfloat16 (bfloat16 stored as uint16 bits)
META_CONFIG = b"sergrad.config"  # JSON of the resolved run config
META_VERSIONS = b"sergrad.versions"  # JSON {package: version}

# --- per run ----------------------------------------------------------------------------
RUNS = pa.schema(
    [
        ("run_id", pa.string()),
        ("status", pa.string()),  # ok | failed
        ("error", pa.string()),
        ("role", pa.string()),  # free label: target | shadow | single
        ("feature_set", pa.string()),
        ("algorithm", pa.string()),
        ("engine", pa.string()),
        ("fold", pa.int32()),
        ("seed", pa.int64()),
        ("defense", pa.string()),  # short label, "none" without defenses
        ("defense_level", pa.float64()),
        ("rounds", pa.int32()),
        ("best_round", pa.int32()),
        ("val_uar", pa.float64()),
        ("test_uar", pa.float64()),
        ("test_acc", pa.float64()),
        ("epsilon", pa.float64()),
        ("delta", pa.float64()),
        ("accountant", pa.string()),
        ("dp_protects", pa.string()),  # utterances | speakers | none
        ("n_updates", pa.int64()),
        ("harvest_bytes", pa.int64()),
        ("wall_s", pa.float64()),
        ("config", pa.string()),  # canonical JSON of the resolved run config
        ("versions", pa.string()),
        ("created_at", pa.string()),
    ]
)
RUNS_PARTITION = "corpus"

ROUNDS = pa.schema(
    [
        ("round", pa.int32()),
        ("n_clients", pa.int32()),
        ("train_loss", pa.float64()),
        ("val_uar", pa.float64()),
        ("val_acc", pa.float64()),
        ("epsilon", pa.float64()),
        ("wall_s", pa.float64()),
    ]
)
ROUNDS_PARTITION = "run_id"

ATTACKS = pa.schema(
    [
        ("eval_id", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("attack", pa.string()),  # attack model name: cnn, logreg_stats, ...
        # the attacked speaker attribute (sergrad.attributes): gender | age_group | age |
        # language | ...; rows written before it existed are gender (readers fill that in)
        ("attribute", pa.string()),
        ("attribute_kind", pa.string()),  # binary | categorical | numeric
        ("adaptive", pa.bool_()),
        ("target_run", pa.string()),
        ("shadow_runs", pa.string()),  # JSON list of run ids
        ("feature_set", pa.string()),
        ("algorithm", pa.string()),
        ("defense", pa.string()),
        ("defense_level", pa.float64()),
        ("posthoc", pa.string()),
        ("posthoc_level", pa.float64()),
        ("layer", pa.string()),  # parameter group, e.g. "fc1" or "fusion"
        ("protocol", pa.string()),  # per_update | per_client | baseline_*
        ("n_avg", pa.int32()),  # updates averaged per prediction (per_client), 0 = all
        # decision threshold on P(male): shadow (0.5, learned on shadow data) | prior (target
        # scores thresholded so predicted shares match the shadow population's; no target
        # label) | oracle (best threshold on target labels: an upper bound, never a verdict)
        ("calibration", pa.string()),
        ("threshold", pa.float64()),
        ("degenerate", pa.bool_()),  # every prediction the same class: NOT "chance"
        ("uar", pa.float64()),
        ("acc", pa.float64()),
        ("auc", pa.float64()),
        ("tpr_at_1fpr", pa.float64()),
        ("tpr_at_10fpr", pa.float64()),
        ("uar_ci_low", pa.float64()),  # 95% percentile bootstrap over target speakers
        ("uar_ci_high", pa.float64()),
        ("n_scored", pa.int64()),
        ("n_clients", pa.int64()),  # distinct target clients scored
        ("n_speakers", pa.int64()),  # distinct target speakers: the unit of the CI bootstrap
        # empirical epsilon: 95% lower bound from Clopper-Pearson TPR/FPR of trial 0 (one
        # prediction per client), shadow calibration and per_client* protocols only; null else
        ("eps_lb", pa.float64()),
        ("eps_lb_delta", pa.float64()),  # the delta it is stated at (target run's, else 0)
        # user_dp local: the mechanism's epsilon for n_avg updates of one client under
        # replacement (sensitivity 2S), and whether eps_lb exceeds it (a BUG if true)
        ("mechanism_epsilon", pa.float64()),
        ("eps_violation", pa.bool_()),
        # classes (binary and categorical): chance = 1 / n_classes; per-class recall and the
        # target rows per class as JSON objects {class: value} (DuckDB: json_extract)
        ("n_classes", pa.int32()),  # 0 for a numeric attribute
        ("chance", pa.float64()),
        ("classes", pa.string()),  # JSON list, the head's class order
        ("per_class_recall", pa.string()),
        ("class_counts", pa.string()),
        # categorical: the decision argmax_c(log P(c|x) + offset_c), offsets as a JSON list
        # (shadow: 0; prior: -log shadow share; oracle: fitted on target labels)
        ("class_offsets", pa.string()),
        # numeric attributes (uar, auc null): mean absolute error, the predict-the-shadow-mean
        # baseline's, Spearman correlation, and a 95% speaker bootstrap of baseline_mae - mae
        ("mae", pa.float64()),
        ("baseline_mae", pa.float64()),
        ("spearman", pa.float64()),
        ("baseline_value", pa.float64()),  # the baseline's prediction: the shadow mean
        ("mae_gain_ci_low", pa.float64()),
        ("mae_gain_ci_high", pa.float64()),
        ("note", pa.string()),
        ("seed", pa.int64()),
        ("wall_s", pa.float64()),
        ("config", pa.string()),
        ("created_at", pa.string()),
        # what the attacker sees (sergrad.fl.secagg): individual_updates | secagg_aggregate
        # (honest sampling, per-round aggregates) | secagg_controlled_sampling (differencing)
        ("threat_model", pa.string()),
        ("cohort_size", pa.int32()),  # clients per round under secure aggregation, else null
        # protocol cohort_composition (regressing the cohort's attribute fraction) fills mae,
        # baseline_mae, baseline_value (the shadow mean) and spearman above, and Spearman's
        # 95% bootstrap interval over rounds and one-sided permutation p-value here
        ("spearman_ci_low", pa.float64()),
        ("spearman_ci_high", pa.float64()),
        ("p_value", pa.float64()),
    ]
)
ATTACKS_PARTITION = "target_corpus"

PREDICTIONS = pa.schema(
    [
        ("layer", pa.string()),
        ("protocol", pa.string()),
        ("n_avg", pa.int32()),
        ("trial", pa.int32()),
        ("round", pa.int32()),  # -1 when several rounds were averaged
        ("client_id", pa.int32()),
        ("speaker_id", pa.string()),
        ("gender", pa.string()),  # ground truth, joined only for scoring
        ("p_male", pa.float64()),  # binary attributes: P(classes[1]) (gender: P(male))
        ("attribute", pa.string()),  # null in rows written before attributes: gender
        ("label", pa.string()),  # the true class (binary / categorical), joined for scoring
        ("proba", pa.list_(pa.float64())),  # categorical: P(class) in the head's class order
        ("value", pa.float64()),  # numeric: the true value
        ("prediction", pa.float64()),  # numeric: the predicted value
    ]
)
PREDICTIONS_PARTITION = "eval_id"

# --- canary audits: the DP guarantee itself, tested with canaries (sergrad.audit) ----------
# One row per target run of a dp_sgd or central user_dp cell. A DIFFERENT threat model from
# the attacks table: canaries (worst-case gradients / clients) inserted with probability 1/2
# test the accountant's (epsilon, delta) claim; the gender attack tests what a realistic
# attacker learns about a speaker attribute.
AUDITS = pa.schema(
    [
        ("audit_id", pa.string()),  # content hash of (target run id, audit settings)
        ("status", pa.string()),
        ("error", pa.string()),
        ("target_run", pa.string()),
        ("feature_set", pa.string()),
        ("algorithm", pa.string()),
        ("defense", pa.string()),  # as in runs: dp_sgd | user_dp
        ("defense_level", pa.float64()),
        ("mechanism", pa.string()),  # dp_sgd | user_dp_central
        ("noise_multiplier", pa.float64()),  # z, the run's (target_epsilon resolved)
        ("clip_norm", pa.float64()),  # C per example (dp_sgd) | S per client update
        ("sample_rate", pa.float64()),  # audited client's Poisson rate | client rate k / N
        ("steps", pa.int64()),  # audited client's local steps over the run | rounds
        ("n_clients", pa.int64()),  # clients in the run's federation
        ("clients_per_round", pa.int64()),
        ("audited_client", pa.int32()),  # dp_sgd: the worst-off client; null for user_dp
        ("n_train", pa.int64()),  # dp_sgd: its training examples (beside the canaries)
        ("n_canaries", pa.int64()),  # m, each included with probability 1/2
        ("n_guesses", pa.int64()),  # r: guesses made (top and bottom scores)
        ("n_correct", pa.int64()),  # v: correct guesses
        ("confidence", pa.float64()),  # of eps_lb (0.95)
        ("eps_lb", pa.float64()),  # Steinke et al. 2023 one-run lower bound
        ("accountant_epsilon", pa.float64()),  # accountant's epsilon, same mechanism and delta
        ("run_epsilon", pa.float64()),  # the target run's reported epsilon (runs table)
        ("delta", pa.float64()),
        ("accountant", pa.string()),
        ("eps_violation", pa.bool_()),  # eps_lb > accountant_epsilon: a BUG in sergrad's DP
        ("fold", pa.int32()),
        ("seed", pa.int64()),
        ("wall_s", pa.float64()),
        ("config", pa.string()),  # canonical JSON of the audit settings
        ("created_at", pa.string()),
    ]
)
AUDITS_PARTITION = "target_corpus"

# --- the clients' ground truth, beside the harvest -----------------------------------------
# One row per client of a run (sampled or not), keyed like the update rows (run_id,
# client_id). It comes from the simulation's ClientContext, never through a defense; the
# attack may read it for shadow runs (labels) and for scoring target runs only.
CLIENTS = pa.schema(
    [
        ("client_id", pa.int32()),
        ("speaker_id", pa.string()),
        ("gender", pa.string()),
        ("corpus", pa.string()),
        # speaker attributes where known (else the attack joins them from the run's
        # utterance tables; sergrad.attack.labels); absent in older stores
        ("age", pa.float32()),
        ("race", pa.string()),
        ("ethnicity", pa.string()),
        ("language", pa.string()),
    ]
)
CLIENTS_PARTITION = "run_id"

# --- secure aggregation: who was in each round's cohort (sergrad.fl.secagg) -----------------
# One row per aggregate the server obtains (per round; two with adversarial_same_round),
# in harvest order, for a run under the secure_aggregation defense. A side table like
# `clients`: the server's view is the round's aggregate in `updates` (one row per round,
# client_id -1) plus round and cohort size; the cohort's members, hence its composition
# (join client_ids with `clients`), are ground truth for shadow labels and scoring only.
COHORTS = pa.schema(
    [
        ("round", pa.int32()),
        ("session", pa.int32()),  # 0; adversarial_same_round's second aggregate (S only): 1
        ("cohort_size", pa.int32()),
        ("isolated", pa.int32()),  # adversarial sampling: client i of S + {i}; else -1
        ("n_samples", pa.int64()),  # N_r: the aggregate's total weight
        ("client_ids", pa.list_(pa.int32())),
    ]
)
COHORTS_PARTITION = "run_id"

TABLES: dict[str, tuple[pa.Schema, str]] = {
    "runs": (RUNS, RUNS_PARTITION),
    "rounds": (ROUNDS, ROUNDS_PARTITION),
    "attacks": (ATTACKS, ATTACKS_PARTITION),
    "predictions": (PREDICTIONS, PREDICTIONS_PARTITION),
    "audits": (AUDITS, AUDITS_PARTITION),
}  # (the clients side table is read with sergrad.store; analysis may add it here)


def table_from_rows(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Build a table with exactly `schema`'s columns; missing keys are null, extra keys an error."""
    for row in rows:
        extra = set(row) - set(schema.names)
        if extra:
            raise KeyError(f"columns not in schema: {sorted(extra)}; valid: {schema.names}")
    cols = {name: [row.get(name) for row in rows] for name in schema.names}
    return pa.Table.from_pydict(cols, schema=schema)
