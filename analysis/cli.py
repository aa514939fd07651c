"""CLI: `sergrad query`, `sergrad table`, `sergrad plot ...`, `sergrad report`.

sergrad query STORE "SELECT ... FROM results ..." [-o out.csv|out.parquet] [--format ...]
sergrad query STORE --schema
sergrad table ser|layers|updates|tradeoff|verdicts|eps|cohort STORE [-o out.csv|out.parquet] [--where ...]
sergrad plot tradeoff|layers|updates|epsilon|eps_lb|roc|attributes|cohort STORE -o FILE.png|svg|pdf [--where ...]
sergrad report STORE -o DIR [--where ...]
"""

from __future__ import annotations

import argparse
import sys

WHERE_HELP = "Polars SQL condition on the row-level data, e.g. \"target_corpus = 'alpha'\""


def add_commands(sub) -> None:
    q = sub.add_parser("query", help="Polars SQL over a results store's tables")
    q.add_argument("store", help="results store (local path or s3:// URI)")
    q.add_argument("sql", nargs="?", help="SQL over runs, rounds, attacks, predictions, "
                   "results, round_results, scored_predictions")  # fmt: skip
    q.add_argument("--schema", action="store_true",
                   help="list tables and views: columns, dtypes, values of categorical columns")  # fmt: skip
    _output_args(q, rows=50)
    q.set_defaults(func=_query)

    t = sub.add_parser(
        "table", help="a table in the paper's shape (mean, 95%% CI over folds x seeds)"
    )
    t.add_argument("kind", choices=("ser", "layers", "updates", "tradeoff", "verdicts", "eps",
                                    "cohort"),
                   help="verdicts: strongest legitimate attacker per cell (cluster-bootstrap "
                   "interval, permutation p); eps: empirical epsilon (attribute attack; canary audit for dp_sgd / central user_dp) beside the accountant's; cohort: leakage against the cohort size under secure aggregation")  # fmt: skip
    t.add_argument("store")
    t.add_argument("--where", help=WHERE_HELP)
    _output_args(t, rows=200)
    t.add_argument("--n-avg", type=int, default=1,
                   help="verdicts: updates averaged per client (0 = all; default 1)")  # fmt: skip
    t.add_argument("--by", help="verdicts: extra keys splitting cells, e.g. adaptive,calibration")
    t.set_defaults(func=_table)

    p = sub.add_parser("plot", help="privacy-utility figures (.png, .svg or .pdf)")
    kinds = p.add_subparsers(dest="plot", metavar="KIND", required=True)
    for name, help_ in (
        ("tradeoff", "SER UAR against attack success per defense level"),
        ("updates", "attack success against the number of averaged updates"),
        ("layers", "per-layer leakage heatmap"),
        ("epsilon", "epsilon against rounds"),
        ("eps_lb", "the attack's empirical epsilon lower bound beside the accountant's"),
        ("roc", "ROC curves on log-log axes"),
        ("attributes", "per-attribute leakage: verdict minus chance per layer x attribute"),
        ("cohort", "leakage against the cohort size under secure aggregation"),
    ):
        k = kinds.add_parser(name, help=help_)
        k.add_argument("store")
        k.add_argument("-o", "--output", required=True, help="figure file: .png, .svg or .pdf")
        k.add_argument("--where", help=WHERE_HELP)
        if name in ("tradeoff", "updates", "layers"):
            k.add_argument("--metric", default="uar",
                           help="uar | acc | auc | tpr_at_1fpr | tpr_at_10fpr (default uar)")  # fmt: skip
        if name in ("tradeoff", "updates", "roc", "eps_lb"):
            k.add_argument("--layer", help="attacked layer (default fc1, else the first)")
        if name not in ("epsilon", "eps_lb", "attributes", "cohort"):
            default = {"layers": "per_update", "roc": "per_update", "tradeoff": None}.get(
                name, "per_client"
            )
            help_ = "default: the verdict's (per_client or per_client_vote, the stronger)"
            k.add_argument("--protocol", default=default,
                           help=help_ if default is None else f"default {default}")  # fmt: skip
        if name in ("tradeoff", "layers", "roc", "attributes"):
            k.add_argument("--n-avg", type=int, default=1, help="updates averaged (0 = all)")
        if name in ("layers", "attributes"):
            k.add_argument("--defense", default="none", help="defense of the targets ('all': any)")
        if name == "roc":
            k.add_argument("--by", help="comma-separated columns, one curve per group")
        k.set_defaults(func=_plot)

    r = sub.add_parser("report", help="HTML report (figures, tables, sweep definition)")
    r.add_argument("store")
    r.add_argument("-o", "--output", required=True, help="output folder")
    r.add_argument("--where", help=WHERE_HELP)
    r.set_defaults(func=_report)


