"""sergrad.sweep: sweep YAML -> FL runs + attack evaluations -> Ray Tune, resumable.

schema.py (validated YAML with line numbers), expand.py (grid expansion, content-hash dedup),
inputs.py (corpora x feature sets written into the store), executors.py (one job: retries,
failure rows), runner.py (Tune trials, grouping, progress), driver.py (the whole sweep),
status.py, estimate.py (harvest size for `plan`), cli.py (`sergrad sweep plan|run|status`).
"""
