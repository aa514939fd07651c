"""Attack models: a registry of (fixed input transform, trainable torch module) pairs.

Every attack sees one layer group's normalised update as a dict {param: float32 [B, numel]}.
`transform` is fixed (not learned) and maps it to a feature row [B, F] that is stored once;
`module` maps features [B, F] to the head of the attacked attribute (`sergrad.attack.target`):
logits [B, C] over its classes (gender: [B, 2], F=0, M=1) or one regression output [B, 1]
for a numeric attribute; only the last layer depends on it. Registered models:

- `cnn`: the paper's architecture (Feng et al. 2021, METHOD.md section 4; pooling per layer as
  in their public code): the weight update as a 1-channel image [out, in]; three 5x5 conv
  blocks (16/32/64 channels, padding 2, ReLU, max-pool, Dropout2d 0.2; batch-norm in the
  third); flatten, concatenate the bias update; MLP 256-128-2 with dropout 0.2. Pools:
  first layer 2, 4, 8 (6 for 512-d inputs); 128x256 (layer 2) 2, 4, 4; out < 8 rows (layer 3,
  4x128): none, then kernel 2 stride (1, 4) twice. Other shapes use 2, 4, 8 with each kernel
  and stride clamped to the feature map, so any [out, in] gives a non-empty map.
  Flattened conv sizes: 988 -> 3840, 768 -> 3072, 512 -> 3200, 128x256 -> 2048, 4x128 -> 1024.
- `logreg_stats`: logistic regression (batch-norm + linear) on row and column statistics of
  each weight update (mean, std, L2 norm per row and per column) plus the bias update.
- `mlp_proj`: a small MLP (dim-64-2) on a seeded count-sketch random projection of the whole
  flattened update (a sparse JL projection: each element adds +-x to one of `dim` buckets).
- `logreg_colcorr`: logistic regression on how the update's input columns move together: for
  each weight update G [out, in], the cosine similarity between columns G[:, i] and G[:, j]
  for `columns` evenly spaced inputs (default 96), plus each column's log share of the column
  norms. A first-layer update is sum_i delta_i x_i^T, so these cosines are a weighted
  correlation of the client's input features across its utterances (after per-speaker
  normalisation, how the speaker's features co-move with emotion, which differs by gender).
  They are unchanged by any rotation or permutation of the hidden units, so they transfer
  across runs, seeds and rounds, while the raw elements drift. Bias updates are not used.

Fast attacks default to batch 64 and lr 1e-2 (logreg_stats) / 1e-3 (mlp_proj) (`train`
overrides); set model.params lr / batch_size to change them. The cnn trains with AttackModelConfig's lr and batch size.
Every model also takes model.params `max_seconds` (a training time budget) and `amp` (mixed
precision on CUDA; default on for the cnn); see `sergrad.attack.train`.

>>> import torch
>>> m = create("cnn", shapes={"fc1.weight": (256, 988), "fc1.bias": (256,)}, params={},
...            generator=torch.Generator().manual_seed(0))
>>> m.n_features, m.module.flat_conv
(253184, 3840)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from sergrad.attack.target import GENDER, Target
from sergrad.errors import ConfigError
from sergrad.registry import Registry

Shapes = dict[str, tuple[int, ...]]


@dataclass
class AttackModel:
    name: str
    transform: Callable[[dict[str, np.ndarray]], np.ndarray]  # {p: [B, numel]} -> [B, F]
    module: nn.Module  # [B, F] -> logits [B, C] (regression [B, 1])
    n_features: int
    storage_dtype: str = "float32"  # dtype of the stored feature rows
    train: dict = field(default_factory=dict)  # overrides of lr / batch_size
    target: Target = GENDER  # the attacked attribute: head size, loss, outputs


ATTACK_MODELS: Registry[Callable[..., AttackModel]] = Registry("attack model")


def create(
    name: str,
    *,
    shapes: Shapes,
    params: dict,
    generator: torch.Generator,
    target: Target = GENDER,
) -> AttackModel:
    """Build attack model `name` for a layer group with parameter `shapes` (ordered dict)
    and a head for `target` (default: gender, 2 classes)."""
    try:
        builder = ATTACK_MODELS.get(name)
    except KeyError as exc:
        raise ConfigError(f"model.name: {exc.args[0]}") from None
    model = builder(shapes=dict(shapes), params=dict(params), n_out=target.n_outputs)
    model.target = target
    reset_parameters(model.module, generator=generator)
    return model


def reset_parameters(module: nn.Module, *, generator: torch.Generator) -> None:
    """PyTorch's default init for Linear/Conv2d, drawn from `generator` (no global RNG)."""
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                fan_in = m.weight[0].numel()
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)


