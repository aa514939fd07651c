"""Every YAML snippet in README.md and sweeps/README.md is a valid sweep (or a valid part of
one, merged into sweeps/demo.yaml, the file the fragments describe) that plans as written
(issue 12)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sergrad.sweep.expand import expand
from sergrad.sweep.schema import load_sweep
from sergrad.yaml_load import StrictLoader

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "sweeps" / "README.md"]


def snippets() -> list[tuple[str, int, str]]:
    out = []
    for doc in DOCS:
        text = doc.read_text()
        for m in re.finditer(r"```ya?ml\n(.*?)```", text, flags=re.S):
            out.append((doc.name, text[: m.start()].count("\n") + 1, m.group(1)))
    return out


def test_the_docs_have_yaml_snippets():
    assert len(snippets()) >= 2


@pytest.mark.parametrize(("doc", "line", "text"), snippets(), ids=lambda v: str(v)[:20])
def test_snippet_plans_as_written(doc, line, text, tmp_path, monkeypatch):
    for var in re.findall(r"\$\{(\w+)\}", text):
        root = tmp_path / var.lower()
        root.mkdir(exist_ok=True)
        monkeypatch.setenv(var, str(root))
    data = yaml.load(text, Loader=StrictLoader)
    assert isinstance(data, dict), f"{doc}:{line}: not a mapping"
    if "corpora" not in data:  # a fragment: the rest comes from sweeps/demo.yaml
        base = yaml.load((ROOT / "sweeps" / "demo.yaml").read_text(), Loader=StrictLoader)
        data = {**base, **data}
    path = tmp_path / "snippet.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    sweep = load_sweep(path)
    plan = expand(sweep, str(tmp_path / "store"))
    assert plan.runs and plan.evals, f"{doc}:{line}: plans no work"
