"""Harvest writer/reader: round trips against numpy/torch oracles, selection, atomicity, memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sergrad import schema
from sergrad.config import canonical_json
from sergrad.errors import ConfigError, DataError, StoreError
from sergrad.fl.config import HarvestConfig, RunConfig
from sergrad.fl.harvest import (
    HarvestWriter,
    iter_update_batches,
    read_update_keys,
    read_update_meta,
    update_bytes_per_row,
)
from sergrad.fl.harvest_format import bfloat16_bits, decode_value
from sergrad.fl.harvest_write import row_block
from sergrad.fl.update import ClientUpdate
from sergrad.store import Store

torch.set_num_threads(1)
SHAPES = {"fc1.weight": (4, 3), "fc1.bias": (4,), "fc2.weight": (2, 4), "fc2.bias": (2,)}
NAMES = list(SHAPES)


def update(round: int, client: int, tensors: dict) -> ClientUpdate:
    return ClientUpdate(
        round=round,
        client_id=client,
        speaker_id=f"spk{client}",
        n_samples=10 + client,
        kind="delta",
        tensors=tensors,
    )


def random_tensors(gen: torch.Generator, shapes: dict = SHAPES) -> dict[str, torch.Tensor]:
    return {n: torch.randn(s, generator=gen) for n, s in shapes.items()}


def writer(store: Store, run_id: str = "run1", shapes: dict = SHAPES, **harvest) -> HarvestWriter:
    return HarvestWriter(
        store,
        run_id=run_id,
        param_names=list(shapes),
        param_shapes=shapes,
        config=RunConfig(),
        harvest=HarvestConfig(**harvest),
    )


def read_all(store: Store, run_id: str, params: list[str], **kw) -> tuple[list[dict], dict]:
    keys, arrays = [], {p: [] for p in params}
    for b in iter_update_batches(store, run_id, params=params, **kw):
        keys += b.keys.to_pylist()
        for p in params:
            arrays[p].append(b.arrays[p])
    return keys, {p: np.concatenate(v) if v else np.empty((0,)) for p, v in arrays.items()}


# --- round trips ---------------------------------------------------------------------------
finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False, allow_subnormal=True)
shape_st = st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shapes=st.lists(shape_st, min_size=1, max_size=3),
    n_rows=st.integers(1, 7),
    rows_per_group=st.integers(1, 4),
    data=st.data(),
)
def test_float32_round_trip_is_bit_exact(shapes, n_rows, rows_per_group, data):
    shape_map = {f"layer{i}.weight": s for i, s in enumerate(shapes)}
    rows = []
    for _ in range(n_rows):
        rows.append(
            {
                n: np.array(
                    data.draw(
                        st.lists(finite32, min_size=int(np.prod(s)), max_size=int(np.prod(s)))
                    ),
                    dtype=np.float32,
                ).reshape(s)
                for n, s in shape_map.items()
            }
        )
    rows[0][next(iter(shape_map))].flat[0] = -0.0
    with tempfile.TemporaryDirectory() as root:
        store = Store(root)
        with writer(store, shapes=shape_map, rows_per_group=rows_per_group) as hw:
            for i, r in enumerate(rows):
                hw.add(update(i + 1, i, {n: torch.from_numpy(v) for n, v in r.items()}))
        keys, arrays = read_all(store, "run1", list(shape_map), batch_rows=3)
        assert [k["round"] for k in keys] == list(range(1, n_rows + 1))
        for n in shape_map:
            expect = np.stack([r[n].reshape(-1) for r in rows])
            assert arrays[n].dtype == np.float32
            np.testing.assert_array_equal(arrays[n].view(np.uint32), expect.view(np.uint32))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_round_trip_equals_torch_conversion(tmp_path, dtype):
    gen = torch.Generator().manual_seed(1)
    scales = torch.tensor([1e-9, 1e-6, 1e-3, 1.0, 1e3, 3e4])  # subnormal .. near float16 max
    rows = []
    for i in range(12):
        t = random_tensors(gen)
        t["fc1.weight"] = t["fc1.weight"] * scales[i % len(scales)]
        t["fc1.bias"] = torch.tensor([0.0, -0.0, 1.0 + 2**-8, 1.0 + 3 * 2**-8])  # bf16 ties
        rows.append(t)
    store = Store(tmp_path)
    with writer(store, dtype=dtype, rows_per_group=5) as hw:
        for i, t in enumerate(rows):
            hw.add(update(i + 1, 0, t))
    keys, arrays = read_all(store, "run1", NAMES)
    convert = torch.Tensor.half if dtype == "float16" else torch.Tensor.bfloat16
    for n in NAMES:
        oracle = np.stack([convert(r[n]).float().reshape(-1).numpy() for r in rows])
        np.testing.assert_array_equal(arrays[n].view(np.uint32), oracle.view(np.uint32))
    assert read_update_meta(store, "run1").dtype == dtype
    df = pl.read_parquet(tmp_path / "updates/run_id=run1/updates.parquet")  # polars reads it
    assert df.schema["fc1.weight"] == pl.Struct(
        {"sign": pl.Binary, "b0": pl.Binary, "b1": pl.Binary}
    )
    for value, r in zip(df["fc1.weight"].to_list(), rows):
        assert value == spec_value(convert(r["fc1.weight"]))


def spec_value(t: torch.Tensor) -> dict:
    """The format's stored struct, built from torch's bits with Python integers: the sign
    bits packed 8 to a byte (first element in the high bit), then the bytes of each element
    without its sign, shifted left by one: all lowest bytes, then all next bytes, ..."""
    k = t.element_size()
    bits = [int(b) % 2 ** (8 * k) for b in t.reshape(-1).view({2: torch.int16, 4: torch.int32}[k])]
    signs = [b >> (8 * k - 1) for b in bits] + [0] * (-len(bits) % 8)
    packed = bytes(
        sum(s << (7 - j) for j, s in enumerate(signs[i : i + 8])) for i in range(0, len(signs), 8)
    )
    shifted = [(b << 1) % 2 ** (8 * k) for b in bits]
    planes = {f"b{j}": bytes((m >> (8 * j)) & 0xFF for m in shifted) for j in range(k)}
    return {"sign": packed, **planes}


@settings(max_examples=50, deadline=None)
@given(st.lists(finite32, min_size=1, max_size=64))
def test_numpy_bfloat16_bits_match_torch(values):
    x = np.array(values, dtype=np.float32)
    oracle = torch.from_numpy(x).bfloat16().view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(bfloat16_bits(x), oracle)


def test_float16_overflow_is_an_error(tmp_path):
    store = Store(tmp_path)
    t = random_tensors(torch.Generator().manual_seed(0))
    t["fc2.bias"] = torch.tensor([1e5, 0.0])
    with pytest.raises(DataError, match="round 3 client 7.*overflows float16"):
        with writer(store, dtype="float16") as hw:
            hw.add(update(3, 7, t))
    assert store.files("updates") == []


# --- one dataset over several runs ---------------------------------------------------------
def test_several_runs_read_as_one_dataset(tmp_path):
    store = Store(tmp_path)
    gen = torch.Generator().manual_seed(2)
    run_ids = ["0123456789012345", "abcdef0123456789", "fedcba9876543210"]  # one all digits
    expected = {}
    for k, rid in enumerate(run_ids):
        with writer(store, rid, rows_per_group=2) as hw:
            for r in range(1, 4):
                t = random_tensors(gen)
                hw.add(update(r, k, t))
                expected[(rid, r)] = t["fc1.weight"].reshape(-1).numpy()
    table = ds.dataset(tmp_path / "updates", partitioning="hive").to_table()
    assert table.num_rows == 9 and "run_id" in table.column_names
    for row in table.select(["run_id", "round", "fc1.weight"]).to_pylist():
        np.testing.assert_array_equal(
            decode_value(row["fc1.weight"], "float32"), expected[(str(row["run_id"]), row["round"])]
        )
    assert sorted(set(store.read("updates", columns=["run_id"])["run_id"].to_pylist())) == run_ids
    lazy = pl.scan_parquet(
        tmp_path / "updates", hive_partitioning=True, hive_schema={"run_id": pl.String}
    )
    got = lazy.filter(pl.col("round") == 2).select("run_id", "client_id", "fc1.weight").collect()
    assert sorted(got["run_id"].to_list()) == run_ids
    for rid, value in zip(got["run_id"], got["fc1.weight"].to_list()):
        np.testing.assert_array_equal(decode_value(value, "float32"), expected[(rid, 2)])


def spec_decode(v: dict, dtype: str) -> np.ndarray:
    """The module doc's numpy decoder (independent of harvest_format's code)."""
    k = {"float32": 4, "float16": 2}[dtype]
    n = len(v["b0"])
    sign = np.unpackbits(np.frombuffer(v["sign"], np.uint8), count=n)
    m = np.stack([np.frombuffer(v[f"b{j}"], np.uint8) for j in range(k)], 1).view(f"<u{k}")[:, 0]
    bits = (m >> 1) | (sign.astype(m.dtype) << (8 * k - 1))
    return bits.view({4: "<f4", 2: "<f2"}[k])


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_pyarrow_polars_and_duckdb_read_update_columns(tmp_path, dtype):
    """Each reader opens the whole `updates` table (hive partitions) and returns, per update,
    a value that decodes to torch's conversion of the tensor to the stored dtype."""
    import duckdb

    store = Store(tmp_path)
    gen = torch.Generator().manual_seed(5)
    sent = {}
    for rid in ("run1", "0123456789012345"):
        with writer(store, rid, dtype=dtype, rows_per_group=2) as hw:
            for r in range(1, 4):
                t = random_tensors(gen)
                hw.add(update(r, r, t))
                sent[(rid, r)] = t["fc1.weight"].to(getattr(torch, dtype)).reshape(-1).numpy()
    root = tmp_path / "updates"
    got = {
        "pyarrow": ds.dataset(root, partitioning="hive").to_table().to_pylist(),
        "polars": pl.scan_parquet(root, hive_partitioning=True, hive_schema={"run_id": pl.String})
        .collect()
        .to_dicts(),
        "duckdb": [
            dict(zip(("run_id", "round", "fc1.weight"), row))
            for row in duckdb.sql(
                f"SELECT run_id, round, \"fc1.weight\" FROM read_parquet('{root}/*/*.parquet', "
                "hive_partitioning = true, hive_types = {'run_id': VARCHAR})"
            ).fetchall()
        ],
    }
    for reader, rows in got.items():
        assert len(rows) == 6, reader
        for row in rows:
            oracle = sent[(str(row["run_id"]), row["round"])]
            value = {k: bytes(b) for k, b in row["fc1.weight"].items()}  # a struct
            np.testing.assert_array_equal(spec_decode(value, dtype), oracle, err_msg=reader)
            np.testing.assert_array_equal(decode_value(value, dtype), oracle.astype(np.float32))


