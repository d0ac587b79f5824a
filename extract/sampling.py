"""Temporal sampling protocols: which frame indices of a video form each clip fed to a backbone.

``sample(protocol, n_frames, **options)`` returns a :class:`Sampling` whose ``clips`` is an
``(S, L)`` integer array of frame indices (S clips of L frames), with ``clip_start``/``clip_end`` the
first/last index of each clip (inclusive). Every protocol accepts ``start`` (inclusive) and ``stop``
(exclusive) to restrict sampling to a span of the video (e.g. an annotated action segment);
indices stay absolute video frame indices.

Protocols (each as its paper states it):

``jrg``   (Pan et al., ICCV 2019: "divide the videos into 10 segments, and 16 frames are uniformly
          sampled out in each segment"): the span is cut into ``T`` (10) equal segments,
          ``[floor(k*n/T), floor((k+1)*n/T))``, and ``length`` (16) frames are taken evenly spaced
          from each, first and last frame of the segment included (``floor(linspace)``). A segment
          shorter than 16 frames repeats frames evenly (that is uniform sampling, not padding).
``core``  (Yu et al., ICCV 2021: "extract 103 frames for each video clip, and segment them into
          10 overlapping snippets, each containing 16 continuous frames"): a window of ``frames`` (103) consecutive frames, then
          ``length``-frame (16) windows starting at ``0, 10, ..., 80`` and a last one aligned to the end
          (``87``), i.e. starts ``[0, stride, ..., (W-2)*stride, frames-length]`` with ``n_windows`` W=10,
          ``stride`` 10. Where the 103 frames come from: the paper only says "extract 103 frames"; the
          authors' public loaders take the *first* 103 frames of an AQA-7 clip (those clips are 103
          frames long) and, for MTL-AQA, the 103 consecutive frames *ending* at the annotated
          ``end_frame`` (list positions ``end_frame-103 .. end_frame-1``; pass ``stop=end_frame``).
          ``anchor="end"`` (default) or ``"start"`` picks the side; ``resample="uniform"`` instead takes
          ``frames`` evenly spaced frames over the whole span (the paper's JIGSAWS setting, "evenly
          sampled out 160 frames to form 10 non-overlapping 16-frame snippets": preset ``core-jigsaws``).
``c3d``   (C3D clip features, Tran et al.; C3D-SVR): consecutive ``length``-frame (16) clips every
          ``stride`` (16) frames from the span start; a tail shorter than a clip is dropped
          (``tail="drop"``, default) or becomes one last padded clip (``tail="pad"``).
``fragments`` (Li et al., PCM 2018): ``n_fragments`` consecutive ``length``-frame fragments (UNLV-Dive:
          9 x 16 after padding to 151 frames; UNLV-Vault: 6 x 16 after padding to 100), starting at
          ``offset`` (0; the paper shifts the start frame into the spare frames to augment data).
          ``step`` takes every step-th frame (the paper's skating setting drops 4 of 5 frames).
          ``placement="even"`` spreads the fragments over the whole span instead.

Short videos: where a protocol needs more frames than the span has (Li et al.: "all videos are padded
with zero frames to length 151"), the missing positions are padding at the end of the span.
``Sampling.padded`` (same shape as ``clips``) marks them and ``options["n_padded"]`` counts them; in
``clips`` they hold the span's last frame only so that every index stays a valid frame. Consumers
must not read them as that frame: the extractor feeds them as zero frames (black RGB, zero flow,
no person; :mod:`aqa.extract.patches`, :mod:`aqa.extract.weightfree`), as the paper pads. A span
with no frames, unknown protocols and bad options raise :class:`SamplingError` (a ``ValueError``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .registry import SAMPLING

__all__ = ["Sampling", "SamplingError", "sample", "PROTOCOLS", "DEFAULTS", "jrg", "core", "core_jigsaws", "c3d",
           "fragments"]


class SamplingError(ValueError):
    """Unknown protocol, invalid option, or a video span that cannot be sampled."""


@dataclass(frozen=True)
class Sampling:
    """The result of a sampling protocol.

    ``clips`` (S, L) int64 absolute frame indices; ``clip_start``/``clip_end`` (S,) the first and last
    (inclusive) index of each clip; ``padded`` (S, L) bool, True at padding positions past the span's
    end (their ``clips`` entry is the last frame; feed them as zero frames, see the module
    docstring); ``options`` the fully resolved options (defaults included, plus
    ``n_frames`` and ``n_padded``), suitable for provenance.
    """

    name: str
    clips: np.ndarray
    clip_start: np.ndarray
    clip_end: np.ndarray
    options: dict = field(default_factory=dict)
    padded: np.ndarray | None = None

    @property
    def n_clips(self) -> int:
        return int(self.clips.shape[0])

    @property
    def clip_length(self) -> int:
        return int(self.clips.shape[1])

    @property
    def frames(self) -> np.ndarray:
        """Sorted unique frame indices to decode (pass to ``read_frames``)."""
        return np.unique(self.clips)

    @property
    def positions(self) -> np.ndarray:
        """(S, L) positions of each clip frame in :attr:`frames`: ``decoded[positions]`` gives clips."""
        return np.searchsorted(self.frames, self.clips)


def _int_opt(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SamplingError(f"option {name!r} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _span(n_frames, start, stop) -> tuple[int, int]:
    n = _int_opt("n_frames", n_frames, minimum=0)
    s = _int_opt("start", start, minimum=0)
    e = n if stop is None else _int_opt("stop", stop, minimum=0)
    if e > n:
        raise SamplingError(f"stop={e} is past the end of the video ({n} frames)")
    if e <= s:
        raise SamplingError(f"the span [{s}, {e}) of a {n}-frame video holds no frames")
    return s, e


def _finish(name: str, rel: np.ndarray, span: tuple[int, int], options: dict) -> Sampling:
    """Turn span-relative indices (may exceed the span: padding) into a Sampling."""
    s, e = span
    rel = np.asarray(rel, dtype=np.int64)
    if rel.ndim != 2 or rel.size == 0:
        raise SamplingError(f"{name}: produced no clips for span [{s}, {e})")
    if rel.min() < 0:
        raise SamplingError(f"{name}: options place frames before the span start")
    padded = rel >= (e - s)
    clips = s + np.minimum(rel, e - s - 1)
    opts = dict(options, start=s, stop=e, n_padded=int(padded.sum()))
    return Sampling(name, clips, clips[:, 0].copy(), clips[:, -1].copy(), opts, padded)


def _even(lo: int, hi: int, k: int) -> np.ndarray:
    """k indices evenly spaced over [lo, hi] inclusive (floor of linspace)."""
    return np.floor(np.linspace(lo, hi, k)).astype(np.int64)


# ------------------------------------------------------------------------------------------------
# protocols
# ------------------------------------------------------------------------------------------------
def jrg(n_frames: int, T: int = 10, length: int = 16, start: int = 0, stop: int | None = None) -> Sampling:
    """JRG: T equal segments, ``length`` frames evenly spaced inside each (see module docstring)."""
    T, length = _int_opt("T", T), _int_opt("length", length)
    s, e = _span(n_frames, start, stop)
    n = e - s
    bounds = np.floor(np.arange(T + 1) * n / T).astype(np.int64)
    rows = []
    for k in range(T):
        lo, hi = bounds[k], bounds[k + 1] - 1
        if hi < lo:  # fewer frames than segments: the segment degenerates to the frame at its start
            lo = hi = min(lo, n - 1)
        rows.append(_even(lo, hi, length))
    return _finish("jrg", np.stack(rows), (s, e), {"T": T, "length": length, "n_frames": int(n_frames)})


CORE_STARTS = (0, 10, 20, 30, 40, 50, 60, 70, 80, 87)


def core(n_frames: int, frames: int = 103, length: int = 16, n_windows: int = 10, stride: int = 10,
         anchor: str = "end", resample: str = "window", starts=None, start: int = 0,
         stop: int | None = None) -> Sampling:
    """CoRe: ``frames`` frames, then ``n_windows`` windows of ``length`` (see module docstring).

    ``starts`` overrides the window starts (offsets within the ``frames``-frame window).
    """
    frames, length = _int_opt("frames", frames), _int_opt("length", length)
    n_windows, stride = _int_opt("n_windows", n_windows), _int_opt("stride", stride)
    if anchor not in ("start", "end"):
        raise SamplingError(f"core: anchor must be 'start' or 'end', not {anchor!r}")
    if resample not in ("window", "uniform"):
        raise SamplingError(f"core: resample must be 'window' or 'uniform', not {resample!r}")
    if length > frames:
        raise SamplingError(f"core: length={length} is longer than frames={frames}")
    if starts is None:
        if n_windows == 1:
            starts = [0]
        else:
            starts = [i * stride for i in range(n_windows - 1)] + [frames - length]
            if starts[-2] > frames - length:
                raise SamplingError(f"core: {n_windows} windows with stride {stride} do not fit in {frames} frames")
    starts = np.asarray(starts, dtype=np.int64).reshape(-1)
    if starts.size == 0 or starts.min() < 0 or starts.max() + length > frames:
        raise SamplingError(f"core: window starts {starts.tolist()} must lie in [0, {frames - length}]")
    s, e = _span(n_frames, start, stop)
    n = e - s
    if resample == "uniform":
        base = _even(0, n - 1, frames)
    else:
        lo = 0 if anchor == "start" or n <= frames else n - frames
        base = lo + np.arange(frames)  # may run past the span: padded by _finish
    rel = base[starts[:, None] + np.arange(length)[None, :]]
    opts = {"frames": frames, "length": length, "n_windows": int(starts.size), "stride": stride,
            "anchor": anchor, "resample": resample, "starts": starts.tolist(), "n_frames": int(n_frames)}
    return _finish("core", rel, (s, e), opts)


def c3d(n_frames: int, length: int = 16, stride: int = 16, tail: str = "drop", start: int = 0,
        stop: int | None = None) -> Sampling:
    """C3D: consecutive ``length``-frame clips every ``stride`` frames (see module docstring)."""
    length, stride = _int_opt("length", length), _int_opt("stride", stride)
    if tail not in ("drop", "pad"):
        raise SamplingError(f"c3d: tail must be 'drop' or 'pad', not {tail!r}")
    s, e = _span(n_frames, start, stop)
    n = e - s
    starts = list(range(0, max(n - length, 0) + 1, stride)) if n >= length else []
    if not starts:  # video shorter than one clip: one padded clip
        starts = [0]
    elif tail == "pad" and starts[-1] + length < n:
        nxt = starts[-1] + stride
        if nxt < n:
            starts.append(nxt)
    rel = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(length)[None, :]
    return _finish("c3d", rel, (s, e), {"length": length, "stride": stride, "tail": tail,
                                        "n_frames": int(n_frames)})


def fragments(n_frames: int, n_fragments: int = 9, length: int = 16, offset: int = 0, step: int = 1,
              placement: str = "consecutive", start: int = 0, stop: int | None = None) -> Sampling:
    """Li et al.: ``n_fragments`` fragments of ``length`` frames (see module docstring)."""
    N, length = _int_opt("n_fragments", n_fragments), _int_opt("length", length)
    offset, step = _int_opt("offset", offset, minimum=0), _int_opt("step", step)
    if placement not in ("consecutive", "even"):
        raise SamplingError(f"fragments: placement must be 'consecutive' or 'even', not {placement!r}")
    s, e = _span(n_frames, start, stop)
    n = e - s
    extent = length * step  # frames covered by one fragment
    if placement == "consecutive":
        starts = offset + extent * np.arange(N)
    else:
        if offset:
            raise SamplingError("fragments: offset applies to placement='consecutive' only")
        starts = _even(0, max(n - extent, 0), N)
    rel = starts[:, None] + step * np.arange(length)[None, :]
    return _finish("fragments", rel, (s, e), {"n_fragments": N, "length": length, "offset": offset,
                                              "step": step, "placement": placement,
                                              "n_frames": int(n_frames)})


def core_jigsaws(n_frames: int, **options) -> Sampling:
    """``core`` with the paper's JIGSAWS setting: 160 frames evenly sampled, 10 non-overlapping
    16-frame snippets (options override those)."""
    opts = dict(frames=160, length=16, starts=list(range(0, 160, 16)), resample="uniform")
    opts.update(options)
    out = core(n_frames, **opts)
    return Sampling("core-jigsaws", out.clips, out.clip_start, out.clip_end, out.options, out.padded)


#: the protocols' names (:data:`aqa.extract.registry.SAMPLING`)
PROTOCOLS = SAMPLING.names()

DEFAULTS: dict[str, dict] = {
    "jrg": {"T": 10, "length": 16},
    "core": {"frames": 103, "length": 16, "n_windows": 10, "stride": 10, "anchor": "end", "resample": "window"},
    "core-jigsaws": {"frames": 160, "length": 16, "starts": list(range(0, 160, 16)), "resample": "uniform"},
    "c3d": {"length": 16, "stride": 16, "tail": "drop"},
    "fragments": {"n_fragments": 9, "length": 16, "offset": 0, "step": 1, "placement": "consecutive"},
}


def sample(protocol: str, n_frames: int, **options) -> Sampling:
    """Run sampling protocol ``protocol`` (one of :data:`PROTOCOLS`) on a video of ``n_frames`` frames."""
    if not isinstance(protocol, str) or protocol not in SAMPLING:
        raise SamplingError(f"unknown sampling protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    fn = SAMPLING.load(protocol)
    try:
        return fn(n_frames, **options)
    except TypeError as exc:  # unexpected keyword
        raise SamplingError(f"{protocol}: bad options {sorted(options)} ({exc})") from None
