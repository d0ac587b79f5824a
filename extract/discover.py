"""Input discovery: the videos and frame folders under the inputs, their ids and relative paths;
``--shard K/N``; and a source's stamp and sha256, by which a re-run sees that a file changed.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Iterable

from aqa.data.cache import safe_id

from .video import IMAGE_EXTENSIONS

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def _frame_count(dirnames, filenames) -> int:
    """Image files of a leaf folder (no sub-folders, no video files), else 0. Two or more make it a
    frame-folder video; a single image (a poster, a thumbnail) is no video."""

    exts = [os.path.splitext(f)[1].lower() for f in filenames]
    if dirnames or set(exts) & set(VIDEO_EXTENSIONS):
        return 0
    return sum(e in IMAGE_EXTENSIONS for e in exts)


def discover_videos(inputs: Iterable[str | os.PathLike], with_relpath: bool = False) -> list[tuple]:
    """(video_id, path) for every video named or found (recursively) under the inputs.

    A video is a file with a video extension or a leaf folder of two or more image frames (no
    sub-folders, no video files; the layout of several benchmark releases); an input folder that is
    itself such a leaf is one video. Leaf folders holding a single image are left out, with a warning
    that names them. The id is the path relative to its input folder (without a video file's
    extension), '/' replaced by '__'; a plain file's id is its stem, a frame folder named directly
    has its folder name. Duplicate ids are an error (rename, or pass folders apart).
    ``with_relpath``: (video_id, path, relpath) triples, relpath the path relative to its input
    folder (POSIX form), or the file or folder name of an input named directly.
    """
    found: list[tuple[str, Path, str]] = []
    single: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for root, dirnames, filenames in os.walk(p):
                d = Path(root)
                n_images = _frame_count(dirnames, filenames)
                if n_images == 1:
                    single.append(d)
                if n_images >= 2:
                    rel = d.relative_to(p)
                    found.append(("__".join(rel.parts), d, rel.as_posix()) if rel.parts
                                 else (p.name, d, p.name))
                    continue
                found += [("__".join(f.relative_to(p).with_suffix("").parts), f,
                           f.relative_to(p).as_posix())
                          for f in (d / n for n in filenames)
                          if f.suffix.lower() in VIDEO_EXTENSIONS and f.is_file()]
        elif p.is_file():
            found.append((p.stem, p, p.name))
        else:
            raise FileNotFoundError(f"no such video or folder: {p}")
    if single:
        warnings.warn(f"left out {len(single)} folder(s) holding a single image, not a frame "
                      f"sequence: {', '.join(str(d) for d in single[:5])}"
                      + (" ..." if len(single) > 5 else ""), UserWarning, stacklevel=2)
    ids: dict[str, tuple[Path, str]] = {}
    for vid, path, rel in found:
        if vid in ids and ids[vid][0] != path:
            raise ValueError(f"two videos map to the id {vid!r}: {ids[vid][0]} and {path}")
        ids[vid] = (path, rel)
    return sorted((v, p, r) if with_relpath else (v, p) for v, (p, r) in ids.items())


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """``"K/N"`` (K in 0..N-1) -> (K, N); ``"auto"`` reads torchrun's RANK/WORLD_SIZE or a Slurm
    array's SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT."""
    if spec is None:
        return None
    if spec == "auto":
        env = os.environ
        if "RANK" in env and "WORLD_SIZE" in env:
            k, n = int(env["RANK"]), int(env["WORLD_SIZE"])
        elif "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
            k = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", 0))
            n = int(env["SLURM_ARRAY_TASK_COUNT"])
        else:
            raise ValueError("--shard auto: neither RANK/WORLD_SIZE nor SLURM_ARRAY_TASK_* is set")
    else:
        try:
            k, n = (int(x) for x in spec.split("/"))
        except ValueError:
            raise ValueError(f"--shard must look like K/N (e.g. 0/4), got {spec!r}") from None
    if not (n >= 1 and 0 <= k < n):
        raise ValueError(f"--shard {k}/{n}: need N >= 1 and 0 <= K < N")
    return k, n


def shard_out_path(out: Path, shard: tuple[int, int] | None) -> Path:
    """feats.h5 -> feats.shard0-of-4.h5 for a sharded run (one writer per file)."""
    if shard is None or shard[1] == 1:
        return out
    return out.with_name(f"{out.stem}.shard{shard[0]}-of-{shard[1]}{out.suffix}")


def source_stamp(path: Path) -> tuple[int, int]:
    """(size in bytes, latest mtime in ns) of a video file, or of a frame folder's files and the
    folder itself (whose mtime moves when a frame is renamed, added or removed): a cheap sign that
    it changed since extraction (then :func:`file_sha256` decides)."""
    entries = [path, *path.rglob("*")] if path.is_dir() else [path]
    stats = [(e.is_file(), e.stat()) for e in entries]
    return (sum(s.st_size for is_file, s in stats if is_file),
            max(s.st_mtime_ns for _, s in stats))


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a video file, or of a frame folder's files (names and bytes, in name order)."""
    h = hashlib.sha256()
    files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(chunk), b""):
                h.update(block)
    return h.hexdigest()


def id_path_relpath(item, root) -> tuple[str, Path, str]:
    """(video_id, path[, relpath]) -> (video_id, path, relpath); see :func:`run_extraction_items`."""
    if len(item) not in (2, 3):
        raise ValueError(f"expected (video_id, path) or (video_id, path, relpath), got {item!r}")
    vid, path = safe_id(str(item[0])), Path(item[1])  # a file name that is not UTF-8: \xNN
    if len(item) == 3:
        return vid, path, str(item[2])
    if root is not None:
        try:
            return vid, path, path.resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:  # not under root
            pass
    return vid, path, path.name
