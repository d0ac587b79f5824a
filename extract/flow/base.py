"""Optical flow interface shared by the TV-L1 backends, plus flow post-processing.

A backend turns batches of frame pairs into dense flow::

    backend = get_flow_backend("auto")                 # tvl1-torch on CUDA, else tvl1-cpu
    flow = backend.compute(frames_a, frames_b)         # (N,H,W,2) float32, flow[..., 0] = dx, [..., 1] = dy
    flow = backend.compute_video(frames)               # (F-1,H,W,2): pairs (0,1), (1,2), ...

Frames are uint8 grayscale ``(N,H,W)`` or BGR ``(N,H,W,3)`` (OpenCV's channel order), or float in [0, 1]
(OpenCV's convention for float input: it multiplies by 255). BGR is converted to gray with
``cv2.cvtColor`` so that every backend sees the same gray image. The flow maps a pixel ``(x, y)`` of the
first frame to ``(x + dx, y + dy)`` in the second, at the full frame resolution (flow for patches is cropped
from it by the feature code, see :func:`crop_flow`).

Parameters use OpenCV's names and defaults (``cv2.optflow.DualTVL1OpticalFlow_create`` in OpenCV 4.10,
checked by inspecting the created object): tau 0.25, lambda 0.15, theta 0.3, nscales 5, warps 5,
epsilon 0.01, inner_iterations 30, outer_iterations 10, scale_step 0.8, gamma 0, median_filtering 5.
"""
from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from aqa.data.registry import load

from ..registry import FLOW

__all__ = [
    "TVL1Params",
    "FlowBackend",
    "BACKEND_NAMES",
    "CAMERA_MOTION_FIELDS",
    "get_flow_backend",
    "flow_to_i3d",
    "camera_motion",
    "crop_flow",
    "to_gray",
]

#: the flow backends (:data:`aqa.extract.registry.FLOW`) and ``auto``
BACKEND_NAMES = (*FLOW.names(), "auto")


#: TVL1Params field -> (integer?, test, the allowed values in words)
_TVL1_RULES = {
    "tau": (False, lambda v: v > 0, "a number > 0"),
    "lambda_": (False, lambda v: v > 0, "a number > 0"),
    "theta": (False, lambda v: v > 0, "a number > 0"),
    "nscales": (True, lambda v: v >= 1, "an integer >= 1"),
    "warps": (True, lambda v: v >= 1, "an integer >= 1"),
    "epsilon": (False, lambda v: v >= 0, "a number >= 0"),
    "inner_iterations": (True, lambda v: v >= 1, "an integer >= 1"),
    "outer_iterations": (True, lambda v: v >= 1, "an integer >= 1"),
    "scale_step": (False, lambda v: 0 < v < 1, "a number in (0, 1)"),
    "gamma": (False, lambda v: v >= 0, "a number >= 0"),
    "median_filtering": (True, lambda v: v in (0, 1, 3, 5), "0, 1 (off), 3 or 5"),
}


@dataclass(frozen=True)
class TVL1Params:
    """Dual TV-L1 parameters, named and defaulted as in OpenCV's ``DualTVL1OpticalFlow``.

    ``lambda_`` is OpenCV's ``lambda`` (``get_flow_backend`` also accepts ``lambda=``). ``median_filtering``
    is the median window applied to the flow at each outer iteration (0 or 1 = off; OpenCV supports 3 and 5
    on float data). Levels smaller than 16 px on a side are dropped, as in OpenCV.
    """

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    gamma: float = 0.0
    median_filtering: int = 5

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            integer, ok, allowed = _TVL1_RULES[f.name]
            number = isinstance(value, (int, float, np.integer, np.floating))
            if isinstance(value, bool) or not (number and (not integer or float(value).is_integer())
                                               and ok(value)):
                name = "lambda" if f.name == "lambda_" else f.name
                raise ValueError(f"TV-L1 parameter {name} must be {allowed}, got {value!r}")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "TVL1Params":
        """Build from keyword arguments; accepts ``lambda`` for ``lambda_`` and rejects unknown names."""
        if "lambda" in kwargs:
            if "lambda_" in kwargs:
                raise TypeError("pass either 'lambda' or 'lambda_', not both")
            kwargs["lambda_"] = kwargs.pop("lambda")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise TypeError(f"unknown TV-L1 parameter(s) {unknown}; known: {sorted(names)}")
        return cls(**kwargs)


