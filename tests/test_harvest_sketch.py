"""Harvest reductions: `harvest.sketch` content against a naive loop, readers, the attack on
sketches, plan-time validation, and the previous layout (`bench`'s reference) still read."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import polars as pl
import pyarrow.dataset as ds
import pytest
import torch

from sergrad.attack.config import AttackConfig, AttackModelConfig
from sergrad.attack.run import run_attack
from sergrad.attack.synth import TINY_SHAPES, write_synthetic_run
from sergrad.bench.harvest_reference import ReferenceWriter
from sergrad.errors import ConfigError, DataError
from sergrad.fl.config import HarvestConfig, RunConfig
from sergrad.fl.harvest import HarvestWriter, iter_update_batches, read_update_meta
from sergrad.fl.harvest_format import decode_value
from sergrad.fl.update import ClientUpdate
from sergrad.store import Store

torch.set_num_threads(1)
SHAPES = {"fc1.weight": (5, 7), "fc1.bias": (5,), "fc2.weight": (3, 5), "fc2.bias": (3,),
          "fc3.weight": (4, 4)}  # fmt: skip


def naive_sketch(w: np.ndarray) -> list[float]:
    """Row then column mean, population std and L2 norm, by plain Python loops."""
    out: list[float] = []
    for lines in ([list(r) for r in w], [list(c) for c in w.T]):
        means = [sum(v) / len(v) for v in lines]
        stds = [math.sqrt(sum((x - m) ** 2 for x in v) / len(v)) for v, m in zip(lines, means)]
        norms = [math.sqrt(sum(x * x for x in v)) for v in lines]
        out += means + stds + norms
    return out


def write(store, run_id, rows, *, cls=HarvestWriter, **harvest):
    with cls(store, run_id=run_id, param_names=list(SHAPES), param_shapes=SHAPES,
             config=RunConfig(), harvest=HarvestConfig(**harvest)) as hw:  # fmt: skip
        for r, tensors in enumerate(rows, start=1):
            hw.add(ClientUpdate(round=r, client_id=r, speaker_id=f"s{r}", n_samples=9,
                                kind="delta", tensors=tensors))  # fmt: skip
    return hw


def tensors(n: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [{p: torch.randn(s, generator=gen) * 3 + 1 for p, s in SHAPES.items()} for _ in range(n)]


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_sketch_holds_row_and_column_statistics_of_each_update(tmp_path, dtype):
    store = Store(tmp_path)
    rows = tensors(5)
    write(store, "r", rows, sketch=True, dtype=dtype, rows_per_group=2)
    meta = read_update_meta(store, "r")
    assert meta.sketch == "rowcol1" and meta.full_shapes == SHAPES
    assert meta.param_shapes == {"fc1.weight": (36,), "fc1.bias": (5,), "fc2.weight": (24,),
                                 "fc2.bias": (3,), "fc3.weight": (24,)}  # fmt: skip
    got = next(iter_update_batches(store, "r", params=list(SHAPES), batch_rows=10)).arrays
    tol = {"float32": 1e-5, "float16": 1e-3, "bfloat16": 8e-3}[dtype]
    for i, t in enumerate(rows):
        for p in ("fc1.weight", "fc2.weight", "fc3.weight"):
            oracle = naive_sketch(t[p].numpy().astype(np.float64))
            np.testing.assert_allclose(got[p][i], oracle, rtol=tol, atol=tol)
        for p in ("fc1.bias", "fc2.bias"):  # 1-D parameters are kept in full
            want = t[p].to(getattr(torch, dtype)).float().numpy()
            np.testing.assert_array_equal(got[p][i], want)


def test_sketch_is_readable_by_pyarrow_polars_and_duckdb(tmp_path):
    import duckdb

    store = Store(tmp_path)
    rows = tensors(3, seed=1)
    write(store, "r", rows, sketch=True, dtype="float32")
    root = tmp_path / "updates"
    values = {
        "pyarrow": ds.dataset(root, partitioning="hive").to_table()["fc2.weight"].to_pylist(),
        "polars": pl.read_parquet(root / "run_id=r" / "updates.parquet")["fc2.weight"].to_list(),
        "duckdb": [v for (v,) in duckdb.sql(
            f"SELECT \"fc2.weight\" FROM read_parquet('{root}/*/*.parquet') ORDER BY round"
        ).fetchall()],
    }  # fmt: skip
    for reader, got in values.items():
        for v, t in zip(got, rows):
            oracle = naive_sketch(t["fc2.weight"].numpy().astype(np.float64))
            np.testing.assert_allclose(decode_value(dict(v), "float32"), oracle, rtol=1e-5,
                                       err_msg=reader)  # fmt: skip


def test_sketch_is_much_smaller_and_float16_overflow_of_a_statistic_is_an_error(tmp_path):
    store = Store(tmp_path)
    big = {"fc1.weight": (64, 300), "fc1.bias": (64,), "fc2.weight": (3, 64), "fc2.bias": (3,)}
    gen = torch.Generator().manual_seed(2)
    rows = [{p: torch.randn(s, generator=gen) for p, s in big.items()} for _ in range(4)]

    def run(run_id, **h):
        with HarvestWriter(store, run_id=run_id, param_names=list(big), param_shapes=big,
                           config={}, harvest=HarvestConfig(**h)) as hw:  # fmt: skip
            for r, t in enumerate(rows, start=1):
                hw.add(ClientUpdate(round=r, client_id=0, speaker_id="s", n_samples=1,
                                    kind="delta", tensors=t))  # fmt: skip
        return hw.bytes_written

    assert run("sketch", sketch=True) * 10 < run("full")
    # each element fits float16, the row norm of 300 elements of 4000 does not
    rows = [{p: torch.full(s, 4000.0) for p, s in big.items()}]
    with pytest.raises(DataError, match="sketch of 'fc1.weight' overflows float16"):
        run("over", sketch=True, dtype="float16")
    assert "over" not in store.partition_values("updates")
    with pytest.raises(ConfigError, match="harvest.sketch"):
        run("bad", sketch="yes")


def test_attack_runs_on_sketches_with_the_models_that_read_them(tmp_path):
    """logreg_stats on sketches finds the synthetic gender leak; the cnn says it needs the
    full updates; shadow and target harvests must be alike."""
    store = Store(tmp_path)
    sketch = HarvestConfig(sketch=True)
    leak = {"fc1": 0.8, "fc2": 0.15, "fc3": 0.0}
    for i in range(2):
        write_synthetic_run(store, f"shadow{i}", corpus="a", shapes=TINY_SHAPES,
                            speakers=[(f"a{j}", "FM"[j % 2]) for j in range(12)], rounds=12,
                            clients_per_round=6, seed=i, signal=leak, harvest=sketch)  # fmt: skip
    for rid, h in (("target", sketch), ("full", HarvestConfig())):
        write_synthetic_run(store, rid, corpus="b", shapes=TINY_SHAPES,
                            speakers=[(f"b{j}", "FM"[j % 2]) for j in range(10)], rounds=8,
                            clients_per_round=5, seed=50, signal=leak, role="target",
                            harvest=h)  # fmt: skip

    def config(target, name):
        return AttackConfig(target_run=target, shadow_runs=("shadow0", "shadow1"),
                            layers=("fc1",), model=AttackModelConfig(name=name, epochs=30),
                            n_avg=(1,), trials=2, bootstrap=0)  # fmt: skip

    rows = run_attack(config("target", "logreg_stats"), store)
    attacks = [r for r in rows if r["protocol"] in ("per_update", "per_client")]
    assert len(attacks) == 4 and min(r["auc"] for r in attacks) > 0.9
    with pytest.raises(DataError, match="hold sketches .* 'cnn'"):
        run_attack(config("target", "cnn"), store)
    with pytest.raises(DataError, match="mix full and sketch"):
        run_attack(config("full", "logreg_stats"), store)


def test_previous_layout_still_reads_and_equals_the_current_one(tmp_path):
    """The bench's reference writer (the previous fixed-size-list layout) reads back through
    `harvest_read` to the same float arrays as the current binary values."""
    store = Store(tmp_path)
    rows = tensors(5, seed=3)
    for dtype in ("float32", "float16", "bfloat16"):
        write(store, f"old-{dtype}", rows, cls=ReferenceWriter, dtype=dtype, rows_per_group=2)
        write(store, f"new-{dtype}", rows, dtype=dtype, rows_per_group=3)
        assert read_update_meta(store, f"old-{dtype}").encoding == "list"
        old, new = (
            next(iter_update_batches(store, f"{k}-{dtype}", params=["all"], batch_rows=9)).arrays
            for k in ("old", "new")
        )
        for p in SHAPES:
            want = np.stack([t[p].to(getattr(torch, dtype)).float().reshape(-1) for t in rows])
            np.testing.assert_array_equal(old[p], want)
            np.testing.assert_array_equal(new[p], want)


PLAN = """\
name: bad
store: {store}
corpora:
  a: {{kind: synth, speakers: 6}}
  b: {{kind: synth, profile: synth-phone, speakers: 6}}
