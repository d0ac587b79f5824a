"""Neural heads' model selection, measured side by side in one run on one cache.

    python benchmarks/model_selection.py [CACHE] [--heads jrg,aim,...] [--seeds 5] [--feature F]
                                         [-p HEAD.key=value ...] [--json]

For every head and each selection mode of ``aqa-heads bench --selection`` (``refit``: early stopping
on a validation part of the training rows picks the length, then a refit on every training row;
``early-stopped``: that early-stopped model; ``budget``: no selection, the full budget on every
training row) it prints the test Spearman per seed, mean +- std, and the mean difference of each
mode against ``budget``. No test row is used for any choice. With no CACHE it renders and extracts
the demo data first (``make demo``'s cache, in a temporary folder). Heads train with the demo's
budgets (``aqa.pipelines.demo.DEMO_BUDGET``); ``-p`` overrides single keys. A head whose fits
fail is listed with its errors.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

MODES = ("refit", "early-stopped", "budget")


def _demo_cache(folder: Path) -> Path:
    from aqa.data.synthetic import render_dataset
    from aqa.extract.runner import ExtractConfig, run_extraction
    from aqa.pipelines.demo import DEMO_FLOW

    videos = folder / "videos"
    render_dataset(videos, n=48, kind="single", seed=0, n_frames=40, size=(128, 96))
    cache = folder / "feats.h5"
    run_extraction([videos], cache, ExtractConfig(sampling="jrg", pose="file", flow="tvl1-cpu",
                                                  flow_options=dict(DEMO_FLOW)),
                   labels=videos / "labels.csv", device="cpu")
    return cache


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("cache", nargs="?")
    ap.add_argument("--heads", default="jrg,mlp,aim,siamese,core,fragment")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--feature", default=None, help="default: kin_pose+hof_flow for the demo cache")
    ap.add_argument("-p", "--param", action="append", default=[], help="HEAD.key=value")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from aqa.heads.bench import run_bench
    from aqa.heads.cli import _parse_params
    from aqa.pipelines.demo import DEMO_BUDGET

    heads = [h.strip() for h in args.heads.split(",") if h.strip()]
    params = {h: dict(DEMO_BUDGET.get(h, {})) for h in heads}
    for key, value in _parse_params(args.param).items():
        head, _, name = key.partition(".")
        params.setdefault(head, {})[name] = value
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache) if args.cache else _demo_cache(Path(tmp))
        feature = args.feature or (None if args.cache else "kin_pose+hof_flow")
        per, errors = {}, {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for mode in MODES:
                print(f"selection={mode}", file=sys.stderr, flush=True)
                res = run_bench(cache, heads=heads, seeds=args.seeds, feature=feature,
                                per_action=False, params=params, progress=True, selection=mode)
                for h in heads:
                    per[(h, mode)] = [float(r["spearman"]) for r in res.runs.get((h, "all"), [])]
                    errors.setdefault((h, mode), []).extend(res.head_errors(h))
    rows = []
    for h in heads:
        base = np.mean(per[(h, "budget")]) if per[(h, "budget")] else np.nan
        for mode in MODES:
            v = np.asarray(per[(h, mode)])
            rows.append({"head": h, "mode": mode, "spearman_per_seed": v.round(4).tolist(),
                         "mean": float(v.mean()) if v.size else None,
                         "std": float(v.std()) if v.size else None,
                         "minus_budget": float(v.mean() - base) if v.size else None})
    if args.json:
        print(json.dumps({"cache": str(args.cache or "demo"), "seeds": args.seeds, "rows": rows,
                          "errors": [f"{h} ({m}) {e}" for (h, m), es in errors.items() for e in es]}))
        return 0
    fmt = lambda v, spec: "failed" if v is None or not np.isfinite(v) else format(v, spec)  # noqa: E731
    print(f"test Spearman, {args.seeds} seeds, cache {args.cache or 'demo (48 synthetic dives)'}")
    print(f"{'head':12s} {'mode':14s} {'mean':>7s} {'std':>7s} {'- budget':>9s}  per seed")
    for r in rows:
        print(f"{r['head']:12s} {r['mode']:14s} {fmt(r['mean'], '7.3f'):>7s} {fmt(r['std'], '7.3f'):>7s} "
              f"{fmt(r['minus_budget'], '+9.3f'):>9s}  {r['spearman_per_seed']}")
    for (h, m), es in errors.items():
        for e in es:
            print(f"FAILED {h} ({m}) {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
