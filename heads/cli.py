"""``aqa-heads``: train, evaluate, predict with and explain scoring heads on a feature cache.

    aqa-heads list
    aqa-heads train jrg feats.h5 [--labels labels.csv] [--feature i3d_rgb] [--split train]
                                 [--test-split test] [--seed 0] [--out model.pt] [-p max_iter=500]
    aqa-heads evaluate model.pt feats.h5 [--split test]
    aqa-heads predict model.pt feats.h5 --out preds.csv|preds.json
    aqa-heads explain model.pt feats.h5 --out plots/ [--video ID]

Labels come from ``--labels`` (a labels CSV, :mod:`aqa.data.labels`) or the cache's /labels table.
``--split`` selects rows by the labels' split column (comma-separated values; ``all`` = every
labelled video). Validation for early stopping is carved from the training rows only; the test rows
are never used for selection. :func:`run_train_eval` is the same path as a function.

``evaluate``, ``predict`` and ``explain`` refuse a cache whose features were extracted with other
settings than the model's training cache (:func:`check_comparable`: another frame size, TV-L1
parameters, checkpoint, untrained mark...); ``--allow-other-features`` scores it anyway, warned.
"""
from __future__ import annotations

import ast
import csv
import json
import math
import sys
from pathlib import Path
from typing import Sequence

import click
import numpy as np

from aqa.data.cli import fail, plain_warnings

__all__ = ["main", "run_train_eval", "load_rows", "select_rows", "check_comparable"]

#: labels column passed for each per-sample keyword a head declares in ``fit_extras``.
EXTRA_COLUMNS = {"groups": "action", "difficulty": "difficulty"}


# ---------------------------------------------------------------------- the library path
def load_rows(reader, labels=None):
    """Label rows from a CSV path, a list of LabelRow, or (None) the cache's /labels table."""
    from aqa.data.labels import read_labels_csv
    if labels is None:
        rows = reader.labels()
        if not rows:
            raise ValueError(f"{reader.path} has no /labels table; pass a labels CSV (--labels)")
        return rows
    if isinstance(labels, (str, Path)):
        return read_labels_csv(labels)
    return list(labels)


def select_rows(rows, split: str, available: Sequence[str]):
    """Rows whose split is in the comma-separated ``split`` (``all``: every row) and whose video is
    in the cache; an empty selection is an error naming the split values present."""
    have = set(available)
    wanted = None if split == "all" else {s.strip() for s in split.split(",") if s.strip()}
    sel = [r for r in rows if (wanted is None or r.split in wanted) and r.video_id in have]
    if not sel:
        splits = sorted({r.split for r in rows})
        missing = sum(r.video_id not in have for r in rows)
        raise ValueError(f"no labelled videos in split {split!r} found in the cache "
                         f"(split values: {splits}; {missing} of {len(rows)} labelled videos are not "
                         f"in the cache)")
    bad = [r.video_id for r in sel if not math.isfinite(r.score)]
    if bad:
        raise ValueError(f"{len(bad)} selected videos have no score, e.g. {bad[:3]}")
    return sel


def _warn_unmatched(rows, ids) -> None:
    """Say which cache videos have no label row, and which label rows no cache video."""
    import warnings
    labelled = {x.video_id for x in rows}
    for what, missing, total in (("cache videos have no label row", sorted(set(ids) - labelled), len(ids)),
                                 ("label rows have no video in the cache", sorted(labelled - set(ids)),
                                  len(labelled))):
        if missing:
            warnings.warn(f"{len(missing)} of {total} {what} and are left out: "
                          f"{', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}", UserWarning,
                          stacklevel=3)


def _extras(estimator, rows, predict: bool = False) -> dict:
    """Per-sample keywords from the labels. At fit time every name in ``fit_extras``; at predict
    time only ``predict_extras`` if the head declares it, else the ones known before a performance
    is judged (``groups`` = action, ``difficulty``) -- never sub-scores, which would leak targets."""
    from .registry import fit_extras
    names = fit_extras(estimator)
    if predict:
        declared = getattr(estimator, "predict_extras", None)
        names = tuple(declared) if declared is not None else tuple(n for n in names if n in EXTRA_COLUMNS)
    out = {}
    for name in names:
        col = EXTRA_COLUMNS.get(name, name)
        vals = [r.as_dict().get(col) for r in rows]
        out[name] = np.asarray(vals)
    return out


