"""Issue 12 failures 4 and 5: every bad sweep input is refused by `sweep plan` with exit 2
and `file:line`, before anything runs (no Ray, nothing written)."""

from __future__ import annotations

import textwrap

import pytest

from sergrad.cli import main
from sergrad.sweep.expand import expand
from sergrad.sweep.schema import load_sweep

GOOD = """\
name: t
store: {store}
corpora:
  a: {{kind: synth, speakers: 4}}
  b: {{kind: synth, profile: synth-phone, speakers: 4}}
features: [{{name: prosody}}]
run:
  algo: {{rounds: 3}}
"""


def plan(tmp_path, text: str, capsys) -> tuple[int, str]:
    p = tmp_path / "s.yaml"
    p.write_text(textwrap.dedent(text).format(store=tmp_path / "store"))
    code = main(["sweep", "plan", str(p)])
    err = capsys.readouterr().err
    assert not (tmp_path / "store").exists()  # plan writes nothing
    return code, err


def test_good_file_plans(tmp_path, capsys):
    assert plan(tmp_path, GOOD, capsys)[0] == 0


@pytest.mark.parametrize(
    ("replace", "by", "line", "words"),
    [
        ("rounds: 3", "rounds: 0", 8, "run.algo.rounds: 0 must be >= 1"),
        ("rounds: 3", "rounds: [2, -1]", 8, "-1 must be >= 1"),
        ("rounds: 3", "rounds: {{grid: []}}", 8, "empty grid"),
        ("rounds: 3", "rounds: []", 8, "empty grid"),
        ("algo: {{rounds: 3}}", "model: {{hidden: [32, 16, 8]}}", 8, "two hidden layers"),
        ("  a: {{kind", "  ../../x: {{kind", 4, "corpus name '../../x' becomes a store path"),
        ("  a: {{kind", "  a/b: {{kind", 4, "corpus name 'a/b'"),
        ("[{{name: prosody}}]", "[{{name: ../p}}]", 6, "feature set name '../p'"),
        ("name: t", "name: ../up", 1, "sweep name '../up'"),
        ("store: {store}", "store: ${{SERGRAD_TEST_UNSET_VAR}}/x", 2, "SERGRAD_TEST_UNSET_VAR"),
        ("speakers: 4}}", "speakers: 4, root: '${{SERGRAD_TEST_UNSET_VAR}}'}}", 4, "not set"),
    ],
)
def test_bad_values_exit_2_with_file_line(tmp_path, capsys, replace, by, line, words):
    assert replace in GOOD
    code, err = plan(tmp_path, GOOD.replace(replace, by, 1), capsys)
    assert code == 2, err
    assert f"s.yaml:{line}:" in err and words in err


@pytest.mark.parametrize(
    ("extra", "line", "words"),
    [
        ("seeds: []\n", 9, "seeds: empty list"),
        ("folds: []\n", 9, "folds: empty list"),
        ("defenses: []\n", 9, "defenses: empty list"),
        ("features: []\n", 9, "duplicate key 'features' (first on line 6)"),
        ("run:\n  seed: 1\n", 9, "duplicate key 'run'"),
    ],
)
def test_empty_lists_and_duplicate_keys(tmp_path, capsys, extra, line, words):
    code, err = plan(tmp_path, GOOD + extra, capsys)
    assert code == 2, err
    assert f"s.yaml:{line}:" in err and words in err


def test_duplicate_key_inside_a_mapping(tmp_path, capsys):
    text = GOOD.replace("algo: {{rounds: 3}}", "algo:\n    rounds: 3\n    rounds: 4")
    code, err = plan(tmp_path, text, capsys)
    assert code == 2 and "s.yaml:10:" in err and "duplicate key 'rounds' (first on line 9)" in err


def test_yaml_1_1_exponent_floats_are_numbers(tmp_path):
    p = tmp_path / "s.yaml"
    text = GOOD.replace("{{rounds: 3}}", "{{rounds: 3, lr: {{grid: [5e-4, 1e-3, 2.5E+1]}}}}")
    p.write_text(text.format(store=tmp_path / "store"))
    sweep = load_sweep(p)
    lrs = sorted({r.config.algo.lr for r in expand(sweep, str(tmp_path / "store")).runs})
    assert lrs == [5e-4, 1e-3, 25.0]


def test_store_env_var_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("SERGRAD_TEST_ROOT", str(tmp_path / "root"))
    p = tmp_path / "s.yaml"
    p.write_text(GOOD.replace("store: {store}", "store: ${{SERGRAD_TEST_ROOT}}/st").format())
    assert load_sweep(p).store == f"{tmp_path}/root/st"


@pytest.mark.parametrize(
    ("override", "words"),
    [("algo.rounds=0", "algo.rounds: 0 must be >= 1"),
     ("model.hidden=[8, 4, 2]", "model.hidden: [8, 4, 2] the engines run exactly two")],
)  # fmt: skip
def test_fl_run_refuses_what_the_engines_cannot_run(tmp_path, capsys, override, words):
    """Same contract for `sergrad fl run` (exit 2, the file named, nothing written)."""
    cfg = tmp_path / "run.yaml"
    cfg.write_text("algo: {rounds: 2}\n")
    store = tmp_path / "store"
    assert main(["fl", "run", str(cfg), "--store", str(store), "--set", override]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}: {words}" in err and not store.exists()
