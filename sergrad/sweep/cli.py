"""`sergrad sweep plan|run|status`."""

from __future__ import annotations

import argparse
import json
import sys


def add_commands(sub) -> None:
    sweep = sub.add_parser("sweep", help="expand and run sweeps of FL runs and attacks")
    cmds = sweep.add_subparsers(dest="sweep_command", metavar="SUBCOMMAND", required=True)

    plan = cmds.add_parser(
        "plan", help="print counts (runs, evaluations, harvest bytes); run nothing"
    )
    plan.add_argument("file", help="sweep YAML file")
    plan.add_argument("--store", help="store URI (overrides the file's `store`)")
    plan.add_argument("--json", action="store_true", help="print JSON")
    plan.set_defaults(func=plan_command)

    run = cmds.add_parser("run", help="run a sweep (resumes: finished ids are skipped)")
    run.add_argument("file", help="sweep YAML file")
    run.add_argument("--store", help="store URI: a path or s3://bucket/prefix (overrides `store`)")
    run.add_argument(
        "--address",
        help="Ray cluster to join ('auto' or host:port); default: a private local instance",
    )
    run.add_argument("--max-concurrent", type=int, default=0, help="concurrent trials (0 = all)")
    run.add_argument("--num-cpus", type=int, default=0, help="CPUs of the local instance")
    run.set_defaults(func=run_command)

    status = cmds.add_parser("status", help="done / failed / pending of a sweep store")
    status.add_argument("store", help="store URI")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=status_command)


def plan_command(args: argparse.Namespace) -> int:
    from sergrad.errors import ConfigError
    from sergrad.sweep.devices import check_devices
    from sergrad.sweep.driver import plan_summary, resolve_store, size_warning
    from sergrad.sweep.estimate import UNKNOWN_SPEAKERS, human_bytes
    from sergrad.sweep.progress import hms
    from sergrad.sweep.schema import load_sweep

    sweep = load_sweep(args.file)
    try:  # a plan made on a laptop for a GPU cluster is fine; `sweep run` here is not
        check_devices(sweep)
    except ConfigError as exc:
        print(f"warning: {exc}; `sweep run` on this machine will refuse it", file=sys.stderr)
    uri = resolve_store(sweep, args.store or sweep.store or "store")
    summary = plan_summary(sweep, uri)
    warning = size_warning(summary)
    if warning:
        print(warning, file=sys.stderr)
    for line in summary["cnn_warnings"]:
        print(f"warning: cnn evaluations of {line}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"sweep {sweep.name} ({args.file}) -> {uri}")
    print(f"inputs       {summary['inputs']} corpus x feature-set files")
    print(
        f"runs         {summary['runs']} ({summary['target_runs']} target, "
        f"{summary['shadow_runs']} shadow)"
    )
    print(f"evaluations  {summary['evaluations']}")
    if summary.get("audits"):
        print(f"audits       {summary['audits']} canary audits (dp_sgd / central user_dp runs)")
    known = summary["speakers_indexed"]
    source = (
        "speakers of the indexed corpora: " + ", ".join(f"{c} {n}" for c, n in known.items())
        if known
        else "published / declared speaker counts; index the corpora for real ones"
    )
    print(
        f"harvest      ~{human_bytes(summary['harvest_bytes'])} "
        f"({summary['harvest_bytes']} bytes, estimate from {source})"
    )
    if summary["speakers_unknown"]:
        print(
            f"speakers     unknown for {', '.join(summary['speakers_unknown'])} (table not "
            f"readable here): harvest and time estimates assume {UNKNOWN_SPEAKERS} each"
        )
    t = summary["time"]
    for kind, v in t["kinds"].items():
        print(f"time         {kind}: {v['jobs']} x ~{hms(v['seconds_each'])} ({v['source']})")
    print(f"time         ~{hms(t['total_s'])} in all on {t['cpus']} CPU slot(s), estimate")
    return 0


def run_command(args: argparse.Namespace) -> int:
    from sergrad.sweep.devices import check_devices
    from sergrad.sweep.driver import (
        options_for,
        resolve_store,
        run_sweep,
        size_summary,
        size_warning,
    )
    from sergrad.sweep.schema import load_sweep

    sweep = load_sweep(args.file)
    if args.address in (None, "", "local"):  # a cluster is checked for GPUs when it is joined
        check_devices(sweep)
    uri = resolve_store(sweep, args.store)
    warning = size_warning(size_summary(sweep))
    if warning:
        print(warning, file=sys.stderr)
    options = options_for(
        sweep,
        address=args.address,
        max_concurrent=args.max_concurrent,
        num_cpus=args.num_cpus or None,
    )
    result = run_sweep(
        sweep, store_uri=uri, options=options, log=lambda m: print(m, file=sys.stderr)
    )
    states = ", ".join(f"{n} {state}" for state, n in sorted(result.counts().items()))
    print(
        f"sweep {sweep.name}: runs {result.oks['runs']}/{result.totals['runs']} ok, "
        f"evals {result.oks['evals']}/{result.totals['evals']} ok"
        + (
            f", audits {result.oks['audits']}/{result.totals['audits']} ok"
            if result.totals.get("audits")
            else ""
        )  # fmt: skip
        + (f"; not ok: {states}" if states else "")
        + f" -> {uri}"
    )
    if result.timing_line():  # where this call's time went (stderr: stdout is the summary)
        print(f"time: {result.timing_line()}", file=sys.stderr)
    for line in result.problem_lines():
        print(line)
    return result.exit_code()


def status_command(args: argparse.Namespace) -> int:
    from sergrad.store import Store
    from sergrad.sweep.status import format_status, sweep_status

    status = sweep_status(Store(args.store, create=False))
    print(json.dumps(status) if args.json else format_status(status))
    return 1 if status["any_failed"] else 0
