"""CoRe: group-aware contrastive regression (Yu, Rao, Zhao, Lu, Zhou, ICCV 2021).

The head regresses the *relative* score of an input video with respect to an exemplar video of the
same action class (and, when known, the same degree of difficulty), eq. 3:
``s_m = R(f_m, f_n) + s_n``. The pair feature is ``concat(f_n, f_m, s_n / eps)`` (eq. 4), where
``f`` is a video's feature (CoRe's I3D backbone averages its clip features; here the clip features
come from the cache and are averaged over the time axis) and ``eps`` normalises the exemplar score
into [0, 1].

The regressor is the group-aware regression tree (GART, Sec. 3.2): the range of training pair
differences is cut into ``R = 2**depth`` groups at quantiles of the sorted differences (eq. 5); a
binary tree of ``depth`` decision levels routes the pair feature from the root (an MLP of the pair
feature) down to the leaves, each node refining the feature it got from its parent and emitting a
binary probability; a leaf's probability is the product along its path, and each leaf regresses the
position of the difference inside its group through a sigmoid. Training minimises BCE on the leaf
probabilities plus the in-group squared error of the true group (eq. 6); inference takes the most
probable leaf (eq. 7) and averages over ``M`` exemplars (eqs. 8-9).

Degree of difficulty (the paper's MTL-AQA "w/ DD" setting): the final diving score is the raw
quality score times the (known) difficulty, so "we only need to predict the action quality score".
With ``difficulty_mode="multiply"`` (the default, used only when ``difficulty=`` is given) the tree
regresses ``y / difficulty`` against exemplars of the same class and difficulty, and the prediction is
multiplied back by the input's difficulty. ``"select"`` only uses difficulty to choose exemplars;
``"ignore"`` ignores it (the paper's "w/o DD" rows, marked *).

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
from .losses import half_mse

__all__ = ["group_bounds", "assign_groups", "decode_groups", "GroupAwareRegressionTree",
           "gart_loss", "CoReRegressor", "plot_explain"]


# ---------------------------------------------------------------------------------------------
# Group partition (eq. 5) and labels (Sec. 3.2, "Optimization")
# ---------------------------------------------------------------------------------------------
def group_bounds(deltas, n_groups: int) -> np.ndarray:
    """Eq. 5: bounds ``(zeta_left^r, zeta_right^r)`` of ``n_groups`` intervals at quantiles of ``deltas``.

    ``deltas`` are the score differences of all training pairs; with ``d*`` the sorted list of length
    ``T``, group ``r = 1..R`` spans ``d*[floor((T-1)(r-1)/R)]`` to ``d*[floor((T-1) r/R)]``, so every
    group holds about the same number of training pairs. Returns an array of shape (R, 2).
    """
    d = np.sort(np.asarray(deltas, dtype=np.float64).ravel())
    if d.size == 0:
        raise ValueError("group_bounds needs at least one score difference")
    if not np.all(np.isfinite(d)):
        raise ValueError("score differences must be finite")
    if int(n_groups) < 1:
        raise ValueError(f"n_groups must be >= 1, got {n_groups}")
    t, r = d.size, int(n_groups)
    idx = np.arange(r + 1)
    edges = d[np.floor((t - 1) * idx / r).astype(np.int64)]
    return np.stack([edges[:-1], edges[1:]], axis=1)


def assign_groups(deltas, bounds) -> tuple[np.ndarray, np.ndarray]:
    """Group index and in-group regression label ``sigma = (delta - left) / (right - left)``.

    A difference goes to the first group whose right bound is >= it (differences outside the training
    range go to the first or last group and get sigma clipped to [0, 1]); a zero-width group gets
    sigma = 0, so decoding returns its bound exactly.
    """
    deltas = np.asarray(deltas, dtype=np.float64)
    bounds = np.asarray(bounds, dtype=np.float64)
    rights = bounds[:, 1]
    g = np.searchsorted(rights[:-1], deltas, side="left")
    left, right = bounds[g, 0], bounds[g, 1]
    width = right - left
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.where(width > 0, (deltas - left) / np.where(width > 0, width, 1.0), 0.0)
    return g.astype(np.int64), np.clip(sigma, 0.0, 1.0)


def decode_groups(leaf_prob, sigma_hat, bounds) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 7: ``delta = sigma_hat[r*] * (right[r*] - left[r*]) + left[r*]`` with ``r* = argmax P``.

    ``leaf_prob`` and ``sigma_hat`` are (n, R) arrays. Returns the differences (n,) and ``r*`` (n,).
    """
    leaf_prob = np.asarray(leaf_prob)
    sigma_hat = np.asarray(sigma_hat, dtype=np.float64)
    bounds = np.asarray(bounds, dtype=np.float64)
    r = np.argmax(leaf_prob, axis=1)
    s = sigma_hat[np.arange(len(r)), r]
    left, right = bounds[r, 0], bounds[r, 1]
    return s * (right - left) + left, r