def to_gray(frames: Any, what: str = "frames") -> np.ndarray:
    """Validate a frame batch and return it as gray ``(N,H,W)``: uint8 stays uint8, float becomes float32.

    Accepts ``(N,H,W)`` gray or ``(N,H,W,3)`` BGR, uint8 or float in [0, 1]; a list of frames is stacked.
    """
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise ValueError(f"{what}: empty sequence of frames")
        frames = np.stack([np.asarray(f) for f in frames])
    arr = np.asarray(frames)
    if arr.ndim == 4 and arr.shape[-1] == 3:
        import cv2

        if arr.dtype != np.uint8:
            arr = arr.astype(np.float32, copy=False)
        arr = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in arr])
    elif arr.ndim != 3:
        raise ValueError(
            f"{what}: expected (N,H,W) grayscale or (N,H,W,3) BGR frames, got shape {arr.shape}")
    if arr.shape[1] < 4 or arr.shape[2] < 4:
        raise ValueError(f"{what}: frames must be at least 4x4 pixels, got {arr.shape[1]}x{arr.shape[2]}")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype.kind not in "fiu" or arr.dtype == bool:
        raise ValueError(f"{what}: expected uint8 or float frames, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


class FlowBackend(abc.ABC):
    """A dense optical flow method over batches of frame pairs (see the module docstring)."""

    name: str = ""
    default_batch_size: int = 8

    def __init__(self, params: TVL1Params | None = None, device: str | None = None,
                 batch_size: int | None = None) -> None:
        self.params = params if params is not None else TVL1Params()
        self.device = device
        if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, device={self.device!r}, params={self.params})"

    @abc.abstractmethod
    def _compute_gray(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Flow for gray pairs ``a[i] -> b[i]`` (same dtype, uint8 or float32 in [0,1]) as (N,H,W,2) float32."""

    def compute(self, frames_a: Any, frames_b: Any) -> np.ndarray:
        """Flow from each ``frames_a[i]`` to ``frames_b[i]``: (N,H,W,2) float32 numpy (dx, dy)."""
        a = to_gray(frames_a, "frames_a")
        b = to_gray(frames_b, "frames_b")
        if a.shape != b.shape:
            raise ValueError(f"frames_a and frames_b differ in shape: {a.shape} vs {b.shape}")
        if a.dtype != b.dtype:
            raise ValueError(f"frames_a and frames_b differ in dtype: {a.dtype} vs {b.dtype}")
        out = self._compute_gray(a, b)
        return np.ascontiguousarray(out, dtype=np.float32)

    def _auto_batch_size(self, height: int, width: int) -> int:
        return self.default_batch_size

    def compute_video(self, frames: Any, batch_size: int | None = None, progress: bool = True,
                      pairs: Any = None) -> np.ndarray:
        """Flow between consecutive frames: (F-1,H,W,2) float32, with a progress bar over batches.

        ``pairs``: compute only these pair indices (``p`` is frame p to p+1, e.g. the pairs a sampling
        reads, :func:`aqa.extract.patches.pairs_read`); the other rows are zeros, allocated lazily by
        ``np.zeros``, so the memory of a long video's skipped pairs is never touched. Default: all.
        """
        from aqa.data.logs import progress_bar

        gray = to_gray(frames, "frames")
        n_pairs = gray.shape[0] - 1
        if n_pairs < 1:
            raise ValueError(f"compute_video needs at least 2 frames, got {gray.shape[0]}")
        if pairs is None:
            todo = np.arange(n_pairs)
        else:
            todo = np.unique(np.asarray(pairs, dtype=np.int64))
            if todo.size and (todo[0] < 0 or todo[-1] >= n_pairs):
                raise ValueError(f"pairs must lie in [0, {n_pairs}), got [{todo[0]}, {todo[-1]}]")
        bs = batch_size or self.batch_size or self._auto_batch_size(gray.shape[1], gray.shape[2])
        out = np.zeros((n_pairs, gray.shape[1], gray.shape[2], 2), np.float32)
        with progress_bar(total=len(todo), unit="pair", desc=f"flow {self.name}", disable=not progress,
                          leave=False) as bar:
            for start in range(0, len(todo), bs):
                idx = todo[start:start + bs]
                if idx[-1] - idx[0] == len(idx) - 1:  # a run of consecutive pairs: views, no copies
                    a, b = gray[idx[0]:idx[-1] + 1], gray[idx[0] + 1:idx[-1] + 2]
                else:
                    a, b = gray[idx], gray[idx + 1]
                out[idx] = self._compute_gray(a, b)
                bar.update(len(idx))
        return out


def get_flow_backend(name: str = "auto", device: str | None = None, **params: Any) -> FlowBackend:
    """Create a flow backend by name: ``"tvl1-cpu"``, ``"tvl1-torch"`` or ``"auto"``.

    ``"auto"`` picks ``tvl1-torch`` on CUDA when it is available, else ``tvl1-cpu``. Keyword arguments are
    TV-L1 parameters (OpenCV names, see :class:`TVL1Params`), ``batch_size``, and backend options
    (``tvl1-cpu``: ``workers``; ``tvl1-torch``: ``compile``, ``check_every``).
    """
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown flow backend {name!r}; choose one of {list(BACKEND_NAMES)}")
    field_names = {f.name for f in dataclasses.fields(TVL1Params)} | {"lambda"}
    tv_kwargs = {k: v for k, v in params.items() if k in field_names}
    options = {k: v for k, v in params.items() if k not in field_names}
    tv = TVL1Params.from_kwargs(**tv_kwargs)
    if name == "auto":
        name = "tvl1-cpu"
        try:
            import torch

            if torch.cuda.is_available() and (device is None or str(device).startswith("cuda")):
                name = "tvl1-torch"
        except ImportError:
            pass
        if device is not None and str(device).startswith("cuda"):
            name = "tvl1-torch"
    spec = FLOW.get(name)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for {name}; TV-L1 parameters: "
                        f"{sorted(field_names)}, backend options: {sorted(spec.options)}")
    return load(spec.factory)(tv, device=device, **options)


def flow_to_i3d(flow: np.ndarray, bound: float = 20.0) -> np.ndarray:
    """I3D flow input (Kinetics convention): clip to [-bound, bound] px and scale to [-1, 1], float32."""
    if bound <= 0:
        raise ValueError(f"bound must be > 0, got {bound}")
    flow = np.asarray(flow)
    if flow.shape[-1:] != (2,):
        raise ValueError(f"flow must end in a (dx, dy) axis of size 2, got shape {flow.shape}")
    return (np.clip(flow.astype(np.float32, copy=False), -bound, bound) / np.float32(bound)).astype(np.float32)


CAMERA_MOTION_FIELDS = (
    "mean_dx", "mean_dy", "median_dx", "median_dy", "std_dx", "std_dy", "zoom", "rotation")


def camera_motion(flow: np.ndarray, band: float = 0.1) -> np.ndarray:
    """Camera motion from the flow in a border band of the frame, one row per frame pair.

    The band is the outer ``round(band*H)`` rows at top and bottom and ``round(band*W)`` columns left and
    right (at least 1 px), where the athlete rarely is, so its motion is mostly the camera's. For
    ``flow`` (H,W,2) returns (Dc,) and for (N,H,W,2) returns (N,Dc), Dc = 8, fields
    :data:`CAMERA_MOTION_FIELDS`:

    - ``mean_dx, mean_dy``: pan / tilt in px per frame; ``median_*`` the same, robust to a person in the
      band; ``std_*``: spread (shake, parallax, or independent motion);
    - ``zoom``: least-squares fit ``s`` of the band's flow minus its mean to an isotropic expansion
      ``s * (x - cx, y - cy)`` about the frame centre, i.e. the radial component; positive = zooming in,
      ``s = 0.01`` is a 1 % magnification per frame (the flow divergence is ``2 s``);
    - ``rotation``: the same fit to a rotation ``w * (-(y - cy), x - cx)``, radians per frame
      (counter-clockwise in image coordinates with y pointing down).
    """
    flow = np.asarray(flow, dtype=np.float64)
    single = flow.ndim == 3
    if single:
        flow = flow[None]
    if flow.ndim != 4 or flow.shape[-1] != 2:
        raise ValueError(f"flow must be (H,W,2) or (N,H,W,2), got shape {flow.shape}")
    if not 0 < band < 0.5:
        raise ValueError(f"band must be in (0, 0.5), got {band}")
    n, h, w, _ = flow.shape
    by = max(1, int(round(band * h)))
    bx = max(1, int(round(band * w)))
    mask = np.zeros((h, w), bool)
    mask[:by] = mask[-by:] = True
    mask[:, :bx] = mask[:, -bx:] = True
    ys, xs = np.nonzero(mask)
    rx = xs - (w - 1) / 2.0
    ry = ys - (h - 1) / 2.0
    r2 = float(np.sum(rx * rx + ry * ry))
    v = flow[:, ys, xs, :]                       # (N, M, 2)
    mean = v.mean(axis=1)
    med = np.median(v, axis=1)
    std = v.std(axis=1)
    c = v - mean[:, None, :]
    zoom = (c[..., 0] @ rx + c[..., 1] @ ry) / r2
    rot = (c[..., 1] @ rx - c[..., 0] @ ry) / r2
    out = np.concatenate([mean, med, std, zoom[:, None], rot[:, None]], axis=1).astype(np.float32)
    return out[0] if single else out


def crop_flow(flow: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """Crop whole-frame flow ``(...,H,W,2)`` to ``box = (x1, y1, x2, y2)`` in pixels (clipped to the frame).

    The box is widened to whole pixels (floor of x1/y1, ceil of x2/y2). A box entirely outside the frame or
    of zero area is an error. Flow values are not changed (they are displacements, not positions).
    """
    flow = np.asarray(flow)
    if flow.ndim < 3 or flow.shape[-1] != 2:
        raise ValueError(f"flow must be (...,H,W,2), got shape {flow.shape}")
    if len(box) != 4:
        raise ValueError(f"box must be (x1, y1, x2, y2), got {box!r}")
    h, w = flow.shape[-3], flow.shape[-2]
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"box must have x2 > x1 and y2 > y1, got {box!r}")
    c0, r0 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
    c1, r1 = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
    if c1 <= c0 or r1 <= r0:
        raise ValueError(f"box {box!r} lies outside the {w}x{h} frame")
    return flow[..., r0:r1, c0:c1, :]
