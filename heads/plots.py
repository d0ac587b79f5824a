"""Interpretation plots of a trained head, written as PNG (:mod:`aqa.data.figures`): per-step
scores over time, per-joint scores, relation graphs as heat maps.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from aqa.data.figures import new_figure, save_figure

__all__ = ["COCO17_NAMES", "plot_step_scores", "plot_joint_scores", "plot_graph", "explain"]

COCO17_NAMES = ("nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow",
                "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle",
                "r_ankle")


def _joint_names(J: int) -> Sequence[str]:
    return COCO17_NAMES if J == 17 else [f"j{i}" for i in range(J)]


def _total(pred: float | None, true: float | None) -> str:
    """``"predicted 36.2, true 40.0"`` (the true score only where the labels give it)."""
    text = "" if pred is None else f"predicted {pred:.1f}"
    if true is not None and np.isfinite(true):
        text += (", " if text else "") + f"true {true:.1f}"
    return text


def plot_step_scores(steps: np.ndarray, path, labels: Sequence[str] | None = None,
                     title: str = "Per-step scores", predicted: Sequence[float] | None = None,
                     true: Sequence[float | None] | None = None) -> Path:
    """Line plot of per-time-step scores; ``steps`` (S,) or (n, S) with one line per video,
    labelled with its predicted total (the sum of its steps) and true score when given."""
    steps = np.atleast_2d(np.asarray(steps, dtype=float))
    fig = new_figure()
    ax = fig.add_subplot(111)
    t = np.arange(1, steps.shape[1] + 1)
    for k, row in enumerate(steps):
        label = None if labels is None else str(labels[k])
        total = _total(None if predicted is None else float(predicted[k]),
                       None if true is None else true[k])
        if label is not None and total:
            label = f"{label}: {total}"
        ax.plot(t, row, marker="o", label=label)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("time step t")
    ax.set_ylabel("score S(v_t)")
    ax.set_title(title + ("\n(the steps of a video sum to its predicted total)" if predicted is not None
                          else ""), fontsize=9)
    if labels is not None:
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_joint_scores(joint_steps: np.ndarray, path, title: str = "Per-joint scores",
                      predicted: float | None = None, true: float | None = None) -> Path:
    """Heat map of per-joint per-step scores (S, J) with the per-joint totals as a bar chart.

    A joint's score is the score the head gives the video with that joint's features in place
    of the mean over joints (JRG Figure 8): the video as if every joint moved like this one.
    The predicted total pools every joint, so it is not the sum of the bars; the bars are green
    at or above the median joint, red below it (the legend says so)."""
    from matplotlib.patches import Patch

    js = np.asarray(joint_steps, dtype=float)
    S, J = js.shape
    names = _joint_names(J)
    fig = new_figure(9, 4.6)
    ax = fig.add_subplot(121)
    im = ax.imshow(js.T, aspect="auto", cmap="RdYlGn")
    ax.set_yticks(range(J), names, fontsize=6)
    ax.set_xticks(range(S), [str(t + 1) for t in range(S)], fontsize=6)
    ax.set_xlabel("time step t")
    fig.colorbar(im, ax=ax)
    ax2 = fig.add_subplot(122)
    total = js.sum(axis=0)
    med = float(np.median(total))
    ax2.barh(range(J), total, color=["tab:green" if v >= med else "tab:red" for v in total])
    ax2.set_yticks(range(J), names, fontsize=6)
    ax2.invert_yaxis()
    ax2.set_xlabel("joint score: the video's score if every joint\nmoved like this one (sum over steps)",
                   fontsize=7)
    ax2.legend(handles=[Patch(color="tab:green", label=f"at or above the median joint ({med:.1f})"),
                        Patch(color="tab:red", label="below the median joint")], fontsize=6,
               loc="lower right")
    totals = _total(predicted, true)
    fig.suptitle(title + (f" -- {totals} (all joints pooled; not the sum of the bars)" if totals else ""),
                 fontsize=9)
    return save_figure(fig, path)


def plot_graph(A: np.ndarray, path, title: str = "Relation graph") -> Path:
    """Heat map of a (J, J) relation graph with joint names on both axes."""
    A = np.asarray(A, dtype=float)
    names = _joint_names(A.shape[0])
    fig = new_figure(5.5, 5)
    ax = fig.add_subplot(111)
    im = ax.imshow(A, cmap="Blues", vmin=0)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    ax.set_yticks(range(len(names)), names, fontsize=6)
    ax.set_xlabel("joint j")
    ax.set_ylabel("joint i")
    fig.colorbar(im, ax=ax)
    ax.set_title(title)
    return save_figure(fig, path)


def explain(estimator, X: np.ndarray, ids: Sequence[str], out_dir, true_scores=None,
            **extras) -> list[Path]:
    """Every plot the head supports, for the videos ``ids`` (rows of X), into ``out_dir``.

    A head with its own ``plot_explain(X, ids, out_dir, **extras)`` (AIM attention, Siamese clip
    similarity, CoRe tree path, fragment contributions) draws its plots; ``extras`` are the
    per-sample keywords of its ``predict`` (``groups``, ``difficulty``). ``true_scores``: each
    video's labelled score (None where unknown), stated beside its predicted total.
    """
    out_dir = Path(out_dir)
    if hasattr(estimator, "plot_explain"):
        out_dir.mkdir(parents=True, exist_ok=True)
        return list(estimator.plot_explain(X, list(ids), out_dir, **extras))
    written = []
    true = list(true_scores) if true_scores is not None else [None] * len(ids)
    pred = None
    if hasattr(estimator, "predict_steps") or hasattr(estimator, "predict_joints"):
        pred = np.asarray(estimator.predict(X, **extras), dtype=float)
    if hasattr(estimator, "predict_steps"):
        steps = estimator.predict_steps(X)
        written.append(plot_step_scores(steps, out_dir / "step_scores.png", labels=list(ids),
                                        predicted=pred, true=true))
    if hasattr(estimator, "predict_joints"):
        joints = estimator.predict_joints(X)
        for k, vid in enumerate(ids):
            written.append(plot_joint_scores(joints[k], out_dir / f"joint_scores_{vid}.png",
                                             title=f"Per-joint scores: {vid}", predicted=float(pred[k]),
                                             true=true[k]))
    for attr, name in (("spatial_graph_", "spatial"), ("temporal_graph_", "temporal")):
        if hasattr(type(estimator), attr):
            written.append(plot_graph(getattr(estimator, attr), out_dir / f"graph_{name}.png",
                                      title=f"Learned {name} relation graph"))
    if not written:
        raise ValueError(f"{type(estimator).__name__} has nothing to explain (no per-step scores, "
                         f"joint scores or graphs)")
    return written
