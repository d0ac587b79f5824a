"""The neural heads' settings against a Ridge on temporal statistics, on one synthetic cache.

    python benchmarks/neural_defaults.py CACHE --heads jrg,mlp --n-train 80,320 --seeds 3 \\
        [--evaluate dev|test] [--variant HEAD:NAME:key=value,...] [--no-default] [--preset paper]
        [--json]

CACHE is an ``aqa-data synth`` cache of at least ``--n-test`` + max(n_train) videos (their own
train/test split is ignored). A seeded shuffle of its videos (seed 0, fixed) puts the first
``--n-test`` aside as *test* rows; the next ones form the training pool: a run with ``n_train``
takes the first ``n_train`` rows of the pool, so the sets are nested. ``--evaluate dev`` scores on
the ``--n-test`` pool rows right after the largest training set instead (needs
``2 * n_test + max(n_train)`` videos), so settings are chosen without ever reading a test row;
``--evaluate test`` gives the report's numbers. Its shuffle is not ``heads_vs_baseline.py``'s, so on
the same ``aqa-data synth`` videos its rows may be that benchmark's test rows: choose settings on
another synthetic set (``heads_vs_baseline.py --synth-seed 1``, or a cache rendered with another seed).

Each head is fitted as ``aqa-heads bench`` fits it (its default selection: early stopping on a
validation part of the training rows, then the refit) with its default parameters, the
``--preset``'s or a ``--variant``'s, and timed (fit CPU seconds, selection and refit together, with ``OMP_NUM_THREADS=1``).
The baseline row ``stats-ridge``: per-video mean, std, max and min over the steps of the
whole-scene and per-joint features -> StandardScaler -> RidgeCV (alphas 1e-2..1e4, chosen by
leave-one-out on the training rows); ``stats-ridge / whole-scene only`` is the same on the
whole-scene features alone, the input of the heads that read per-step whole-scene features.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np

FEATURE = "kin_pose+hof_flow"


def _variant(text: str) -> tuple[str, str, dict]:
    from aqa.heads.presets import parse_params
    head, _, rest = text.partition(":")
    name, sep, keys = rest.partition(":")
    if not head or not name or not sep:
        raise argparse.ArgumentTypeError(f"expected HEAD:NAME:key=value[,key=value], got {text!r}")
    return head, name, parse_params([k for k in keys.split(",") if k])


def split_rows(rows, n_test: int, n_train: int, evaluate: str):
    """(training rows, evaluation rows): see the module docstring."""
    order = np.random.RandomState(0).permutation(len(rows))
    rows = [rows[i] for i in order]
    test, pool = rows[:n_test], rows[n_test:]
    if evaluate == "test":
        return pool[:n_train], test
    return pool[:n_train], pool[len(pool) - n_test:]


def stats_ridge(reader, tr, te, feature=FEATURE, inputs="jrg") -> np.ndarray:
    """The baseline: temporal statistics -> StandardScaler -> RidgeCV; predictions of ``te``.
    ``inputs="jrg"``: whole-scene and per-joint features; ``"mlp"``: whole-scene ones only (what
    the heads on the ``steps`` input see)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from aqa.heads.dataset import build_inputs

    def stats(rows):
        X = build_inputs(inputs, reader, [r.video_id for r in rows], feature)   # (n, S, [1+J,] D)
        X = X.reshape(len(rows), X.shape[1], -1)
        return np.concatenate([X.mean(1), X.std(1), X.max(1), X.min(1)], axis=1)
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
    model.fit(stats(tr), np.array([r.score for r in tr]))
    return model.predict(stats(te))


