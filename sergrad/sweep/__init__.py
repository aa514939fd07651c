"""sergrad.sweep: sweep YAML -> FL runs + attack evaluations -> Ray Tune, resumable.

schema.py (validated YAML with line numbers: names, ranges, empty grids, ${VAR}), jobs.py
(`RunJob` / `EvalJob`: the typed unit of work, its id, table, done-check, failure row),
expand.py (grid expansion into jobs, content-hash dedup), count.py (counts without building
jobs, for huge grids), inputs.py (corpora x feature sets written into the store),
executors.py (one job: retries, failure record), runner.py (Tune trials, grouping, the
final state of every job), progress.py (the progress line: ETA per job kind), driver.py
(the whole sweep), status.py, estimate.py (harvest size and time for `plan`), cli.py
(`sergrad sweep plan|run|status`; exit 0 all ok / 1 some job not ok / 2 bad input).
"""
