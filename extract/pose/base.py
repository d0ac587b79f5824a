"""Shared types of the pose backends: per-frame detections, the backend interface, errors."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import weights as W

__all__ = [
    "COCO_KEYPOINTS", "COCO_SKELETON", "FramePoses", "PoseBackend", "PoseError", "PoseBackendUnavailable",
    "PoseFileError", "boxes_from_keypoints", "sigmoid",
]

#: COCO-17 keypoint order used by every backend and by the cache.
COCO_KEYPOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)
#: COCO-17 limbs (pairs of keypoint indices), for drawing and plausibility checks.
COCO_SKELETON = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
                 (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))


class PoseError(RuntimeError):
    """Base class of pose errors."""


class PoseBackendUnavailable(PoseError, ImportError):
    """The library a backend needs is not installed (the message says how to install it)."""


class PoseFileError(PoseError, ValueError):
    """A pose file is missing or malformed (the message names the file and the problem)."""


@dataclass
class FramePoses:
    """Detected persons of one frame.

    ``boxes`` (P, 4) float32 ``x1, y1, x2, y2`` pixels; ``box_scores`` (P,) float32 in [0, 1];
    ``keypoints`` (P, 17, 3) float32 ``(x, y, score)`` in COCO-17 order (:data:`COCO_KEYPOINTS`),
    pixel coordinates of the frame the backend saw, score in [0, 1]. P may be 0.

    Optional, from stored poses only: ``ids`` (P,) int64 identities that are consistent across the
    frames of one video (an AlphaPose track ``idx``, a sidecar person index) and ``roles`` (P,) int8
    roles declared by the source (0 primary, 1 secondary; the synthetic sidecar). Models leave them
    None; :func:`~aqa.extract.pose.select_persons` uses them when every frame has them.
    """

    boxes: np.ndarray
    box_scores: np.ndarray
    keypoints: np.ndarray
    ids: np.ndarray | None = None
    roles: np.ndarray | None = None

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.box_scores = np.asarray(self.box_scores, dtype=np.float32).reshape(-1)
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32).reshape(-1, 17, 3)
        p = len(self.boxes)
        if len(self.box_scores) != p or len(self.keypoints) != p:
            raise ValueError(f"FramePoses: {p} boxes, {len(self.box_scores)} scores and "
                             f"{len(self.keypoints)} keypoint sets must agree")
        for name, dtype in (("ids", np.int64), ("roles", np.int8)):
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v, dtype=dtype).reshape(-1)
                if len(v) != p:
                    raise ValueError(f"FramePoses: {len(v)} {name} for {p} persons")
                setattr(self, name, v)

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> "FramePoses":
        return cls(np.zeros((0, 4)), np.zeros((0,)), np.zeros((0, 17, 3)))

    def scaled(self, sx: float, sy: float) -> "FramePoses":
        """Coordinates multiplied by ``sx`` (x) and ``sy`` (y); scores unchanged."""
        b = self.boxes * np.array([sx, sy, sx, sy], np.float32)
        k = self.keypoints.copy()
        k[..., 0] *= sx
        k[..., 1] *= sy
        return FramePoses(b, self.box_scores.copy(), k, self.ids, self.roles)


def sigmoid(x) -> np.ndarray:
    """Logistic function, used to map the R-CNN keypoint heatmap logits to [0, 1] scores."""
    x = np.asarray(x, dtype=np.float64)
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)


def boxes_from_keypoints(keypoints: np.ndarray, min_score: float = 0.0, margin: float = 0.0) -> np.ndarray:
    """Tight ``xyxy`` box around each person's keypoints with score > ``min_score`` (NaN if none),
    grown by ``margin`` x its width/height on every side."""
    kp = np.asarray(keypoints, dtype=np.float32).reshape(-1, keypoints.shape[-2], 3)
    out = np.full((len(kp), 4), np.nan, np.float32)
    for i, k in enumerate(kp):
        ok = (k[:, 2] > min_score) & np.isfinite(k[:, 0]) & np.isfinite(k[:, 1])
        if not ok.any():
            continue
        x1, y1 = k[ok, 0].min(), k[ok, 1].min()
        x2, y2 = k[ok, 0].max(), k[ok, 1].max()
        mx, my = margin * (x2 - x1), margin * (y2 - y1)
        out[i] = (x1 - mx, y1 - my, x2 + mx, y2 + my)
    return out


class PoseBackend:
    """Interface of every pose backend.

    ``estimate(frames, video_path=None, frame_indices=None)`` takes ``(F, H, W, 3)`` uint8 RGB frames
    and returns one :class:`FramePoses` per frame. ``video_path``/``frame_indices`` (default
    ``arange(F)``) matter only to backends that read stored poses. ``untrained`` is True when the
    model runs with randomly initialised weights (then every output must be marked so);
    ``weights`` maps checkpoint name -> sha256 of the file used (provenance).
    """

    name = "base"
    untrained = False
    #: registry name of the checkpoint file the model loads by default; None: the backend loads none
    #: through the registry (stored poses, MediaPipe's bundled models) and is cheap to build
    default_checkpoint: str | None = None

    def __init__(self):
        self.weights: dict[str, str] = {}

    @classmethod
    def resolve_checkpoint(cls, weights=None, untrained: bool = False, checkpoint: str | None = None):
        """(path, provenance) of the checkpoint this backend would load, without building its model:
        path is None for random weights (``untrained``; a missing file otherwise raises
        :class:`aqa.extract.weights.MissingWeightsError`), provenance maps the name to its sha256."""
        name = checkpoint or cls.default_checkpoint
        path = W.resolve(name, overrides=weights, untrained=untrained)
        return path, ({name: W.sha256_file(path)} if path is not None else {})

    def estimate(self, frames, video_path=None, frame_indices=None, progress: bool = True) -> list[FramePoses]:
        raise NotImplementedError

    def describe(self) -> dict:
        """Provenance: backend name, options, weights and the untrained flag."""
        return {"backend": self.name, "untrained": bool(self.untrained), "weights": dict(self.weights)}

    @staticmethod
    def _check_frames(frames) -> np.ndarray:
        arr = np.asarray(frames)
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"frames must be (F, H, W, 3) RGB, got shape {arr.shape}")
        if arr.dtype != np.uint8:
            raise ValueError(f"frames must be uint8, got {arr.dtype}")
        return arr
