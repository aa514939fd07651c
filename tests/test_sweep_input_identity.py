"""A sweep's input folder names what the inputs are made of: for a synthetic corpus the
generator version (SYNTH_VERSION) and every profile setting, so a store built from older
synthetic corpora never reuses their stale utterances and features."""

from __future__ import annotations

import dataclasses
import textwrap

import pytest

import sergrad.corpora.synth as synth
from sergrad.errors import ConfigError
from sergrad.sweep.expand import expand, input_dir
from sergrad.sweep.schema import CorpusSpec, load_sweep

SWEEP = """\
name: ident
store: out/ident
corpora:
  a: {kind: synth, profile: synth-studio, speakers: 6}
  b: {kind: synth, profile: synth-phone, speakers: 6}
features: [{name: prosody}]
run:
  algo: {rounds: 2}
attack:
  - {models: [{name: logreg_stats}]}
"""


def _plan(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(SWEEP))
    sweep = load_sweep(path)
    plan = expand(sweep, str(tmp_path / "store"))
    dirs = {c: input_dir(c, spec) for c, spec in sweep.corpora.items()}
    return dirs, {r.id for r in plan.runs}, {i.features_uri for i in plan.inputs}


def test_synth_version_changes_inputs_and_run_ids(tmp_path, monkeypatch):
    dirs, runs, feats = _plan(tmp_path)
    assert _plan(tmp_path) == (dirs, runs, feats)  # deterministic
    monkeypatch.setattr(synth, "SYNTH_VERSION", synth.SYNTH_VERSION + 1)
    new_dirs, new_runs, new_feats = _plan(tmp_path)
    assert all(new_dirs[c] != dirs[c] for c in dirs)
    assert not new_runs & runs and not new_feats & feats  # nothing stale is reused


def test_a_profile_setting_changes_only_its_corpus(tmp_path, monkeypatch):
    dirs, runs, _ = _plan(tmp_path)
    items = dict(synth.PROFILES._items)
    items["synth-phone"] = dataclasses.replace(items["synth-phone"], emotion_strength=0.5)
    monkeypatch.setattr(synth.PROFILES, "_items", items)
    new_dirs, new_runs, _ = _plan(tmp_path)
    assert new_dirs["a"] == dirs["a"] and new_dirs["b"] != dirs["b"]
    assert new_runs != runs


def test_other_kinds_ignore_the_synth_version_and_unknown_profiles_are_named(monkeypatch):
    table = CorpusSpec(kind="table", root="/data/mine.csv")
    before = input_dir("mine", table)
    monkeypatch.setattr(synth, "SYNTH_VERSION", synth.SYNTH_VERSION + 1)
    assert input_dir("mine", table) == before
    with pytest.raises(ConfigError, match=r"corpora\.x\.profile: unknown synthetic profile"):
        input_dir("x", CorpusSpec(kind="synth", profile="synth-moon"))