def _build_X(head: str, reader, ids, feature):
    from .inputs import build_inputs
    return build_inputs(head, reader, ids, feature)


def run_train_eval(cache, labels=None, head: str = "jrg", feature: str | None = None, seed: int = 0,
                   params: dict | None = None, train_split: str = "train",
                   test_split: str | None = "test", out=None, verbose: bool = False,
                   views=None) -> dict:
    """Train ``head`` on the ``train_split`` rows of ``cache`` and evaluate on ``test_split``.

    ``views``: augmented views added to the training rows (:func:`aqa.heads.augment.resolve_views`:
    ``"paper"``, specs such as ``"flip"``, or None); never to the test rows.
    Returns ``{"metrics": {...} or None, "predictions": {video_id: score} (test rows),
    "head", "feature", "n_train", "n_test", "views", "n_train_views", "untrained_features",
    "model_path", "estimator", "score_ranges"}``. R-l2 uses each action's s_min/s_max over all
    its labelled scores (``score_ranges``, CoRe eq. 11), not the test rows' range.
    """
    from aqa.data.cache import CacheReader
    from . import registry
    from .base import save_head
    from .inputs import default_feature
    from .augment import resolve_views, training_set
    from .bench import score_ranges_of
    from .metrics import evaluate
    params = dict(params or {})
    spec = registry.get(head)
    with CacheReader(cache) as r:
        rows = load_rows(r, labels)
        ids = r.video_ids()
        _warn_unmatched(rows, ids)
        feature = feature or (None if spec.inputs == "pose_traj" else
                              default_feature(r, part="joints" if spec.inputs == "jrg" else "whole"))
        tr = select_rows(rows, train_split, ids)
        te = select_rows(rows, test_split, ids) if test_split else []
        overlap = {x.video_id for x in tr} & {x.video_id for x in te}
        if overlap:
            raise ValueError(f"{len(overlap)} videos are in both the train and the test split")
        views = resolve_views(r, head, views)
        Xtr, ytr, fit_rows, aug = training_set(head, r, tr, feature, views)
        Xte = _build_X(head, r, [x.video_id for x in te], feature) if te else None
        prov = r.provenance()
    est_params = {"random_state": seed, **params}
    if verbose and "verbose" in registry.head_parameters(head):
        est_params.setdefault("verbose", True)
    est = registry.make(head, **est_params)
    est.fit(Xtr, ytr, **_extras(est, fit_rows), **aug)
    result = {"head": head, "feature": feature, "seed": seed, "n_train": len(tr), "n_test": len(te),
              "views": views, "n_train_views": len(fit_rows) - len(tr),
              "untrained_features": bool(prov.get("untrained")), "metrics": None, "predictions": {},
              "estimator": est, "model_path": None}
    if te:
        pred = est.predict(Xte, **_extras(est, te, predict=True))
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
                  "train_ids": [x.video_id for x in tr]}
        result["model_path"] = str(save_head(est, out, provenance=prov, config=config))
    return result


# ---------------------------------------------------------------------- click
#: spellings of the Python constants a shell user types (``-p staged=false``)
_CONSTANTS = {"true": True, "false": False, "none": None, "null": None}


def _parse_params(items) -> dict:
    """``key=value`` pairs: a Python literal (``3``, ``1e-3``, ``(4, 2)``, ``'cyclic'``),
    ``true``/``false``/``none`` in any case, else the text itself."""
    out = {}
    for it in items:
        key, eq, val = it.partition("=")
        if not eq or not key:
            raise click.BadParameter(f"expected key=value, got {it!r}", param_hint="--param")
        if val.strip().lower() in _CONSTANTS:
            out[key.strip()] = _CONSTANTS[val.strip().lower()]
            continue
        try:
            out[key.strip()] = ast.literal_eval(val)
        except (ValueError, SyntaxError):
            out[key.strip()] = val
    return out


def _reason(e: BaseException) -> str:
    """The message of an expected error: a KeyError's text without the quotes str() adds."""
    return str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)


