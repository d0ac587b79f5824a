"""Augmented views of one decoded video: its frames, poses and flow transformed as the view says.

A view (:class:`aqa.data.views.View`: ``flip``, ``shiftK``, ``zoomF``, ``brightG``, ``histeq``,
``mask``, ``dropP``) is extracted from the data the runner already has for its source video
(:class:`VideoData`: the decoded frames, their indices, the selected persons' poses, the optical
flow), so decoding, pose estimation, person selection and flow run once per video however many
views are asked for. Poses and flow are *transformed*, not recomputed: pose estimation is the
costly stage, and the ideal flow of transformed frames is the transformed flow (mirrored, sliced,
cropped and rescaled, or chained across dropped frames). Everything downstream of the flow
(sampling, camera motion, features) runs on the view's data as on a video's.

Coordinates are continuous pixels (pixel ``i`` covers ``[i, i + 1)``), the convention of the pose
backends and of :mod:`aqa.extract.patches`: mirroring maps ``x`` to ``W - x``, and the pixels of a
zoom are resampled with the same affine map as the keypoints. :func:`apply_view` never modifies
its input; arrays a view leaves as they are (a bright view's poses and flow) are shared, not copied.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from aqa.data.registry import load
from aqa.data.views import View, parse_view

from .pose.base import COCO_KEYPOINTS
from .pose.selection import PoseTrack
from .registry import VIEWS

__all__ = ["VideoData", "apply_view", "view_frames", "flow_pairs_needed", "flip", "shift", "zoom",
           "bright", "histeq", "mask", "drop", "chain_flow", "MASK_MARGIN", "FLIP_KEYPOINTS",
           "MIN_FRAMES"]


def _mirrored(name: str) -> str:
    """``left_x`` <-> ``right_x``; a joint on the midline (the nose) is its own mirror image."""
    for side, other in (("left_", "right_"), ("right_", "left_")):
        if name.startswith(side):
            return other + name[len(side):]
    return name


#: COCO-17 index of each keypoint's mirror image: left and right joints swapped
FLIP_KEYPOINTS = tuple(COCO_KEYPOINTS.index(_mirrored(n)) for n in COCO_KEYPOINTS)
#: fewest frames a view may have (one flow pair)
MIN_FRAMES = 2
#: how far the foreground of a ``mask`` view reaches beyond a person's box, per side, as a
#: fraction of the box's width (left, right) and height (top, bottom)
MASK_MARGIN = 0.25


@dataclass(frozen=True)
class VideoData:
    """The per-frame data of one video that a view transforms.

    ``frames`` (F, H, W, 3) uint8 RGB; ``index`` (F,) the decoded frame indices (``frames/index``);
    ``track`` the selected persons (:class:`~aqa.extract.pose.selection.PoseTrack`, pixels of
    ``frames``); ``flow`` (F-1, H, W, 2) float32 with ``flow[i]`` the (dx, dy) from frame i to
    i+1, or None when flow is off; ``flow_pairs`` (F-1,) bool, the pairs whose flow was computed
    (the others are zeros that nothing may read), or None when all were.
    """

    frames: np.ndarray
    index: np.ndarray
    track: PoseTrack
    flow: np.ndarray | None = None
    flow_pairs: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the frames."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])


def apply_view(view: View | str, data: VideoData, seed: int = 0) -> VideoData:
    """``data`` as view ``view`` (a :class:`View` or its spec) sees it; a video the view cannot be
    taken of (a shift that leaves fewer than :data:`MIN_FRAMES` frames, a drop with too few frames
    to drop from) is a ValueError. ``seed`` draws a ``drop`` view's frames (the runner passes one
    derived from the video's id, so a view is the same on every run); the other kinds ignore it."""
    view = parse_view(view) if isinstance(view, str) else view
    spec = VIEWS.get(view.kind)
    amount = () if view.value is None else (view.value,)
    return load(spec.factory)(data, *amount, **({"seed": seed} if spec.seeded else {}))


