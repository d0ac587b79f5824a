"""JRG: Action Assessment by Joint Relation Graphs (Pan, Gao, Zheng, ICCV 2019).

Per time step t (the video is cut into T=10 segments) the model sees the whole-scene feature q^t and
the joint features F^t (J x M, features of patches around each joint). On a learnable Spatial
Relation Graph A_s and Temporal Relation Graph A_p (J x J, non-negative, zero outside the skeleton's
edges plus self-loops, initialised uniformly in [0, 1)):

- Joint Commonality Module: ``H_0 = F^t``, ``H_1 = A_s H_0`` (eq. 1), mean-pooled over joints to
  ``h_0, h_1`` (eq. 2).
- Joint Difference Module: ``D_s(i,m) = sum_j A_s(i,j) (F^t(i,m) - F^t(j,m)) w_j`` and
  ``D_p(i,m) = sum_j A_p(i,j) (F^t(i,m) - F^{t-1}(j,m)) w_j`` (eq. 3), mean-pooled to ``d_s, d_p``
  (eq. 4), with learnable joint weights w_j.
- Regression Module: encoders ``u_i^ = C_i(u_i)`` (FC + ReLU, eq. 5) of u in {q, h_0, h_1, d_s, d_p};
  feature pooling ``v = sum_i alpha_i u_i^ + beta_i`` (eq. 6); orthogonal regularisation
  ``R_O = sum_{i<j} gamma u_i^T u_j`` (eq. 7, gamma = 0.8); per-step score ``S(v^t)`` by FC 512->128
  (ReLU) and FC 128->1, summed over steps into the video score (eq. 8).
- Loss: MSE + R_O + 0.1 x L2 of the graphs (Section 3.3, "Optimization").

Where the paper is silent we say so: the first step has no predecessor, so ``F^0 := F^1`` (replicate
padding) in D_p; N in eqs. (2)/(4) is the number of joints J; w_j starts at 1, alpha_i at 1,
beta_i at 0; R_O is averaged over batch and steps and summed over the 10 unordered pairs.
Eq. (1) is implemented literally (``H_1 = A_s . H_0``, i.e. row i of A_s aggregates into joint i),
and so is eq. (3) (row i of A weights joint i's differences).

Against ``stats-ridge`` (docs/heads_vs_baseline.md): without its stats anchor (``stats_anchor``,
see :class:`JRGRegressor`), JRG fell far behind on the synthetic ``coordination`` kind with 80
training videos (0.250 against 0.806 test Spearman). Its input was not the reason: the
joint-averaged features it pools carry the signal (0.828 for ``stats-ridge`` on them,
``benchmarks/temporal_stats.py``); early stopping on 16 validation videos was only a small part
(on a separate synthetic set, 0.415 ± 0.095 with the bench's selection and 0.460 ± 0.032 at its
full budget, ``stats-ridge`` 0.726). With the anchor, which also reads each column's slow shape
(:data:`aqa.heads.anchor.ANCHOR_DCT`), JRG is level with ``stats-ridge`` there at 80 videos
(-0.000) and above it at 320 (+0.020).
"""
from __future__ import annotations

import inspect
import warnings

import numpy as np
import torch
import torch.nn as nn
from sklearn.utils.validation import check_is_fitted

from .base import base_kwargs, TorchRegressor, apply_layout

__all__ = ["JRGRegressor", "JRGModule", "COCO17_EDGES", "skeleton_mask", "commonality",
           "difference", "mean_pool", "feature_pooling", "orthogonal_regularisation"]

#: COCO-17 skeleton (0-based: nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles);
#: the 19 limbs of the COCO keypoint definition, hip-to-hip included.
COCO17_EDGES = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
                (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))

FEATURES = ("q", "h0", "h1", "ds", "dp")


