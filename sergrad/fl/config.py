"""The resolved configuration of one FL run. YAML keys equal these field names.

A run's id is the content hash of this whole config (`run_id(config)`), so the same
config is never run twice and shadow runs shared by many evaluations run once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sergrad.config import content_hash, stable_hash


@dataclass(frozen=True)
class DataConfig:
    features: tuple[str, ...] = ()  # feature parquet files (utt_id, x); several = concatenated
    utterances: tuple[str, ...] = ()  # utterance tables matching those features
    fold: int = 0  # test fold index, speaker-independent
    n_folds: int = 5
    clients_per_speaker: int = 0  # 0 = per-corpus default (METHOD.md: crema-d 1, others 10)
    val_fraction: float = 0.2
    normalise: Literal["speaker", "client"] = "speaker"


@dataclass(frozen=True)
class ModelConfig:
    hidden: tuple[int, ...] = (256, 128)
    dropout1: float = 0.2
    dropout2: float = 0.2


@dataclass(frozen=True)
class AlgoConfig:
    name: Literal["fedsgd", "fedavg"] = "fedavg"
    rounds: int = 200
    client_fraction: float = 0.1
    server_lr: float = 1.0  # fedavg: 1.0 = plain averaging of parameters; fedsgd: paper 0.1
    local_epochs: int = 1
    batch_size: int = 20
    fedsgd_full_batch: bool = False  # fedsgd: gradient of all local data instead of one batch
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    weight_decay: float = 1e-4
    momentum: float = 0.0
    share: Literal["auto", "gradient", "delta", "pseudo_gradient"] = "auto"


@dataclass(frozen=True)
class EvalConfig:
    every: int = 1  # evaluate validation UAR every k rounds
    select_after: int = 100  # model selection considers rounds > this (clipped to rounds)


@dataclass(frozen=True)
class HarvestConfig:
    enabled: bool = True
    params: tuple[str, ...] = ("all",)  # parameter names or globs ("fc1.*")
    rounds: Any = "all"  # "all" | {"every": k} | [r1, r2, ...]
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    rows_per_group: int = 256  # rows buffered before a row group is flushed
    sketch: bool = False  # store row/column statistics of 2-D updates, not the tensors


@dataclass(frozen=True)
class DefenseConfig:
    name: str = "none"
    params: dict = field(default_factory=dict)

    def __hash__(self) -> int:  # dict field: hash by content
        return hash(content_hash(self))


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    algo: AlgoConfig = AlgoConfig()
    eval: EvalConfig = EvalConfig()
    harvest: HarvestConfig = HarvestConfig()
    defenses: tuple[DefenseConfig, ...] = ()
    engine: Literal["reference", "fast"] = "fast"
    device: str = "cpu"
    seed: int = 0


# fields added after stores existed: left out of the run id at their defaults
ADDED_FIELDS: dict[tuple[str, ...], Any] = {("harvest", "sketch"): False}


def run_id(config: RunConfig) -> str:
    return stable_hash(config, ADDED_FIELDS)
