"""Joint patches: square boxes around each joint and clips cropped from frames or optical flow.

JRG (Pan et al., ICCV 2019) and AIM (Gao et al., ECCV 2020) feed I3D two kinds of clips per time step:
the whole scene and "local patches cropped around joints", for the RGB and the TV-L1 flow stream. Neither
paper's main text states the patch size (it is left to their supplementary material), so the default here
is our choice, documented and configurable: a square of side ``scale * max(box height, box width)`` of the
person box, ``scale = 0.25`` (about one and a half head lengths for a standing adult; it keeps a forearm or
a shank around an elbow or a knee), never smaller than ``min_side`` pixels.

Conventions
-----------
* Boxes are ``xyxy`` in continuous pixel coordinates: pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``, so
  the box ``(0, 0, W, H)`` is exactly the whole frame.
* A patch that leaves the frame is padded, not shifted: the part outside the frame reads as zeros
  (``border="constant"``, the default: black for RGB, "no motion" for flow, which is the physically neutral
  value) or as the nearest edge pixel (``border="replicate"``). The patch therefore stays centred on the
  joint and keeps its size.
* Flow values are copied, never rescaled: a flow patch keeps displacements in pixels of the *original*
  frame even though the patch is resized to the backbone input. This is the convention for I3D flow
  patches cut from whole-frame TV-L1 flow (the [-20, 20] -> [-1, 1] clipping is then applied as for whole
  frames). A patch upscaled k times therefore shows displacements k times smaller than its own pixel grid.
* Flow ``flow[p]`` maps decoded frame ``p`` to ``p + 1`` and lives on frame ``p``'s grid; a clip position
  ``p`` reads flow pair ``p`` with frame ``p``'s joint boxes, and the last decoded frame (which has no
  forward pair) reads pair ``F - 2``.
* Padding: clip positions a sampling marks ``padded`` (a short video filled up to the protocol's
  length, :attr:`aqa.extract.sampling.Sampling.padded`) are zero frames, as Li et al. pad ("padded with
  zero frames to length 151"): black RGB, and zero flow (the flow between zero frames).

Everything here is numpy + OpenCV (imported lazily); no torch.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

__all__ = [
    "COCO17_JOINTS",
    "DEFAULT_SCALE",
    "DEFAULT_MIN_SIDE",
    "joint_boxes",
    "crop_resize",
    "clip_positions",
    "pairs_read",
    "padded_mask",
    "iter_joint_clips",
    "joint_clips",
    "iter_whole_clips",
    "whole_clips",
]

COCO17_JOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
DEFAULT_SCALE = 0.25
DEFAULT_MIN_SIDE = 16.0


def _interp_over_time(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill invalid rows of ``values`` (F, ...) by linear interpolation over the frame index.

    Before the first / after the last valid frame the nearest valid value is held. Columns with no valid
    frame at all stay NaN. ``valid`` is (F,) or broadcastable to ``values``' leading axes.
    """
    values = np.asarray(values, dtype=np.float64)
    out = values.copy()
    f = np.arange(values.shape[0])
    flat = out.reshape(values.shape[0], -1)
    vmask = np.broadcast_to(valid.reshape(valid.shape + (1,) * (values.ndim - valid.ndim)),
                            values.shape).reshape(values.shape[0], -1)
    for c in range(flat.shape[1]):
        ok = vmask[:, c] & np.isfinite(flat[:, c])
        if ok.all():
            continue
        if not ok.any():
            flat[:, c] = np.nan
            continue
        flat[~ok, c] = np.interp(f[~ok], f[ok], flat[ok, c])
    return flat.reshape(values.shape)