def run(cache, heads, n_trains, seeds, n_test, evaluate, variants, preset, with_default=True):
    from aqa.data.cache import CacheReader
    from aqa.heads.bench import _fit_predict
    from aqa.heads.metrics import spearman
    from aqa.heads.presets import preset_params

    out = []
    with CacheReader(cache) as reader:
        rows = [r for r in reader.labels() if np.isfinite(r.score)]
        need = n_test * (2 if evaluate == "dev" else 1) + max(n_trains)
        if len(rows) < need:
            raise SystemExit(f"{cache} has {len(rows)} labelled videos; --evaluate {evaluate} with "
                             f"n_train up to {max(n_trains)} and {n_test} evaluation rows needs {need}")
        for n in n_trains:
            tr, te = split_rows(rows, n_test, n, evaluate)
            y = np.array([r.score for r in te])
            for variant, inputs in (("baseline", "jrg"), ("whole-scene only", "mlp")):
                t0, c0 = time.perf_counter(), time.process_time()
                rho = spearman(y, stats_ridge(reader, tr, te, inputs=inputs))
                out.append({"head": "stats-ridge", "variant": variant, "n_train": n, "seed": 0,
                            "spearman": float(rho), "fit_s": time.perf_counter() - t0,
                            "cpu_s": time.process_time() - c0})
                print(f"n={n} stats-ridge {variant} {rho:.3f}", file=sys.stderr, flush=True)
            for head in heads:
                runs = [("default", dict(preset_params(head, preset)) if preset else {})]
                runs += [(name, {**runs[0][1], **keys}) for h, name, keys in variants if h == head]
                runs = runs if with_default else runs[1:]
                for name, params in runs:
                    for seed in range(seeds):
                        t0, c0 = time.perf_counter(), time.process_time()
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            pred, sel = _fit_predict(head, reader, tr, te, FEATURE, seed, {head: params})
                        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
                        rho = spearman(y, pred) if np.ptp(pred) > 0 else float("nan")
                        out.append({"head": head, "variant": name, "params": params, "n_train": n,
                                    "seed": seed, "spearman": float(rho), "fit_s": dt, "cpu_s": cpu,
                                    "best_iteration": sel.get("best_iteration")})
                        print(f"n={n} {head} {name} seed {seed}: {rho:.3f} in {dt:.0f} s "
                              f"({cpu:.0f} CPU s; best iteration {sel.get('best_iteration')})", file=sys.stderr, flush=True)
    return out


def table(results) -> str:
    """Markdown: mean +- std Spearman and mean fit CPU seconds per (head, variant) and n_train, with
    the difference to stats-ridge. CPU seconds (one thread, ``OMP_NUM_THREADS=1``) are what a fit
    costs on a free core; wall seconds on a shared machine are in the JSON."""
    ns = sorted({r["n_train"] for r in results})
    keys = list(dict.fromkeys((r["head"], r["variant"]) for r in results))
    lines = ["| head | variant | " + " | ".join(f"n={n}: Spearman (- ridge), fit CPU s" for n in ns) + " |",
             "|---|---|" + "---|" * len(ns)]
    ridge = {n: np.mean([r["spearman"] for r in results if r["head"] == "stats-ridge"
                         and r["variant"] == "baseline" and r["n_train"] == n]) for n in ns}
    for head, var in keys:
        cells = []
        for n in ns:
            rs = [r for r in results if (r["head"], r["variant"], r["n_train"]) == (head, var, n)]
            if not rs:
                cells.append("")
                continue
            v = np.array([r["spearman"] for r in rs])
            cells.append(f"{np.nanmean(v):.3f} +- {np.nanstd(v):.3f} ({np.nanmean(v) - ridge[n]:+.3f}), "
                         f"{np.mean([r['cpu_s'] for r in rs]):.0f}")
        lines.append(f"| {head} | {var} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("cache")
    ap.add_argument("--heads", default="jrg,mlp,aim,siamese,core,fragment")
    ap.add_argument("--n-train", default="80,320")
    ap.add_argument("--n-test", type=int, default=80)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--evaluate", choices=["dev", "test"], default="dev")
    ap.add_argument("--variant", action="append", type=_variant, default=[])
    ap.add_argument("--preset", default=None, help="start every head from this preset (e.g. paper)")
    ap.add_argument("--no-default", action="store_true", help="only the --variant runs")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    heads = [h for h in args.heads.split(",") if h]
    res = run(args.cache, heads, [int(v) for v in args.n_train.split(",")], args.seeds, args.n_test,
              args.evaluate, args.variant, args.preset, not args.no_default)
    print(json.dumps(res) if args.json else
          f"{args.evaluate} Spearman over {args.seeds} seed(s), {args.n_test} {args.evaluate} rows, "
          f"feature {FEATURE}, cache {args.cache}\n\n" + table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
