"""Privacy audits that test a DP guarantee itself (not the gender attack).

- `one_run`: the statistics of "Privacy auditing with one (1) training run" (Steinke, Nasr,
  Jagielski, NeurIPS 2023): m canaries, each included independently with probability 1/2;
  the auditor guesses in / out for the top / bottom scores and the number of correct guesses
  gives a lower bound on epsilon at a chosen confidence.
- `canary`: canary audits that run sergrad's own DP code paths: gradient canaries in
  sample-level DP-SGD (`dp_sgd`, sergrad.fl.dp_clip) scored from the client's update, and
  canary clients in central user-level DP-FedAvg (`user_dp` central, as in Andrew et al. 2023)
  scored from the released model's change. Each reports its eps_lb beside the accountant's
  epsilon for the same mechanism.
- `mechanism`: the mechanism an FL run actually executes (its defense object, clip, noise,
  sampling rate and steps from sergrad.fl.schedule; dp_sgd: the worst-off client).
- `run_audit`: the canary audit of one run's mechanism, an `audits` row (sergrad.schema).
- `config`: the sweep's `audit: {canary: {...}}` section. A sweep plans one
  `sergrad.sweep.jobs.AuditJob` per dp_sgd / central user_dp target run (sweeps/README.md).

A different threat model from the gender attack: the canaries test the accountant's
(epsilon, delta) claim itself, so an eps_lb above the accountant's epsilon is a bug.
"""