features: [{{name: prosody}}]
run:
  algo: {{rounds: 4}}
  harvest: {harvest}
attack:
  models: [{{name: logreg_stats}}]
"""


@pytest.mark.parametrize(
    ("harvest", "named"),
    [
        ("{sketch: 3}", ("harvest.sketch", "got 3")),
        ("{rounds: {every: 0}}", ("harvest.rounds", "{'every': 0}")),
        ("{params: ['fc9.*']}", ("harvest.params", "'fc9.*'")),
        ("{dtype: float8}", ("harvest.dtype", "float8")),
    ],
)
def test_bad_harvest_options_fail_at_plan_time_naming_key_and_value(tmp_path, capsys, harvest,
                                                                    named):  # fmt: skip
    from sergrad.cli import main

    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(PLAN).format(store=tmp_path / "store", harvest=harvest))
    assert main(["sweep", "plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert all(part in err for part in named), err
    assert not (tmp_path / "store").exists()


def test_run_ids_without_a_sketch_are_those_of_stores_written_before_it():
    """Ids computed at main before `harvest.sketch` existed: adding the field must not
    rerun older stores; a sketch run gets a new id."""
    from sergrad.fl.config import HarvestConfig, RunConfig, run_id

    assert run_id(RunConfig()) == "04d951a020165259"
    half = RunConfig(harvest=HarvestConfig(dtype="float16", params=("fc1.*",)))
    assert run_id(half) == "cfde19d5e08ee794"
    assert run_id(RunConfig(harvest=HarvestConfig(sketch=True))) != "04d951a020165259"