# --- selection ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "rounds"),
    [("all", [1, 2, 3, 4, 5, 6, 7]), ({"every": 3}, [3, 6]), ([2, 5, 9], [2, 5])],
)
def test_round_selection(tmp_path, spec, rounds):
    store = Store(tmp_path)
    gen = torch.Generator().manual_seed(3)
    with writer(store, rounds=spec) as hw:
        assert [r for r in range(1, 8) if hw.wants_round(r)] == rounds
        for r in range(1, 8):
            hw.add(update(r, 0, random_tensors(gen)))  # unwanted rounds are skipped
            hw.add(update(r, 1, random_tensors(gen)))
    keys = read_update_keys(store, "run1")
    assert keys["round"].to_pylist() == [r for r in rounds for _ in range(2)]
    assert keys.column_names == [f.name for f in schema.UPDATE_KEYS]
    assert read_update_meta(store, "run1").n_rows == 2 * len(rounds)


@pytest.mark.parametrize(
    "spec", [{"every": 0}, {"every": "2"}, {"every": 2, "start": 1}, [], [0, 1], [1.5], "some", 3]
)
def test_invalid_round_selection(tmp_path, spec):
    with pytest.raises(ConfigError, match="harvest.rounds"):
        writer(Store(tmp_path), rounds=spec)


