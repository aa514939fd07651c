"""Secure aggregation: who is in each round's cohort, and what the server then sees.

Under secure aggregation (Bonawitz et al. 2017) the server learns only each round's
aggregate of the sampled clients, plus the round and the cohort size. sergrad simulates the
outcome, not the cryptography: every sampled client trains as usual and the server's view is

    A_r = sum_k n_k s_k / N_r,  N_r = sum_k n_k   (k in the cohort of round r)

i.e. the sample-weighted mean in server space (`server.aggregate`: FedSGD gradients; FedAvg
model deltas, pseudo-gradients converted with -lr x local steps) together with N_r (each
client masks n_k s_k and n_k). The harvest stores A_r as ONE `updates` row per round
(`AGGREGATE_CLIENT` as client id, `AGGREGATE_SPEAKER` as speaker id, n_samples = N_r, kind
"gradient" or "delta"); individual updates are never written. Who was in the cohort (client
ids, hence its composition) goes to the `cohorts` side table (schema.COHORTS), which only
shadow labelling and scoring read.

Sampling (`SecAggSpec.sampling`):
- `uniform`: k clients without replacement, the same draw as `schedule.sample_clients`
  (with k = clients_per_round(n, fraction) the cohorts equal an ordinary run's);
- `adversarial_differencing`: a server that controls sampling isolates one client per pair
  of rounds: round 2p-1 = S_p + {i_p}, round 2p = S_p (|S_p| = k - 1), targets i_p cycling
  through a seeded permutation of the clients. N_a A_a - N_b A_b = n_i s_i exactly when
  every client of S_p shares the same update in both rounds; in this simulation the model
  takes one server step between the two rounds and batches / dropout are redrawn per round,
  so the difference is approximate (exact only with a fixed model, e.g. FedSGD with
  server_lr 0, full-batch gradients and no dropout). With k = 1 each round holds one client
  and its aggregate is that client's update.

>>> spec = SecAggSpec(cohort=3, sampling="adversarial_differencing")
>>> [cohort_ids(spec, n_clients=6, k=3, seed=0, round=r)[1] for r in (1, 2)]
[3, -1]
>>> a, _ = cohort_ids(spec, n_clients=6, k=3, seed=0, round=1)
>>> b, _ = cohort_ids(spec, n_clients=6, k=3, seed=0, round=2)
>>> sorted(set(a.tolist()) - set(b.tolist())), len(b)
([3], 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from sergrad.errors import ConfigError
from sergrad.fl.schedule import clients_per_round, generator

NAME = "secure_aggregation"
SAMPLINGS: tuple[str, ...] = ("uniform", "adversarial_differencing")
AGGREGATE_CLIENT = -1  # client_id of an aggregate row in `updates`
AGGREGATE_SPEAKER = "aggregate"  # speaker_id of an aggregate row in `updates`
# What each attack under secure aggregation assumes (the attacks table's threat_model):
THREAT_INDIVIDUAL = "individual_updates"  # server sees every client's update (METHOD.md 4)
THREAT_AGGREGATE = "secagg_aggregate"  # honest sampling: server sees A_r, N_r, k, round
THREAT_CONTROLLED = "secagg_controlled_sampling"  # malicious server chooses the cohorts


@dataclass(frozen=True)
class SecAggSpec:
    """cohort: clients per round (0 = from algo.client_fraction); min_cohort: the smallest
    cohort the clients accept (0 = none); sampling: uniform | adversarial_differencing."""

    cohort: int = 0
    min_cohort: int = 0
    sampling: str = "uniform"

    def __post_init__(self) -> None:
        for key in ("cohort", "min_cohort"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"defense {NAME!r}: {key} must be an integer >= 0, got {v!r}")
        if self.sampling not in SAMPLINGS:
            raise ConfigError(
                f"defense {NAME!r}: sampling must be one of {', '.join(SAMPLINGS)}, "
                f"got {self.sampling!r}"
            )

    @classmethod
    def from_params(cls, params: dict) -> SecAggSpec:
        valid = ("cohort", "min_cohort", "sampling")
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ConfigError(
                f"defense {NAME!r}: unknown param {unknown[0]!r}; valid params: {', '.join(valid)}"
            )
        return cls(**params)

    def clients_per_round(self, n_clients: int, fraction: float) -> int:
        """k: `cohort` if set, else schedule.clients_per_round; refused (ConfigError naming
        min_cohort) when a cohort the server forms would be smaller than min_cohort."""
        k = self.cohort or clients_per_round(n_clients, fraction)
        if self.cohort > n_clients:
            raise ConfigError(
                f"defense {NAME!r}: cohort {self.cohort} exceeds the {n_clients} clients"
            )
        self.check_min_cohort(k)
        return k

    def check_min_cohort(self, k: int) -> None:
        smallest = k - 1 if self.sampling == "adversarial_differencing" and k > 1 else k
        if smallest < self.min_cohort:
            how = f"{k} clients per round"
            if smallest != k:
                how += f" (adversarial_differencing also aggregates cohorts of {smallest})"
            raise ConfigError(
                f"defense {NAME!r}: min_cohort {self.min_cohort} refuses {how}; "
                f"raise the cohort / client_fraction or lower min_cohort"
            )


def cohort_ids(
    spec: SecAggSpec, *, n_clients: int, k: int, seed: int, round: int
) -> tuple[torch.Tensor, int]:
    """(sorted client ids [m] int64, isolated client or -1) of a 1-based round."""
    if spec.sampling == "uniform":
        perm = torch.randperm(n_clients, generator=generator(seed, "clients", round))
        return perm[:k].sort().values, -1
    order = torch.randperm(n_clients, generator=generator(seed, "secagg", "targets"))
    if k == 1:
        target = int(order[(round - 1) % n_clients])
        return torch.tensor([target]), target
    pair = (round - 1) // 2
    target = int(order[pair % n_clients])
    others = torch.tensor([c for c in range(n_clients) if c != target])
    perm = torch.randperm(len(others), generator=generator(seed, "secagg", "rest", pair))
    rest = others[perm[: k - 1]]
    if round % 2 == 1:  # first round of the pair: S + {i}
        return torch.cat([rest, torch.tensor([target])]).sort().values, target
    return rest.sort().values, -1


def differencing_pairs(cohorts: Sequence[dict]) -> list[tuple[int, int | None, int]]:
    """(round with client i, round without it or None, client i) from `cohorts` rows
    (schema.COHORTS: round, isolated, client_ids): the server's own schedule."""
    by_round = {int(c["round"]): c for c in cohorts}
    out = []
    for r, c in sorted(by_round.items()):
        i = int(c["isolated"])
        if i < 0:
            continue
        if len(c["client_ids"]) == 1:
            out.append((r, None, i))
            continue
        nxt = by_round.get(r + 1)
        if nxt is not None and set(c["client_ids"]) - set(nxt["client_ids"]) == {i}:
            out.append((r, r + 1, i))
    return out


def cohort_row(round: int, ids: Sequence[int], *, isolated: int, n_samples: int) -> dict:
    """One schema.COHORTS row."""
    return {"round": int(round), "cohort_size": len(ids), "isolated": int(isolated),
            "n_samples": int(n_samples), "client_ids": [int(i) for i in ids]}  # fmt: skip


def aggregate_update(mean: dict[str, torch.Tensor], updates: Sequence, *, round: int, algo):
    """The server's view of a round under secure aggregation, as one harvestable update:
    A_r (`server.aggregate`'s weighted mean, server space) with n_samples = N_r."""
    from sergrad.fl.update import ClientUpdate

    return ClientUpdate(
        round=round, client_id=AGGREGATE_CLIENT, speaker_id=AGGREGATE_SPEAKER,
        n_samples=sum(int(u.n_samples) for u in updates),
        kind="gradient" if algo.name == "fedsgd" else "delta", tensors=mean,
    )  # fmt: skip


def secagg_of(defenses: Sequence):
    """The run's secure_aggregation defense, or None."""
    found = [d for d in defenses if isinstance(getattr(d, "spec", None), SecAggSpec)]
    return found[0] if found else None
