"""One federated SER run, end to end: `run_fl(config, store)`.

Reads like the method: load + partition the corpus, initialise the model, then each round
sample clients, train them locally, pass each update through the client-side defenses,
harvest what the server sees, aggregate, apply server-side defenses, step, evaluate; finally
select the model by local-validation UAR and score it on the test fold's speakers.

Validation UAR/accuracy are pooled over all clients' local validation rows (one confusion
over every validation utterance, so a client weighs by its number of validation rows).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sergrad.config import apply_overrides, canonical_json, from_dict, load_yaml
from sergrad.errors import ConfigError
from sergrad.fl.config import DataConfig, RunConfig, run_id
from sergrad.fl.data import Dataset, load_dataset
from sergrad.fl.engine import Engine, create_engine
from sergrad.fl.metrics import accuracy, uar
from sergrad.fl.model import PARAM_NAMES, init_params, param_shapes, predict
from sergrad.fl.partition import Partition, partition, unprefixed
from sergrad.fl.schedule import generator, sample_clients, share_kind
from sergrad.fl.secagg import cohort_ids, secagg_of, server_views
from sergrad.fl.server import aggregate, check_finite, server_step
from sergrad.fl.update import ClientContext, ClientUpdate, Defense, LocalTraining

Progress = Callable[[int, int, float | None], None]  # (round, rounds, val_uar)


def load_run_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """RunConfig from YAML plus `key.sub=value` overrides; unknown keys raise ConfigError."""
    from sergrad.fl.limits import check_limits

    config = from_dict(RunConfig, apply_overrides(load_yaml(path), list(overrides)))
    try:
        check_limits(config)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return config


def run_fl(
    config: RunConfig,
    store,
    *,
    extra: dict | None = None,
    dataset: Dataset | None = None,
    progress: Progress | None = None,
) -> dict:
    """Run (or skip, if already recorded with status ok) one FL run; return its runs row.

    `extra`: more runs-row fields (e.g. {"role": "shadow"}). `dataset`: an in-memory
    dataset instead of config.data's files (benchmarks, tests).
    """
    from sergrad.fl.records import read_run_row, write_rounds, write_run_row

    rid = run_id(config)
    done = read_run_row(store, rid)
    if done is not None and done.get("status") == "ok":
        return done
    start = time.perf_counter()
    ds = dataset if dataset is not None else load_dataset(inputs_in(config.data, store))
    part = partition(ds, config.data, seed=config.seed)
    defenses = build_defenses(config, part)
    params = {
        k: v.to(config.device)
        for k, v in init_params(
            ds.dim, config.model, generator=generator(config.seed, "init")
        ).items()
    }
    engine = create_engine(
        config.engine, part, model=config.model, algo=config.algo, seed=config.seed,
        local=local_training(defenses), device=config.device,
    )  # fmt: skip
    with harvest_writer(store, rid, ds.dim, config) as hw:
        trace = train(config, part, engine, defenses, params, hw=hw, progress=progress)
    test_uar, test_acc = evaluate(trace.best_params, part, part.test_idx)
    rows = run_row(config, rid, ds, trace, defenses, test=(test_uar, test_acc), hw=hw)
    rows.update({"wall_s": time.perf_counter() - start, **(extra or {})})
    write_rounds(store, rid, trace.rounds)
    write_clients(store, rid, [context_of(c, ds.speakers) for c in part.clients])
    if trace.cohorts:
        from sergrad.fl.records import write_cohorts

        write_cohorts(store, rid, trace.cohorts)
    write_run_row(store, rows, corpus="+".join(ds.corpora))
    return {**rows, "corpus": "+".join(ds.corpora)}


def inputs_in(data: DataConfig, store) -> DataConfig:
    """`store:` references of a sweep's run config resolved against `store` (its id keeps
    the references, so it never depends on where the store lives)."""
    return dataclasses.replace(
        data,
        features=tuple(store.uri_of(u) for u in data.features),
        utterances=tuple(store.uri_of(u) for u in data.utterances),
    )


def context_of(client, speakers: dict | None = None) -> ClientContext:
    """What the simulation knows about a client and the server does not: its speaker's
    gender, corpus and every speaker column of `Dataset.speakers` (age, language, ...)."""
    known = (speakers or {}).get((client.corpus, unprefixed(client.corpus, client.speaker_id)))
    return ClientContext(client.client_id, client.speaker_id, client.gender,
                         {"corpus": client.corpus, **(known or {})})  # fmt: skip


def write_clients(store, rid: str, contexts: list[ClientContext]) -> None:
    """The side table `clients/run_id=<rid>/clients.parquet` (schema.CLIENTS)."""
    from sergrad.fl.records import write_clients as write

    write(store, rid, [client_row(c) for c in contexts])


def client_row(context: ClientContext) -> dict:
    """One schema.CLIENTS row of a client's context."""
    from sergrad.schema import SPEAKER_COLUMNS

    return {"client_id": context.client_id, "speaker_id": context.speaker_id,
            "gender": context.gender, "corpus": context.attributes.get("corpus"),
            **{c: context.attributes.get(c) for c in SPEAKER_COLUMNS}}  # fmt: skip


