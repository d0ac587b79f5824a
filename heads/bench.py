"""`aqa-heads bench`: every head on one cache and one split, over several seeds, honestly.

Protocol per action (or per task, for JIGSAWS):

* ``split`` protocol: train on the rows whose split is ``train_split``, test on ``test_split``;
  ``folds`` protocol (JIGSAWS): for each fold k, train on the other folds, test on fold k, and
  average the per-fold Spearman (as USDL and CoRe report it).
* Model selection never sees the test rows. Neural (torch) heads get early stopping on a
  validation fraction carved from their training rows (:data:`EARLY_STOPPING`, unless the user's
  parameters set those keys): the validation MSE is checked every epoch, with a patience of a
  quarter of the iteration budget (:data:`PATIENCE_FRACTION`), and the best epoch gives the
  training length; the head is then refit on all its training rows for that many iterations
  (a staged JRG: each stage for its own best length; ``refit_params``). Heads with a small
  hyper-parameter grid
  (:data:`GRIDS`) pick the setting with the best Spearman on a seeded 20% validation split of the
  training rows, then refit on all training rows; with fewer than :data:`MIN_GRID_ROWS` training
  rows the grid is skipped (and the report says so). What was actually selected (the chosen C,
  the best iteration) is recorded per head, action, seed and fold in ``setup["selection"]`` and
  summarised in the report.
* Spearman, R-l2 (CoRe eq. 11: each action's s_min/s_max from all its labelled scores) and MSE per
  action, mean +- std over seeds, and the Fisher-z average of Spearman over the actions (per seed,
  over the seeds that ran for every action).

The report states what it stands on: the cache's provenance (feature family, checkpoint hashes or
UNTRAINED, pose backend, sampling), the split, the seeds, the selection done, and the published
figure of each method on the named benchmark (:mod:`aqa.heads.published`) next to ours -- only
where our run is the comparable setting (C3D-SVR's figure needs C3D features; MTL-AQA's "w/ DD"
figures need the difficulty given to a head that takes it).
"""
from __future__ import annotations

import csv
import io
import json
import math
import time
from collections import Counter
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
#: fewest training rows for which a grid is searched (a 20% validation split of fewer is < 2 rows)
MIN_GRID_ROWS = 10
#: fraction of the training rows held out to pick a grid setting
GRID_VALIDATION_FRACTION = 0.2
#: what every torch head gets unless the user's parameters name these keys
EARLY_STOPPING = {"early_stopping": True, "validation_fraction": 0.2}
#: patience of that early stopping, as a fraction of the head's iteration budget (at least 10
#: epochs): on small training sets an epoch is one step and a 10-step patience stops in the noise
PATIENCE_FRACTION = 0.25
#: the feature family a head's method is defined on, used when the cache has it
METHOD_FEATURES = {"c3d-svr": "c3d_rgb"}


@dataclass
class BenchResult:
    heads: list[str]
    actions: list[str]
    seeds: list[int]
    #: (head, action) -> list over the seeds that ran of {"seed", "spearman", "r_l2", "mse", ...}
    runs: dict = field(default_factory=dict)
    #: (head, action) -> (y_true, y_pred) of the first seed, for plots
    predictions: dict = field(default_factory=dict)
    #: (head, action, seed) -> error message (seed None: every seed)
    errors: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    setup: dict = field(default_factory=dict)

    def summary(self, head: str, action: str) -> dict:
        from .metrics import summarize_seeds
        runs = self.runs.get((head, action))
        return summarize_seeds(runs) if runs else {}

    def head_errors(self, head: str, action: str | None = None) -> list[str]:
        """``"action/seed: message"`` of every failed run of ``head`` (on ``action`` if given)."""
        out = []
        for (h, a, s), msg in self.errors.items():
            if h == head and (action is None or a == action):
                where = ("" if action is not None else f"{a} ") + ("all seeds" if s is None else f"seed {s}")
                out.append(f"{where}: {msg}")
        return out

    def fisher_z_seeds(self, head: str) -> list[int]:
        """The seeds that ran for every action on which ``head`` ran at all."""
        by_action = [{r["seed"] for r in self.runs.get((head, a), [])} for a in self.actions]
        by_action = [s for s in by_action if s]
        if not by_action:
            return []
        return [s for s in self.seeds if all(s in ok for ok in by_action)]

    def fisher_z(self, head: str) -> tuple[float, float]:
        """Fisher-z average over actions of the per-seed Spearman; mean and std over seeds.

        Runs are matched by seed value, and only seeds that ran for every action count, so one
        failed run never pairs seed i of one action with seed j of another."""
        from .metrics import fisher_z_average
        per_seed = []
        for seed in self.fisher_z_seeds(head):
            rhos = [r["spearman"] for a in self.actions for r in self.runs.get((head, a), [])
                    if r["seed"] == seed]
            per_seed.append(fisher_z_average(rhos))
        per_seed = [v for v in per_seed if np.isfinite(v)]
        if not per_seed:
            return math.nan, math.nan
        return float(np.mean(per_seed)), float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0


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


