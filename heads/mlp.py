"""Whole-scene MLP baseline (the "Whole Scene" / I3D+MLP row of Pan et al., ICCV 2019, Table 1).

Per time step t the whole-scene feature q^t goes through a feature encoder C (FC + ReLU, eq. (5)) and
the Scoring Module S (FC 512->128 + ReLU, FC 128->1); the video score is ``sum_t S(C(q^t))``
(eq. (8)). This is JRG's baseline branch alone, with the paper's training defaults.

Against ``stats-ridge`` (docs/heads_vs_baseline.md): of ``kin_pose`` this head reads each
step's whole-scene part and joints (:data:`aqa.heads.inputs.JOINTS_IN_STEPS`); read whole-scene
only, it could not score the synthetic ``coordination`` kind, whose signal lives in the joints.
"""
from __future__ import annotations

import numpy as np

from .base import base_kwargs, TorchRegressor, step_sequences

__all__ = ["SceneMLPRegressor"]


class SceneMLPRegressor(TorchRegressor):
    """Per-step whole-scene encoder + scoring MLP, summed over steps.

    Input: X of shape (n, S, D) (S time steps of D-dim whole-scene features), or 2-D X with
    ``layout=(S, D)`` (one of them may be -1); a 2-D X without layout is one step (S=1).

    Parameters: ``layout``; ``encoder_dim`` (512, the paper's C_i width), ``hidden_dim`` (128, the
    Scoring Module's hidden FC), ``dropout`` (0); and the :class:`~aqa.heads.base.TorchRegressor`
    training parameters with JRG's defaults (Adam, batch 64, cyclic lr {1e-4,1e-5,1e-6} every 500
    iterations) except the length: 400 iterations, not the paper's 4500 (``paper_params``, the
    ``paper`` preset of :mod:`aqa.heads.presets`), and inputs standardised (``normalize_X``): on
    80 synthetic training videos (``benchmarks/neural_defaults.py``, rows never tested on) the
    standardised head early-stops at 44-400 iterations with 0.87 validation Spearman against 0.73
    unscaled, at 4-12 CPU seconds a fit.

    Stats anchor (on by default, see ``stats_anchor`` in :class:`~aqa.heads.base.TorchRegressor`):
    on the seed-1 synthetic set, 2 seeds, 80 / 320 training videos, with / without it
    (``stats-ridge`` in brackets): single 0.947 / 0.965 against 0.940 / 0.951 (0.958 / 0.975)
    (``python benchmarks/heads_vs_baseline.py --out dev --synth-seed 1 --features kin_pose --kinds single
    --n-train 80,320 --seeds 2 --heads mlp``, and ``-p mlp.stats_anchor=false``).
    """

    paper_params = {**TorchRegressor.paper_params, "max_iter": 4500}

    def __init__(self, *, layout=None, encoder_dim=512, hidden_dim=128, dropout=0.0, max_iter=400,
                 batch_size=64, learning_rate=1e-4, lr_schedule="cyclic", lr_step=500, lr_decay=0.1,
                 lr_cycles=3, weight_decay=0.0, normalize_X=True, normalize_y=True, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, loss="mse", ranking_weight=0.0,
                 ranking_margin=None, reg_units="normalized",
                 stats_anchor=True, network_weight="auto", device="cpu", random_state=None, verbose=False):
        self.layout = layout
        self.encoder_dim = encoder_dim
        self.hidden_dim = hidden_dim
        self.dropout = dropout
        super().__init__(**base_kwargs(locals()))

    def _check_X(self, X, reset):
        X = super()._check_X(X, reset)
        return step_sequences(self, X, reset, "X of shape (n, S, D) or 2-D X with layout=(S, D)")

    def _module_config(self, X, y, extras):
        return {"in_dim": int(X.shape[2]), "encoder_dim": int(self.encoder_dim),
                "hidden_dim": int(self.hidden_dim), "dropout": float(self.dropout)}

    def _make_module(self, config):
        import torch.nn as nn
        return nn.ModuleDict({
            "encoder": nn.Sequential(nn.Linear(config["in_dim"], config["encoder_dim"]), nn.ReLU()),
            "score": nn.Sequential(nn.Dropout(config["dropout"]),
                                   nn.Linear(config["encoder_dim"], config["hidden_dim"]), nn.ReLU(),
                                   nn.Linear(config["hidden_dim"], 1)),
        })

    def _forward(self, module, X, extras, training):
        steps = module["score"](module["encoder"](X)).squeeze(-1)      # (b, S)
        return {"pred": steps.sum(dim=1), "steps": steps}

    def predict_steps(self, X) -> np.ndarray:
        """Per-step scores (n, S) in target units; they sum to :meth:`predict` (the target mean and
        the stats anchor's prediction are spread evenly over steps)."""
        from sklearn.utils.validation import check_is_fitted
        check_is_fitted(self, "module_")
        Xc = self._check_X(X, reset=False)
        steps = self._predict_normalised(Xc, {}, key="steps")
        return self._steps_in_target_units(steps, X)
