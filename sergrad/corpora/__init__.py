"""Corpus adapters: a user's copy of IEMOCAP, CREMA-D or MSP-Improv -> one utterance table.

Contract
--------
`index_corpus(name, root, *, options=None, strict=False, corpus_name=None)` reads a corpus in
its original release layout (METHOD.md section 1; details in each adapter's docstring) and
returns `(table, problems)`:

- `table` has exactly `sergrad.schema.UTTERANCES`: utt_id (the corpus's own id, e.g.
  `Ses01F_impro01_M013`, `1001_DFA_ANG_XX`, `MSP-IMPROV-S01A-F01-S-FM01`), corpus (`name`,
  or `corpus_name` when given, e.g. a synthetic corpus in CREMA-D layout), speaker_id,
  gender F/M, emotion neutral/happy/sad/angry, raw_label (the corpus's code), path (absolute),
  sample_rate and duration_s (read from the file header), session (`Ses01`, `session1`;
  null for CREMA-D), and the speaker columns age, race, ethnicity, language (constant per
  speaker; null where the corpus does not record them: CREMA-D gives age, race, ethnicity;
  the synthetic corpora age and language; a `table` corpus whichever it lists; IEMOCAP and
  MSP-Improv gender only). Rows are sorted by (speaker_id, utt_id); (corpus, utt_id) is
  unique. Speaker ids are unique within a corpus only.
- Per-file problems (audio missing / corrupt / empty / truncated, wrong sample rate for
  IEMOCAP, speaker without gender, unknown label code, malformed label line) skip that
  utterance and are collected in `problems` (a `sergrad.problems.Problems`); with
  `strict=True` the first one raises DataError.
- Utterances that are simply not kept (other emotions, ties, scripted dialogs, excluded
  recording conditions) are not problems; their counts are logged (logger `sergrad.corpora`).
- A missing label file or folder, an unknown corpus or option, or an empty result raises
  DataError / ConfigError naming what was searched and where.

Bring your own corpus: `table` reads a CSV/Parquet list (path, speaker_id, gender, emotion
[, session, age, other speaker columns]); ROOT is that file (see tabular.py). Extra speaker
columns ride in the table's metadata: `speaker_columns(table)` returns them.
Any sample rate is accepted for CREMA-D, MSP-Improv and `table` (features resample to 16 kHz;
`summarize` counts the files per rate); IEMOCAP must be 16 kHz. A WAV whose header promises
more audio than the file holds is a per-file problem (truncated copy).

Options: iemocap `improvised_only` (bool, default True); crema-d `labels`
(`acted`|`voice`|`multimodal`, default `multimodal`); msp-improv `conditions` (letters from
P, R, S, T, default `S,T`). Values may be given as CLI strings ("false", "S,T").

`write_utterances(table, path)` validates and writes Parquet atomically; `read_utterances(path)`
reads and validates; `summarize(table)` gives counts by gender and emotion per corpus.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from sergrad.corpora import cremad, iemocap, mspimprov, tabular
from sergrad.corpora.speaker_meta import speaker_columns
from sergrad.corpora.table import (
    Adapter,
    build_table,
    read_utterances,
    summarize,
    write_utterances,
)
from sergrad.errors import ConfigError, DataError
from sergrad.problems import Problems
from sergrad.registry import Registry

__all__ = [
    "CORPORA",
    "Adapter",
    "index_corpus",
    "read_utterances",
    "speaker_columns",
    "summarize",
    "write_utterances",
]

CORPORA: Registry[Adapter] = Registry("corpus")
for _adapter in (iemocap.ADAPTER, cremad.ADAPTER, mspimprov.ADAPTER, tabular.ADAPTER):
    CORPORA.register(_adapter.name)(_adapter)


def index_corpus(
    name: str,
    root: Path,
    *,
    options: dict[str, Any] | None = None,
    strict: bool = False,
    corpus_name: str | None = None,
) -> tuple[pa.Table, Problems]:
    """Index the corpus copy at `root` with adapter `name`; see the module docstring."""
    try:
        adapter = CORPORA.get(name)
    except KeyError as exc:
        raise ConfigError(exc.args[0]) from None
    resolved = adapter.resolve_options(options)
    root = Path(root)
    if adapter.root_is_file and not root.is_file():
        raise DataError(f"{name}: utterance list {root} does not exist (ROOT is the .csv/.parquet)")
    if not adapter.root_is_file and not root.is_dir():
        raise DataError(f"{name}: corpus folder {root} does not exist")
    problems = Problems(strict=strict)
    rows = adapter.rows(root, resolved, problems)
    if not rows:
        raise DataError(f"{name}: no usable utterances under {root} ({problems.summary()})")
    return build_table(rows, corpus=corpus_name or name), problems
