"""Video decoding: probe a video and read the frames a sampling protocol asks for, as RGB uint8.

Decoders, in order (``backend="auto"``):

1. **PyAV** (FFmpeg's libav* bindings) is the primary decoder. It decodes packets sequentially in
   presentation order, so frame ``i`` is exactly the ``i``-th decoded picture, and it reports
   container metadata (frame count, rate, duration) and decode failures as exceptions.
2. **OpenCV** (``cv2.VideoCapture``) is the fallback, used only when PyAV is not importable or cannot
   open the container. It is less robust for our purpose: ``CAP_PROP_FRAME_COUNT`` is often an
   estimate from duration x fps, ``CAP_PROP_POS_FRAMES`` seeking is inexact for inter-coded streams,
   and ``read()`` returns ``False`` for both end-of-stream and a decode error. We therefore only read it
   sequentially (``grab`` to skip, ``retrieve`` to keep) and count frames by decoding.

A **directory** is read as an image sequence (the form many AQA datasets are distributed in: one
JPEG/PNG per frame): its image files sorted by name (natural order, so ``img_9`` < ``img_10``) are
the frames; backend ``"images"``.

Rules:

- Frame counts: container metadata is trusted only when it is present and agrees (within one frame)
  with duration x rate; otherwise, or with ``probe(..., exact=True)``, frames are counted by decoding.
  :func:`read_frames` always decodes, so it discovers the true length itself.
- Corrupt input: a missing file, an unopenable container, a stream without video, or a video that
  decodes to zero frames raises :class:`VideoDecodeError` (with the path and the reason); it never
  returns an empty array. A decode error in the middle of a stream ends the stream there (the frames
  before it are kept) with a :class:`VideoWarning`, so a truncated download still yields its frames.
- Short streams: when PyAV decodes to the end of a stream and gets fewer frames than the container
  declares (a trusted header count, see above; e.g. a faststart mp4 cut at a packet boundary, which
  decodes without any error), a :class:`VideoWarning` names the video and both counts.
- Indices beyond the end: with ``on_overflow="clamp"`` (default) every index past the last decodable
  frame is replaced by the last decodable frame's index (the returned ``indices`` hold the clamped
  values, and a :class:`VideoWarning` says how many were clamped); with ``on_overflow="error"`` a
  :class:`FrameIndexError` is raised. Negative indices are always a ``ValueError``.
- Sequential decoding, not seeking: sparse indices in a long video still decode every frame up to the
  largest requested index (decoding is cheap next to conversion; only the requested frames are
  converted to RGB arrays), which is exact for every codec, unlike keyframe seeking.
- Resizing: :func:`read_frames` can resize each frame as it is decoded (``frame_height``, or
  ``short_side`` which only ever downscales; see :func:`resized_size`), so a 1080p video is never
  held in memory at full resolution.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

__all__ = [
    "VideoInfo", "VideoDecodeError", "FrameIndexError", "VideoWarning", "probe", "count_frames",
    "read_frames", "iter_frames", "resized_size", "image_files", "IMAGE_EXTENSIONS", "BACKENDS",
]

BACKENDS = ("auto", "pyav", "opencv", "images")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class VideoDecodeError(RuntimeError):
    """A video could not be decoded. ``path`` and ``reason`` are kept as attributes."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot decode video {self.path}: {reason}")


class FrameIndexError(VideoDecodeError, IndexError):
    """Requested frame indices lie beyond the last decodable frame (``on_overflow="error"``)."""


