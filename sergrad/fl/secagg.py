"""Secure aggregation: who is in each round's cohort, and what the server then sees.

Under secure aggregation (Bonawitz et al. 2017) the server learns only each round's
aggregate of the sampled clients, plus the round and the cohort size. sergrad simulates the
outcome, not the cryptography: every sampled client trains as usual and the server's view is

    A_r = sum_k n_k s_k / N_r,  N_r = sum_k n_k   (k in the cohort of round r)

i.e. the sample-weighted mean in server space (`server.aggregate`: FedSGD gradients; FedAvg
model deltas, pseudo-gradients converted with -lr x local steps) together with N_r (each
client masks n_k s_k and n_k). The harvest stores A_r as ONE `updates` row per round
(`AGGREGATE_CLIENT` as client id, `AGGREGATE_SPEAKER` as speaker id, n_samples = N_r, kind
"gradient" or "delta"); individual updates are never written. With `adversarial_same_round`
the server also obtains a second aggregate of the round (client id `SECOND_SESSION_CLIENT`). Who was in the cohort (client
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
- `adversarial_same_round`: every round's cohort is S_r + {i_r} and the server runs a second
  secure-aggregation session over S_r in the same round (e.g. by declaring i_r dropped), on
  the updates the clients computed once for that round: the difference is client i_r's
  update exactly (float rounding aside), whatever the algorithm. One client per round.

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
from typing import TYPE_CHECKING

from sergrad.errors import ConfigError

if TYPE_CHECKING:
    import torch

NAME = "secure_aggregation"
SAMPLINGS: tuple[str, ...] = ("uniform", "adversarial_differencing", "adversarial_same_round")
ADVERSARIAL: tuple[str, ...] = SAMPLINGS[1:]
AGGREGATE_CLIENT = -1  # client_id of an aggregate row in `updates`
SECOND_SESSION_CLIENT = -2  # client_id of adversarial_same_round's second aggregate (S only)
AGGREGATE_SPEAKER = "aggregate"  # speaker_id of an aggregate row in `updates`
# What each attack under secure aggregation assumes (the attacks table's threat_model):
THREAT_INDIVIDUAL = "individual_updates"  # server sees every client's update (METHOD.md 4)
THREAT_AGGREGATE = "secagg_aggregate"  # honest sampling: server sees A_r, N_r, k, round
THREAT_CONTROLLED = "secagg_controlled_sampling"  # malicious server chooses the cohorts


@dataclass(frozen=True)
class SecAggSpec:
    """cohort: clients per round (0 = from algo.client_fraction); min_cohort: the smallest
    cohort the clients accept (0 = none); sampling: one of SAMPLINGS."""

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

    @property
    def sessions_per_round(self) -> int:
        """Aggregates the server obtains per round (`server_views`): two under
        adversarial_same_round (the cohort with and without its isolated client), else one."""
        return 2 if self.sampling == "adversarial_same_round" else 1

    def clients_per_round(self, n_clients: int, fraction: float) -> int:
        """k: `cohort` if set, else schedule.clients_per_round; refused (ConfigError naming
        min_cohort) when a cohort the server forms would be smaller than min_cohort."""
        from sergrad.fl.schedule import clients_per_round

        k = self.cohort or clients_per_round(n_clients, fraction)
        if self.cohort > n_clients:
            raise ConfigError(
                f"defense {NAME!r}: cohort {self.cohort} exceeds the {n_clients} clients"
            )
        self.check_min_cohort(k)
        return k

    def check_min_cohort(self, k: int) -> None:
        smallest = k - 1 if self.sampling in ADVERSARIAL and k > 1 else k
        if smallest < self.min_cohort:
            how = f"{k} clients per round"
            if smallest != k:
                how += f" ({self.sampling} also aggregates cohorts of {smallest})"
            raise ConfigError(
                f"defense {NAME!r}: min_cohort {self.min_cohort} refuses {how}; "
                f"raise the cohort / client_fraction or lower min_cohort"
            )


def cohort_ids(
    spec: SecAggSpec, *, n_clients: int, k: int, seed: int, round: int
) -> tuple[torch.Tensor, int]:
    """(sorted client ids [m] int64, isolated client or -1) of a 1-based round."""
    import torch

    from sergrad.fl.schedule import generator

    if spec.sampling == "uniform":
        perm = torch.randperm(n_clients, generator=generator(seed, "clients", round))
        return perm[:k].sort().values, -1
    order = torch.randperm(n_clients, generator=generator(seed, "secagg", "targets"))
    if k == 1:
        target = int(order[(round - 1) % n_clients])
        return torch.tensor([target]), target
    same = spec.sampling == "adversarial_same_round"
    pair = round - 1 if same else (round - 1) // 2
    target = int(order[pair % n_clients])
    others = torch.tensor([c for c in range(n_clients) if c != target])
    perm = torch.randperm(len(others), generator=generator(seed, "secagg", "rest", pair))
    rest = others[perm[: k - 1]]
    if same or round % 2 == 1:  # the round (or first of the pair) aggregating S + {i}
        return torch.cat([rest, torch.tensor([target])]).sort().values, target
    return rest.sort().values, -1


def differencing_pairs(cohorts: Sequence[dict]) -> list[tuple[int, int | None, int]]:
    """(row with client i, row without it or None, client i) as indices into `cohorts`
    (schema.COHORTS rows, in harvest order): the server's own schedule. A cohort of one
    client is its own pair (None)."""
    at = {(int(c["round"]), int(c.get("session") or 0)): j for j, c in enumerate(cohorts)}
    out = []
    for j, c in enumerate(cohorts):
        i = int(c["isolated"])
        if i < 0 or int(c.get("session") or 0) != 0:
            continue
        if len(c["client_ids"]) == 1:
            out.append((j, None, i))
            continue
        r = int(c["round"])
        for key in ((r, 1), (r + 1, 0)):  # the same round's second session, else next round
            b = at.get(key)
            if b is not None and set(c["client_ids"]) - set(cohorts[b]["client_ids"]) == {i}:
                out.append((j, b, i))
                break
    return out


def server_views(spec: SecAggSpec, mean, updates: Sequence, *, round: int, isolated: int, algo):
    """What the server obtains in a round: [(harvestable aggregate, schema.COHORTS row)], the
    cohort's aggregate `mean` first; with adversarial_same_round also the aggregate of the
    cohort without the isolated client (computed from the same updates)."""
    from sergrad.fl.server import aggregate

    ids = sorted(int(u.client_id) for u in updates)
    first = aggregate_update(mean, updates, round=round, algo=algo)
    out = [(first, cohort_row(round, ids, isolated=isolated, n_samples=first.n_samples))]
    if spec.sessions_per_round == 2 and len(updates) > 1:
        rest = [u for u in updates if int(u.client_id) != isolated]
        second = aggregate_update(aggregate(rest, algo=algo), rest, round=round, algo=algo)
        second = second.replace(client_id=SECOND_SESSION_CLIENT)
        row = cohort_row(round, [i for i in ids if i != isolated], isolated=-1,
                         n_samples=second.n_samples, session=1)  # fmt: skip
        out.append((second, row))
    return out


def cohort_row(
    round: int, ids: Sequence[int], *, isolated: int, n_samples: int, session: int = 0
) -> dict:
    """One schema.COHORTS row."""
    return {"round": int(round), "session": int(session), "cohort_size": len(ids),
            "isolated": int(isolated), "n_samples": int(n_samples),
            "client_ids": [int(i) for i in ids]}  # fmt: skip


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
