"""`attack.attribute` as a sweep grid axis, checked at plan time (exit 2 naming the value)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sergrad.cli import main
from sergrad.errors import ConfigError
from sergrad.sweep.expand import expand
from sergrad.sweep.schema import load_sweep

SMALL = Path(__file__).resolve().parent.parent / "sweeps" / "small.yaml"


def _sweep(tmp_path, extra: str, *, corpora: str | None = None) -> Path:
    text = SMALL.read_text().replace("  layers: [fc1]\n", f"  layers: [fc1]\n{extra}")
    if corpora:
        text = text.replace("pairings: loco", f"{corpora}\npairings: loco")
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


def test_attribute_grid_multiplies_the_evaluations(tmp_path):
    base = expand(load_sweep(SMALL), str(tmp_path / "store"))
    sweep = load_sweep(_sweep(tmp_path, "  attribute: [gender, age_group, language]\n"))
    grid = expand(sweep, str(tmp_path / "store"))
    assert len(grid.evals) == 3 * len(base.evals)
    assert {e.config.attribute for e in grid.evals} == {"gender", "age_group", "language"}
    # gender evaluations keep their ids (older stores resume without reruns)
    ids = {e.id for e in grid.evals if e.config.attribute == "gender"}
    assert ids == {e.id for e in base.evals}


@pytest.mark.parametrize(
    "extra, message",
    [
        ("  attribute: race\n", "corpus 'phone' (kind synth) records no 'race'"),
        ("  attribute: [gender, shoe_size]\n", "unknown attribute 'shoe_size'"),
        ("  attribute: age_group\n  age_bins: [50, 30]\n", "edges must increase strictly"),
    ],
)
def test_bad_attributes_are_exit_2_at_plan_time(tmp_path, capsys, extra, message):
    path = _sweep(tmp_path, extra)
    with pytest.raises(ConfigError, match="attack.attribute"):
        load_sweep(path)
    assert main(["sweep", "plan", str(path)]) == 2
    assert message in capsys.readouterr().err