class VideoWarning(UserWarning):
    """Something wrong with one input video that does not stop its extraction (a truncated stream,
    a mid-stream decode error, no person found): the extraction runner lists these at the end."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` knows about a video.

    ``n_frames_source`` is ``"metadata"`` (container header, cross-checked against duration x fps)
    or ``"decoded"`` (counted by decoding every frame). ``fps`` is 0.0 when unknown (image folders).
    """

    path: str
    fps: float
    n_frames: int
    height: int
    width: int
    backend: str
    n_frames_source: str = "metadata"


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def _check_path(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise VideoDecodeError(p, "no such file or directory")
    if p.is_file() and p.stat().st_size == 0:
        raise VideoDecodeError(p, "file is empty (0 bytes)")
    return p


def _normalise_indices(indices) -> np.ndarray | None:
    if indices is None:
        return None
    idx = np.asarray(indices)
    if idx.ndim != 1:
        idx = idx.reshape(-1)
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        if not np.all(np.equal(np.mod(idx, 1), 0)):
            raise ValueError("frame indices must be integers")
    idx = idx.astype(np.int64)
    if idx.size and idx.min() < 0:
        raise ValueError(f"frame indices must be >= 0 (got {int(idx.min())})")
    return idx


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def image_files(folder: Path) -> list[Path]:
    """The image files of a frame folder, in natural order (``2.jpg`` before ``10.jpg``): frame i is
    the i-th of them."""
    files = [f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda f: _natural_key(f.name))


def _have_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------------------------------------
# PyAV
# ------------------------------------------------------------------------------------------------
def _pyav_open(path: Path):
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoDecodeError(path, f"PyAV cannot open the container ({type(exc).__name__}: {exc})") from exc
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, "the container has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame + slice threading; output order is unchanged
    return container, stream


def _pyav_decode(path: Path, container, stream) -> Iterator:
    """Yield decoded ``av.VideoFrame``s; a mid-stream decode error ends the stream with a warning."""
    import av

    n = 0
    try:
        for frame in container.decode(stream):
            n += 1
            yield frame
    except av.error.FFmpegError as exc:
        if n == 0:
            raise VideoDecodeError(path, f"decoding failed before the first frame ({type(exc).__name__}: {exc})") from exc
        warnings.warn(f"{path}: decode error after frame {n - 1}; treating it as the end of the video "
                      f"({type(exc).__name__}: {exc})", VideoWarning, stacklevel=3)


def _pyav_declared(container, stream) -> tuple[float, int | None]:
    """(fps, frame count the container declares), the count None unless it is present and agrees
    (within one frame) with duration x rate."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    n_meta = int(stream.frames or 0)
    n_dur = None
    if stream.duration is not None and stream.time_base is not None and fps > 0:
        n_dur = float(stream.duration * stream.time_base) * fps
    elif container.duration is not None and fps > 0:
        n_dur = container.duration / 1e6 * fps
    trusted = n_meta > 0 and (n_dur is None or abs(n_meta - n_dur) <= 1.0)
    return fps, n_meta if trusted else None


def _pyav_probe(path: Path, exact: bool) -> VideoInfo:
    container, stream = _pyav_open(path)
    try:
        fps, n_meta = _pyav_declared(container, stream)
        width, height = stream.codec_context.width, stream.codec_context.height
        if n_meta and not exact and width and height:
            return VideoInfo(str(path), fps, n_meta, int(height), int(width), "pyav", "metadata")
        n = 0
        for frame in _pyav_decode(path, container, stream):
            if n == 0:
                width, height = frame.width, frame.height
            n += 1
        if n == 0:
            raise VideoDecodeError(path, "the video stream decodes to zero frames")
        return VideoInfo(str(path), fps, n, int(height), int(width), "pyav", "decoded")
    finally:
        container.close()


def _pyav_iter(path: Path, wanted: np.ndarray | None, state: dict) -> Iterator[tuple[int, np.ndarray]]:
    container, stream = _pyav_open(path)
    try:
        last = None if wanted is None else int(wanted.max())
        wanted_set = None if wanted is None else set(wanted.tolist())
        n = 0
        for i, frame in enumerate(_pyav_decode(path, container, stream)):
            n = i + 1
            if wanted_set is None or i in wanted_set:
                yield i, frame.to_ndarray(format="rgb24")
            if last is not None and i >= last:
                break
        else:  # the stream ran out
            declared = _pyav_declared(container, stream)[1]
            if n and declared and n < declared:
                warnings.warn(f"{path}: decoded only {n} of the {declared} frames the container "
                              "declares (a truncated file?)", VideoWarning, stacklevel=3)
        state["n_decoded"] = n
        if n == 0:
            raise VideoDecodeError(path, "the video stream decodes to zero frames")
    finally:
        container.close()


# ------------------------------------------------------------------------------------------------
# OpenCV
# ------------------------------------------------------------------------------------------------
def _cv_open(path: Path):
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise VideoDecodeError(path, "OpenCV cannot open the file")
    return cap


def _cv_probe(path: Path, exact: bool) -> VideoInfo:
    import cv2

    cap = _cv_open(path)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        # OpenCV's frame count is an estimate for many containers: always count by decoding.
        n, width, height = 0, 0, 0
        while cap.grab():
            if n == 0:
                ok, img = cap.retrieve()
                if not ok:
                    break
                height, width = img.shape[:2]
            n += 1
        if n == 0:
            raise VideoDecodeError(path, "OpenCV decodes zero frames")
        return VideoInfo(str(path), fps, n, int(height), int(width), "opencv", "decoded")
    finally:
        cap.release()


def _cv_iter(path: Path, wanted: np.ndarray | None, state: dict) -> Iterator[tuple[int, np.ndarray]]:
    import cv2

    cap = _cv_open(path)
    try:
        last = None if wanted is None else int(wanted.max())
        wanted_set = None if wanted is None else set(wanted.tolist())
        i = 0
        while last is None or i <= last:
            if not cap.grab():
                break
            if wanted_set is None or i in wanted_set:
                ok, img = cap.retrieve()
                if not ok:
                    warnings.warn(f"{path}: OpenCV could not retrieve frame {i}; treating it as the end",
                                  VideoWarning, stacklevel=3)
                    break
                yield i, cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            i += 1
        state["n_decoded"] = i
        if i == 0:
            raise VideoDecodeError(path, "OpenCV decodes zero frames")
    finally:
        cap.release()


# ------------------------------------------------------------------------------------------------
# image sequences
# ------------------------------------------------------------------------------------------------
def _imread_rgb(f: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(f), cv2.IMREAD_COLOR)
    if img is None:
        raise VideoDecodeError(f, "cannot read image file")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _images_probe(path: Path, fps: float = 0.0) -> VideoInfo:
    files = image_files(path)
    if not files:
        raise VideoDecodeError(path, f"directory holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    h, w = _imread_rgb(files[0]).shape[:2]
    return VideoInfo(str(path), fps, len(files), int(h), int(w), "images", "decoded")


def _images_iter(path: Path, wanted: np.ndarray | None, state: dict) -> Iterator[tuple[int, np.ndarray]]:
    files = image_files(path)
    if not files:
        raise VideoDecodeError(path, f"directory holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    state["n_decoded"] = len(files)
    order = range(len(files)) if wanted is None else sorted({int(i) for i in wanted if i < len(files)})
    for i in order:
        yield i, _imread_rgb(files[i])


# ------------------------------------------------------------------------------------------------
# dispatch
# ------------------------------------------------------------------------------------------------
def _choose(path: Path, backend: str) -> list[str]:
    if backend not in BACKENDS:
        raise ValueError(f"unknown video backend {backend!r}; choose from {BACKENDS}")
    if path.is_dir():
        if backend not in ("auto", "images"):
            raise VideoDecodeError(path, f"is a directory; backend {backend!r} reads files (use 'images')")
        return ["images"]
    if backend == "images":
        raise VideoDecodeError(path, "backend 'images' needs a directory of frame images")
    if backend != "auto":
        return [backend]
    return ["pyav", "opencv"] if _have_pyav() else ["opencv"]


def _with_fallback(path: Path, backend: str, fn):
    """Run ``fn(name)`` for each candidate backend; open failures fall through to the next one."""
    reasons = []
    for name in _choose(path, backend):
        try:
            return fn(name)
        except VideoDecodeError as exc:
            reasons.append(f"{name}: {exc.reason}")
            if isinstance(exc, FrameIndexError):
                raise
    if len(reasons) == 1:
        raise VideoDecodeError(path, reasons[0].split(": ", 1)[1])
    raise VideoDecodeError(path, "; ".join(reasons))


def probe(path, exact: bool = False, backend: str = "auto") -> VideoInfo:
    """Return :class:`VideoInfo` (fps, frame count, size, decoder) of a video file or frame directory.

    With ``exact=False`` a trustworthy container frame count is used as is; with ``exact=True``
    (or when the metadata is missing or disagrees with duration x fps) frames are counted by decoding.
    """
    p = _check_path(path)

    def run(name):
        if name == "pyav":
            return _pyav_probe(p, exact)
        if name == "opencv":
            return _cv_probe(p, exact)
        return _images_probe(p)

    return _with_fallback(p, backend, run)


def count_frames(path, backend: str = "auto") -> int:
    """Number of decodable frames, counted by decoding (never from metadata)."""
    return probe(path, exact=True, backend=backend).n_frames


def _raw_iter(p: Path, name: str, wanted, state: dict):
    if name == "pyav":
        return _pyav_iter(p, wanted, state)
    if name == "opencv":
        return _cv_iter(p, wanted, state)
    return _images_iter(p, wanted, state)


def _iter(p: Path, wanted, backend: str, state: dict) -> Iterator[tuple[int, np.ndarray]]:
    """Frames of the first decoder that opens ``p``; ``state["n_decoded"]`` is set when the stream
    ends (the true frame count if decoding ran out before the largest wanted index)."""
    reasons = []
    for name in _choose(p, backend):
        gen = _raw_iter(p, name, wanted, state)
        try:
            first = next(gen)
        except StopIteration:
            return
        except VideoDecodeError as exc:  # cannot open / zero frames: try the next decoder
            reasons.append(f"{name}: {exc.reason}")
            continue
        state["backend"] = name
        yield first
        yield from gen
        return
    if len(reasons) == 1:
        raise VideoDecodeError(p, reasons[0].split(": ", 1)[1])
    raise VideoDecodeError(p, "; ".join(reasons))


def iter_frames(path, indices=None, backend: str = "auto", frame_height: int | None = None,
                short_side: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Stream ``(frame_index, frame (H,W,3) uint8 RGB)`` in increasing index order.

    Yields each requested index that exists once (duplicates and order in ``indices`` are ignored;
    :func:`read_frames` restores them); indices past the end are simply not yielded. Decoding stops
    after the largest requested index. ``frame_height``/``short_side``: as in :func:`read_frames`.
    """
    resized_size(1, 1, frame_height, short_side)  # bad sizes fail before decoding
    p = _check_path(path)
    wanted = _normalise_indices(indices)
    if wanted is not None and wanted.size == 0:
        return
    stream = _iter(p, wanted, backend, {})
    yield from _resizing(p, stream, frame_height, short_side) if frame_height or short_side else stream


def resized_size(height: int, width: int, frame_height: int | None = None,
                 short_side: int | None = None) -> tuple[int, int]:
    """(height, width) that frames of ``height x width`` are resized to, aspect ratio kept.

    ``frame_height``: exactly that height (up or down). ``short_side``: downscale so the shorter side
    is ``short_side`` pixels; a frame whose short side is already at most that is kept as it is
    (never upscaled). Neither: unchanged. Setting both is a ``ValueError``.
    """
    for name, v in (("frame_height", frame_height), ("short_side", short_side)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if frame_height and short_side:
        raise ValueError("give frame_height or short_side, not both")
    if frame_height:
        scale = frame_height / height
    elif short_side and min(height, width) > short_side:
        scale = short_side / min(height, width)
    else:
        return int(height), int(width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _resizing(p: Path, stream, frame_height, short_side):
    """Resize every frame of ``stream`` to :func:`resized_size` of the first frame (INTER_AREA)."""
    first_shape = size = None
    for i, img in stream:
        if first_shape is None:
            first_shape = img.shape
            size = resized_size(img.shape[0], img.shape[1], frame_height, short_side)
        elif img.shape != first_shape:
            raise VideoDecodeError(p, f"frame {i} has shape {img.shape}, the first frame {first_shape}; "
                                      "resolution changes mid-stream are not supported")
        if size != img.shape[:2]:
            import cv2
            img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        yield i, img


def read_frames(path, indices=None, backend: str = "auto", on_overflow: str = "clamp",
                progress: bool = False, frame_height: int | None = None,
                short_side: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode frames of a video into memory.

    Returns ``(frames, indices)``: ``frames`` is ``(F, H, W, 3)`` uint8 RGB, ``indices`` the ``(F,)``
    int32 frame indices actually read, in the order requested (duplicates allowed, e.g. a sampling
    that repeats frames). ``indices=None`` reads the whole video. Indices past the last decodable frame
    are clamped to it (``on_overflow="clamp"``, with a warning) or raise :class:`FrameIndexError`
    (``on_overflow="error"``). ``frame_height``/``short_side`` resize each frame as it is decoded
    (:func:`resized_size`).
    """
    if on_overflow not in ("clamp", "error"):
        raise ValueError(f"on_overflow must be 'clamp' or 'error', not {on_overflow!r}")
    resized_size(1, 1, frame_height, short_side)  # bad sizes fail before decoding
    p = _check_path(path)
    wanted = _normalise_indices(indices)
    if wanted is not None and wanted.size == 0:
        raise ValueError("no frame indices requested")

    def frames_of(wanted_, state_):
        stream_ = _iter(p, wanted_, backend, state_)
        return _resizing(p, stream_, frame_height, short_side) if frame_height or short_side else stream_

    got: dict[int, np.ndarray] = {}
    state: dict = {}
    stream = frames_of(wanted, state)
    if progress:
        from aqa.data.logs import progress_bar

        total = None if wanted is None else len(np.unique(wanted))
        stream = progress_bar(stream, total=total, desc=f"decode {p.name}", unit="frame", leave=False)
    for i, img in stream:
        got[i] = img
    if wanted is None:
        if not got:
            raise VideoDecodeError(p, "the video decodes to zero frames")
        out_idx = np.arange(max(got) + 1, dtype=np.int64)
    else:
        n_dec = int(state.get("n_decoded", 0))
        over = wanted >= n_dec
        if over.any():
            if n_dec == 0:
                raise VideoDecodeError(p, "the video decodes to zero frames")
            msg = (f"{int(over.sum())} of {wanted.size} requested frame indices (max {int(wanted.max())}) are "
                   f"past the last decodable frame {n_dec - 1}")
            if on_overflow == "error":
                raise FrameIndexError(p, msg)
            warnings.warn(f"{p}: {msg}; clamped to {n_dec - 1}", VideoWarning, stacklevel=2)
            if n_dec - 1 not in got:
                got.update(dict(frames_of(np.array([n_dec - 1]), {})))
            out_idx = np.minimum(wanted, n_dec - 1)
        else:
            out_idx = wanted
    first = got[int(out_idx[0])]
    frames = np.empty((len(out_idx),) + first.shape, dtype=np.uint8)
    for k, i in enumerate(out_idx.tolist()):
        img = got[i]
        if img.shape != first.shape:
            raise VideoDecodeError(p, f"frame {i} has shape {img.shape}, frame {int(out_idx[0])} {first.shape}; "
                                      "resolution changes mid-stream are not supported")
        frames[k] = img
    return frames, out_idx.astype(np.int32)