@dataclass
class Trace:
    rounds: list[dict] = field(default_factory=list)
    best_round: int = 0
    best_val: tuple[float, float] = (float("nan"), float("nan"))
    best_params: dict[str, torch.Tensor] | None = None
    n_updates: int = 0
    cohorts: list[dict] = field(default_factory=list)  # secure aggregation: schema.COHORTS


def train(
    config: RunConfig,
    part: Partition,
    engine: Engine,
    defenses: list[Defense],
    params: dict[str, torch.Tensor],
    *,
    hw,
    progress: Progress | None = None,
) -> Trace:
    """All rounds; keeps the model with the best validation UAR among eligible rounds."""
    algo, rounds = config.algo, config.algo.rounds
    kind = share_kind(algo)
    select_after = config.eval.select_after if config.eval.select_after < rounds else 0
    trace = Trace()
    secagg = secagg_of(defenses)  # None: the server sees every update
    if secagg is not None:
        k = secagg.spec.clients_per_round(len(part.clients), algo.client_fraction)
    for r in range(1, rounds + 1):
        t0 = time.perf_counter()
        if secagg is None:
            ids = sample_clients(
                len(part.clients), fraction=algo.client_fraction, seed=config.seed, round=r
            )
        else:
            ids, isolated = cohort_ids(
                secagg.spec, n_clients=len(part.clients), k=k, seed=config.seed, round=r
            )
        clients = [part.clients[i] for i in ids.tolist()]
        updates, losses = [], []
        for res in engine.train_round(params, clients, round=r):
            c = res.client
            for d in defenses:
                d.on_client_trained(c.client_id, sample_rate=res.sample_rate, steps=res.steps)
            u = ClientUpdate(
                round=r, client_id=c.client_id, speaker_id=c.speaker_id,
                n_samples=c.n_train, kind=kind, tensors=res.tensors,
            )  # fmt: skip
            for i, d in enumerate(defenses):
                u = d.client_update(
                    u, generator=generator(config.seed, "defense", r, c.client_id, i)
                )
            check_finite(u)
            updates.append(u)
            losses.append((res.loss, c.n_train))
        if secagg is None:  # the round's rows together: one conversion copy per parameter
            hw.add_many(updates)
        mean = aggregate(updates, algo=algo)
        if secagg is not None:  # the server's whole view of the round
            for seen, cohort in server_views(secagg.spec, mean, updates, round=r,
                                             isolated=isolated, algo=algo):  # fmt: skip
                if hw.wants_round(r):
                    hw.add(seen)
                trace.cohorts.append(cohort)
        for i, d in reversed(list(enumerate(defenses))):
            g = generator(config.seed, "server", r, i)
            mean = d.server_update(mean, n_clients=len(updates), generator=g)
        params = server_step(params, mean, algo=algo)
        for d in defenses:
            d.on_round_end(r, n_clients_total=len(part.clients), n_sampled=len(updates))
        trace.n_updates += len(updates)
        row = {
            "round": r,
            "n_clients": len(updates),
            "train_loss": sum(loss * n for loss, n in losses) / sum(n for _, n in losses),
            "val_uar": None,
            "val_acc": None,
            "epsilon": privacy(defenses)[0],
        }
        if r % config.eval.every == 0 or r == rounds:
            row["val_uar"], row["val_acc"] = evaluate(params, part, part.val_idx)
            better = trace.best_params is None or row["val_uar"] > trace.best_val[0]
            if r > select_after and better:
                trace.best_round, trace.best_val = r, (row["val_uar"], row["val_acc"])
                trace.best_params = {k: v.clone() for k, v in params.items()}
        row["wall_s"] = time.perf_counter() - t0
        trace.rounds.append(row)
        if progress is not None:
            progress(r, rounds, row["val_uar"])
    return trace