# ---------------------------------------------------------------------------------------------
# The tree and its loss (eq. 6)
# ---------------------------------------------------------------------------------------------
class _LevelLinear(nn.Module):
    """``n`` independent linear maps applied node-wise: (B, n, i) -> (B, n, o)."""

    def __init__(self, n: int, i: int, o: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, i, o))
        self.bias = nn.Parameter(torch.empty(n, o))
        bound = 1.0 / math.sqrt(i)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return torch.einsum("bni,nio->bno", x, self.weight) + self.bias


class GroupAwareRegressionTree(nn.Module):
    """The GART of Sec. 3.2 / Fig. 3.

    An MLP of the pair feature initialises the root node's input; every node of level k = 0..depth-1
    maps the feature it got from its parent to an updated feature and a binary probability (left =
    smaller differences); both children inherit the updated feature. Leaves (``2**depth``, ordered by
    group) map their parent's feature to a sigmoid output, the position inside their group.

    ``forward(f)`` with ``f`` of shape (B, in_features) returns a dict with ``leaf_prob`` (B, R),
    ``sigma`` (B, R) in [0, 1] and ``level_prob``: ``depth`` tensors (B, 2**k), k = 1..depth, the
    probability of reaching each node of that level (product of branch probabilities along the path;
    the last one is ``leaf_prob``).
    """

    def __init__(self, in_features: int, depth: int = 5, hidden: int = 256):
        super().__init__()
        if int(depth) < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.depth = int(depth)
        self.n_leaves = 2 ** self.depth
        self.root = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(),
                                  nn.Linear(hidden, hidden), nn.ReLU())
        self.node_feat = nn.ModuleList(_LevelLinear(2 ** k, hidden, hidden) for k in range(self.depth))
        self.node_prob = nn.ModuleList(_LevelLinear(2 ** k, hidden, 1) for k in range(self.depth))
        self.leaf_feat = _LevelLinear(self.n_leaves, hidden, hidden)
        self.leaf_out = _LevelLinear(self.n_leaves, hidden, 1)

    def forward(self, f):
        h = self.root(f).unsqueeze(1)                      # (B, 1, H): input of the root node
        path = f.new_ones(f.shape[0], 1)                   # probability of reaching each node
        level_prob = []
        for k in range(self.depth):
            h = torch.relu(self.node_feat[k](h))           # updated feature of each node of level k
            p_left = torch.sigmoid(self.node_prob[k](h)).squeeze(-1)
            path = torch.stack([path * p_left, path * (1 - p_left)], dim=-1).flatten(1)
            level_prob.append(path)
            h = h.repeat_interleave(2, dim=1)              # children inherit the parent's feature
        sigma = torch.sigmoid(self.leaf_out(torch.relu(self.leaf_feat(h)))).squeeze(-1)
        return {"leaf_prob": path, "sigma": sigma, "level_prob": level_prob}


