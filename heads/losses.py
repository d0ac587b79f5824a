"""Losses shared by the neural heads: Li, Chai & Chen's MSE + pairwise ranking loss (PCM 2018).

The paper's loss (its eqs. 1-3) is ``L = L1 + alpha * L2 + beta * ||w||^2`` with

* ``L1 = 1/(2n) * sum_i (s_i - g_i)^2``                                   (eq. 1, :func:`half_mse`)
* ``L2 = sum_{i<j} relu(-(s_j - s_i) * sign(g_j - g_i) + delta)``, delta = 2 (eq. 2,
  :func:`pairwise_ranking_loss`)
* ``alpha = |grad_s L1| / |grad_s L2|`` so that both terms move the predictions at similar speeds
  (eqs. 4-7, :func:`balanced_alpha`); ``beta * ||w||^2`` is the optimiser's weight decay.

``s`` are predictions and ``g`` ground-truth scores of one mini-batch; ``delta`` is in the same units as
``s`` and ``g`` (the paper's scores are raw UNLV-Dive scores in 0..100): a head that trains on
normalised targets must divide the margin by its target scale (:func:`margin_in_units`).

Pairs with tied ground truth (``sign(g_j - g_i) = 0``) are left out of ``L2``: eq. 2 gives them the
constant ``delta``, which has zero gradient, so leaving them out changes the value, never the training.

:class:`RankingLoss` wraps the whole thing for any head: given the head's own base loss (MSE, BCE,
whatever it optimises) it adds ``alpha * L2`` with alpha either fixed or balanced by gradient magnitudes
against that base loss, as the paper balances it against ``L1``. Every neural head gets it through
:class:`aqa.heads.base.TorchRegressor`'s ``ranking_weight`` / ``ranking_margin``.
"""
from __future__ import annotations

from typing import Union

import torch
from torch import Tensor

#: The paper's margin (``delta = 2``, in raw score units).
PAPER_MARGIN = 2.0


def half_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Eq. 1: ``1/(2n) * sum_i (s_i - g_i)^2`` over a batch of shape (n,)."""
    pred, target = _flat_pair(pred, target)
    return 0.5 * torch.mean((pred - target) ** 2)


def pairwise_ranking_loss(pred: Tensor, target: Tensor, margin: float = PAPER_MARGIN,
                          reduction: str = "sum") -> Tensor:
    """Eq. 2: hinge on every pair ``i < j`` whose predicted order disagrees with the true order by
    less than ``margin``: ``relu(-(s_j - s_i) * sign(g_j - g_i) + margin)``.

    ``reduction="sum"`` is the paper's sum over pairs; ``"mean"`` divides by the number of untied pairs
    (handy when batch sizes vary). Tied pairs are skipped (see the module docstring). Returns 0 for a
    batch with fewer than two untied samples.
    """
    pred, target = _flat_pair(pred, target)
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    n = pred.shape[0]
    if n < 2:
        return pred.sum() * 0.0
    i, j = torch.triu_indices(n, n, offset=1, device=pred.device)
    sgn = torch.sign(target[j] - target[i])
    keep = sgn != 0
    if not bool(keep.any()):
        return pred.sum() * 0.0
    i, j, sgn = i[keep], j[keep], sgn[keep]
    hinge = torch.relu(-(pred[j] - pred[i]) * sgn + margin)
    return hinge.sum() if reduction == "sum" else hinge.mean()


def balanced_alpha(base_loss: Tensor, rank_loss: Tensor, pred: Tensor, eps: float = 1e-12) -> float:
    """Eq. 7: ``alpha = |grad_s base| / |grad_s L2|`` with the gradients taken w.r.t. the predictions.

    The paper sets the per-sample gradient magnitudes of ``L1`` and ``alpha * L2`` equal; over a batch we
    equate their Euclidean norms (the paper's "roughly"). Returns 0.0 when the ranking loss has no
    gradient (no violated pair: the ranking term is inactive anyway). The graph is kept for backward.
    """
    g_base = torch.autograd.grad(base_loss, pred, retain_graph=True, allow_unused=True)[0]
    g_rank = torch.autograd.grad(rank_loss, pred, retain_graph=True, allow_unused=True)[0]
    if g_rank is None or g_base is None:
        return 0.0
    n_rank = float(g_rank.detach().norm())
    if n_rank <= eps:
        return 0.0
    return float(g_base.detach().norm()) / n_rank


def margin_in_units(margin: float, target_scale: float) -> float:
    """Convert a margin in raw score units to the units of targets divided by ``target_scale``."""
    if not target_scale > 0:
        raise ValueError(f"target_scale must be > 0, got {target_scale}")
    return float(margin) / float(target_scale)


class RankingLoss:
    """Adds Li et al.'s ranking term to any head's base loss.

    ``alpha="balanced"`` recomputes eq. 7 on every batch (gradients of ``base_loss`` and ``L2`` w.r.t. the
    predictions); a float fixes it. ``margin`` is in the units of the tensors passed to :meth:`__call__`.
    ``last_alpha`` and ``last_rank`` record the most recent batch (for loss curves and tests).
    """

    def __init__(self, alpha: Union[str, float] = "balanced", margin: float = PAPER_MARGIN,
                 reduction: str = "sum"):
        if isinstance(alpha, str):
            if alpha != "balanced":
                raise ValueError(f"alpha must be 'balanced' or a float >= 0, got {alpha!r}")
        elif not float(alpha) >= 0:
            raise ValueError(f"alpha must be 'balanced' or a float >= 0, got {alpha!r}")
        self.alpha = alpha
        self.margin = float(margin)
        self.reduction = reduction
        self.last_alpha = 0.0
        self.last_rank = 0.0

    def __call__(self, base_loss: Tensor, pred: Tensor, target: Tensor) -> Tensor:
        """Return ``base_loss + alpha * L2(pred, target)``; ``pred`` must be part of the graph."""
        return base_loss + self.term(base_loss, pred, target)

    def term(self, base_loss: Tensor, pred: Tensor, target: Tensor) -> Tensor:
        """``alpha * L2(pred, target)`` alone (alpha balanced against ``base_loss`` if asked)."""
        rank = pairwise_ranking_loss(pred, target, self.margin, self.reduction)
        if self.alpha == "balanced":
            alpha = balanced_alpha(base_loss, rank, pred) if rank.requires_grad else 0.0
        else:
            alpha = float(self.alpha)
        self.last_alpha = alpha
        self.last_rank = float(rank.detach())
        return alpha * rank


def _flat_pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    pred = pred.reshape(-1)
    target = target.reshape(-1).to(pred.dtype)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same number of elements, got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")
    return pred, target
