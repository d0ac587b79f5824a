"""The bench's report: the table (Markdown, CSV, JSON), what it stands on (provenance, split,
seeds, model selection), the published figures beside ours, and the predicted-vs-true plot, from
a :class:`aqa.heads.bench.BenchResult`.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .bench import BenchResult

__all__ = ["provenance_lines", "takes_difficulty", "rows_for_table", "to_markdown", "augmentation_gaps",
           "errors_list", "write_report", "plot_predictions"]


def _fmt(mean, std, digits=4):
    if mean is None or not np.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if np.isfinite(std) else f"{mean:.{digits}f}"


def provenance_lines(res: BenchResult) -> list[str]:
    prov, setup = res.provenance, res.setup
    cfg = prov.get("config", {})
    weights = prov.get("weights", {})
    w = ", ".join(f"{k}={v[:12]}" for k, v in sorted(weights.items())) or "none (weight-free features)"
    per_head = setup.get("head_features") or {}
    feat = setup["feature"] + (" (" + ", ".join(f"{h}: {f}" for h, f in sorted(per_head.items())) + ")"
                               if per_head else "")
    if setup["protocol"] == "folds":
        folds = setup.get("folds") or []
        protocol = (f"protocol: {len(folds)}-fold cross-validation over the split values "
                    f"{', '.join(folds)} (each fold tested once, trained on the others; metrics "
                    f"averaged over folds)")
    else:
        protocol = f"protocol: split (train={setup['train_split']!r}, test={setup['test_split']!r})"
    lines = [f"cache: {setup['cache']} ({setup['n_videos']} labelled videos)",
             f"features: {feat}; pose: {cfg.get('pose', '?')}; sampling: "
             f"{cfg.get('sampling', '?')} {cfg.get('sampling_options') or ''}; flow: {cfg.get('flow', '?')}",
             f"weights: {w}",
             f"{protocol}; seeds: {res.seeds}"]
    if setup.get("score_ranges"):
        lines.append("R-l2 score range per action (all labelled scores): " + ", ".join(
            f"{a or '(none)'} [{lo:g}, {hi:g}]" for a, (lo, hi) in setup["score_ranges"].items()))
    if setup.get("label_columns"):
        lines.append("label columns each head trained on: " + "; ".join(
            f"{h}: {', '.join(cols)}" for h, cols in setup["label_columns"].items()))
    lines.append("model selection (validation rows carved from the training rows only, never the "
                 "test rows), per head:")
    for head in res.heads:
        summ = (setup.get("selection") or {}).get(head, {}).get("summary", "not recorded")
        lines.append(f"selection, {head}: {summ}")
    if setup.get("training_budget"):
        lines.append(f"training budget: {setup['training_budget']}")
    if setup.get("views"):
        lines.append("augmented views added to the training rows (never to validation or test "
                     "rows): " + "; ".join(f"{h}: {', '.join(v)}"
                                           for h, v in sorted(setup["views"].items())))
    fits = setup.get("fits")
    if fits:
        lines.append(f"fits: {fits['new']} run now, {fits['reused']} read back from {fits['folder']} "
                     f"(finished earlier with the same settings)")
    if setup.get("interrupted"):
        lines.insert(0, f"INTERRUPTED: a partial table ({setup['interrupted']}); run the same "
                        f"command again to finish it")
    if prov.get("untrained"):
        lines.insert(0, "WARNING: UNTRAINED backbone features (random weights): these numbers say "
                        "nothing about the published methods")
    return lines


def takes_difficulty(head: str) -> bool:
    from . import registry
    try:
        return "difficulty" in tuple(getattr(registry.estimator_class(head), "fit_extras", ()))
    except ImportError:
        return False


def rows_for_table(res: BenchResult) -> list[dict]:
    from .published import protocol_difference, published
    bm = res.setup.get("benchmark")
    withheld = res.setup.get("published_withheld") or {}
    untrained = bool(res.provenance.get("untrained"))
    out = []
    for action in res.actions + (["fisher_z_avg"] if len(res.actions) > 1 else []):
        for head in res.heads:
            with_dd = bool(res.setup.get("with_difficulty")) and takes_difficulty(head)
            if action == "fisher_z_avg":
                m, s = res.fisher_z(head)
                row = {"action": action, "head": head, "spearman": m, "spearman_std": s}
                for k in ("r_l2", "mse"):
                    vals = [res.summary(head, a).get(k, {}).get("mean", math.nan) for a in res.actions]
                    row[k] = float(np.nanmean(vals)) if np.isfinite(vals).any() else math.nan
                    row[f"{k}_std"] = math.nan
                row["n_seeds"] = len(res.fisher_z_seeds(head))
                for k in ("seconds", "cpu_seconds"):
                    vals = [res.summary(head, a).get(k, {}).get("mean", math.nan) for a in res.actions]
                    row[k] = float(np.nansum(vals)) if np.isfinite(vals).any() else math.nan
                row["n_test"] = sum(max((x.get("n_test", 0) for x in res.runs.get((head, a), [])), default=0)
                                    for a in res.actions)
                pub, src = published(bm, head, "avg", with_dd=with_dd)
                errors = res.head_errors(head)
            else:
                summ = res.summary(head, action)
                row = {"action": action, "head": head}
                for k in ("spearman", "r_l2", "mse"):
                    row[k] = summ.get(k, {}).get("mean", math.nan)
                    row[f"{k}_std"] = summ.get(k, {}).get("std", math.nan)
                row["n_seeds"] = len(res.runs.get((head, action), []))
                for k in ("seconds", "cpu_seconds"):      # per seed: selection, refit, prediction
                    row[k] = summ.get(k, {}).get("mean", math.nan)
                row["n_test"] = max((x.get("n_test", 0) for x in res.runs.get((head, action), [])), default=0)
                pub, src = published(bm, head, "avg" if action == "all" else action, with_dd=with_dd)
                errors = res.head_errors(head, action)
            if head in withheld or pub is None:
                pub, src = None, None
            row["published_spearman"] = pub if pub is not None else math.nan
            row["published_source"] = src or ""
            row["published_differs"] = (protocol_difference(bm, head) or "") if pub is not None else ""
            row["untrained"] = untrained
            row["error"] = "; ".join(errors)
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
        buf.write(f"\n## {title}\n\n| head | Spearman | R-l2 (x100) | MSE | published Spearman "
                  "| test videos | fit s (CPU s) |\n|---|---|---|---|---|---|---|\n")
        for r in (x for x in table if x["action"] == action):
            pub = "" if not np.isfinite(r["published_spearman"]) else f"{r['published_spearman']:.4f}"
            pub += " (other protocol)" if pub and r["published_differs"] else ""
            if r["error"] and not np.isfinite(r["spearman"]):
                buf.write(f"| {r['head']} | failed: {r['error'][:80]} | | | {pub} | | |\n")
                continue
            mark = f" ({r['n_seeds']} of {len(res.seeds)} seeds)" if r["n_seeds"] < len(res.seeds) else ""
            buf.write(f"| {r['head']} | {_fmt(r['spearman'], r['spearman_std'])}{mark} | "
                      f"{_fmt(100 * r['r_l2'], 100 * r['r_l2_std'], 3)} | "
                      f"{_fmt(r['mse'], r['mse_std'], 3)} | {pub} | {r['n_test']} | "
                      f"{_fmt_seconds(r['seconds'], r['cpu_seconds'])} |\n")
    sources = sorted({r["published_source"] for r in table if r["published_source"]})
    if sources:
        buf.write("\nPublished figures: " + "; ".join(sources) + ".\n")
    differs = {r["head"]: r["published_differs"] for r in table if r["published_differs"]}
    for head, why in sorted(differs.items()):
        buf.write(f"\nPublished figure of {head} is from another protocol, not comparable: {why}.\n")
    for head, why in sorted((res.setup.get("published_withheld") or {}).items()):
        buf.write(f"\nPublished figure withheld: {why}.\n")
    for head, kinds in augmentation_gaps(res, table).items():
        buf.write(f"\nPublished figure of {head} was trained with its paper's {'/'.join(kinds)} "
                  f"augmentation, which this run did not use (extract the views with aqa-extract "
                  f"--view, then --views paper).\n")
    if res.errors:
        buf.write("\nFailed runs:\n\n")
        for head in res.heads:
            for e in res.head_errors(head):
                buf.write(f"- {head} {e}\n")
    return buf.getvalue()


def _fmt_seconds(wall: float, cpu: float) -> str:
    """Seconds per seed (model selection, refit and prediction of every fold), wall and CPU."""
    if not np.isfinite(wall):
        return ""
    return f"{wall:.1f}" + (f" ({cpu:.1f})" if np.isfinite(cpu) else "")


def augmentation_gaps(res: BenchResult, table: list[dict]) -> dict[str, list[str]]:
    """head -> the kinds of augmented view its paper trained on that this run's training rows
    lacked, for the heads shown beside a published figure."""
    from aqa.data.views import parse_view

    from . import registry
    used = res.setup.get("views") or {}
    out = {}
    for head in sorted({r["head"] for r in table if np.isfinite(r["published_spearman"])}):
        missing = registry.paper_view_kinds(head) - {parse_view(v).kind for v in used.get(head, [])}
        if missing and registry.accepts_views(head):
            out[head] = sorted(missing)
    return out


def errors_list(res: BenchResult) -> list[dict]:
    return [{"head": h, "action": a, "seed": s, "error": m} for (h, a, s), m in res.errors.items()]


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
         "table": table, "errors": errors_list(res)}, indent=2, default=str))
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