def score_ranges_of(rows) -> dict[str, tuple[float, float]]:
    """action -> (s_min, s_max) over every labelled (finite) score of that action (CoRe eq. 11);
    an action whose scores are all equal has no range and is left out."""
    out: dict[str, tuple[float, float]] = {}
    for r in rows:
        if not math.isfinite(r.score):
            continue
        lo, hi = out.get(r.action, (r.score, r.score))
        out[r.action] = (min(lo, r.score), max(hi, r.score))
    return {a: v for a, v in out.items() if v[1] > v[0]}


def _is_neural(head: str) -> bool:
    from . import registry
    return "early_stopping" in registry.head_parameters(head)


def _early_stopping_record(est, n_train: int, user: dict) -> dict:
    """What early stopping did in one fit (best iteration, steps run), read off the fitted head."""
    p = est.get_params(deep=False)
    if not p.get("early_stopping"):
        why = "early_stopping=False set by the user" if "early_stopping" in user else "early stopping off"
        return {"kind": "none", "reason": f"{why}: trained for the full budget"}
    scores = list(getattr(est, "validation_scores_", []) or [])
    frac = float(p["validation_fraction"])
    if not scores:
        return {"kind": "none", "n_train": n_train,
                "reason": f"too few training rows for a {frac:.0%} validation split: trained on all rows "
                          "for the full budget"}
    n_val = len(est.validation_index_)
    refit = est.refit_params()
    return {"kind": "early_stopping", "validation_fraction": frac, "n_val": n_val,
            "n_fit": n_train - n_val, "patience_epochs": int(p.get("n_iter_no_change", 0)),
            "epochs": len(scores), "best_epoch": int(np.argmin(scores)) + 1,
            "best_val_mse": float(min(scores)), "steps_run": int(getattr(est, "n_iter_", 0)),
            "max_iter": p.get("max_iter"),
            # one run's best iteration, or each stage's (a staged head)
            "best_iteration": refit.get("max_iter", refit.get("stage_iter")), "refit_params": refit}


#: how a neural head's training length is chosen (``run_bench(selection=...)``)
SELECTIONS = {
    "refit": "early stopping on a validation part of the training rows picks the length (of each "
             "stage, for a staged head), then a refit on every training row for it",
    "early-stopped": "the early-stopped model itself (trained on the non-validation rows)",
    "budget": "no selection: the full iteration budget on every training row",
}


