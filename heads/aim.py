"""AIM: the asymmetric interaction module for action assessment (Gao, Zheng, Pan, Gao, Wang, Zeng,
Lai; ECCV 2020).

Per time step t the kinetic input is split into the *primary* ``A_p`` (the main performer's joints, or
the master tool-tips) and the *secondary* ``A_s`` (the other performer in two-person events, the
camera motion for one-person actions, the slave tool-tips/handles in surgery). AIM maps the secondary
into the primary's space with a learnable FC ``T`` (PyTorch's standard initialisation; the paper gives
none. ``transform_init="identity"`` starts it at the identity, only for a secondary from the primary's
own domain, e.g. the other athlete's joints: the paper notes that T then "tends to learn an identity
function"), takes the
difference ``I_d = A_p - T(A_s)`` (eq. 1), concatenates ``M_ps = A_p (+) I_d`` (eq. 2) and runs an LSTM
over time, ``Y_psi = LSTM(M_ps)`` (eq. 3). The whole-scene feature ``F_wl`` (I3D) is encoded to
``X_wl`` (FC + ReLU). Attention fusion (eqs. 4-5): the two stream vectors of a step are the queries and
values, the key ``O_key = FC_key(F_wl)`` comes from the whole-scene feature,
``W = softmax([X_wl; Y_psi] O_key)`` (two weights per step) and ``Z = W_1 X_wl + W_2 Y_psi``. The score
is the sum of per-step regressions (two FCs, eq. 6). The multi-task variant (Sec. 4) adds
``S_ex = sum_t R_A(X_wl)`` and ``S_sn = sum_t R_B(Y_psi)`` trained with
``L = L_fn + theta L_ex + (1 - theta) L_sn`` (eq. 8, theta = 0.4).

A one-person cache extracted without flow (``--flow none``) has no camera motion, so AIM cannot
run on it (one clear error); docs/heads_vs_baseline.md measures it on two-person videos only.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from sklearn.utils.validation import check_is_fitted

from .base import base_kwargs, TorchRegressor, step_sequences

__all__ = ["AIMNet", "AIMRegressor", "plot_explain", "aim_lr", "pose_step_kinematics", "aim_inputs"]

_INTERACTIONS = ("aim", "concat", "no_transform", "no_difference")
_FUSIONS = ("attention", "half")
_TRANSFORM_INITS = ("random", "identity")


class AIMNet(nn.Module):
    """The network of Fig. 2 on inputs of shape (B, S, Dp + Ds + Dw).

    ``interaction``: ``"aim"`` (eqs. 1-2), or the paper's ablations ``"no_transform"``
    (``A_p - A_s``), ``"no_difference"`` (``A_p (+) T(A_s)``), and ``"concat"`` (``A_p (+) A_s``: plain
    concatenation, no interaction modelling). ``fusion``: ``"attention"`` (eqs. 4-5) or ``"half"``
    (fixed 0.5/0.5, the "w/o attention fusion" ablation). ``transform_init``: ``"random"`` (the
    standard ``nn.Linear`` initialisation) or ``"identity"`` (needs ``ds == dp``; same-domain streams).
    """

    def __init__(self, dp: int, ds: int, dw: int, hidden: int = 512, reg_hidden: int = 128,
                 dropout: float = 0.2, interaction: str = "aim", fusion: str = "attention",
                 multitask: bool = False, transform_init: str = "random"):
        super().__init__()
        self.dims = (int(dp), int(ds), int(dw))
        self.interaction, self.fusion, self.multitask = interaction, fusion, bool(multitask)
        if transform_init not in _TRANSFORM_INITS:
            raise ValueError(f"transform_init must be one of {_TRANSFORM_INITS}, got {transform_init!r}")
        if interaction in ("aim", "no_difference"):
            self.transform = nn.Linear(ds, dp)
            if transform_init == "identity":
                if ds != dp:
                    raise ValueError(f"transform_init='identity' needs Ds == Dp, got Ds={ds}, Dp={dp}")
                with torch.no_grad():
                    self.transform.weight.copy_(torch.eye(dp))
                    self.transform.bias.zero_()
        lstm_in = dp + (ds if interaction == "concat" else dp)
        self.lstm = nn.LSTM(lstm_in, hidden, batch_first=True)
        if dw > 0:
            self.encoder = nn.Sequential(nn.Linear(dw, hidden), nn.ReLU())
            if fusion == "attention":
                self.key = nn.Linear(dw, hidden)

        def regressor():
            return nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, reg_hidden), nn.ReLU(),
                                 nn.Linear(reg_hidden, 1))
        self.reg = regressor()
        if self.multitask:
            self.reg_ex, self.reg_sn = regressor(), regressor()

    def forward(self, x):
        dp, ds, dw = self.dims
        a_p, a_s, f_wl = x[..., :dp], x[..., dp:dp + ds], x[..., dp + ds:]
        if self.interaction == "aim":
            m_ps = torch.cat([a_p, a_p - self.transform(a_s)], dim=-1)          # eqs. 1-2
        elif self.interaction == "no_transform":
            m_ps = torch.cat([a_p, a_p - a_s], dim=-1)
        elif self.interaction == "no_difference":
            m_ps = torch.cat([a_p, self.transform(a_s)], dim=-1)
        else:
            m_ps = torch.cat([a_p, a_s], dim=-1)
        y_psi, _ = self.lstm(m_ps)                                             # eq. 3, (B, S, d)
        if dw == 0:                     # no whole-scene stream: the AIM feature alone (weight 1)
            x_wl = torch.zeros_like(y_psi)
        else:
            x_wl = self.encoder(f_wl)                                          # (B, S, d)
        v = torch.stack([x_wl, y_psi], dim=2)                                  # (B, S, 2, d)
        if dw == 0:
            w = torch.stack([torch.zeros_like(y_psi[..., 0]), torch.ones_like(y_psi[..., 0])], dim=-1)
        elif self.fusion == "attention":
            o_key = self.key(f_wl)                                             # eq. 5
            w = torch.softmax(torch.einsum("bskd,bsd->bsk", v, o_key), dim=-1)
        else:
            w = v.new_full(v.shape[:3], 0.5)
        z = torch.einsum("bsk,bskd->bsd", w, v)                                # eq. 4
        steps = self.reg(z).squeeze(-1)                                        # (B, S)
        out = {"pred": steps.sum(1), "steps": steps, "attention": w}           # eq. 6
        if self.multitask:
            out["execution"] = self.reg_ex(x_wl).squeeze(-1).sum(1)            # eq. 7
            out["sync"] = self.reg_sn(y_psi).squeeze(-1).sum(1)
        return out


def _zero_tail(a: np.ndarray) -> int:
    """How many trailing columns (last axis) of ``a`` are zero everywhere (zero-padding)."""
    used = np.flatnonzero(np.any(a != 0, axis=tuple(range(a.ndim - 1))))
    return a.shape[-1] - (int(used[-1]) + 1 if used.size else 0)


def aim_lr(epoch: int, base: float = 1e-4) -> float:
    """The paper's cyclic schedule: {1e-4, 1e-5, 1e-6} switching at the {20, 50, 100}th epoch of
    every 100 epochs (scaled by ``base / 1e-4``)."""
    e = int(epoch) % 100
    return base if e < 20 else (base * 0.1 if e < 50 else base * 0.01)


class AIMRegressor(TorchRegressor):
    """Asymmetric interaction module (AIM) head, Gao et al. ECCV 2020.

    Input X: shape (n, S, F) with ``F = Dp + Ds + Dw``: per time step the primary's kinetic features
    (``Dp`` columns), the secondary's (``Ds``), and the whole-scene feature (``Dw``), in that order; or
    (n, S, 3, D), the three streams zero-padded to a common D (what :func:`aim_inputs` builds from a
    cache; read as dims (D, D, D), exactly equivalent for the first linear layers); or 2-D X with
    ``layout=(S, F)`` (a 2-D X without layout is one step). ``dims=(Dp, Ds, Dw)`` gives the
    split; ``dims=None`` splits F into thirds (``Dp = Ds = F // 3``, the rest whole-scene; with
    F = 2 there is no whole-scene stream, ``Dw = 0``, which ``dims`` may also request: then the AIM
    feature is used alone, attention weight 1).

    Multi-task (``multitask=True``, Sec. 4): ``fit(X, y, execution=..., sync=...)`` with the execution
    and synchronisation sub-scores; the loss is eq. 8 with ``theta``. :meth:`predict_subscores` gives
    the two sub-score predictions.

    ``transform_init``: ``"random"`` (default; standard init of the FC ``T``) or ``"identity"`` --
    declare that the secondary lives in the primary's space (the other athlete's joints,
    ``aim_inputs(secondary="pose")``); never for camera motion or tool kinematics, and a warning is
    given when the secondary stream looks zero-padded (a smaller stream padded to the primary's size).

    Defaults are the paper's except three, which its preset (``paper_params``, the ``paper`` preset
    of :mod:`aqa.heads.presets`) restores: width 128 instead of 512, a base learning rate of 1e-3
    instead of 1e-4 (same schedule), and 600 iterations instead of 9000 (the paper's length takes ~10 min a fit on 80 videos on a CPU), on standardised inputs
    (``normalize_X``); ``benchmarks/neural_defaults.py`` measures them against a Ridge on
    temporal statistics: on 80 synthetic training videos, 0.933 / 0.915 test Spearman (seeds 0, 1)
    against the Ridge's 0.881, 54-56 CPU seconds a fit (early-stopped run plus refit) at 1000
    iterations. 1000 -> 600 keeps a fit on 320 videos within a minute, measured on 40 validation
    rows taken from the training pool (never test rows; ``aqa-data synth`` single kind,
    ``kin_pose+hof_flow``, seed 0; CPU seconds of the early-stopped run plus refit, one thread;
    ``python benchmarks/neural_defaults.py CACHE --heads aim --n-train 80,320 --n-test 40 --seeds 1
    --evaluate dev --variant aim:it600:max_iter=600``): n_train 320, 0.926 Spearman in 83 CPU s
    at 1000 iterations, 0.928 in 53 CPU s at 600 (Ridge on temporal statistics 0.958); n_train
    80, 0.909 in 50 CPU s at 600 (Ridge 0.897). Learning rate 1e-3: early stopping ends most fits
    early (``make demo``'s report: best iteration median 20 of 600), at the same accuracy in a
    third to a half of the time: on 80 held-out videos of a separate synthetic set (``aqa-data synth`` seed 1, sync kind,
    ``kin_pose``; never the benchmark's test rows), 2 seeds, 0.916 ± 0.006 Spearman at 80 training
    videos and 0.934 ± 0.004 at 320 in 33 and 19 CPU s, against 0.910 ± 0.007 and 0.930 ± 0.005 in
    51 and 56 CPU s at 1e-4 (``stats-ridge`` 0.932 and 0.960; ``python
    benchmarks/heads_vs_baseline.py --out dev --synth-seed 1 --features kin_pose
    --kinds sync
    --n-train 80,320 --seeds 2 --heads aim -p aim.learning_rate=1e-4``, and without ``-p``).
    Stats anchor (on by default, see ``stats_anchor`` in :class:`~aqa.heads.base.TorchRegressor`):
    on the seed-1 synthetic set, 2 seeds, 80 / 320 training videos, with / without it
    (``stats-ridge`` in brackets): sync 0.942 / 0.959 against 0.916 / 0.934 (0.932 / 0.960)
    (``python benchmarks/heads_vs_baseline.py --out dev --synth-seed 1 --features kin_pose --kinds sync
    --n-train 80,320 --seeds 2 --heads aim``, and ``-p aim.stats_anchor=false``).

    The paper's: LSTM and encoder width 512, regression FCs 512 -> 128 -> 1, dropout 0.2,
    theta 0.4, Adam with weight decay 0.5 (against the MSE on the scores as given, which the
    paper does not rescale: ``reg_units="raw"``), batch 64, the cyclic {1e-4, 1e-5, 1e-6} learning rate
    switching at epochs {20, 50, 100} of every 100 (``lr_schedule="aim"``). Training length: the
    paper's 3000 epochs exactly with ``max_epochs=3000``; by default (``max_epochs=None``)
    ``max_iter`` iterations, 9000 being 3000 epochs of a ~190-video training set at batch 64. Any base
    schedule (``"constant"``, ``"cyclic"``, ``"step"``) may be used instead.

    Explanations: :meth:`explain` returns per-step scores (they sum to the prediction) and the
    attention weights of eq. 5 (whole-scene vs AIM stream, per step); :func:`plot_explain` draws them.
    """

    paper_params = {**TorchRegressor.paper_params, "hidden_dim": 512, "max_iter": 9000,
                    "learning_rate": 1e-4}

    fit_extras = ("execution", "sync")

    def __init__(self, *, dims=None, layout=None, hidden_dim=128, reg_hidden_dim=128, dropout=0.2,
                 interaction="aim", fusion="attention", multitask=False, theta=0.4, transform_init="random",
                 max_epochs=None, max_iter=600, batch_size=64, learning_rate=1e-3, lr_schedule="aim",
                 lr_step=500, lr_decay=0.1, lr_cycles=3, weight_decay=0.5, normalize_X=True, normalize_y=True,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10, loss="mse",
                 ranking_weight=0.0, ranking_margin=None, reg_units="raw",
                 stats_anchor=True, network_weight="auto", device="cpu", random_state=None,
                 verbose=False):
        self.dims = dims
        self.layout = layout
        self.hidden_dim = hidden_dim
        self.reg_hidden_dim = reg_hidden_dim
        self.dropout = dropout
        self.interaction = interaction
        self.fusion = fusion
        self.multitask = multitask
        self.theta = theta
        self.transform_init = transform_init
        self.max_epochs = max_epochs
        super().__init__(**base_kwargs(locals()))

    # ------------------------------------------------------------------ input
    def _check_X(self, X, reset):
        X = super()._check_X(X, reset)
        if self.layout is None and X.ndim == 4 and X.shape[2] == 3:  # streams (n, S, 3, D): aim_inputs
            X = X.reshape(X.shape[0], X.shape[1], -1)
        return step_sequences(self, X, reset, "X of shape (n, S, Dp+Ds+Dw), (n, S, 3, D) or 2-D X "
                                              "with layout=(S, F)")

    def _split_dims(self, f: int) -> tuple[int, int, int]:
        if self.dims is None:
            if f < 2:
                raise ValueError(f"AIMRegressor needs at least 2 features per step (primary, secondary"
                                 f"[, whole-scene]); got {f} feature(s)")
            k = max(f // 3, 1)
            return k, k, f - 2 * k
        dims = tuple(int(v) for v in self.dims)
        if len(dims) != 3 or min(dims[:2]) < 1 or dims[2] < 0:
            raise ValueError(f"dims must be sizes (Dp >= 1, Ds >= 1, Dw >= 0), got {self.dims!r}")
        if sum(dims) != f:
            raise ValueError(f"dims {dims} sum to {sum(dims)} but X has {f} feature(s) per step")
        return dims

    def _check_params(self):
        if self.interaction not in _INTERACTIONS:
            raise ValueError(f"interaction must be one of {_INTERACTIONS}, got {self.interaction!r}")
        if self.fusion not in _FUSIONS:
            raise ValueError(f"fusion must be one of {_FUSIONS}, got {self.fusion!r}")
        if not 0.0 <= float(self.theta) <= 1.0:
            raise ValueError(f"theta must be in [0, 1], got {self.theta!r}")
        if self.transform_init not in _TRANSFORM_INITS:
            raise ValueError(f"transform_init must be one of {_TRANSFORM_INITS}, got {self.transform_init!r}")
        me = self.max_epochs
        if me is not None and (not isinstance(me, (int, np.integer)) or isinstance(me, bool) or me < 1):
            raise ValueError(f"max_epochs must be None or a positive integer, got {me!r}")
        if self.lr_schedule == "aim":
            saved = self.lr_schedule
            self.lr_schedule = "constant"
            try:
                super()._check_params()
            finally:
                self.lr_schedule = saved
        else:
            super()._check_params()

    # ------------------------------------------------------------------ module
    def _module_config(self, X, y, extras):
        dp, ds, dw = self._split_dims(X.shape[2])
        if self.interaction == "no_transform" and ds != dp:
            raise ValueError(f"interaction='no_transform' needs Dp == Ds, got dims {(dp, ds, dw)}")
        if self.transform_init == "identity":
            if ds != dp:
                raise ValueError(f"transform_init='identity' needs Dp == Ds, got dims {(dp, ds, dw)}")
            pad_p, pad_s = (_zero_tail(X[..., a:a + dp]) for a in (0, dp))
            if pad_s > pad_p:
                warnings.warn(f"transform_init='identity' but the secondary's last {pad_s} column(s) are "
                              f"zero in every sample (the primary's last {pad_p}): a smaller stream "
                              f"zero-padded to the primary's size is not in the primary's domain; use "
                              f"transform_init='random'", UserWarning, stacklevel=3)
        cfg = {"dp": dp, "ds": ds, "dw": dw, "hidden": int(self.hidden_dim),
               "reg_hidden": int(self.reg_hidden_dim), "dropout": float(self.dropout),
               "interaction": self.interaction, "fusion": self.fusion, "multitask": bool(self.multitask),
               "transform_init": self.transform_init}
        if self.multitask:
            for k in ("execution", "sync"):
                if k not in extras:
                    raise ValueError(f"multitask=True needs fit(..., {k}=...) sub-scores")
                v = np.asarray(extras[k], dtype=np.float64)
                if not np.all(np.isfinite(v)):
                    raise ValueError(f"{k} sub-scores must be finite")
                sd = float(v.std())
                setattr(self, f"{k}_mean_", float(v.mean()))
                setattr(self, f"{k}_std_", sd if sd > 1e-12 else 1.0)
        return cfg

    def _make_module(self, config):
        return AIMNet(config["dp"], config["ds"], config["dw"], hidden=config["hidden"],
                      reg_hidden=config["reg_hidden"], dropout=config["dropout"],
                      interaction=config["interaction"], fusion=config["fusion"],
                      multitask=config["multitask"], transform_init=config.get("transform_init", "random"))

    def _forward(self, module, X, extras, training):
        out = module(X)
        if training and self.multitask:
            for k in ("execution", "sync"):
                v = (np.asarray(extras[k], dtype=np.float64) - getattr(self, f"{k}_mean_")) \
                    / getattr(self, f"{k}_std_")
                out[f"{k}_target"] = torch.as_tensor(v, dtype=X.dtype, device=X.device)
        return out

    def _batch_loss(self, pred, target, outputs):
        loss = super()._batch_loss(pred, target, outputs)
        if self.multitask and "execution_target" in outputs:               # eq. 8
            th = float(self.theta)
            loss = loss + th * self._regression_loss(outputs["execution"], outputs["execution_target"]) \
                + (1 - th) * self._regression_loss(outputs["sync"], outputs["sync_target"])
        return loss

    def _train(self, X, y, extras, rng):
        tr, _ = self._split_validation(len(y), rng)      # the split _fit_loop will use
        self._epoch_steps = self._steps_per_epoch(len(tr))
        n_steps = self.max_iter if self.max_epochs is None else int(self.max_epochs) * self._epoch_steps
        self._fit_loop(X, y, extras, rng, n_steps=n_steps)

    def refit_params(self):
        """The base's, with ``max_epochs=None`` so that ``max_iter`` counts."""
        return {**super().refit_params(), "max_epochs": None}

    def _lr_at(self, step):
        if self.lr_schedule == "aim":
            return aim_lr(step // getattr(self, "_epoch_steps", 1), self.learning_rate)
        return super()._lr_at(step)

    # ------------------------------------------------------------------ outputs
    def explain(self, X) -> dict:
        """Per-step scores (n, S) in target units (they sum to :meth:`predict`; the target mean and
        the stats anchor's prediction are spread evenly over steps) and attention weights (n, S, 2): column 0 whole-scene, 1 AIM."""
        check_is_fitted(self, "module_")
        Xc = self._check_X(X, reset=False)
        steps = self._predict_normalised(Xc, {}, key="steps")
        att = self._predict_normalised(Xc, {}, key="attention")
        return {"step_scores": self._steps_in_target_units(steps, X), "attention": att}

    def predict_steps(self, X) -> np.ndarray:
        """Per-step scores (n, S) in target units; they sum to :meth:`predict`."""
        return self.explain(X)["step_scores"]

    def plot_explain(self, X, ids, out_dir, **extras) -> list[Path]:
        """See :func:`plot_explain`."""
        return plot_explain(self, X, ids, out_dir, **extras)

    def predict_subscores(self, X) -> dict:
        """Execution and synchronisation predictions (multi-task models only), in their own units."""
        check_is_fitted(self, "module_")
        if not self.multitask:
            raise ValueError("predict_subscores needs a model fitted with multitask=True")
        Xc = self._check_X(X, reset=False)
        return {k: self._predict_normalised(Xc, {}, key=k) * getattr(self, f"{k}_std_")
                + getattr(self, f"{k}_mean_") for k in ("execution", "sync")}


# ------------------------------------------------------------------------------ inputs from a cache
_TORSO = (5, 6, 11, 12)          # COCO-17 shoulders and hips


def pose_step_kinematics(keypoints, frame_index, starts, ends) -> np.ndarray:
    """Per-step joint kinematics of one person: (S, 17 * 4).

    ``keypoints`` (F, 17, 2+) image coordinates (NaN where missing), ``frame_index`` (F,) the decoded
    frame index of each row, ``starts``/``ends`` (S,) the steps' first and last frame (inclusive).
    For every joint: the mean position relative to the body centre (mean of shoulders and hips) in
    body sizes (shoulder-mid to hip-mid distance), and the mean frame-to-frame velocity of that
    relative position; zeros where the person is absent.
    """
    kp = np.asarray(keypoints, dtype=np.float64)[..., :2]
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)       # all-NaN slices: person absent
        centre = np.nanmean(kp[:, _TORSO], axis=1)                              # (F, 2)
        sho = np.nanmean(kp[:, _TORSO[:2]], axis=1)
        hip = np.nanmean(kp[:, _TORSO[2:]], axis=1)
        size = np.linalg.norm(sho - hip, axis=1)
        size = np.where(size > 1e-6, size, np.nan)
        rel = (kp - centre[:, None]) / size[:, None, None]                       # (F, 17, 2)
        vel = np.full_like(rel, np.nan)
        vel[1:] = rel[1:] - rel[:-1]
        fi = np.asarray(frame_index)
        out = np.zeros((len(starts), 17, 4))
        for s, (a, b) in enumerate(zip(starts, ends)):
            m = (fi >= a) & (fi <= b)
            if m.any():
                out[s, :, :2] = np.nanmean(rel[m], axis=0)
                if m.sum() > 1:
                    out[s, :, 2:] = np.nanmean(vel[m][1:], axis=0)
    return np.nan_to_num(out, nan=0.0).reshape(len(starts), -1).astype(np.float32)


def _secondary_track(pose: dict) -> int | None:
    """Index of the secondary person (role 1) when it is seen in at least half the frames."""
    s_idx = np.flatnonzero(np.asarray(pose["roles"]) == 1)
    if len(s_idx) == 0:
        return None
    seen = np.isfinite(pose["keypoints"][:, s_idx[0], :, 0]).any(axis=1)
    return int(s_idx[0]) if np.mean(seen) >= 0.5 else None


def aim_inputs(reader, ids, feature=None, secondary: str = "auto") -> np.ndarray:
    """AIM's X from a cache: (n, S, 3, D) with streams primary, secondary, whole-scene.

    Primary: the primary athlete's joint kinematics per step (:func:`pose_step_kinematics` on
    ``pose/keypoints`` of role 0, steps from ``features/<feature>/clip_start|clip_end``). Secondary:
    the other athlete's joint kinematics (role 1) in the same space when ``secondary="pose"``, the
    camera motion ``motion/camera`` (the paper's choice for one-person actions, Sec. 5.5) when
    ``"camera"``; ``"auto"`` uses the pose when every video of the cache (not only ``ids``: a
    training and a test set of one cache always get the same convention) has a secondary person in
    at least half its frames, else the camera for all videos. Whole-scene: the
    ``feature`` family's ``whole`` rows. Streams are zero-padded to a common D, so equal sizes say
    nothing about domains: only a pose secondary suits ``AIMRegressor(transform_init="identity")``.
    """
    from .inputs import default_feature
    if secondary not in ("auto", "pose", "camera"):
        raise ValueError(f"secondary must be 'auto', 'pose' or 'camera', got {secondary!r}")
    ids = list(ids)
    feature = feature or default_feature(reader)
    whole = reader.load(feature, ids, part="whole")                                 # (n, S, Dw)
    starts = reader.load(feature, ids, part="clip_start")
    ends = reader.load(feature, ids, part="clip_end")
    prim, sec, has_sec = [], [], []
    for k, vid in enumerate(ids):
        pose = reader.pose(vid)
        fi = reader.group(vid)["frames/index"][()]
        kp, roles = pose["keypoints"], np.asarray(pose["roles"])
        p_idx = np.flatnonzero(roles == 0)
        if len(p_idx) == 0:
            raise ValueError(f"video {vid!r} has no primary person (pose/roles has no 0)")
        prim.append(pose_step_kinematics(kp[:, p_idx[0]], fi, starts[k], ends[k]))
        s = _secondary_track(pose)
        has_sec.append(s is not None)
        sec.append(None if s is None else pose_step_kinematics(kp[:, s], fi, starts[k], ends[k]))
    use_pose = secondary == "pose" or (
        secondary == "auto" and all(has_sec)
        and all(_secondary_track(reader.pose(v)) is not None for v in reader.video_ids()))
    if use_pose:
        missing = [v for v, h in zip(ids, has_sec) if not h]
        if missing:
            raise ValueError(f"secondary='pose' but videos {missing[:3]} have no secondary person")
        second = np.stack(sec)
    else:
        lacking = [v for v in ids if "motion/camera" not in reader.group(v)]
        if lacking:
            raise ValueError(
                f"AIM's secondary stream for one-person videos is the camera motion, and video "
                f"{lacking[0]!r} ({len(lacking)} of {len(ids)}) has none: the cache was extracted "
                "without flow (--flow none, kin_pose only); extract with a flow backend, or give "
                "AIM videos with a second person (secondary='pose')")
        second = reader.load_camera(ids)
    prim = np.stack(prim)
    streams = (prim, second.astype(np.float32), whole)
    D = max(a.shape[2] for a in streams)
    X = np.zeros((len(ids), whole.shape[1], 3, D), dtype=np.float32)
    for j, a in enumerate(streams):
        if a.shape[1] != whole.shape[1]:
            raise ValueError(f"stream {j} has {a.shape[1]} steps but {feature} has {whole.shape[1]}")
        X[:, :, j, : a.shape[2]] = a
    return X


def plot_explain(estimator: AIMRegressor, X, ids, out_dir, **extras) -> list[Path]:
    """AIM's explanation for the videos ``ids`` (rows of X): per-step scores (eq. 6, the paper's
    Fig. 6) and the attention weight on the AIM stream per step (eq. 5, Fig. 7). Writes
    ``aim_attention.png`` into ``out_dir``; returns the paths."""
    from aqa.data.figures import new_figure, save_figure

    ex = estimator.explain(X)
    steps, att = ex["step_scores"], ex["attention"]
    ids = [str(v) for v in ids]
    fig = new_figure(11, 4)
    ax0, ax1 = fig.subplots(1, 2)
    t = np.arange(1, steps.shape[1] + 1)
    for i, vid in enumerate(ids):
        ax0.plot(t, steps[i], marker="o", label=vid)
        ax1.plot(t, att[i, :, 1], marker="o", label=vid)
    ax0.axhline(0, color="grey", lw=0.5)
    ax0.set(xlabel="time step", ylabel="step score (eq. 6)", title="AIM per-step scores")
    ax1.set(xlabel="time step", ylabel="attention on the AIM stream (eq. 5)", ylim=(0, 1),
            title="attention fusion (1 - this = whole-scene)")
    ax1.legend(fontsize=7, loc="best")
    return [save_figure(fig, Path(out_dir) / "aim_attention.png")]
