"""`aqa-heads bench`: every head on one cache and one split, over several seeds, honestly.

Protocol per action (or per task, for JIGSAWS):

* ``split`` protocol: train on the rows whose split is ``train_split``, test on ``test_split``;
  ``folds`` protocol (JIGSAWS): for each fold k, train on the other folds, test on fold k, and
  average the per-fold Spearman (as USDL and CoRe report it).
* Model selection never sees the test rows: neural heads stop early on a validation fraction they
  carve from their training rows; heads with a small hyper-parameter grid (:data:`GRIDS`) pick the
  setting with the best Spearman on a seeded 20% validation split of the training rows, then refit
  on all training rows.
* Spearman, R-l2 (CoRe's definition, per-action score range of the ground truth) and MSE per action,
  mean +- std over seeds, and the Fisher-z average of Spearman over the actions.

The report states what it stands on: the cache's provenance (feature family, checkpoint hashes or
UNTRAINED, pose backend, sampling), the split, the seeds, and the published figure of each method
on the named benchmark (:mod:`aqa.heads.published`) next to ours.
"""
from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

#: small grids searched on a validation split carved from the training rows
GRIDS: dict[str, dict[str, list]] = {
    "c3d-svr": {"C": [0.1, 1.0, 10.0, 100.0]},
    "i3d-svr": {"C": [0.1, 1.0, 10.0, 100.0]},
    "pose-dct-svr": {"C": [0.1, 1.0, 10.0, 100.0]},
}


