"""The stats anchor of the neural heads: a ``stats-ridge`` fitted inside the head, whose residual
the network learns (``stats_anchor=True``).

A neural head's prediction is ``anchor(X) + network(X)``: the anchor is the classical baseline
(:func:`aqa.heads.baselines.stats_ridge`: per-video mean, std, max, min of every step column ->
StandardScaler -> RidgeCV) with the columns' slow shape added (below), fitted on the head's own
input, and the network is trained on what the anchor leaves unexplained. The training residuals are the anchor's *leave-one-out* residuals
(RidgeCV's efficient leave-one-out predictions at the chosen penalty), so the network, and its
early stopping, see the errors the anchor makes on videos it has not seen, not its in-sample fit.
The network's output is then added with a weight fitted on early stopping's validation rows
(``network_weight``, :class:`aqa.heads.base.TorchRegressor`), so a network that does worse than the
anchor alone on unseen rows is shrunk towards it. Why and with what effect:
``docs/heads_vs_baseline.md``.

The anchor's statistics are ``stats-ridge``'s four plus the DCT coefficients 1..:data:`ANCHOR_DCT`
of each column's step series (:class:`aqa.heads.baselines.TemporalStats` ``n_dct``): the slow
shape of each column over the video, which a temporal head should model and the four statistics
lose. ``stats-ridge`` itself keeps the four (the plain baseline every report shows), so a report
tells what the anchor's temporal shape and the network add together.

The fitted anchor is stored as plain arrays (the head file format keeps numpy arrays only):
the statistics' fill values, the scaler's mean and scale, the ridge weights.
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.preprocessing import StandardScaler

from .baselines import RIDGE_ALPHAS, STATS, TemporalStats, fill_missing, temporal_statistics

__all__ = ["ANCHOR_DCT", "anchor_steps", "fit_anchor", "predict_anchor", "check_anchor"]

#: DCT coefficients of each step column the anchor takes beside mean/std/max/min (fewer when a
#: video has fewer steps). Measured on training rows only, never the heads-vs-baseline table's test
#: rows (``benchmarks/temporal_stats.py --features kin_pose --n-fit 40,80,160``, 5 draws; the
#: validation Spearman of ``stats-ridge`` with and without 4 coefficients): on the ``aqa-data synth``
#: seed-1 set single +0.022 / +0.010 / +0.008 at 40 / 80 / 160 training videos, sync +0.016 /
#: +0.013 / -0.003, coordination +0.028 / +0.058 / +0.030; on the seed-2 set at 40, single +0.034,
#: sync -0.002. With 8 coefficients coordination at 40 videos was 0.12 below 4; 2 gained less than 4.
ANCHOR_DCT = 4


def anchor_steps(X) -> np.ndarray:
    """The anchor's view of a head's input as (n, S, F) step columns: axis 1 is the steps and the
    remaining axes are flattened; a 2-D X is one step per video."""
    X = np.asarray(X, dtype=np.float64)
    return X[:, None, :] if X.ndim == 2 else X.reshape(X.shape[0], X.shape[1], -1)


def fit_anchor(X, y, sources: np.ndarray, alphas=RIDGE_ALPHAS) -> tuple[dict, np.ndarray]:
    """Fit the anchor on the ``sources`` rows of (X, y) (augmented views excluded: a view would
    leak its source into the source's leave-one-out prediction). Returns the anchor as a dict of
    plain values and each row's leave-one-out prediction (a view takes its source's, passed as
    ``sources`` < 0 entries: ``sources[i]`` is the source row of row i, or -1 for a source)."""
    steps = anchor_steps(X)
    src = np.flatnonzero(sources < 0)
    stats = TemporalStats(stats=STATS, n_dct=ANCHOR_DCT).fit(steps[src])
    scaler = StandardScaler()
    Z = scaler.fit_transform(stats.transform(steps[src]))
    ridge = RidgeCV(alphas=alphas, store_cv_results=True, scoring="neg_mean_squared_error")
    ridge.fit(Z, y[src])
    k = int(np.flatnonzero(np.isclose(ridge.alphas, ridge.alpha_))[0])
    loo_src = np.empty(len(sources))
    loo_src[src] = ridge.cv_results_[:, k]                   # leave-one-out predictions
    loo = np.where(sources < 0, loo_src, loo_src[np.maximum(sources, 0)])
    anchor = {"fill": stats.fill_, "mean": scaler.mean_, "scale": scaler.scale_, "coef": ridge.coef_,
              "intercept": float(ridge.intercept_), "alpha": float(ridge.alpha_),
              "n_columns": int(steps.shape[2]), "n_dct": int(stats.n_dct_)}
    return anchor, loo


def check_anchor(anchor) -> None:
    """Raise ValueError unless ``anchor`` is what :func:`fit_anchor` returns (a head file is read
    from someone else): finite 1-D arrays of one length, (4 + n_dct) statistics per step column."""
    keys = ("fill", "mean", "scale", "coef", "intercept", "alpha", "n_columns")
    if not isinstance(anchor, dict) or sorted(set(anchor) - {"n_dct"}) != sorted(keys):
        raise ValueError(f"the stats anchor must be a dict of {keys} and n_dct")
    arrays = [np.asarray(anchor[k]) for k in keys[:4]]
    n, k = anchor["n_columns"], anchor.get("n_dct", 0)     # no n_dct: saved before the anchor had it
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, k)) or n < 1 or k < 0 or any(
            a.shape != ((len(STATS) + k) * n,) or a.dtype.kind not in "fi" or not np.isfinite(a).all()
            for a in arrays):
        raise ValueError(f"the stats anchor's arrays must be ({len(STATS)} + n_dct) x n_columns finite "
                         "numbers")
    if not all(isinstance(anchor[k], (int, float)) and np.isfinite(anchor[k])
               for k in ("intercept", "alpha")) or (arrays[2] <= 0).any():
        raise ValueError("the stats anchor's intercept and alpha must be finite, its scale positive")


def predict_anchor(anchor: dict, X) -> np.ndarray:
    """The anchor's predictions (n,) for a head input X."""
    steps = anchor_steps(X)
    if steps.shape[2] != anchor["n_columns"]:
        raise ValueError(f"X has {steps.shape[2]} columns per step, but the stats anchor was fitted "
                         f"with {anchor['n_columns']}")
    n_dct = anchor.get("n_dct", 0)
    if n_dct and steps.shape[1] - 1 < n_dct:
        raise ValueError(f"X has {steps.shape[1]} steps, but the stats anchor was fitted with "
                         f"{n_dct} DCT coefficients of each column's steps (needs {n_dct + 1} steps)")
    Z = fill_missing(temporal_statistics(steps, STATS, n_dct), anchor["fill"])
    return ((Z - anchor["mean"]) / anchor["scale"]) @ anchor["coef"] + anchor["intercept"]
