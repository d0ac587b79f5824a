"""Classical baselines every report shows first: per-video statistics of the step features -> a
linear or boosted-tree regressor.

A head earns its place only by beating these. They read the same cached step features as the
neural heads (the ``stats`` input: each step's whole-scene feature followed by every joint's
feature, :func:`stats_inputs`) and summarise each column over the steps:

- :class:`TemporalStats` -- per video and column: mean, std, max, min over the steps (NaN-safe: a
  missing joint's NaN steps are skipped), optionally the low-frequency DCT coefficients of the
  column's step series;
  ``n_dct`` is off in ``stats-ridge``, the plain baseline: on ``aqa-data synth`` training rows
  (``benchmarks/temporal_stats.py``, 5-fold validation, ``kin_pose``) 2-8 coefficients moved the
  validation Spearman by -0.007..+0.027, within about one fold-to-fold standard deviation, helping
  the coordination kind and hurting sync. At 40-160 training videos 4 coefficients helped on most
  kinds, and the neural heads' stats anchor takes them (:data:`aqa.heads.anchor.ANCHOR_DCT`);
- :func:`stats_ridge` -- TemporalStats -> StandardScaler -> RidgeCV, the ridge penalty chosen by
  leave-one-out error on the training rows (RidgeCV's efficient generalised cross-validation);
- :func:`stats_gbr` -- TemporalStats -> HistGradientBoostingRegressor, its number of trees chosen
  by early stopping on a validation part of the training rows.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.fft import dct
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

from .inputs import default_feature, step_columns

__all__ = ["TemporalStats", "temporal_statistics", "fill_missing", "STATS", "RIDGE_ALPHAS",
           "stats_ridge", "stats_gbr", "stats_inputs", "fitted_selection"]

#: the statistics :class:`TemporalStats` can take over a column's steps
STATS = ("mean", "std", "max", "min")
#: RidgeCV's penalty grid: 1e-2 .. 1e4, two values per decade
RIDGE_ALPHAS = tuple(float(f"{a:.3g}") for a in np.logspace(-2, 4, 13))

_REDUCERS = {"mean": np.nanmean, "std": np.nanstd, "max": np.nanmax, "min": np.nanmin}


def fill_missing(Z: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """``Z`` (n, K) with each NaN replaced, in place, by its column's ``fill`` value (a statistic
    of a column that is missing at every step of a video: :attr:`TemporalStats.fill_`)."""
    nan = np.isnan(Z)
    if nan.any():
        Z[nan] = np.broadcast_to(fill, Z.shape)[nan]
    return Z


def temporal_statistics(X: np.ndarray, stats=STATS, n_dct: int = 0) -> np.ndarray:
    """The statistics of :class:`TemporalStats` of (n, S, D) steps, before any filling: (n, K*D),
    statistic-major, NaN where a column is NaN at every step of a video."""
    blocks = []
    with warnings.catch_warnings():   # all-NaN slices: the caller fills them
        warnings.simplefilter("ignore", RuntimeWarning)
        for s in stats:
            blocks.append(_REDUCERS[s](X, axis=1))
        k = min(int(n_dct), X.shape[1] - 1)
        if k > 0:
            mean = np.nanmean(X, axis=1, keepdims=True)
            filled = np.where(np.isnan(X), mean, X)
            filled = np.nan_to_num(filled, nan=0.0)
            C = dct(filled, type=2, norm="ortho", axis=1)[:, 1:k + 1]      # (n, k, D)
            blocks.extend(C[:, i] for i in range(k))
    return np.concatenate(blocks, axis=1)


class TemporalStats(TransformerMixin, BaseEstimator):
    """Per-video statistics of each feature column over the time steps: (n, S, D) -> (n, K*D).

    ``stats``: which of :data:`STATS`, in that order of output blocks; ``n_dct``: additionally the
    DCT-II (orthonormal) coefficients 1..n_dct of each column's step series (coefficient 0 is the
    mean; fewer when S is shorter), i.e. the slow shape of the column over the video. A 2-D X is
    read as one step per video. NaN entries (a joint missing at a step) are skipped; a column that
    is NaN at every step of a video gets the statistic's mean over the training videos (0 where
    that is undefined too), and for the DCT the column's NaN steps take the video's mean of the
    column. Output blocks are statistic-major: all D means, then all D stds, ...; names from
    :meth:`get_feature_names_out`.
    """

    def __init__(self, *, stats=STATS, n_dct=0):
        self.stats = stats
        self.n_dct = n_dct

    def _check_params(self):
        stats = tuple(self.stats) if not isinstance(self.stats, str) else (self.stats,)
        bad = [s for s in stats if s not in STATS]
        if bad or len(set(stats)) != len(stats):
            raise ValueError(f"TemporalStats: stats must be distinct names among {STATS}, got "
                             f"{self.stats!r}")
        if not isinstance(self.n_dct, (int, np.integer)) or isinstance(self.n_dct, bool) or self.n_dct < 0:
            raise ValueError(f"TemporalStats: n_dct must be a non-negative integer, got {self.n_dct!r}")
        if not stats and self.n_dct == 0:
            raise ValueError("TemporalStats: no statistic asked for (empty stats and n_dct=0)")
        return stats

    def _steps(self, X, reset):
        X = validate_data(self, X, allow_nd=True, reset=reset, dtype=np.float64,
                          ensure_all_finite="allow-nan")
        if X.ndim == 2:
            X = X[:, None, :]
        if X.ndim != 3:
            raise ValueError(f"TemporalStats expects (n, S, D) step features or (n, D), got shape "
                             f"{X.shape}")
        if reset:
            self.n_steps_, self.n_columns_ = int(X.shape[1]), int(X.shape[2])
        elif X.shape[2] != self.n_columns_:
            raise ValueError(f"X has {X.shape[2]} feature columns per step, but TemporalStats was "
                             f"fitted with {self.n_columns_}")
        return X

    def _raw(self, X, stats):
        return temporal_statistics(X, stats, int(self.n_dct))

    def fit(self, X, y=None):
        stats = self._check_params()
        X = self._steps(X, reset=True)
        Z = self._raw(X, stats)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fill = np.nanmean(Z, axis=0)
        self.fill_ = np.nan_to_num(fill, nan=0.0)
        self.n_dct_ = max(0, min(int(self.n_dct), self.n_steps_ - 1))
        return self

    def transform(self, X):
        check_is_fitted(self, "fill_")
        stats = self._check_params()
        X = self._steps(X, reset=False)
        Z = self._raw(X, stats)
        if Z.shape[1] != self.fill_.shape[0]:   # another step count changed the DCT columns
            raise ValueError(f"X has {X.shape[1]} steps, which gives {Z.shape[1]} statistics; "
                             f"TemporalStats was fitted on {self.n_steps_} steps "
                             f"({self.fill_.shape[0]} statistics)")
        return fill_missing(Z, self.fill_)

    def get_feature_names_out(self, input_features=None):
        """``"<column>_<stat>"`` (``"<column>_dct<k>"``); columns named ``x0..`` unless
        ``input_features`` (one name per step column) is given."""
        check_is_fitted(self, "fill_")
        if input_features is None:
            cols = [f"x{d}" for d in range(self.n_columns_)]
        else:
            cols = [str(c) for c in input_features]
            if len(cols) != self.n_columns_:
                raise ValueError(f"input_features has {len(cols)} names, but there are "
                                 f"{self.n_columns_} columns per step")
        names = [f"{c}_{s}" for s in self._check_params() for c in cols]
        names += [f"{c}_dct{k}" for k in range(1, self.n_dct_ + 1) for c in cols]
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def stats_ridge(*, stats=STATS, n_dct=0, alphas=RIDGE_ALPHAS, random_state=None) -> Pipeline:
    """TemporalStats -> StandardScaler -> RidgeCV(alphas): the penalty is chosen by leave-one-out
    error on the training rows (``random_state`` is accepted and unused: all steps are
    deterministic)."""
    return Pipeline([("stats", TemporalStats(stats=stats, n_dct=n_dct)), ("scaler", StandardScaler()),
                     ("ridge", RidgeCV(alphas=alphas))])


def stats_gbr(*, stats=STATS, n_dct=0, learning_rate=0.05, max_iter=500, max_leaf_nodes=7,
              min_samples_leaf=5, validation_fraction=0.2, n_iter_no_change=20,
              random_state=0) -> Pipeline:
    """TemporalStats -> HistGradientBoostingRegressor, always early-stopped on a
    ``validation_fraction`` of the training rows (``max_iter`` trees at most); ``random_state``
    seeds that split (fixed by default, so a refit gives the same model)."""
    return Pipeline([("stats", TemporalStats(stats=stats, n_dct=n_dct)),
                     ("gbr", HistGradientBoostingRegressor(
                         learning_rate=learning_rate, max_iter=max_iter, max_leaf_nodes=max_leaf_nodes,
                         min_samples_leaf=min_samples_leaf, early_stopping=True,
                         validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change,
                         random_state=random_state))])


def stats_inputs(reader, ids, feature=None) -> np.ndarray:
    """(n, S, Dw + J*Dj): each step's whole-scene feature followed by its J joint features
    (flattened joint-major), for every family of ``feature`` (``"a+b"``) side by side; a family
    without joint features gives its whole-scene feature only."""
    return step_columns(reader, ids, feature or default_feature(reader))


def fitted_selection(est) -> dict | None:
    """What a fitted baseline chose on its training rows, as a bench selection record (``kind``
    ``"internal"``): RidgeCV's penalty, or the number of trees early stopping kept; None for any
    other estimator."""
    steps = dict(getattr(est, "steps", []))
    if isinstance(steps.get("ridge"), RidgeCV):
        return {"kind": "internal", "param": "alpha", "chosen": float(steps["ridge"].alpha_),
                "how": "leave-one-out error on the training rows (RidgeCV)"}
    if isinstance(steps.get("gbr"), HistGradientBoostingRegressor):
        g = steps["gbr"]
        return {"kind": "internal", "param": "trees", "chosen": int(g.n_iter_),
                "how": f"early stopping on {g.validation_fraction:.0%} of the training rows"}
    return None
