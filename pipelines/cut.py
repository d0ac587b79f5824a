"""Cut a benchmark's full videos into the per-dive frame folders its recipe reads.

MTL-AQA and UNLV-Dive are released as full broadcast videos (MTL-AQA: 15, numbered up to ``26``; the release
lists their YouTube links) and, for each dive, its ``start_frame`` and ``end_frame`` in the full
video. The recipes read MUSDL's layout instead: one folder of frames per dive,
``<video:02d>_<clip:02d>/000001.jpg ...`` (:func:`aqa.data.datasets.video_relpath`).
:func:`cut_dives` makes that layout from the full videos.

- Sources: under ``full_dir``, full video ``v`` is a file ``<v:02d>.<ext>`` (or ``<v>.<ext>``, any
  of :data:`aqa.data.datasets.VIDEO_EXTENSIONS`), or a folder of its frames ``<v:02d>/`` (CoRe's
  layout: the i-th image, in natural order, is frame i).
- Frames: frame numbers are 0-based positions in the full video. A dive's folder holds the frames
  ``[min(start_frame, end_frame - min_frames), end_frame)``: the dive, extended backwards to at
  least ``min_frames`` frames. CoRe's MTL-AQA loader takes the 103 frames ``end_frame - 103 ..
  end_frame - 1`` of the full video and MUSDL reads 103 frames per dive folder, so with the
  default ``min_frames=103`` the recipe's ``core`` sampling (103 frames ending at the clip's last
  frame) sees exactly CoRe's frames.
- Cost: each full video is decoded once, sequentially, up to its last dive, for all of its dives;
  only the frames of dives are converted and written (JPEG). Frames of a frame-folder source are
  hard-linked (copied across file systems), not re-encoded, unless ``short_side`` resizes them.
- Safety: a dive's frames go into a hidden ``.<id>.partial`` folder renamed to ``<id>`` only when
  every frame is written, so an interrupted cut never leaves a short folder that looks whole; a
  re-run skips the dives already cut. A dive past the end of its full video, or a full video that
  does not decode, is a failure of those dives; the other videos go on.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

#: benchmarks whose annotation gives each dive's frame range in a full video
CUT_DATASETS = ("mtl_aqa", "unlv_dive")
#: frames per dive folder, at least: CoRe's and MUSDL's 103
DEFAULT_MIN_FRAMES = 103


@dataclass(frozen=True)
class Dive:
    """One dive to cut: frames ``[first, end)`` of full video ``video``, into folder ``video_id``."""
    video_id: str
    video: int
    first: int
    end: int

    @property
    def n_frames(self) -> int:
        return self.end - self.first


@dataclass
class CutSummary:
    out_dir: str
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)      # video_id -> reason
    missing_videos: list[int] = field(default_factory=list)   # full videos not under full_dir
    missing_dives: list[str] = field(default_factory=list)    # dives of those videos


def plan_dives(rows: Iterable, min_frames: int = DEFAULT_MIN_FRAMES) -> dict[int, list[Dive]]:
    """Full video number -> its dives (sorted by first frame), from label rows of
    :func:`aqa.data.datasets.read_dataset` (ids ``<video>_<clip>``, sub-scores ``start_frame`` and
    ``end_frame``)."""
    if isinstance(min_frames, bool) or not isinstance(min_frames, int) or min_frames < 1:
        raise ValueError(f"min_frames must be a positive integer, got {min_frames!r}")
    plan: dict[int, list[Dive]] = {}
    for r in rows:
        m = re.fullmatch(r"(\d+)_(\d+)", r.video_id)
        start, end = r.sub_scores.get("start_frame"), r.sub_scores.get("end_frame")
        if m is None or start is None or end is None:
            raise ValueError(f"{r.video_id}: not a '<video>_<clip>' row with start_frame and "
                             "end_frame (cut needs MTL-AQA or UNLV-Dive labels)")
        start, end = int(start), int(end)
        if not 0 <= start < end:
            raise ValueError(f"{r.video_id}: frame range start_frame={start}, end_frame={end} "
                             "is empty or negative")
        first = max(0, min(start, end - min_frames))
        plan.setdefault(int(m.group(1)), []).append(Dive(r.video_id, int(m.group(1)), first, end))
    return {v: sorted(ds, key=lambda d: (d.first, d.video_id)) for v, ds in sorted(plan.items())}


def find_full_video(full_dir: str | os.PathLike, number: int) -> Path | None:
    """Full video ``number`` under ``full_dir`` (see the module docstring), None when absent; two
    candidates are a ``ValueError`` naming both."""
    from aqa.data.datasets import VIDEO_EXTENSIONS

    full_dir = Path(full_dir)
    stems = {f"{number:02d}", str(number)}
    found = [p for p in sorted(full_dir.iterdir()) if p.stem in stems and (
        (p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS) or (p.is_dir() and p.name in stems))]
    if len(found) > 1:
        raise ValueError(f"full video {number:02d}: several candidates under {full_dir}: "
                         f"{', '.join(p.name for p in found)}; keep one")
    return found[0] if found else None


def cut_dives(dataset: str, annotation_dir, full_dir, out_dir, *,
              min_frames: int = DEFAULT_MIN_FRAMES, short_side: int | None = None,
              jpeg_quality: int = 95, progress: bool = True) -> CutSummary:
    """Cut the dives of ``dataset`` (``mtl_aqa`` or ``unlv_dive``, annotation files in
    ``annotation_dir``) out of the full videos in ``full_dir`` into ``out_dir/<video>_<clip>/``.

    Every annotated dive is cut, in a split or not. ``short_side`` downscales frames (never up).
    Raises ``FileNotFoundError`` when none of the full videos is there.
    """
    from aqa.data.datasets import read_dataset
    from aqa.extract.video import resized_size

    if dataset not in CUT_DATASETS:
        raise ValueError(f"cut works on {', '.join(CUT_DATASETS)} (full videos with each dive's "
                         f"frame range), not {dataset!r}")
    if isinstance(jpeg_quality, bool) or not isinstance(jpeg_quality, int) or not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be an integer in 1..100, got {jpeg_quality!r}")
    if short_side is not None:
        resized_size(1, 1, short_side=short_side)  # a bad size fails before any work
    full_dir, out_dir = Path(full_dir), Path(out_dir)
    if not full_dir.is_dir():
        raise FileNotFoundError(f"full video folder {full_dir} does not exist")
    rows = read_dataset(dataset, annotation_dir, include_unsplit=True)
    plan = plan_dives(rows, min_frames)
    summary = CutSummary(str(out_dir))
    sources = {}
    for v, dives in plan.items():
        src = find_full_video(full_dir, v)
        if src is None:
            summary.missing_videos.append(v)
            summary.missing_dives += [d.video_id for d in dives]
        else:
            sources[v] = src
    if not sources:
        raise FileNotFoundError(
            f"none of the {len(plan)} full {dataset} videos is under {full_dir} (expected e.g. "
            f"{full_dir / f'{next(iter(plan)):02d}.mp4'} or a frame folder "
            f"{full_dir / f'{next(iter(plan)):02d}'})")
    out_dir.mkdir(parents=True, exist_ok=True)
    for v, src in sources.items():
        todo = []
        for d in plan[v]:
            (summary.skipped.append(d.video_id) if (out_dir / d.video_id).is_dir()
             else todo.append(d))
        if todo:
            _cut_video(src, todo, out_dir, summary, short_side, jpeg_quality, progress)
    return summary


def _partial(out_dir: Path, d: Dive) -> Path:
    return out_dir / f".{d.video_id}.partial"


def _cut_video(src: Path, dives: Sequence[Dive], out_dir: Path, summary: CutSummary,
               short_side, jpeg_quality: int, progress: bool) -> None:
    """Cut ``dives`` out of the full video ``src`` in one pass."""
    import numpy as np
    from aqa.data.logs import progress_bar

    from aqa.extract.video import VideoDecodeError, image_files, iter_frames

    for d in dives:  # leftovers of an interrupted cut are redone from scratch
        shutil.rmtree(_partial(out_dir, d), ignore_errors=True)
        _partial(out_dir, d).mkdir()
    wanted = np.unique(np.concatenate([np.arange(d.first, d.end) for d in dives]))
    left = {d.video_id: d.n_frames for d in dives}
    link = src.is_dir() and short_side is None
    bar = progress_bar(total=len(wanted), desc=f"cut {src.name} ({len(dives)} dives)", unit="frame",
                       disable=not progress)
    last = -1
    try:
        if link:
            files = image_files(src)
            frames = ((i, files[i]) for i in wanted.tolist() if i < len(files))
        else:
            frames = iter_frames(src, wanted, backend="images" if src.is_dir() else "auto",
                                 short_side=short_side)
        for i, frame in frames:
            last = i
            for d in dives:
                if d.first <= i < d.end:
                    name = f"{i - d.first + 1:06d}"
                    if link:
                        _link_or_copy(frame, _partial(out_dir, d) / (name + frame.suffix.lower()))
                    else:
                        _write_jpeg(_partial(out_dir, d) / (name + ".jpg"), frame, jpeg_quality)
                    left[d.video_id] -= 1
                    if left[d.video_id] == 0:
                        os.replace(_partial(out_dir, d), out_dir / d.video_id)
                        summary.done.append(d.video_id)
            bar.update()
    except (VideoDecodeError, OSError) as e:
        reason = f"{src}: {e}"
    else:
        reason = None
    finally:
        bar.close()
    for d in dives:
        if left[d.video_id]:
            shutil.rmtree(_partial(out_dir, d), ignore_errors=True)
            summary.failed[d.video_id] = reason or (
                f"{src.name} ends before frame {d.end - 1}, the dive's last (frames "
                f"{d.first}..{d.end - 1}; the last frame read was {last})")


def _write_jpeg(path: Path, rgb, quality: int) -> None:
    import cv2

    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                       [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise OSError(f"{path}: OpenCV could not write the frame")


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dst)
