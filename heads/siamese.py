"""Siamese-LSTM deep metric learning for action scoring (Jain, Harit, Sharma).

Two phases (Sec. III):

1. *Deep metric learning* (Fig. 2): a shared LSTM embeds each clip-feature sequence (``O_p, O_q``,
   the final hidden state), the two embeddings are concatenated and pass dense layers ``D1`` (128)
   and ``D2`` (64) and a sigmoid that says whether the two performances are *similar*: their judged
   scores differ by less than a threshold ``th``. The paper derives ``th`` from the judging tolerance
   (Sec. V): each of 3 judges may be off by +-0.5, so their sum by +-1.5; the score is that sum times
   the difficulty, "3 +- 0.3", so the deviation is at most 1.5 x 3.3 ~ +-5 points.
   ``similarity_threshold=None`` follows that reasoning on the training data:
   ``judge_tolerance * n_judges * (mean + std of the difficulty)``, the upper end of the difficulty's
   "3 +- 0.3" (4.95 for the paper's numbers). Without ``difficulty=`` it warns and uses the judges' sum
   alone, ``judge_tolerance * n_judges`` (right where difficulty adds to the score, as in vault, and
   far too small for diving: pass ``difficulty=`` or ``similarity_threshold=``). Similar pairs
   are much rarer than dissimilar ones; the paper balances them by augmenting videos (zoom,
   brightness: views in the cache, ``fit(..., augmented_of=)``; a view has its source's score so
   it forms a similar pair with it), and every training batch draws equal numbers of similar and
   dissimilar pairs. Views train phase 1 only: "the score estimation module is trained using only
   the original training dataset" (Sec. IV), and references are source videos.
2. *Score estimation* (Fig. 3): the LSTM, ``D1`` and ``D2`` are frozen; the sigmoid is replaced by a
   linear regression layer trained on pairs (reference video of the same action type, video). The
   reference is a fixed, type-dependent bias (Sec. III-B): ``reference="expert"`` (the best-scored
   training videos of the type, all of them when tied), ``"worst"`` (the worst-scored ones) or
   ``"constant"`` (the expert of the first action type, for every type). The loss has one term per
   (reference, video) pair, as the paper counts its training pairs; a video's prediction is the
   mean over its type's tied references. References come from the rows phase 2 trains on (never
   from early stopping's validation rows).

Clip-level feedback (Sec. IV): the similarity of clip ``j`` of a video to clip ``j`` of the reference
is the DML sigmoid on the LSTM's hidden states at the end of clip ``j`` of the *trimmed* sequences
(clips before ``j`` zeroed, clips after ``j`` removed); below 0.5 marks a faulty clip.

Against ``stats-ridge`` (docs/heads_vs_baseline.md): of ``kin_pose`` this head reads each
step's whole-scene part and joints (:data:`aqa.heads.inputs.JOINTS_IN_STEPS`); read whole-scene
only, it could not score the synthetic ``coordination`` kind, whose signal lives in the joints.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from sklearn.utils.validation import check_is_fitted

from .base import base_kwargs, TorchRegressor, step_sequences

__all__ = ["SiameseNet", "SiameseRegressor", "similarity_labels", "plot_explain"]

_REFERENCES = ("expert", "worst", "constant")


def similarity_labels(scores_a, scores_b, threshold: float) -> np.ndarray:
    """1.0 where two videos' scores differ by less than ``threshold`` (similar), else 0.0."""
    return (np.abs(np.asarray(scores_a, float) - np.asarray(scores_b, float)) < threshold).astype(np.float32)