def gart_loss(leaf_prob, sigma_hat, group, sigma, eps: float = 1e-7):
    """Eq. 6 averaged over the batch: ``J_cls + J_reg`` with
    ``J_cls = -sum_r [l_r log P_r + (1 - l_r) log(1 - P_r)]`` (one-hot ``l`` of the true group) and
    ``J_reg = sum_r 1(l_r = 1) (sigma_hat_r - sigma_r)^2``. Returns (total, J_cls, J_reg).
    """
    n_leaves = leaf_prob.shape[1]
    onehot = nn.functional.one_hot(group, n_leaves).to(leaf_prob.dtype)
    p = leaf_prob.clamp(eps, 1 - eps)
    j_cls = -(onehot * torch.log(p) + (1 - onehot) * torch.log(1 - p)).sum(1).mean()
    s_true = sigma_hat.gather(1, group.view(-1, 1)).squeeze(1)
    j_reg = ((s_true - sigma.to(sigma_hat.dtype)) ** 2).mean()
    return j_cls + j_reg, j_cls, j_reg


# ---------------------------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------------------------
_DD_MODES = ("multiply", "select", "ignore")


def _drop_missing_difficulty(params: dict) -> dict:
    """A ``difficulty`` that is missing for every sample (NaN/None, datasets without DD) means none."""
    d = params.get("difficulty")
    if d is None:
        return params
    a = np.asarray([np.nan if v is None else v for v in np.asarray(d, dtype=object).reshape(-1)],
                   dtype=np.float64)
    return {**params, "difficulty": None} if np.all(np.isnan(a)) else params


def _dd_key(v) -> float:
    """Difficulty as an exact-match key (rounded so 3.2 and 3.2000000001 are the same)."""
    v = float(v)
    return round(v, 6) if math.isfinite(v) else math.nan