def _fit_predict(head, reader, tr, te, feature, seed, params, log=None, selection_mode="refit",
                 views=()):
    """Fit ``head`` on rows ``tr`` plus their augmented ``views`` (selection inside them only,
    on source rows), predict rows ``te``.

    Returns (predictions, selection record). ``log``, if given, is called as ``log(stage, rows)``
    with each fit/predict and the rows it sees (tests use it to prove no test row is selected on).
    ``selection_mode``: one of :data:`SELECTIONS` (for neural heads; SVR grids are always searched).
    """
    from . import registry
    from .augment import training_set
    from .base import steps_per_epoch
    from .cli import _extras
    from .inputs import build_inputs
    from .metrics import spearman

    log = log or (lambda stage, rows: None)
    Xtr, ytr, fit_rows, aug = training_set(head, reader, tr, feature, views)
    Xte = build_inputs(head, reader, [r.video_id for r in te], feature)
    user = dict(params.get(head, {}))
    base = {"random_state": seed, **user}
    grid = GRIDS.get(head)
    neural = _is_neural(head)
    selection: dict
    if selection_mode not in SELECTIONS:
        raise ValueError(f"selection must be one of {sorted(SELECTIONS)}, got {selection_mode!r}")
    if neural and selection_mode != "budget":
        for k, v in EARLY_STOPPING.items():
            base.setdefault(k, v)
        defaults = registry.head_parameters(head)
        n_fit = (len(tr) - int(round(float(base["validation_fraction"]) * len(tr)))) * (1 + len(views))
        epoch_steps = steps_per_epoch(n_fit, base.get("batch_size", defaults.get("batch_size", 64)))
        budget = int(base.get("max_iter", defaults.get("max_iter", 1000)))
        patience = -(-int(PATIENCE_FRACTION * budget) // epoch_steps)     # in epochs, rounded up
        base.setdefault("n_iter_no_change", max(10, patience))
    if grid:
        key = next(iter(grid))
        if key in user:
            selection = {"kind": "none", "reason": f"{key}={user[key]!r} set by the user"}
        elif len(tr) < MIN_GRID_ROWS:
            default = registry.head_parameters(head).get(key)
            selection = {"kind": "none", "n_train": len(tr),
                         "reason": f"fewer than {MIN_GRID_ROWS} training rows: no {key} search, "
                                   f"{key}={default!r} (the default)"}
        else:
            # model selection on a validation split carved from the training rows only
            rng = np.random.RandomState(seed)
            perm = rng.permutation(len(tr))
            n_val = max(2, int(round(GRID_VALIDATION_FRACTION * len(tr))))
            val, fit = perm[:n_val], perm[n_val:]
            scores = []
            for v in grid[key]:
                est = registry.make(head, **{**base, key: v})
                log("select-fit", [tr[i] for i in fit])
                est.fit(Xtr[fit], ytr[fit], **_extras(est, [tr[i] for i in fit]))
                log("select-predict", [tr[i] for i in val])
                p = est.predict(Xtr[val], **_extras(est, [tr[i] for i in val], predict=True))
                s = spearman(ytr[val], p) if np.ptp(p) > 0 and np.ptp(ytr[val]) > 0 else -1.0
                scores.append(-1.0 if not np.isfinite(s) else float(s))
            best = int(np.argmax(scores))
            base[key] = grid[key][best]
            selection = {"kind": "grid", "param": key, "chosen": grid[key][best],
                         "val_spearman": scores[best], "n_fit": len(fit), "n_val": n_val}
    est = registry.make(head, **base)
    log("fit", tr)
    est.fit(Xtr, ytr, **_extras(est, fit_rows), **aug)
    if neural:
        selection = _early_stopping_record(est, len(tr), user)
        if (selection["kind"] == "early_stopping" and "early_stopping" not in user
                and selection_mode == "refit"):
            # the validation rows picked the training length; refit on every training row for it
            est = registry.make(head, **{**base, **selection["refit_params"]})
            log("fit", tr)
            est.fit(Xtr, ytr, **_extras(est, fit_rows), **aug)
            selection["refit_iterations"] = selection["best_iteration"]
        if views:
            selection["views"] = list(views)
    elif not grid:
        selection = {"kind": "none", "reason": "the head has no validation-based selection"}
    log("predict", te)
    pred = np.asarray(est.predict(Xte, **_extras(est, te, predict=True)), dtype=float)
    return pred, selection


def _fmt_num(v) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


def selection_summary(records: list[dict]) -> str:
    """One line saying what model selection was done over a head's fits."""
    if not records:
        return "no fits ran"
    parts = []
    grid = [r for r in records if r["kind"] == "grid"]
    if grid:
        counts = Counter(r["chosen"] for r in grid)
        chosen = ", ".join(f"{_fmt_num(v)} (x{n})" for v, n in sorted(counts.items()))
        parts.append(f"{grid[0]['param']} chosen by Spearman on a {GRID_VALIDATION_FRACTION:.0%} "
                     f"validation split of the training rows in {len(grid)} fit(s): {chosen}")
    es = [r for r in records if r["kind"] == "early_stopping"]
    if es:
        r0 = es[0]
        text = (f"early stopping on {r0['validation_fraction']:.0%} of the training rows "
                f"(patience {r0['patience_epochs']} epochs) in {len(es)} fit(s)")
        best = [r["best_iteration"] for r in es]
        if isinstance(best[0], dict):          # a staged head: each stage's best length
            text += ": best iterations per stage, median (range): " + ", ".join(
                f"{k} {int(np.median(v))} ({min(v)}-{max(v)})"
                for k, v in ((k, [b[k] for b in best]) for k in best[0]))
        else:
            text += (f": best iteration median {int(np.median(best))} (range {min(best)}-{max(best)}) "
                     f"of max_iter {r0['max_iter']}")
        if any("refit_iterations" in r for r in es):
            text += ", then refit on all training rows for that many iterations"
        parts.append(text)
    none = Counter(r["reason"] for r in records if r["kind"] == "none")
    for reason, n in none.items():
        sizes = [r["n_train"] for r in records if r["kind"] == "none" and r["reason"] == reason
                 and "n_train" in r]
        rows = "" if not sizes else (f" ({min(sizes)} training rows)" if min(sizes) == max(sizes)
                                     else f" ({min(sizes)}-{max(sizes)} training rows)")
        parts.append(f"NO model selection in {n} fit(s){rows}: {reason}")
    return "; ".join(parts)


def run_bench(cache, labels=None, heads: Sequence[str] | str = "all", seeds: int | Sequence[int] = 5,
              feature: str | None = None, protocol: str = "split", train_split: str = "train",
              test_split: str = "test", per_action: bool = True, params: dict | None = None,
              benchmark: str | None = None, progress: bool = True,
              score_ranges: dict | None = None, head_features: dict | None = None,
              fit_log=None, selection: str = "refit", views=None) -> BenchResult:
    """Train and test every head on one cache; see the module docstring.

    ``score_ranges``: action -> (s_min, s_max) for R-l2 (default: over every labelled score of the
    action in ``labels``, in the cache or not). ``head_features``: head -> feature family, overriding
    ``feature`` (and :data:`METHOD_FEATURES`) for that head. ``fit_log(stage, rows)`` is called with
    every fit/predict and the label rows it sees. ``selection``: how neural heads' training
    length is chosen, one of :data:`SELECTIONS`. ``views``: augmented views added to the
    training rows (:func:`aqa.heads.augment.resolve_views`), one spec for every head that trains
    on views (``"paper"``: each head's own) or a dict head -> spec; the report says which head
    trained on which views.
    """
    from aqa.data.logs import progress_bar

    from aqa.data.cache import CacheReader
    from . import registry
    from .cli import load_rows
    from .inputs import default_feature
    from .metrics import evaluate

    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {sorted(SELECTIONS)}, got {selection!r}")
    names = registry.resolve_heads(heads)      # unknown names fail before any training
    stray = sorted(set(params or {}) - set(names))
    if stray:
        raise ValueError(f"parameters given for head(s) {stray} that this bench does not run "
                         f"(heads: {names})")
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise ValueError("no seeds to run: seeds must be a positive count or a non-empty list")
    if protocol not in ("split", "folds"):
        raise ValueError(f"protocol must be 'split' or 'folds', not {protocol!r}")
    params = params or {}
    with CacheReader(cache) as r:
        ids = set(r.video_ids())
        labelled = [x for x in load_rows(r, labels) if math.isfinite(x.score)]
        rows = [x for x in labelled if x.video_id in ids]
        if not rows:
            raise ValueError(f"no labelled videos of {cache} are in the cache")
        feature = feature or default_feature(r)
        fams = set(r.families())
        absent = [f for f in feature.split("+") if f not in fams]
        if absent:
            raise ValueError(f"the cache has no feature family {absent[0]!r} in every video; it has "
                             f"{sorted(fams)}")
        feats = {h: feature for h in names}
        for h, f in METHOD_FEATURES.items():
            if h in feats and f in fams:
                feats[h] = f
        for h, f in (head_features or {}).items():
            if h in feats:
                feats[h] = f
        head_views = _bench_views(r, names, views)
        withheld = {h: f"{h} ran on {feats[h]}, not on the {f} features its published figure was "
                       f"measured on (the cache has no {f}): the published figure is not shown"
                    for h, f in METHOD_FEATURES.items() if h in feats and f not in feats[h].split("+")}
        ranges = {a: (float(lo), float(hi)) for a, (lo, hi) in
                  (score_ranges if score_ranges is not None else score_ranges_of(labelled)).items()
                  if hi > lo}
        prov = r.provenance()
        actions = sorted({x.action for x in rows}) if per_action else ["all"]
        folds = sorted({x.split for x in rows if x.split.startswith("fold")}) if protocol == "folds" else []
        res = BenchResult(heads=names, actions=actions, seeds=seeds, provenance=prov,
                          setup={"cache": str(cache), "feature": feature, "protocol": protocol,
                                 "train_split": train_split, "test_split": test_split, "folds": folds,
                                 "benchmark": benchmark, "n_videos": len(rows),
                                 "selection_mode": selection,
                                 "head_features": {h: f for h, f in feats.items() if f != feature},
                                 "views": {h: v for h, v in head_views.items() if v},
                                 "published_withheld": withheld,
                                 "with_difficulty": any(math.isfinite(x.difficulty) for x in rows),
                                 "score_ranges": {a: list(v) for a, v in sorted(ranges.items())},
                                 "selection": {}})
        records: dict[str, list] = {h: [] for h in names}
        jobs = [(h, a) for h in names for a in actions]
        bar = progress_bar(total=len(jobs) * len(seeds), desc="bench", unit="fit",
                           disable=not progress)
        for head, action in jobs:
            arows = rows if action == "all" else [x for x in rows if x.action == action]
            plan = _fold_plan(arows, protocol, train_split, test_split)
            if not plan:
                res.errors[(head, action, None)] = "empty train or test split"
                bar.update(len(seeds))
                continue
            for seed in seeds:
                bar.set_postfix_str(f"{head}/{action}/seed {seed}")
                try:
                    t0 = time.perf_counter()
                    per_fold, all_true, all_pred, sels = [], [], [], []
                    for fold, tr, te in plan:
                        pred, sel = _fit_predict(head, r, tr, te, feats[head], seed, params, fit_log,
                                                 selection, head_views[head])
                        sels.append({"action": action, "seed": seed, "fold": fold, **sel})
                        y = np.array([x.score for x in te])
                        m = evaluate(y, pred, groups=[x.action for x in te], score_ranges=ranges)
                        per_fold.append({"spearman": m["spearman"], "r_l2": m["rl2"], "mse": m["mse"]})
                        all_true.append(y)
                        all_pred.append(pred)
                    run = {k: _nanmean([f[k] for f in per_fold]) for k in per_fold[0]}
                    run["n_test"] = sum(len(te) for _, _, te in plan)
                    run["seconds"] = time.perf_counter() - t0
                    res.runs.setdefault((head, action), []).append({"seed": seed, **run})
                    records[head].extend(sels)
                    if (head, action) not in res.predictions:
                        res.predictions[(head, action)] = (np.concatenate(all_true),
                                                           np.concatenate(all_pred))
                except Exception as e:  # noqa: BLE001 - one run failing must not sink the table
                    res.errors[(head, action, seed)] = f"{type(e).__name__}: {e}"
                bar.update(1)
        bar.close()
    res.setup["selection"] = {h: {"summary": selection_summary(recs), "runs": recs}
                              for h, recs in records.items()}
    return res


def _bench_views(reader, heads: list[str], views) -> dict[str, list[str]]:
    """head -> the view names it trains on; one spec (not a dict) applies to the heads that train
    on views and leaves the others (the SVR baselines, CoRe) on their source rows."""
    from . import registry
    from .augment import resolve_views
    if isinstance(views, dict):
        stray = sorted(set(views) - set(heads))
        if stray:
            raise ValueError(f"views given for head(s) {stray} that this bench does not run")
        return {h: resolve_views(reader, h, views.get(h)) for h in heads}
    return {h: resolve_views(reader, h, views) if registry.accepts_views(h) else [] for h in heads}


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
                  "| test videos |\n|---|---|---|---|---|---|\n")
        for r in (x for x in table if x["action"] == action):
            pub = "" if not np.isfinite(r["published_spearman"]) else f"{r['published_spearman']:.4f}"
            pub += " (other protocol)" if pub and r["published_differs"] else ""
            if r["error"] and not np.isfinite(r["spearman"]):
                buf.write(f"| {r['head']} | failed: {r['error'][:80]} | | | {pub} | |\n")
                continue
            mark = f" ({r['n_seeds']} of {len(res.seeds)} seeds)" if r["n_seeds"] < len(res.seeds) else ""
            buf.write(f"| {r['head']} | {_fmt(r['spearman'], r['spearman_std'])}{mark} | "
                      f"{_fmt(100 * r['r_l2'], 100 * r['r_l2_std'], 3)} | "
                      f"{_fmt(r['mse'], r['mse_std'], 3)} | {pub} | {r['n_test']} |\n")
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
