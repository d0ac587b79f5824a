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

The report (:mod:`aqa.heads.report`) states what it stands on: the cache's provenance (feature family, checkpoint hashes or
UNTRAINED, pose backend, sampling), the split, the seeds, the selection done, and the published
figure of each method on the named benchmark (:mod:`aqa.heads.published`) next to ours -- only
where our run is the comparable setting (C3D-SVR's figure needs C3D features; MTL-AQA's "w/ DD"
figures need the difficulty given to a head that takes it).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
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


def fold_plan(rows, protocol: str, train_split: str, test_split: str):
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
            "best_iteration": refit.get("max_iter", refit.get("stage_iter")), "refit_params": refit,
            # the weight of the network's output on the stats anchor (None: no anchor)
            "network_weight": refit.get("network_weight")}


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
    from .dataset import label_extras as _extras
    from .dataset import build_inputs
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
        from .baselines import fitted_selection
        selection = fitted_selection(est) or {"kind": "none",
                                              "reason": "the head has no validation-based selection"}
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
        weights = [r["network_weight"] for r in es if r.get("network_weight") is not None]
        if weights:
            text += (f"; the network's output weighs {np.median(weights):.2f} (median; range "
                     f"{min(weights):.2f}-{max(weights):.2f}) on top of the stats anchor, fitted on "
                     f"the validation rows")
        parts.append(text)
    internal = [r for r in records if r["kind"] == "internal"]
    if internal:
        counts = Counter(r["chosen"] for r in internal)
        parts.append(f"{internal[0]['param']} chosen by {internal[0]['how']} in {len(internal)} fit(s): "
                     + ", ".join(f"{_fmt_num(v)} (x{n})" for v, n in sorted(counts.items())))
    none = Counter(r["reason"] for r in records if r["kind"] == "none")
    for reason, n in none.items():
        sizes = [r["n_train"] for r in records if r["kind"] == "none" and r["reason"] == reason
                 and "n_train" in r]
        rows = "" if not sizes else (f" ({min(sizes)} training rows)" if min(sizes) == max(sizes)
                                     else f" ({min(sizes)}-{max(sizes)} training rows)")
        parts.append(f"NO model selection in {n} fit(s){rows}: {reason}")
    return "; ".join(parts)


def label_columns(head: str, rows) -> list[str]:
    """The label columns ``head`` trains on: the score, and the per-sample keywords it declares
    (``fit_extras``: the action as ``groups``, the difficulty, sub-scores), each marked
    "(empty)" where no row of ``rows`` gives it."""
    from . import registry
    from .dataset import EXTRA_COLUMNS
    try:
        extras = tuple(getattr(registry.estimator_class(head), "fit_extras", ()))
    except ImportError:
        extras = ()
    out = ["score"]
    for name in extras:
        col = EXTRA_COLUMNS.get(name, name)
        vals = [x.as_dict().get(col) for x in rows]
        given = any(v not in (None, "") and not (isinstance(v, float) and math.isnan(v)) for v in vals)
        out.append(col if given else f"{col} (empty)")
    return out


def fit_key(**settings) -> str:
    """A digest of everything one fit depends on (cache provenance, head, parameters, rows...)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _row_sig(reader, row) -> dict:
    """A label row with what identifies its video's cached features (source and config hashes)."""
    attrs = reader.video_attrs(row.video_id)
    return {**row.as_dict(), "source_sha256": attrs.get("source_sha256"),
            "config_sha256": attrs.get("config_sha256")}


def _plain(obj):
    """``obj`` with numpy scalars and arrays as Python numbers and lists (for JSON)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


class FitStore:
    """Finished bench fits, one JSON file each (``HEAD__ACTION__seedN.json``) in ``folder``, with
    the digest of their settings (:func:`fit_key`): a fit is read back only under the same
    settings. A file that cannot be read is warned about and fitted again."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def path(self, head: str, action: str, seed: int) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{head}__{action}__seed{seed}")
        return self.folder / f"{safe}.json"

    def load(self, head: str, action: str, seed: int, key: str) -> dict | None:
        import warnings
        p = self.path(head, action, seed)
        if not p.is_file():
            return None
        try:
            data = json.loads(p.read_text())
            if data.get("key") != key:
                return None
            fit = data["fit"]
            if not isinstance(fit["run"], dict) or not isinstance(fit["selection"], list):
                raise ValueError("not a bench fit")
            return {"run": fit["run"], "selection": fit["selection"], "y_true": fit["y_true"],
                    "y_pred": fit["y_pred"]}
        except (OSError, ValueError, KeyError, TypeError) as e:
            warnings.warn(f"{p}: cannot read the stored fit ({e}); fitting again", UserWarning,
                          stacklevel=2)
            return None

    def save(self, head: str, action: str, seed: int, key: str, fit: dict) -> Path:
        p = self.path(head, action, seed)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".partial")
        tmp.write_text(json.dumps({"key": key, "head": head, "action": action, "seed": seed,
                                   "fit": _plain(fit)}))
        tmp.replace(p)
        return p


