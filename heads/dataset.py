"""A head's examples from a feature cache: label rows, their selection by split, the head's
inputs X (through its registered input builder) and the per-sample keywords its ``fit`` and
``predict`` take from the labels. The one path from cache to data shared by training
(:mod:`aqa.heads.train`), the bench, the recipes and the CLI.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["EXTRA_COLUMNS", "load_rows", "select_rows", "warn_unmatched", "label_extras",
           "build_inputs", "score_ranges_of", "has_splits", "head_feature", "load_xy"]

#: labels column passed for each per-sample keyword a head declares in ``fit_extras``.
EXTRA_COLUMNS = {"groups": "action", "difficulty": "difficulty"}


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
    in the cache; an empty selection is an error saying why (no such split value, or none of its
    videos in the cache)."""
    have = set(available)
    wanted = None if split == "all" else {s.strip() for s in split.split(",") if s.strip()}
    if wanted is not None and not wanted:
        raise ValueError(f"no split value given ({split!r}); name one, or 'all' for every labelled video")
    in_split = [r for r in rows if wanted is None or r.split in wanted]
    sel = [r for r in in_split if r.video_id in have]
    if not sel:
        splits = sorted({r.split for r in rows})
        if not in_split:
            raise ValueError(f"no labelled video has split {split!r}" + (
                " (the labels have no split column)" if splits == [""] else f" (split values: {splits})"))
        raise ValueError(f"none of the {len(in_split)} labelled videos in split {split!r} is in the "
                         f"cache (e.g. {in_split[0].video_id!r})")
    bad = [r.video_id for r in sel if not math.isfinite(r.score)]
    if bad:
        raise ValueError(f"{len(bad)} selected videos have no score, e.g. {bad[:3]}")
    return sel


def has_splits(rows) -> bool:
    """Whether the labels say a split for any row (a table without a split column says none)."""
    return any(r.split for r in rows)


def warn_unmatched(rows, ids) -> None:
    """Say which cache videos have no label row, and which label rows no cache video."""
    labelled = {x.video_id for x in rows}
    for what, missing, total in (("cache videos have no label row", sorted(set(ids) - labelled), len(ids)),
                                 ("label rows have no video in the cache", sorted(labelled - set(ids)),
                                  len(labelled))):
        if missing:
            warnings.warn(f"{len(missing)} of {total} {what} and are left out: "
                          f"{', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}", UserWarning,
                          stacklevel=3)


def label_extras(estimator, rows, predict: bool = False) -> dict:
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


def build_inputs(head_name: str, reader, ids, feature: str | None = None) -> np.ndarray:
    """X for head ``head_name`` (its registry entry names the builder) over ``ids``."""
    from .registry import input_builder
    return input_builder(head_name)(reader, list(ids), feature)


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


def head_feature(reader, head: str, feature: str | None = None) -> str | None:
    """``feature``, or the family ``head`` reads by default from this cache: the best one with
    joint features for JRG, the best whole-scene one otherwise, none for pose trajectories."""
    from . import registry
    from .inputs import default_feature
    if feature:
        return feature
    kind = registry.get(head).inputs
    if kind == "pose_traj":
        return None
    return default_feature(reader, part="joints" if kind == "jrg" else "whole")


def load_xy(cache, head: str, split: str = "all", labels=None, feature: str | None = None):
    """``(X, y, groups)`` of head ``head`` over the labelled videos of ``cache`` in ``split``
    (comma-separated split values, ``all`` = every labelled video): X as the head takes it,
    y the scores, groups the actions (for ``GroupKFold``, or a head's ``groups=``).
    ``labels``: a labels CSV or rows instead of the cache's /labels table; ``feature``: the
    feature family (default: :func:`head_feature`)."""
    from aqa.data.cache import CacheReader
    with CacheReader(cache) as r:
        rows = select_rows(load_rows(r, labels), split, r.video_ids())
        X = build_inputs(head, r, [x.video_id for x in rows], head_feature(r, head, feature))
    return X, np.array([x.score for x in rows], dtype=float), np.array([x.action for x in rows])