def _expected_errors() -> tuple[type, ...]:
    """Bad input or environment (a missing file, a cache that is not one or is held by another
    process, a bad parameter): an ``error:`` line, not a traceback."""
    from aqa.data.cache import CacheError
    return (ValueError, KeyError, FileNotFoundError, CacheError)


def _print_metrics(m: dict | None, as_json: bool, extra: dict):
    if as_json:
        click.echo(json.dumps({**extra, "metrics": m}, indent=2, default=float))
        return
    for k, v in extra.items():
        click.echo(f"{k}: {v}")
    if m is None:
        return
    click.echo(f"spearman: {m['spearman']:.4f}   mse: {m['mse']:.4f}   R-l2(x100): {100 * m['rl2']:.4f}"
               f"   n={m['n']}")
    if "per_action" in m:
        for a, v in m["per_action"].items():
            click.echo(f"  {a:24s} rho={v['spearman']:.4f}  R-l2(x100)={100 * v['rl2']:.4f}  n={v['n']}")
        click.echo(f"Fisher-z average spearman: {m['spearman_fisher_z']:.4f}")


#: options of every command that loads a trained model
_trust_model = click.option("--trust-model", is_flag=True,
                            help="Allow pickled (non-neural) heads; only for your own files.")
_allow_other_features = click.option(
    "--allow-other-features", "allow_other", is_flag=True,
    help="Score a cache extracted with other settings than the training cache (warned).")


_views_option = click.option(
    "--views", default=None, metavar="SPECS|paper",
    help="Add these augmented views of the training videos (extracted with aqa-extract --view) "
         "as training rows, e.g. 'flip' or 'shift:1-5'; 'paper': the views the head's paper "
         "trains on that the cache holds. Test and validation rows are never views.")


def _untrained_note(untrained: bool):
    if untrained:
        click.echo("NOTE: this cache holds features from UNTRAINED (random) weights; scores are not "
                   "meaningful for comparison with the papers.", err=True)


@click.group(help="Train, evaluate and explain AQA scoring heads on a feature cache.",
             context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(ctx):
    plain_warnings(ctx)


@main.command("list", help="List the registered heads and their parameters.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_cmd(as_json):
    from . import registry
    items = []
    for spec in registry.HEADS:
        try:
            p = registry.head_parameters(spec.name)
        except ImportError as e:
            p = {"<unavailable>": str(e)}
        try:
            views = (list(spec.paper_views) if registry.accepts_views(spec.name)
                     else "does not train on views")
        except ImportError:
            views = "unknown"
        items.append({"name": spec.name, "baseline": spec.baseline, "description": spec.description,
                      "reference": spec.reference,
                      "inputs": spec.inputs, "paper_views": views, "parameters": p})
    if as_json:
        click.echo(json.dumps(items, indent=2, default=repr))
        return
    for it in items:
        v = it["paper_views"]
        views = (", ".join(v) or "none") if isinstance(v, list) else v
        mark = " (baseline)" if it["baseline"] else ""
        click.echo(f"{it['name']}{mark}: {it['description']}\n    [{it['reference']}]  inputs: {it['inputs']}"
                   f"  --views paper: {views}")
        click.echo("    " + ", ".join(f"{k}={v!r}" for k, v in it["parameters"].items()))


@main.command(help="Train HEAD on the cache's --split rows; evaluate on --test-split if present.")
@click.argument("head")
@click.argument("cache", type=click.Path(exists=True, dir_okay=False))
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), help="Labels CSV (default: the cache's /labels).")
@click.option("--feature", help="Feature family, e.g. i3d_rgb (default: the best one in the cache).")
@click.option("--split", "split", default="train", show_default=True, help="Training split value(s), comma-separated.")
@click.option("--test-split", default="test", show_default=True, help="Split evaluated after training ('' for none).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the trained head here (e.g. model.pt).")
@click.option("-p", "--param", "params", multiple=True, help="Head parameter key=value (repeatable).")
@_views_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("-v", "--verbose", is_flag=True,
              help="Progress bars while training (the default on a terminal, without --json).")