@dataclass
class BenchResult:
    heads: list[str]
    actions: list[str]
    seeds: list[int]
    #: (head, action) -> list over seeds of {"spearman", "r_l2", "mse"}
    runs: dict = field(default_factory=dict)
    #: (head, action) -> (y_true, y_pred) of the first seed, for plots
    predictions: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)          # head -> error message
    provenance: dict = field(default_factory=dict)
    setup: dict = field(default_factory=dict)

    def summary(self, head: str, action: str) -> dict:
        from .metrics import summarize_seeds
        runs = self.runs.get((head, action))
        return summarize_seeds(runs) if runs else {}

    def fisher_z(self, head: str) -> tuple[float, float]:
        """Fisher-z average over actions of the per-seed Spearman; mean and std over seeds."""
        from .metrics import fisher_z_average
        per_seed = []
        for i in range(len(self.seeds)):
            rhos = [self.runs[(head, a)][i]["spearman"] for a in self.actions
                    if (head, a) in self.runs and len(self.runs[(head, a)]) > i]
            if rhos:
                per_seed.append(fisher_z_average(rhos))
        if not per_seed:
            return math.nan, math.nan
        return float(np.nanmean(per_seed)), float(np.nanstd(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0


def _nanmean(values) -> float:
    """Mean over folds ignoring NaN (an undefined per-fold Spearman); NaN if all are NaN."""
    v = np.asarray(values, dtype=float)
    return float(v[np.isfinite(v)].mean()) if np.isfinite(v).any() else math.nan


def _fold_plan(rows, protocol: str, train_split: str, test_split: str):
    """[(name, train_rows, test_rows)] for one action."""
    if protocol == "split":
        tr = [r for r in rows if r.split in set(train_split.split(","))]
        te = [r for r in rows if r.split in set(test_split.split(","))]
        return [("split", tr, te)] if tr and te else []
    folds = sorted({r.split for r in rows if r.split.startswith("fold")})
    if len(folds) < 2:
        raise ValueError(f"protocol 'folds' needs split values fold0..foldK; found {sorted({r.split for r in rows})}")
    return [(f, [r for r in rows if r.split != f and r.split in folds], [r for r in rows if r.split == f])
            for f in folds]


def _fit_predict(head, reader, tr, te, feature, seed, params):
    from . import registry
    from .cli import _extras
    from .inputs import build_inputs
    from .metrics import spearman

    Xtr = build_inputs(head, reader, [r.video_id for r in tr], feature)
    Xte = build_inputs(head, reader, [r.video_id for r in te], feature)
    ytr = np.array([r.score for r in tr])
    base = {"random_state": seed, **params.get(head, {})}
    grid = GRIDS.get(head)
    if grid and len(tr) >= 10:
        # model selection on a validation split carved from the training rows only
        rng = np.random.RandomState(seed)
        perm = rng.permutation(len(tr))
        n_val = max(2, len(tr) // 5)
        val, fit = perm[:n_val], perm[n_val:]
        key = next(iter(grid))
        scores = []
        for v in grid[key]:
            est = registry.make(head, **{**base, key: v})
            est.fit(Xtr[fit], ytr[fit], **_extras(est, [tr[i] for i in fit]))
            p = est.predict(Xtr[val], **_extras(est, [tr[i] for i in val], predict=True))
            s = spearman(ytr[val], p) if np.ptp(p) > 0 else -1.0
            scores.append(-1.0 if not np.isfinite(s) else s)
        base[key] = grid[key][int(np.argmax(scores))]
    est = registry.make(head, **base)
    est.fit(Xtr, ytr, **_extras(est, tr))
    return np.asarray(est.predict(Xte, **_extras(est, te, predict=True)), dtype=float)


def run_bench(cache, labels=None, heads: Sequence[str] | str = "all", seeds: int | Sequence[int] = 5,
              feature: str | None = None, protocol: str = "split", train_split: str = "train",
              test_split: str = "test", per_action: bool = True, params: dict | None = None,
              benchmark: str | None = None, progress: bool = True) -> BenchResult:
    """Train and test every head on one cache; see the module docstring."""
    from tqdm.auto import tqdm

    from aqa.data.cache import CacheReader
    from . import registry
    from .cli import load_rows
    from .inputs import default_feature
    from .metrics import mse, relative_l2, spearman

    names = registry.names() if heads in ("all", ["all"], ("all",)) else list(
        heads.split(",") if isinstance(heads, str) else heads)
    for h in names:
        registry.get(h)  # unknown names fail before any training
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if protocol not in ("split", "folds"):
        raise ValueError(f"protocol must be 'split' or 'folds', not {protocol!r}")
    params = params or {}
    with CacheReader(cache) as r:
        ids = set(r.video_ids())
        rows = [x for x in load_rows(r, labels) if x.video_id in ids and math.isfinite(x.score)]
        if not rows:
            raise ValueError(f"no labelled videos of {cache} are in the cache")
        feature = feature or default_feature(r)
        prov = r.provenance()
        actions = sorted({x.action for x in rows}) if per_action else ["all"]
        res = BenchResult(heads=names, actions=actions, seeds=seeds, provenance=prov,
                          setup={"cache": str(cache), "feature": feature, "protocol": protocol,
                                 "train_split": train_split, "test_split": test_split,
                                 "benchmark": benchmark, "n_videos": len(rows)})
        jobs = [(h, a) for h in names for a in actions]
        bar = tqdm(total=len(jobs) * len(seeds), desc="bench", unit="fit", disable=not progress)
        for head, action in jobs:
            arows = rows if action == "all" else [x for x in rows if x.action == action]
            plan = _fold_plan(arows, protocol, train_split, test_split)
            if not plan:
                res.errors.setdefault(head, f"action {action!r}: empty train or test split")
                bar.update(len(seeds))
                continue
            lo = min(x.score for x in arows)
            hi = max(x.score for x in arows)
            for seed in seeds:
                bar.set_postfix_str(f"{head}/{action}/seed {seed}")
                try:
                    t0 = time.perf_counter()
                    per_fold, all_true, all_pred = [], [], []
                    for _, tr, te in plan:
                        pred = _fit_predict(head, r, tr, te, feature, seed, params)
                        y = np.array([x.score for x in te])
                        per_fold.append({"spearman": spearman(y, pred),
                                         "r_l2": relative_l2(y, pred, lo, hi), "mse": mse(y, pred)})
                        all_true.append(y)
                        all_pred.append(pred)
                    run = {k: _nanmean([f[k] for f in per_fold]) for k in per_fold[0]}
                    run["seconds"] = time.perf_counter() - t0
                    res.runs.setdefault((head, action), []).append(run)
                    if seed == seeds[0]:
                        res.predictions[(head, action)] = (np.concatenate(all_true),
                                                           np.concatenate(all_pred))
                except Exception as e:  # noqa: BLE001 - one head failing must not sink the table
                    res.errors[head] = f"{type(e).__name__}: {e}"
                bar.update(1)
        bar.close()
    return res


# ------------------------------------------------------------------------------- reporting
def _fmt(mean, std, digits=4):
    if mean is None or not np.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if np.isfinite(std) else f"{mean:.{digits}f}"


def provenance_lines(res: BenchResult) -> list[str]:
    prov, setup = res.provenance, res.setup
    cfg = prov.get("config", {})
    weights = prov.get("weights", {})
    w = ", ".join(f"{k}={v[:12]}" for k, v in sorted(weights.items())) or "none (weight-free features)"
    lines = [f"cache: {setup['cache']} ({setup['n_videos']} labelled videos)",
             f"features: {setup['feature']}; pose: {cfg.get('pose', '?')}; sampling: "
             f"{cfg.get('sampling', '?')} {cfg.get('sampling_options') or ''}; flow: {cfg.get('flow', '?')}",
             f"weights: {w}",
             f"protocol: {setup['protocol']} (train={setup['train_split']!r}, test={setup['test_split']!r}); "
             f"seeds: {res.seeds}; model selection on a validation split of the training rows"]
    if setup.get("training_budget"):
        lines.append(f"training budget: {setup['training_budget']}")
    if prov.get("untrained"):
        lines.insert(0, "WARNING: UNTRAINED backbone features (random weights): these numbers say "
                        "nothing about the published methods")
    return lines


def rows_for_table(res: BenchResult) -> list[dict]:
    from .published import published
    bm = res.setup.get("benchmark")
    out = []
    for action in res.actions + (["fisher_z_avg"] if len(res.actions) > 1 else []):
        for head in res.heads:
            if action == "fisher_z_avg":
                m, s = res.fisher_z(head)
                row = {"action": action, "head": head, "spearman": m, "spearman_std": s}
                for k in ("r_l2", "mse"):
                    vals = [res.summary(head, a).get(k, {}).get("mean", math.nan) for a in res.actions]
                    row[k] = float(np.nanmean(vals)) if np.isfinite(vals).any() else math.nan
                    row[f"{k}_std"] = math.nan
                pub, src = published(bm, head, "avg")
            else:
                summ = res.summary(head, action)
                row = {"action": action, "head": head}
                for k in ("spearman", "r_l2", "mse"):
                    row[k] = summ.get(k, {}).get("mean", math.nan)
                    row[f"{k}_std"] = summ.get(k, {}).get("std", math.nan)
                pub, src = published(bm, head, action if len(res.actions) > 1 else "avg")
            row["published_spearman"] = pub if pub is not None else math.nan
            row["published_source"] = src or ""
            row["error"] = res.errors.get(head, "")
            out.append(row)
    return out


def to_markdown(res: BenchResult) -> str:
    buf = io.StringIO()
    buf.write("# aqa-heads bench\n\n")
    for line in provenance_lines(res):
        buf.write(f"- {line}\n")
    table = rows_for_table(res)
    for action in dict.fromkeys(r["action"] for r in table):
        title = "Fisher-z average over actions" if action == "fisher_z_avg" else f"action: {action}"
        buf.write(f"\n## {title}\n\n| head | Spearman | R-l2 (x100) | MSE | published Spearman |\n"
                  "|---|---|---|---|---|\n")
        for r in (x for x in table if x["action"] == action):
            pub = "" if not np.isfinite(r["published_spearman"]) else f"{r['published_spearman']:.4f}"
            if r["error"] and not np.isfinite(r["spearman"]):
                buf.write(f"| {r['head']} | failed: {r['error'][:80]} | | | {pub} |\n")
                continue
            buf.write(f"| {r['head']} | {_fmt(r['spearman'], r['spearman_std'])} | "
                      f"{_fmt(100 * r['r_l2'], 100 * r['r_l2_std'], 3)} | "
                      f"{_fmt(r['mse'], r['mse_std'], 3)} | {pub} |\n")
    sources = sorted({r["published_source"] for r in table if r["published_source"]})
    if sources:
        buf.write("\nPublished figures: " + "; ".join(sources) + ".\n")
    return buf.getvalue()


def write_report(res: BenchResult, out_dir) -> dict[str, Path]:
    """bench.md, bench.csv, bench.json and pred_vs_true.png in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = rows_for_table(res)
    paths = {"md": out / "bench.md", "csv": out / "bench.csv", "json": out / "bench.json",
             "png": out / "pred_vs_true.png"}
    paths["md"].write_text(to_markdown(res))
    with open(paths["csv"], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
    paths["json"].write_text(json.dumps(
        {"provenance": {k: v for k, v in res.provenance.items()}, "setup": res.setup,
         "seeds": res.seeds, "untrained_features": bool(res.provenance.get("untrained")),
         "table": table, "errors": res.errors}, indent=2, default=str))
    plot_predictions(res, paths["png"])
    return paths


def plot_predictions(res: BenchResult, path) -> Path:
    """Predicted vs true score per head (first seed), one colour per action."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heads = [h for h in res.heads if any((h, a) in res.predictions for a in res.actions)]
    n = max(1, len(heads))
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax, head in zip(axes.ravel(), heads):
        lo, hi = math.inf, -math.inf
        for i, action in enumerate(res.actions):
            if (head, action) not in res.predictions:
                continue
            y, p = res.predictions[(head, action)]
            ax.scatter(y, p, s=10, alpha=0.7, color=f"C{i % 10}",
                       label=action if len(res.actions) > 1 else None)
            lo, hi = min(lo, y.min(), p.min()), max(hi, y.max(), p.max())
        if np.isfinite(lo):
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        m, _ = res.fisher_z(head)
        ax.set_title(f"{head}: rho {m:.3f} (mean of {len(res.seeds)} seeds)\npoints: seed {res.seeds[0]}"
                     if np.isfinite(m) else head, fontsize=8)
        ax.set_xlabel("true score", fontsize=8)
        ax.set_ylabel("predicted", fontsize=8)
    for ax in axes.ravel()[len(heads):]:
        ax.axis("off")
    if len(res.actions) > 1 and heads:
        axes.ravel()[0].legend(fontsize=6)
    if res.provenance.get("untrained"):
        fig.suptitle("UNTRAINED backbone features", color="red")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