@pytest.mark.parametrize(("rows_per_group", "cap", "groups"), [(2, 1 << 20, 3), (4, 30, 5)])
def test_row_groups_flush_every_n_rows_capped_by_size(
    tmp_path, monkeypatch, rows_per_group, cap, groups
):
    import sergrad.fl.harvest_write as hw_module

    monkeypatch.setattr(hw_module, "MAX_GROUP_ELEMENTS", cap)  # 26 values per row in SHAPES
    store = Store(tmp_path)
    gen = torch.Generator().manual_seed(10)
    with writer(store, rows_per_group=rows_per_group) as hw:
        for r in range(1, 6):
            hw.add(update(r, 0, random_tensors(gen)))
    meta = pq.ParquetFile(tmp_path / "updates/run_id=run1/updates.parquet").metadata
    assert meta.num_row_groups == groups and meta.num_rows == 5
    big = writer(store, shapes={"w": (256, 988)}, rows_per_group=256)
    assert big.rows_per_group == max(1, min(256, cap // (256 * 988)))


def test_default_group_cap_for_the_paper_layer(tmp_path):
    assert (
        writer(Store(tmp_path), shapes={"w": (256, 988)}, rows_per_group=256).rows_per_group == 16
    )


def test_bad_run_id_and_rows_per_group(tmp_path):
    with pytest.raises(StoreError, match="run_id 'a/b'"):
        writer(Store(tmp_path), "a/b")
    with pytest.raises(ConfigError, match="rows_per_group"):
        writer(Store(tmp_path), rows_per_group=0)
    with pytest.raises(ConfigError, match="harvest.dtype"):
        writer(Store(tmp_path), dtype="int8")


def test_round_zero_is_rejected(tmp_path):
    with writer(Store(tmp_path)) as hw, pytest.raises(DataError, match="1-based"):
        hw.wants_round(0)


@pytest.mark.parametrize(
    ("patterns", "chosen"),
    [
        (("all",), NAMES),
        (("fc1.*",), ["fc1.weight", "fc1.bias"]),
        (("fc2.bias", "fc1.weight"), ["fc1.weight", "fc2.bias"]),
        (("*.bias", "fc2.*"), ["fc1.bias", "fc2.weight", "fc2.bias"]),
    ],
)
def test_param_selection(tmp_path, patterns, chosen):
    store = Store(tmp_path)
    gen = torch.Generator().manual_seed(4)
    t = random_tensors(gen)
    with writer(store, params=patterns) as hw:
        hw.add(update(1, 0, t))
    meta = read_update_meta(store, "run1")
    assert meta.param_names == chosen
    file_cols = pq.read_schema(store.open_input(store.path("updates/run_id=run1/updates.parquet")))
    assert file_cols.names == [f.name for f in schema.UPDATE_KEYS] + chosen
    _, arrays = read_all(store, "run1", chosen)
    for n in chosen:
        np.testing.assert_array_equal(arrays[n][0], t[n].reshape(-1).numpy())


def test_param_errors(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(ConfigError, match="'conv.*' matches no parameter.*fc1.weight, fc1.bias"):
        writer(store, params=("fc1.*", "conv.*"))
    with writer(store, params=("fc1.*",)) as hw:
        hw.add(update(1, 0, random_tensors(torch.Generator().manual_seed(0))))
    with pytest.raises(StoreError, match="'fc2.weight' was not harvested; stored: fc1.weight"):
        next(iter_update_batches(store, "run1", params=["fc2.weight"]))
    with pytest.raises(StoreError, match="no harvested updates for run 'nope'.*run1"):
        read_update_meta(store, "nope")


def test_bad_updates_name_round_and_client(tmp_path):
    store = Store(tmp_path)
    gen = torch.Generator().manual_seed(5)
    bad_shape = random_tensors(gen) | {"fc1.bias": torch.zeros(5)}
    missing = {k: v for k, v in random_tensors(gen).items() if k != "fc2.weight"}
    with writer(store) as hw:
        with pytest.raises(DataError, match="round 2 client 4.*'fc1.bias' has shape"):
            hw.add(update(2, 4, bad_shape))
        with pytest.raises(DataError, match="round 2 client 4.*'fc2.weight' missing"):
            hw.add(update(2, 4, missing))
        with pytest.raises(DataError, match="kind 'weights'"):
            hw.add(update(2, 4, random_tensors(gen)).replace(kind="weights"))
        hw.add(update(2, 5, random_tensors(gen)))
    assert read_update_keys(store, "run1")["client_id"].to_pylist() == [5]  # rejects left nothing


def test_engine_may_reuse_its_buffers_after_add(tmp_path):
    store = Store(tmp_path)
    buf = random_tensors(torch.Generator().manual_seed(11))
    first = {n: t.clone() for n, t in buf.items()}
    with writer(store, rows_per_group=4) as hw:
        hw.add(update(1, 0, buf))
        for t in buf.values():
            t.fill_(7.0)  # the engine overwrites its buffers for the next client
        hw.add(update(1, 1, {n: t.double() for n, t in buf.items()}))  # float64 accepted
    _, arrays = read_all(store, "run1", NAMES)
    for n in NAMES:
        np.testing.assert_array_equal(arrays[n][0], first[n].reshape(-1).numpy())
        assert (arrays[n][1] == 7.0).all()


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_add_many_of_stacked_rows_equals_add_of_each(tmp_path, dtype):
    """A round handed over at once (rows of one [clients, ...] tensor: one block copy per
    parameter, split at the row-group boundary) stores what add() of each update stores."""
    gen = torch.Generator().manual_seed(12)
    stacked = {n: torch.randn((5, *s), generator=gen) for n, s in SHAPES.items()}
    rows = [{n: t[i] for n, t in stacked.items()} for i in range(5)]
    loose = [{n: t.clone() for n, t in r.items()} for r in rows]  # separate tensors
    stores = {}
    for how in ("many", "each", "loose"):
        stores[how] = Store(tmp_path / how)
        with writer(stores[how], dtype=dtype, rows_per_group=3) as hw:
            if how == "each":
                for i, r in enumerate(rows):
                    hw.add(update(1, i, r))
            else:
                hw.add_many(
                    [update(1, i, r) for i, r in enumerate(rows if how == "many" else loose)]
                )
    keys, arrays = read_all(stores["each"], "run1", NAMES)
    assert [k["client_id"] for k in keys] == [0, 1, 2, 3, 4]
    for how in ("many", "loose"):
        k, a = read_all(stores[how], "run1", NAMES)
        assert [r["client_id"] for r in k] == [0, 1, 2, 3, 4]
        for n in NAMES:
            np.testing.assert_array_equal(a[n], arrays[n])
    w = stacked["fc1.weight"]
    assert torch.equal(row_block([w[1], w[2]]), w[1:3].reshape(2, -1))
    assert row_block([w[1], w[0]]) is None and row_block([w[0], w[0].clone()]) is None
    for n in NAMES:  # the stored dtype's rounding of each row (float16: torch's .half())
        want = stacked[n].reshape(5, -1)
        want = {
            "float32": want,
            "float16": want.half().float(),
            "bfloat16": want.bfloat16().float(),
        }[dtype]
        np.testing.assert_array_equal(arrays[n], want.numpy())


def test_add_many_rejects_the_whole_batch(tmp_path):
    store = Store(tmp_path)
    gen = torch.Generator().manual_seed(13)
    good = random_tensors(gen)
    with writer(store) as hw:
        with pytest.raises(DataError, match="round 1 client 1.*'fc1.bias' has shape"):
            hw.add_many([update(1, 0, good), update(1, 1, good | {"fc1.bias": torch.zeros(5)})])
        hw.add(update(1, 2, good))
    assert read_update_keys(store, "run1")["client_id"].to_pylist() == [2]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_update_publishes_nothing(tmp_path, bad):
    store = Store(tmp_path)
    gen = torch.Generator().manual_seed(6)
    with pytest.raises(DataError, match=r"round 3 client 2 .*'fc1.weight' has 1 NaN/inf"):
        with writer(store, rows_per_group=1) as hw:
            for r in (1, 2, 3):
                t = random_tensors(gen)
                if r == 3:
                    t["fc1.weight"][1, 2] = bad
                hw.add(update(r, 2, t))
    assert store.files("updates") == []
    assert list((tmp_path / "_tmp").iterdir()) == []


@pytest.mark.parametrize(
    ("dtype", "bad", "message"),
    [
        ("float16", float("nan"), r"round 2 client 1 .*'fc2.weight' has 1 NaN/inf values"),
        ("bfloat16", float("nan"), r"round 2 client 1 .*'fc2.weight' has 1 NaN/inf values"),
        ("bfloat16", float("-inf"), r"round 2 client 1 .*'fc2.weight' overflows bfloat16"),
        ("bfloat16", 3.4e38, r"round 2 client 1 .*'fc2.weight' overflows bfloat16"),  # finite
        ("float32", float("inf"), r"round 2 client 1 .*'fc2.weight' has 1 NaN/inf values"),
    ],
)
def test_non_finite_is_found_by_the_background_writer_in_each_dtype(tmp_path, dtype, bad, message):
    """The writer thread finds NaN/inf from the stored exponent plane, in any row of a group."""
    store = Store(tmp_path)
    gen = torch.Generator().manual_seed(16)
    with pytest.raises(DataError, match=message):
        with writer(store, dtype=dtype, rows_per_group=3) as hw:
            for r, c in [(1, 0), (1, 1), (2, 0), (2, 1), (3, 0)]:
                t = random_tensors(gen)
                if (r, c) == (2, 1):
                    t["fc2.weight"][1, 3] = bad
                hw.add(update(r, c, t))
    assert store.files("updates") == []


# --- metadata, atomicity, disabled -----------------------------------------------------------
def test_metadata_content(tmp_path):
    store = Store(tmp_path)
    cfg = RunConfig(seed=7, harvest=HarvestConfig(dtype="bfloat16", params=("fc2.*",)))
    with HarvestWriter(
        store,
        run_id="r7",
        param_names=NAMES,
        param_shapes=SHAPES,
        config=cfg,
        harvest=cfg.harvest,
    ) as hw:
        hw.add(update(1, 0, random_tensors(torch.Generator().manual_seed(0))))
    assert hw.n_rows == 1
    assert hw.bytes_written == os.path.getsize(tmp_path / "updates/run_id=r7/updates.parquet")
    md = pq.read_schema(tmp_path / "updates/run_id=r7/updates.parquet").metadata
    assert json.loads(md[schema.META_PARAM_NAMES]) == ["fc2.weight", "fc2.bias"]
    assert json.loads(md[schema.META_PARAM_SHAPES]) == {"fc2.weight": [2, 4], "fc2.bias": [2]}
    assert md[schema.META_DTYPE] == b"bfloat16"
    assert md[schema.META_CONFIG].decode() == canonical_json(cfg)
    assert set(json.loads(md[schema.META_VERSIONS])) >= {"numpy", "pyarrow", "torch", "sergrad"}
    meta = read_update_meta(store, "r7")
    assert meta.param_shapes == {"fc2.weight": (2, 4), "fc2.bias": (2,)}
    assert meta.config["seed"] == 7 and meta.n_rows == 1 and meta.dtype == "bfloat16"


def test_exception_in_block_leaves_nothing(tmp_path):
    store = Store(tmp_path)
    gen = torch.Generator().manual_seed(8)
    with pytest.raises(RuntimeError, match="engine crashed"):
        with writer(store, rows_per_group=2) as hw:
            for r in range(1, 6):
                hw.add(update(r, 0, random_tensors(gen)))
            raise RuntimeError("engine crashed")
    assert store.files("updates") == []
    assert not (tmp_path / "updates").exists() or not any((tmp_path / "updates").rglob("*"))
    assert list((tmp_path / "_tmp").iterdir()) == []
    assert hw.bytes_written == 0


def test_disabled_writes_nothing(tmp_path):
    store = Store(tmp_path)
    with writer(store, enabled=False) as hw:
        assert not hw.wants_round(1)
        hw.add(update(1, 0, random_tensors(torch.Generator().manual_seed(0))))
    assert hw.n_rows == 0 and hw.bytes_written == 0
    assert not (tmp_path / "updates").exists() and not (tmp_path / "_tmp").exists()


def test_no_wanted_round_publishes_an_empty_file(tmp_path):
    store = Store(tmp_path)
    with writer(store, rounds=[50]) as hw:
        hw.add(update(1, 0, random_tensors(torch.Generator().manual_seed(0))))
    assert read_update_meta(store, "run1").n_rows == 0
    assert list(iter_update_batches(store, "run1", params=NAMES)) == []


def test_batches_follow_rounds_filter_and_size(tmp_path):
    store = Store(tmp_path)
    gen = torch.Generator().manual_seed(9)
    oracle = []
    with writer(store, rows_per_group=4) as hw:
        for r in range(1, 9):
            for c in range(3):
                t = random_tensors(gen)
                hw.add(update(r, c, t))
                oracle.append((r, c, t["fc2.weight"].reshape(-1).numpy()))
    batches = list(
        iter_update_batches(store, "run1", params=["fc2.w*"], batch_rows=2, rounds=[2, 7])
    )
    assert [b.num_rows for b in batches] == [2, 2, 2]  # 6 matching rows
    keys = [k for b in batches for k in b.keys.to_pylist()]
    got = np.concatenate([b.arrays["fc2.weight"] for b in batches])
    want = [(r, c, v) for r, c, v in oracle if r in (2, 7)]
    assert [(k["round"], k["client_id"]) for k in keys] == [(r, c) for r, c, _ in want]
    np.testing.assert_array_equal(got, np.stack([v for *_, v in want]))
    assert list(iter_update_batches(store, "run1", params=["fc2.weight"], rounds=[99])) == []


def test_reader_imports_no_torch():
    code = "import sys, sergrad.fl.harvest, sergrad.fl.records; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_update_bytes_per_row_counts_elements():
    assert update_bytes_per_row((256, 988), "float32") == 256 * 988 * 4 + 32
    assert update_bytes_per_row({"a": (3, 2), "b": (4,)}, "bfloat16") == 10 * 2 + 32


# --- background writer ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_background_and_inline_writes_are_identical(tmp_path, dtype):
    """The background thread writes the same file as the inline writer (double buffers: the
    rows filled while a group is being written do not clobber it)."""
    gen = torch.Generator().manual_seed(12)
    rows = [(r, c, random_tensors(gen)) for r in range(1, 8) for c in range(3)]  # 21 rows
    files = {}
    for background in (False, True):
        store = Store(tmp_path / str(background))
        hw = HarvestWriter(
            store, run_id="run1", param_names=NAMES, param_shapes=SHAPES, config=RunConfig(),
            harvest=HarvestConfig(dtype=dtype, rows_per_group=4), background=background,
        )  # fmt: skip
        buf = {n: torch.empty(s) for n, s in SHAPES.items()}
        with hw:
            for r, c, t in rows:
                for n in NAMES:
                    buf[n].copy_(t[n])  # one reused engine buffer
                hw.add(update(r, c, buf))
        assert hw.n_rows == 21 and hw.bytes_written > 0
        files[background] = pq.read_table(tmp_path / str(background) / "updates")
        keys, arrays = read_all(store, "run1", NAMES)
        assert [(k["round"], k["client_id"]) for k in keys] == [(r, c) for r, c, _ in rows]
        for n in NAMES:
            oracle = np.stack([fmt_oracle(t[n], dtype) for _, _, t in rows])
            np.testing.assert_array_equal(arrays[n], oracle)
    assert files[True].equals(files[False])


def fmt_oracle(t: torch.Tensor, dtype: str) -> np.ndarray:
    """float32 values torch's own conversion to the stored dtype gives back."""
    to = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    return t.reshape(-1).to(to).to(torch.float32).numpy()


@pytest.mark.parametrize("background", [True, False])
def test_write_error_is_raised_and_publishes_nothing(tmp_path, monkeypatch, background):
    """A Parquet write failing (here: disk full on the 2nd row group) reaches the caller on a
    later add or at the end of the block, and no file is published."""
    calls = []
    real = pq.ParquetWriter.write_batch

    def failing(self, batch, *args, **kwargs):
        calls.append(batch.num_rows)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(self, batch, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_batch", failing)
    store = Store(tmp_path)
    gen = torch.Generator().manual_seed(13)
    hw = HarvestWriter(
        store, run_id="run1", param_names=NAMES, param_shapes=SHAPES, config=RunConfig(),
        harvest=HarvestConfig(rows_per_group=2), background=background,
    )  # fmt: skip
    with pytest.raises(OSError, match="disk full"):
        with hw:
            for r in range(1, 30):
                hw.add(update(r, 0, random_tensors(gen)))
    assert 2 <= len(calls) <= 3  # stopped right after the failure (at most one more group)
    assert store.files("updates") == [] and hw.bytes_written == 0
    assert list((tmp_path / "_tmp").iterdir()) == []


@pytest.mark.parametrize(("value", "ok"), [(65519.0, True), (-65519.0, True), (65520.0, False)])
def test_float16_range_boundary_matches_torch(tmp_path, value, ok):
    """Accepted exactly when torch's float16 conversion is finite (65520 rounds to inf)."""
    assert bool(torch.isfinite(torch.tensor(value).half())) == ok
    store = Store(tmp_path)
    t = random_tensors(torch.Generator().manual_seed(14))
    t["fc2.bias"] = torch.tensor([value, 0.0])
    if not ok:
        with pytest.raises(DataError, match="'fc2.bias' overflows float16"):
            with writer(store, dtype="float16") as hw:
                hw.add(update(1, 0, t))
        return
    with writer(store, dtype="float16") as hw:
        hw.add(update(1, 0, t))
    _, arrays = read_all(store, "run1", ["fc2.bias"])
    np.testing.assert_array_equal(arrays["fc2.bias"][0], fmt_oracle(t["fc2.bias"], "float16"))


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_bss1_files_still_read(tmp_path, dtype):
    """A file of the previous "bss1" format (one binary value per tensor: the little-endian
    byte planes, built here with numpy from torch's bits) reads back to torch's conversion."""
    gen = torch.Generator().manual_seed(15)
    rows = [random_tensors(gen) for _ in range(5)]
    store = Store(tmp_path)
    with writer(store, dtype=dtype, rows_per_group=2) as hw:  # metadata and keys of a new file
        for i, t in enumerate(rows):
            hw.add(update(i + 1, 0, t))
    path = tmp_path / "updates/run_id=run1/updates.parquet"
    new = pq.read_table(path)
    to = {"float32": torch.int32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    cols = {}
    for n in NAMES:
        values = []
        for t in rows:
            x = t[n].reshape(-1).to(to) if dtype != "float32" else t[n].reshape(-1)
            bits = x.view(torch.int16 if dtype != "float32" else torch.int32).numpy()
            raw = np.frombuffer(bits.astype(bits.dtype.newbyteorder("<")).tobytes(), np.uint8)
            values.append(raw.reshape(-1, bits.itemsize).T.tobytes())  # all byte 0s, then 1s..
        cols[n] = pa.array(values, pa.binary())
    meta = dict(new.schema.metadata) | {b"sergrad.encoding": b"bss1"}
    old = new.select([f.name for f in schema.UPDATE_KEYS])
    for n in NAMES:
        old = old.append_column(n, cols[n])
    pq.write_table(old.replace_schema_metadata(meta), path, row_group_size=2)
    meta_read = read_update_meta(store, "run1")
    assert meta_read.encoding == "bss1"
    _, arrays = read_all(store, "run1", NAMES, batch_rows=3)
    for n in NAMES:
        oracle = np.stack([fmt_oracle(t[n], dtype) for t in rows])
        np.testing.assert_array_equal(arrays[n].view(np.uint32), oracle.view(np.uint32))
        got = decode_value(pq.read_table(path)[n][1].as_py(), dtype)
        np.testing.assert_array_equal(got, oracle[1])


# --- bounded memory ---------------------------------------------------------------------------
def probe(mode: str, root: str, rows: int, h: int, w: int, rows_per_group: int, dtype: str) -> dict:
    """Write (or stream back) `rows` updates of one [h, w] layer; report peak allocations.

    Peak = Python-side allocations (tracemalloc: numpy buffers) + the Arrow memory pool's peak
    (Parquet encode/decode). Run in a fresh process so the Arrow peak is this work's only.
    """
    import resource
    import time
    import tracemalloc

    store = Store(root)
    base = torch.randn(h, w, generator=torch.Generator().manual_seed(0))
    pool = pa.default_memory_pool()
    arrow0 = pool.max_memory()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    t0 = time.perf_counter()
    out = {"data_bytes": rows * h * w * 4}
    if mode == "write":
        t = torch.empty(h, w)
        with writer(
            store, "big", {"fc1.weight": (h, w)}, rows_per_group=rows_per_group, dtype=dtype
        ) as hw:
            for i in range(rows):
                torch.add(base, i * 1e-3, out=t)
                hw.add(update(i + 1, i % 10, {"fc1.weight": t}))
        out["file_bytes"] = hw.bytes_written
    else:
        ok, n = True, 0
        for b in iter_update_batches(store, "big", params=["fc1.weight"], batch_rows=64):
            first = b.arrays["fc1.weight"][:, 0]
            rounds = np.array(b.keys["round"].to_pylist()) - 1
            expect = np.array([float((base[0, 0] + i * 1e-3).item()) for i in rounds], np.float32)
            ok &= dtype != "float32" or bool(np.array_equal(first, expect))
            n += b.num_rows
        out.update(
            rows_read=n,
            checksum_ok=ok,
            file_bytes=os.path.getsize(Path(root) / "updates/run_id=big/updates.parquet"),
        )
    out["seconds"] = time.perf_counter() - t0
    py_peak = tracemalloc.get_traced_memory()[1]
    out["py_peak"], out["arrow_peak"] = py_peak, pool.max_memory() - arrow0
    out[f"{mode}_peak"] = py_peak + out["arrow_peak"]
    out["rss_growth"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
    return out


def run_probe(mode: str, *args) -> dict:
    cmd = [sys.executable, __file__, mode, *map(str, args)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_memory_stays_bounded_with_many_rounds(tmp_path):
    """2000 rows of a 32x988 layer (253 MB float32) in row groups of 64 rows (8 MB): the peak
    is a few row groups (writing: two alternating buffers, the byte-split copy, Parquet's page
    staging and compressed pages), far below the data, and no larger than with 8x fewer
    rounds."""
    group_bytes = 64 * 32 * 988 * 4
    peaks = {}
    for rows in (250, 2000):
        args = (tmp_path / str(rows), rows, 32, 988, 64, "float32")
        w, r = run_probe("write", *args), run_probe("read", *args)
        assert r["rows_read"] == rows and r["checksum_ok"]
        peaks[rows] = (w["write_peak"], r["read_peak"])
    write_peak, read_peak = peaks[2000]
    assert write_peak < 6 * group_bytes and read_peak < 8 * group_bytes, peaks
    assert write_peak < 2000 * 32 * 988 * 4 / 6 and read_peak < w["file_bytes"] / 3, peaks
    assert write_peak < 1.25 * peaks[250][0] and read_peak < 1.25 * peaks[250][1], peaks


if __name__ == "__main__":  # the memory probe: python tests/test_harvest.py write|read ROOT ...
    mode, root, rows, h, w, rpg, dtype = sys.argv[1:]
    torch.set_num_threads(1)
    print(json.dumps(probe(mode, root, int(rows), int(h), int(w), int(rpg), dtype)))


@pytest.mark.parametrize("with_torch", [True, False])
def test_float16_widening_with_torch_equals_numpy_for_every_finite_pattern(with_torch, monkeypatch):
    """The finite float16 patterns (both signs, zeros, subnormals, 65504) decode to numpy's
    widening bit for bit, by torch's cast (torch imported, no inf/NaN in the batch) or by
    the float32 bit arithmetic; a batch holding an inf takes the numpy path."""
    from sergrad.fl import harvest_codec
    from sergrad.fl.harvest_codec import PlaneEncoder, decode_sbs_into

    calls = []
    real = harvest_codec._decode_half_with_torch
    monkeypatch.setattr(harvest_codec, "_decode_half_with_torch",
                        lambda *a: (calls.append(1), real(*a)))  # fmt: skip
    if not with_torch:
        monkeypatch.setattr(harvest_codec, "_torch_widens", lambda top, out: False)
    bits = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    finite = bits[(bits & 0x7C00) != 0x7C00]  # 63,488 patterns
    for stored in (finite.reshape(2, -1), np.r_[finite[:7], 0x7C00].reshape(2, 4)):
        rows, n = stored.shape
        fields = PlaneEncoder("float16", rows=rows, numel=n)(stored.view(np.float16)).flatten()
        planes = [np.frombuffer(f.buffers()[2], np.uint8).reshape(rows, -1) for f in fields]
        out = np.empty((rows, n), np.float32)
        decode_sbs_into(planes[0], planes[1:], "float16", out)
        want = stored.view(np.float16).astype(np.float32)
        assert np.array_equal(out.view(np.uint32), want.view(np.uint32))
    assert calls == ([1] if with_torch else [])  # the batch with an inf: numpy's path


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_sbs1_decoder_is_exact_for_every_16_bit_pattern(dtype):
    """All 65,536 bit patterns (zeros, subnormals, the extremes, inf, NaN payloads) decode to
    numpy's own float16 widening (bfloat16: the bits as the float32's high half), bit for bit."""
    from sergrad.fl.harvest_codec import PlaneEncoder, decode_sbs_into

    bits = np.arange(2**16, dtype=np.uint32).astype(np.uint16).reshape(4, 2**14)
    stored = bits.view(np.float16) if dtype == "float16" else bits
    enc = PlaneEncoder(dtype, rows=4, numel=2**14)
    fields = enc(stored).flatten()
    rows = [np.frombuffer(f.buffers()[2], np.uint8).reshape(4, -1) for f in fields]
    out = np.empty((4, 2**14), np.float32)
    decode_sbs_into(rows[0], rows[1:], dtype, out)
    if dtype == "float16":
        expected = bits.view(np.float16).astype(np.float32)
    else:
        expected = (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)
    assert np.array_equal(out.view(np.uint32), expected.view(np.uint32))
