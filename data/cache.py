"""The HDF5 feature cache: the contract between extraction (stage 1) and the heads (stage 2).

Layout (see DESIGN.md)::

    /  attrs: format="aqa-cache", format_version, aqa_version, created_utc, config_json,
              configs_json (json: config_sha256 -> config, every config that wrote a video),
              weights (json: name -> sha256), untrained (bool: some video holds untrained features)
    /videos/<id>/   attrs: source_relpath, source_sha256, fps, n_frames, height, width,
                           config_sha256, untrained (bool), status="complete" (written last),
                           source_size, source_mtime_ns (the file's stat when extracted)
                           [view_of, view: an augmented view of video view_of, id <view_of>@<view>]
        frames/index, pose/{keypoints,boxes,box_scores,roles},
        features/<backbone>_<stream>/{whole,joints,clip_start,clip_end}, motion/camera
    /labels/        column table: video_id, score, action, difficulty, split, sub/<name>
    /_incomplete/<id>   a video being written; never read as data

Pose keypoints and boxes are pixels of the frames features were computed on, ``height x width``
(the extractor downscales to a 256-pixel short side by default); ``source_height``/``source_width``,
when present, are the decoded video's size (x_source = x * source_width / width). ``source_relpath``
is the video's path relative to the folder it was found in (its file name when given directly).
Frame indices (``frames/index``, ``clip_start``, ``clip_end``) are integers, also when loaded.
Augmented views (:mod:`aqa.data.views`) are videos with ``view_of``/``view`` attributes and the
same arrays; :meth:`CacheReader.video_ids` and the labels list the source videos only.

Crash safety: a video's arrays are written under ``/_incomplete/<id>`` and the group is moved to
``/videos/<id>`` only when every array is in; the file is opened only for the duration of one
commit and flushed before it is closed, so a writer killed while it computes leaves the file as it
was after the last complete video. A leftover ``/_incomplete`` group is reported by :func:`verify`
and removed by the next writer. One writer per file (an ``fcntl`` lock on ``<file>.lock``).

HDF5's own file lock also refuses to open a file for writing while another process has it open
(and to read it while a commit is in progress): every open retries with backoff for up to
:data:`LOCK_TIMEOUT` seconds (a writer's for :data:`WRITE_LOCK_TIMEOUT`, so that a long `verify`
does not cost a video), then raises :class:`CacheLockedError` ("locked by another process");
:func:`verify` reports such a file as busy, not broken.

Provenance: root ``config_json`` is the config of the last writer that committed a video (or
the first writer of a new file), ``configs_json`` maps the
``config_sha256`` of every config that ever committed a video to that config, so nothing is lost
when a file is re-used with another config (the resume rule redoes videos whose hash differs).
:func:`verify` reports, as a problem, complete videos whose ``config_sha256`` is not the root
config's hash (nor one of a merged file's configs): the root provenance would not describe them.
A writer opened without a config (e.g. to add labels) keeps the file's config.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import hashlib
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import h5py
import numpy as np

from .labels import BASE_COLUMNS, LabelRow

FORMAT = "aqa-cache"
FORMAT_VERSION = 1
REQUIRED_VIDEO_ATTRS = ("fps", "n_frames", "height", "width", "config_sha256", "status")
REQUIRED_VIDEO_ARRAYS = ("frames/index", "pose/keypoints", "pose/boxes", "pose/box_scores",
                         "pose/roles")
_STR = h5py.string_dtype("utf-8")
#: seconds an open waits for another process's HDF5 file lock before giving up
LOCK_TIMEOUT = 5.0
#: the same for a writer's opens: a reader such as `aqa-data verify` may hold a large cache for
#: minutes, and giving up would throw away a video's computed features
WRITE_LOCK_TIMEOUT = 600.0


class CacheError(RuntimeError):
    """A cache that cannot be used as asked (wrong format, locked, inconsistent shapes)."""


class CacheLockedError(CacheError):
    """The file is held open by another process (HDF5 file lock); retry later."""


def aqa_version() -> str:
    try:
        from importlib.metadata import version
        return version("aqa-pipeline")
    except Exception:  # pragma: no cover - running from a source tree without install
        return "0+unknown"


def config_hash(config: Mapping) -> str:
    """sha256 of the canonical JSON of an extraction config: the key of the resume rule."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _dataset_kwargs(arr: np.ndarray) -> dict:
    if arr.ndim == 0 or arr.size == 0:
        return {}
    return dict(chunks=True, compression="gzip", compression_opts=4, shuffle=True,
                fletcher32=True)


@contextlib.contextmanager
def _writer_lock(path: Path):
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CacheError(f"{path} is being written by another process (lock {lock_path}); "
                             "use one writer per file, or --shard K/N with one file per shard") from None
        yield
    finally:
        os.close(fd)


def _is_lock_error(e: OSError) -> bool:
    return e.errno in (errno.EAGAIN, errno.EWOULDBLOCK) or "unable to lock" in str(e)


