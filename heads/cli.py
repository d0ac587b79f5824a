"""``aqa-heads``: train, evaluate, predict with and explain scoring heads on a feature cache.

    aqa-heads list
    aqa-heads train jrg feats.h5 [--labels labels.csv] [--feature i3d_rgb] [--split train]
                                 [--test-split test] [--seed 0] [--out model.pt] [-p max_iter=500]
    aqa-heads evaluate model.pt feats.h5 [--split test]
    aqa-heads predict model.pt feats.h5 --out preds.csv|preds.json
    aqa-heads explain model.pt feats.h5 --out plots/ [--video ID | --split test]

Labels come from ``--labels`` (a labels CSV, :mod:`aqa.data.labels`) or the cache's /labels table.
``--split`` selects rows by the labels' split column (comma-separated values; ``all`` = every
labelled video). Validation for early stopping is carved from the training rows only; the test rows
are never used for selection. :mod:`aqa.heads.train` is the same path as functions
(:func:`~aqa.heads.train.run_train_eval`); this module only parses and dispatches.

``evaluate``, ``predict`` and ``explain`` refuse a cache whose features were extracted with other
settings than the model's training cache (:func:`~aqa.heads.train.check_comparable`: another frame size, TV-L1
parameters, checkpoint, untrained mark...); ``--allow-other-features`` scores it anyway, warned.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click

from aqa.data import logs
from aqa.data.cli import fail, plain_warnings

from . import registry
from .presets import PRESETS, parse_params, presets_for
from .train import run_train_eval

__all__ = ["main"]


# ---------------------------------------------------------------------- click
def _parse_params(items) -> dict:
    """``key=value`` pairs (:func:`aqa.heads.presets.parse_params`), a bad one as a click error."""
    try:
        return parse_params(items)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--param") from None


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
                            help="Allow pickled non-neural heads saved by older versions (loading runs "
                                 "pickle); only for your own files.")
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
@click.option("-v", "--verbose", count=True,
              help="Debug lines and third-party libraries' output (silenced by default).")
@click.option("-q", "--quiet", is_flag=True, help="Warnings and errors only.")
@click.pass_context
def main(ctx, verbose, quiet):
    if verbose and quiet:
        raise click.UsageError("-v/--verbose and -q/--quiet exclude each other")
    logs.setup(verbose=verbose, quiet=quiet)
    plain_warnings(ctx)


@main.command("list", help="List the registered heads and their parameters.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_cmd(as_json):
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
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None,
              help="A named parameter set under -p: 'paper' is the head's published training setup.")
@_views_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("-v", "--verbose", is_flag=True,
              help="Progress bars while training (the default on a terminal, without --json).")
def train(head, cache, labels, feature, split, test_split, seed, out, params, preset, views, as_json,
          verbose):
    verbose = verbose or (not as_json and sys.stderr.isatty())
    try:
        head_params = {**presets_for([head], preset).get(head, {}), **_parse_params(params)}
        res = run_train_eval(cache, labels, head, feature, seed, head_params, split,
                             test_split or None, out, verbose, views=views)
    except _expected_errors() as e:
        fail(_reason(e))
    _untrained_note(res["untrained_features"])
    if res["note"] and not as_json:
        click.echo(f"note: {res['note']}")
    extra = {k: res[k] for k in ("head", "feature", "seed", "n_train", "n_test", "model_path",
                                 "untrained_features")}
    if res["note"] and as_json:
        extra["note"] = res["note"]
    if res["views"]:
        extra["views"] = f"{','.join(res['views'])} (+{res['n_train_views']} training rows)"
    _print_metrics(res["metrics"], as_json, extra)


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
    from .train import evaluate_model, load_model
    try:
        res = evaluate_model(load_model(model, trust_model), cache, labels, split, allow_other)
    except _expected_errors() as e:
        fail(_reason(e))
    _untrained_note(res["untrained"])
    _print_metrics(res["metrics"], as_json, {"head": res["head"], "feature": res["feature"],
                                             "split": split, "n": res["n"]})


@main.command(help="Predict scores with a trained head; writes CSV or JSON (by --out suffix) or prints "
                   "CSV: video_id, pred_score, and the action, true_score and split the labels give.")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("cache", type=click.Path(exists=True, dir_okay=False))
@click.option("--labels", type=click.Path(exists=True, dir_okay=False),
              help="Labels CSV (default: the cache's /labels; heads that score by action need it).")
@click.option("--split", default=None, help="Only these split value(s) (default: every video in the cache).")
@click.option("--out", type=click.Path(dir_okay=False), help="preds.csv or preds.json")
@_trust_model
@_allow_other_features
def predict(model, cache, labels, split, out, trust_model, allow_other):
    from .train import load_model, predict_model
    try:
        res = predict_model(load_model(model, trust_model), cache, labels, split, allow_other)
    except _expected_errors() as e:
        fail(_reason(e))
    _untrained_note(res["untrained"])
    head, feature, rows = res["head"], res["feature"], res["predictions"]
    if out and Path(out).suffix.lower() == ".json":
        Path(out).write_text(json.dumps({"head": head, "feature": feature, "predictions": rows}, indent=2))
    else:
        f = open(out, "w", newline="") if out else sys.stdout
        try:
            w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["video_id", "pred_score"])
            w.writeheader()
            w.writerows(rows)
        finally:
            if out:
                f.close()
    if out:
        click.echo(f"wrote {len(rows)} predictions to {out}")


@main.command(help="Plots: per-step scores, per-joint scores and learned relation graphs (PNG), of "
                   "the first 3 test videos unless --video or --split says otherwise; each plot "
                   "states the predicted and true scores.")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("cache", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--video", "videos", multiple=True, help="Video id(s) to explain (repeatable).")
@click.option("--split", default="test", show_default=True,
              help="Without --video: the first 3 labelled videos of these split value(s) ('all': any).")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False),
              help="Labels CSV (default: the cache's /labels).")
@_trust_model
@_allow_other_features
def explain(model, cache, out_dir, videos, split, labels, trust_model, allow_other):
    from .train import explain_model, load_model
    try:
        paths, ids, chosen = explain_model(load_model(model, trust_model), cache, out_dir, videos,
                                           split, labels, allow_other)
    except _expected_errors() as e:
        fail(_reason(e))
    click.echo(f"explained: {', '.join(ids)}" + ("" if videos else f" (first of {chosen})"))
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
@click.option("-p", "--param", "params", multiple=True,
              help="HEAD.key=value parameter (repeatable); one for a head this bench does not run "
                   "is warned about and not used.")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None,
              help="A named parameter set for every head under -p: 'paper' is each head's "
                   "published training setup.")
@click.option("--selection", type=click.Choice(["refit", "early-stopped", "budget"]), default="refit",
              show_default=True,
              help="Neural heads' training length: early stopping on a validation part of the "
                   "training rows then a refit on all of them; the early-stopped model; or the "
                   "full budget with no selection.")
@click.option("--views", default=None, metavar="SPECS|paper",
              help="Augmented views (aqa-extract --view) added to the training rows of every head "
                   "that trains on views (not the SVR baselines nor CoRe), e.g. 'flip'; 'paper': "
                   "each head the views its paper trains on that the cache holds.")
@click.option("--out", "out_dir", default="bench_report", show_default=True, type=click.Path(file_okay=False),
              help="Report folder; each finished fit is kept in its fits/ folder, and a rerun with "
                   "the same settings reads it back instead of fitting again.")
@click.option("--fresh", is_flag=True, help="Fit everything again, replacing the stored fits.")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def bench(cache, labels, heads, seeds, feature, protocol, train_split, test_split, no_per_action,
          benchmark, params, preset, selection, views, out_dir, fresh, as_json):
    from .bench import run_bench
    from .report import rows_for_table, to_markdown, write_report
    try:
        head_params: dict = presets_for(registry.resolve_heads(heads), preset)
    except ValueError as e:
        fail(str(e))
    for key, value in _parse_params(params).items():
        head, dot, name = key.partition(".")
        if not dot:
            fail(f"bench parameters are HEAD.key=value, got {key!r}")
        head_params.setdefault(head, {})[name] = value
    try:
        res = run_bench(cache, labels=labels, heads=heads, seeds=seeds, feature=feature,
                        protocol=protocol, train_split=train_split, test_split=test_split,
                        per_action=not no_per_action, params=head_params, benchmark=benchmark,
                        progress=not as_json, selection=selection, views=views,
                        store=Path(out_dir) / "fits", fresh=fresh)
    except _expected_errors() as e:
        fail(_reason(e))
    paths = write_report(res, out_dir)
    if res.setup.get("interrupted"):
        click.echo(f"interrupted ({res.setup['interrupted']}): partial table in {paths['md']}; run "
                   f"the same command again to finish it", err=True)
        sys.exit(130)
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