class CoReRegressor(TorchRegressor):
    """CoRe + GART: contrastive regression against exemplars with the group-aware regression tree.

    Input X: video features of shape (n, D), or clip features (n, S, D) which are averaged over the S
    clips (CoRe's I3D averages its snippet features). ``fit(X, y, groups=..., difficulty=...)``:
    ``groups`` is the action class, ``difficulty`` the degree of difficulty (both optional);
    ``predict`` takes the same keywords (``difficulty`` is required at predict time when it was used
    in fit with ``difficulty_mode`` "multiply" or "select").

    Exemplars: for training, every input is paired with a random training video of the same class
    and, when used, the same difficulty (falling back to the same class, then to any video, when no
    such partner exists); at inference with up to ``n_exemplars`` (M = 10) fixed exemplars of the same
    class/difficulty (nearest difficulty of the class when the exact one has none), drawn once at fit
    time, whose predictions are averaged (eq. 9). The group bounds (eq. 5) come from the score
    differences of all training pairs that this rule allows.

    Parameters: ``depth`` (d = 5, i.e. 32 groups), ``hidden_dim`` (64; the paper's 256 is the node
    feature size of ``paper_params``),
    ``n_exemplars`` (10), ``difficulty_mode`` ("multiply", see the module docstring), ``score_scale``
    (epsilon of eq. 4; None = the largest absolute training score), and the base training parameters
    with the paper's Adam learning rate 1e-3 for the tree and no weight decay. ``ranking_weight``
    adds the pairwise ranking term on the tree's expected score (the leaf-probability-weighted
    decoded difference plus the exemplar score).

    Fitted: ``bounds_`` (R, 2) group bounds in normalised units, ``exemplar_index_``, ``score_eps_``,
    ``difficulty_used_``, ``validation_index_`` (the rows early stopping held out: they are never
    exemplars nor counted in the bounds). :meth:`tree_path` exposes the per-level probabilities of a
    prediction.

    Defaults depart from the paper for a CPU: 400 iterations instead of 2000 (``paper_params``, the
    ``paper`` preset of :mod:`aqa.heads.presets`; a CoRe step pairs every row with exemplars, ~0.1
    CPU s, and early stopping on 80 synthetic training videos picked iteration 23 of 400 on
    unscaled inputs), on
    standardised inputs (``normalize_X``). ``benchmarks/neural_defaults.py`` measures it
    against a Ridge on temporal statistics, given the difficulty, on 80 synthetic training videos:
    unscaled inputs 0.733 / 0.689 validation Spearman (seeds 0, 1; the Ridge 0.901 on the same
    rows), standardised 0.891 test Spearman (seed 0; the Ridge 0.881), 27 CPU seconds a fit.
    Node width 64 instead of 256: the tree's ~4 M parameters cost 60 CPU s a fit on 320 videos
    (one thread, early-stopped run plus refit), and 64 is as accurate: on 80 held-out videos of a
    separate synthetic set (``aqa-data synth`` seed 1, single kind, ``kin_pose``; never the
    benchmark's test rows), 2 seeds, width 64 gives 0.944 ± 0.006 Spearman at 80 training videos
    and 0.953 ± 0.005 at 320 in 13 and 17 CPU s, width 256 0.934 ± 0.017 and 0.947 ± 0.008 in 39
    and 60 CPU s (``python benchmarks/heads_vs_baseline.py --out dev --synth-seed 1 --features
    kin_pose --kinds single --n-train 80,320 --seeds 2 --heads core -p core.hidden_dim=256``,
    and the same without ``-p``).

    Stats anchor (on by default, see ``stats_anchor`` in :class:`~aqa.heads.base.TorchRegressor`):
    on the seed-1 synthetic set, 2 seeds, 80 / 320 training videos, with / without it
    (``stats-ridge`` in brackets): single 0.943 / 0.966 against 0.944 / 0.953 (0.958 / 0.975), sync
    0.940 / 0.963 against 0.894 / 0.949 (0.932 / 0.960) (``python benchmarks/heads_vs_baseline.py
    --out dev --synth-seed 1 --features kin_pose --kinds single --n-train 80,320 --seeds 2 --heads
    core``, and ``-p core.stats_anchor=false``). CoRe anchors the quality ``y / difficulty`` when
    the difficulty multiplies. The fitted network weight matters most here: an exemplar's own
    residual is noise the learned difference has to undo, and at weight 1 (``-p
    core.network_weight=1.0``) single fell to 0.934 / 0.915, one seed to 0.872. With the anchor,
    :meth:`tree_path`'s ``delta`` and ``exemplar_score`` are in units of the anchor's residual.
    """

    paper_params = {**TorchRegressor.paper_params, "max_iter": 2000, "hidden_dim": 256}

    fit_extras = ("groups", "difficulty")
    accepts_views = False
    _views_refusal = ("CoRe regresses a video's score against exemplars drawn from the training "
                      "rows, and a view of the video itself would be its own exemplar")

    def __init__(self, *, depth=5, hidden_dim=64, n_exemplars=10, difficulty_mode="multiply",
                 score_scale=None, max_iter=400, batch_size=64, learning_rate=1e-3, lr_schedule="constant",
                 lr_step=500, lr_decay=0.1, lr_cycles=3, weight_decay=0.0, normalize_X=True, normalize_y=True,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10, loss="mse",
                 ranking_weight=0.0, ranking_margin=None, reg_units="normalized",
                 stats_anchor=True, network_weight="auto", device="cpu",
                 random_state=None, verbose=False):
        self.depth = depth
        self.hidden_dim = hidden_dim
        self.n_exemplars = n_exemplars
        self.difficulty_mode = difficulty_mode
        self.score_scale = score_scale
        super().__init__(**base_kwargs(locals()))

    # ------------------------------------------------------------------ params and input
    def _check_params(self):
        if self.difficulty_mode not in _DD_MODES:
            raise ValueError(f"difficulty_mode must be one of {_DD_MODES}, got {self.difficulty_mode!r}")
        for name in ("depth", "hidden_dim", "n_exemplars"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.depth > 10:
            raise ValueError(f"depth must be <= 10 (2**depth groups), got {self.depth}")
        if self.score_scale is not None and not self.score_scale > 0:
            raise ValueError(f"score_scale must be None or > 0, got {self.score_scale!r}")
        super()._check_params()

    def _check_X(self, X, reset):
        X = super()._check_X(X, reset)
        if X.ndim == 3:
            X = X.mean(axis=1)
        if X.ndim != 2:
            raise ValueError(f"CoReRegressor expects X of shape (n, D) or (n, S, D); got shape {X.shape}")
        if reset:
            self.input_dim_ = int(X.shape[1])
        elif X.shape[1] != self.input_dim_:
            raise ValueError(f"X has {X.shape[1]} feature(s) per video, but CoReRegressor was fitted "
                             f"with {self.input_dim_}")
        return np.ascontiguousarray(X, dtype=np.float32)

    # ------------------------------------------------------------------ fit / predict
    def fit(self, X, y, **fit_params):
        """Fit on (X, y); with ``difficulty=`` and ``difficulty_mode="multiply"`` the model learns the
        quality score ``y / difficulty`` (see the module docstring)."""
        fit_params = _drop_missing_difficulty(fit_params)
        d = fit_params.get("difficulty")
        self.difficulty_used_ = "none" if d is None or self.difficulty_mode == "ignore" else self.difficulty_mode
        if self.difficulty_used_ == "multiply":
            yq = np.asarray(y)
            if yq.ndim in (1, 2) and yq.dtype.kind in "fiu":
                dd = self._check_difficulty(d, len(yq))
                y = yq / (dd if yq.ndim == 1 else dd[:, None])
        return super().fit(X, y, **fit_params)

    def predict(self, X, **predict_params):
        """Scores (n,); multiplied by the input's difficulty when the model learned quality scores."""
        check_is_fitted(self, "module_")
        predict_params = _drop_missing_difficulty(predict_params)
        if self.difficulty_used_ != "none" and predict_params.get("difficulty") is None:
            raise ValueError("this CoReRegressor was fitted with difficulty=; pass difficulty= to predict")
        pred = super().predict(X, **predict_params)
        if self.difficulty_used_ == "multiply":
            pred = pred * self._check_difficulty(predict_params["difficulty"], len(pred))
        return pred

    @staticmethod
    def _check_difficulty(d, n) -> np.ndarray:
        d = np.asarray(d, dtype=np.float64).reshape(-1)
        if d.shape != (n,):
            raise ValueError(f"difficulty must have one entry per sample ({n}), got shape {d.shape}")
        if not np.all(np.isfinite(d)) or np.any(d <= 0):
            raise ValueError("difficulty must be finite and > 0 to divide/multiply scores by it")
        return d

    def _keys(self, extras, n):
        g = extras.get("groups")
        act = np.full(n, "", dtype=object) if g is None else np.asarray([str(v) for v in g], dtype=object)
        d = extras.get("difficulty")
        if self.difficulty_used_ == "none" or d is None:
            dd = np.full(n, np.nan)
        else:
            dd = np.asarray([_dd_key(v) for v in np.asarray(d, dtype=np.float64).reshape(-1)])
        return act, dd

    # ------------------------------------------------------------------ module config, exemplars, bounds
    def _module_config(self, X, y, extras):
        n = len(y)
        act, dd = self._keys(extras, n)
        if extras.get("groups") is None:
            self.actions_seen_ = None
        else:
            self.actions_seen_ = np.asarray(sorted(set(act)), dtype=object)
        y_raw = y * self.y_std_ + self.y_mean_
        self.score_eps_ = float(self.score_scale) if self.score_scale is not None else \
            float(max(np.abs(y_raw).max(), 1e-12))
        self._keys_train = (act, dd)
        return {"in_features": 2 * int(X.shape[1]) + 1, "depth": int(self.depth),
                "hidden": int(self.hidden_dim)}

    def _pairs_and_bounds(self, y, train_idx):
        """Eligible exemplars of every training row among the training rows (same class and
        difficulty, else same class, else any), and the group bounds of their score differences
        (eq. 5). Validation rows get none and give none."""
        act, dd = self._keys_train
        pool = np.zeros(len(y), bool)
        pool[train_idx] = True
        eligible = [np.zeros(0, np.int64) for _ in range(len(y))]
        for i in train_idx:
            same_act = pool & (act == act[i])
            same = same_act & ((dd == dd[i]) | (np.isnan(dd) & np.isnan(dd[i])))
            for mask in (same, same_act, pool):
                m = mask.copy()
                m[i] = False
                if m.any():
                    break
            eligible[i] = np.flatnonzero(m)
        self._eligible = eligible
        deltas = np.concatenate([y[i] - y[eligible[i]] for i in train_idx])
        self.bounds_ = group_bounds(deltas, 2 ** int(self.depth))

    def _make_module(self, config):
        return GroupAwareRegressionTree(config["in_features"], config["depth"], config["hidden"])

    def _inference_exemplars(self, act, dd, exclude=None) -> list[np.ndarray]:
        """Positions (into ``exemplar_*_``) of the exemplars of each input."""
        out = []
        for k in range(len(act)):
            same_act = self.exemplar_actions_ == act[k]
            if not same_act.any():
                if act[k] == "":
                    raise ValueError(f"this CoReRegressor was fitted with groups= (actions "
                                     f"{sorted(set(self.exemplar_actions_))}); pass groups=")
                raise ValueError(f"no exemplar of action {act[k]!r}; fitted actions: "
                                 f"{sorted(set(self.exemplar_actions_))}")
            cand = same_act
            if not np.isnan(dd[k]):
                ed = self.exemplar_difficulty_
                exact = same_act & (ed == dd[k])
                if exact.any():
                    cand = exact
                elif np.any(same_act & np.isfinite(ed)):
                    gap = np.where(same_act & np.isfinite(ed), np.abs(ed - dd[k]), np.inf)
                    cand = gap == gap.min()
            pos = np.flatnonzero(cand)
            if exclude is not None:
                keep = self.exemplar_index_[pos] != exclude[k]
                pos = pos[keep] if keep.any() else pos
            out.append(pos[: int(self.n_exemplars)])
        return out

    # ------------------------------------------------------------------ forward and loss
    def _pair_features(self, f_in, f_ex, s_ex):
        s_raw = s_ex * self.y_std_ + self.y_mean_
        return torch.cat([f_ex, f_in, (s_raw / self.score_eps_).unsqueeze(1)], dim=1)   # eq. 4

    def _forward(self, module, X, extras, training):
        dev = X.device
        act, dd = self._keys(extras, len(X))
        if training:
            idx = np.asarray(extras["_index"])
            ex = np.empty(len(idx), np.int64)
            for k, i in enumerate(idx):
                cand = self._eligible[i]
                ex[k] = cand[self._pair_rng.randint(len(cand))]
            f_ex = torch.as_tensor(self._train_X[ex], device=dev)
            s_ex = torch.as_tensor(self._train_y[ex], dtype=X.dtype, device=dev)
            out = module(self._pair_features(X, f_ex, s_ex))
            bounds = torch.as_tensor(self.bounds_, dtype=X.dtype, device=dev)
            width = bounds[:, 1] - bounds[:, 0]
            r = out["leaf_prob"].argmax(1)
            out["pred"] = s_ex + (out["sigma"].gather(1, r[:, None]).squeeze(1) * width[r] + bounds[r, 0])
            out["soft_pred"] = s_ex + (out["leaf_prob"] * (bounds[:, 0] + out["sigma"] * width)).sum(1)
            out["exemplar_score"] = s_ex
            return out
        pos = self._inference_exemplars(act, dd, extras.get("_index"))
        counts = np.asarray([len(p) for p in pos])
        flat = np.concatenate(pos)
        owner = np.repeat(np.arange(len(X)), counts)
        f_ex = torch.as_tensor(self.exemplar_features_[flat], dtype=X.dtype, device=dev)
        s_ex = torch.as_tensor(self.exemplar_scores_[flat], dtype=X.dtype, device=dev)
        out = module(self._pair_features(X[torch.as_tensor(owner, device=dev)], f_ex, s_ex))
        delta, r = decode_groups(out["leaf_prob"].cpu().numpy(), out["sigma"].cpu().numpy(), self.bounds_)
        per_pair = s_ex.cpu().numpy().astype(np.float64) + delta                        # eq. 8
        pred = np.bincount(owner, weights=per_pair, minlength=len(X)) / counts           # eq. 9
        return {"pred": torch.as_tensor(pred, dtype=X.dtype, device=dev), "pairs": {
            "owner": owner, "exemplar": flat, "delta": delta, "leaf": r, "per_pair": per_pair,
            "level_prob": [p.cpu().numpy() for p in out["level_prob"]]}}

    def _batch_loss(self, pred, target, outputs):
        s_ex = outputs["exemplar_score"]
        delta = (target - s_ex).detach().cpu().numpy()
        g, sig = assign_groups(delta, self.bounds_)
        dev = target.device
        loss, _, _ = gart_loss(outputs["leaf_prob"], outputs["sigma"], torch.as_tensor(g, device=dev),
                               torch.as_tensor(sig, dtype=target.dtype, device=dev))       # eq. 6
        if self.ranking_weight:
            soft = outputs["soft_pred"]
            loss = loss + self._ranking_term(soft, target, half_mse(soft, target))
        return loss

    def _choose_exemplars(self, X, y, rng, train_idx):
        """The fixed inference exemplars: up to M random training rows per (action, difficulty)."""
        act, dd = self._keys_train
        pool = np.zeros(len(y), bool)
        pool[train_idx] = True
        chosen = []
        for a in sorted(set(act[pool])):
            in_a = pool & (act == a)
            for d in np.unique(dd[in_a]):          # np.unique keeps a single NaN (numpy >= 1.21)
                idx = np.flatnonzero(in_a & ((dd == d) | (np.isnan(dd) & np.isnan(d))))
                chosen.extend(rng.permutation(idx)[: int(self.n_exemplars)].tolist())
        chosen = np.asarray(sorted(chosen), dtype=np.int64)
        self.exemplar_index_ = chosen
        self.exemplar_features_ = X[chosen].copy()
        self.exemplar_scores_ = y[chosen].astype(np.float64)
        self.exemplar_actions_ = act[chosen].astype(str)
        self.exemplar_difficulty_ = dd[chosen].astype(np.float64)

    def _train(self, X, y, extras, rng):
        """Early stopping's validation rows are held out of the training pairs, the group bounds
        and the inference exemplars (``validation_index_``; rows of a class that has no other
        training row stay in training)."""
        tr, va = self._split_validation(len(y), rng, groups=self._keys_train[0])
        self._pairs_and_bounds(y, tr)
        self._choose_exemplars(X, y, rng, tr)
        self._train_X, self._train_y = X, y
        self._pair_rng = np.random.RandomState(rng.randint(0, 2**31 - 1))
        try:
            self._fit_loop(X, y, {**extras, "_index": np.arange(len(y))}, rng, n_steps=self.max_iter)
        finally:
            for k in ("_train_X", "_train_y", "_pair_rng", "_eligible", "_keys_train"):
                self.__dict__.pop(k, None)

    # ------------------------------------------------------------------ explanations
    def tree_path(self, X, **predict_params) -> dict:
        """The tree's decisions for each input and each of its exemplars (padded with NaN / -1 to M):

        ``level_prob``: list over levels k = 1..depth of (n, M, 2**k) node probabilities;
        ``leaf`` (n, M) the chosen group r* (eq. 7); ``delta`` (n, M) the decoded relative score and
        ``exemplar_score`` (n, M), both in target units (quality units when difficulty multiplies; the
        stats anchor's residual units with the anchor);
        ``exemplar_index`` (n, M) training indices; ``pred`` (n,) the final prediction (with the stats
        anchor: the anchor's prediction plus ``network_weight_`` times the exemplars' residual part).
        """
        check_is_fitted(self, "module_")
        predict_params = _drop_missing_difficulty(predict_params)
        if self.difficulty_used_ != "none" and predict_params.get("difficulty") is None:
            raise ValueError("this CoReRegressor was fitted with difficulty=; pass difficulty=")
        Xc = self._check_X(X, reset=False)
        extras = self._check_extras(predict_params, len(Xc))
        self.module_.eval()
        dev = self._module_device()
        with torch.no_grad():
            out = self._forward(self.module_, torch.as_tensor(Xc, device=dev), extras, False)
        p = out["pairs"]
        n, m = len(Xc), int(np.bincount(p["owner"], minlength=len(Xc)).max())
        slot = np.zeros(len(p["owner"]), np.int64)
        for k in range(1, len(slot)):
            slot[k] = slot[k - 1] + 1 if p["owner"][k] == p["owner"][k - 1] else 0

        def pad(v, fill, shape=(), dtype=np.float64):
            a = np.full((n, m) + tuple(shape), fill, dtype=dtype)
            a[p["owner"], slot] = v
            return a
        return {
            "level_prob": [pad(lp, np.nan, lp.shape[1:]) for lp in p["level_prob"]],
            "leaf": pad(p["leaf"], -1, dtype=np.int64),
            "delta": pad(p["delta"] * self.y_std_, np.nan),
            "exemplar_score": pad(self.exemplar_scores_[p["exemplar"]] * self.y_std_ + self.y_mean_, np.nan),
            "exemplar_index": pad(self.exemplar_index_[p["exemplar"]], -1, dtype=np.int64),
            "pred": self.predict(X, **predict_params),
        }

    def explain(self, X, **predict_params) -> dict:
        return self.tree_path(X, **predict_params)

    def plot_explain(self, X, ids, out_dir, **predict_params) -> list[Path]:
        """See :func:`plot_explain`."""
        return plot_explain(self, X, ids, out_dir, **predict_params)


def plot_explain(estimator: CoReRegressor, X, ids, out_dir, **predict_params) -> list[Path]:
    """The tree path of each video ``ids`` (rows of X) against its first exemplar (the paper's Fig. 8):
    node probabilities of every level as rows of a heat map, the chosen leaf marked, with the exemplar
    score, decoded difference and final prediction; writes ``core_tree_path.png``."""
    from aqa.data.figures import new_figure, save_figure

    tp = estimator.tree_path(X, **predict_params)
    ids = [str(v) for v in ids]
    n, depth = len(ids), len(tp["level_prob"])
    r_leaves = 2 ** depth
    fig = new_figure(10, 1.0 + 0.45 * depth * n)
    axes = np.atleast_1d(fig.subplots(n, 1))
    for i, ax in enumerate(axes):
        grid = np.zeros((depth, r_leaves))
        for k, lp in enumerate(tp["level_prob"]):
            grid[k] = np.repeat(lp[i, 0], r_leaves // lp.shape[2])
        ax.imshow(grid, vmin=0, vmax=1, cmap="Blues", aspect="auto")
        leaf = int(tp["leaf"][i, 0])
        ax.plot([leaf] * depth, range(depth), "r.-", lw=1)
        ax.set_yticks(range(depth), [f"level {k + 1}" for k in range(depth)])
        ax.set_xticks([])
        ax.set_title(f"{ids[i]}: exemplar {tp['exemplar_score'][i, 0]:.2f}, delta "
                     f"{tp['delta'][i, 0]:+.2f} (group {leaf}), prediction {tp['pred'][i]:.2f}", fontsize=9)
    return [save_figure(fig, Path(out_dir) / "core_tree_path.png")]