def train(head, cache, labels, feature, split, test_split, seed, out, params, views, as_json,
          verbose):
    verbose = verbose or (not as_json and sys.stderr.isatty())
    try:
        res = run_train_eval(cache, labels, head, feature, seed, _parse_params(params), split,
                             test_split or None, out, verbose, views=views)
    except _expected_errors() as e:
        fail(_reason(e))
    _untrained_note(res["untrained_features"])
    extra = {k: res[k] for k in ("head", "feature", "seed", "n_train", "n_test", "model_path",
                                 "untrained_features")}
    if res["views"]:
        extra["views"] = f"{','.join(res['views'])} (+{res['n_train_views']} training rows)"
    _print_metrics(res["metrics"], as_json, extra)


def _load_model(model, trust):
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


def _model_rows(est, cache, labels, split, allow_other=False):
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
        X = _build_X(head, r, vids, feature)
        untrained = bool(r.provenance().get("untrained"))
    return head, feature, vids, sel, rows, X, untrained


@main.command(help="Evaluate a trained head (MODEL) on the --split rows of CACHE.")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("cache", type=click.Path(exists=True, dir_okay=False))
@click.option("--labels", type=click.Path(exists=True, dir_okay=False),
              help="Labels CSV (default: the cache's /labels).")
@click.option("--split", default="test", show_default=True, help="Split value(s) to evaluate, comma-separated.")
@_trust_model
@_allow_other_features
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def evaluate(model, cache, labels, split, trust_model, allow_other, as_json):
    from .metrics import evaluate as _evaluate
    try:
        est = _load_model(model, trust_model)
        head, feature, vids, sel, rows, X, untrained = _model_rows(est, cache, labels, split,
                                                                   allow_other)
        pred = est.predict(X, **_extras(est, sel, predict=True))
        groups = [x.action for x in sel]
        from .bench import score_ranges_of   # R-l2 ranges over every labelled score of each action
        m = _evaluate([x.score for x in sel], pred, groups=groups if any(groups) else None,
                      score_ranges=score_ranges_of(rows))
    except _expected_errors() as e:
        fail(_reason(e))
    _untrained_note(untrained)
    _print_metrics(m, as_json, {"head": head, "feature": feature, "split": split, "n": len(vids)})


@main.command(help="Predict scores with a trained head; writes CSV or JSON (by --out suffix) or prints CSV.")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("cache", type=click.Path(exists=True, dir_okay=False))
@click.option("--labels", type=click.Path(exists=True, dir_okay=False),
              help="Labels CSV (default: the cache's /labels; heads that score by action need it).")
@click.option("--split", default=None, help="Only these split value(s) (default: every video in the cache).")
@click.option("--out", type=click.Path(dir_okay=False), help="preds.csv or preds.json")
@_trust_model
@_allow_other_features
def predict(model, cache, labels, split, out, trust_model, allow_other):
    try:
        est = _load_model(model, trust_model)
        head, feature, vids, sel, _, X, untrained = _model_rows(est, cache, labels, split,
                                                                allow_other)
        extras = _extras(est, sel, predict=True) if sel and len(sel) == len(vids) else {}
        needed = _extras(est, [], predict=True).keys() if hasattr(est, "fit_extras") else ()
        if needed and not extras:
            raise ValueError(f"{head} needs labels columns {sorted(needed)} to predict; pass --labels")
        pred = est.predict(X, **extras)
    except _expected_errors() as e:
        fail(_reason(e))
    _untrained_note(untrained)
    rows = [{"video_id": v, "pred_score": float(p)} for v, p in zip(vids, pred)]
    if out and Path(out).suffix.lower() == ".json":
        Path(out).write_text(json.dumps({"head": head, "feature": feature, "predictions": rows}, indent=2))
    else:
        f = open(out, "w", newline="") if out else sys.stdout
        try:
            w = csv.DictWriter(f, fieldnames=["video_id", "pred_score"])
            w.writeheader()
            w.writerows(rows)
        finally:
            if out:
                f.close()
    if out:
        click.echo(f"wrote {len(rows)} predictions to {out}")


