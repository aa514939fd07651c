"""Calibration report of the synthetic corpora: how hard each speaker attribute is to read.

    python -m sergrad.corpora.calibrate                      # the three profiles, default sizes
    python -m sergrad.corpora.calibrate --speakers 12 --utterances-per-emotion 4 --seeds 0

For each profile and seed: synthesize (cached under $SERGRAD_CACHE or the temp folder),
index with the CREMA-D adapter (perceived multimodal labels, as the demo), extract the
`combined` features (cached), then logistic regression with speaker-independent folds
(sergrad.centralized): emotion UAR on per-speaker z-normalised features and gender UAR on
raw ones exactly as `sergrad.centralized.centralized_check` (mean over folds); age_group and
language UAR from raw features with the same classifier and folds, scored once over the
pooled held-out predictions (a 3-class target on 4-5 held-out speakers per fold would leave
classes out of single folds); age MAE of a ridge regression on raw features beside the
predict-the-training-mean baseline. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sergrad.attack.metrics import uar
from sergrad.attributes import resolve_attribute

PROFILE_NAMES = ("synth-studio", "synth-phone", "synth-room")


@dataclass(frozen=True)
class Calibration:
    profile: str
    seed: int
    n_speakers: int
    speakers: str  # composition, e.g. "11F/13M, L1 14/L2 10, <30 5/30-49 9/>=50 10"
    emotion_uar: float
    gender_uar: float
    age_group_uar: float
    language_uar: float
    age_mae: float
    age_mae_baseline: float


def _cache() -> Path:
    base = os.environ.get("SERGRAD_CACHE") or os.path.join(tempfile.gettempdir(), "sergrad-cache")
    return Path(base) / "calibrate"


def pooled_predictions(
    x: np.ndarray, y: np.ndarray, speakers: np.ndarray, *, n_folds: int, regress: bool = False
) -> np.ndarray:
    """Held-out predictions for every row, speaker folds as sergrad.centralized."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler

    from sergrad.centralized import speaker_folds

    pred = np.empty(len(y), dtype=np.float64 if regress else object)
    for held_out in speaker_folds(speakers, n_folds):
        test = np.isin(speakers, held_out)
        scaler = StandardScaler().fit(x[~test])
        if regress:
            model = Ridge(alpha=1000.0)
        elif len(set(y[~test].tolist())) < 2:
            pred[test] = y[~test][0]
            continue
        else:
            model = LogisticRegression(max_iter=500, C=0.1)
        model.fit(scaler.transform(x[~test]), y[~test])
        pred[test] = model.predict(scaler.transform(x[test]))
    return pred


def calibrate_one(profile: str, *, seed: int, speakers: int | None, upe: int | None) -> Calibration:
    import pyarrow.parquet as pq

    from sergrad.centralized import centralized_check
    from sergrad.corpora import index_corpus, write_utterances
    from sergrad.corpora.synth import synthesize
    from sergrad.features.cache import features_cached

    key = f"{profile}-s{speakers or 0}-u{upe or 0}-{seed}"
    root = synthesize(
        _cache() / "synth" / key, profile=profile, speakers=speakers, seed=seed,
        utterances_per_emotion=upe, progress=False,
    )  # fmt: skip
    table, _ = index_corpus("crema-d", root, corpus_name=profile)
    utt_path = write_utterances(table, _cache() / "utterances" / f"{key}.parquet")
    feat_path = features_cached(
        utt_path, feature_set="combined", cache_dir=_cache() / "features", progress=False
    )
    feats = pq.read_table(feat_path)
    row = {u: i for i, u in enumerate(feats["utt_id"].to_pylist())}
    keep = [i for i, u in enumerate(table["utt_id"].to_pylist()) if u in row]
    table = table.take(keep)
    vectors = feats["x"].combine_chunks().flatten().to_numpy().reshape(feats.num_rows, -1)
    x = vectors[[row[u] for u in table["utt_id"].to_pylist()]].astype(np.float64)
    d = table.to_pydict()
    spk = np.asarray(d["speaker_id"])
    check = centralized_check(
        x, emotion=np.asarray(d["emotion"]), gender=np.asarray(d["gender"]), speakers=spk
    )
    age_group = np.asarray(resolve_attribute("age_group").labels(d["age"]), dtype=object)
    language = np.asarray(d["language"], dtype=object)
    ages = np.asarray(d["age"], dtype=np.float64)
    age_pred = pooled_predictions(x, ages, spk, n_folds=5, regress=True)
    baseline = pooled_predictions(np.zeros((len(ages), 1)), ages, spk, n_folds=5, regress=True)
    by_spk = {s: (g, lang, a) for s, g, lang, a in zip(spk, d["gender"], language, age_group)}
    g, lang, a = (Counter(v[k] for v in by_spk.values()) for k in range(3))
    groups = "/".join(f"{c} {a[c]}" for c in resolve_attribute("age_group").classes)
    return Calibration(
        profile=profile, seed=seed, n_speakers=len(by_spk),
        speakers=f"{g['F']}F/{g['M']}M, L1 {lang['L1']}/L2 {lang['L2']}, {groups}",
        emotion_uar=check.emotion_uar, gender_uar=check.gender_uar,
        age_group_uar=uar(age_group, pooled_predictions(x, age_group, spk, n_folds=5)),
        language_uar=uar(language, pooled_predictions(x, language, spk, n_folds=5)),
        age_mae=float(np.mean(np.abs(age_pred - ages))),
        age_mae_baseline=float(np.mean(np.abs(baseline - ages))),
    )  # fmt: skip


def markdown(results: list[Calibration]) -> str:
    """One row per profile; several seeds shown as 'a / b'."""
    seeds = sorted({r.seed for r in results})
    per = f" (seed {' / '.join(str(s) for s in seeds)})" if len(seeds) > 1 else ""
    lines = [
        f"| profile | speakers (seed {seeds[0]}) | emotion UAR{per} | gender UAR | "
        "age_group UAR | language UAR | age MAE (baseline) |",
        "|---|---|---|---|---|---|---|",
    ]
    for prof in dict.fromkeys(r.profile for r in results):
        rs = sorted((r for r in results if r.profile == prof), key=lambda r: r.seed)

        def join(field: str, rs: list[Calibration] = rs) -> str:
            return " / ".join(f"{getattr(r, field):.3f}" for r in rs)

        mae = " / ".join(f"{r.age_mae:.1f} ({r.age_mae_baseline:.1f})" for r in rs)
        lines.append(
            f"| {prof} | {rs[0].speakers} | {join('emotion_uar')} | {join('gender_uar')} | "
            f"{join('age_group_uar')} | {join('language_uar')} | {mae} |"
        )
    lines.append("chance: emotion 0.25, gender 0.50, age_group 0.33, language 0.50")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sergrad.corpora.calibrate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--profiles", default=",".join(PROFILE_NAMES))
    p.add_argument("--speakers", type=int, default=None, help="default: the profile's")
    p.add_argument("--utterances-per-emotion", type=int, default=None)
    p.add_argument("--seeds", default="0", help="comma-separated, e.g. 0,1")
    args = p.parse_args(argv)
    from sergrad.errors import SergradError

    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        print(f"--seeds {args.seeds!r}: expected integers like 0,1", file=sys.stderr)
        return 2
    results = []
    try:
        for prof in [s.strip() for s in args.profiles.split(",") if s.strip()]:
            for seed in seeds:
                r = calibrate_one(
                    prof, seed=seed, speakers=args.speakers, upe=args.utterances_per_emotion
                )
                print(f"[calibrate] {r}", file=sys.stderr, flush=True)
                results.append(r)
    except SergradError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
