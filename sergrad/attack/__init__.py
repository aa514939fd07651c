"""sergrad.attack: the attribute inference attack on harvested client updates (gender by
default; `attribute`: any speaker attribute, binary, categorical or numeric).

Contract (METHOD.md sections 4-5):

    from sergrad.attack.config import AttackConfig, eval_id
    from sergrad.attack.run import run_attack
    rows = run_attack(AttackConfig(target_run=..., shadow_runs=(...), layers=("fc1",)), store)

- Input: harvested updates (`sergrad.fl.harvest`) of one target run and its shadow runs,
  plus the target's `runs` row (for its corpus, the `attacks` partition). Labels come from
  the runs' `clients` side table, joined with the speaker attributes of the runs' utterance
  tables for attributes other than gender (labels.py); shadow labels train, target labels
  are used only when scoring. A population without some class is a MissingClassError.
- Attributes (target.py, scoring.py): binary and categorical attributes get a softmax head
  over their classes (UAR over classes, macro one-vs-rest AUC, per-class recall and counts,
  chance = 1 / classes; calibrations `shadow` = argmax, `prior` = Bayes decision with the
  shadow class shares, `oracle` = offsets fitted on target labels); numeric ones (age) a
  regression head (MAE and Spearman beside the predict-the-shadow-mean baseline).
- Layer group "fc1" = parameters "fc1.*" (fc1.weight + fc1.bias); shapes and names must agree
  across all runs.
- Data path (dataset.py): one streaming pass of float64 per-element moments over the shadow
  updates; normalised rows written through each model's fixed transform to a flat file read
  with pread, so the paper-scale shadow set (15-18 GB raw) trains in a few hundred MB of RSS.
  The shadow side (moments, keys, each layer's feature rows per featurizer) is computed once
  per shadow set and stored content-addressed in `attack_inputs/` (inputs.py); a runner
  builds a whole group's inputs in one pass with `group.prepare_attack_inputs`.
- Models (models.py, registry ATTACK_MODELS): `cnn` (the paper's), `logreg_colcorr` (input-column
  co-movement, invariant to the hidden units: the strongest here), `logreg_stats`, `mlp_proj`.
- Training (train.py): validation split by shadow SPEAKER, Adam, ReduceLROnPlateau, early
  stopping, best validation UAR kept, seeded, CPU or CUDA. Adam and the plateau schedule are
  torch.optim's rules re-written in optim.py (bit for bit: constructing a torch.optim
  optimizer imports torch._dynamo, 1.2 s of every evaluation process).
- Protocols (protocols.py) and metrics (metrics.py): per update, per client (n-update
  averages, seeded trials; or `per_client_vote`, averaging their predictions), per layer, parameter-count-weighted fusion, baselines (majority
  class, metadata-only attacker: metadata_model.py, numpy logistic / least squares); UAR, accuracy, AUC, TPR at 1%/10% FPR (NaN + note when too
  few negatives), bootstrap 95% CI over clients.
- Calibration (`calibrations`, default shadow + prior; metrics.py): the same scores under
  each decision threshold, one row each (`calibration`, `threshold`): `shadow` = 0.5 as
  learned on shadow data; `prior` = the target's own score quantile matching the shadow
  population's male share (no target label); `oracle` = best threshold on target labels (an
  upper bound, never a verdict). `degenerate` flags rows predicting one class.
- Empirical epsilon (empirical_privacy.py): shadow-calibrated per-client rows carry `eps_lb` (95% Clopper-Pearson,
  trial 0 = one prediction per client, at the target run's delta), and for `user_dp` local
  targets the mechanism's epsilon for n_avg updates (`mechanism_epsilon`, sensitivity 2S);
  `eps_violation` (printed as DP VIOLATION) means the defense or its accounting is broken.
- Post-hoc defenses (`sergrad.defenses.posthoc.create_posthoc`) transform the target's raw
  updates before normalisation; with `adaptive: true` the attacker applies the same post-hoc
  defense to its shadow updates (in-loop defenses: choose shadow runs trained with them).
- Output: `attacks` rows (schema.ATTACKS) and `predictions` rows (schema.PREDICTIONS),
  written atomically; an evaluation whose `attacks` file exists is skipped.
- CLI: `sergrad attack run CONFIG.yaml [--set key=value ...] --store DIR`;
  benchmark: `sergrad bench attack [--quick]`.
"""
