"""Li, Chai & Chen's fragment network with the MSE + ranking loss (PCM 2018, "End-to-end learning for
action quality assessment").

The paper splits a video into N fragments of 16 frames and gives each fragment its *own* C3D extractor
(weights not shared, so each extractor specialises in one stage of the action, e.g. take-off or
entry), concatenates the fragment features, applies two 3-D convolutions (ReLU, 3x3x3 max-pooling)
and two fully connected layers, and regresses the score (Sec. 3). Here the fragment features come
from the cache (one pooled vector per fragment, so there are no feature maps left for the 3-D
convolutions to act on): the unshared per-fragment extractor is an unshared per-fragment layer
(FC + ReLU) on the cached feature, and the concatenation goes through the two fully connected layers
(ReLU, dropout) and a linear output.

Which fragments: ``fragments="all"`` (default) is the network of Sec. 3. Sec. 5.3 then finds on its
datasets that the last fragment (the splash of a dive, the landing of a vault) predicts best, "so we
only use the last fragment in the following experiments" -- every figure of its Tables 1-2:
``fragments="last"`` is that setting (the ``unlv_dive`` recipe uses it); a list of indices keeps
those fragments. Leaving a fragment out is the same as the paper's
"set to zero" (a zero input gives its unshared layer a constant output).

The loss is eq. 3, ``L = L1 + alpha * L2 + beta ||w||^2``: ``L1`` the (half) MSE, ``L2`` the pairwise
ranking hinge with margin ``delta = 2`` score points, ``alpha`` balanced by gradient magnitudes
(eq. 7), ``beta`` the optimiser's weight decay (see :mod:`aqa.heads.losses`).

Training defaults follow Sec. 5.2: Adam, "different learning rate for the feature extraction
(lr = 10e-4) and the score prediction (lr = 10e-3)", read as 1e-4 and 1e-3 (``learning_rate=1e-3``
for the score-prediction layers, ``fragment_lr_ratio=0.1`` for the per-fragment layers that stand in
for the extractors), decayed by 0.45 every 600 iterations. The paper writes "Dropout = 0.8"; read as
the keep probability (the TensorFlow convention of the time), i.e. a drop probability of 0.2.

Explanation: fragment contributions by occlusion of a trained model (ours, not the paper's probe,
which retrains with one fragment kept): the contribution of fragment k is the prediction minus the
prediction with fragment k set to zero.

Against ``stats-ridge`` (docs/heads_vs_baseline.md): of ``kin_pose`` this head reads each
step's whole-scene part and joints (:data:`aqa.heads.inputs.JOINTS_IN_STEPS`); read whole-scene
only, it could not score the synthetic ``coordination`` kind, whose signal lives in the joints.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn
from sklearn.utils.validation import check_is_fitted

from .base import base_kwargs, TorchRegressor

__all__ = ["FragmentNet", "FragmentRegressor", "plot_explain"]


class FragmentNet(nn.Module):
    """Unshared per-fragment layers -> concatenation -> FC -> FC -> score, on (B, N, D) inputs."""

    def __init__(self, n_fragments: int, in_dim: int, fragment_dim: int = 64,
                 hidden=(256, 64), dropout: float = 0.2):
        super().__init__()
        self.n, self.d, self.f = int(n_fragments), int(in_dim), int(fragment_dim)
        self.frag_weight = nn.Parameter(torch.empty(self.n, self.d, self.f))
        self.frag_bias = nn.Parameter(torch.empty(self.n, self.f))
        bound = 1.0 / math.sqrt(self.d)
        nn.init.uniform_(self.frag_weight, -bound, bound)
        nn.init.uniform_(self.frag_bias, -bound, bound)
        h1, h2 = (int(v) for v in hidden)
        self.head = nn.Sequential(nn.Linear(self.n * self.f, h1), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(h1, h2), nn.ReLU(), nn.Dropout(dropout), nn.Linear(h2, 1))

    def fragment_features(self, x):
        """Per-fragment features after each fragment's own layer: (B, N, D) -> (B, N, fragment_dim)."""
        return torch.relu(torch.einsum("bnd,ndf->bnf", x, self.frag_weight) + self.frag_bias)

    def forward(self, x):
        return self.head(self.fragment_features(x).flatten(1)).squeeze(-1)


