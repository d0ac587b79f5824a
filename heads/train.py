"""Training and evaluating a head on a feature cache, as library functions: what
``aqa-heads train/evaluate/predict/explain``, the bench and the recipes call.

:func:`run_train_eval` trains a head on the rows of one split and evaluates it on another;
:func:`evaluate_model`, :func:`predict_model` and :func:`explain_model` apply a trained head to a
cache, after :func:`check_comparable` refused a cache whose features were extracted with other
settings than the model's training cache.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .dataset import (build_inputs, has_splits, head_feature, label_extras, load_rows, score_ranges_of, select_rows,
                      warn_unmatched)

__all__ = ["run_train_eval", "check_comparable", "layout_hint", "load_model", "model_inputs",
           "evaluate_model", "predict_model", "explain_model"]


def run_train_eval(cache, labels=None, head: str = "jrg", feature: str | None = None, seed: int = 0,
                   params: dict | None = None, train_split: str = "train",
                   test_split: str | None = "test", out=None, verbose: bool = False,
                   views=None) -> dict:
    """Train ``head`` on the ``train_split`` rows of ``cache`` and evaluate on ``test_split``.

    ``views``: augmented views added to the training rows (:func:`aqa.heads.augment.resolve_views`:
    ``"paper"``, specs such as ``"flip"``, or None); never to the test rows.
    Labels without a split column: every labelled video of the cache is a training row and
    nothing is tested (``"note"`` says so).
    Returns ``{"metrics": {...} or None, "predictions": {video_id: score} (test rows),
    "head", "feature", "n_train", "n_test", "views", "n_train_views", "untrained_features",
    "model_path", "estimator", "score_ranges", "note"}``. R-l2 uses each action's s_min/s_max over all
    its labelled scores (``score_ranges``, CoRe eq. 11), not the test rows' range.
    """
    from aqa.data.cache import CacheReader
    from . import registry
    from .augment import resolve_views, training_set
    from .base import save_head
    from .inputs import input_layout
    from .metrics import evaluate
    params = dict(params or {})
    registry.get(head)                   # an unknown head fails before the cache is read
    with CacheReader(cache) as r:
        rows = load_rows(r, labels)
        ids = r.video_ids()
        warn_unmatched(rows, ids)
        feature = head_feature(r, head, feature)
        note = None
        if has_splits(rows):
            tr = select_rows(rows, train_split, ids)
            te = select_rows(rows, test_split, ids) if test_split else []
        else:
            tr, te = select_rows(rows, "all", ids), []
            note = (f"the labels have no split column: trained on all {len(tr)} labelled videos "
                    f"in the cache, no test evaluation")
        overlap = {x.video_id for x in tr} & {x.video_id for x in te}
        if overlap:
            raise ValueError(f"{len(overlap)} videos are in both the train and the test split")
        views = resolve_views(r, head, views)
        Xtr, ytr, fit_rows, aug = training_set(head, r, tr, feature, views)
        Xte = build_inputs(head, r, [x.video_id for x in te], feature) if te else None
        prov = r.provenance()
    est_params = {"random_state": seed, **params}
    if verbose and "verbose" in registry.head_parameters(head):
        est_params.setdefault("verbose", True)
    est = registry.make(head, **est_params)
    est.fit(Xtr, ytr, **label_extras(est, fit_rows), **aug)
    result = {"head": head, "feature": feature, "seed": seed, "n_train": len(tr), "n_test": len(te),
              "views": views, "n_train_views": len(fit_rows) - len(tr),
              "untrained_features": bool(prov.get("untrained")), "metrics": None, "predictions": {},
              "estimator": est, "model_path": None, "note": note}
    if te:
        pred = est.predict(Xte, **label_extras(est, te, predict=True))
        yte = np.array([x.score for x in te])
        groups = [x.action for x in te]
        # R-l2 (CoRe eq. 11) with each action's s_min/s_max over all its labelled scores
        ranges = score_ranges_of(rows)
        result["metrics"] = evaluate(yte, pred, groups=groups if any(groups) else None,
                                     score_ranges=ranges)
        result["score_ranges"] = ranges
        result["predictions"] = {x.video_id: float(p) for x, p in zip(te, pred)}
    if out is not None:
        config = {"head": head, "feature": feature, "cache": str(Path(cache).resolve()),
                  "labels": str(labels) if isinstance(labels, (str, Path)) else None,
                  "train_split": train_split, "seed": seed, "params": params, "views": views,
                  "train_ids": [x.video_id for x in tr],
                  "input_layout": input_layout(registry.get(head).inputs)}
        result["model_path"] = str(save_head(est, out, provenance=prov, config=config))
    return result


def load_model(model, trust: bool = False):
    """A head saved by :func:`run_train_eval` (``trust``: allow pickled, non-neural heads)."""
    from .base import load_head
    return load_head(model, allow_pickle=trust)


def check_comparable(est, reader, allow: bool = False) -> None:
    """Refuse (``ValueError``) to apply a head to a cache whose features were extracted otherwise
    than those it was trained on (:func:`aqa.data.compat.config_differences`, and the untrained
    mark); with ``allow``, warn instead. A model without a recorded training config is not checked."""
    import warnings

    from aqa.data.compat import provenance_differences
    diffs = provenance_differences(getattr(est, "provenance_", None), reader.provenance())
    if not diffs:
        return
    msg = (f"{reader.path}: its features were extracted with other settings than the ones this "
           f"model was trained on, so its scores would mean nothing: " + "; ".join(diffs[:6])
           + ("; ..." if len(diffs) > 6 else ""))
    if not allow:
        raise ValueError(msg + ". Re-extract with the training settings, or pass "
                               "--allow-other-features to score anyway")
    warnings.warn(msg + " (--allow-other-features: scoring anyway)", UserWarning, stacklevel=2)


@contextmanager
def layout_hint(est):
    """Add to a ValueError raised while applying the loaded head ``est`` the reason when its model
    file was trained on an older layout of its input builder than this version builds
    (:data:`aqa.heads.inputs.INPUT_LAYOUTS`; a file without ``input_layout`` predates them: 1)."""
    from . import registry
    from .inputs import INPUT_LAYOUTS, input_layout
    try:
        yield
    except ValueError as e:
        cfg = getattr(est, "train_config_", {}) or {}
        head = cfg.get("head")
        builder = registry.get(head).inputs if head in registry.names() else None
        trained, now = cfg.get("input_layout", 1), input_layout(builder) if builder else 1
        if builder is None or type(trained) is not int or trained >= now:   # a file is someone else's
            raise
        notes = INPUT_LAYOUTS[builder]
        feature = f" --feature {cfg['feature']}" if cfg.get("feature") else ""
        raise ValueError(f"{e}. This model file was trained on layout {trained} of the {builder!r} "
                         f"input ({notes.get(trained, 'unknown')}), saved by an older aqa-pipeline; "
                         f"this version builds layout {now} ({notes[now]}). Retrain the head: "
                         f"aqa-heads train {head} CACHE{feature} --out MODEL") from None


def model_inputs(est, cache, labels, split, allow_other=False):
    """``(head, feature, video ids, selected label rows, all label rows, X, untrained)`` of the
    ``split`` rows of ``cache`` (None: every video of the cache) for the trained head ``est``."""
    from aqa.data.cache import CacheReader
    cfg = getattr(est, "train_config_", {}) or {}
    head, feature = cfg.get("head"), cfg.get("feature")
    if head is None:
        raise ValueError("the model file has no training config (head name); was it saved by aqa-heads?")
    with CacheReader(cache) as r:
        check_comparable(est, r, allow_other)
        ids = r.video_ids()
        if split is None:
            try:
                rows = load_rows(r, labels)
                sel = [x for x in rows if x.video_id in set(ids)]
            except ValueError:
                rows, sel = [], []
            vids = ids if not sel else [x.video_id for x in sel]
        else:
            rows = load_rows(r, labels)
            sel = select_rows(rows, split, ids)
            vids = [x.video_id for x in sel]
        X = build_inputs(head, r, vids, feature)
        untrained = bool(r.provenance().get("untrained"))
    return head, feature, vids, sel, rows, X, untrained


def evaluate_model(est, cache, labels=None, split: str = "test", allow_other: bool = False) -> dict:
    """Metrics of the trained head ``est`` on the ``split`` rows of ``cache``:
    ``{"head", "feature", "n", "metrics", "untrained"}``; R-l2 ranges over every labelled score
    of each action."""
    from .metrics import evaluate
    head, feature, vids, sel, rows, X, untrained = model_inputs(est, cache, labels, split, allow_other)
    with layout_hint(est):
        pred = est.predict(X, **label_extras(est, sel, predict=True))
    groups = [x.action for x in sel]
    m = evaluate([x.score for x in sel], pred, groups=groups if any(groups) else None,
                 score_ranges=score_ranges_of(rows))
    return {"head": head, "feature": feature, "n": len(vids), "metrics": m, "untrained": untrained}


def predict_model(est, cache, labels=None, split: str | None = None, allow_other: bool = False) -> dict:
    """Predictions of the trained head ``est`` on the ``split`` rows of ``cache`` (None: every
    video): ``{"head", "feature", "predictions": [{"video_id", "pred_score", ...}], "untrained"}``;
    each prediction also has the ``action``, ``true_score`` and ``split`` the labels give."""
    head, feature, vids, sel, _, X, untrained = model_inputs(est, cache, labels, split, allow_other)
    extras = label_extras(est, sel, predict=True) if sel and len(sel) == len(vids) else {}
    needed = label_extras(est, [], predict=True).keys() if hasattr(est, "fit_extras") else ()
    if needed and not extras:
        raise ValueError(f"{head} needs labels columns {sorted(needed)} to predict; pass --labels")
    with layout_hint(est):
        pred = est.predict(X, **extras)
    rows = [{"video_id": v, "pred_score": float(p)} for v, p in zip(vids, pred)]
    by_id = {x.video_id: x for x in sel}
    for col, key, given in (("action", "action", bool), ("true_score", "score", math.isfinite),
                            ("split", "split", bool)):
        if any(given(getattr(x, key)) for x in sel):
            for row in rows:
                x = by_id.get(row["video_id"])
                row[col] = getattr(x, key) if x is not None else ""
    return {"head": head, "feature": feature, "predictions": rows, "untrained": untrained}


def explain_model(est, cache, out_dir, videos=(), split: str = "test", labels=None,
                  allow_other: bool = False) -> tuple[list[Path], list[str], str]:
    """Every interpretation plot of the trained head ``est`` (:func:`aqa.heads.plots.explain`)
    into ``out_dir``, the videos explained, and how they were chosen: ``videos``, else the
    first 3 labelled videos of ``split`` (comma-separated values; ``all``: any labelled video;
    labels without a split column: any), else the first 3 of the cache. Plots state each
    video's predicted and true score where the labels give it."""
    from aqa.data.cache import CacheReader
    from .plots import explain
    cfg = getattr(est, "train_config_", {}) or {}
    with CacheReader(cache) as r:
        check_comparable(est, r, allow_other)
        in_cache = r.video_ids()
        try:
            rows = load_rows(r, labels)
        except ValueError:
            if labels is not None:
                raise
            rows = []
        if videos:
            ids, chosen = list(videos), "as given"
        elif rows and has_splits(rows):
            ids, chosen = [x.video_id for x in select_rows(rows, split, in_cache)][:3], f"split {split!r}"
        elif rows:
            ids = [x.video_id for x in select_rows(rows, "all", in_cache)][:3]
            chosen = "the labelled videos; the labels have no split column"
        else:
            ids, chosen = in_cache[:3], "the cache's videos; it has no labels"
        X = build_inputs(cfg.get("head"), r, ids, cfg.get("feature"))
        by_id = {x.video_id: x for x in rows}
        extras = {}
        if label_extras(est, [], predict=True) or getattr(est, "predict_extras", None):
            missing = [v for v in ids if v not in by_id]
            if missing:
                raise ValueError(f"no label rows (action/difficulty) for {missing[:3]}")
            extras = label_extras(est, [by_id[v] for v in ids], predict=True)
    true = [by_id[v].score if v in by_id else None for v in ids]
    with layout_hint(est):
        return explain(est, X, ids, out_dir, true_scores=true, **extras), ids, chosen