@main.command(help="Plots: per-step scores, per-joint scores and learned relation graphs (PNG).")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("cache", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--video", "videos", multiple=True, help="Video id(s) to explain (default: the first 3).")
@_trust_model
@_allow_other_features
def explain(model, cache, out_dir, videos, trust_model, allow_other):
    from aqa.data.cache import CacheReader
    from .plots import explain as _explain
    try:
        est = _load_model(model, trust_model)
        cfg = getattr(est, "train_config_", {}) or {}
        with CacheReader(cache) as r:
            check_comparable(est, r, allow_other)
            ids = list(videos) or r.video_ids()[:3]
            X = _build_X(cfg.get("head"), r, ids, cfg.get("feature"))
            extras = {}
            if _extras(est, [], predict=True) or getattr(est, "predict_extras", None):
                by_id = {x.video_id: x for x in load_rows(r, None)}
                missing = [v for v in ids if v not in by_id]
                if missing:
                    raise ValueError(f"no label rows (action/difficulty) for {missing[:3]}")
                extras = _extras(est, [by_id[v] for v in ids], predict=True)
        paths = _explain(est, X, ids, out_dir, **extras)
    except _expected_errors() as e:
        fail(_reason(e))
    for p in paths:
        click.echo(str(p))



@main.command(help="Train and test every head (or --heads) on one cache and split over --seeds; "
                   "per-action tables (Spearman, R-l2, MSE; mean +- std; Fisher-z average), "
                   "written as Markdown, CSV, JSON and a predicted-vs-true plot.")
@click.argument("cache", type=click.Path(exists=True, dir_okay=False))
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), help="Labels CSV (default: the cache's /labels).")
@click.option("--heads", default="all", show_default=True, help="Comma-separated head names, or all.")
@click.option("--seeds", default=5, show_default=True, type=click.IntRange(min=1), help="Seeds 0..N-1 per head.")
@click.option("--feature", help="Feature family; families joined with + are concatenated.")
@click.option("--protocol", type=click.Choice(["split", "folds"]), default="split", show_default=True,
              help="train/test split, or k-fold over split values fold0..foldK (JIGSAWS).")
@click.option("--split", "train_split", default="train", show_default=True,
              help="Training split value (split protocol).")
@click.option("--test-split", default="test", show_default=True, help="Test split value (split protocol).")
@click.option("--no-per-action", is_flag=True, help="One table over all actions.")
@click.option("--benchmark", type=click.Choice(["aqa7", "mtl_aqa", "unlv_dive", "jigsaws", "finediving"]),
              help="Show the published figures of this benchmark beside ours.")
@click.option("-p", "--param", "params", multiple=True, help="HEAD.key=value parameter (repeatable).")
@click.option("--selection", type=click.Choice(["refit", "early-stopped", "budget"]), default="refit",
              show_default=True,
              help="Neural heads' training length: early stopping on a validation part of the "
                   "training rows then a refit on all of them; the early-stopped model; or the "
                   "full budget with no selection.")
@click.option("--views", default=None, metavar="SPECS|paper",
              help="Augmented views (aqa-extract --view) added to the training rows of every head "
                   "that trains on views (not the SVR baselines nor CoRe), e.g. 'flip'; 'paper': "
                   "each head the views its paper trains on that the cache holds.")
@click.option("--out", "out_dir", default="bench_report", show_default=True, type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def bench(cache, labels, heads, seeds, feature, protocol, train_split, test_split, no_per_action,
          benchmark, params, selection, views, out_dir, as_json):
    from .bench import rows_for_table, run_bench, to_markdown, write_report
    head_params: dict = {}
    for key, value in _parse_params(params).items():
        head, dot, name = key.partition(".")
        if not dot:
            fail(f"bench parameters are HEAD.key=value, got {key!r}")
        head_params.setdefault(head, {})[name] = value
    try:
        res = run_bench(cache, labels=labels, heads=heads, seeds=seeds, feature=feature,
                        protocol=protocol, train_split=train_split, test_split=test_split,
                        per_action=not no_per_action, params=head_params, benchmark=benchmark,
                        progress=not as_json, selection=selection, views=views)
    except _expected_errors() as e:
        fail(_reason(e))
    paths = write_report(res, out_dir)
    if as_json:
        click.echo(json.dumps(rows_for_table(res), default=float))
    else:
        click.echo(to_markdown(res))
        click.echo(f"report: {paths['md']} {paths['csv']} {paths['json']} {paths['png']}")
    for head in res.heads:
        for err in res.head_errors(head):
            click.echo(f"warning: {head} {err}", err=True)
    if res.errors:
        fail(f"{len(res.errors)} run(s) failed (listed above and in {paths['md']})")


if __name__ == "__main__":
    main()
