"""score_layer against the naive loop it replaced: every output bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sergrad.attack import pipeline
from sergrad.attack.dataset import RowFile
from sergrad.attack.models import create
from sergrad.attack.protocols import average_rows, client_rows, client_selections
from sergrad.attack.train import predict_features

torch.set_num_threads(1)
SHAPES = {"fc1.weight": (16, 40), "fc1.bias": (16,)}
PARAMS = list(SHAPES)


def _naive(model, rows: np.ndarray, selections: dict) -> tuple[np.ndarray, dict]:
    """Each chunk of PREDICT_ROWS updates / selections: average each selection's rows
    (average_rows), transform the chunk, predict it."""

    def outputs(x):  # [b, D] -> model outputs
        split = {"fc1.weight": x[:, :640], "fc1.bias": x[:, 640:]}
        return predict_features(model, model.transform(split), device="cpu")

    step = pipeline.PREDICT_ROWS
    per_update = np.concatenate([outputs(rows[s : s + step]) for s in range(0, len(rows), step)])
    per_client = {}
    for n, sels in selections.items():
        chunks = [sels[s : s + step] for s in range(0, len(sels), step)]
        per_client[n] = np.concatenate(
            [outputs(np.stack([average_rows(rows[sel.rows]) for sel in c])) for c in chunks]
        )
    return per_update, per_client


@pytest.mark.parametrize("name", ["logreg_stats", "logreg_colcorr", "mlp_proj", "cnn"])
@pytest.mark.parametrize("keep_bytes", [0, 64 * 2**20])  # features recomputed / kept
def test_score_layer_equals_the_naive_loop_bit_for_bit(tmp_path, monkeypatch, name, keep_bytes):
    monkeypatch.setattr(pipeline, "KEEP_FEATURE_BYTES", keep_bytes)
    rng = np.random.default_rng(0)
    counts = [1, 1, 2, 3, 7, 9, 12, 13]  # clients with one update, a few, many
    rows = rng.standard_normal((sum(counts), 16 * 40 + 16)).astype(np.float32)
    model = create(name, shapes=SHAPES, params={"columns": 12} if "colcorr" in name else {},
                   generator=torch.Generator().manual_seed(3))  # fmt: skip
    for m in model.module.modules():  # trained-looking batch-norm statistics
        if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(4))
    rf = RowFile(str(tmp_path / "t.f32"), width=rows.shape[1], memory_bytes=rows.nbytes)
    rf.append(rows)
    by_client = client_rows(rng.permutation(np.repeat(np.arange(len(counts)), counts)))
    sels = {n: client_selections(by_client, n=n, trials=4, seed=n)[0] for n in (1, 3, 0)}
    got_u, got_c = pipeline.score_layer(model, rf, PARAMS, shapes=SHAPES, selections=sels,
                                        device="cpu")  # fmt: skip
    want_u, want_c = _naive(model, rows, sels)
    assert got_u.tobytes() == want_u.tobytes()
    assert set(got_c) == set(want_c)
    for n in want_c:
        assert got_c[n].shape == (len(sels[n]),) and got_c[n].tobytes() == want_c[n].tobytes()