def view_frames(view: View | str, n_frames: int, seed: int = 0) -> np.ndarray:
    """Positions in the source's ``n_frames`` frames of the frames of view ``view``: all of them,
    but from ``k`` on for ``shiftK`` and the kept ones for ``dropP`` (drawn with ``seed``, see
    :func:`drop`). A video the view cannot be taken of is a ValueError."""
    view = parse_view(view) if isinstance(view, str) else view
    if view.kind == "shift":
        return _shifted(int(n_frames), view.value)
    if view.kind == "drop":
        return _kept(int(n_frames), view.value, seed)
    return np.arange(int(n_frames))


def _shifted(n: int, k: float) -> np.ndarray:
    """The frames of a ``shiftK`` view of ``n`` frames."""
    k = int(k)
    if n - k < MIN_FRAMES:
        raise ValueError(f"shift{k}: the video has {n} frames; starting {k} frames later leaves "
                         f"{max(n - k, 0)}, fewer than {MIN_FRAMES}")
    return np.arange(k, n)


def _kept(n: int, fraction: float, seed: int) -> np.ndarray:
    """The frames a ``dropP`` view of ``n`` frames keeps (see :func:`drop`)."""
    k = int(round(float(fraction) * n))
    if k < 1 or n - k < MIN_FRAMES:
        left = "none" if k < 1 else f"{k}, leaving fewer than {MIN_FRAMES}"
        raise ValueError(f"drop{fraction:g}: the video has {n} frames; dropping {fraction:g} of "
                         f"them drops {left}")
    gone = np.random.default_rng(seed).choice(np.arange(1, n - 1), size=k, replace=False)
    return np.setdiff1d(np.arange(n), gone)


