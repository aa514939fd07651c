"""What a defense may need to know about the run before it starts (the training plan).

Only three things use it: a `target_epsilon` (dp_sgd, user_dp) is turned into a noise
multiplier for the *planned* run, and `udp_paper` needs the local learning rate to put its
model-space noise on the `pseudo_gradient` scale. The engine builds one with
`TrainingPlan.for_run` and passes it to `create_defenses(..., plan=plan)`.

>>> plan = TrainingPlan.for_run(algorithm="fedavg", n_clients=100, rounds=200,
...     client_fraction=0.1, batch_size=20, local_epochs=1, mean_train_samples=30, local_lr=5e-4)
>>> plan.clients_per_round, plan.local_steps, round(plan.sample_rate, 4)
(10, 2, 0.6667)
>>> plan.expected_participations
20.0
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainingPlan:
    n_clients: int  # clients in the federation
    rounds: int  # T
    clients_per_round: int  # sampled each round (without replacement)
    local_steps: int  # local optimiser steps of one client in one round (expected)
    sample_rate: float  # local batch sampling rate batch / local train size (expected)
    local_lr: float | None = None  # client learning rate (pseudo_gradient scale)

    @property
    def client_rate(self) -> float:
        """q: the probability that a given client is sampled in a round."""
        return self.clients_per_round / self.n_clients

    @property
    def expected_participations(self) -> float:
        """Rounds a client takes part in, in expectation: T * q."""
        return self.rounds * self.client_rate

    @property
    def expected_client_steps(self) -> int:
        """A client's expected total local steps over the run (DP-SGD planning), at least 1."""
        return max(1, round(self.expected_participations * self.local_steps))

    @classmethod
    def for_run(
        cls,
        *,
        algorithm: str,
        n_clients: int,
        rounds: int,
        client_fraction: float,
        batch_size: int,
        local_epochs: int,
        mean_train_samples: float,
        local_lr: float | None = None,
        full_batch: bool = False,
    ) -> TrainingPlan:
        """Plan from the FL config, with `sergrad.fl.schedule`'s own formulas (clients per
        round, local steps, sampling rate) at the mean local training size."""
        from sergrad.fl.config import AlgoConfig
        from sergrad.fl.schedule import clients_per_round, local_steps, sample_rate

        algo = AlgoConfig(
            name=algorithm,  # type: ignore[arg-type]
            rounds=rounds,
            client_fraction=client_fraction,
            batch_size=batch_size,
            local_epochs=local_epochs,
            fedsgd_full_batch=full_batch,
        )
        n = max(1.0, float(mean_train_samples))
        return cls(
            n_clients=n_clients,
            rounds=rounds,
            clients_per_round=clients_per_round(n_clients, client_fraction),
            local_steps=local_steps(n, algo),
            sample_rate=sample_rate(n, algo),
            local_lr=local_lr,
        )
