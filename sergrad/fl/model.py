"""The SER model: Linear(D,h1)-ReLU-Dropout(p1)-Linear(h1,h2)-ReLU-Dropout(p2)-Linear(h2,4).

Parameter names PARAM_NAMES are the harvest keys everywhere. Initialisation is PyTorch's
nn.Linear default (kaiming_uniform(a=sqrt(5)) weights, U(-1/sqrt(fan_in), +) biases) drawn
from an explicit generator. Dropout draws its masks from an explicit generator too
(`dropout_mask`), in the order layer 1 then layer 2 per forward pass, so both engines use
identical masks; dropout is off in eval (`predict`).

Shapes: B batch, D input dim, H1/H2 hidden sizes, K = 4 classes.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sergrad.fl.config import ModelConfig

PARAM_NAMES: tuple[str, ...] = (
    "fc1.weight",
    "fc1.bias",
    "fc2.weight",
    "fc2.bias",
    "fc3.weight",
    "fc3.bias",
)
N_CLASSES = 4


def layer_sizes(dim: int, model: ModelConfig) -> list[int]:
    if len(model.hidden) != 2:
        raise ValueError(f"model.hidden must have two sizes, got {model.hidden}")
    return [dim, *model.hidden, N_CLASSES]


def param_shapes(dim: int, model: ModelConfig) -> dict[str, tuple[int, ...]]:
    sizes = layer_sizes(dim, model)
    out: dict[str, tuple[int, ...]] = {}
    for i in range(3):
        out[f"fc{i + 1}.weight"] = (sizes[i + 1], sizes[i])
        out[f"fc{i + 1}.bias"] = (sizes[i + 1],)
    return out


def init_params(
    dim: int, model: ModelConfig, *, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """nn.Linear's default init, drawn from `generator` (CPU float32)."""
    params = {}
    for name, shape in param_shapes(dim, model).items():
        t = torch.empty(shape)
        if name.endswith("weight"):
            nn.init.kaiming_uniform_(t, a=math.sqrt(5), generator=generator)
        else:
            bound = 1.0 / math.sqrt(params[name.replace("bias", "weight")].shape[1])
            nn.init.uniform_(t, -bound, bound, generator=generator)
        params[name] = t
    return params


def dropout_mask(
    shape: tuple[int, ...], p: float, *, generator: torch.Generator
) -> torch.Tensor | None:
    """Inverted-dropout mask (0 or 1/(1-p)), None when p == 0. Drawn on CPU."""
    if p <= 0:
        return None
    return (torch.rand(shape, generator=generator) >= p).float() / (1.0 - p)


class GeneratorDropout(nn.Module):
    """Dropout whose masks come from `self.generator` (set per client); identity in eval."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p <= 0:
            return x
        mask = dropout_mask(tuple(x.shape), self.p, generator=self.generator)
        return x * mask.to(x.device)


class SERModel(nn.Module):
    """The reference nn.Module; its state_dict keys are PARAM_NAMES."""

    def __init__(self, dim: int, model: ModelConfig) -> None:
        super().__init__()
        _, h1, h2, k = layer_sizes(dim, model)
        self.fc1 = nn.Linear(dim, h1)
        self.fc2 = nn.Linear(h1, h2)
        self.fc3 = nn.Linear(h2, k)
        self.drop1 = GeneratorDropout(model.dropout1)
        self.drop2 = GeneratorDropout(model.dropout2)

    def set_generator(self, generator: torch.Generator) -> None:
        self.drop1.generator = generator
        self.drop2.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, D] -> [B, K]
        h = self.drop1(torch.relu(self.fc1(x)))
        h = self.drop2(torch.relu(self.fc2(h)))
        return self.fc3(h)


@torch.no_grad()
def predict(params: dict[str, torch.Tensor], x: torch.Tensor, *, chunk: int = 8192) -> torch.Tensor:
    """Class predictions [N] of the model with `params` on x [N, D], dropout off."""
    out = []
    for xb in x.split(chunk):
        h = torch.relu(torch.addmm(params["fc1.bias"], xb, params["fc1.weight"].T))
        h = torch.relu(torch.addmm(params["fc2.bias"], h, params["fc2.weight"].T))
        out.append(torch.addmm(params["fc3.bias"], h, params["fc3.weight"].T).argmax(dim=1))
    if not out:
        return torch.empty(0, dtype=torch.long, device=x.device)
    return torch.cat(out)
