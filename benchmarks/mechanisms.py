"""The head mechanism scenarios (AIM, CoRe, ranking loss, Siamese), measured: test Spearman per
seed of each head and its baseline/ablation, side by side in one run.

    python benchmarks/mechanisms.py [--only aim_same_domain,aim_other_domain,core,ranking,siamese] [--json]

The scenarios (data, budgets, seeds 0/1/2) are those of ``tests/test_mechanisms.py``, which asserts
margins on these same numbers; this script prints them, with each comparison's mean gain.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

#: scenario -> (measure function name, (head, baseline) pairs whose gain is printed)
SCENARIOS = {
    "aim_same_domain": ("measure_aim_same_domain", [("aim", "concat"), ("aim", "no_transform")]),
    "aim_other_domain": ("measure_aim_other_domain", [("aim", "no_transform")]),
    "core": ("measure_core", [("core", "mlp_dd"), ("core", "core_no_class")]),
    "ranking": ("measure_ranking", [("mse+rank", "mse")]),
    "siamese": ("measure_siamese", [("expert", "constant")]),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", default=",".join(SCENARIOS))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        ap.error(f"unknown scenario(s) {unknown}; one of {sorted(SCENARIOS)}")
    import test_mechanisms as scenarios
    from tqdm.auto import tqdm

    out = {}
    for name in tqdm(names, desc="scenarios", file=sys.stderr):
        fn, pairs = SCENARIOS[name]
        r = getattr(scenarios, fn)()
        out[name] = {"spearman": {k: np.round(v, 3).tolist() for k, v in r.items()},
                     "mean_gain": {f"{a} - {b}": round(float((r[a] - r[b]).mean()), 3) for a, b in pairs}}
    if args.json:
        print(json.dumps(out))
        return 0
    for name, res in out.items():
        print(f"{name}:")
        for k, v in res["spearman"].items():
            print(f"  {k:14s} {' / '.join(f'{x:.3f}' for x in v)}")
        for k, g in res["mean_gain"].items():
            print(f"  mean gain {k}: {g:+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
