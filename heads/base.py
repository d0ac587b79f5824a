"""The base class of every neural head: a scikit-learn regressor around a small PyTorch module.

:class:`TorchRegressor` owns everything that is the same for all neural heads -- input validation,
seeding, target normalisation, the Adam training loop with the papers' learning-rate schedules,
early stopping on a validation fraction carved from the *training* data, the MSE (+ optional ranking)
loss, batched prediction, device-independent pickling and ``save``/``load`` -- so a head only
describes its network.

How a subclass plugs in (see :mod:`aqa.heads.jrg` for a full example)
-------------------------------------------------------------------------
1. ``__init__`` is keyword-only and only stores its arguments (scikit-learn rule). List the head's
   own parameters *and* every base parameter you keep (``max_iter``, ``batch_size``,
   ``learning_rate``, ...; see :data:`BASE_PARAMS`), store your own ones as attributes and pass the
   base ones to ``super().__init__(...)``. Change defaults freely (e.g. the paper's learning rate).
2. ``_module_config(self, X, y, extras) -> dict``: called once in ``fit`` after validation and
   target normalisation; returns a JSON-able dict with everything needed to build the module
   (input sizes, hidden sizes). It is stored as ``self.module_config_`` and is what ``load`` and
   unpickling use to rebuild the network, so it must be plain JSON (ints, floats, str, lists, dicts).
   Also the place to remember training-set facts the head needs at predict time (store them as
   fitted attributes ending in ``_``; numpy arrays and plain values survive ``save``/``load``).
3. ``_make_module(self, config) -> torch.nn.Module``: builds the network from that dict.
4. ``_forward(self, module, X, extras, training) -> dict``: runs the module on a batch. ``X`` is a
   float32 tensor (the validated X rows of the batch, on the module's device); ``extras`` maps each
   per-sample fit/predict keyword (see ``fit_extras``) to the batch's rows (numpy arrays).
   The dict must hold ``"pred"``: shape (batch,), in *normalised* target units; it may hold
   ``"reg"``: a scalar tensor added to the loss (regularisers such as JRG's orthogonality term),
   and anything else a head wants to expose.
5. Optional hooks:
   - ``_batch_loss(pred, target, outputs)`` -- the loss of one batch. The base returns
     ``regression loss (self.loss) + _ranking_term(pred, target, regression loss) + outputs["reg"]``.
     Override (calling ``super()._batch_loss``) to add terms; a head with its own loss adds
     ``self._ranking_term(...)`` on the predictions it ranks (CoRe does).
   - ``_train(self, X, y, extras, rng)`` -- the whole training procedure. The base calls
     :meth:`_fit_loop` once over all parameters; multi-stage heads (JRG's staged training) call
     :meth:`_fit_loop` several times with different ``forward`` functions / parameter groups.
   - ``fit_extras = ("groups", "difficulty")`` -- class attribute naming the per-sample keyword
     arguments ``fit``/``predict`` accept (arrays of length n, sliced per batch). Unknown keywords are
     a TypeError. The CLI passes labels columns for exactly these names.
   - ``_check_X(self, X, reset)`` -- reshape/validate structured input (N-d arrays or a ``layout``
     over 2-D columns); must return a float32 numpy array whose first axis is samples.

Fitted attributes set by the base: ``module_``, ``module_config_``, ``n_features_in_``,
``y_mean_``, ``y_std_``, ``x_mean_`` and ``x_scale_`` (None without ``normalize_X``), ``loss_curve_`` (mean training loss per epoch), ``validation_scores_``
(validation MSE per epoch, normalised units; empty without early stopping), ``best_loss_``,
``best_iteration_`` (steps of the last training run when its best validation weights were taken;
None without validation), ``validation_index_`` (the rows early stopping held out),
``reg_scale_`` (see ``reg_units``), ``n_iter_`` (optimizer steps taken), ``device_``,
``n_augmented_`` (training rows that were augmented views, ``fit(..., augmented_of=)``).

Length: the contract every neural head builds on, in one place: the estimator, its training loop
and hooks, and the head file format (``save_head``/``load_head``) that rebuilds the estimator.
"""
from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data


__all__ = ["TorchRegressor", "BASE_PARAMS", "base_kwargs", "save_head", "load_head", "HeadFormatError"]

FORMAT = "aqa-head"
FORMAT_VERSION = 1            # neural heads' files (unchanged since the first release)
SKOPS_FORMAT_VERSION = 2      # files of non-neural heads in skops (older aqa versions refuse them)

#: The base parameters and their defaults; subclasses repeat the ones they keep in their __init__.
BASE_PARAMS: dict[str, Any] = dict(
    max_iter=1000, batch_size=64, learning_rate=1e-3, lr_schedule="constant", lr_step=500,
    lr_decay=0.1, lr_cycles=3, weight_decay=0.0, normalize_X=True, normalize_y=True,
    early_stopping=False, validation_fraction=0.1, n_iter_no_change=10, loss="mse", ranking_weight=0.0,
    ranking_margin=None, reg_units="normalized", stats_anchor=False, network_weight="auto", device="cpu",
    random_state=None, verbose=False,
)


def base_kwargs(namespace: dict) -> dict:
    """The base parameters out of a subclass ``__init__``'s ``locals()``, to pass to
    ``super().__init__(**base_kwargs(locals()))`` (sklearn needs the explicit signature; this
    spares repeating every name twice)."""
    return {k: namespace[k] for k in BASE_PARAMS}

_LOSSES = ("mse", "l1", "huber")
_REG_UNITS = ("normalized", "raw", "percent")
_SCHEDULES = ("constant", "cyclic", "step")


