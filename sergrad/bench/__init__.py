"""`sergrad bench <area>`: benchmarks reported as ratios against the reference engine."""
