"""A contact sheet of one cached video: its frames with the poses the cache holds drawn on them.

``aqa-extract show feats.h5 VIDEO_ID --root videos/`` answers the questions a table of numbers
cannot: did person selection keep the diver and not a judge, do the keypoints sit on the body,
does a view's pose line up with the view's pixels. Frames evenly spread over the video are decoded
again from the source file (at the resolution the extraction used, so the cached pixel
coordinates apply), the primary person drawn in orange and the secondary in blue (skeleton,
keypoints, box), optionally with the joint patches the backbones see.

A view (``ID@flip``) is shown as extraction made it: the source frames its ``frames/index``
names, transformed by the view (:func:`aqa.extract.views.apply_view`; a shift or a drop only
chooses frames), under the view's own cached poses.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from aqa.data.cache import CacheReader
from aqa.data.figures import new_figure, save_figure
from aqa.data.views import parse_view

from .patches import joint_boxes
from .pose.base import COCO_SKELETON
from .pose.selection import PoseTrack
from .discover import file_sha256
from .video import read_frames
from .views import VideoData, apply_view

__all__ = ["contact_sheet", "sheet_frames", "PERSON_COLOURS"]

#: colour of the primary (role 0) and secondary (role 1) person
PERSON_COLOURS = ("#ff7f0e", "#1f77b4")


def _video_path(attrs: dict, video, root) -> Path:
    if video is not None:
        path = Path(video)
    else:
        rel = attrs.get("source_relpath")
        if not rel:
            raise ValueError("the cache records no source_relpath for this video; give --video")
        path = Path(root or ".") / rel
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such video (the cache's source_relpath is "
                                f"{attrs.get('source_relpath')!r}); give --root DIR, the folder "
                                "extraction read, or --video PATH")
    return path


def sheet_frames(cache, video_id: str, video=None, root=None, n: int = 8) -> dict:
    """The data of a contact sheet: ``frames`` (n, H, W, 3) uint8 as extraction saw them,
    ``positions`` (n,) their positions among the video's (or view's) frames, ``index`` their
    source frame numbers, ``keypoints`` (n, P, 17, 3), ``boxes`` (n, P, 4), ``roles``, ``fps``,
    ``patch_scale``, ``pose`` (the backend) and ``view`` (its name, or "").

    ``video``: the source file (default ``root / source_relpath``). A file whose sha256 is not
    the cached ``source_sha256`` is warned about; frames that do not decode at the cached size
    are a ValueError (the poses would not sit on them)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    with CacheReader(cache) as r:
        g = r.group(video_id)
        attrs = dict(g.attrs)
        src_id = attrs.get("view_of") or video_id
        src_attrs = r.video_attrs(src_id)
        cfg = r.video_config(video_id)
        index = g["frames/index"][()]
        pose = r.pose(video_id)
        src_index = r.group(src_id)["frames/index"][()]
        src_pose = r.pose(src_id)
    path = _video_path(src_attrs, video, root)
    if src_attrs.get("source_sha256") and file_sha256(path) != src_attrs["source_sha256"]:
        warnings.warn(f"{path}: not the file {src_id!r} was extracted from (its sha256 differs); "
                      "the poses may not sit on these frames", stacklevel=2)
    pos = np.unique(np.linspace(0, len(index) - 1, min(n, len(index))).round().astype(int))
    frames, got = read_frames(path, indices=index[pos], frame_height=cfg.get("frame_height"),
                              short_side=cfg.get("short_side") or None)
    size = (int(attrs["height"]), int(attrs["width"]))
    if frames.shape[1:3] != size:
        raise ValueError(f"{path} decodes at {frames.shape[1]}x{frames.shape[2]}, the cache's "
                         f"frames are {size[0]}x{size[1]}: not the extraction's frames")
    view = attrs.get("view", "")
    if view and parse_view(view).kind not in ("shift", "drop"):   # those only choose frames
        at = np.searchsorted(src_index, got)
        track = PoseTrack(*(src_pose[k][at] for k in ("keypoints", "boxes", "box_scores")),
                          src_pose["roles"])
        frames = apply_view(view, VideoData(frames, got, track)).frames
    return {"frames": frames, "positions": pos, "index": got,
            "keypoints": pose["keypoints"][pos], "boxes": pose["boxes"][pos],
            "roles": pose["roles"], "fps": float(attrs.get("fps") or 0.0),
            "patch_scale": float(cfg.get("patch_scale", 0.25)), "pose": cfg.get("pose", "?"),
            "view": view, "n_frames": len(index)}


def _draw_person(ax, kp, box, colour):
    from matplotlib.patches import Rectangle

    if np.isfinite(box).all():
        ax.add_patch(Rectangle(box[:2], box[2] - box[0], box[3] - box[1], fill=False,
                               edgecolor=colour, lw=1, ls="--"))
    for i, j in COCO_SKELETON:
        if np.isfinite(kp[[i, j], :2]).all():
            ax.plot(kp[[i, j], 0], kp[[i, j], 1], color=colour, lw=1.5)
    ok = np.isfinite(kp[:, :2]).all(axis=1)
    ax.scatter(kp[ok, 0], kp[ok, 1], s=6, color=colour, zorder=3)


def contact_sheet(cache, video_id: str, out, video=None, root=None, n: int = 8,
                  patches: bool = False, columns: int = 4) -> Path:
    """Write the contact sheet of ``video_id`` (see the module docstring and
    :func:`sheet_frames`) as a PNG at ``out``; ``patches`` draws the primary person's joint
    patches (:func:`aqa.extract.patches.joint_boxes` with the extraction's ``patch_scale``)."""
    from matplotlib.patches import Rectangle

    d = sheet_frames(cache, video_id, video=video, root=root, n=n)
    frames = d["frames"]
    k = len(frames)
    cols = min(columns, k)
    rows = -(-k // cols)
    h, w = frames.shape[1:3]
    fig = new_figure(2.6 * cols, 2.6 * rows * h / w + 0.5)
    jb = joint_boxes(d["keypoints"][:, 0], d["boxes"][:, 0], scale=d["patch_scale"],
                     frame_size=(h, w)) if patches else None
    for i in range(k):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(frames[i])
        found = False
        for p, role in enumerate(d["roles"]):
            kp, box = d["keypoints"][i, p], d["boxes"][i, p]
            found |= bool(np.isfinite(box).all() or np.isfinite(kp[:, :2]).any())
            _draw_person(ax, kp, box, PERSON_COLOURS[min(int(role), 1)])
        if jb is not None and np.isfinite(d["boxes"][i, 0]).all():
            for x1, y1, x2, y2 in jb[i]:
                ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="w",
                                       lw=0.5, alpha=0.7))
        t = f" · {d['index'][i] / d['fps']:.2f} s" if d["fps"] > 0 else ""
        ax.set_title(f"frame {d['index'][i]}{t}{'' if found else ' · no person'}", fontsize=7)
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.set_axis_off()
    who = "primary orange, secondary blue" if len(d["roles"]) > 1 else "the performer"
    fig.suptitle(f"{video_id}: pose {d['pose']}, {d['n_frames']} frames, {k} shown ({who})",
                 fontsize=8)
    return save_figure(fig, out)
