"""Which temporal statistics earn their place in the stats-ridge baseline, measured on training
rows only.

On the caches that ``benchmarks/heads_vs_baseline.py`` builds (``--out`` of that script), the
fixed test draw is set aside and never read; the remaining training pool of each kind is split
into ``--folds`` folds (seeded), and each variant of :class:`aqa.heads.baselines.TemporalStats`
(the statistics taken, the number of low-frequency DCT coefficients) feeds StandardScaler ->
RidgeCV as in ``stats-ridge``. Reported: mean ± std over folds of the validation Spearman.

A second table takes ``stats-ridge`` as it is over parts of its input, to measure where a kind's
signal lives and so what a head that reads only that part can reach: the whole-scene steps alone
(what ``mlp``, ``siamese``, ``core``, ``fragment``, ``c3d-svr`` and ``i3d-svr`` read of a backbone
family; of ``kin_pose`` they read whole-scene and joints, as ``stats-ridge``:
:data:`aqa.heads.inputs.JOINTS_IN_STEPS`), their mean over the steps (what ``core``, ``c3d-svr``
and ``i3d-svr`` keep of them), the joint steps alone, and the joint steps averaged over the joints
first (what JRG's mean pooling over joints, its eqs. 2 and 4, keeps).

``--n-fit 40,80,160`` measures the variants at small training sizes instead of the folds: for each
size, ``--draws`` seeded draws of that many videos from the pool are fitted and the rest of the pool
is the validation set (the neural heads' stats anchor takes its DCT coefficients from this:
:data:`aqa.heads.anchor.ANCHOR_DCT`).

    python benchmarks/heads_vs_baseline.py --n-train 320 --seeds 1 --heads stats-ridge --out hvb_out
    python benchmarks/temporal_stats.py --out hvb_out
    python benchmarks/temporal_stats.py --out dev --features kin_pose --n-fit 40,80,160
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

VARIANTS = {
    "mean": {"stats": ("mean",)},
    "mean, std": {"stats": ("mean", "std")},
    "mean, std, max, min": {},
    "mean, std, max, min + dct 2": {"n_dct": 2},
    "mean, std, max, min + dct 3": {"n_dct": 3},
    "mean, std, max, min + dct 4": {"n_dct": 4},
    "mean, std, max, min + dct 8": {"n_dct": 8},
}


INPUTS = ("whole-scene and joints", "whole-scene only", "whole-scene mean over steps", "joints only",
          "joints averaged over joints")


def input_parts(reader, ids, features: str) -> dict[str, np.ndarray]:
    """The (n, S, D) step inputs of :data:`INPUTS` over ``ids``, every family of ``features``
    side by side."""
    from aqa.heads.baselines import stats_inputs
    from aqa.heads.inputs import families_with_joints
    whole, joints, pooled = [], [], []
    for fam in features.split("+"):
        whole.append(reader.load(fam, ids, part="whole"))
        if families_with_joints(reader, [fam]):
            j = reader.load(fam, ids, part="joints")                       # (n, S, J, Dj)
            joints.append(j.reshape(j.shape[0], j.shape[1], -1))
            with np.errstate(all="ignore"):
                pooled.append(np.nanmean(j, axis=2))                       # a missing joint is skipped
    cat = lambda parts: np.concatenate(parts, axis=2).astype(np.float32)  # noqa: E731
    out = {"whole-scene and joints": stats_inputs(reader, ids, features), "whole-scene only": cat(whole),
           "whole-scene mean over steps": cat(whole).mean(axis=1)}    # (n, Dw): one step
    if joints:
        out["joints only"] = cat(joints)
        out["joints averaged over joints"] = cat(pooled)
    return out


def splits(n_rows: int, n_fit: int | None, folds: int, draws: int) -> list:
    """(fit, validation) row indices: ``folds`` seeded folds, or with ``n_fit`` ``draws`` seeded
    draws of ``n_fit`` fitting rows, the other rows validating."""
    from sklearn.model_selection import KFold
    if n_fit is None:
        return list(KFold(folds, shuffle=True, random_state=0).split(np.arange(n_rows)))
    orders = (np.random.default_rng(seed).permutation(n_rows) for seed in range(draws))
    return [(o[:n_fit], o[n_fit:]) for o in orders]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="heads_vs_baseline_out", help="heads_vs_baseline.py's work folder")
    ap.add_argument("--kinds", default="single,sync,coordination")
    ap.add_argument("--features", default="kin_pose+hof_flow")
    ap.add_argument("--n-test", type=int, default=80, help="the test draw to set aside (as there)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--n-fit", default="", help="comma-separated training sizes: seeded draws of the "
                                                "pool instead of the folds (variants only)")
    ap.add_argument("--draws", type=int, default=5, help="draws per --n-fit size")
    args = ap.parse_args(argv)
    sizes = [int(v) for v in args.n_fit.split(",") if v] or [None]

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from heads_vs_baseline import split_rows

    from aqa.data.cache import CacheReader
    from aqa.heads import registry
    from aqa.heads.dataset import build_inputs
    from aqa.heads.metrics import spearman

    def validation(X, y, parts, params) -> tuple[float, float]:
        scores = [spearman(y[val], registry.make("stats-ridge", **params).fit(X[fit], y[fit]).predict(X[val]))
                  for fit, val in parts]
        return float(np.mean(scores)), float(np.std(scores, ddof=1))

    kinds = [k for k in args.kinds.split(",") if k]
    cols = [(k, n) for k in kinds for n in sizes]
    table = {}
    for kind in kinds:
        name = "kin_pose.h5" if args.features == "kin_pose" else "feats.h5"
        cache = Path(args.out) / kind / name
        if not cache.is_file():
            print(f"{cache}: not there; run benchmarks/heads_vs_baseline.py --out {args.out} first",
                  file=sys.stderr)
            return 1
        with CacheReader(cache) as r:
            rows = [x for x in r.labels() if math.isfinite(x.score)]
            pool = [x for x in split_rows(rows, len(rows) - args.n_test, args.n_test, 0)
                    if x.split == "train"]
            X = build_inputs("stats-ridge", r, [x.video_id for x in pool], args.features)
            inputs = input_parts(r, [x.video_id for x in pool], args.features) if sizes == [None] else {}
        y = np.array([x.score for x in pool])
        for n in sizes:
            if n is not None and n >= len(pool):
                print(f"{kind}: --n-fit {n} leaves no validation rows in a pool of {len(pool)}",
                      file=sys.stderr)
                return 1
            parts = splits(len(pool), n, args.folds, args.draws)
            for label, part in inputs.items():
                table[(label, kind, n)] = validation(part, y, parts, {})
            for label, params in VARIANTS.items():
                table[(label, kind, n)] = validation(X, y, parts, params)
                print(f"{kind}{'' if n is None else f' n={n}'} {label}: {table[(label, kind, n)][0]:.3f}",
                      file=sys.stderr, flush=True)
    how = (f"{args.folds}-fold validation Spearman on the training pool" if sizes == [None] else
           f"validation Spearman over {args.draws} draws of n training videos from the pool, the rest "
           "of the pool validating")
    head = " | ".join(k if n is None else f"{k} n={n}" for k, n in cols)

    def rows_of(labels) -> list[str]:
        cell = "{:.3f} ± {:.3f}".format
        return [f"| {label} | " + " | ".join(cell(*table[(label, k, n)]) for k, n in cols) + " |"
                for label in labels]

    lines = [f"# TemporalStats variants in stats-ridge: {how} ({args.features}; the {args.n_test} test "
             "videos set aside)", "", f"| statistics | {head} |", "|---|" + "---|" * len(cols),
             *rows_of(VARIANTS)]
    if sizes == [None]:
        lines += ["", "stats-ridge over a part of its input (same folds):", "",
                  f"| input | {head} |", "|---|" + "---|" * len(cols), *rows_of(INPUTS)]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