def skeleton_mask(skeleton, n_joints: int) -> np.ndarray:
    """(J, J) 0/1 mask of relevant joint pairs: skeleton edges (both directions) plus self-loops.

    ``skeleton``: ``"coco17"`` (needs J=17), ``"chain"`` (joint i -- i+1), ``"self"`` (self-loops
    only) or a sequence of (i, j) index pairs.
    """
    if n_joints < 1:
        raise ValueError("a relation graph needs at least one joint")
    if isinstance(skeleton, str):
        if skeleton == "coco17":
            if n_joints != 17:
                raise ValueError(f"skeleton='coco17' needs 17 joint nodes, got {n_joints}; pass "
                                 f"skeleton='chain'/'self' or an edge list")
            edges = COCO17_EDGES
        elif skeleton == "chain":
            edges = [(i, i + 1) for i in range(n_joints - 1)]
        elif skeleton == "self":
            edges = []
        else:
            raise ValueError(f"unknown skeleton {skeleton!r}; use 'coco17', 'chain', 'self' or edges")
    else:
        edges = [tuple(int(v) for v in e) for e in skeleton]
    m = np.eye(n_joints, dtype=np.float32)
    for i, j in edges:
        if not (0 <= i < n_joints and 0 <= j < n_joints):
            raise ValueError(f"skeleton edge {(i, j)} is out of range for {n_joints} joints")
        m[i, j] = m[j, i] = 1.0
    return m


# ---------------------------------------------------------------------- the equations
def commonality(F: torch.Tensor, As: torch.Tensor) -> torch.Tensor:
    """Eq. (1): ``H_1 = A_s . H_0`` per step; F: (..., J, M) -> (..., J, M)."""
    return torch.matmul(As, F)


def mean_pool(H: torch.Tensor) -> torch.Tensor:
    """Eqs. (2)/(4): ``(1/N) H^T 1`` -- the mean over the J joint rows; (..., J, M) -> (..., M)."""
    return H.mean(dim=-2)