class SiameseNet(nn.Module):
    """Fig. 2 / Fig. 3: shared LSTM, concat, D1 (ReLU), D2 (ReLU), then a similarity logit (phase 1)
    and a regression output (phase 2) on the D2 embedding."""

    def __init__(self, in_dim: int, lstm_dim: int = 256, d1: int = 128, d2: int = 64):
        super().__init__()
        self.lstm = nn.LSTM(in_dim, lstm_dim, batch_first=True)
        self.d1 = nn.Linear(2 * lstm_dim, d1)
        self.d2 = nn.Linear(d1, d2)
        self.similarity = nn.Linear(d2, 1)
        self.regression = nn.Linear(d2, 1)

    def embed(self, x):
        """Final LSTM hidden state ``O`` of each sequence: (B, S, D) -> (B, M)."""
        _, (h, _) = self.lstm(x)
        return h[-1]

    def pair_embedding(self, o_ref, o_q):
        """``D2`` output of the concatenated embeddings (reference/first video first)."""
        return torch.relu(self.d2(torch.relu(self.d1(torch.cat([o_ref, o_q], dim=-1)))))

    def similarity_logit(self, xp, xq):
        return self.similarity(self.pair_embedding(self.embed(xp), self.embed(xq))).squeeze(-1)


class SiameseRegressor(TorchRegressor):
    """Siamese-LSTM metric learning + reference-relative scoring (Jain, Harit, Sharma).

    Input X: clip-feature sequences of shape (n, S, D) (e.g. C3D fc6 per 16-frame clip), or 2-D X with
    ``layout=(S, D)`` (a 2-D X without layout is one clip). ``fit(X, y, groups=..., difficulty=...)``:
    ``groups`` is the action type (dive type) used to pick references; ``difficulty`` only enters the
    default similarity threshold. ``predict(X, groups=...)`` compares each video with the reference(s)
    of its type (predictions averaged over tied references).

    Parameters: ``lstm_dim`` (M, 256; the paper does not give it), ``d1_dim`` 128, ``d2_dim`` 64
    (the paper's), ``similarity_threshold`` (None: the paper's reasoning, see module docstring),
    ``judge_tolerance`` 0.5, ``n_judges`` 3, ``reference`` ("expert"), ``dml_max_iter`` and
    ``dml_learning_rate`` for phase 1 (balanced batches of ``batch_size`` pairs), and the base
    parameters for phase 2 (``max_iter``, ``learning_rate``, ... apply to the regression layer only).
    Fitted: ``threshold_``, ``dml_loss_curve_``, ``dml_accuracy_`` (pair accuracy on a fresh balanced
    draw of training pairs), ``references_`` (type -> indices into ``reference_X_``).

    Defaults depart from the paper's lengths for a CPU: 150 metric-learning and 300 regression
    iterations instead of 2000 and 1000 (``paper_params``, the ``paper`` preset of
    :mod:`aqa.heads.presets`), on standardised inputs (``normalize_X``). Phase 2 embeds each video
    once (the LSTM is frozen then), so its length costs little; the metric learning runs in the
    early-stopped fit and again in the refit, so its length sets the fit time.
    ``benchmarks/neural_defaults.py`` (``aqa-data synth`` single kind, ``kin_pose+hof_flow``, 40
    validation rows taken from the training pool, never test rows; seed 0; CPU seconds of the
    early-stopped fit plus refit on one thread)::

        python benchmarks/neural_defaults.py CACHE --heads siamese --n-train 80,320 --n-test 40 \
            --seeds 1 --evaluate dev --variant siamese:dml150:dml_max_iter=150

    ``dml_max_iter`` 300 -> 150: 0.943 -> 0.948 Spearman, 77 -> 44 CPU s at n_train 80 (Ridge on
    temporal statistics 0.897; both before phase 2 embedded once, which only shortens them); at
    n_train 320, 0.934 in 38 CPU s (Ridge 0.958).

    Stats anchor (on by default, see ``stats_anchor`` in :class:`~aqa.heads.base.TorchRegressor`):
    on the seed-1 synthetic set, 2 seeds, 80 / 320 training videos, with / without it
    (``stats-ridge`` in brackets): sync 0.946 / 0.964 against 0.918 / 0.937 (0.932 / 0.960)
    (``python benchmarks/heads_vs_baseline.py --out dev --synth-seed 1 --features kin_pose --kinds sync
    --n-train 80,320 --seeds 2 --heads siamese``, and ``-p siamese.stats_anchor=false``).
    """

    paper_params = {**TorchRegressor.paper_params, "dml_max_iter": 2000, "max_iter": 1000}

    fit_extras = ("groups", "difficulty")

    def __init__(self, *, layout=None, lstm_dim=256, d1_dim=128, d2_dim=64, similarity_threshold=None,
                 judge_tolerance=0.5, n_judges=3, reference="expert", dml_max_iter=150,
                 dml_learning_rate=1e-3, max_iter=300, batch_size=64, learning_rate=1e-3,
                 lr_schedule="constant", lr_step=500, lr_decay=0.1, lr_cycles=3, weight_decay=0.0,
                 normalize_X=True, normalize_y=True, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, loss="mse", ranking_weight=0.0, ranking_margin=None,
                 reg_units="normalized",
                 stats_anchor=True, network_weight="auto", device="cpu", random_state=None, verbose=False):
        self.layout = layout
        self.lstm_dim = lstm_dim
        self.d1_dim = d1_dim
        self.d2_dim = d2_dim
        self.similarity_threshold = similarity_threshold
        self.judge_tolerance = judge_tolerance
        self.n_judges = n_judges
        self.reference = reference
        self.dml_max_iter = dml_max_iter
        self.dml_learning_rate = dml_learning_rate
        super().__init__(**base_kwargs(locals()))

    # ------------------------------------------------------------------ input and params
    def _check_X(self, X, reset):
        X = super()._check_X(X, reset)
        return step_sequences(self, X, reset, "clip sequences of shape (n, S, D) or 2-D X with "
                                              "layout=(S, D)", unit="clip")

    def _check_params(self):
        if self.reference not in _REFERENCES:
            raise ValueError(f"reference must be one of {_REFERENCES}, got {self.reference!r}")
        th = self.similarity_threshold
        if th is not None and not (isinstance(th, (int, float)) and th > 0):
            raise ValueError(f"similarity_threshold must be None or > 0, got {th!r}")
        for name in ("dml_max_iter", "lstm_dim", "d1_dim", "d2_dim"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not self.dml_learning_rate > 0:
            raise ValueError(f"dml_learning_rate must be > 0, got {self.dml_learning_rate!r}")
        super()._check_params()

    @staticmethod
    def _group_keys(extras: dict, n: int) -> np.ndarray:
        g = extras.get("groups")
        return np.full(n, "", dtype=object) if g is None else np.asarray([str(v) for v in g], dtype=object)

    # ------------------------------------------------------------------ module
    def _module_config(self, X, y, extras):
        return {"in_dim": int(X.shape[2]), "lstm_dim": int(self.lstm_dim), "d1": int(self.d1_dim),
                "d2": int(self.d2_dim)}

    def _choose_references(self, X, y_raw, extras, rows):
        """The similarity threshold and the references per action type, from training ``rows``
        only (early stopping's validation rows are never a reference)."""
        if self.similarity_threshold is None:
            d = extras.get("difficulty")
            d = np.full(1, np.nan) if d is None else np.asarray(
                [np.nan if v is None else v for v in np.asarray(d, dtype=object)[rows].reshape(-1)],
                dtype=np.float64)
            d = d[np.isfinite(d) & (d > 0)]
            if d.size:
                dd = float(d.mean() + d.std())               # the upper end of "3 +- 0.3"
            else:
                dd = 1.0
                warnings.warn(f"SiameseRegressor: no difficulty given, so the similarity threshold is the "
                              f"judges' tolerance alone, {self.judge_tolerance} x {self.n_judges} = "
                              f"{self.judge_tolerance * self.n_judges:g} score points (the paper's ~5 points "
                              f"for diving also multiply by the difficulty); pass difficulty= or "
                              f"similarity_threshold=", UserWarning, stacklevel=4)
            self.threshold_ = float(self.judge_tolerance) * float(self.n_judges) * dd
        else:
            self.threshold_ = float(self.similarity_threshold)
        groups = self._group_keys(extras, len(y_raw))
        types = sorted(set(groups[rows]))
        refs: dict[str, np.ndarray] = {}
        for t in types:
            idx = rows[groups[rows] == t]
            target = y_raw[idx].max() if self.reference != "worst" else y_raw[idx].min()
            refs[t] = idx[np.isclose(y_raw[idx], target)]
        if self.reference == "constant":
            const = refs[types[0]]
            refs = {t: const for t in types}
        uniq = np.unique(np.concatenate(list(refs.values())))
        pos = {int(v): i for i, v in enumerate(uniq)}
        self.reference_X_ = X[uniq].copy()
        self.reference_scores_ = y_raw[uniq].astype(np.float64)
        self.references_ = {t: np.asarray([pos[int(v)] for v in refs[t]], dtype=np.int64) for t in types}

    def _make_module(self, config):
        return SiameseNet(config["in_dim"], config["lstm_dim"], config["d1"], config["d2"])

    def _reference_for(self, groups: np.ndarray) -> list[np.ndarray]:
        out = []
        for g in groups:
            if g not in self.references_:
                if g == "":
                    raise ValueError(f"this SiameseRegressor was fitted with groups= (action types "
                                     f"{sorted(self.references_)}); pass groups= to choose references")
                raise ValueError(f"no reference video for action type {g!r}; fitted types: "
                                 f"{sorted(self.references_)}")
            out.append(self.references_[g])
        return out

    def _forward(self, module, X, extras, training):
        """Phase 2: score of each video against its type's reference(s) (mean over tied references)."""
        ref_x = torch.as_tensor(self.reference_X_, dtype=X.dtype, device=X.device)
        return self._score_embedded(module, module.embed(ref_x), module.embed(X), extras)

    def _score_embedded(self, module, o_ref_all, o_q, extras):
        """:meth:`_forward` from the LSTM embeddings of the references (R, M) and the videos (B, M)."""
        groups = self._group_keys(extras, len(o_q))
        refs = self._reference_for(groups)
        dev = o_q.device
        counts = torch.as_tensor([len(r) for r in refs], device=dev)
        flat_ref = torch.as_tensor(np.concatenate(refs), device=dev)
        flat_q = torch.repeat_interleave(torch.arange(len(o_q), device=dev), counts)
        z = module.pair_embedding(o_ref_all[flat_ref], o_q[flat_q])
        s = module.regression(z).squeeze(-1)
        pred = torch.zeros(len(o_q), dtype=s.dtype, device=dev).index_add_(0, flat_q, s) / counts
        return {"pred": pred, "pair_pred": s, "pair_owner": flat_q}

    def _batch_loss(self, pred, target, outputs):
        """Phase 2's loss over the (reference, video) pairs, one term per pair as the paper trains
        ("around 380 pairs ... in case of expert bias", Sec. V-D), not over each video's mean."""
        owner = outputs["pair_owner"]
        return super()._batch_loss(outputs["pair_pred"], target[owner], outputs)

    def _train(self, X, y, extras, rng):
        """Phase 1 (metric learning on balanced pairs), then phase 2 (regression layer only); with
        early stopping both phases leave out the same validation rows."""
        tr, _ = self._split_validation(len(y), rng, groups=self._group_keys(extras, len(y)))
        sources, _ = self._split_validation(len(y), rng, views=False)
        self._choose_references(X, self._scores, extras, sources)   # the scores, not anchor residuals
        self._train_dml(X[tr], self._scores[tr], rng)
        m = self.module_
        for p in m.parameters():
            p.requires_grad_(False)
        for p in m.regression.parameters():
            p.requires_grad_(True)
        # phase 2 trains the regression layer alone: the LSTM is frozen and has no dropout, so every
        # video's and reference's embedding is computed once instead of at every step
        with torch.no_grad():
            dev = self._module_device()
            o_ref = m.embed(torch.as_tensor(self.reference_X_, dtype=torch.float32, device=dev))
            O = torch.cat([m.embed(torch.as_tensor(X[s:s + 256], device=dev))
                           for s in range(0, len(X), 256)]).cpu().numpy()

        def forward(module, o_q, extras, training):
            return self._score_embedded(module, o_ref, o_q, extras)
        try:
            self._fit_loop(O, y, extras, rng, n_steps=self.max_iter, forward=forward,
                           parameters=list(m.regression.parameters()), desc="score", views=False)
        finally:
            for p in m.parameters():
                p.requires_grad_(True)

    def _pair_sampler(self, y_raw: np.ndarray, rng):
        """Returns ``draw(k) -> (i, j, label)``: k anchors with partners, half similar, half not."""
        n = len(y_raw)
        sim = similarity_labels(y_raw[:, None], y_raw[None, :], self.threshold_).astype(bool)
        np.fill_diagonal(sim, False)
        dis = ~sim
        np.fill_diagonal(dis, False)
        sim_lists = [np.flatnonzero(r) for r in sim]
        dis_lists = [np.flatnonzero(r) for r in dis]
        has_sim = np.flatnonzero([len(v) > 0 for v in sim_lists])
        has_dis = np.flatnonzero([len(v) > 0 for v in dis_lists])

        def draw(k):
            want_sim = rng.rand(k) < 0.5
            if len(has_sim) == 0:
                want_sim[:] = False
            if len(has_dis) == 0:
                want_sim[:] = True
            ii, jj = np.empty(k, np.int64), np.empty(k, np.int64)
            for t in range(k):
                pool = has_sim if want_sim[t] else has_dis
                if len(pool) == 0:                      # n == 1 cannot happen (fit needs 2 samples)
                    pool = np.arange(n)
                i = pool[rng.randint(len(pool))]
                cand = sim_lists[i] if want_sim[t] else dis_lists[i]
                ii[t], jj[t] = i, cand[rng.randint(len(cand))] if len(cand) else i
            return ii, jj, sim[ii, jj].astype(np.float32)
        return draw

    def _train_dml(self, X, y_raw, rng):
        """Phase 1 on ``X`` with the videos' scores ``y_raw`` (similar: closer than the threshold)."""
        from aqa.data.logs import progress_bar
        m = self.module_
        dev = self._module_device()
        draw = self._pair_sampler(y_raw, rng)
        params = [p for n_, p in m.named_parameters() if not n_.startswith("regression")]
        opt = torch.optim.Adam(params, lr=self.dml_learning_rate)
        Xt = torch.as_tensor(X, device=dev)
        bce = nn.BCEWithLogitsLoss()
        self.dml_loss_curve_ = []
        m.train()
        for _ in progress_bar(range(self.dml_max_iter), desc="SiameseRegressor metric learning",
                              disable=not self.verbose, leave=False):
            i, j, lab = draw(self.batch_size)
            logit = m.similarity_logit(Xt[torch.as_tensor(i, device=dev)], Xt[torch.as_tensor(j, device=dev)])
            loss = bce(logit, torch.as_tensor(lab, device=dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self.dml_loss_curve_.append(float(loss.detach()))
        m.eval()
        with torch.no_grad():
            i, j, lab = draw(max(256, self.batch_size))
            p = m.similarity_logit(Xt[torch.as_tensor(i, device=dev)], Xt[torch.as_tensor(j, device=dev)])
            self.dml_accuracy_ = float(np.mean((p.cpu().numpy() > 0) == (lab > 0.5)))

    # ------------------------------------------------------------------ outputs
    def pair_similarity(self, Xa, Xb) -> np.ndarray:
        """Phase-1 probability that the performances in ``Xa[i]`` and ``Xb[i]`` are similar."""
        check_is_fitted(self, "module_")
        a, b = self._check_X(Xa, reset=False), self._check_X(Xb, reset=False)
        if len(a) != len(b):
            raise ValueError(f"Xa and Xb must have the same number of videos, got {len(a)} and {len(b)}")
        with torch.no_grad():
            dev = self._module_device()
            lg = self.module_.similarity_logit(torch.as_tensor(a, device=dev), torch.as_tensor(b, device=dev))
        return torch.sigmoid(lg).cpu().numpy().astype(np.float64)

    def clip_similarity(self, X, groups=None) -> np.ndarray:
        """Sec. IV feedback: (n, S) probabilities that clip j of each video is performed like clip j of
        its type's (first) reference, from trimmed sequences; values < 0.5 flag faulty clips."""
        check_is_fitted(self, "module_")
        Xc = self._check_X(X, reset=False)
        g = self._group_keys({} if groups is None else {"groups": groups}, len(Xc))
        if groups is not None and len(g) != len(Xc):
            raise ValueError(f"groups must have one entry per video ({len(Xc)}), got {len(g)}")
        ref = self.reference_X_[[r[0] for r in self._reference_for(g)]]
        if ref.shape[1] != Xc.shape[1]:
            raise ValueError(f"clip_similarity needs videos with the reference's {ref.shape[1]} clips, "
                             f"got {Xc.shape[1]}")
        dev = self._module_device()
        xt, rt = torch.as_tensor(Xc, device=dev), torch.as_tensor(ref, device=dev)
        out = np.zeros(Xc.shape[:2])
        m = self.module_
        m.eval()
        with torch.no_grad():
            for j in range(Xc.shape[1]):
                a, b = trimmed(xt, j), trimmed(rt, j)
                out[:, j] = torch.sigmoid(m.similarity_logit(a, b)).cpu().numpy()
        return out

    def plot_explain(self, X, ids, out_dir, **extras) -> list[Path]:
        """See :func:`plot_explain`."""
        return plot_explain(self, X, ids, out_dir, **extras)

    def explain(self, X, groups=None) -> dict:
        """``clip_similarity`` (n, S) and the predicted scores."""
        pred = self.predict(X) if groups is None else self.predict(X, groups=groups)
        return {"clip_similarity": self.clip_similarity(X, groups), "pred": pred}


def trimmed(x, j: int):
    """The trimmed sequence of Sec. IV for clip ``j``: clips ``< j`` zeroed, clips ``> j`` removed."""
    t = x[:, : j + 1].clone()
    t[:, :j] = 0
    return t


def plot_explain(estimator: SiameseRegressor, X, ids, out_dir, *, groups=None, **extras) -> list[Path]:
    """Clip-level similarity to the reference (Sec. IV, Table VII) for the videos ``ids`` (rows of X)
    as a heat map, faulty clips (< 0.5) marked; writes ``siamese_clip_similarity.png``."""
    from aqa.data.figures import new_figure, save_figure

    sim = estimator.clip_similarity(X, groups)
    ids = [str(v) for v in ids]
    k = len(ids)
    fig = new_figure(2.5 + 0.6 * sim.shape[1], 1.5 + 0.4 * k)
    ax = fig.subplots()
    im = ax.imshow(sim[:k], vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
    for i in range(k):
        for j in range(sim.shape[1]):
            if sim[i, j] < 0.5:
                ax.text(j, i, "x", ha="center", va="center", fontsize=8)
    ax.set_yticks(range(k), ids)
    ax.set_xticks(range(sim.shape[1]), [str(j + 1) for j in range(sim.shape[1])])
    ax.set(xlabel="clip", title="similarity to the reference's clip (x: < 0.5, faulty)")
    fig.colorbar(im, ax=ax)
    return [save_figure(fig, Path(out_dir) / "siamese_clip_similarity.png")]
