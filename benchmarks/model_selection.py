"""Neural heads' model selection, measured side by side in one run on one cache.

    python benchmarks/model_selection.py [CACHE] [--heads jrg,aim,...] [--seeds 5] [--feature F]
                                         [-p HEAD.key=value ...] [--json]

For every head and each selection mode of ``aqa-heads bench --selection`` (``refit``: early stopping
on a validation part of the training rows picks the length, then a refit on every training row;
``early-stopped``: that early-stopped model; ``budget``: no selection, the full budget on every
training row) it prints the test Spearman per seed, mean +- std, and the mean difference of each
mode against ``budget``. No test row is used for any choice. With no CACHE it renders and extracts
the demo data first (``make demo``'s cache, in a temporary folder). Heads train with their
defaults; ``-p`` overrides single keys. A head whose fits
fail is listed with its errors.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

MODES = ("refit", "early-stopped", "budget")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("cache", nargs="?")
    ap.add_argument("--heads", default="jrg,mlp,aim,siamese,core,fragment")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--feature", default=None, help="default: kin_pose+hof_flow for the demo cache")
    ap.add_argument("-p", "--param", action="append", default=[], help="HEAD.key=value")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchkit import DEMO_NAME, bench_spearmans, demo_cache, fmt, summary
    from aqa.heads.presets import parse_params

    heads = [h.strip() for h in args.heads.split(",") if h.strip()]
    params = {h: {} for h in heads}
    for key, value in parse_params(args.param).items():
        head, _, name = key.partition(".")
        params.setdefault(head, {})[name] = value
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache) if args.cache else demo_cache(Path(tmp))
        feature = args.feature or (None if args.cache else "kin_pose+hof_flow")
        per, errors = {}, {}
        for mode in MODES:
            got, errs, _ = bench_spearmans(cache, heads, f"selection={mode}", seeds=args.seeds,
                                           feature=feature, params=params, selection=mode)
            for h in heads:
                per[(h, mode)], errors[(h, mode)] = got[h], errs[h]
    rows = []
    for h in heads:
        base = per[(h, "budget")].mean() if per[(h, "budget")].size else np.nan
        for mode in MODES:
            r = summary(per[(h, mode)], base)
            r["minus_budget"] = r.pop("minus_base")
            rows.append({"head": h, "mode": mode, **r})
    if args.json:
        print(json.dumps({"cache": str(args.cache or "demo"), "seeds": args.seeds, "rows": rows,
                          "errors": [f"{h} ({m}) {e}" for (h, m), es in errors.items() for e in es]}))
        return 0
    print(f"test Spearman, {args.seeds} seeds, cache {args.cache or DEMO_NAME}")
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