def flow_pairs_needed(keep: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The source flow pairs behind pairs ``pairs`` of a view whose frames are the source's
    ``keep`` (:func:`view_frames`): view pair q spans source pairs ``keep[q] .. keep[q+1] - 1``
    (one pair, or the chain across dropped frames)."""
    keep, pairs = np.asarray(keep), np.asarray(pairs, dtype=np.int64)
    if not pairs.size:
        return pairs
    return np.unique(np.concatenate([np.arange(keep[q], keep[q + 1]) for q in pairs]))


def _pairwise(data: VideoData, fn, start: int = 0) -> np.ndarray | None:
    """``fn(flow[idx], idx)`` over the computed pairs ``idx`` (from pair ``start`` on) of
    ``data``'s flow, the other rows left zero, so a long video's skipped pairs still take no
    memory (``np.zeros`` is lazy); None without flow."""
    if data.flow is None:
        return None
    if data.flow_pairs is None:
        return fn(data.flow[start:], np.arange(start, len(data.flow)))
    idx = start + np.flatnonzero(data.flow_pairs[start:])
    out = np.zeros((len(data.flow) - start, *data.flow.shape[1:]), np.float32)
    if idx.size:
        out[idx - start] = fn(data.flow[idx], idx)
    return out


def flip(data: VideoData) -> VideoData:
    """Mirrored left-right: frames ``[:, :, ::-1]``; keypoints ``x -> W - x`` with the left and
    right joints swapped (a left wrist seen in a mirror is a right wrist); boxes ``(x1, x2) ->
    (W - x2, W - x1)``; flow mirrored with its x component negated. Roles are kept: the primary
    stays the primary."""
    _, w = data.size
    kp = data.track.keypoints[:, :, list(FLIP_KEYPOINTS)].copy()
    kp[..., 0] = w - kp[..., 0]
    boxes = data.track.boxes.copy()
    boxes[..., 0], boxes[..., 2] = w - data.track.boxes[..., 2], w - data.track.boxes[..., 0]

    def mirrored(f, _):
        f = np.ascontiguousarray(f[:, :, ::-1])
        f[..., 0] *= -1
        return f

    track = replace(data.track, keypoints=kp, boxes=boxes)
    return replace(data, frames=np.ascontiguousarray(data.frames[:, :, ::-1]), track=track,
                   flow=_pairwise(data, mirrored))


def shift(data: VideoData, k: float) -> VideoData:
    """The video starting ``k`` frames later: every per-frame array from frame ``k`` on, the flow
    from pair ``k`` on (so ``flow[i]`` still goes from frame i to i+1); ``index`` keeps the source's
    frame numbers, so times and velocities stay those of the source."""
    k = int(_shifted(len(data.frames), k)[0])
    t = data.track
    track = replace(t, keypoints=t.keypoints[k:].copy(), boxes=t.boxes[k:].copy(),
                    box_scores=t.box_scores[k:].copy())
    return replace(data, frames=data.frames[k:].copy(), index=data.index[k:].copy(), track=track,
                   flow=_pairwise(data, lambda f, _: f.copy(), start=k),
                   flow_pairs=None if data.flow_pairs is None else data.flow_pairs[k:].copy())


def _zoom_map(size: tuple[int, int], factor: float) -> tuple[float, float, float, float]:
    """(x0, y0, sx, sy) of the zoom by ``factor``: the central (H/factor, W/factor) region, whose
    top-left corner is (x0, y0), maps to the frame by ``x' = (x - x0) * sx`` (sx = W / cw)."""
    h, w = size
    ch, cw = h / factor, w / factor
    return (w - cw) / 2, (h - ch) / 2, w / cw, h / ch


def _warp(images: np.ndarray, size: tuple[int, int], x0, y0, sx, sy) -> np.ndarray:
    """Each image resampled bilinearly by the inverse of ``x' = (x - x0) * sx``, ``y' = (y - y0) *
    sy`` (pixel centres at +0.5, as cv2.resize of an integer crop does)."""
    import cv2

    h, w = size
    inv = np.array([[1 / sx, 0.0, x0 + 0.5 / sx - 0.5], [0.0, 1 / sy, y0 + 0.5 / sy - 0.5]])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return np.stack([cv2.warpAffine(np.ascontiguousarray(im), inv, (w, h), flags=flags,
                                    borderMode=cv2.BORDER_REPLICATE) for im in images])


def zoom(data: VideoData, factor: float) -> VideoData:
    """The central ``1/factor`` of each frame (a (H/factor, W/factor) region) scaled back to
    (H, W) with cv2.INTER_LINEAR; keypoints and boxes mapped by the same affine map (points
    outside the region land outside the frame), the flow resampled and its (dx, dy) scaled by
    (W/cw, H/ch)."""
    size = data.size
    x0, y0, sx, sy = _zoom_map(size, float(factor))
    scale = np.array([sx, sy], np.float32)
    t = data.track
    kp = t.keypoints.copy()
    kp[..., :2] = (kp[..., :2] - np.array([x0, y0], np.float32)) * scale
    boxes = ((t.boxes - np.array([x0, y0, x0, y0], np.float32)) * np.tile(scale, 2)).astype(
        t.boxes.dtype)
    flow = _pairwise(data, lambda f, _: (_warp(f, size, x0, y0, sx, sy) * scale).astype(np.float32))
    return replace(data, frames=_warp(data.frames, size, x0, y0, sx, sy), flow=flow,
                   track=replace(t, keypoints=kp.astype(t.keypoints.dtype), boxes=boxes))


def bright(data: VideoData, gain: float) -> VideoData:
    """Intensities multiplied by ``gain``, rounded and clipped to [0, 255]. Poses and flow are
    those of the source: the content and its motion are the same (a pose estimator or TV-L1 run
    on the brightened frames would differ only by its own noise)."""
    frames = np.clip(np.rint(data.frames.astype(np.float32) * float(gain)), 0, 255)
    return replace(data, frames=frames.astype(np.uint8))


def histeq(data: VideoData) -> VideoData:
    """Each frame's luminance (Y of YCrCb) histogram-equalised with cv2.equalizeHist, its colour
    kept. Poses and flow are the source's, as for :func:`bright`."""
    import cv2

    out = np.empty_like(data.frames)
    for i, f in enumerate(data.frames):
        ycc = cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2YCrCb)
        ycc[..., 0] = cv2.equalizeHist(ycc[..., 0])
        out[i] = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)
    return replace(data, frames=out)