def _open_h5(path: Path, mode: str) -> h5py.File:
    """``h5py.File(path, mode)``, retrying with backoff while another process holds its lock
    (:data:`LOCK_TIMEOUT` for reads, :data:`WRITE_LOCK_TIMEOUT` for writes, saying so on stderr
    once the read timeout has passed)."""
    timeout = LOCK_TIMEOUT if mode == "r" else max(LOCK_TIMEOUT, WRITE_LOCK_TIMEOUT)
    start, delay, told = time.monotonic(), 0.05, False
    deadline = start + timeout
    while True:
        try:
            return h5py.File(path, mode)
        except OSError as e:
            if not _is_lock_error(e):
                raise
            if not told and time.monotonic() - start > LOCK_TIMEOUT:
                print(f"{path}: waiting up to {timeout:g} s for another process to close it",
                      file=sys.stderr, flush=True)
                told = True
            left = deadline - time.monotonic()
            if left <= 0:
                raise CacheLockedError(
                    f"{path}: locked by another process (an HDF5 reader or writer has it open); "
                    f"still locked after {timeout:g} s: close it or wait, then retry") from None
            time.sleep(min(delay, left))
            delay = min(2 * delay, 1.0)


def _open_checked(path: Path, mode: str) -> h5py.File:
    try:
        f = _open_h5(path, mode)
    except OSError as e:
        raise CacheError(f"{path}: not a readable HDF5 file ({e})") from None
    fmt = f.attrs.get("format")
    if fmt is not None and fmt != FORMAT:
        f.close()
        raise CacheError(f"{path}: format attribute is {fmt!r}, expected {FORMAT!r}")
    return f