def _split_weight_bias(shapes: Shapes) -> tuple[str, str | None]:
    weights = [p for p, s in shapes.items() if len(s) == 2]
    biases = [p for p, s in shapes.items() if len(s) == 1]
    if len(weights) != 1 or len(biases) > 1 or len(shapes) != len(weights) + len(biases):
        raise ConfigError(
            f"cnn needs one 2-D weight and at most one bias per layer group, got {shapes}"
        )
    return weights[0], (biases[0] if biases else None)


def _concat(arrays: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    return np.concatenate([arrays[n] for n in names], axis=1)  # [B, sum numel]


# --- cnn ------------------------------------------------------------------------------------
Pool = tuple[tuple[int, int], tuple[int, int]] | None  # (kernel, stride) per block, None = none


def paper_pools(out_dim: int, in_dim: int) -> list[Pool]:
    """The three max-pools of the paper's attack CNN for a weight of shape [out, in]."""
    if out_dim < 8:  # last layer (4 x 128)
        return [None, ((2, 2), (1, 4)), ((2, 2), (1, 4))]
    if (out_dim, in_dim) == (128, 256):  # second layer
        return [((2, 2), (2, 2)), ((4, 4), (4, 4)), ((4, 4), (4, 4))]
    last = 6 if in_dim == 512 else 8  # first layer: 6 for 512-d inputs
    return [((k, k), (k, k)) for k in (2, 4, last)]


def _clamp(pool: Pool, h: int, w: int) -> Pool:
    if pool is None:
        return None
    (kh, kw), (sh, sw) = pool
    return (min(kh, h), min(kw, w)), (max(1, min(sh, h)), max(1, min(sw, w)))


def _pooled(n: int, k: int, s: int) -> int:
    return (n - k) // s + 1


class PaperCNN(nn.Module):
    def __init__(
        self, out_dim: int, in_dim: int, bias_dim: int, *, dropout: float = 0.2, n_out: int = 2
    ):
        super().__init__()
        self.out_dim, self.in_dim, self.bias_dim = out_dim, in_dim, bias_dim
        layers: list[nn.Module] = []
        h, w, c_in = out_dim, in_dim, 1
        for i, (c_out, pool) in enumerate(zip((16, 32, 64), paper_pools(out_dim, in_dim))):
            layers.append(nn.Conv2d(c_in, c_out, kernel_size=5, padding=2))  # same size
            if i == 2:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.ReLU())
            pool = _clamp(pool, h, w)
            if pool is not None:
                (kh, kw), (sh, sw) = pool
                layers.append(nn.MaxPool2d(kernel_size=(kh, kw), stride=(sh, sw)))
                h, w = _pooled(h, kh, sh), _pooled(w, kw, sw)
            layers.append(nn.Dropout2d(dropout))
            c_in = c_out
        self.conv = nn.Sequential(*layers)
        self.flat_conv = 64 * h * w
        self.mlp = nn.Sequential(
            nn.Linear(self.flat_conv + bias_dim, 256),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(256, 128),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(128, n_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]  # x: [B, out*in + bias]
        n_w = self.out_dim * self.in_dim
        img = x[:, :n_w].reshape(b, 1, self.out_dim, self.in_dim)  # [B, 1, out, in]
        z = self.conv(img).reshape(b, self.flat_conv)  # [B, 64*h*w]
        z = torch.cat([z, x[:, n_w:]], dim=1)  # [B, flat + bias]
        return self.mlp(z)  # [B, n_out]


@ATTACK_MODELS.register("cnn")
def _cnn(*, shapes: Shapes, params: dict, n_out: int = 2) -> AttackModel:
    w_name, b_name = _split_weight_bias(shapes)
    out_dim, in_dim = shapes[w_name]
    bias_dim = shapes[b_name][0] if b_name else 0
    names = [w_name] + ([b_name] if b_name else [])
    module = PaperCNN(out_dim, in_dim, bias_dim, dropout=float(params.get("dropout", 0.2)),
                      n_out=n_out)  # fmt: skip
    return AttackModel(
        name="cnn",
        transform=lambda arrays: _concat(arrays, names),
        module=module,
        n_features=out_dim * in_dim + bias_dim,
        storage_dtype=str(params.get("storage_dtype", "float16")),
        train=_train_keys(params),
    )


# --- fast attacks ---------------------------------------------------------------------------
def _logistic(n: int, n_out: int = 2) -> nn.Module:
    """Logistic regression on standardised features: batch-norm (no affine) + linear
    (multinomial over n_out classes; one output: linear regression)."""
    return nn.Sequential(nn.BatchNorm1d(n, affine=False), nn.Linear(n, n_out))


def row_col_stats(arrays: dict[str, np.ndarray], shapes: Shapes) -> np.ndarray:
    """Per 2-D param: row mean/std/norm and column mean/std/norm; 1-D params as they are."""
    feats = []
    for p, shape in shapes.items():
        x = np.asarray(arrays[p], np.float32)
        if len(shape) == 2:
            w = x.reshape(-1, *shape)  # [B, out, in]
            for axis in (2, 1):  # rows (over in), then columns (over out)
                feats += [w.mean(axis), w.std(axis), np.sqrt(np.square(w).sum(axis))]
        else:
            feats.append(x)
    return np.concatenate(feats, axis=1).astype(np.float32)  # [B, F]


@ATTACK_MODELS.register("logreg_stats")
def _logreg_stats(*, shapes: Shapes, params: dict, n_out: int = 2) -> AttackModel:
    n = sum(3 * (s[0] + s[1]) if len(s) == 2 else math.prod(s) for s in shapes.values())
    module = _logistic(n, n_out)
    return AttackModel(
        name="logreg_stats",
        transform=lambda arrays: row_col_stats(arrays, shapes),
        module=module,
        n_features=n,
        train={"lr": 1e-2, "batch_size": 64, **_train_keys(params)},
    )


def count_sketch(numel: int, dim: int, *, seed: int) -> sp.csr_matrix:
    """Sparse [numel, dim] projection: element i adds sign_i * x_i to bucket h_i, scaled."""
    rng = np.random.default_rng(seed)
    buckets = rng.integers(0, dim, size=numel)
    signs = rng.choice(np.array([-1.0, 1.0], np.float32), size=numel)
    scale = math.sqrt(dim / numel)  # unit-variance buckets for unit-variance inputs
    return sp.csr_matrix((signs * scale, (np.arange(numel), buckets)), shape=(numel, dim))


@ATTACK_MODELS.register("mlp_proj")
def _mlp_proj(*, shapes: Shapes, params: dict, n_out: int = 2) -> AttackModel:
    dim = int(params.get("dim", 512))
    hidden = int(params.get("hidden", 64))
    names = list(shapes)
    numel = sum(math.prod(s) for s in shapes.values())
    sketch = count_sketch(numel, dim, seed=int(params.get("projection_seed", 0)))
    module = nn.Sequential(
        nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, n_out)
    )
    return AttackModel(
        name="mlp_proj",
        transform=lambda arrays: np.asarray(sketch.T @ _concat(arrays, names).T).T.astype(
            np.float32
        ),  # [B, dim]
        module=module,
        n_features=dim,
        train={"lr": 1e-3, "batch_size": 64, **_train_keys(params)},
    )


