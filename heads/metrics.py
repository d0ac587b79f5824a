"""Evaluation metrics of the AQA literature (``aqa.heads.metrics``).

- Spearman's rank correlation (scipy.stats.spearmanr), the papers' main metric.
- The Fisher-z average of per-action correlations (Parmar & Morris; JRG Section 4.2; CoRe):
  ``tanh(mean_k arctanh(rho_k))``, with |rho_k| clipped to :data:`RHO_CLIP` (0.999) first: arctanh
  is unbounded at +-1, so one tiny action ranked perfectly (rho = 1, common with 2-3 videos) would
  otherwise drag the average to ~1 whatever the other actions score.
- Relative L2 (CoRe, eq. 11): ``mean_k (|s_k - s^_k| / (s_max - s_min))^2`` per action, with the
  action's score range; averaged over actions. Papers print it x100.
- MSE, and mean/std of any metric over seeds.
- :data:`spearman_scorer`: Spearman's rho as a scikit-learn scorer (``GridSearchCV(...,
  scoring=spearman_scorer)``, ``cross_val_score``); NaN for a constant prediction, which
  ``GridSearchCV`` ranks last.
"""
from __future__ import annotations

import math
import warnings
from typing import Mapping, Sequence

import numpy as np
from scipy.stats import spearmanr as _spearmanr
from sklearn.metrics import make_scorer

__all__ = ["spearman", "fisher_z_average", "relative_l2", "mse", "evaluate", "summarize_seeds", "spearman_scorer", "RHO_CLIP",
           "MIN_ACTION_SAMPLES"]

#: |rho| bound before arctanh in :func:`fisher_z_average` (arctanh(0.999) = 3.8, that of 0.5 is 0.55).
RHO_CLIP = 0.999
#: :func:`evaluate` warns about actions with fewer test samples than this (their rho is mostly noise).
MIN_ACTION_SAMPLES = 3


def _pair(y_true, y_pred):
    a = np.asarray(y_true, dtype=float).ravel()
    b = np.asarray(y_pred, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"y_true and y_pred differ in length: {a.shape[0]} vs {b.shape[0]}")
    if a.size == 0:
        raise ValueError("empty y_true/y_pred")
    return a, b


def spearman(y_true, y_pred) -> float:
    """Spearman's rho; NaN (with a warning) when either series is constant or has < 2 samples."""
    a, b = _pair(y_true, y_pred)
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        warnings.warn("Spearman's rho is undefined for constant or single-sample series; NaN",
                      RuntimeWarning, stacklevel=2)
        return math.nan
    return float(_spearmanr(a, b).statistic)


#: Spearman's rho as a scikit-learn scorer (greater is better)
spearman_scorer = make_scorer(spearman)


def fisher_z_average(rhos: Sequence[float], weights: Sequence[float] | None = None,
                     clip: float = RHO_CLIP) -> float:
    """``tanh(weighted mean of arctanh(rho))`` with rho clipped to [-clip, clip]; NaNs skipped."""
    r = np.asarray(rhos, dtype=float)
    w = np.ones_like(r) if weights is None else np.asarray(weights, dtype=float)
    if r.shape != w.shape:
        raise ValueError("rhos and weights differ in length")
    ok = np.isfinite(r)
    if not ok.any():
        return math.nan
    if not 0 < clip < 1:
        raise ValueError(f"clip must be in (0, 1), got {clip}")
    z = np.arctanh(np.clip(r[ok], -clip, clip))
    return float(np.tanh(np.average(z, weights=w[ok])))


def relative_l2(y_true, y_pred, s_min: float | None = None, s_max: float | None = None) -> float:
    """CoRe's R-l2 (eq. 11) for one action; the range defaults to that of ``y_true``."""
    a, b = _pair(y_true, y_pred)
    lo = float(a.min()) if s_min is None else float(s_min)
    hi = float(a.max()) if s_max is None else float(s_max)
    if not hi > lo:
        raise ValueError(f"relative_l2 needs s_max > s_min, got [{lo}, {hi}]")
    return float(np.mean((np.abs(a - b) / (hi - lo)) ** 2))


def mse(y_true, y_pred) -> float:
    a, b = _pair(y_true, y_pred)
    return float(np.mean((a - b) ** 2))


def evaluate(y_true, y_pred, groups=None, score_ranges: Mapping[str, tuple[float, float]] | None = None) -> dict:
    """All metrics. With ``groups`` (action per sample): per-action Spearman and R-l2, their
    Fisher-z / plain averages; ``score_ranges`` maps action -> (s_min, s_max) for R-l2 (default:
    the range of that action's ground truth in ``y_true``; without groups the key is ``""``).

    Returns ``{"spearman", "mse", "rl2", "n", "per_action": {action: {"spearman", "rl2", "n"}},
    "spearman_fisher_z"}`` (the last two only with groups).
    """
    a, b = _pair(y_true, y_pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = {"n": int(a.size), "spearman": spearman(a, b), "mse": mse(a, b)}
    score_ranges = dict(score_ranges or {})
    if groups is None:  # one action: its range is score_ranges[""] when given
        rng = score_ranges.get("")
        out["rl2"] = relative_l2(a, b, *rng) if rng else (relative_l2(a, b) if np.ptp(a) > 0 else math.nan)
        return out
    g = np.asarray(groups).astype(str).ravel()
    if g.shape != a.shape:
        raise ValueError(f"groups has {g.size} entries for {a.size} samples")
    per = {}
    for action in sorted(set(g)):
        m = g == action
        rng = score_ranges.get(action)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            rho = spearman(a[m], b[m])
        rl2 = relative_l2(a[m], b[m], *rng) if rng else (
            relative_l2(a[m], b[m]) if np.ptp(a[m]) > 0 else math.nan)
        per[action] = {"spearman": rho, "rl2": rl2, "n": int(m.sum())}
    small = {str(k): v["n"] for k, v in per.items() if v["n"] < MIN_ACTION_SAMPLES}
    if small:
        warnings.warn(f"actions with fewer than {MIN_ACTION_SAMPLES} samples {small}: their Spearman's "
                      f"rho is NaN or +-1 by chance and weighs on the Fisher-z average",
                      RuntimeWarning, stacklevel=2)
    out["per_action"] = per
    out["spearman_fisher_z"] = fisher_z_average([v["spearman"] for v in per.values()])
    rl2s = [v["rl2"] for v in per.values() if math.isfinite(v["rl2"])]
    out["rl2"] = float(np.mean(rl2s)) if rl2s else math.nan
    return out


def summarize_seeds(results: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and (sample, ddof=1) std over seeds of every scalar metric present in all results."""
    if not results:
        raise ValueError("no results to summarise")
    keys = [k for k, v in results[0].items()
            if isinstance(v, (int, float)) and all(k in r for r in results)]
    out = {}
    for k in keys:
        v = np.array([float(r[k]) for r in results])
        out[k] = {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                  "n": len(v)}
    return out
