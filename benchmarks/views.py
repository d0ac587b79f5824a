"""Training on augmented views or not, side by side in one run on one cache.

    python benchmarks/views.py [CACHE] [--heads jrg,fragment,siamese] [--views paper]
                               [--seeds 5] [--feature F] [--json]

For each head: the bench (``aqa-heads bench``: model selection on the training rows only, the
head's defaults) once on the source training videos and once
with the views added to them (``--views``: ``paper`` = each head's paper's own, or specs such as
``flip``), same seeds; it prints the test Spearman per seed, mean +- std and the paired difference.
With no CACHE it renders the demo data and extracts it with the views of every head's paper
(flip, shift:1-5, zoom:1.2, bright:0.8, bright:1.2, histeq, mask, drop:0.1) for the training
videos.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("cache", nargs="?")
    ap.add_argument("--heads", default="jrg,fragment,siamese")
    ap.add_argument("--views", default="paper")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--feature", default=None, help="default: kin_pose+hof_flow for the demo cache")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchkit import DEMO_NAME, bench_spearmans, demo_cache, fmt, summary
    from aqa.heads.registry import accepts_views, resolve_heads
    from aqa.pipelines.recipes import recipe_views

    heads = resolve_heads([h.strip() for h in args.heads.split(",") if h.strip()])
    refused = [h for h in heads if not accepts_views(h)]
    if refused:
        print(f"skipped, they do not train on views: {', '.join(refused)}", file=sys.stderr)
    heads = [h for h in heads if h not in refused]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.cache:
            cache = Path(args.cache)
        else:
            specs = [v.name for v in recipe_views(heads, args.views)]
            print(f"demo cache with views {specs} of the training videos", file=sys.stderr)
            cache = demo_cache(Path(tmp), views=specs)
        feature = args.feature or (None if args.cache else "kin_pose+hof_flow")
        for head in heads:
            kw = dict(seeds=args.seeds, feature=feature, params={head: {}})
            src, src_err, _ = bench_spearmans(cache, [head], f"{head}: sources", **kw)
            aug, aug_err, res = bench_spearmans(cache, [head], f"{head}: views", views={head: args.views},
                                                **kw)
            s, v = src[head], aug[head]
            d = v - s if len(v) == len(s) else np.array([])
            rows.append({"head": head, "views": res.setup["views"].get(head, []),
                         "sources": summary(s), "with_views": summary(v),
                         "paired_difference": summary(d),
                         "views_better_in": int((d > 0).sum()) if d.size else None,
                         "errors": {"sources": src_err[head], "views": aug_err[head]}})
    if args.json:
        print(json.dumps({"cache": str(args.cache or "demo"), "seeds": args.seeds, "rows": rows}))
        return 0
    print(f"test Spearman, {args.seeds} seeds, cache {args.cache or DEMO_NAME}, --views {args.views}")
    print(f"{'head':10s} {'sources':>16s} {'with views':>16s} {'views - src':>16s} {'better':>7s}  views")
    pm = lambda r: f"{fmt(r['mean'])} +- {fmt(r['std'], '.3f')}"  # noqa: E731
    for r in rows:
        print(f"{r['head']:10s} {pm(r['sources']):>16s} {pm(r['with_views']):>16s} "
              f"{pm(r['paired_difference']):>16s} {r['views_better_in']!s:>3s}/{args.seeds}  "
              f"{','.join(r['views']) or 'none'}")
        for arm, errs in r["errors"].items():
            for e in errs:
                print(f"  FAILED ({arm}) {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
