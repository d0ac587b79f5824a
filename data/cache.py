"""The HDF5 feature cache: the contract between extraction (stage 1) and the heads (stage 2).

Layout (see ``docs/architecture.md``)::

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

Crash safety: a video's arrays are first written (compressed, checksummed) into a small HDF5 file
of their own, in memory; the cache is then opened for one short commit that copies them under
``/_incomplete/<id>`` and moves the group to ``/videos/<id>``, so a writer killed while it
computes or compresses leaves the cache as it was after the last complete video. Before each
commit the free space must hold twice the staged video plus :data:`SPACE_MARGIN`, and the bytes
the commit will write are allocated on the file system before HDF5 opens the file (a full disk is
met there, not inside HDF5); otherwise the writer raises :class:`CacheFullError` (the cache
still holds every video committed before). The labels table is written under ``/_labels_new`` and swapped in.
A leftover ``/_incomplete`` group is reported by :func:`verify` and removed by the next writer; a
cache damaged anyway (a crash of the machine, a flipped byte) is rebuilt from what is still
readable by :func:`aqa.data.integrity.repair`. One writer per file: an ``fcntl`` lock on
``<real file>.lock``, the path with symlinks resolved, so two paths to one file share the lock.

Names: a video id or a string attribute that is not valid UTF-8 (a file name in another encoding,
which Python hands over with surrogate escapes) is stored as text with each bad byte written
``\\xNN`` (:func:`safe_id`); a string attribute keeps its original bytes in ``<name>_bytes``.

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

Length: the format's writer and reader, which must agree on every group, array and attribute,
kept together as the one contract between the stages; verify, merge and repair are in
:mod:`aqa.data.integrity`.
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
import shutil
import sys
import time
import warnings
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
#: bytes of free space a commit leaves beyond twice the staged video (HDF5 metadata, the labels)
SPACE_MARGIN = 1 << 20
#: seconds an open waits for another process's HDF5 file lock before giving up
LOCK_TIMEOUT = 5.0
#: the same for a writer's opens: a reader such as `aqa-data verify` may hold a large cache for
#: minutes, and giving up would throw away a video's computed features
WRITE_LOCK_TIMEOUT = 600.0


class CacheError(RuntimeError):
    """A cache that cannot be used as asked (wrong format, locked, inconsistent shapes)."""


class CacheLockedError(CacheError):
    """The file is held open by another process (HDF5 file lock); retry later."""


class CacheFullError(CacheError):
    """No room for the next commit on the cache's file system: every video committed before is
    kept; free space, then re-run the same command to resume."""


class CacheDamagedError(CacheError):
    """Part of the file's HDF5 structure cannot be read (a crash, a flipped byte): run
    ``aqa-data verify`` to see what, ``aqa-data repair`` to rebuild it from what is readable."""


#: what h5py raises on a damaged file: its own errors, and KeyError for an unreadable link
_H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError)


def _is_no_space(e: BaseException) -> bool:
    """Whether ``e`` is a write that failed for want of space (h5py raises OSError or
    RuntimeError, with the errno or only in the message)."""
    return getattr(e, "errno", None) == errno.ENOSPC or "No space left" in str(e)


def _full_error(path: Path, need: int | None = None) -> CacheFullError:
    free = shutil.disk_usage(path.parent).free
    what = f"{need / 2**20:.1f} MiB needed, " if need is not None else ""
    return CacheFullError(
        f"{path}: no space left on its file system ({what}{free / 2**20:.1f} MiB free); the run "
        "stopped, and the cache holds every video committed before: free space, then re-run the "
        "same command to resume")


def safe_id(name: str) -> str:
    """``name`` with every byte that is not UTF-8 (a surrogate escape of :func:`os.fsdecode`)
    written as ``\\xNN``: a video id or text that HDF5 can store, the same on every run."""
    try:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file name decodes to
        return name.encode("utf-8", "backslashreplace").decode("utf-8")


def _set_attr(attrs, key: str, value) -> None:
    """``attrs[key] = value``; text that is not UTF-8 is stored as :func:`safe_id` text, its
    original bytes (``os.fsencode``) as ``<key>_bytes``, so nothing is lost."""
    if isinstance(value, str) and (safe := safe_id(value)) != value:
        with contextlib.suppress(UnicodeEncodeError):
            attrs[f"{key}_bytes"] = np.void(value.encode("utf-8", "surrogateescape"))
        value = safe
    attrs[key] = value


def _members(f: h5py.File, name: str = "videos") -> dict[str, h5py.Group]:
    """The readable groups under ``/<name>`` (name -> group) whose ``status`` can be read: a
    member whose link, header or attributes are damaged is left out (:func:`verify` reports it,
    :func:`aqa.data.integrity.repair` drops it)."""
    try:
        parent = f.get(name)
        names = list(parent) if isinstance(parent, h5py.Group) else []
    except _H5_ERRORS:
        return {}
    out = {}
    for k in names:
        try:
            g = parent[k]
            if isinstance(g, h5py.Group):
                g.attrs.get("status")
                out[k] = g
        except _H5_ERRORS:
            continue
    return out


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


def _unreadable(g: h5py.Group) -> str:
    """Why the video group ``g`` cannot be used (a required array missing, an array that does not
    read back: fletcher32 checksum, damaged chunk index), or "" when every array reads."""
    try:
        missing = [k for k in REQUIRED_VIDEO_ARRAYS if k not in g]
        if missing:
            return f"array {missing[0]!r} missing"
        names: list[str] = []
        g.visit(lambda name: names.append(name) if isinstance(g[name], h5py.Dataset) else None)
    except _H5_ERRORS as e:
        return f"unreadable structure: {e}"
    for name in names:
        try:
            g[name][()]
        except _H5_ERRORS as e:
            return f"{name} unreadable: {e}"
    return ""


@contextlib.contextmanager
def _writer_lock(path: Path):
    """One writer per file: an exclusive ``fcntl`` lock on ``<real path>.lock`` (symlinks
    resolved, so the file reached by two paths has one lock)."""
    real = Path(os.path.realpath(path))
    lock_path = real.with_name(real.name + ".lock")
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
    try:
        fmt = f.attrs.get("format")
    except _H5_ERRORS as e:
        f.close()
        raise CacheDamagedError(f"{path}: the file's root is damaged ({e}); `aqa-data repair "
                                f"{path}` rebuilds it from what is readable") from None
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
        self._damage: dict[str, str] = {}  # video id -> why it is damaged ("" when it is not)
        self._lock = None

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "CacheWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _writer_lock(self.path)
        self._lock.__enter__()
        try:
            with self._file() as f:
                self._init_root(f)
                try:
                    if "_incomplete" in f:  # an interrupted writer's leftovers: redone by the caller
                        del f["_incomplete"]
                    _finish_labels_swap(f)
                except _H5_ERRORS as e:
                    raise CacheDamagedError(
                        f"{self.path}: the leftovers of an interrupted write cannot be removed "
                        f"({e}): the file is damaged; `aqa-data repair {self.path}` rebuilds it "
                        "from every readable video, then re-run to redo the rest") from None
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            self._lock.__exit__(*exc)
            self._lock = None

    @contextlib.contextmanager
    def _file(self, reserve: int = SPACE_MARGIN // 4):
        """The cache open for writing; a full file system is a :class:`CacheFullError` (HDF5
        reports a failed write as OSError or RuntimeError, and closing the file after one fails
        again with another message)."""
        size = self._reserve(reserve)
        try:
            f = _open_checked(self.path, "a")
        except BaseException as e:
            if size is not None:   # not opened: HDF5 will not cut the reserve off
                os.truncate(self.path, size)
            if isinstance(e, (OSError, RuntimeError)) and _is_no_space(e):
                raise _full_error(self.path) from None
            raise
        try:
            yield f
            f.flush()
        except BaseException as e:
            with contextlib.suppress(Exception):
                f.close()
            if isinstance(e, (OSError, RuntimeError)) and _is_no_space(e):
                raise _full_error(self.path) from None
            raise
        try:
            f.close()
        except (OSError, RuntimeError) as e:
            raise _full_error(self.path) if _is_no_space(e) else e from None

    def _check_space(self, need: int) -> None:
        """Refuse (:class:`CacheFullError`) a commit of ``need`` bytes that the file system has no
        room for, twice over plus :data:`SPACE_MARGIN`, before the cache is touched."""
        need = 2 * need + SPACE_MARGIN
        if shutil.disk_usage(self.path.parent).free < need:
            raise _full_error(self.path, need)

    def _reserve(self, n: int) -> int | None:
        """Allocate ``n`` bytes past the end of the cache file before HDF5 opens it: HDF5 writes
        the commit into blocks the file system has already given, so a full disk is met here, as
        a :class:`CacheFullError`, not inside the HDF5 library (whose state after a failed write
        is undefined: it may crash on close). HDF5 cuts the file back to its data when it
        closes it. A file system without ``fallocate`` relies on :meth:`_check_space` alone.
        Only an intact file gets a reserve: one cut short (EOF before the end HDF5 recorded) must
        stay so, or HDF5 would read the zeros as structure. Returns the file's size before (None:
        no reserve)."""
        if not self.path.exists():
            return None
        try:
            _open_h5(self.path, "r").close()
        except (OSError, RuntimeError):
            return None   # not intact: the open that follows reports it
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return None
        try:
            size = os.fstat(fd).st_size
            os.posix_fallocate(fd, size, n)
        except OSError as e:
            if _is_no_space(e):
                os.ftruncate(fd, size)
                raise _full_error(self.path, n) from None
        finally:
            os.close(fd)
        return size

    def _stage(self, attrs: Mapping, arrays: Mapping[str, np.ndarray]) -> h5py.File:
        """One video's attrs and arrays, compressed and checksummed, in an HDF5 file in memory
        (the caller closes it): the work of a commit done before the cache is opened."""
        s = h5py.File(f"staging-{id(arrays)}", "w", driver="core", backing_store=False)
        try:
            g = s.create_group("video")
            for key, value in attrs.items():
                _set_attr(g.attrs, key, value)
            g.attrs["config_sha256"] = self.config_sha256
            g.attrs["untrained"] = self.untrained
            for rel, arr in arrays.items():
                arr = np.asarray(arr)
                g.create_dataset(rel, data=arr, **_dataset_kwargs(arr))
            s.flush()
        except BaseException:
            s.close()
            raise
        return s

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
        """Ids of complete videos whose config hash matches this writer's config and whose arrays
        all read back (checksums): a damaged video is left out, so a run redoes it, with a
        warning (once per writer) naming what is damaged."""
        with _open_checked(self.path, "r") as f:
            out = set()
            for k, g in _members(f).items():
                if (g.attrs.get("status") != "complete"
                        or g.attrs.get("config_sha256") != self.config_sha256):
                    continue
                if k not in self._damage:
                    self._damage[k] = _unreadable(g)
                    if self._damage[k]:
                        warnings.warn(f"{self.path}: videos/{k} is damaged ({self._damage[k]}): "
                                      "it is extracted again", UserWarning, stacklevel=2)
                if not self._damage[k]:
                    out.add(k)
            return out

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
                    for k, g in _members(f).items()
                    if g.attrs.get("status") == "complete"
                    and g.attrs.get("config_sha256") == self.config_sha256}

    def views_by_source(self) -> dict[str, list[str]]:
        """Source id -> ids of its views in the file (by their ``view_of`` attribute, under any
        config): what a changed source file makes stale."""
        out: dict[str, list[str]] = {}
        with _open_checked(self.path, "r") as f:
            for k, g in sorted(_members(f).items()):
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
        """Commit one video: stage it in a file of its own, check the free space, then copy it
        under /_incomplete/<id> and move it to /videos/<id> (see the module docstring).

        ``arrays`` maps relative paths (``"features/kin_pose/whole"``) to numpy arrays. An
        existing /videos/<id> (e.g. from another config) is replaced only once the new one is
        fully written. No room: :class:`CacheFullError`, the cache as it was.
        """
        _check_id(video_id)
        missing = [k for k in REQUIRED_VIDEO_ARRAYS if k not in arrays]
        if missing:
            raise CacheError(f"video {video_id!r}: missing required arrays {missing}")
        with self._stage(attrs, arrays) as staged:
            size = staged.id.get_filesize()
            self._check_space(size)
            with self._file(reserve=size + SPACE_MARGIN // 4) as f:
                self._commit(f, video_id, staged["video"])
        self._damage.pop(video_id, None)

    def _commit(self, f: h5py.File, video_id: str, staged: h5py.Group) -> None:
        """Copy the staged video under /_incomplete/<id>, then move it to /videos/<id>."""
        tmp = f"_incomplete/{video_id}"
        if tmp in f:
            del f[tmp]
        f.require_group("_incomplete")
        f.copy(staged, tmp)
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
        """Replace the /labels table with ``rows`` (see :mod:`aqa.data.labels`); a table that
        holds them already is left as it is."""
        rows = list(rows)
        with _open_checked(self.path, "r") as f:
            try:
                if "labels" in f and _same_rows(_read_labels(f), rows):
                    return
            except _H5_ERRORS:  # unreadable: replaced below
                pass
        self._check_space(200 * len(rows))
        with self._file(reserve=400 * len(rows) + SPACE_MARGIN // 4) as f:
            _write_labels(f, rows)


def _untrained_videos(f: h5py.File) -> set[str]:
    """Ids of the videos in ``f`` that hold untrained features: by each video's ``untrained`` mark;
    a video written before those marks existed counts as untrained when the root mark is set."""
    root = bool(f.attrs.get("untrained", False))
    return {vid for vid, g in _members(f).items()
            if bool(g.attrs.get("untrained", root))}


def _check_id(video_id: str) -> None:
    if not video_id or "/" in video_id or video_id.startswith("."):
        raise CacheError(f"invalid video id {video_id!r} (no '/' and not empty)")


def _same_row(a: LabelRow, b: LabelRow) -> bool:
    """Equal label rows, NaN equal to NaN."""
    da, db = a.as_dict(), b.as_dict()
    if da.keys() != db.keys():
        return False
    return all(x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x)
                          and math.isnan(y)) for x, y in ((da[k], db[k]) for k in da))


def _same_rows(a: Sequence[LabelRow], b: Sequence[LabelRow]) -> bool:
    return len(a) == len(b) and all(_same_row(x, y) for x, y in zip(a, b))


_LABELS_NEW = "_labels_new"


def _finish_labels_swap(f: h5py.File) -> None:
    """Complete or undo a labels rewrite that was interrupted (see :func:`_write_labels`)."""
    if _LABELS_NEW in f:
        if "labels" in f:
            del f[_LABELS_NEW]      # the old table is whole: the new one may not be
        else:
            f.move(_LABELS_NEW, "labels")


def _write_labels(f: h5py.File, rows: Sequence[LabelRow]) -> None:
    """Write the table as ``/_labels_new``, flush, then swap it for ``/labels``: an interrupted
    rewrite leaves the old table or the whole new one, never a part."""
    if _LABELS_NEW in f:
        del f[_LABELS_NEW]
    g = f.create_group(_LABELS_NEW)
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
    f.flush()
    if "labels" in f:
        del f["labels"]
    f.move(_LABELS_NEW, "labels")


def _read_labels(f: h5py.File) -> list[LabelRow]:
    """The labels table (the new one of a rewrite interrupted between its two steps)."""
    name = "labels" if "labels" in f else _LABELS_NEW if _LABELS_NEW in f else None
    if name is None:
        return []
    g = f[name]
    ids = [s.decode() if isinstance(s, bytes) else s for s in g["video_id"][()]]
    dec = lambda ds: [s.decode() if isinstance(s, bytes) else str(s) for s in ds[()]]  # noqa: E731
    actions, splits = dec(g["action"]), dec(g["split"])
    score, diff = g["score"][()], g["difficulty"][()]
    subs = {k: g["sub"][k][()] for k in g.get("sub", {})}
    return [LabelRow(video_id=v, score=float(score[i]), action=actions[i],
                     difficulty=float(diff[i]), split=splits[i],
                     sub_scores={k: float(a[i]) for k, a in subs.items()})
            for i, v in enumerate(ids)]


def _damage_is_an_error(method):
    """Turn h5py's error on a damaged part of the file (OSError, RuntimeError, a KeyError
    "Unable to open object") into a :class:`CacheDamagedError` that names the file and says
    what to do; the reader's own KeyErrors (no such video, family) pass as they are."""
    import functools

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (OSError, RuntimeError, KeyError) as e:
            if isinstance(e, CacheError) or (isinstance(e, KeyError)
                                             and "Unable to" not in str(e)):
                raise
            raise CacheDamagedError(
                f"{self.path}: damaged ({type(e).__name__}: {e}); `aqa-data verify` lists what "
                "is damaged, `aqa-data repair` rebuilds the file from what is readable") from None
    return guarded


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
        self._members: dict[str, h5py.Group] | None = None  # the readable /videos, read once
        if self._f.attrs.get("format") != FORMAT:
            self._f.close()
            raise CacheError(f"{self.path}: not an aqa cache (no format={FORMAT!r} attribute)")

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "CacheReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @_damage_is_an_error
    def video_ids(self, views: bool = False) -> list[str]:
        """Ids of the complete videos; augmented views (:mod:`aqa.data.views`) only with ``views``."""
        vids = self._videos()
        return sorted(k for k, g in vids.items() if g.attrs.get("status") == "complete"
                      and (views or "view_of" not in g.attrs))

    @_damage_is_an_error
    def views(self) -> dict[str, list[str]]:
        """Canonical view name -> sorted ids of the source videos that have that view (read once
        per reader: the file cannot change while it is open for reading). A view whose source is
        not in the cache is not listed: it is no training row of any video."""
        if self._views is None:
            out: dict[str, list[str]] = {}
            sources = set(self.video_ids())
            for g in self._videos().values():
                if (g.attrs.get("status") == "complete" and "view_of" in g.attrs
                        and str(g.attrs["view_of"]) in sources):
                    out.setdefault(str(g.attrs["view"]), []).append(str(g.attrs["view_of"]))
            self._views = {name: sorted(ids) for name, ids in sorted(out.items())}
        return {name: list(ids) for name, ids in self._views.items()}

    @_damage_is_an_error
    def _videos(self) -> dict[str, h5py.Group]:
        """The readable members of /videos (:func:`_members`), read once per reader: the file
        cannot change while it is open for reading."""
        if self._members is None:
            self._members = _members(self._f)
        return self._members

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

    @_damage_is_an_error
    def group(self, video_id: str) -> h5py.Group:
        g = self._f.get(f"videos/{video_id}")
        if g is None or g.attrs.get("status") != "complete":
            raise KeyError(f"{self.path}: no complete video {video_id!r}")
        return g

    @_damage_is_an_error
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

    @_damage_is_an_error
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

    @_damage_is_an_error
    def load_camera(self, ids: Iterable[str] | None = None) -> np.ndarray:
        return self._stack("motion/camera", self._ids(ids))

    @_damage_is_an_error
    def pose(self, video_id: str) -> dict[str, np.ndarray]:
        g = self._data_group(video_id)
        return {k: self._read(g, f"pose/{k}", video_id) for k in g["pose"]}

    @_damage_is_an_error
    def video_attrs(self, video_id: str) -> dict:
        return dict(self.group(video_id).attrs)

    @_damage_is_an_error
    def video_config(self, video_id: str) -> dict:
        """The extraction config that wrote ``video_id`` (``configs_json`` by its config hash;
        the root config when that hash is not recorded)."""
        known = json.loads(self._f.attrs.get("configs_json", "{}"))
        return known.get(self.group(video_id).attrs.get("config_sha256"),
                         self.provenance()["config"])

    def labels(self) -> list[LabelRow]:
        try:
            return _read_labels(self._f)
        except Exception as e:  # noqa: BLE001 - any damage of the table is the same to the user
            raise CacheDamagedError(f"{self.path}: the labels table is unreadable ({type(e).__name__}:"
                                    f" {e}); `aqa-data repair` rebuilds the file without it, then "
                                    "re-run the extraction with --labels") from None

    def provenance(self) -> dict:
        try:
            return self._provenance()
        except Exception as e:  # noqa: BLE001 - damaged or not JSON
            raise CacheDamagedError(f"{self.path}: the root attributes are unreadable "
                                    f"({type(e).__name__}: {e})") from None

    def _provenance(self) -> dict:
        a = self._f.attrs
        return {"format": a.get("format"), "format_version": int(a.get("format_version", 0)),
                "aqa_version": a.get("aqa_version"), "created_utc": a.get("created_utc"),
                "config": json.loads(a.get("config_json", "{}")),
                "weights": json.loads(a.get("weights", "{}")),
                "untrained": bool(a.get("untrained", False))}


def _root_config_hashes(attrs) -> set[str]:
    """Hashes of the config(s) the root ``config_json`` stands for (several in a merged file)."""
    try:
        root = json.loads(attrs.get("config_json", "{}"))
    except ValueError:
        return set()
    if isinstance(root, dict) and set(root) == {"merged_configs"}:
        return {config_hash(c) for c in root["merged_configs"]}
    return {config_hash(root)}


__all__ = ["FORMAT", "FORMAT_VERSION", "LOCK_TIMEOUT", "WRITE_LOCK_TIMEOUT", "CacheError",
           "CacheLockedError", "CacheWriter", "CacheReader", "config_hash", "BASE_COLUMNS"]