def evaluate(
    params: dict[str, torch.Tensor], part: Partition, idx: np.ndarray
) -> tuple[float, float]:
    """(UAR, accuracy) of the model on rows `idx` (pooled), dropout off."""
    if len(idx) == 0:
        return float("nan"), float("nan")
    device = params[PARAM_NAMES[0]].device
    pred = predict(params, torch.from_numpy(part.x[idx]).to(device)).cpu().numpy()
    return uar(part.y[idx], pred), accuracy(part.y[idx], pred)


def build_defenses(config: RunConfig, part: Partition) -> list[Defense]:
    """Defense objects for config.defenses, in order ([] without defenses)."""
    if not config.defenses:
        return []
    from sergrad.defenses import create_defenses
    from sergrad.defenses.plan import TrainingPlan

    a = config.algo
    plan = TrainingPlan.for_run(
        algorithm=a.name, n_clients=len(part.clients), rounds=a.rounds,
        client_fraction=a.client_fraction, batch_size=a.batch_size,
        local_epochs=a.local_epochs, local_lr=a.lr, full_batch=a.fedsgd_full_batch,
        mean_train_samples=float(np.mean([c.n_train for c in part.clients])),
    )  # fmt: skip
    return create_defenses(config.defenses, n_clients=len(part.clients), plan=plan)


def local_training(defenses: list[Defense]) -> LocalTraining | None:
    specs = [s for s in (d.local_training() for d in defenses) if s is not None]
    if len(specs) > 1:
        from sergrad.errors import ConfigError

        raise ConfigError("at most one defense may change local training (e.g. dp_sgd)")
    return specs[0] if specs else None


def privacy(defenses: list[Defense]) -> tuple[float | None, float | None, str | None, str]:
    """(epsilon, delta, accountant, protects) of the (single) defense claiming a guarantee."""
    spent = [s for s in (d.privacy_spent() for d in defenses) if s is not None]
    if not spent:
        return None, None, None, "none"
    s = spent[0]
    return s.epsilon, s.delta, s.accountant, s.protects


def harvest_writer(store, rid: str, dim: int, config: RunConfig):
    try:
        from sergrad.fl.harvest import HarvestWriter
    except ModuleNotFoundError:  # pragma: no cover - harvest facade not built yet
        from sergrad.fl.harvest_write import HarvestWriter
    shapes = param_shapes(dim, config.model)
    return HarvestWriter(
        store, run_id=rid, param_names=list(PARAM_NAMES), param_shapes=shapes,
        config=config, harvest=config.harvest,
    )  # fmt: skip


def run_row(config, rid, ds, trace, defenses, *, test, hw) -> dict:
    from sergrad.defenses import defense_label
    from sergrad.fl.records import now_iso, versions

    eps, delta, accountant, protects = privacy(defenses)
    label, level = defense_label(defenses)
    return {
        "run_id": rid,
        "status": "ok",
        "error": None,
        "role": "single",
        "feature_set": ds.feature_set,
        "algorithm": config.algo.name,
        "engine": config.engine,
        "fold": config.data.fold,
        "seed": config.seed,
        "defense": label,
        "defense_level": None if level is None else float(level),
        "rounds": config.algo.rounds,
        "best_round": trace.best_round,
        "val_uar": trace.best_val[0],
        "test_uar": test[0],
        "test_acc": test[1],
        "epsilon": eps,
        "delta": delta,
        "accountant": accountant,
        "dp_protects": protects,
        "n_updates": trace.n_updates,
        "harvest_bytes": int(hw.bytes_written),
        "config": canonical_json(config),
        "versions": canonical_json(versions()),
        "created_at": now_iso(),
    }