def column_correlations(arrays: dict[str, np.ndarray], shapes: Shapes, columns: dict) -> np.ndarray:
    """Per 2-D param: upper-triangle cosines between the chosen columns, then log norm shares."""
    feats = []
    for p, idx in columns.items():
        w = np.asarray(arrays[p], np.float32).reshape(-1, *shapes[p])[:, :, idx]  # [B, out, k]
        gram = np.einsum("boi,boj->bij", w, w)  # [B, k, k]
        norm = np.sqrt(np.maximum(np.einsum("bii->bi", gram), 0.0)) + 1e-12  # [B, k]
        cos = gram / norm[:, :, None] / norm[:, None, :]
        iu = np.triu_indices(len(idx), 1)
        share = norm / norm.sum(axis=1, keepdims=True)
        feats += [cos[:, iu[0], iu[1]], np.log(share)]
    return np.concatenate(feats, axis=1).astype(np.float32)  # [B, F]


def spaced_columns(in_dim: int, k: int) -> np.ndarray:
    """min(k, in_dim) evenly spaced column indices of a weight with `in_dim` inputs."""
    return np.unique(np.linspace(0, in_dim - 1, min(k, in_dim)).round().astype(np.int64))


@ATTACK_MODELS.register("logreg_colcorr")
def _logreg_colcorr(*, shapes: Shapes, params: dict, n_out: int = 2) -> AttackModel:
    k = int(params.get("columns", 96))
    if k < 2:
        raise ConfigError(f"logreg_colcorr: columns must be >= 2, got {k}")
    columns = {p: spaced_columns(s[1], k) for p, s in shapes.items() if len(s) == 2}
    if not columns:
        raise ConfigError(f"logreg_colcorr needs a 2-D weight in the layer group, got {shapes}")
    n = sum(len(i) * (len(i) - 1) // 2 + len(i) for i in columns.values())
    module = _logistic(n, n_out)
    return AttackModel(
        name="logreg_colcorr",
        transform=lambda arrays: column_correlations(arrays, shapes, columns),
        module=module,
        n_features=n,
        train={"lr": 1e-3, "batch_size": 64, **_train_keys(params)},
    )


TRAIN_KEYS = ("lr", "batch_size", "max_seconds", "amp")  # model.params read by training


def _train_keys(params: dict) -> dict:
    return {k: params[k] for k in TRAIN_KEYS if k in params}