class CacheWriter:
    """Writes videos into a cache, one atomic commit each, and the labels table.

    ``config`` is the resolved extraction config (stored as JSON; its hash is stored per video and
    drives the resume rule; ``None`` keeps the file's config, e.g. to add labels), ``weights`` maps
    checkpoint names to sha256, ``untrained`` marks features from random weights. Both reach the
    file with the first video this writer commits: each video carries its own ``untrained`` mark,
    and the root one is true while any video in the file holds untrained features (a trained
    re-extraction of them clears it; a run that commits nothing changes nothing). Root ``weights``
    is the union of the checkpoints of every writer that committed a video.
    """

    def __init__(self, path: str | os.PathLike, config: Mapping | None = None,
                 weights: Mapping[str, str] | None = None, untrained: bool = False):
        self.path = Path(path)
        self._keep_config = config is None
        self.config = dict(config or {})
        self.config_sha256 = config_hash(self.config)
        self.weights = dict(weights or {})
        self.untrained = bool(untrained)
        self._untrained_ids: set[str] = set()  # videos in the file that hold untrained features
        self._lock = None

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "CacheWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _writer_lock(self.path)
        self._lock.__enter__()
        try:
            with self._file() as f:
                self._init_root(f)
                if "_incomplete" in f:  # leftovers of an interrupted writer: redone by the caller
                    del f["_incomplete"]
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            self._lock.__exit__(*exc)
            self._lock = None

    @contextlib.contextmanager
    def _file(self):
        f = _open_checked(self.path, "a")
        try:
            yield f
            f.flush()
        finally:
            f.close()

    def _init_root(self, f: h5py.File) -> None:
        a = f.attrs
        if "format" not in a:
            a["format"] = FORMAT
            a["format_version"] = FORMAT_VERSION
            a["created_utc"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            a["weights"] = "{}"
            a["untrained"] = False
        elif int(a["format_version"]) > FORMAT_VERSION:
            raise CacheError(f"{self.path}: format_version {a['format_version']} is newer than this "
                             f"aqa-pipeline ({FORMAT_VERSION}); upgrade aqa-pipeline")
        a["aqa_version"] = aqa_version()
        if self._keep_config and "config_json" in a:
            self.config = json.loads(a["config_json"])
            self.config_sha256 = config_hash(self.config)
        if "config_json" not in a:
            a["config_json"] = self._config_json()
        # an existing file's root provenance changes only when a video of this writer is committed
        # (write_video): a run that commits nothing leaves the file describing what it holds
        self._untrained_ids = _untrained_videos(f)
        f.require_group("videos")

    def _config_json(self) -> str:
        return json.dumps(self.config, sort_keys=True, default=str)

    # -- videos ----------------------------------------------------------------------------
    def complete_ids(self) -> set[str]:
        """Ids of complete videos whose config hash matches this writer's config."""
        with _open_checked(self.path, "r") as f:
            vids = f.get("videos", {})
            return {k for k, g in vids.items()
                    if g.attrs.get("status") == "complete"
                    and g.attrs.get("config_sha256") == self.config_sha256}

    def is_complete(self, video_id: str) -> bool:
        return video_id in self.complete_ids()

    def source_records(self) -> dict[str, dict]:
        """video id -> its ``source_sha256``, ``source_size``, ``source_mtime_ns`` and, for a
        view, ``view_of`` (those it has), for the complete videos and views of this writer's
        config: what a re-run compares the files with, to redo a video whose file changed since
        (each entry was made from the file as it was then)."""
        keys = ("source_sha256", "source_size", "source_mtime_ns", "view_of")
        with _open_checked(self.path, "r") as f:
            return {k: {a: g.attrs[a] for a in keys if a in g.attrs}
                    for k, g in f.get("videos", {}).items()
                    if g.attrs.get("status") == "complete"
                    and g.attrs.get("config_sha256") == self.config_sha256}

    def views_by_source(self) -> dict[str, list[str]]:
        """Source id -> ids of its views in the file (by their ``view_of`` attribute, under any
        config): what a changed source file makes stale."""
        out: dict[str, list[str]] = {}
        with _open_checked(self.path, "r") as f:
            for k, g in sorted(f.get("videos", {}).items()):
                if "view_of" in g.attrs:
                    out.setdefault(str(g.attrs["view_of"]), []).append(k)
        return out

    def remove_videos(self, video_ids: Iterable[str]) -> None:
        """Delete ``/videos/<id>`` of each of ``video_ids`` that is there (a video and its views
        made from a file that has changed since)."""
        with self._file() as f:
            for vid in video_ids:
                if f"videos/{vid}" in f:
                    del f[f"videos/{vid}"]

    def update_attrs(self, updates: Mapping[str, Mapping]) -> None:
        """Set, for each video id of ``updates``, its attrs on the committed ``/videos/<id>`` (its
        arrays untouched), in one opening of the file: a re-run records the new stat of files
        that were touched but whose bytes are the same."""
        with self._file() as f:
            for vid, attrs in updates.items():
                g = f.get(f"videos/{vid}")
                if g is None:
                    raise KeyError(f"{self.path}: no video {vid!r}")
                for key, value in attrs.items():
                    g.attrs[key] = value

    def committed(self, video_id: str) -> tuple[dict, dict] | None:
        """(attrs, :data:`REQUIRED_VIDEO_ARRAYS`) of ``video_id`` if it is complete under this
        writer's config, else None: a run adding views to a finished video reuses its frame
        indices and selected poses instead of estimating them again."""
        with _open_checked(self.path, "r") as f:
            g = f.get(f"videos/{video_id}")
            if (g is None or g.attrs.get("status") != "complete"
                    or g.attrs.get("config_sha256") != self.config_sha256):
                return None
            return dict(g.attrs), {k: g[k][()] for k in REQUIRED_VIDEO_ARRAYS}

    def write_video(self, video_id: str, attrs: Mapping, arrays: Mapping[str, np.ndarray]) -> None:
        """Commit one video: write under /_incomplete/<id>, then move to /videos/<id>.

        ``arrays`` maps relative paths (``"features/kin_pose/whole"``) to numpy arrays. An
        existing /videos/<id> (e.g. from another config) is replaced only once the new one is
        fully written.
        """
        _check_id(video_id)
        missing = [k for k in REQUIRED_VIDEO_ARRAYS if k not in arrays]
        if missing:
            raise CacheError(f"video {video_id!r}: missing required arrays {missing}")
        with self._file() as f:
            tmp = f"_incomplete/{video_id}"
            if tmp in f:
                del f[tmp]
            g = f.create_group(tmp)
            for key, value in attrs.items():
                g.attrs[key] = value
            g.attrs["config_sha256"] = self.config_sha256
            g.attrs["untrained"] = self.untrained
            for rel, arr in arrays.items():
                arr = np.asarray(arr)
                g.create_dataset(rel, data=arr, **_dataset_kwargs(arr))
            f.flush()
            final = f"videos/{video_id}"
            if final in f:
                del f[final]
            configs = json.loads(f.attrs.get("configs_json", "{}"))
            if self.config_sha256 not in configs:
                configs[self.config_sha256] = self.config
                f.attrs["configs_json"] = json.dumps(configs, sort_keys=True, default=str)
            if f.attrs.get("config_json") != (cj := self._config_json()):
                f.attrs["config_json"] = cj
            weights = json.loads(f.attrs.get("weights", "{}"))
            if any(weights.get(k) != v for k, v in self.weights.items()):
                f.attrs["weights"] = json.dumps({**weights, **self.weights}, sort_keys=True)
            (self._untrained_ids.add if self.untrained else self._untrained_ids.discard)(video_id)
            f.attrs["untrained"] = bool(self._untrained_ids)
            f.move(tmp, final)
            f[final].attrs["status"] = "complete"

    # -- labels ----------------------------------------------------------------------------
    def write_labels(self, rows: Sequence[LabelRow]) -> None:
        """Replace the /labels table with ``rows`` (see :mod:`aqa.data.labels`)."""
        with self._file() as f:
            _write_labels(f, rows)


def _untrained_videos(f: h5py.File) -> set[str]:
    """Ids of the videos in ``f`` that hold untrained features: by each video's ``untrained`` mark;
    a video written before those marks existed counts as untrained when the root mark is set."""
    root = bool(f.attrs.get("untrained", False))
    return {vid for vid, g in f.get("videos", {}).items()
            if bool(g.attrs.get("untrained", root))}


def _check_id(video_id: str) -> None:
    if not video_id or "/" in video_id or video_id.startswith("."):
        raise CacheError(f"invalid video id {video_id!r} (no '/' and not empty)")


def _write_labels(f: h5py.File, rows: Sequence[LabelRow]) -> None:
    if "labels" in f:
        del f["labels"]
    g = f.create_group("labels")
    g.create_dataset("video_id", data=np.array([r.video_id for r in rows], dtype=object), dtype=_STR)
    g.create_dataset("score", data=np.array([r.score for r in rows], dtype=np.float64))
    g.create_dataset("action", data=np.array([r.action for r in rows], dtype=object), dtype=_STR)
    g.create_dataset("difficulty", data=np.array([r.difficulty for r in rows], dtype=np.float64))
    g.create_dataset("split", data=np.array([r.split for r in rows], dtype=object), dtype=_STR)
    subs: list[str] = []
    for r in rows:
        subs += [k for k in r.sub_scores if k not in subs]
    sg = g.create_group("sub")
    for k in subs:
        sg.create_dataset(k, data=np.array([r.sub_scores.get(k, math.nan) for r in rows],
                                           dtype=np.float64))


def _read_labels(f: h5py.File) -> list[LabelRow]:
    if "labels" not in f:
        return []
    g = f["labels"]
    ids = [s.decode() if isinstance(s, bytes) else s for s in g["video_id"][()]]
    dec = lambda ds: [s.decode() if isinstance(s, bytes) else str(s) for s in ds[()]]  # noqa: E731
    actions, splits = dec(g["action"]), dec(g["split"])
    score, diff = g["score"][()], g["difficulty"][()]
    subs = {k: g["sub"][k][()] for k in g.get("sub", {})}
    return [LabelRow(video_id=v, score=float(score[i]), action=actions[i],
                     difficulty=float(diff[i]), split=splits[i],
                     sub_scores={k: float(a[i]) for k, a in subs.items()})
            for i, v in enumerate(ids)]


class CacheReader:
    """Read-only access to a cache: ids, feature families, stacked arrays, labels, provenance.

    Reading a video's features or poses refuses, with a :class:`CacheError` naming the video,
    what :func:`verify` calls broken: a video of another config than the file's, a corrupted
    array, features with NaN/inf. Training never runs on them silently."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise CacheError(f"{self.path}: no such cache file")
        self._f = _open_checked(self.path, "r")
        self._allowed: set[str] | None = None  # hashes of the root config(s), read on first use
        self._views: dict[str, list[str]] | None = None  # views(), read on first use
        if self._f.attrs.get("format") != FORMAT:
            self._f.close()
            raise CacheError(f"{self.path}: not an aqa cache (no format={FORMAT!r} attribute)")

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "CacheReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def video_ids(self, views: bool = False) -> list[str]:
        """Ids of the complete videos; augmented views (:mod:`aqa.data.views`) only with ``views``."""
        vids = self._f.get("videos", {})
        return sorted(k for k, g in vids.items() if g.attrs.get("status") == "complete"
                      and (views or "view_of" not in g.attrs))

    def views(self) -> dict[str, list[str]]:
        """Canonical view name -> sorted ids of the source videos that have that view (read once
        per reader: the file cannot change while it is open for reading). A view whose source is
        not in the cache is not listed: it is no training row of any video."""
        if self._views is None:
            out: dict[str, list[str]] = {}
            sources = set(self.video_ids())
            for g in self._f.get("videos", {}).values():
                if (g.attrs.get("status") == "complete" and "view_of" in g.attrs
                        and str(g.attrs["view_of"]) in sources):
                    out.setdefault(str(g.attrs["view"]), []).append(str(g.attrs["view_of"]))
            self._views = {name: sorted(ids) for name, ids in sorted(out.items())}
        return {name: list(ids) for name, ids in self._views.items()}

    def view_ids(self, ids: Iterable[str], view: str) -> list[str]:
        """The cache ids of view ``view`` (a canonical name) of each of ``ids``, in order; a source
        without that view is a :class:`CacheError` naming how many lack it and how to add it."""
        from .views import view_id
        ids = list(ids)
        views = self.views()
        have = set(views.get(view, ()))
        missing = [v for v in ids if v not in have]
        if missing:
            raise CacheError(
                f"{self.path}: {len(missing)} of {len(ids)} videos have no {view!r} view (e.g. "
                f"{', '.join(missing[:3])}); views in the cache: "
                f"{ {k: len(v) for k, v in views.items()} or 'none'}. Add it by re-running "
                f"the extraction with --view {view}")
        return [view_id(v, view) for v in ids]

    def group(self, video_id: str) -> h5py.Group:
        g = self._f.get(f"videos/{video_id}")
        if g is None or g.attrs.get("status") != "complete":
            raise KeyError(f"{self.path}: no complete video {video_id!r}")
        return g

    def families(self) -> list[str]:
        """Feature families present in every complete video (sorted)."""
        common = None
        for vid in self.video_ids():
            fams = set(self._f[f"videos/{vid}"].get("features", {}).keys())
            common = fams if common is None else common & fams
        return sorted(common or ())

    def _ids(self, ids: Iterable[str] | None) -> list[str]:
        return self.video_ids() if ids is None else list(ids)

    def _data_group(self, video_id: str) -> h5py.Group:
        """:meth:`group`, refusing a video extracted with another config than the file's root
        config (what :func:`verify` reports as a provenance problem): its features would be
        silently mixed with features of a different extraction."""
        g = self.group(video_id)
        if self._allowed is None:
            self._allowed = _root_config_hashes(self._f.attrs)
        h = g.attrs.get("config_sha256")
        if h is not None and h not in self._allowed:
            raise CacheError(
                f"{self.path}: video {video_id!r} was extracted with config {str(h)[:12]}, not the "
                "file's root config; its features are not comparable with the others. Re-run the "
                "extraction with one config to redo it (`aqa-data verify` lists every such video)")
        return g

    def _read(self, g: h5py.Group, rel: str, video_id: str) -> np.ndarray:
        """``g[rel][()]``, a corrupted chunk (fletcher32) a :class:`CacheError` naming the video."""
        try:
            return g[rel][()]
        except (OSError, RuntimeError) as e:
            raise CacheError(f"{self.path}: videos/{video_id}/{rel} is unreadable (corrupted: "
                             f"{e}); re-extract that video (`aqa-data verify` lists every damaged "
                             "array)") from None

    def _stack(self, rel: str, ids: list[str]) -> np.ndarray:
        arrays, shapes = [], {}
        check_finite = rel.startswith("features/") and rel.rsplit("/", 1)[-1] in ("whole", "joints")
        for vid in ids:
            g = self._data_group(vid)
            if rel not in g:
                raise KeyError(f"{self.path}: video {vid!r} has no {rel!r}")
            a = self._read(g, rel, vid)
            if check_finite and not np.isfinite(a).all():
                raise CacheError(f"{self.path}: videos/{vid}/{rel} contains NaN/inf; re-extract "
                                 "that video")
            arrays.append(a)
            shapes.setdefault(a.shape, []).append(vid)
        if len(shapes) > 1:
            desc = "; ".join(f"{s}: {v[:3]}{'...' if len(v) > 3 else ''}" for s, v in shapes.items())
            raise ValueError(f"{rel}: videos have different shapes ({desc}); re-extract with one "
                             "sampling protocol or select videos of one shape")
        if not arrays:
            raise ValueError("no videos selected")
        out = np.stack(arrays)
        return out if out.dtype.kind in "iub" else out.astype(np.float32, copy=False)  # indices stay int

    def load(self, family: str, ids: Iterable[str] | None = None, part: str = "whole") -> np.ndarray:
        """Stack ``features/<family>/<part>`` over ``ids``: (n,S,D) for whole, (n,S,J,D) for joints.

        ``family`` may join several families with ``+`` (``"kin_pose+hof_flow"``): their
        features are concatenated along the last axis (they must share S and J).
        """
        if part not in ("whole", "joints", "clip_start", "clip_end"):
            raise ValueError(f"part must be whole|joints|clip_start|clip_end, not {part!r}")
        if "+" in family:
            parts = [self.load(f, ids, part) for f in family.split("+")]
            if part in ("clip_start", "clip_end"):
                return parts[0]
            if len({p.shape[:-1] for p in parts}) > 1:
                raise ValueError(f"{family}: families differ in steps/joints: "
                                 f"{[p.shape for p in parts]}")
            return np.concatenate(parts, axis=-1)
        ids = self._ids(ids)
        if ids and family not in self.group(ids[0]).get("features", {}):
            raise KeyError(f"{self.path}: no feature family {family!r}; has {self.families()}")
        return self._stack(f"features/{family}/{part}", ids)

    def load_camera(self, ids: Iterable[str] | None = None) -> np.ndarray:
        return self._stack("motion/camera", self._ids(ids))

    def pose(self, video_id: str) -> dict[str, np.ndarray]:
        g = self._data_group(video_id)
        return {k: self._read(g, f"pose/{k}", video_id) for k in g["pose"]}

    def video_attrs(self, video_id: str) -> dict:
        return dict(self.group(video_id).attrs)

    def video_config(self, video_id: str) -> dict:
        """The extraction config that wrote ``video_id`` (``configs_json`` by its config hash;
        the root config when that hash is not recorded)."""
        known = json.loads(self._f.attrs.get("configs_json", "{}"))
        return known.get(self.group(video_id).attrs.get("config_sha256"),
                         self.provenance()["config"])

    def labels(self) -> list[LabelRow]:
        return _read_labels(self._f)

    def provenance(self) -> dict:
        a = self._f.attrs
        return {"format": a.get("format"), "format_version": int(a.get("format_version", 0)),
                "aqa_version": a.get("aqa_version"), "created_utc": a.get("created_utc"),
                "config": json.loads(a.get("config_json", "{}")),
                "weights": json.loads(a.get("weights", "{}")),
                "untrained": bool(a.get("untrained", False))}


# --------------------------------------------------------------------------------------------
# verify
@dataclass
class VerifyReport:
    path: str
    format_version: int | None = None
    n_videos: int = 0          # complete source videos
    n_views: int = 0           # complete augmented views (see aqa.data.views)
    families: dict[str, dict[str, list]] = field(default_factory=dict)  # fam -> part -> shape
    n_labels: int = 0
    untrained: bool = False
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    busy: str = ""      # set when another process holds the file's lock (not a defect of the file)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.busy

    def as_dict(self) -> dict:
        return {"path": self.path, "ok": self.ok, "busy": self.busy,
                "format_version": self.format_version,
                "n_videos": self.n_videos, "n_views": self.n_views, "families": self.families,
                "n_labels": self.n_labels,
                "untrained": self.untrained, "problems": self.problems, "warnings": self.warnings}


def _read_all(ds: h5py.Dataset) -> np.ndarray:
    """Read a dataset fully; fletcher32 makes a corrupted chunk raise OSError here."""
    return ds[()]


def verify(path: str | os.PathLike, progress: bool = False) -> VerifyReport:
    """Check a cache completely: format, attributes, every array (checksums), shapes, labels,
    and that the root config describes every video. A file locked by another process is reported
    as ``busy`` (after :data:`LOCK_TIMEOUT` seconds of retries), not as a problem."""
    path = Path(path)
    rep = VerifyReport(str(path))
    try:
        f = _open_h5(path, "r")
    except CacheLockedError as e:
        rep.busy = str(e)
        return rep
    except OSError as e:
        rep.problems.append(f"cannot open as HDF5: {e}")
        return rep
    with f:
        a = f.attrs
        if a.get("format") != FORMAT:
            rep.problems.append(f"format attribute is {a.get('format')!r}, expected {FORMAT!r}")
            return rep
        rep.format_version = int(a.get("format_version", -1))
        if rep.format_version != FORMAT_VERSION:
            rep.problems.append(f"format_version {rep.format_version} not supported ({FORMAT_VERSION})")
        for k in ("aqa_version", "created_utc", "config_json", "weights", "untrained"):
            if k not in a:
                rep.problems.append(f"root attribute {k!r} missing")
        rep.untrained = bool(a.get("untrained", False))
        for k in ("config_json", "weights"):
            try:
                json.loads(a.get(k, "{}"))
            except ValueError:
                rep.problems.append(f"root attribute {k!r} is not valid JSON")
        if "_incomplete" in f and len(f["_incomplete"]):
            rep.warnings.append(f"{len(f['_incomplete'])} interrupted video write(s) under "
                                f"/_incomplete ({', '.join(list(f['_incomplete'])[:5])}); "
                                "re-run the extraction to redo them")
        vids = f.get("videos", {})
        items = list(vids.items())
        if progress:
            from aqa.data.logs import progress_bar
            items = progress_bar(items, desc="verify", unit="video")
        for vid, g in items:
            _verify_video(vid, g, rep)
        complete = {v: g for v, g in vids.items() if g.attrs.get("status") == "complete"}
        views = {v: g for v, g in complete.items() if "view_of" in g.attrs}
        rep.n_videos, rep.n_views = len(complete) - len(views), len(views)
        _verify_views(views, complete, rep)
        _verify_configs(a, vids, rep)
        marked = sorted(v for v, g in vids.items() if g.attrs.get("untrained", False))
        if marked and not rep.untrained:
            rep.problems.append(f"{len(marked)} video(s) hold untrained features (e.g. {marked[:3]}) "
                                "but the root 'untrained' mark is false")
        if "labels" in f:
            try:
                rows = _read_labels(f)
                rep.n_labels = len(rows)
                ids = {r.video_id for r in rows}
                unl = [v for v in vids if v not in ids and "view_of" not in vids[v].attrs]
                if unl and rows:
                    rep.warnings.append(f"{len(unl)} video(s) without a label row, e.g. {unl[:3]}")
            except Exception as e:  # noqa: BLE001 - report, don't crash
                rep.problems.append(f"labels table unreadable: {e}")
    return rep


def _root_config_hashes(attrs) -> set[str]:
    """Hashes of the config(s) the root ``config_json`` stands for (several in a merged file)."""
    try:
        root = json.loads(attrs.get("config_json", "{}"))
    except ValueError:
        return set()
    if isinstance(root, dict) and set(root) == {"merged_configs"}:
        return {config_hash(c) for c in root["merged_configs"]}
    return {config_hash(root)}


def _verify_configs(attrs, vids, rep: VerifyReport) -> None:
    """A complete video extracted with another config than the root's is a provenance problem."""
    allowed = _root_config_hashes(attrs)
    other: dict[str, list[str]] = {}
    for vid, g in vids.items():
        h = g.attrs.get("config_sha256")
        if g.attrs.get("status") == "complete" and h is not None and h not in allowed:
            other.setdefault(str(h), []).append(vid)
    if not other:
        return
    try:
        known = json.loads(attrs.get("configs_json", "{}"))
    except ValueError:
        known = {}
    for h, ids in sorted(other.items()):
        cfg = json.dumps(known[h], sort_keys=True, default=str) if h in known else "not recorded"
        cfg = cfg if len(cfg) <= 240 else cfg[:237] + "..."
        rep.problems.append(
            f"{len(ids)} video(s) ({', '.join(sorted(ids)[:3])}{', ...' if len(ids) > 3 else ''}) "
            f"were extracted with config {h[:12]} ({cfg}), not the root config_json: re-run the "
            "extraction with one config to redo them, or extract into a separate file")


def _verify_views(views: Mapping, complete: Mapping, rep: VerifyReport) -> None:
    """Each view names a view by its canonical name and a complete source video, under the id it
    implies, and was made from the same file and config as that source."""
    from .views import parse_view, view_id

    for vid, g in sorted(views.items()):
        src, name = str(g.attrs["view_of"]), str(g.attrs.get("view", ""))
        try:
            canonical = parse_view(name).name
        except ValueError as e:
            rep.problems.append(f"videos/{vid}: view attribute {name!r} is not a view ({e})")
            continue
        if name != canonical:
            rep.problems.append(f"videos/{vid}: view attribute {name!r} is not the canonical "
                                f"name {canonical!r} (readers look views up by it)")
        elif vid != view_id(src, canonical):
            rep.problems.append(f"videos/{vid}: a view {canonical!r} of {src!r} must be "
                                f"stored as {view_id(src, canonical)!r}")
        elif src not in complete or "view_of" in complete[src].attrs:
            rep.warnings.append(f"videos/{vid}: its source video {src!r} is not in the cache")
        elif (why := view_mismatch(g.attrs, complete[src].attrs)):
            rep.problems.append(f"videos/{vid}: {why} than its source {src!r}: re-run the "
                                f"extraction with --view {canonical} to redo it")


def view_mismatch(view_attrs: Mapping, source_attrs: Mapping) -> str | None:
    """Why a view cannot stand beside its source (made from another version of the file, or
    with another config), else None."""
    if view_attrs.get("source_sha256") != source_attrs.get("source_sha256"):
        return "made from another version of the file"
    if view_attrs.get("config_sha256") != source_attrs.get("config_sha256"):
        return "extracted with another config"
    return None


def _verify_video(vid: str, g: h5py.Group, rep: VerifyReport) -> None:
    where = f"videos/{vid}"
    for k in REQUIRED_VIDEO_ATTRS:
        if k not in g.attrs:
            rep.problems.append(f"{where}: attribute {k!r} missing")
    if g.attrs.get("status") != "complete":
        rep.problems.append(f"{where}: status is {g.attrs.get('status')!r}, not 'complete'")
    for k in REQUIRED_VIDEO_ARRAYS:
        if k not in g:
            rep.problems.append(f"{where}: array {k!r} missing")
    arrays: dict[str, np.ndarray] = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            try:
                arrays[name] = _read_all(obj)
            except (OSError, RuntimeError) as e:
                rep.problems.append(f"{where}/{name}: unreadable (checksum/corruption): {e}")
    g.visititems(visit)
    kp = arrays.get("pose/keypoints")
    if kp is not None and (kp.ndim != 4 or kp.shape[2:] != (17, 3)):
        rep.problems.append(f"{where}: pose/keypoints shape {kp.shape}, expected (F,P,17,3)")
    fi = arrays.get("frames/index")
    if kp is not None and fi is not None and kp.shape[0] != fi.shape[0]:
        rep.problems.append(f"{where}: pose has {kp.shape[0]} frames, frames/index {fi.shape[0]}")
    for fam in g.get("features", {}):
        base = f"features/{fam}"
        whole, joints = arrays.get(f"{base}/whole"), arrays.get(f"{base}/joints")
        start = arrays.get(f"{base}/clip_start")
        shapes = rep.families.setdefault(fam, {})
        if whole is None and joints is None:
            rep.problems.append(f"{where}/{base}: neither whole nor joints")
            continue
        for part, arr, nd in (("whole", whole, 2), ("joints", joints, 3)):
            if arr is None:
                continue
            if arr.ndim != nd:
                rep.problems.append(f"{where}/{base}/{part}: {arr.ndim}-d, expected {nd}-d")
            elif not np.isfinite(arr).all():
                rep.problems.append(f"{where}/{base}/{part}: contains NaN/inf")
            shape = ["S", *arr.shape[1:]]
            if shapes.setdefault(part, shape) != shape:
                rep.problems.append(f"{where}/{base}/{part}: shape {arr.shape} differs from other "
                                    f"videos ({shapes[part]})")
        steps = {a.shape[0] for a in (whole, joints, start) if a is not None}
        if len(steps) > 1:
            rep.problems.append(f"{where}/{base}: whole/joints/clip_start disagree on S: {steps}")


# --------------------------------------------------------------------------------------------
# merge
def _same_row(a: LabelRow, b: LabelRow) -> bool:
    """Equal label rows, NaN equal to NaN (shards each carry the whole labels table)."""
    da, db = a.as_dict(), b.as_dict()
    if da.keys() != db.keys():
        return False
    return all(x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x)
                          and math.isnan(y)) for x, y in ((da[k], db[k]) for k in da))


