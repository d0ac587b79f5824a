"""Augmented views as extra training rows: one shared path for ``aqa-heads train``, the bench
and the recipes.

A view (:mod:`aqa.data.views`) is a transformed copy of a video extracted into the cache
(``aqa-extract --view flip``). :func:`training_set` appends, after a head's training rows, the
rows of the requested views of those same videos, with their sources' labels, and the
``augmented_of`` array that tells the head which row is a view of which (so that its early
stopping holds out a video together with its views). Test and validation rows are never views.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

__all__ = ["resolve_views", "training_set"]


def resolve_views(reader, head: str, spec) -> list[str]:
    """Canonical view names head ``head`` trains on, from ``spec``: None/""/"none" -> none;
    ``"paper"`` -> every view in the cache of a kind the head's paper uses
    (:attr:`~aqa.heads.registry.HeadSpec.paper_views`; none for a paper without augmentation);
    else view specs (``"flip,shift:1-5"`` or a list), each of which the cache must hold."""
    from aqa.data.views import parse_view, parse_views

    from . import registry
    if spec is None or spec in ("", "none", (), []):
        return []
    have = reader.views()
    if spec == "paper":
        kinds = registry.paper_view_kinds(head)
        names = [v for v in have if parse_view(v).kind in kinds]
        if kinds and not names and registry.accepts_views(head):
            specs = " ".join(f"--view {v}" for v in registry.get(head).paper_views)
            warnings.warn(f"{head}: its paper trains on {'/'.join(sorted(kinds))} views and "
                          f"{reader.path} has none, so it trains on the source videos only "
                          f"(`aqa-extract ... {specs}` adds them)", UserWarning, stacklevel=2)
    else:
        names = [v.name for v in parse_views(spec)]
        missing = [v for v in names if v not in have]
        if missing:
            raise ValueError(f"{reader.path}: no {missing[0]!r} view in the cache (it has "
                             f"{sorted(have) or 'no views'}); extract it with "
                             f"`aqa-extract ... --view {missing[0]}`")
    if names and not registry.accepts_views(head):
        cls = registry.estimator_class(head)
        why = getattr(cls, "_views_refusal", "it is a scikit-learn baseline fitted on the source "
                                             "videos only")
        raise ValueError(f"head {head!r} does not train on augmented views: {why}")
    return names


def training_set(head: str, reader, rows: Sequence, feature, views: Sequence[str] = ()):
    """``(X, y, fit_rows, fit_kwargs)`` for fitting ``head`` on label ``rows`` plus their views.

    ``fit_rows`` are ``rows`` followed by each row again once per view (for the per-sample
    keywords the labels give, e.g. ``groups``); ``fit_kwargs`` is ``{"augmented_of": ...}``
    when ``views`` is not empty, else ``{}``. A training video without one of the views is an
    error naming it (a view extracted for some videos only would weight those videos more).
    """
    from .dataset import build_inputs
    ids = [r.video_id for r in rows]
    # one stack over sources and views: a view of another shape (a shift that leaves a video fewer
    # clips) is the cache's error naming the videos of each shape
    X = build_inputs(head, reader, ids + [i for v in views for i in reader.view_ids(ids, v)], feature)
    fit_rows = list(rows) * (1 + len(views))
    y = np.array([r.score for r in fit_rows], dtype=float)
    if not views:
        return X, y, fit_rows, {}
    n = len(rows)
    augmented_of = np.concatenate([np.full(n, -1)] + [np.arange(n)] * len(views)).astype(np.int64)
    return X, y, fit_rows, {"augmented_of": augmented_of}