def difference(F: torch.Tensor, F_other: torch.Tensor, A: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Eq. (3): ``D(i,m) = sum_j A(i,j) (F(i,m) - F_other(j,m)) w_j``.

    ``F_other`` is F itself for the spatial graph and the previous step's F for the temporal one.
    Computed as ``(A w)_i F(i,m) - ((A diag(w)) F_other)(i,m)``; shapes (..., J, M).
    """
    Aw = A * w[None, :]
    return Aw.sum(dim=1)[:, None] * F - torch.matmul(Aw, F_other)


def feature_pooling(u_hat: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Eq. (6): ``v = sum_i alpha_i u_i^ + beta_i``; u_hat: (K, ..., E) -> (..., E)."""
    shape = (-1,) + (1,) * (u_hat.dim() - 1)
    return (alpha.view(shape) * u_hat + beta.view(shape)).sum(dim=0)


def orthogonal_regularisation(u_hat: torch.Tensor, gamma: float) -> torch.Tensor:
    """Eq. (7): ``R_O = sum_{i<j} gamma u_i^T u_j`` over the K encoded features, averaged over all
    leading (batch, step) positions; u_hat: (K, ..., E) -> scalar."""
    K = u_hat.shape[0]
    flat = u_hat.reshape(K, -1, u_hat.shape[-1])
    gram = torch.einsum("ine,jne->ijn", flat, flat).mean(dim=-1)       # (K, K)
    iu = torch.triu_indices(K, K, offset=1)
    return gamma * gram[iu[0], iu[1]].sum()


class JRGModule(nn.Module):
    """The network; ``forward(X)`` with X (b, S, 1+J, M) returns a dict of intermediate results."""

    def __init__(self, whole_dim: int, joint_dim: int, n_joints: int, mask: np.ndarray,
                 encoder_dim: int = 512, hidden_dim: int = 128):
        super().__init__()
        self.register_buffer("mask", torch.as_tensor(mask, dtype=torch.float32))
        # learnable elements initialised uniformly in [0, 1); irrelevant pairs are 0 and stay 0
        self.As_raw = nn.Parameter(torch.rand(n_joints, n_joints) * self.mask)
        self.Ap_raw = nn.Parameter(torch.rand(n_joints, n_joints) * self.mask)
        self.w = nn.Parameter(torch.ones(n_joints))
        dims = {"q": whole_dim, "h0": joint_dim, "h1": joint_dim, "ds": joint_dim, "dp": joint_dim}
        self.encoders = nn.ModuleDict({k: nn.Sequential(nn.Linear(dims[k], encoder_dim), nn.ReLU())
                                       for k in FEATURES})
        self.alpha = nn.Parameter(torch.ones(len(FEATURES)))
        self.beta = nn.Parameter(torch.zeros(len(FEATURES)))
        self.score = nn.Sequential(nn.Linear(encoder_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 1))

    @property
    def As(self) -> torch.Tensor:
        """Spatial graph: non-negative (ReLU) and masked by the skeleton."""
        return torch.relu(self.As_raw) * self.mask

    @property
    def Ap(self) -> torch.Tensor:
        """Temporal graph: non-negative (ReLU) and masked by the skeleton."""
        return torch.relu(self.Ap_raw) * self.mask

    def joint_features(self, X: torch.Tensor, pool: bool = True) -> dict[str, torch.Tensor]:
        """q (b,S,Mq) and h0, h1, ds, dp: pooled (b,S,M) or, with ``pool=False``, per joint (b,S,J,M)."""
        q = X[:, :, 0, :]
        F = X[:, :, 1:, :]
        F_prev = torch.cat([F[:, :1], F[:, :-1]], dim=1)           # F^{t-1}, with F^0 := F^1
        As, Ap = self.As, self.Ap
        feats = {"h0": F, "h1": commonality(F, As), "ds": difference(F, F, As, self.w),
                 "dp": difference(F, F_prev, Ap, self.w)}
        if pool:
            feats = {k: mean_pool(v) for k, v in feats.items()}
        else:
            q = q[:, :, None, :].expand(-1, -1, F.shape[2], -1)
        return {"q": q, **feats}

    def encode(self, feats: dict[str, torch.Tensor], keys=FEATURES) -> torch.Tensor:
        return torch.stack([self.encoders[k](feats[k]) for k in keys])       # (K, ..., E)

    def forward(self, X: torch.Tensor, pool_joints: bool = True) -> dict[str, torch.Tensor]:
        u_hat = self.encode(self.joint_features(X, pool=pool_joints))
        v = feature_pooling(u_hat, self.alpha, self.beta)
        steps = self.score(v).squeeze(-1)                                   # (b,S) or (b,S,J)
        return {"steps": steps, "pred": steps.sum(dim=1), "u_hat": u_hat}


class JRGRegressor(TorchRegressor):
    """Joint Relation Graph regressor (Pan et al., ICCV 2019), an sklearn estimator.

    Input X, one of:
      - shape (n, S, 1+J, D): per sample S time steps (the paper's T=10 segments) of 1+J nodes:
        node 0 is the whole-scene feature of the step, nodes 1..J the joint (patch) features in COCO-17
        order (J=17). If whole-scene and joint features differ in size, zero-pad the smaller one to D
        (a zero input column is exactly a missing weight column of the first FC);
        :func:`aqa.heads.dataset.build_inputs` does this.
      - 2-D X (n, S*(1+J)*D) with ``layout=(S, 1+J, D)``, read row-major (one size may be -1).

    Parameters
    ----------
    layout : tuple or None
        See above; ``None`` requires 4-D X.
    skeleton : "coco17" | "chain" | "self" | sequence of (i, j)
        Edges masking both relation graphs (plus self-loops).
    encoder_dim : int, default 128
        Width of each feature encoder C_i (the paper: FC 400x512 + ReLU).
    hidden_dim : int, default 64
        Hidden FC of the Scoring Module (the paper: 512x128 + ReLU, then 128x1).
    ortho_weight : float, default 0.8
        gamma of the orthogonal regularisation, eq. (7).
    graph_l2 : float, default 0.1
        Weight of the L2 regularisation on A_s and A_p.
    staged : bool, default True
        The paper's multi-stage training (Sec. 4.1): first the whole-scene branch (``whole_iter``
        iterations), the Joint Difference branch and the Joint Commonality branch (on the A_s learned
        so far; ``branch_iter`` each) are trained separately, each with its own temporary Scoring Module
        and without feature pooling (a branch's encoded features are summed); then the full model
        (feature pooling included, Scoring Module freshly initialised) for ``final_iter`` iterations,
        with the loaded branch weights frozen during the first ``freeze_iter`` of them. ``False``:
        the full model alone for ``max_iter`` iterations.
    branch_iter : int, default 4500
        Iterations of each of the Joint Difference and Joint Commonality branches (stage 1; the
        paper's 4500). Only with ``staged``; ``max_iter`` used to set them, which still works
        (with a DeprecationWarning) when ``max_iter`` is changed and ``branch_iter`` is not.
    whole_iter : int, default 1500
        The whole-scene branch's length: the paper trains every branch for 4500 iterations but loads
        "the 1500-iteration whole-scene checkpoints" into the full model, which is this.
    final_iter, freeze_iter : int, defaults 3000 and 500 (the paper's second stage).
    stage_iter : dict or None
        Per-stage lengths overriding the above, keys ``"whole"``, ``"difference"``,
        ``"commonality"``, ``"full"``: what :meth:`refit_params` returns to repeat an early-stopped
        staged fit (each stage's best iteration, :attr:`stage_iterations_`).
    freeze_commonality_graph : bool, default False
        Stage 1's commonality branch is trained "based on the A_s learned so far" (by the difference
        branch): False fine-tunes that A_s in the commonality branch, True keeps it fixed there.
    max_iter : int, default 600
        Iterations of the full model when not ``staged`` (with ``staged``, see ``branch_iter``).
    reg_units : default "percent"
        The paper's MSE is on scores "normalized to 0-100" (Sec. 4.1), the scale its weights 0.8
        and 0.1 balance against; training runs on standardised targets, so the regularisers are
        rescaled to keep that balance (see :class:`~aqa.heads.base.TorchRegressor`).
    The paper's training (Section 4.1, ``paper_params``, the ``paper`` preset of
    :mod:`aqa.heads.presets`): staged, Adam, batch 64, cyclic learning rate {1e-4, 1e-5, 1e-6}
    changing every 500 iterations (``learning_rate=1e-4, lr_schedule="cyclic", lr_decay=0.1,
    lr_cycles=3, lr_step=500``), raw inputs. The defaults depart from it for a CPU and for training
    sets of tens to hundreds of videos: the full model in one stage (``staged=False``) for 1000
    iterations at a constant 1e-3, on standardised inputs (``normalize_X``; JRG's weight-free inputs
    have column stds from 0.01 to 300). The paper's 13,500 staged iterations took ~4.5 min a fit on
    80 videos, and its staged schedule shortened to a CPU budget was unstable on 36 synthetic
    training videos (test Spearman 0.88 / 0.94 / -0.53 over three seeds against 0.74 / 0.71 / 0.79
    in one stage, ``benchmarks/variants.py jrg``); ``benchmarks/neural_defaults.py`` compares the
    defaults with a Ridge on temporal statistics: on 80 synthetic training videos (80 test videos,
    seed 0) 0.858 test Spearman against the Ridge's 0.881, with early stopping still improving at
    the 1000th iteration. That fit (early-stopped run plus refit) took 174 CPU seconds on one
    thread, a step ~140 ms at the paper's widths. For the one-minute budget the defaults are narrower
    (``encoder_dim=128, hidden_dim=64``, ~45 ms a step) and shorter (``max_iter=600``), measured on
    40 validation rows taken from the training pool (never test rows; ``aqa-data synth`` single
    kind, ``kin_pose+hof_flow``, seed 0; CPU seconds of the early-stopped run plus refit, one
    thread)::

        python benchmarks/neural_defaults.py CACHE --heads jrg --n-train 80,320 --n-test 40 \\
            --seeds 1 --evaluate dev --variant jrg:small:encoder_dim=128,hidden_dim=64,max_iter=1000 \\
            --variant jrg:small600:encoder_dim=128,hidden_dim=64,max_iter=600

    n_train 80: widths 512/128 and 1000 iterations 0.896 Spearman in 185 CPU s, 128/64 and 1000
    iterations 0.917 in 87 CPU s, 128/64 and 600 iterations 0.893 in 53 CPU s (Ridge on temporal
    statistics 0.897); n_train 320: 128/64 and 1000 iterations 0.951 in 76 CPU s, 128/64 and 600
    iterations 0.951 in 64 CPU s (the same best iteration, 588; Ridge 0.958). Other parameters: see
    :class:`~aqa.heads.base.TorchRegressor`.

    Stats anchor (on by default, see ``stats_anchor`` in :class:`~aqa.heads.base.TorchRegressor`):
    on the seed-1 synthetic set, 2 seeds, 80 / 320 training videos, with / without it
    (``stats-ridge`` in brackets): coordination 0.726 / 0.854 against 0.415 / 0.825 (0.726 / 0.854), in
    11 / 16 CPU s a fit against 42 / 59; single 0.957 / 0.975 against 0.956 / 0.970 (0.958 / 0.975)
    (``python benchmarks/heads_vs_baseline.py --out dev --synth-seed 1 --features kin_pose --kinds coordination
    --n-train 80,320 --seeds 2 --heads jrg``, and ``-p jrg.stats_anchor=false``).

    Interpretation: :meth:`predict_steps` (n, S) per-step scores, :meth:`predict_joints` (n, S, J)
    per-joint scores (only that joint's row kept instead of the mean pooling of eqs. 2/4, as in the
    paper's Figure 8), :attr:`spatial_graph_` / :attr:`temporal_graph_` the learned A_s / A_p.
    """

    paper_params = {**TorchRegressor.paper_params, "staged": True, "branch_iter": 4500, "max_iter": 4500,
                    "encoder_dim": 512, "hidden_dim": 128,
                    "learning_rate": 1e-4, "lr_schedule": "cyclic"}

    def __init__(self, *, layout=None, skeleton="coco17", encoder_dim=128, hidden_dim=64, ortho_weight=0.8,
                 graph_l2=0.1, staged=False, whole_iter=1500, final_iter=3000, freeze_iter=500,
                 branch_iter=4500, stage_iter=None, freeze_commonality_graph=False, max_iter=600,
                 batch_size=64, learning_rate=1e-3, lr_schedule="constant", lr_step=500, lr_decay=0.1,
                 lr_cycles=3, weight_decay=0.0, normalize_X=True, normalize_y=True, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, loss="mse", ranking_weight=0.0,
                 ranking_margin=None, reg_units="percent",
                 stats_anchor=True, network_weight="auto", device="cpu", random_state=None, verbose=False):
        self.layout = layout
        self.skeleton = skeleton
        self.encoder_dim = encoder_dim
        self.hidden_dim = hidden_dim
        self.ortho_weight = ortho_weight
        self.graph_l2 = graph_l2
        self.staged = staged
        self.whole_iter = whole_iter
        self.final_iter = final_iter
        self.freeze_iter = freeze_iter
        self.branch_iter = branch_iter
        self.stage_iter = stage_iter
        self.freeze_commonality_graph = freeze_commonality_graph
        super().__init__(**base_kwargs(locals()))

    # ------------------------------------------------------------------ input
    def _check_X(self, X, reset):
        X = super()._check_X(X, reset)
        n_feat = int(np.prod(X.shape[1:]))
        if self.layout is not None:
            X = apply_layout(X, self.layout)
        if X.ndim != 4:
            raise ValueError(f"JRGRegressor expects X of shape (n, S, 1+J, D) or 2-D X with "
                             f"layout=(S, 1+J, D); got shape {X.shape} (layout={self.layout})")
        if X.shape[2] < 2:
            raise ValueError(f"JRGRegressor needs node 0 (whole scene) plus at least one joint node; "
                             f"got {X.shape[2]} node(s) from {n_feat} feature(s) per sample")
        if not reset and hasattr(self, "module_config_"):
            c = self.module_config_
            if X.shape[2] - 1 != c["n_joints"] or X.shape[3] != c["joint_dim"]:
                raise ValueError(f"X has {X.shape[2] - 1} joints x {X.shape[3]} dims; the model was "
                                 f"fitted on {c['n_joints']} x {c['joint_dim']}")
        return np.ascontiguousarray(X, dtype=np.float32)

    def _module_config(self, X, y, extras):
        J = int(X.shape[2] - 1)
        for name in ("staged", "freeze_commonality_graph"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        for name in ("encoder_dim", "hidden_dim", "whole_iter", "branch_iter", "final_iter"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not 0 <= self.freeze_iter <= self.final_iter:
            raise ValueError(f"freeze_iter must be in [0, final_iter], got {self.freeze_iter!r}")
        self._stage_lengths()
        return {"whole_dim": int(X.shape[3]), "joint_dim": int(X.shape[3]), "n_joints": J,
                "mask": skeleton_mask(self.skeleton, J).tolist(),
                "encoder_dim": int(self.encoder_dim), "hidden_dim": int(self.hidden_dim)}

    def _make_module(self, config):
        return JRGModule(config["whole_dim"], config["joint_dim"], config["n_joints"],
                         np.asarray(config["mask"], dtype=np.float32), config["encoder_dim"],
                         config["hidden_dim"])

    # ------------------------------------------------------------------ forward and loss
    def _graph_reg(self, module):
        return self.graph_l2 * ((module.As ** 2).sum() + (module.Ap ** 2).sum())

    def _forward(self, module, X, extras, training):
        out = module(X)
        if training:
            out["reg"] = orthogonal_regularisation(out["u_hat"], self.ortho_weight) + self._graph_reg(module)
        return out

    def _branch_forward(self, keys, head):
        """Forward of one stage-1 branch: its encoders summed (no pooling), its own Scoring Module."""
        def forward(module, X, extras, training):
            u_hat = module.encode(module.joint_features(X), keys)
            steps = head(u_hat.sum(dim=0)).squeeze(-1)
            out = {"pred": steps.sum(dim=1), "steps": steps}
            if training and keys != ("q",):
                out["reg"] = self._graph_reg(module)
            return out
        return forward

    def _stage_lengths(self) -> dict[str, int]:
        """Iterations of each stage of the staged training (``stage_iter`` over the defaults)."""
        branch = self.branch_iter
        if (self.staged and branch == _DEFAULT_BRANCH_ITER
                and self.max_iter not in (_DEFAULT_MAX_ITER, branch)):
            warnings.warn(f"JRGRegressor(staged=True): max_iter={self.max_iter} sets the difference and "
                          f"commonality branches, as before; pass branch_iter={self.max_iter} instead "
                          f"(max_iter will only set the unstaged full model)", DeprecationWarning,
                          stacklevel=4)
            branch = self.max_iter
        lengths = {"whole": self.whole_iter, "difference": branch,
                   "commonality": branch, "full": self.final_iter}
        given = self.stage_iter or {}
        if not isinstance(given, dict) or set(given) - set(lengths) or not all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                for v in given.values()):
            raise ValueError(f"stage_iter must map stages {sorted(lengths)} to positive integers, "
                             f"got {self.stage_iter!r}")
        return {k: int(given.get(k, v)) for k, v in lengths.items()}

    def refit_params(self):
        """Staged: every stage's early-stopped length as ``stage_iter`` (see the base class)."""
        if not self.staged:
            return super().refit_params()
        check_is_fitted(self, "stage_iterations_")
        return {"early_stopping": False, "stage_iter": dict(self.stage_iterations_), **self._refit_weight()}

    def _train(self, X, y, extras, rng):
        m = self.module_
        if not self.staged:
            self._fit_loop(X, y, extras, rng, n_steps=self.max_iter)
            return
        lengths = self._stage_lengths()
        self.stage_iterations_ = {}

        def stage(name, **kw):
            """One stage; records its length (its best iteration when early stopping)."""
            self.best_iteration_ = None
            self._fit_loop(X, y, extras, rng, n_steps=lengths[name], **kw)
            self.stage_iterations_[name] = int(self.best_iteration_ or lengths[name])
        dev = self._module_device()
        branches = [("whole", ("q",), list(m.encoders["q"].parameters())),
                    ("difference", ("ds", "dp"), [m.As_raw, m.Ap_raw, m.w]
                     + list(m.encoders["ds"].parameters()) + list(m.encoders["dp"].parameters())),
                    ("commonality", ("h0", "h1"), ([] if self.freeze_commonality_graph else [m.As_raw])
                     + list(m.encoders["h0"].parameters()) + list(m.encoders["h1"].parameters()))]
        loaded = []
        for name, keys, params in branches:
            head = nn.Sequential(nn.Linear(self.encoder_dim, self.hidden_dim), nn.ReLU(),
                                 nn.Linear(self.hidden_dim, 1)).to(dev)
            stage(name, forward=self._branch_forward(keys, head), parameters=params + list(head.parameters()),
                  desc=f"stage 1 {name}")
            loaded += [p for p in params if all(p is not q for q in loaded)]
        # stage 2: full model, Scoring Module re-initialised, loaded weights frozen at first
        for layer in m.score:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        stage("full", frozen=loaded, freeze_steps=min(self.freeze_iter, lengths["full"]), desc="stage 2 full")

    # ------------------------------------------------------------------ interpretation
    def predict_steps(self, X) -> np.ndarray:
        """Per-time-step scores (n, S) in target units; summed over steps they give :meth:`predict`
        (the target mean and the stats anchor's prediction are spread evenly over steps)."""
        check_is_fitted(self, "module_")
        steps = self._predict_normalised(self._check_X(X, reset=False), {}, key="steps")
        return self._steps_in_target_units(steps, X)

    def predict_joints(self, X) -> np.ndarray:
        """Per-joint, per-step scores (n, S, J) in target units: the commonality and difference
        features keep only joint j's row instead of the mean over joints (eqs. 2 and 4), as in the
        paper's Figure 8. Sum over steps for a per-joint video score."""
        check_is_fitted(self, "module_")
        steps = self._predict_normalised(self._check_X(X, reset=False), {}, key="steps",
                                         call=lambda m, x, e: m(x, pool_joints=False))
        return self._steps_in_target_units(steps, X)

    @property
    def spatial_graph_(self) -> np.ndarray:
        """The learned spatial relation graph A_s (J, J), non-negative and skeleton-masked."""
        check_is_fitted(self, "module_")
        return self.module_.As.detach().cpu().numpy()

    @property
    def temporal_graph_(self) -> np.ndarray:
        """The learned temporal relation graph A_p (J, J); A_p(i, j): joint j at t-1 -> joint i at t."""
        check_is_fitted(self, "module_")
        return self.module_.Ap.detach().cpu().numpy()


_DEFAULTS = inspect.signature(JRGRegressor.__init__).parameters
_DEFAULT_BRANCH_ITER = _DEFAULTS["branch_iter"].default
_DEFAULT_MAX_ITER = _DEFAULTS["max_iter"].default