class FragmentRegressor(TorchRegressor):
    """Li et al.'s fragment network with the MSE + gradient-balanced ranking loss.

    Input X: per-fragment features of shape (n, N, D), or 2-D X with ``n_fragments=N`` (columns read
    fragment-major, N blocks of D); a 2-D X without ``n_fragments`` is one fragment.

    Parameters: ``fragments`` (``"all"``, ``"last"`` or a list of fragment indices, negative ones
    counting from the end; see the module docstring); ``fragment_dim`` (64) and ``hidden``
    ((256, 64)) are the widths of the unshared per-fragment layers and of the two fully connected
    layers (the paper's C3D layers have no counterpart on cached features, so these are ours);
    ``fragment_lr_ratio`` (0.1) the per-fragment layers' learning rate relative to
    ``learning_rate``; ``dropout`` 0.2 (keep 0.8);
    ``ranking_weight="balanced"`` (eq. 7) with ``ranking_margin=None`` (delta = 2 score points; pass
    ``ranking_weight=0`` for MSE only); ``weight_decay`` is beta of eq. 3 (the paper gives no value).

    Defaults depart from the paper for a CPU: 400 iterations instead of 3000 (``paper_params``, the
    ``paper`` preset of :mod:`aqa.heads.presets`) on standardised inputs (``normalize_X``). On 80
    synthetic training videos (``benchmarks/neural_defaults.py``, validation rows never tested on)
    early stopping picked iterations 10-15 of 400 with standardised inputs (0.873 Spearman, 2 CPU
    s a fit) against 171-364 unscaled (0.864, 5-9 CPU s). On 80 test videos: 0.895 / 0.881 (seeds
    0, 1) at 80 training videos, the Ridge on temporal statistics 0.881; 0.940 / 0.887 at 320, the
    Ridge 0.962: short of it by 0.05 there, with early stopping at iterations 56 and 16 (a
    seed-to-seed spread that points at the stopping point; not yet measured further).

    Stats anchor (on by default, see ``stats_anchor`` in :class:`~aqa.heads.base.TorchRegressor`):
    on the seed-1 synthetic set, 2 seeds, 80 / 320 training videos, with / without it
    (``stats-ridge`` in brackets): sync 0.947 / 0.962 against 0.930 / 0.956 (0.932 / 0.960)
    (``python benchmarks/heads_vs_baseline.py --out dev --synth-seed 1 --features kin_pose --kinds sync
    --n-train 80,320 --seeds 2 --heads fragment``, and ``-p fragment.stats_anchor=false``).
    """

    paper_params = {**TorchRegressor.paper_params, "max_iter": 3000}

    def __init__(self, *, n_fragments=None, fragments="all", fragment_dim=64, hidden=(256, 64), dropout=0.2,
                 fragment_lr_ratio=0.1, max_iter=400, batch_size=64, learning_rate=1e-3, lr_schedule="step",
                 lr_step=600, lr_decay=0.45, lr_cycles=3, weight_decay=1e-4, normalize_X=True,
                 normalize_y=True, early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 loss="mse", ranking_weight="balanced", ranking_margin=None, reg_units="normalized",
                 stats_anchor=True, network_weight="auto",
                 device="cpu", random_state=None, verbose=False):
        self.n_fragments = n_fragments
        self.fragments = fragments
        self.fragment_dim = fragment_dim
        self.hidden = hidden
        self.dropout = dropout
        self.fragment_lr_ratio = fragment_lr_ratio
        super().__init__(**base_kwargs(locals()))

    def _check_X(self, X, reset):
        X = super()._check_X(X, reset)
        if X.ndim == 2:
            k = 1 if self.n_fragments is None else int(self.n_fragments)
            if k < 1 or X.shape[1] % k:
                raise ValueError(f"X has {X.shape[1]} feature(s), not divisible into n_fragments={k}")
            X = X.reshape(len(X), k, -1)
        if X.ndim != 3:
            raise ValueError(f"FragmentRegressor expects X of shape (n, N_fragments, D) or 2-D X; "
                             f"got shape {X.shape}")
        if reset:
            self.input_shape_ = tuple(int(v) for v in X.shape[1:])
            self.fragment_index_ = self._fragment_index(X.shape[1])
        elif tuple(X.shape[1:]) != self.input_shape_:
            raise ValueError(f"X has fragments x features {tuple(X.shape[1:])}, but FragmentRegressor "
                             f"was fitted with {self.input_shape_}")
        idx = getattr(self, "fragment_index_", None)      # None: a head file from before `fragments`
        return np.ascontiguousarray(X if idx is None else X[:, np.asarray(idx)], dtype=np.float32)

    def _fragment_index(self, n: int) -> list[int]:
        """The kept fragments (``fragments``) of an input with ``n`` fragments, as indices 0..n-1."""
        f = self.fragments
        if isinstance(f, str):
            if f not in ("all", "last"):
                raise ValueError(f"fragments must be 'all', 'last' or a list of indices, got {f!r}")
            return list(range(n)) if f == "all" else [n - 1]
        try:
            idx = [int(v) for v in f]
        except (TypeError, ValueError):
            raise ValueError(f"fragments must be 'all', 'last' or a list of indices, got {f!r}") from None
        if not idx:
            raise ValueError("fragments must keep at least one fragment, got an empty list")
        if any(not -n <= v < n for v in idx):
            raise ValueError(f"fragments {f!r} out of range for X with {n} fragment(s)")
        out = sorted({v % n for v in idx})
        if len(out) != len(idx):
            raise ValueError(f"fragments {f!r} names a fragment twice")
        return out

    def _module_config(self, X, y, extras):
        hidden = tuple(int(v) for v in self.hidden)
        if len(hidden) != 2 or min(hidden) < 1:
            raise ValueError(f"hidden must be two positive layer widths, got {self.hidden!r}")
        r = self.fragment_lr_ratio
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not r > 0:
            raise ValueError(f"fragment_lr_ratio must be > 0, got {r!r}")
        return {"n_fragments": int(X.shape[1]), "in_dim": int(X.shape[2]),
                "fragment_dim": int(self.fragment_dim), "hidden": list(hidden),
                "dropout": float(self.dropout)}

    def _make_module(self, config):
        return FragmentNet(config["n_fragments"], config["in_dim"], config["fragment_dim"],
                           tuple(config["hidden"]), config["dropout"])

    def _forward(self, module, X, extras, training):
        return {"pred": module(X)}

    def _parameter_groups(self, params):
        """The per-fragment layers (the paper's extractors) at ``fragment_lr_ratio`` x the rate."""
        frag = {id(self.module_.frag_weight), id(self.module_.frag_bias)}
        return [{"params": [p for p in params if id(p) in frag], "lr_scale": float(self.fragment_lr_ratio)},
                {"params": [p for p in params if id(p) not in frag]}]

    def _regression_loss(self, pred, target):
        """Eq. 1 (half MSE) for ``loss="mse"``; the base's l1/huber otherwise."""
        if self.loss == "mse":
            from .losses import half_mse
            return half_mse(pred, target)
        return super()._regression_loss(pred, target)

    def fragment_contributions(self, X) -> np.ndarray:
        """(n, K): prediction minus the prediction with kept fragment k (``fragment_index_[k]``)
        occluded, in target units: set to the training rows' mean, i.e. to zero after the input
        standardisation (to zero itself with ``normalize_X=False``); the stats anchor, when the
        head has one, sees the same occluded input."""
        check_is_fitted(self, "module_")
        self._check_X(X, reset=False)
        X = np.ascontiguousarray(X, dtype=np.float64)
        shape = self._fragments_of(X).shape
        mean = getattr(self, "x_mean_", None)
        fill = np.zeros(shape[1:]) if mean is None else mean.reshape(shape[1:]).astype(np.float64)
        full = self.predict(X)
        idx = getattr(self, "fragment_index_", None)
        idx = range(shape[1]) if idx is None else idx
        out = np.empty((len(X), len(idx)))
        for k, f in enumerate(idx):
            Xk = X.copy()
            Xk.reshape(shape)[:, f] = fill[f]      # a view of the copy, in X's own shape
            out[:, k] = full - self.predict(Xk)
        return out

    def _fragments_of(self, X) -> np.ndarray:
        """X as (n, N_fragments, D) float64, every fragment (2-D X split into ``n_fragments``)."""
        X = np.asarray(X, dtype=np.float64)
        return X.reshape(len(X), self.input_shape_[0], -1) if X.ndim == 2 else X

    def _anchor_input(self, X) -> np.ndarray:
        """The kept fragments only, as the network reads them."""
        X = self._fragments_of(X)
        idx = getattr(self, "fragment_index_", None)
        return X if idx is None else X[:, np.asarray(idx)]

    def plot_explain(self, X, ids, out_dir, **extras) -> list[Path]:
        """See :func:`plot_explain`."""
        return plot_explain(self, X, ids, out_dir, **extras)

    def explain(self, X) -> dict:
        return {"fragment_contributions": self.fragment_contributions(X), "pred": self.predict(X)}


def plot_explain(estimator: FragmentRegressor, X, ids, out_dir, **extras) -> list[Path]:
    """Occlusion contributions of each fragment for the videos ``ids`` (rows of X): mean |contribution|
    per fragment and a per-video heat map; writes ``fragment_contributions.png``."""
    from aqa.data.figures import new_figure, save_figure

    c = estimator.fragment_contributions(X)
    ids = [str(v) for v in ids]
    fig = new_figure(11, 4)
    ax0, ax1 = fig.subplots(1, 2)
    n = np.asarray(estimator.fragment_index_) + 1
    ax0.bar(n, np.abs(c).mean(0))
    ax0.set(xlabel="fragment", ylabel="mean |contribution|", title="fragment importance (occlusion)")
    lim = float(np.abs(c).max()) or 1.0
    im = ax1.imshow(c, cmap="coolwarm", vmin=-lim, vmax=lim, aspect="auto")
    ax1.set_yticks(range(len(ids)), ids)
    ax1.set_xticks(range(c.shape[1]), [str(v) for v in n])
    ax1.set(xlabel="fragment", title="contribution per video (score points)")
    fig.colorbar(im, ax=ax1)
    return [save_figure(fig, Path(out_dir) / "fragment_contributions.png")]