def foreground(data: VideoData, margin: float = MASK_MARGIN) -> np.ndarray:
    """(F, H, W) bool: inside some selected person's box grown by ``margin`` of its size per side;
    a frame without a person has no foreground."""
    n, (h, w) = len(data.frames), data.size
    keep = np.zeros((n, h, w), bool)
    for t, boxes in enumerate(data.track.boxes):
        for x1, y1, x2, y2 in boxes:
            if not np.isfinite([x1, y1, x2, y2]).all():
                continue
            mx, my = margin * (x2 - x1), margin * (y2 - y1)
            c0, c1 = int(np.clip(np.floor(x1 - mx), 0, w)), int(np.clip(np.ceil(x2 + mx), 0, w))
            r0, r1 = int(np.clip(np.floor(y1 - my), 0, h)), int(np.clip(np.ceil(y2 + my), 0, h))
            keep[t, r0:r1, c0:c1] = True
    return keep


def mask(data: VideoData) -> VideoData:
    """The background blacked out: pixels outside :func:`foreground` set to 0, and the flow of
    each pair zeroed where its first frame is background (nothing moves in black). Poses are the
    source's. The paper masks "the background" without saying how; the person boxes are what the
    cache knows of the foreground."""
    keep = foreground(data)
    flow = _pairwise(data, lambda f, idx: f * keep[idx, ..., None])
    return replace(data, frames=data.frames * keep[..., None].astype(data.frames.dtype), flow=flow)


def chain_flow(flows: np.ndarray) -> np.ndarray:
    """(H, W, 2) flow from frame 0 to frame K of the (K, H, W, 2) consecutive flows between them:
    ``f_ac(x) = f_ab(x) + f_bc(x + f_ab(x))`` applied pair by pair, ``f_bc`` sampled bilinearly
    with cv2.remap (a point carried outside the frame reads the nearest border pixel). It is the
    ideal flow of the two frames wherever the tracked point stays visible."""
    import cv2

    acc = np.array(flows[0], np.float32)
    h, w = acc.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    for f in flows[1:]:
        acc += cv2.remap(np.ascontiguousarray(f, np.float32), gx + acc[..., 0], gy + acc[..., 1],
                         cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return acc


def drop(data: VideoData, fraction: float, seed: int = 0) -> VideoData:
    """A fraction of the frames dropped at random, the Siamese DML's "temporal augmentation by
    dropping some random frames" (Jain et al. Sec. III-C): ``round(fraction * F)`` of the inner
    frames, drawn by ``numpy.random.default_rng(seed)``; the first and last frames stay, so the
    view spans the whole action (a later start is :func:`shift`'s). Every per-frame array keeps
    the kept frames; ``index`` keeps their source frame numbers, so velocities stay per second
    across a gap; the flow between two kept frames is :func:`chain_flow` of the pairs between
    them. The backbones see the motion jump where frames are missing.

    Chaining, not TV-L1 run across the gap: on a rendered scene with known motion
    (``benchmarks/chain_flow.py``), OpenCV's TV-L1 fails once the gap's motion passes about
    4 px (mean error 3 px at 7 px of motion, 10 px at 14 px), where the chained flow stays
    within 0.3 and 0.7 px."""
    keep = _kept(len(data.frames), fraction, seed)
    t = data.track
    track = replace(t, keypoints=t.keypoints[keep], boxes=t.boxes[keep],
                    box_scores=t.box_scores[keep])
    flow, pairs = None, None
    if data.flow is not None:
        spans = list(zip(keep[:-1], keep[1:]))
        if data.flow_pairs is not None:  # a pair of the view has flow if all it spans have
            pairs = np.array([data.flow_pairs[a:b].all() for a, b in spans])
        flow = np.zeros((len(spans), *data.flow.shape[1:]), np.float32)
        for q, (a, b) in enumerate(spans):
            if pairs is None or pairs[q]:
                flow[q] = data.flow[a] if b == a + 1 else chain_flow(data.flow[a:b])
    return replace(data, frames=data.frames[keep], index=data.index[keep], track=track,
                   flow=flow, flow_pairs=pairs)
