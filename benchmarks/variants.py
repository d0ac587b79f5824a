"""Variants of one head's parameters, measured side by side in one run on one cache.

    python benchmarks/variants.py HEAD [CACHE] --variant NAME:key=value[,key=value...] [...]
                                  [--seeds 5] [--feature F] [--selection refit] [--json]

Each variant is the head with its defaults plus its own keys; a variant named ``default`` with no keys is always run first. It prints the test Spearman per
seed, mean +- std and the mean difference to ``default``, from ``aqa-heads bench`` fits (model
selection on the training rows only). With no CACHE it renders and extracts the demo data first.

Example, the regularisers' units of JRG (its default is the paper's "percent")::

    python benchmarks/variants.py jrg --variant normalized:reg_units=normalized
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np


def _variant(text: str) -> tuple[str, dict]:
    from aqa.heads.presets import parse_params
    name, sep, keys = text.partition(":")
    if not name or not sep:
        raise argparse.ArgumentTypeError(f"expected NAME:key=value[,key=value], got {text!r}")
    return name, parse_params([k for k in keys.split(",") if k])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("head")
    ap.add_argument("cache", nargs="?")
    ap.add_argument("--variant", action="append", type=_variant, default=[], required=True)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--feature", default=None, help="default: kin_pose+hof_flow for the demo cache")
    ap.add_argument("--selection", default="refit")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchkit import DEMO_NAME, bench_spearmans, demo_cache, fmt, summary

    variants = [("default", {})] + [v for v in args.variant if v[0] != "default"]
    per, errors = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache) if args.cache else demo_cache(Path(tmp))
        feature = args.feature or (None if args.cache else "kin_pose+hof_flow")
        for name, keys in variants:
            params = {args.head: dict(keys)}
            got, errs, _ = bench_spearmans(cache, [args.head], f"{args.head} {name} {keys}",
                                           seeds=args.seeds, feature=feature, params=params,
                                           selection=args.selection)
            per[name], errors[name] = got[args.head], errs[args.head]
    base = per["default"].mean() if per["default"].size else np.nan
    rows = []
    for name, keys in variants:
        r = summary(per[name], base)
        r["minus_default"] = r.pop("minus_base")
        rows.append({"variant": name, "params": keys, **r, "errors": errors[name]})
    if args.json:
        print(json.dumps({"head": args.head, "cache": str(args.cache or "demo"), "seeds": args.seeds,
                          "rows": rows}))
        return 0
    print(f"{args.head}: test Spearman, {args.seeds} seeds, cache {args.cache or DEMO_NAME}")
    print(f"{'variant':14s} {'mean':>7s} {'std':>7s} {'- default':>10s}  per seed   params")
    for r in rows:
        print(f"{r['variant']:14s} {fmt(r['mean'], '7.3f'):>7s} {fmt(r['std'], '7.3f'):>7s} "
              f"{fmt(r['minus_default'], '+10.3f'):>10s}  {r['spearman_per_seed']}  {r['params']}")
        for e in r["errors"]:
            print(f"  FAILED {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
