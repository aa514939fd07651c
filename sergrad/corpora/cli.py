"""`sergrad corpus index|synth`.

    sergrad corpus index --corpus crema-d ROOT -o utterances.parquet [--name NAME]
                         [--option labels=acted ...] [--strict]
    sergrad corpus synth OUT --profile NAME [--speakers N] [--seed S]

`index` writes the table only when indexing succeeded (atomically), then prints the counts
and the problems summary. Heavy modules are imported inside the handlers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sergrad.errors import ConfigError

CORPUS_NAMES: tuple[str, ...] = ("crema-d", "iemocap", "msp-improv", "table")  # == CORPORA.names()


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    corpus = subparsers.add_parser("corpus", help="index real corpora, synthesize demo corpora")
    sub = corpus.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)

    p = sub.add_parser("index", help="index a corpus copy into an utterance table (Parquet)")
    p.add_argument("--corpus", required=True, choices=CORPUS_NAMES, help="release layout")
    p.add_argument("root", metavar="ROOT", help="folder holding the corpus copy")
    p.add_argument("-o", "--output", required=True, help="utterance table to write (.parquet)")
    p.add_argument("--name", default=None, help="value of the corpus column (default: --corpus)")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="adapter option, repeatable (iemocap improvised_only=false; "
        "crema-d labels=acted|voice|multimodal; msp-improv conditions=S,T)",
    )
    p.add_argument("--strict", action="store_true", help="any per-file problem is fatal")
    p.set_defaults(func=index_command)

    s = sub.add_parser("synth", help="generate a synthetic corpus in CREMA-D layout")
    s.add_argument("out", metavar="OUT", help="output folder")
    s.add_argument("--profile", required=True, help="synthetic corpus profile")
    s.add_argument("--speakers", type=int, default=None, help="number of speakers")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=synth_command)


def parse_options(items: list[str]) -> dict[str, str]:
    """['k=v', ...] -> {k: v}; ConfigError for an item without '='."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option {item!r}: expected KEY=VALUE")
        options[key.strip()] = value.strip()
    return options


def index_command(args: argparse.Namespace) -> int:
    from sergrad.corpora import index_corpus, summarize, write_utterances

    check_output(Path(args.output))
    table, problems = index_corpus(
        args.corpus,
        Path(args.root),
        options=parse_options(args.option),
        strict=args.strict,
        corpus_name=args.name,
    )
    out = write_utterances(table, Path(args.output))
    print(summarize(table))
    print(problems.summary())
    print(f"wrote {table.num_rows} utterances to {out}")
    return 0


def check_output(path: Path) -> None:
    """-o must name a file whose folder is (or can become) a folder; checked before indexing."""
    if path.is_dir():
        raise ConfigError(
            f"-o {path}: is a directory; give a file name, e.g. {path / 'utterances.parquet'}"
        )
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"-o {path}: {parent} is a file, not a folder")
            break


def synth_command(args: argparse.Namespace) -> int:
    from sergrad.corpora.synth import PROFILES, synthesize

    names = list(PROFILES.names())
    if args.profile not in names:
        raise ConfigError(f"unknown profile {args.profile!r}; valid: {', '.join(names)}")
    path = synthesize(Path(args.out), profile=args.profile, speakers=args.speakers, seed=args.seed)
    print(path)
    return 0
