"""What flows from a client to the server, and the defense hooks that act on it.

One frozen value type, `ClientUpdate`, keyed by the model's parameter names, flows
client -> client-side defenses (in list order) -> harvest -> aggregate -> server-side
defenses (in reverse order). It holds only what the server sees. The client's ground truth
(gender and any other speaker attribute) is a separate `ClientContext` that travels beside
it to the harvest writer (the key columns of the harvest) and never reaches a defense
(pfl-research's Statistics vs UserContext split). `Defense` is the hook base: every method
defaults to identity, so a defense overrides only what it changes (one level of inheritance).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ClientUpdate:
    """The update one client shares in one round (what the server sees)."""

    round: int
    client_id: int
    speaker_id: str  # the client's pseudonymous identity (the server knows who sent what)
    n_samples: int  # local training samples, the aggregation weight
    kind: str  # gradient | delta | pseudo_gradient
    tensors: Mapping[str, torch.Tensor]  # parameter name -> tensor shaped like the parameter

    def replace(self, **changes) -> ClientUpdate:
        return dataclasses.replace(self, **changes)

    def with_tensors(self, tensors: Mapping[str, torch.Tensor]) -> ClientUpdate:
        return dataclasses.replace(self, tensors=dict(tensors))


@dataclass(frozen=True)
class ClientContext:
    """Ground truth about a client that the simulation knows and the server does not.

    It reaches the harvest beside the update (labels for shadow clients, scoring for
    targets); no defense and no attack model ever receives it.
    """

    client_id: int
    speaker_id: str
    gender: str
    attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)  # age, ...


@dataclass(frozen=True)
class LocalTraining:
    """What a client-side training defense asks both engines to do in each local step.

    per_example_clip: DP-SGD clipping norm C (None = no per-example clipping).
    noise_multiplier: DP-SGD noise std / C added to the summed clipped gradients.
    poisson: Poisson sampling of local batches (Opacus style) instead of fixed batches.
    batch_clip: clip each step's whole mini-batch gradient to this norm (the paper's UDP).
    """

    per_example_clip: float | None = None
    noise_multiplier: float = 0.0
    poisson: bool = False
    batch_clip: float | None = None


@dataclass(frozen=True)
class PrivacySpent:
    epsilon: float
    delta: float
    accountant: str
    protects: str  # utterances | speakers


class Defense:
    """Identity hooks. Subclass and override what the defense changes."""

    name: str = "none"
    level: float | None = None  # the swept level (noise, epsilon, std) for tables and plots

    def local_training(self) -> LocalTraining | None:
        """Client-side training hook (DP-SGD, batch clipping); None = plain training."""
        return None

    def on_client_trained(self, client_id: int, *, sample_rate: float, steps: int) -> None:
        """Called after each client's local training (accounting keeps state per client)."""

    def client_update(self, update: ClientUpdate, *, generator: torch.Generator) -> ClientUpdate:
        """Transform the update a client shares (clip / noise / perturb) before the server sees it."""
        return update

    def server_update(
        self, aggregate: dict[str, torch.Tensor], *, n_clients: int, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """Transform the aggregated (weighted-mean) update on the server (central DP noise)."""
        return aggregate

    def on_round_end(self, round: int, *, n_clients_total: int, n_sampled: int) -> None:
        """Called once per round after aggregation (round-level accounting)."""

    def privacy_spent(self) -> PrivacySpent | None:
        """Epsilon spent so far, or None where the defense claims no guarantee."""
        return None