def _run_seed(head, action, seed, plan, reader, feature, params, fit_log, selection, views, ranges,
              evaluate) -> dict:
    """One seed of ``head`` on one action: every fold of ``plan`` fitted and tested.
    ``{"run": metrics averaged over folds, "selection": [records], "y_true", "y_pred"}``."""
    t0, c0 = time.perf_counter(), time.process_time()
    per_fold, all_true, all_pred, sels = [], [], [], []
    for fold, tr, te in plan:
        pred, sel = _fit_predict(head, reader, tr, te, feature, seed, params, fit_log, selection, views)
        sels.append({"action": action, "seed": seed, "fold": fold, **sel})
        y = np.array([x.score for x in te])
        m = evaluate(y, pred, groups=[x.action for x in te], score_ranges=ranges)
        per_fold.append({"spearman": m["spearman"], "r_l2": m["rl2"], "mse": m["mse"]})
        all_true.append(y)
        all_pred.append(pred)
    run = {k: _nanmean([f[k] for f in per_fold]) for k in per_fold[0]}
    run["n_test"] = sum(len(te) for _, _, te in plan)
    run["seconds"] = time.perf_counter() - t0
    run["cpu_seconds"] = time.process_time() - c0       # every thread of the process: robust to load
    return {"run": run, "selection": sels, "y_true": np.concatenate(all_true),
            "y_pred": np.concatenate(all_pred)}


def run_bench(cache, labels=None, heads: Sequence[str] | str = "all", seeds: int | Sequence[int] = 5,
              feature: str | None = None, protocol: str = "split", train_split: str = "train",
              test_split: str = "test", per_action: bool = True, params: dict | None = None,
              benchmark: str | None = None, progress: bool = True,
              score_ranges: dict | None = None, head_features: dict | None = None,
              fit_log=None, selection: str = "refit", views=None, store=None,
              fresh: bool = False) -> BenchResult:
    """Train and test every head on one cache; see the module docstring.

    ``score_ranges``: action -> (s_min, s_max) for R-l2 (default: over every labelled score of the
    action in ``labels``, in the cache or not). ``head_features``: head -> feature family, overriding
    ``feature`` (and :data:`METHOD_FEATURES`) for that head. ``fit_log(stage, rows)`` is called with
    every fit/predict and the label rows it sees. ``selection``: how neural heads' training
    length is chosen, one of :data:`SELECTIONS`. ``views``: augmented views added to the
    training rows (:func:`aqa.heads.augment.resolve_views`), one spec for every head that trains
    on views (``"paper"``: each head's own) or a dict head -> spec; the report says which head
    trained on which views. ``store``: a folder where each finished fit (one head, action and
    seed) is kept (:class:`FitStore`); a rerun with the same settings reads it back instead of
    fitting again (``fresh``: fit everything again, replacing them). Ctrl-C (KeyboardInterrupt) stops the bench and returns what finished, with
    ``setup["interrupted"]`` saying how much.
    """
    import warnings

    from aqa.data.logs import progress_bar

    from aqa.data.cache import CacheReader
    from . import registry
    from .dataset import load_rows, score_ranges_of
    from .inputs import default_feature
    from .metrics import evaluate

    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {sorted(SELECTIONS)}, got {selection!r}")
    names = registry.resolve_heads(heads)      # unknown names fail before any training
    unknown = sorted(set(params or {}) - set(registry.names()))
    if unknown:
        raise ValueError(f"parameters given for unknown head(s) {unknown}; known heads: "
                         f"{', '.join(registry.names())}")
    stray = sorted(set(params or {}) - set(names))
    if stray:
        warnings.warn(f"parameters given for head(s) {stray} that this bench does not run are not "
                      f"used (heads: {', '.join(names)})", UserWarning, stacklevel=2)
        params = {h: p for h, p in params.items() if h in names}
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
                                 "label_columns": {h: label_columns(h, rows) for h in names},
                                 "selection": {}})
        records: dict[str, list] = {h: [] for h in names}
        jobs = [(h, a) for h in names for a in actions]
        fits = FitStore(store) if store is not None else None
        reused = done = 0
        bar = progress_bar(total=len(jobs) * len(seeds), desc="bench", unit="fit", disable=not progress)
        try:
            for head, action in jobs:
                arows = rows if action == "all" else [x for x in rows if x.action == action]
                plan = fold_plan(arows, protocol, train_split, test_split)
                if not plan:
                    res.errors[(head, action, None)] = "empty train or test split"
                    bar.update(len(seeds))
                    done += len(seeds)
                    continue
                for seed in seeds:
                    bar.set_postfix_str(f"{head}/{action}/seed {seed}")
                    key = fit_key(provenance=prov, head=head, action=action, seed=seed,
                                  feature=feats[head], params=params.get(head, {}),
                                  selection=selection, views=head_views[head], ranges=ranges,
                                  plan=[(f, [_row_sig(r, x) for x in tr], [_row_sig(r, x) for x in te])
                                        for f, tr, te in plan])
                    fit = fits.load(head, action, seed, key) if fits and not fresh else None
                    reused += fit is not None
                    try:
                        if fit is None:
                            fit = _run_seed(head, action, seed, plan, r, feats[head], params, fit_log,
                                            selection, head_views[head], ranges, evaluate)
                            if fits:
                                fits.save(head, action, seed, key, fit)
                        res.runs.setdefault((head, action), []).append({"seed": seed, **fit["run"]})
                        records[head].extend(fit["selection"])
                        if (head, action) not in res.predictions:
                            res.predictions[(head, action)] = (np.asarray(fit["y_true"], dtype=float),
                                                               np.asarray(fit["y_pred"], dtype=float))
                    except Exception as e:  # noqa: BLE001 - one run failing must not sink the table
                        res.errors[(head, action, seed)] = f"{type(e).__name__}: {e}"
                    bar.update(1)
                    done += 1
        except KeyboardInterrupt:
            res.setup["interrupted"] = f"{done} of {len(jobs) * len(seeds)} fits done"
        bar.close()
        if fits:
            res.setup["fits"] = {"folder": str(fits.folder), "reused": reused, "new": done - reused}
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