def _output_args(p, *, rows: int) -> None:
    from sergrad.analysis.terminal import FORMATS

    p.add_argument("-o", "--output", help="write .csv or .parquet instead of printing")
    p.add_argument("--format", default="table", choices=FORMATS,
                   help="printed form: table (fits the terminal), csv, json, markdown")  # fmt: skip
    p.add_argument("--max-rows", type=int, default=rows,
                   help=f"rows to print as table/markdown (default {rows})")  # fmt: skip


def _print(frame, args: argparse.Namespace) -> None:
    from sergrad.analysis.query import write_frame
    from sergrad.analysis.terminal import emit, render

    if args.output:
        print(f"wrote {frame.height} rows to {write_frame(frame, args.output)}")
    else:
        emit(render(frame, args.format, max_rows=args.max_rows))


def _query(args: argparse.Namespace) -> int:
    from sergrad.analysis.query import format_schema, run_query, schema_frame
    from sergrad.analysis.terminal import emit
    from sergrad.errors import ConfigError

    if args.schema:
        frame = schema_frame(args.store)
        if args.format == "table" and not args.output:
            emit(format_schema(frame))
        else:
            _print(frame, args)
        return 0
    if not args.sql:
        raise ConfigError("query: give a SQL statement, or --schema to list tables and columns")
    _print(run_query(args.store, args.sql), args)
    return 0


def _table(args: argparse.Namespace) -> int:
    from sergrad.analysis import plots as P
    from sergrad.analysis import plots_secagg as SA
    from sergrad.analysis import tables as T
    from sergrad.analysis import verdicts as V

    fn = {"ser": T.ser_table, "layers": T.layer_table, "updates": T.updates_table,
          "tradeoff": T.tradeoff_table, "verdicts": V.verdicts, "eps": P.eps_table,
          "cohort": SA.cohort_table}[args.kind]  # fmt: skip
    kw = {}
    if args.kind == "verdicts":
        kw["n_avg"] = args.n_avg
        if args.by:
            kw["extra_keys"] = [c.strip() for c in args.by.split(",") if c.strip()]
    frame = fn(args.store, where=args.where, **kw)
    _print(frame, args)
    for col, what in (("eps_violation", "the attribute attack's eps_lb above the local mechanism's"),
                      ("canary_violation", "the canary audit's eps_lb above the accountant's")):  # fmt: skip
        if col in frame.columns and frame[col].fill_null(False).any():
            bad = frame.filter(frame[col].fill_null(False))
            cells = "; ".join(f"{r['target_corpus']} {r['defense_name']} {r['level']}"
                              for r in bad.iter_rows(named=True))  # fmt: skip
            print(f"DP VIOLATION ({what} epsilon: a bug in sergrad's DP code): {cells}",
                  file=sys.stderr)  # fmt: skip
    return 0


def _plot(args: argparse.Namespace) -> int:
    from sergrad.analysis import plots, plots_attributes, plots_runs, plots_secagg

    fn = {"tradeoff": plots.plot_tradeoff, "updates": plots.plot_updates,
          "layers": plots.plot_layers, "epsilon": plots_runs.plot_epsilon,
          "eps_lb": plots.plot_eps_lb, "attributes": plots_attributes.plot_attributes,
          "roc": plots_runs.plot_roc, "cohort": plots_secagg.plot_cohort}[args.plot]  # fmt: skip
    kw = {"where": args.where}
    for name in ("metric", "layer", "protocol", "n_avg"):
        if getattr(args, name, None) is not None:
            kw[name] = getattr(args, name)
    if args.plot in ("layers", "attributes"):
        kw["defense"] = None if args.defense == "all" else args.defense
    if args.plot == "roc" and args.by:
        kw["by"] = [c.strip() for c in args.by.split(",") if c.strip()]
    if "protocol" in kw:
        _check_protocol(args.store, kw["protocol"])
    frame = fn(args.store, args.output, **kw)
    print(f"wrote {args.output} ({frame.height} plotted rows)")
    return 0


def _check_protocol(store: str, protocol: str) -> None:
    """A --protocol value the store does not hold is named as such (not as a --where miss)."""
    from sergrad.analysis.load import scan
    from sergrad.errors import ConfigError

    have = sorted(
        p for p in scan(store, "attacks").select("protocol").unique().collect()["protocol"] if p
    )
    if have and protocol not in have:
        raise ConfigError(
            f"--protocol {protocol!r} is not in this store; values: {', '.join(have)}"
        )


def _report(args: argparse.Namespace) -> int:
    from sergrad.analysis.report import write_report

    path = write_report(args.store, args.output, where=args.where)
    print(f"report: {path}")
    return 0
