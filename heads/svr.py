"""The classic SVR baselines as scikit-learn Pipelines.

- :func:`c3d_svr` -- C3D-SVR (Parmar & Morris, CVPRW 2017): the mean of a video's clip features ->
  StandardScaler -> SVR.
- :func:`i3d_svr` -- the same recipe on I3D whole-scene features, with ``kernel`` linear, poly or
  rbf.
- :func:`pose_dct_svr` -- Pose+DCT-SVR (Pirsiavash, Vondrick, Torralba, ECCV 2014): the
  low-frequency DCT coefficients of each joint's (x, y) trajectory -> StandardScaler -> SVR.

Inputs: the clip-feature pipelines take (n, S, D) arrays (averaged over S by :class:`ClipMean`) or
2-D (n, D) arrays of already pooled features. The pose pipeline takes trajectories (n, L, J, C) or
2-D (n, L*J*C) read as ``(L, J, C)`` with ``n_joints=J`` and ``n_channels=C`` (see
:func:`aqa.heads.inputs.pose_trajectories`).

Against ``stats-ridge`` (docs/heads_vs_baseline.md): of ``kin_pose`` :func:`c3d_svr` and
:func:`i3d_svr` read each step's whole-scene part and joints (:data:`aqa.heads.inputs.JOINTS_IN_STEPS`);
read whole-scene only, they could not score the synthetic ``coordination`` kind, whose signal lives
in the joints (their time mean still loses its timing).
"""
from __future__ import annotations

import numpy as np
from scipy.fft import dct
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["ClipMean", "PoseDCT", "c3d_svr", "i3d_svr", "pose_dct_svr"]

_KERNELS = ("linear", "poly", "rbf")


class ClipMean(TransformerMixin, BaseEstimator):
    """Average clip (time-step) features: (n, S, D) -> (n, D); a 2-D X is passed through."""

    def fit(self, X, y=None):
        validate_data(self, X, allow_nd=True, reset=True)
        return self

    def transform(self, X):
        check_is_fitted(self, "n_features_in_")
        X = validate_data(self, X, allow_nd=True, reset=False, dtype=np.float64)
        if X.ndim == 2:
            return X
        if X.ndim != 3:
            raise ValueError(f"ClipMean expects (n, S, D) or (n, D) features, got shape {X.shape}")
        return X.mean(axis=1)


class PoseDCT(TransformerMixin, BaseEstimator):
    """Low-frequency DCT of each joint trajectory (Pirsiavash et al. 2014).

    X: (n, L, J, C) trajectories (L frames, J joints, C coordinates) or 2-D (n, L*J*C) read as
    (L, J, C). Along the frame axis each of the J*C coordinate series gets an orthonormal DCT-II
    (scipy.fft.dct); the first ``n_coeffs`` coefficients (the low frequencies; fewer when L is
    shorter) are kept: output (n, min(n_coeffs, L) * J * C).
    """

    def __init__(self, *, n_joints=17, n_channels=2, n_coeffs=8):
        self.n_joints = n_joints
        self.n_channels = n_channels
        self.n_coeffs = n_coeffs

    def _traj(self, X):
        n = X.shape[0]
        per = int(np.prod(X.shape[1:]))
        jc = int(self.n_joints) * int(self.n_channels)
        if per % jc:
            raise ValueError(f"PoseDCT: {per} feature(s) per sample is not a multiple of "
                             f"n_joints*n_channels={jc}")
        return X.reshape(n, per // jc, jc)

    def fit(self, X, y=None):
        for name in ("n_joints", "n_channels", "n_coeffs"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"PoseDCT: {name} must be a positive integer, got {v!r}")
        X = validate_data(self, X, allow_nd=True, reset=True, dtype=np.float64)
        self._traj(X)
        return self

    def transform(self, X):
        check_is_fitted(self, "n_features_in_")
        X = validate_data(self, X, allow_nd=True, reset=False, dtype=np.float64)
        T = self._traj(X)
        C = dct(T, type=2, norm="ortho", axis=1)[:, : self.n_coeffs, :]
        return C.reshape(len(X), -1)


def _check_kernel(kernel):
    if kernel not in _KERNELS:
        raise ValueError(f"kernel must be one of {_KERNELS}, got {kernel!r}")


def _svr(kernel, C, epsilon, gamma, degree):
    _check_kernel(kernel)
    return SVR(kernel=kernel, C=C, epsilon=epsilon, gamma=gamma, degree=degree)


def c3d_svr(*, kernel="linear", C=1.0, epsilon=0.1, gamma="scale", degree=3, random_state=None) -> Pipeline:
    """C3D-SVR: ClipMean -> StandardScaler -> SVR (``random_state`` is accepted and unused: SVR is
    deterministic)."""
    return Pipeline([("mean", ClipMean()), ("scaler", StandardScaler()),
                     ("svr", _svr(kernel, C, epsilon, gamma, degree))])


def i3d_svr(*, kernel="rbf", C=1.0, epsilon=0.1, gamma="scale", degree=3, random_state=None) -> Pipeline:
    """I3D-SVR: ClipMean -> StandardScaler -> SVR with ``kernel`` in linear | poly | rbf."""
    return Pipeline([("mean", ClipMean()), ("scaler", StandardScaler()),
                     ("svr", _svr(kernel, C, epsilon, gamma, degree))])


def pose_dct_svr(*, n_joints=17, n_channels=2, n_coeffs=8, kernel="linear", C=1.0, epsilon=0.1,
                 gamma="scale", degree=3, random_state=None) -> Pipeline:
    """Pose+DCT-SVR: PoseDCT -> StandardScaler -> SVR."""
    return Pipeline([("dct", PoseDCT(n_joints=n_joints, n_channels=n_channels, n_coeffs=n_coeffs)),
                     ("scaler", StandardScaler()), ("svr", _svr(kernel, C, epsilon, gamma, degree))])
