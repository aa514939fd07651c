"""sergrad.analysis and every analysis command run without importing torch or ray."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import sys
sys.path.insert(0, {tests!r})
from store_fixtures import build_store
import sergrad.analysis
from sergrad.analysis import load, query, tables, plots, plots_runs, report, stats, roc
from sergrad.cli import main
root = {root!r}
build_store(root)
out = {out!r}
cmds = [
    ["query", root, "SELECT count(*) FROM results"],
    ["query", root, "SELECT * FROM runs", "-o", out + "/q.parquet"],
    ["table", "tradeoff", root],
    ["report", root, "-o", out + "/rep"],
] + [["plot", k, root, "-o", out + "/" + k + ".png"]
     for k in ("tradeoff", "layers", "updates", "epsilon", "roc")]
for c in cmds:
    assert main(c) == 0, c
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "ray"))
print("HEAVY", heavy)
"""


def test_no_torch_or_ray(tmp_path):
    tests = str(Path(__file__).parent)
    code = SCRIPT.format(tests=tests, root=str(tmp_path / "store"), out=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "HEAVY []" in proc.stdout, proc.stdout[-2000:]