class HeadFormatError(ValueError):
    """A model file is not an aqa head file, or names a class outside ``aqa.heads``."""


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimiser steps of :meth:`TorchRegressor._fit_loop` in one pass over ``n_train`` rows (it
    skips a 1-sample tail batch)."""
    bs = int(batch_size)
    return max(1, n_train // bs + (n_train % bs >= 2))


class TorchRegressor(RegressorMixin, BaseEstimator):
    """Scikit-learn regressor whose model is a PyTorch module built by the subclass.

    Parameters (all keyword-only)
    ----------
    max_iter : int
        Optimizer steps (iterations, as the papers count them), not epochs.
    batch_size : int
        Mini-batch size (the papers use 64; smaller training sets give one batch per epoch).
    learning_rate : float
        Initial Adam learning rate.
    lr_schedule : {"constant", "cyclic", "step"}
        ``cyclic``: ``learning_rate * lr_decay ** ((step // lr_step) % lr_cycles)`` -- JRG's cyclic
        {1e-4, 1e-5, 1e-6} changing every 500 iterations is ``learning_rate=1e-4, lr_decay=0.1,
        lr_cycles=3, lr_step=500``. ``step``: ``learning_rate * lr_decay ** (step // lr_step)``.
    lr_step, lr_decay, lr_cycles : see ``lr_schedule``.
    weight_decay : float
        Adam's L2 penalty.
    normalize_X : bool
        Standardise every input column (each position of X's trailing axes: step, node, feature)
        to mean 0 and std 1 over the training rows (views included; a constant column is only
        centred), as a ``StandardScaler`` fitted inside ``fit``; ``x_mean_`` / ``x_scale_`` keep the
        statistics and ``predict`` applies them. Weight-free features mix pixels, pixels per second
        and radians (column stds from 0.01 to 300 on ``kin_pose+hof_flow``), which an unscaled
        network with one learning rate fits badly; ``benchmarks/neural_defaults.py`` measures it.
        The papers fed raw backbone features (their preset: ``False``).
    normalize_y : bool
        Train on standardised targets (mean 0, std 1 of the training targets); predictions are
        mapped back.
    early_stopping : bool
        Hold out ``validation_fraction`` of the training samples (never any test data), evaluate the
        validation MSE after every epoch, stop after ``n_iter_no_change`` epochs without improvement
        and restore the best weights. Ignored (with all data used for training) when fewer than 2
        validation or 2 training samples would remain.
    loss : {"mse", "l1", "huber"}
        The regression loss on (normalised) targets.
    ranking_weight : float >= 0 or "balanced"
        Li et al.'s pairwise ranking term (PCM 2018, eq. 2; :mod:`aqa.heads.losses`) on top of the
        regression loss: ``0`` off; a float is a fixed weight on the mean hinge over the batch's
        untied pairs; ``"balanced"`` is the paper's loss, the hinge summed over pairs with alpha set
        on every batch by gradient magnitudes against the regression loss (eq. 7).
    ranking_margin : float >= 0 or None
        The hinge margin in normalised target units; ``None`` (default) is the paper's
        ``delta = 2`` raw score points, i.e. ``2 / y_std_``.
    reg_units : {"normalized", "raw", "percent"}
        The target units in which the regularisers' weights (a head's ``"reg"`` terms and
        ``weight_decay``) are stated, so that a paper's balance between its loss and its regularisers
        survives training on standardised targets: ``"normalized"`` (they act on the standardised
        loss as given), ``"raw"`` (the targets as passed to ``fit``), ``"percent"`` (the training
        targets min-max mapped to 0-100, JRG's "normalized to 0-100"). The loss on standardised
        targets is k^2 times smaller than in those units (k: one training unit in stated units), so
        the regularisers are multiplied by ``reg_scale_ = 1 / k^2`` (``1 / k`` for ``loss="l1"``).
    stats_anchor : bool
        Predict ``anchor(X) + network(X)``, where the anchor is a ``stats-ridge`` (per-video mean,
        std, max, min and the first ``ANCHOR_DCT`` DCT coefficients of each step column ->
        StandardScaler -> RidgeCV) fitted on the training rows
        inside ``fit``, and the network learns the anchor's leave-one-out residuals
        (:mod:`aqa.heads.anchor`; fitted as ``anchor_``, None when off). The network then only has to
        learn what the linear baseline misses, and early stopping ends it where that stops helping on
        the validation rows. Not in the papers (their preset: ``False``).
    network_weight : "auto" or float in [0, 1]
        With the stats anchor, the weight of the network's output added to it (``network_weight_``):
        ``"auto"`` fits it on early stopping's validation rows (least squares of their residuals on
        the network's predictions, clipped to [0, 1]; 1 without validation rows), so that a network
        that does worse on unseen rows than the anchor alone is shrunk towards it, down to 0.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"`` (CUDA when available).
    random_state : int, RandomState or None
        Seeds weight initialisation, batch order and the validation split; on the CPU a given seed
        gives bit-identical results.
    verbose : bool
        Show a progress bar over training steps.
    """

    #: names of per-sample keyword arguments ``fit``/``predict`` accept (see module docstring).
    fit_extras: tuple[str, ...] = ()
    #: the paper's settings where the defaults depart from them (:mod:`aqa.heads.presets`)
    paper_params: dict = {"normalize_X": False, "stats_anchor": False}
    #: whether ``fit`` takes ``augmented_of=`` (rows that are augmented views of other rows)
    accepts_views: bool = True

    def __init__(self, *, max_iter=1000, batch_size=64, learning_rate=1e-3, lr_schedule="constant",
                 lr_step=500, lr_decay=0.1, lr_cycles=3, weight_decay=0.0, normalize_X=True,
                 normalize_y=True, early_stopping=False, validation_fraction=0.1, n_iter_no_change=10, loss="mse",
                 ranking_weight=0.0, ranking_margin=None, reg_units="normalized", stats_anchor=False,
                 network_weight="auto", device="cpu", random_state=None, verbose=False):
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.lr_step = lr_step
        self.lr_decay = lr_decay
        self.lr_cycles = lr_cycles
        self.weight_decay = weight_decay
        self.normalize_X = normalize_X
        self.normalize_y = normalize_y
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.loss = loss
        self.ranking_weight = ranking_weight
        self.ranking_margin = ranking_margin
        self.reg_units = reg_units
        self.stats_anchor = stats_anchor
        self.network_weight = network_weight
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ hooks for subclasses
    def _module_config(self, X: np.ndarray, y: np.ndarray, extras: dict) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must implement _module_config")

    def _make_module(self, config: dict):
        raise NotImplementedError(f"{type(self).__name__} must implement _make_module")

    def _forward(self, module, X, extras: dict, training: bool) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must implement _forward")

    def _check_X(self, X, reset: bool) -> np.ndarray:
        """Validate X (2-D or N-d, finite, numeric) and set/check ``n_features_in_`` (for N-d X,
        scikit-learn's "features" are the second axis: the time steps)."""
        try:
            X = validate_data(self, X, reset=reset, allow_nd=True, dtype=np.float32)
        except ValueError as e:
            shape = np.shape(X)
            if reset or len(shape) < 3 or "features" not in str(e):
                raise
            raise ValueError(f"X has {shape[1]} time steps per video (axis 1 of shape {shape}), but "
                             f"{type(self).__name__} was fitted on {self.n_features_in_}: were these "
                             f"features extracted with another sampling (--sampling-opt T=...)?") from None
        return self._scale_X(X, reset)

    def _scale_X(self, X: np.ndarray, reset: bool) -> np.ndarray:
        """``normalize_X``: at fit (``reset``) record each column's training mean and std, then
        standardise X with them (a head saved before this existed has no ``x_mean_``: unscaled)."""
        if reset:
            self.x_mean_ = self.x_scale_ = None
            if self.normalize_X:
                X64 = X.astype(np.float64)
                std = X64.std(axis=0)
                self.x_mean_ = X64.mean(axis=0).astype(np.float32)
                self.x_scale_ = np.where(std > 1e-12 * np.maximum(1.0, np.abs(self.x_mean_)), std,
                                         1.0).astype(np.float32)
        mean, scale = getattr(self, "x_mean_", None), getattr(self, "x_scale_", None)
        if mean is None or mean.size != int(np.prod(X.shape[1:])):
            return X          # no statistics, or the wrong size: the head's shape check says which
        return ((X - mean.reshape(X.shape[1:])) / scale.reshape(X.shape[1:])).astype(np.float32)

    def _regression_loss(self, pred, target):
        import torch.nn.functional as F
        if self.loss == "mse":
            return F.mse_loss(pred, target)
        if self.loss == "l1":
            return F.l1_loss(pred, target)
        return F.huber_loss(pred, target)

    def refit_params(self) -> dict:
        """Parameters that repeat this fit's training on every row, without a validation split:
        early stopping off and the length it chose (``max_iter = best_iteration_``). A caller (the
        bench) refits with them after early stopping on a validation part of the training rows;
        multi-stage heads return every stage's length."""
        check_is_fitted(self, "module_")
        if self.best_iteration_ is None:
            raise ValueError(f"{type(self).__name__} held out no validation rows in its fit "
                             f"(early_stopping={self.early_stopping}): no early-stopped length to repeat")
        return {"early_stopping": False, "max_iter": int(self.best_iteration_), **self._refit_weight()}

    def _refit_weight(self) -> dict:
        """The network weight this fit chose on its validation rows, for a refit that has none."""
        return {} if getattr(self, "anchor_", None) is None else {"network_weight": self.network_weight_}

    def _ranking_margin_normalised(self) -> float:
        """The hinge margin in normalised target units (``None``: delta = 2 raw points / ``y_std_``)."""
        from .losses import PAPER_MARGIN, margin_in_units
        if self.ranking_margin is None:
            return margin_in_units(PAPER_MARGIN, getattr(self, "y_std_", 1.0))
        return float(self.ranking_margin)

    def _ranking_loss(self, pred, target):
        """Mean pairwise hinge of Li et al.'s eq. 2 over the batch's untied pairs (see ``ranking_margin``)."""
        from .losses import pairwise_ranking_loss
        return pairwise_ranking_loss(pred, target, self._ranking_margin_normalised(), reduction="mean")

    def _ranking_term(self, pred, target, base_loss):
        """``alpha * L2`` to add to ``base_loss`` (0 when ``ranking_weight`` is 0): a fixed weight on
        :meth:`_ranking_loss`, or with ``"balanced"`` the summed hinge with alpha from eq. 7."""
        rw = self.ranking_weight
        if rw == "balanced":
            from .losses import RankingLoss
            return RankingLoss("balanced", self._ranking_margin_normalised()).term(base_loss, pred, target)
        return rw * self._ranking_loss(pred, target) if rw else 0.0

    def _batch_loss(self, pred, target, outputs: dict):
        """Loss of one batch: regression loss + the ranking term (``ranking_weight``) + ``outputs["reg"]``."""
        loss = self._regression_loss(pred, target)
        loss = loss + self._ranking_term(pred, target, loss)
        reg = outputs.get("reg")
        if reg is not None:
            loss = loss + self.reg_scale_ * reg
        return loss

    def _reg_scale(self, y_raw: np.ndarray, scores: np.ndarray | None = None) -> float:
        """``reg_scale_`` of ``reg_units`` for the raw training targets ``y_raw`` (``y_std_`` already
        set); ``scores`` are the targets as passed to ``fit`` when the network learns something
        else (the stats anchor's residuals): "percent" maps the scores, not the residuals, to 0-100."""
        if self.reg_units == "normalized":
            std = float(y_raw.std())
            k = self.y_std_ / (std if std > 1e-12 else 1.0)      # exactly 1 with normalize_y
        elif self.reg_units == "raw":
            k = self.y_std_
        else:
            span = float(np.ptp(y_raw if scores is None else scores))
            k = self.y_std_ * (100.0 / span if span > 1e-12 else 1.0)
        return 1.0 / k if self.loss == "l1" else 1.0 / k ** 2

    def _parameter_groups(self, params: list) -> list[dict]:
        """Adam parameter groups of one :meth:`_fit_loop` run over ``params``; a group's
        ``"lr_scale"`` multiplies the scheduled learning rate (Li et al.'s two learning rates)."""
        return [{"params": params}]

    def _train(self, X, y, extras, rng):
        """The training procedure; the base runs one :meth:`_fit_loop` over all parameters."""
        self._fit_loop(X, y, extras, rng, n_steps=self.max_iter)

    # ------------------------------------------------------------------ sklearn API
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

    def _check_params(self):
        def positive_int(name):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("max_iter", "batch_size", "lr_step", "lr_cycles", "n_iter_no_change"):
            positive_int(name)
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if self.lr_schedule not in _SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {_SCHEDULES}, got {self.lr_schedule!r}")
        if self.loss not in _LOSSES:
            raise ValueError(f"loss must be one of {_LOSSES}, got {self.loss!r}")
        if not isinstance(self.stats_anchor, (bool, np.bool_)):
            raise ValueError(f"stats_anchor must be True or False, got {self.stats_anchor!r}")
        w = self.network_weight
        if not (w == "auto" if isinstance(w, str) else isinstance(w, (int, float, np.integer, np.floating))
                and not isinstance(w, bool) and 0.0 <= w <= 1.0):
            raise ValueError(f"network_weight must be 'auto' or a float in [0, 1], got {w!r}")
        if self.reg_units not in _REG_UNITS:
            raise ValueError(f"reg_units must be one of {_REG_UNITS}, got {self.reg_units!r}")
        if not 0.0 < float(self.validation_fraction) < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        rw = self.ranking_weight
        if not (rw == "balanced" if isinstance(rw, str) else
                isinstance(rw, (int, float, np.integer, np.floating)) and not isinstance(rw, bool)
                and math.isfinite(rw) and rw >= 0):
            raise ValueError(f"ranking_weight must be a float >= 0 or 'balanced', got {rw!r}")
        m = self.ranking_margin
        if m is not None and not (isinstance(m, (int, float, np.integer, np.floating))
                                  and not isinstance(m, bool) and math.isfinite(m) and m >= 0):
            raise ValueError(f"ranking_margin must be None or a float >= 0, got {m!r}")

    def _check_extras(self, params: dict, n: int) -> dict[str, np.ndarray]:
        extras = {}
        for k, v in params.items():
            if k not in self.fit_extras:
                raise TypeError(f"{type(self).__name__} got an unexpected keyword argument {k!r}; "
                                f"it accepts per-sample keywords {list(self.fit_extras)}")
            if v is None:
                continue
            a = np.asarray(v)
            if a.shape[:1] != (n,):
                raise ValueError(f"{k} must have one entry per sample ({n}), got shape {a.shape}")
            extras[k] = a
        return extras

    def _resolve_device(self):
        import torch
        dev = self.device
        if dev == "auto":
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        if str(dev).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device={self.device!r} but CUDA is not available")
        return torch.device(dev)

    def fit(self, X, y, augmented_of=None, **fit_params):
        """Validate, seed, build the module, train; returns self.

        ``fit_params`` are the per-sample keywords named in ``fit_extras`` (e.g. ``groups=``).
        ``augmented_of`` (n,) ints marks augmented views (:mod:`aqa.data.views`): -1 for a source
        row, else the index of the source row the row is a view of. Views are extra training
        rows; early stopping holds out source rows only, each with all of its views (a view of a
        validation video would leak it into training), and the target normalisation is the
        sources'. ``n_augmented_`` is the number of view rows.
        """
        import torch
        self._check_params()
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        Xc = self._check_X(X, reset=True)
        y = self._check_y(y)
        if len(y) != len(Xc):
            raise ValueError(f"X has {len(Xc)} samples but y has {len(y)}")
        if len(y) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 samples to fit, got n_samples={len(y)}")
        extras = self._check_extras(fit_params, len(y))
        aug = self._check_augmented_of(augmented_of, y)
        src = aug < 0
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(0, 2**31 - 1))
        self.device_ = str(self._resolve_device())
        self.n_augmented_ = int((~src).sum())
        scores, self.anchor_ = y, None
        if self.stats_anchor:
            from .anchor import fit_anchor
            self.anchor_, loo = fit_anchor(self._anchor_input(X), y, aug)
            y = y - loo
        self.y_mean_ = float(y[src].mean()) if self.normalize_y else 0.0
        std = float(y[src].std()) if self.normalize_y else 1.0
        self.y_std_ = std if std > 1e-12 else 1.0
        yn = ((y - self.y_mean_) / self.y_std_).astype(np.float32)
        self.reg_scale_ = self._reg_scale(y[src], scores[src])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.module_config_ = self._module_config(Xc, yn, extras)
            self.module_ = self._make_module(self.module_config_).to(self.device_)
            self.loss_curve_, self.validation_scores_ = [], []
            self.n_iter_ = 0
            self.best_loss_ = math.inf
            self.best_iteration_ = None
            self._validation_split = None
            self._augmented_of, self._scores = aug, scores
            self.validation_index_ = np.arange(0)
            try:
                self._train(Xc, yn, extras, rng)
            finally:
                del self._validation_split, self._augmented_of, self._scores
        self.module_.eval()
        self.network_weight_ = self._fit_network_weight(Xc, yn, extras)
        return self

    def _fit_network_weight(self, Xc, yn, extras) -> float:
        """``network_weight_``: 1 without a stats anchor; else ``network_weight``, or with "auto"
        the least-squares weight of the network's predictions for early stopping's validation rows
        (taken with the restored best weights, never trained on) against their targets, in [0, 1]."""
        if self.anchor_ is None:
            return 1.0
        if self.network_weight != "auto":
            return float(self.network_weight)
        va = self.validation_index_
        if not len(va):
            return 1.0
        pv = self._predict_normalised(Xc[va], {k: v[va] for k, v in extras.items()})
        den = float(pv @ pv)
        return float(np.clip(float(yn[va] @ pv) / den, 0.0, 1.0)) if den > 1e-12 else 0.0

    def _check_augmented_of(self, augmented_of, y) -> np.ndarray:
        """``augmented_of`` as (n,) int64 (all -1 when None); each entry -1 or a source row's index,
        every view with the target of its source (a flipped dive scores what the dive scores)."""
        n = len(y)
        if augmented_of is None:
            return np.full(n, -1, dtype=np.int64)
        if not self.accepts_views:
            raise TypeError(f"{type(self).__name__} does not train on augmented views "
                            f"(augmented_of=): {self._views_refusal}")
        a = np.asarray(augmented_of)
        if a.shape != (n,) or a.dtype.kind not in "iu":
            raise ValueError(f"augmented_of must be {n} integers (one per row), got {a.dtype} {a.shape}")
        a = a.astype(np.int64)
        views = np.flatnonzero(a >= 0)
        if (a < -1).any() or (a >= n).any() or (a[a[views]] != -1).any():
            raise ValueError("augmented_of: each entry must be -1 (a source row) or the index of a "
                             "source row (one whose own entry is -1)")
        if not np.allclose(y[views], y[a[views]]):
            raise ValueError("augmented_of: a view's target differs from its source row's target")
        if (a < 0).sum() < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 source rows to fit, "
                             f"got {(a < 0).sum()}")
        return a

    #: why a head with ``accepts_views = False`` refuses them (its class sets the reason)
    _views_refusal = "its paper trains on the source videos only"

    @staticmethod
    def _check_y(y):
        """1-D float targets (a column vector is raveled with a DataConversionWarning)."""
        from sklearn.utils import check_array, column_or_1d
        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        return column_or_1d(y, warn=True)

    def _inference_module(self):
        """A float64 copy of the trained module in eval mode: float32 matrix products depend on the
        batch's size and order at the 1e-7 level, float64 makes predictions per-sample stable."""
        m = copy.deepcopy(self.module_).double()
        m.eval()
        return m

    def _predict_normalised(self, X, extras, key="pred", call: Callable | None = None):
        """Run the module (float64, eval mode) over batches; returns outputs[key] as numpy.

        ``call(module, X, extras)`` defaults to ``self._forward(module, X, extras, False)``.
        """
        import torch
        module = self._inference_module()
        call = call or (lambda m, x, e: self._forward(m, x, e, False))
        Xt = torch.as_tensor(np.asarray(X, dtype=np.float64), device=self._module_device())
        outs = []
        bs = max(self.batch_size, 256)
        with torch.no_grad():
            for s in range(0, len(X), bs):
                sl = slice(s, s + bs)
                out = call(module, Xt[sl], {k: v[sl] for k, v in extras.items()})
                outs.append(out[key].detach().cpu().numpy())
        return np.concatenate(outs, axis=0).astype(np.float64)

    def _module_device(self):
        try:
            return next(self.module_.parameters()).device
        except StopIteration:
            return "cpu"

    def predict(self, X, **predict_params):
        """Scores of shape (n,) in the units of the training targets."""
        check_is_fitted(self, "module_")
        Xc = self._check_X(X, reset=False)
        extras = self._check_extras(predict_params, len(Xc))
        pred = self._predict_normalised(Xc, extras)
        return pred * self._output_scale() + self._offset(X)

    def _output_scale(self) -> float:
        """Target units per unit of the network's output: ``y_std_`` times ``network_weight_``."""
        return self.y_std_ * getattr(self, "network_weight_", 1.0)

    def _offset(self, X) -> np.ndarray | float:
        """What the network's de-standardised output is added to: the target mean, plus the stats
        anchor's prediction for each row of X when the head has one."""
        anchor = getattr(self, "anchor_", None)
        if anchor is None:
            return self.y_mean_
        from .anchor import predict_anchor
        return self.y_mean_ + predict_anchor(anchor, self._anchor_input(X))

    def _check_loaded(self) -> None:
        """Validate the fitted attributes a head file set that predict computes with directly (the
        stats anchor and the network weight); a head saved before them has neither."""
        anchor = getattr(self, "anchor_", None)
        if anchor is not None:
            from .anchor import check_anchor
            check_anchor(anchor)
        w = getattr(self, "network_weight_", 1.0)
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 <= w <= 1.0:
            raise ValueError(f"network_weight_ must be a number in [0, 1], got {w!r:.40}")

    def _anchor_input(self, X) -> np.ndarray:
        """The head's input as the stats anchor reads it: X (float64) in the head's ``layout`` when
        it has one and X is 2-D (axis 1 the steps); a head that reads a part of X narrows it."""
        X = np.asarray(X, dtype=np.float64)
        layout = getattr(self, "layout", None)
        return apply_layout(X, layout) if layout is not None and X.ndim == 2 else X

    def _steps_in_target_units(self, steps: np.ndarray, X) -> np.ndarray:
        """Per-step outputs (n, S, ...) of the network in target units, the offset (target mean and
        anchor) spread evenly over the steps, so that they sum over axis 1 to :meth:`predict`."""
        offset = np.broadcast_to(np.asarray(self._offset(X), dtype=np.float64), (len(steps),))
        return steps * self._output_scale() + offset.reshape((-1,) + (1,) * (steps.ndim - 1)) / steps.shape[1]

    # ------------------------------------------------------------------ training loop
    def _lr_at(self, step: int) -> float:
        if self.lr_schedule == "cyclic":
            return self.learning_rate * self.lr_decay ** ((step // self.lr_step) % self.lr_cycles)
        if self.lr_schedule == "step":
            return self.learning_rate * self.lr_decay ** (step // self.lr_step)
        return self.learning_rate

    def _steps_per_epoch(self, n_train: int) -> int:
        return steps_per_epoch(n_train, self.batch_size)

    def _split_validation(self, n: int, rng, groups=None,
                          views: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Training/validation index arrays; validation is carved from the training data only.

        Drawn once per :meth:`fit`, so every stage of a multi-stage head (JRG's branches, the
        Siamese phases) holds out the same rows (``validation_index_``). With ``groups`` (one key
        per row), validation rows of a group that has no training row stay in training (a head
        that scores against same-group training rows could not score them). Validation rows are
        source rows (see ``augmented_of`` in :meth:`fit`); the views of a validation row are in
        neither part; ``views=False`` leaves every view out of the training part too (a phase
        that trains on the source videos only)."""
        aug = getattr(self, "_augmented_of", None)
        if aug is None or len(aug) != n:
            aug = np.full(n, -1, dtype=np.int64)
        cached = getattr(self, "_validation_split", None)
        if cached is None or cached[2] != n:
            cached = self._draw_validation(n, rng, groups, aug) + (n,)
            if hasattr(self, "_validation_split"):        # inside fit
                self._validation_split = cached
                self.validation_index_ = cached[1]
        tr, va = cached[:2]
        return (tr if views else tr[aug[tr] < 0]), va

    def _draw_validation(self, n, rng, groups, aug) -> tuple[np.ndarray, np.ndarray]:
        """The split of :meth:`_split_validation`: a validation fraction of the source rows."""
        sources = np.flatnonzero(aug < 0)
        m = len(sources)
        n_val = int(round(self.validation_fraction * m))
        if not self.early_stopping or n_val < 2 or m - n_val < 2:
            return np.arange(n), np.arange(0)
        perm = sources[rng.permutation(m)]
        tr, va = np.sort(perm[n_val:]), np.sort(perm[:n_val])
        if groups is not None:
            groups = np.asarray(groups)
            alone = ~np.isin(groups[va], groups[tr])
            tr, va = np.sort(np.concatenate([tr, va[alone]])), va[~alone]
        views = np.flatnonzero(np.isin(aug, tr))          # views of the training sources
        return np.sort(np.concatenate([tr, views])), va

    def _fit_loop(self, X, y, extras, rng, *, n_steps: int, forward: Callable | None = None,
                  parameters: Iterable | None = None, frozen: Iterable = (), freeze_steps: int = 0,
                  desc: str = "train", views: bool = True):
        """One Adam optimisation run of ``n_steps`` iterations.

        ``forward(module, X, extras, training) -> dict`` defaults to :meth:`_forward`;
        ``parameters`` default to all module parameters; parameters in ``frozen`` get no update during
        the first ``freeze_steps`` iterations (JRG's second stage); ``views=False`` trains on the
        source rows only (see :meth:`_split_validation`). Appends to ``loss_curve_`` and
        ``validation_scores_``, adds to ``n_iter_``; with early stopping restores the best weights.
        """
        import torch
        from aqa.data.logs import progress_bar
        forward = forward or self._forward
        module = self.module_
        dev = self._module_device()
        params = [p for p in (module.parameters() if parameters is None else parameters) if p.requires_grad]
        frozen = {id(p) for p in frozen}
        groups = self._parameter_groups(params)
        opt = torch.optim.Adam(groups, lr=self.learning_rate,
                               weight_decay=self.weight_decay * self.reg_scale_)
        tr, va = self._split_validation(len(y), rng, views=views)
        Xt = torch.as_tensor(np.ascontiguousarray(X) if X.flags.writeable else X.copy(), device=dev)
        yt = torch.as_tensor(y, dtype=torch.float32, device=dev)
        best, best_state, best_step, bad = math.inf, None, 0, 0
        step = 0
        bar = progress_bar(total=n_steps, desc=f"{type(self).__name__} {desc}",
                           disable=not self.verbose, leave=False)
        while step < n_steps:
            module.train()
            perm = tr[rng.permutation(len(tr))]
            losses = []
            for s in range(0, len(perm), self.batch_size):
                b = perm[s:s + self.batch_size]
                if len(b) < 2 and len(perm) >= 2:      # avoid degenerate 1-sample tail batches
                    continue
                for g in opt.param_groups:
                    g["lr"] = self._lr_at(step) * g.get("lr_scale", 1.0)
                bt = torch.as_tensor(b, device=dev)
                out = forward(module, Xt[bt], {k: v[b] for k, v in extras.items()}, True)
                loss = self._batch_loss(out["pred"], yt[bt], out)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{type(self).__name__}: training loss became {loss.item()} "
                                             f"at step {self.n_iter_}; lower learning_rate")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if step < freeze_steps and frozen:
                    for p in params:
                        if id(p) in frozen:
                            p.grad = None
                opt.step()
                losses.append(float(loss.detach()))
                step += 1
                self.n_iter_ += 1
                bar.update(1)
                if step >= n_steps:
                    break
            if losses:
                self.loss_curve_.append(float(np.mean(losses)))
            if len(va):
                module.eval()
                with torch.no_grad():
                    vt = torch.as_tensor(va, device=dev)
                    vp = forward(module, Xt[vt], {k: v[va] for k, v in extras.items()}, False)["pred"]
                    vloss = float(torch.mean((vp - yt[vt]) ** 2))
                self.validation_scores_.append(vloss)
                if vloss < best - 1e-7:
                    best, bad, best_step = vloss, 0, step
                    best_state = copy.deepcopy(module.state_dict())
                else:
                    bad += 1
                    if bad >= self.n_iter_no_change:
                        break
        bar.close()
        if best_state is not None:
            module.load_state_dict(best_state)
            self.best_loss_ = best
            self.best_iteration_ = best_step      # steps of this run when its best weights were taken
        elif self.loss_curve_:
            self.best_loss_ = min(self.loss_curve_)
        module.eval()

    # ------------------------------------------------------------------ pickling and files
    def __getstate__(self):
        """Pickle the module as CPU tensors (a GPU-trained head unpickles on a CPU-only machine)."""
        state = self.__dict__.copy()
        module = state.pop("module_", None)
        if module is not None:
            state["_module_state"] = {k: v.detach().cpu() for k, v in module.state_dict().items()}
        return state

    def __setstate__(self, state):
        module_state = state.pop("_module_state", None)
        self.__dict__.update(state)
        if module_state is not None:
            self._restore_module(module_state)

    def _restore_module(self, module_state):
        import torch
        with torch.random.fork_rng(devices=[]):
            module = self._make_module(self.module_config_)
        module.load_state_dict(module_state)
        module.eval()
        self.module_ = module
        self.device_ = "cpu"

    def _fitted_attributes(self) -> dict:
        return {k: v for k, v in self.__dict__.items()
                if k.endswith("_") and not k.startswith("_") and k != "module_"}

    def save(self, path, *, provenance: dict | None = None, config: dict | None = None) -> Path:
        """Write the trained head: class, parameters, fitted attributes, weights (CPU), the cache
        provenance and the training config (e.g. feature family, split, labels file).

        The file is a ``torch.save`` dict of tensors and JSON strings, so :meth:`load` reads it with
        ``torch.load(weights_only=True)`` (no arbitrary code runs on load).
        """
        import torch
        check_is_fitted(self, "module_")
        payload = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "kind": "torch",
            "class": f"{type(self).__module__}:{type(self).__qualname__}",
            "params_json": _to_json(self.get_params(deep=False)),
            "fitted_json": _to_json(self._fitted_attributes()),
            "provenance_json": _to_json(provenance or {}),
            "config_json": _to_json(config or {}),
            "state_dict": {k: v.detach().cpu() for k, v in self.module_.state_dict().items()},
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, path)
        return path

    @classmethod
    def load(cls, path, *, device: str = "cpu") -> "TorchRegressor":
        """Read a head written by :meth:`save`; sets ``provenance_`` and ``train_config_`` too."""
        est = load_head(path, device=device)
        if not isinstance(est, cls):
            raise HeadFormatError(f"{path} holds a {type(est).__name__}, not a {cls.__name__}")
        return est


# ---------------------------------------------------------------------- JSON helpers and files
def _enc(v):
    if isinstance(v, np.ndarray):
        return {"__ndarray__": v.tolist(), "dtype": str(v.dtype), "shape": list(v.shape)}
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, tuple):
        return {"__tuple__": [_enc(x) for x in v]}
    if isinstance(v, list):
        return [_enc(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _enc(x) for k, x in v.items()}
    if isinstance(v, float) and not math.isfinite(v):
        return {"__float__": repr(v)}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(f"cannot store {type(v).__name__} in a head file")


def _plain_dtype(spec) -> np.dtype:
    """The dtype a head file's JSON names, if it is a plain one (numbers, bool, strings up to 64 KiB
    an item, objects holding JSON values); not a structure, a sub-array nor a raw void."""
    dt = np.dtype(spec) if isinstance(spec, str) else None
    if dt is None or dt.kind not in "biufcUSO" or dt.names is not None or dt.subdtype is not None \
            or dt.itemsize > 65536:
        raise ValueError(f"array dtype {str(spec)[:40]!r} is not a plain one")
    return dt


def _dec(v):
    if isinstance(v, dict):
        if "__ndarray__" in v:
            return np.asarray(v["__ndarray__"], dtype=_plain_dtype(v["dtype"])).reshape(v["shape"])
        if "__tuple__" in v:
            return tuple(_dec(x) for x in v["__tuple__"])
        if "__float__" in v:
            return float(v["__float__"])
        return {k: _dec(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_dec(x) for x in v]
    return v


def _to_json(d) -> str:
    return json.dumps(_enc(d))


def _from_json(s: str):
    return _dec(json.loads(s))


def _head_class(spec, path) -> type:
    """The TorchRegressor subclass a head file names, resolved in the head registry (a closed set;
    nothing named by the file is imported)."""
    from . import registry
    try:
        cls = registry.head_class(spec)
    except KeyError as e:
        raise HeadFormatError(f"{path}: head file names class {e.args[0]}; refusing it") from None
    if not (isinstance(cls, type) and issubclass(cls, TorchRegressor)):
        raise HeadFormatError(f"{path}: head file names {cls.__name__}, which is not a neural head")
    return cls


def _sklearn_class_name(estimator) -> str:
    return f"{type(estimator).__module__}:{type(estimator).__qualname__}"


def save_head(estimator, path, *, provenance: dict | None = None, config: dict | None = None) -> Path:
    """Save any trained head. Neural heads use :meth:`TorchRegressor.save`; other scikit-learn
    estimators (the SVR Pipelines) are stored as :mod:`skops.io` bytes inside the same container
    (:mod:`aqa.heads.sklearnfile`). Both load without running code from the file."""
    import torch
    from .sklearnfile import dumps
    if isinstance(estimator, TorchRegressor):
        return estimator.save(path, provenance=provenance, config=config)
    check_is_fitted(estimator)
    payload = {"format": FORMAT, "format_version": SKOPS_FORMAT_VERSION, "kind": "sklearn-skops",
               "class": _sklearn_class_name(estimator),
               "provenance_json": _to_json(provenance or {}), "config_json": _to_json(config or {}),
               "skops": torch.frombuffer(bytearray(dumps(estimator)), dtype=torch.uint8)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


#: the names a head file's fitted_json may set on the estimator: fitted attributes (``coef_``),
#: never a method, a parameter or a dunder.
_FITTED_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*_\Z")


def _one_line(e: BaseException, limit: int = 200) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _bytes_of(payload: dict, key: str, path) -> bytes:
    import torch
    t = payload.get(key)
    if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8 or t.dim() != 1:
        raise HeadFormatError(f"{path}: head file lacks its {key!r} bytes")
    return t.numpy().tobytes()


def _json_field(payload: dict, key: str, path):
    s = payload.get(key, "{}")
    if not isinstance(s, str):
        raise HeadFormatError(f"{path}: head file's {key} is a {type(s).__name__}, not JSON text")
    try:
        return _from_json(s)
    except (ValueError, TypeError, RecursionError) as e:
        raise HeadFormatError(f"{path}: head file's {key} is not valid ({type(e).__name__}: "
                              f"{_one_line(e)})") from None


def _load_torch_head(payload: dict, path, device: str):
    import torch
    cls = _head_class(payload.get("class"), path)
    params = _json_field(payload, "params_json", path)
    fitted = _json_field(payload, "fitted_json", path)
    if not isinstance(params, dict) or not isinstance(fitted, dict):
        raise HeadFormatError(f"{path}: head file's params_json/fitted_json are not objects")
    unknown = sorted(set(params) - set(cls().get_params(deep=False)))
    bad = sorted(k for k in fitted if not _FITTED_NAME.match(k) or k == "module_")
    state = payload.get("state_dict")
    if unknown or bad:
        raise HeadFormatError(f"{path}: head file sets unknown {cls.__name__} parameter(s) "
                              f"{unknown[:5]} or non-fitted attribute(s) {bad[:5]}")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise HeadFormatError(f"{path}: head file's state_dict is not a dict of named tensors")
    try:
        est = cls(**params)
        for k, v in fitted.items():
            setattr(est, k, v)
        est._check_loaded()
        est._restore_module(state)
    except Exception as e:  # noqa: BLE001 - a damaged file fails while rebuilding in many ways
        raise HeadFormatError(f"{path}: the {cls.__name__} in this head file cannot be rebuilt "
                              f"({type(e).__name__}: {_one_line(e)})") from None
    if device != "cpu":
        est.module_.to(device)
        est.device_ = str(device)
    return est


def load_head(path, *, device: str = "cpu", allow_pickle: bool = False):
    """Load a head file written by :func:`save_head`; the estimator gets ``provenance_`` and
    ``train_config_`` attributes. Neural heads and skops (non-neural) heads load without running
    anything from the file: the class comes from the head registry, skops admits known types only.
    Old pickled non-neural heads need ``allow_pickle=True`` (CLI: ``--trust-model``). A file that is
    not a usable head file is a :class:`HeadFormatError` with a one-line message."""
    import torch
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no head file at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not our format"
        raise HeadFormatError(f"{path} is not an aqa head file (those are written by "
                              f"`aqa-heads train --out` or a head's .save(); torch.load failed: "
                              f"{type(e).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise HeadFormatError(f"{path} is not an aqa head file (format tag missing)")
    version, kind = payload.get("format_version", 0), payload.get("kind")
    if not isinstance(version, int) or version > SKOPS_FORMAT_VERSION:
        raise HeadFormatError(f"{path} has format_version {version if isinstance(version, int) else '?'}; "
                              f"this aqa reads up to {SKOPS_FORMAT_VERSION}")
    if kind == "sklearn-pickle":
        import pickle
        shown = payload["class"][:120] if isinstance(payload.get("class"), str) else "model"
        if not allow_pickle:
            raise HeadFormatError(f"{path} holds a pickled {shown} (a non-neural head saved by an "
                                  f"older aqa); loading runs pickle, so pass allow_pickle=True "
                                  f"(CLI: --trust-model) only for files you made yourself, or "
                                  f"retrain to get a file that loads safely")
        est = pickle.loads(_bytes_of(payload, "pickle", path))
    elif kind == "sklearn-skops":
        from .sklearnfile import loads
        est = loads(_bytes_of(payload, "skops", path), source=str(path))
        if not hasattr(est, "predict"):
            raise HeadFormatError(f"{path}: the skops model is a {type(est).__name__}, not an estimator")
    elif kind == "torch":
        est = _load_torch_head(payload, path, device)
    else:
        raise HeadFormatError(f"{path}: unknown head kind {kind!r:.60}" if isinstance(kind, str)
                              else f"{path}: head file has no kind")
    provenance = _json_field(payload, "provenance_json", path)
    config = _json_field(payload, "config_json", path)
    if not isinstance(provenance, dict) or not isinstance(config, dict):
        raise HeadFormatError(f"{path}: head file's provenance/config are not objects")
    est.provenance_, est.train_config_ = provenance, config
    return est


def apply_layout(X: np.ndarray, layout, *, name: str = "X") -> np.ndarray:
    """Reshape validated X (n, ...) to ``(n, *layout)``; one ``-1`` in ``layout`` is inferred.

    With ``layout=None`` X is returned unchanged. A 2-D X of shape (n, F) is read row-major, i.e.
    ``X.reshape(n, *layout)`` (for JRG's ``(S, 1+J, D)``: step-major, then node, then dimension).
    An N-d X must already have the layout's shape (or be reshapeable to it).
    """
    if layout is None:
        return X
    layout = tuple(int(v) for v in layout)
    if sum(v == -1 for v in layout) > 1 or any(v == 0 or v < -1 for v in layout):
        raise ValueError(f"layout {layout} must be positive sizes with at most one -1")
    n = X.shape[0]
    per = int(np.prod(X.shape[1:]))
    known = int(np.prod([v for v in layout if v != -1]))
    if per % known or (-1 not in layout and per != known):
        raise ValueError(f"{name} has {per} feature(s) per sample, which does not fit layout {layout} "
                         f"(needs {'a multiple of ' if -1 in layout else ''}{known})")
    return X.reshape(n, *layout)


def step_sequences(est, X: np.ndarray, reset: bool, expects: str, unit: str = "step") -> np.ndarray:
    """Validated X as contiguous float32 step sequences (n, S, D) for a sequence head ``est``:
    ``est.layout`` applied, else a 2-D X read as one step per sample; any other shape a ValueError
    ``"<Head> expects <expects>; got shape ..."``. ``reset`` (fit) records ``est.input_shape_``;
    later calls must bring the same D (per ``unit``)."""
    name = type(est).__name__
    X = apply_layout(X, est.layout) if est.layout is not None else X[:, None, :] if X.ndim == 2 else X
    if X.ndim != 3:
        raise ValueError(f"{name} expects {expects}; got shape {X.shape}")
    fitted = getattr(est, "input_shape_", None)  # None: a head saved before it was recorded
    if reset:
        est.input_shape_ = tuple(int(v) for v in X.shape[1:])
    elif fitted is not None and X.shape[2] != fitted[1]:
        raise ValueError(f"X has {X.shape[2]} features per {unit}, but {name} was fitted with "
                         f"{fitted[1]}")
    return np.ascontiguousarray(X, dtype=np.float32)
