"""The lock file pins the whole default + dev install, torch and torchaudio as one release."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        assert "==" in line, f"requirements.lock: not an exact pin: {line!r}"
        name, version = line.split("==", 1)
        name = re.sub(r"\[.*\]", "", name)
        pins[name.lower().replace("_", "-")] = version.split(";")[0].strip()
    return pins


def _declared() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return [re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs]


def test_every_declared_dependency_is_pinned():
    locked = _locked()
    missing = [name for name in _declared() if name not in locked]
    assert not missing, f"in pyproject.toml but not in requirements.lock: {missing}"


def test_torch_and_torchaudio_are_a_matched_release():
    locked = _locked()
    assert locked["torch"] == locked["torchaudio"], (locked["torch"], locked["torchaudio"])
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert f"torch=={locked['torch']}" in project["dependencies"]
    assert f"torchaudio=={locked['torchaudio']}" in project["dependencies"]


def test_installed_versions_match_the_lock():
    from importlib.metadata import version

    locked = _locked()
    for name in ("torch", "torchaudio", "ray", "opacus", "polars", "pyarrow", "numpy"):
        installed = version(name).split("+")[0]
        assert installed == locked[name], f"{name}: installed {installed}, locked {locked[name]}"


def test_every_package_folder_is_listed_in_pyproject():
    """A wheel (cluster nodes install one) holds only the listed packages."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    found = set()
    for top, package in (("sergrad", "sergrad"), ("defenses", "sergrad.defenses"),
                         ("analysis", "sergrad.analysis")):  # fmt: skip
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top).parts
            found.add(".".join((package, *rel)))
    assert found == listed, f"missing: {found - listed}, stale: {listed - found}"