def joint_boxes(
    keypoints: np.ndarray,
    person_boxes: np.ndarray,
    scale: float = DEFAULT_SCALE,
    min_side: float = DEFAULT_MIN_SIDE,
    min_score: float | None = 0.0,
    frame_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Square patch boxes centred on each joint of one person, for every decoded frame.

    Parameters
    ----------
    keypoints : (F, 17, 3) x, y, score; NaN where the person or the joint is missing.
    person_boxes : (F, 4) xyxy person box; NaN where the person is missing.
    scale : side = ``scale * max(box height, box width)`` (see the module docstring for the default).
    min_side : lower bound on the side, in pixels.
    min_score : a joint whose score is below this counts as missing (``None``: only NaN is missing). The
        score scale is the pose backend's (torchvision keypoint R-CNN gives logits, mediapipe [0, 1]).
    frame_size : (H, W), used only as the last resort when a video has no person box and no keypoint at
        all: every patch is then centred in the frame with side ``scale * max(H, W)``.

    Returns
    -------
    (F, 17, 4) float32 xyxy squares. Missing joints are filled in *box-relative* coordinates: the joint's
    offset from the person-box centre, divided by the box size, is interpolated over time from the frames
    where the joint is present (held constant before the first / after the last one), then mapped back
    through the current box, so a filled joint follows the moving person. A joint never seen in the video
    sits at the box centre. Missing person boxes are interpolated over time the same way; a video with no
    box at all uses the extent of its keypoints.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    bx = np.asarray(person_boxes, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1:] != (17, 3):
        raise ValueError(f"keypoints must be (F, 17, 3) for one person, got {kp.shape}")
    if bx.shape != (kp.shape[0], 4):
        raise ValueError(f"person_boxes must be (F, 4) = ({kp.shape[0]}, 4), got {bx.shape}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    n = kp.shape[0]

    jvalid = np.isfinite(kp[..., 0]) & np.isfinite(kp[..., 1])
    if min_score is not None:
        with np.errstate(invalid="ignore"):
            jvalid &= kp[..., 2] >= min_score

    bvalid = np.isfinite(bx).all(axis=1) & (bx[:, 2] > bx[:, 0]) & (bx[:, 3] > bx[:, 1])
    if not bvalid.any():
        # No detector box anywhere: use the extent of the valid keypoints frame by frame.
        xs = np.where(jvalid, kp[..., 0], np.nan)
        ys = np.where(jvalid, kp[..., 1], np.nan)
        has = jvalid.sum(axis=1) >= 2
        bx = np.full((n, 4), np.nan)
        if has.any():
            bx[has] = np.stack([np.nanmin(xs[has], 1), np.nanmin(ys[has], 1),
                                np.nanmax(xs[has], 1), np.nanmax(ys[has], 1)], axis=1)
        bvalid = has & (bx[:, 2] > bx[:, 0]) & (bx[:, 3] > bx[:, 1])
    if not bvalid.any():
        if frame_size is None:
            raise ValueError("no person box and no keypoints in any frame; pass frame_size=(H, W) "
                             "to centre the patches in the frame instead")
        h, w = frame_size
        out = np.empty((n, 17, 4), dtype=np.float32)
        side = max(scale * max(h, w), min_side)
        out[..., :] = (w / 2 - side / 2, h / 2 - side / 2, w / 2 + side / 2, h / 2 + side / 2)
        return out

    # Person box as centre + size, interpolated over the frames where it is missing.
    geo = np.stack([(bx[:, 0] + bx[:, 2]) / 2, (bx[:, 1] + bx[:, 3]) / 2,
                    bx[:, 2] - bx[:, 0], bx[:, 3] - bx[:, 1]], axis=1)
    geo = _interp_over_time(geo, bvalid)
    cx, cy, bw, bh = geo.T
    size = np.maximum(bw, bh)

    # Joint offsets relative to the box, interpolated over time per joint.
    rel = np.stack([(kp[..., 0] - cx[:, None]) / size[:, None],
                    (kp[..., 1] - cy[:, None]) / size[:, None]], axis=-1)  # (F, 17, 2)
    rel = _interp_over_time(rel, jvalid)
    rel = np.nan_to_num(rel, nan=0.0)  # joints never seen: box centre
    jx = cx[:, None] + rel[..., 0] * size[:, None]
    jy = cy[:, None] + rel[..., 1] * size[:, None]
    half = np.maximum(scale * size, min_side)[:, None] / 2
    return np.stack([jx - half, jy - half, jx + half, jy + half], axis=-1).astype(np.float32)


def _warp_one(img: np.ndarray, box: np.ndarray, out_size: int, border: int, antialias: bool,
              cv2) -> np.ndarray:
    """Crop the continuous box ``xyxy`` from ``img`` (H, W, C<=4) and resample it to out_size^2."""
    x0, y0, x1, y1 = (float(v) for v in box)
    sx, sy = (x1 - x0) / out_size, (y1 - y0) / out_size
    src = img
    if antialias and (sx > 1.0 or sy > 1.0):
        # Downscaling: low-pass the source region first (sigma = (s - 1) / 2 per axis, the same rule as
        # skimage.transform.resize's anti_aliasing) so a bilinear sample does not alias.
        sig_x, sig_y = max((sx - 1) / 2, 0.0), max((sy - 1) / 2, 0.0)
        h, w = img.shape[:2]
        m = int(np.ceil(3 * max(sig_x, sig_y))) + 2
        cx0, cy0 = max(int(np.floor(x0)) - m, 0), max(int(np.floor(y0)) - m, 0)
        cx1, cy1 = min(int(np.ceil(x1)) + m, w), min(int(np.ceil(y1)) + m, h)
        if cx1 > cx0 and cy1 > cy0:  # else the box is entirely outside: padding only, nothing to blur
            # The region keeps a margin around the box, so every sample inside the box reads blurred
            # pixels; where the region is cut by the frame edge, the border mode applies as before.
            region = np.ascontiguousarray(img[cy0:cy1, cx0:cx1])
            src = cv2.GaussianBlur(region, (0, 0), sigmaX=max(sig_x, 1e-3), sigmaY=max(sig_y, 1e-3),
                                   borderType=cv2.BORDER_REPLICATE)
            x0, y0 = x0 - cx0, y0 - cy0
    # Output pixel u (centre u + 0.5) samples source position x0 + (u + 0.5) * sx in continuous coords,
    # i.e. pixel index x0 + (u + 0.5) * sx - 0.5.
    mat = np.array([[sx, 0.0, x0 + 0.5 * sx - 0.5], [0.0, sy, y0 + 0.5 * sy - 0.5]])
    out = cv2.warpAffine(src, mat, (out_size, out_size),
                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=border, borderValue=0)
    if out.ndim == 2:
        out = out[..., None]
    return out


def crop_resize(
    images: np.ndarray,
    boxes: np.ndarray,
    out_size: int,
    border: str = "constant",
    antialias: bool = True,
) -> np.ndarray:
    """Crop box ``t`` from image ``t`` and resample it bilinearly to ``out_size x out_size``.

    Parameters
    ----------
    images : (T, H, W, C) uint8 RGB frames or float flow (any C; values are never rescaled, see the module
        docstring for flow units).
    boxes : (T, 4) xyxy continuous pixel coordinates; may extend beyond the frame.
    out_size : side of the output square.
    border : "constant" (zeros outside the frame) or "replicate" (nearest edge pixel).
    antialias : Gaussian low-pass before sampling when a box is larger than the output.

    Returns
    -------
    (T, out_size, out_size, C) with the input dtype (uint8 is rounded by OpenCV).
    """
    import cv2

    images = np.asarray(images)
    boxes = np.asarray(boxes, dtype=np.float64)
    if images.ndim != 4:
        raise ValueError(f"images must be (T, H, W, C), got {images.shape}")
    if boxes.shape != (images.shape[0], 4):
        raise ValueError(f"boxes must be (T, 4) = ({images.shape[0]}, 4), got {boxes.shape}")
    if not np.isfinite(boxes).all():
        raise ValueError("boxes contain NaN/inf; fill missing boxes first (joint_boxes does)")
    if np.any(boxes[:, 2] <= boxes[:, 0]) or np.any(boxes[:, 3] <= boxes[:, 1]):
        raise ValueError("every box needs x1 > x0 and y1 > y0")
    out_size = int(out_size)
    if out_size < 1:
        raise ValueError(f"out_size must be >= 1, got {out_size}")
    modes = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE}
    if border not in modes:
        raise ValueError(f"border must be one of {sorted(modes)}, got {border!r}")
    bmode = modes[border]
    if images.dtype not in (np.uint8, np.uint16, np.int16, np.float32, np.float64):
        raise ValueError(f"unsupported image dtype {images.dtype}: use uint8, uint16, int16, float32 "
                         "or float64 (what OpenCV warps)")
    t, _, _, c = images.shape
    out = np.empty((t, out_size, out_size, c), dtype=images.dtype)
    for i in range(t):
        for c0 in range(0, c, 4):  # OpenCV warps at most 4 channels at a time
            chunk = np.ascontiguousarray(images[i, :, :, c0:c0 + 4])
            out[i, :, :, c0:c0 + 4] = _warp_one(chunk, boxes[i], out_size, bmode, antialias, cv2)
    return out


def clip_positions(clips: np.ndarray, n_images: int, n_frames: int) -> np.ndarray:
    """Positions into an image stack for clip positions into the decoded frames.

    ``n_images == n_frames``: frames, positions are used as they are. ``n_images == n_frames - 1``: flow
    pairs, position ``p`` reads pair ``p`` and the last frame reads pair ``F - 2``. Anything else is an error.
    """
    clips = np.asarray(clips)
    if clips.ndim != 2 or clips.dtype.kind not in "iu":
        raise ValueError(f"clips must be an integer (S, L) array, got {clips.dtype} {clips.shape}")
    if clips.size and (clips.min() < 0 or clips.max() >= n_frames):
        raise ValueError(f"clip positions must lie in [0, {n_frames}), got [{clips.min()}, {clips.max()}]")
    if n_images == n_frames:
        return clips.astype(np.int64)
    if n_images == n_frames - 1 and n_images > 0:
        return np.minimum(clips, n_images - 1).astype(np.int64)
    raise ValueError(f"got {n_images} images for {n_frames} decoded frames: expected {n_frames} frames "
                     f"or {n_frames - 1} flow pairs")


def pairs_read(clips: np.ndarray, n_frames: int, padded=None) -> np.ndarray:
    """The flow pairs a sampling's clips read (sorted, unique): :func:`clip_positions` of the
    positions that are not ``padded`` (padding reads no pair: it is a zero frame). Flow for the
    other pairs of a video is never used, so the extractor computes only these."""
    pos = clip_positions(clips, n_frames - 1, n_frames)
    pad = padded_mask(padded, pos)
    return np.unique(pos if pad is None else pos[~pad])


def padded_mask(padded, clips) -> np.ndarray | None:
    """``padded`` as an (S, L) bool array of ``clips``' shape, or None when no position is padded."""
    if padded is None:
        return None
    mask = np.asarray(padded)
    shape = np.shape(clips)
    if mask.dtype != bool or mask.shape != shape:
        raise ValueError(f"padded must be a bool array of the clips' shape {shape}, "
                         f"got {mask.dtype} {mask.shape}")
    return mask if mask.any() else None


def iter_joint_clips(
    images: np.ndarray,
    clips: np.ndarray,
    jboxes: np.ndarray,
    out_size: int,
    border: str = "constant",
    antialias: bool = True,
    padded: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """Yield, for each time step ``s``, the joint clips ``(J, L, out, out, C)`` of frames ``clips[s]``.

    ``images`` is (F, H, W, C) frames or (F-1, H, W, 2) flow with F = ``len(jboxes)``; ``jboxes`` is
    (F, J, 4) from :func:`joint_boxes`. One step at a time keeps memory at J*L*out^2*C values.
    Positions where ``padded`` (S, L) is True are zero frames (module docstring).
    """
    jboxes = np.asarray(jboxes)
    if jboxes.ndim != 3 or jboxes.shape[-1] != 4:
        raise ValueError(f"jboxes must be (F, J, 4), got {jboxes.shape}")
    pos = clip_positions(clips, np.asarray(images).shape[0], jboxes.shape[0])
    pad = padded_mask(padded, pos)
    n_joints = jboxes.shape[1]
    for s, row in enumerate(pos):
        frames = images[row]                                   # (L, H, W, C)
        step = np.stack([crop_resize(frames, jboxes[row, j], out_size, border, antialias)
                         for j in range(n_joints)])            # (J, L, out, out, C)
        if pad is not None:
            step[:, pad[s]] = 0
        yield step


def joint_clips(
    images: np.ndarray,
    clips: np.ndarray,
    jboxes: np.ndarray,
    out_size: int,
    border: str = "constant",
    antialias: bool = True,
    progress: bool = False,
    padded: np.ndarray | None = None,
) -> np.ndarray:
    """All joint clips as one array ``(S, J, L, out, out, C)``; see :func:`iter_joint_clips`.

    Prefer the iterator for long videos or large ``out_size``: this holds every step at once.
    """
    it = iter_joint_clips(images, clips, jboxes, out_size, border, antialias, padded)
    if progress:
        from aqa.data.logs import progress_bar
        it = progress_bar(it, total=len(clips), desc="joint clips", unit="step")
    steps = list(it)
    if not steps:
        c = np.asarray(images).shape[-1]
        return np.empty((0, np.asarray(jboxes).shape[1], np.asarray(clips).shape[1], out_size, out_size, c),
                        dtype=np.asarray(images).dtype)
    return np.stack(steps)


def _whole_box(h: int, w: int, mode: str) -> np.ndarray:
    if mode == "resize":
        return np.array([0.0, 0.0, w, h])
    if mode == "center_crop":
        s = min(h, w)
        return np.array([(w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2])
    raise ValueError(f"mode must be 'resize' or 'center_crop', got {mode!r}")


def iter_whole_clips(
    images: np.ndarray,
    clips: np.ndarray,
    out_size: int,
    mode: str = "resize",
    n_frames: int | None = None,
    antialias: bool = True,
    padded: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """Yield, for each time step, the whole-frame clip ``(L, out, out, C)``.

    ``mode="resize"`` squashes the whole frame into the square (nothing is cut off; the JRG whole-scene
    stream uses "whole images"); ``"center_crop"`` takes the centred square of side min(H, W).
    ``n_frames`` (the number of decoded frames) tells flow (F-1 pairs) from frames; default: len(images).
    Positions where ``padded`` (S, L) is True are zero frames (module docstring).
    """
    images = np.asarray(images)
    n_frames = images.shape[0] if n_frames is None else n_frames
    pos = clip_positions(clips, images.shape[0], n_frames)
    pad = padded_mask(padded, pos)
    box = _whole_box(images.shape[1], images.shape[2], mode)
    for s, row in enumerate(pos):
        clip = crop_resize(images[row], np.repeat(box[None], len(row), 0), out_size, "replicate",
                           antialias)
        if pad is not None:
            clip[pad[s]] = 0
        yield clip


def whole_clips(images: np.ndarray, clips: np.ndarray, out_size: int, mode: str = "resize",
                n_frames: int | None = None, antialias: bool = True,
                padded: np.ndarray | None = None) -> np.ndarray:
    """All whole-frame clips as one array ``(S, L, out, out, C)``; see :func:`iter_whole_clips`."""
    steps = list(iter_whole_clips(images, clips, out_size, mode, n_frames, antialias, padded))
    if not steps:
        a = np.asarray(images)
        return np.empty((0, np.asarray(clips).shape[1], out_size, out_size, a.shape[-1]), dtype=a.dtype)
    return np.stack(steps)