def merge(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, progress: bool = True) -> dict:
    """Join shard caches into one: every complete video, the union of labels and weights.

    A video id present in two inputs is an error unless both copies have the same
    ``source_sha256`` and ``config_sha256`` (and are both the same view, or both no view; then the
    first is kept). A view that does not match its source from another input (another version
    of the file, another config) is dropped with a warning. Returns a summary dict.
    The merge is written to a hidden temporary file next to ``out`` and renamed to ``out`` only
    when complete; a merge that fails (or is interrupted) leaves no ``out`` behind.
    """
    out = Path(out)
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise CacheError("merge: no input caches given")
    out.parent.mkdir(parents=True, exist_ok=True)
    with _writer_lock(out):
        if out.exists():
            raise CacheError(f"merge: output {out} already exists; choose a new file")
        tmp = out.with_name(f".{out.name}.merging-{os.getpid()}")
        try:
            summary = _merge_into(inputs, tmp, progress)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
            tmp.with_name(tmp.name + ".lock").unlink(missing_ok=True)  # CacheWriter's lock of tmp
    return {"out": str(out), **summary}


def _merge_into(inputs: list[Path], out: Path, progress: bool) -> dict:
    """The body of :func:`merge`: write the merged cache to the new file ``out``."""
    from aqa.data.logs import progress_bar

    for p in inputs:
        rep = verify(p)
        if not rep.ok:
            raise CacheError(f"merge: {p}: {rep.busy}" if rep.busy else
                             f"merge: {p} is not a valid cache: {rep.problems[:3]}")
    configs, weights, untrained, labels, history = set(), {}, False, {}, {}
    with _open_checked(inputs[0], "r") as f0:
        config = json.loads(f0.attrs["config_json"])
    n_copied, n_dupes = 0, 0
    with CacheWriter(out, config=config) as w, w._file() as fo:
        seen: dict[str, tuple] = {}
        for p in inputs:
            with _open_checked(p, "r") as fi:
                configs.add(fi.attrs["config_json"])
                history.update(json.loads(fi.attrs.get("configs_json", "{}")))
                weights.update(json.loads(fi.attrs["weights"]))
                untrained |= bool(fi.attrs["untrained"])
                for r in _read_labels(fi):
                    prev = labels.get(r.video_id)
                    if prev is not None and not _same_row(prev, r):
                        raise CacheError(f"merge: conflicting labels for {r.video_id!r} in {p}")
                    labels[r.video_id] = r
                for vid in progress_bar(sorted(fi.get("videos", {})), desc=f"merge {p.name}",
                                        unit="video", disable=not progress):
                    g = fi[f"videos/{vid}"]
                    key = tuple(g.attrs.get(k) for k in ("source_sha256", "config_sha256",
                                                         "view_of", "view"))
                    if vid in seen or vid in fo["videos"]:
                        if seen.get(vid) == key:
                            n_dupes += 1
                            continue
                        raise CacheError(f"merge: video {vid!r} appears in two inputs with "
                                         f"different content/config (second: {p})")
                    seen[vid] = key
                    fi.copy(g, fo["videos"], name=vid)
                    n_copied += 1
        stale = _drop_stale_views(fo)
        fo.attrs["weights"] = json.dumps(weights, sort_keys=True)
        fo.attrs["untrained"] = untrained
        fo.attrs["configs_json"] = json.dumps(history, sort_keys=True, default=str)
        if len(configs) > 1:
            fo.attrs["config_json"] = json.dumps(
                {"merged_configs": [json.loads(c) for c in sorted(configs)]}, sort_keys=True)
        if labels:
            _write_labels(fo, list(labels.values()))
    return {"inputs": len(inputs), "videos": n_copied - len(stale), "duplicates_skipped": n_dupes,
            "stale_views_dropped": len(stale), "labels": len(labels), "configs": len(configs),
            "untrained": untrained}


def _drop_stale_views(f: h5py.File) -> list[str]:
    """Delete the views of a merged file that came from another input than their source and do
    not match it (:func:`view_mismatch`: one part holds a view of the old file, another the
    re-extracted source); each is warned about. Returns their ids."""
    vids = f["videos"]
    stale = []
    for vid in sorted(vids):
        a = vids[vid].attrs
        src = str(a.get("view_of", ""))
        if src and src in vids and (why := view_mismatch(a, vids[src].attrs)):
            warnings.warn(f"merge: dropped the view {vid!r}, {why} than its source {src!r} "
                          f"(re-run the extraction with --view {a.get('view')} to redo it)",
                          UserWarning, stacklevel=4)
            stale.append(vid)
    for vid in stale:
        del vids[vid]
    return stale


__all__ = ["FORMAT", "FORMAT_VERSION", "LOCK_TIMEOUT", "WRITE_LOCK_TIMEOUT", "CacheError", "CacheLockedError", "CacheWriter", "CacheReader", "VerifyReport",
           "verify", "merge", "config_hash", "BASE_COLUMNS"]
