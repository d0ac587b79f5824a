"""What the side-by-side benchmark scripts share (not a benchmark): the demo cache, the test
Spearman of bench runs per seed, and its summary and formatting."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

DEMO_NAME = "demo (48 synthetic dives)"


def demo_cache(folder: Path, views=()) -> Path:
    """The demo's 48 synthetic dives (``make demo``'s data) extracted into ``folder/feats.h5``;
    ``views`` (specs) are extracted for the training videos only."""
    from aqa.data.labels import read_labels_csv
    from aqa.data.synthetic import render_dataset
    from aqa.extract.config import ExtractConfig
    from aqa.extract.runner import run_extraction
    from aqa.pipelines.demo import DEMO_FLOW

    videos = folder / "videos"
    render_dataset(videos, n=48, kind="single", seed=0, n_frames=40, size=(128, 96))
    cache = folder / "feats.h5"
    train = {r.video_id for r in read_labels_csv(videos / "labels.csv") if r.split == "train"}
    run_extraction([videos], cache, ExtractConfig(sampling="jrg", pose="file", flow="tvl1-cpu",
                                                  flow_options=dict(DEMO_FLOW)),
                   labels=videos / "labels.csv", device="cpu", views=views, views_for=train)
    return cache


def bench_spearmans(cache, heads, label: str, **bench_kwargs):
    """``run_bench`` over all actions at once, warnings silenced: ``({head: test Spearman per
    seed}, {head: [error, ...]})``; ``label`` is printed to stderr first."""
    from aqa.heads.bench import run_bench

    print(label, file=sys.stderr, flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = run_bench(cache, heads=heads, per_action=False, progress=True, **bench_kwargs)
    return ({h: np.array([float(r["spearman"]) for r in res.runs.get((h, "all"), [])]) for h in heads},
            {h: res.head_errors(h) for h in heads}, res)


def summary(v, base=None) -> dict:
    """Per-seed values, mean, std (None when no seed ran) and, given ``base``, mean - base."""
    v = np.asarray(v, dtype=float)
    out = {"spearman_per_seed": v.round(4).tolist(), "mean": float(v.mean()) if v.size else None,
           "std": float(v.std()) if v.size else None}
    if base is not None:
        out["minus_base"] = float(v.mean() - base) if v.size and np.isfinite(base) else None
    return out


def fmt(v, spec: str = "7.3f") -> str:
    """``v`` formatted, or ``failed`` for a run that produced no number."""
    return "failed" if v is None or not np.isfinite(v) else format(v, spec)
