"""`sergrad features extract|list`.

    sergrad features extract --utterances utterances.parquet --set combined -o features.parquet \
        [--param key=value ...] [--workers N] [--strict] [--cache-dir DIR] [--batch-size B]
    sergrad features list

Heavy modules (torch, torchaudio) are imported inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from sergrad.errors import ConfigError


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """["k=v", ...] -> {k: v}, v parsed as JSON when it is (numbers, true/false, null)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {pair!r}: expected key=value")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("features", help="extract and list utterance feature sets")
    sub = parser.add_subparsers(dest="features_command", metavar="ACTION", required=True)

    ext = sub.add_parser("extract", help="one vector per utterance -> Parquet")
    ext.add_argument("--utterances", required=True, help="utterance table (Parquet)")
    ext.add_argument(
        "--set", dest="feature_set", default="combined", help="feature set (see `features list`)"
    )
    ext.add_argument("-o", "--output", required=True, help="output Parquet (local path or URI)")
    ext.add_argument(
        "--param", action="append", metavar="KEY=VALUE", help="feature-set parameter, repeatable"
    )
    ext.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    ext.add_argument("--batch-size", type=int, default=32, help="utterances per task (default 32)")
    ext.add_argument("--strict", action="store_true", help="any bad file is fatal")
    ext.add_argument("--cache-dir", help="reuse / fill a features cache in DIR")
    ext.add_argument("--no-progress", action="store_true", help="no progress bar")
    ext.set_defaults(func=run_extract)

    lst = sub.add_parser("list", help="the registered feature sets")
    lst.set_defaults(func=run_list)


def run_extract(args: argparse.Namespace) -> int:
    from sergrad.features.cache import features_cached_with_problems, read_utterances
    from sergrad.features.extract import extract_features
    from sergrad.features.table import read_meta, write_features

    params = parse_params(args.param)
    common = dict(
        feature_set=args.feature_set, params=params, workers=args.workers, strict=args.strict,
        progress=not args.no_progress, batch_size=args.batch_size,
    )  # fmt: skip
    if args.cache_dir:
        cached, problems = features_cached_with_problems(
            args.utterances, cache_dir=args.cache_dir, **common
        )
        _copy(cached, args.output)
        import pyarrow.parquet as pq

        meta, n_rows = read_meta(pq.read_schema(cached)), pq.read_metadata(cached).num_rows
        print(f"cache: {cached}")
    else:
        table, problems = extract_features(read_utterances(args.utterances), **common)
        write_features(table, args.output)
        meta, n_rows = read_meta(table.schema), table.num_rows
    print(
        f"feature set: {args.feature_set}  dimension: {meta['dim']}  params: {json.dumps(meta['params'])}"
    )
    print(f"utterances: {meta['n_utterances']}  extracted: {n_rows}  skipped: {problems.count}")
    print(problems.summary())
    print(f"wrote {args.output}")
    return 0


def _copy(src, dst: str) -> None:
    """Copy a cached file to `dst` atomically (local) or via pyarrow.fs (URI)."""
    from sergrad.features.table import write_features

    if "://" not in str(dst):
        target = Path(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return
    import pyarrow.parquet as pq

    write_features(pq.read_table(src), dst)


def run_list(args: argparse.Namespace) -> int:
    from sergrad.features import FEATURE_SETS

    print(f"{'name':<14} {'dim':>5}  description")
    for name in FEATURE_SETS:
        spec = FEATURE_SETS.get(name)
        dim = "table" if spec.default_dim is None else str(spec.default_dim)
        params = ", ".join(f"{k}={v}" for k, v in spec.defaults.items())
        print(
            f"{name:<14} {dim:>5}  {spec.description}" + (f"  [params: {params}]" if params else "")
        )
    print("default: combined")
    return 0
