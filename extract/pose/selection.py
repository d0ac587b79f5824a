"""Person selection: keep the primary performer (and a secondary one) consistently across frames.

Algorithm (:func:`select_persons`):

1. Salience of a detection = ``box_score * sqrt(box_area / largest box area in the video)``: the
   athlete is usually both the most confident and the largest person (spectators, judges and
   referees are small or partly visible). Detections below ``min_score`` are dropped.
2. Anchor frame: the frame whose ``n_persons`` most salient detections have the largest total
   salience; those detections start the ``n_persons`` tracks.
3. Tracking, forward then backward from the anchor: each track keeps its last box (with a
   constant-velocity prediction over gaps) and keypoints; detections are assigned to tracks by a
   Hungarian assignment (:func:`scipy.optimize.linear_sum_assignment`) on the cost
   ``(1 - IoU) + kp_weight * mean keypoint distance / box diagonal``. An assignment is accepted only
   if (IoU >= ``iou_gate`` or the centre moved less than ``min(1 + gap/4, 2) * max_center_shift``
   box diagonals) and the box diagonal changed by less than a factor ``max_scale_change`` (3), so a
   far-away or much smaller distractor is never taken when the performer is missed: that frame stays
   NaN for the track (not zeros). Detection list order is irrelevant (people swapping places in the
   list keep their identity).
Stored poses that carry identities skip steps 2-3 (``use_source_identity=True``): declared roles
(the synthetic sidecar) are used as they are; tracker ids (AlphaPose ``idx``) pick the ``n_persons``
ids of largest total salience, then step 4 orders them.

4. Roles: with two persons, role 0 (primary) is the track with the larger mean box area
   (``roles="area"``, default) or the leftmost mean box centre (``roles="left-right"``); columns are
   ordered by role, so ``roles`` is ``[0]`` or ``[0, 1]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import FramePoses

__all__ = ["PoseTrack", "select_persons", "box_iou"]


@dataclass
class PoseTrack:
    """Selected persons over a video.

    ``keypoints`` (F, P, 17, 3), ``boxes`` (F, P, 4) xyxy, ``box_scores`` (F, P), all float32 and NaN
    where person p was not found in frame f; ``roles`` (P,) int8, 0 primary and 1 secondary.
    """

    keypoints: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray
    roles: np.ndarray

    @property
    def found(self) -> np.ndarray:
        """(F, P) bool: person p was found in frame f."""
        return np.isfinite(self.boxes[..., 0])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of xyxy boxes (torchvision.ops.box_iou without importing torch)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _area(b: np.ndarray) -> np.ndarray:
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def _center(b: np.ndarray) -> np.ndarray:
    return np.stack([(b[..., 0] + b[..., 2]) / 2, (b[..., 1] + b[..., 3]) / 2], -1)


def _diag(b: np.ndarray) -> np.ndarray:
    return np.maximum(np.hypot(b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]), 1e-6)


class _Track:
    def __init__(self, box, kp, f):
        self.box, self.kp, self.f = box.astype(np.float64), kp.astype(np.float64), f
        self.vel = np.zeros(2)

    def predicted(self, f):
        shift = self.vel * abs(f - self.f)
        return self.box + np.array([shift[0], shift[1], shift[0], shift[1]])

    def update(self, box, kp, f):
        gap = max(abs(f - self.f), 1)
        new_vel = (_center(box.astype(np.float64)) - _center(self.box)) / gap
        self.vel = 0.5 * self.vel + 0.5 * new_vel
        self.box, self.kp, self.f = box.astype(np.float64), kp.astype(np.float64), f


def _kp_distance(kp_a: np.ndarray, kp_b: np.ndarray, min_kp_score: float) -> float:
    ok = (kp_a[:, 2] > min_kp_score) & (kp_b[:, 2] > min_kp_score)
    ok &= np.isfinite(kp_a[:, :2]).all(1) & np.isfinite(kp_b[:, :2]).all(1)
    if ok.sum() < 3:
        return np.nan
    return float(np.linalg.norm(kp_a[ok, :2] - kp_b[ok, :2], axis=1).mean())


def select_persons(per_frame: list[FramePoses], n_persons: int = 1, n_frames: int | None = None,
                   min_score: float = 0.0, iou_gate: float = 0.1, max_center_shift: float = 0.75,
                   kp_weight: float = 0.5, min_kp_score: float = 0.2, max_scale_change: float = 3.0,
                   roles: str = "area", use_source_identity: bool = True) -> PoseTrack:
    """Pick ``n_persons`` (1 or 2) consistent persons over the frames (see module docstring).

    ``per_frame`` has one :class:`FramePoses` per frame; ``n_frames`` (default ``len(per_frame)``)
    is the length of the output; frames past the end of ``per_frame`` are NaN.
    """
    from scipy.optimize import linear_sum_assignment

    if n_persons not in (1, 2):
        raise ValueError(f"n_persons must be 1 or 2, got {n_persons!r}")
    if roles not in ("area", "left-right"):
        raise ValueError(f"roles must be 'area' or 'left-right', got {roles!r}")
    F = len(per_frame) if n_frames is None else int(n_frames)
    if F < len(per_frame):
        raise ValueError(f"n_frames={F} is smaller than the {len(per_frame)} frames given")
    P = n_persons
    kps = np.full((F, P, 17, 3), np.nan, np.float32)
    boxes = np.full((F, P, 4), np.nan, np.float32)
    scores = np.full((F, P), np.nan, np.float32)

    dets = []
    for f, fp in enumerate(per_frame):
        if not isinstance(fp, FramePoses):
            raise TypeError(f"per_frame[{f}] is {type(fp).__name__}, expected FramePoses")
        keep = (fp.box_scores >= min_score) & np.isfinite(fp.boxes).all(1) & (_area(fp.boxes) > 0)
        dets.append((fp.boxes[keep], fp.box_scores[keep], fp.keypoints[keep]))
    max_area = max((float(_area(b).max()) for b, _, _ in dets if len(b)), default=0.0)
    if max_area <= 0:
        return PoseTrack(kps, boxes, scores, np.arange(P, dtype=np.int8))
    nonempty = [fp for fp in per_frame if len(fp)]
    if use_source_identity and all(fp.roles is not None for fp in nonempty):
        return _by_declared_roles(per_frame, min_score, F, P, kps, boxes, scores)
    if use_source_identity and all(fp.ids is not None for fp in nonempty):
        _by_ids(per_frame, min_score, max_area, P, kps, boxes, scores)
        return _order_roles(kps, boxes, scores, P, roles)

    sal = [s * np.sqrt(_area(b) / max_area) for b, s, _ in dets]
    best_f, best_val = -1, -1.0
    for f, s in enumerate(sal):
        if len(s) == 0:
            continue
        k = min(P, len(s))
        val = float(np.sort(s)[::-1][:k].sum()) + (1e3 if len(s) >= P else 0.0)  # prefer frames with all P
        if val > best_val:
            best_f, best_val = f, val
    order = np.argsort(-sal[best_f])[:P]
    b0, s0, k0 = dets[best_f]
    tracks: list[_Track | None] = [None] * P
    for p, j in enumerate(order):
        tracks[p] = _Track(b0[j], k0[j], best_f)
        boxes[best_f, p], scores[best_f, p], kps[best_f, p] = b0[j], s0[j], k0[j]
    anchors = [None if t is None else (t.box.copy(), t.kp.copy(), t.f) for t in tracks]

    def run(frame_range):
        for f in frame_range:
            b, s, k = dets[f]
            live = [p for p in range(P) if tracks[p] is not None]
            if len(b) == 0 or not live:
                continue
            cost = np.full((len(live), len(b)), np.inf)
            for r, p in enumerate(live):
                t = tracks[p]
                pred = t.predicted(f)
                iou = box_iou(pred[None], b)[0]
                gap = abs(f - t.f)
                shift = np.linalg.norm(_center(b.astype(np.float64)) - _center(pred), axis=1) / _diag(pred)
                scale = _diag(b.astype(np.float64)) / _diag(pred)
                for c in range(len(b)):
                    if iou[c] < iou_gate and shift[c] > min(1 + gap / 4, 2.0) * max_center_shift:
                        continue  # gated out: too far from where this person should be
                    if not (1 / max_scale_change <= scale[c] <= max_scale_change):
                        continue  # gated out: a much smaller/larger person is someone else
                    d = _kp_distance(t.kp, k[c], min_kp_score)
                    kp_term = min(d / float(_diag(pred)), 2.0) if np.isfinite(d) else min(shift[c], 2.0)
                    cost[r, c] = (1 - iou[c]) + kp_weight * kp_term
            finite = np.where(np.isfinite(cost), cost, 1e6)
            rows, cols = linear_sum_assignment(finite)
            for r, c in zip(rows, cols):
                if not np.isfinite(cost[r, c]):
                    continue
                p = live[r]
                tracks[p].update(b[c], k[c], f)
                boxes[f, p], scores[f, p], kps[f, p] = b[c], s[c], k[c]
            # a track missing in the anchor frame (fewer than P people there) is started by the
            # most salient unassigned detection
            for p in range(P):
                if tracks[p] is None:
                    used = set(cols[np.isfinite(cost[rows, cols])].tolist()) if len(rows) else set()
                    free = [c for c in np.argsort(-sal[f]) if c not in used]
                    if free:
                        c = free[0]
                        tracks[p] = _Track(b[c], k[c], f)
                        boxes[f, p], scores[f, p], kps[f, p] = b[c], s[c], k[c]

    run(range(best_f + 1, len(dets)))
    # backward pass restarts from the anchor detections
    for p in range(P):
        if anchors[p] is not None:
            tracks[p] = _Track(anchors[p][0], anchors[p][1], anchors[p][2])
        else:  # started after the anchor: go backward from its first observation
            seen = np.flatnonzero(np.isfinite(boxes[:, p, 0]))
            tracks[p] = None if not len(seen) else _Track(boxes[seen[0], p], kps[seen[0], p], int(seen[0]))
    run(range(best_f - 1, -1, -1))

    return _order_roles(kps, boxes, scores, P, roles)


def _by_declared_roles(per_frame, min_score, F, P, kps, boxes, scores) -> PoseTrack:
    """The source declares roles (the synthetic sidecar): column r is the person with role r."""
    for f, fp in enumerate(per_frame):
        for r in range(P):
            cand = np.flatnonzero((fp.roles == r) & (fp.box_scores >= min_score))
            if len(cand):
                j = cand[np.argmax(fp.box_scores[cand])]
                boxes[f, r], scores[f, r], kps[f, r] = fp.boxes[j], fp.box_scores[j], fp.keypoints[j]
    return PoseTrack(kps, boxes, scores, np.arange(P, dtype=np.int8))


def _by_ids(per_frame, min_score, max_area, P, kps, boxes, scores) -> None:
    """The source carries consistent identities (a tracker's ids): keep the P most salient ids."""
    total: dict[int, float] = {}
    for fp in per_frame:
        sal = fp.box_scores * np.sqrt(_area(fp.boxes) / max_area)
        for i, v, s in zip(fp.ids.tolist(), sal.tolist(), fp.box_scores.tolist()):
            if s >= min_score:
                total[i] = total.get(i, 0.0) + v
    chosen = sorted(total, key=lambda i: -total[i])[:P]
    for f, fp in enumerate(per_frame):
        for p, i in enumerate(chosen):
            cand = np.flatnonzero((fp.ids == i) & (fp.box_scores >= min_score))
            if len(cand):
                j = cand[np.argmax(fp.box_scores[cand])]
                boxes[f, p], scores[f, p], kps[f, p] = fp.boxes[j], fp.box_scores[j], fp.keypoints[j]


def _order_roles(kps, boxes, scores, P, roles) -> PoseTrack:
    """Order the columns by role (see module docstring)."""
    if P == 2:
        found = np.isfinite(boxes[..., 0])
        if found[:, 0].any() and found[:, 1].any():
            if roles == "area":
                key = [-np.nanmean(_area(boxes[:, p].astype(np.float64))) for p in range(P)]
            else:
                key = [np.nanmean(_center(boxes[:, p].astype(np.float64))[:, 0]) for p in range(P)]
            perm = np.argsort(key, kind="stable")
        else:  # only one person ever found: it is the primary
            perm = np.array([0, 1]) if found[:, 0].any() else np.array([1, 0])
        kps, boxes, scores = kps[:, perm], boxes[:, perm], scores[:, perm]
    return PoseTrack(kps, boxes, scores, np.arange(P, dtype=np.int8))
