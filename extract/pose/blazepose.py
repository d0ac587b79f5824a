"""``blazepose``: MediaPipe Pose (BlazePose GHUM 3D, "full" model), mapped to COCO-17.

Install: ``pip install 'aqa-pipeline[blazepose]' && pip install --no-deps mediapipe==0.10.14``
(the extra installs mediapipe's runtime needs; mediapipe itself goes in with ``--no-deps``
because its requirements pull a second OpenCV wheel that clashes with
opencv-contrib-python-headless). That wheel ships
``pose_detection.tflite`` and ``pose_landmark_full.tflite``, so it runs offline; newer mediapipe
releases fetch their models at run time. Only ``model_complexity=1`` (full) is in the wheel; 0
(lite) and 2 (heavy) are downloaded by mediapipe on first use and fail on an offline machine.

MediaPipe Pose finds **one person per frame** (the most prominent); two-person events need another
backend. With ``static_image_mode=False`` (default) it tracks the person across consecutive frames
of one ``estimate`` call (a fresh tracker per call, so videos never leak into each other); pass
``static_image_mode=True`` for unrelated images or sparse frames.

Conversion: landmark ``BLAZEPOSE_TO_COCO[k]`` of the 33 BlazePose landmarks is COCO keypoint k
(nose 0, eyes 2/5, ears 7/8, shoulders 11/12, elbows 13/14, wrists 15/16, hips 23/24, knees 25/26,
ankles 27/28); x and y are scaled from MediaPipe's normalised [0, 1] image coordinates to pixels;
the score is the landmark ``visibility``. The box is the extent of all 33 landmarks (they include
heels, toes and finger tips) grown by ``box_margin`` (5%) per side and clipped to the image; the box
score is the mean visibility of the 17 COCO keypoints (MediaPipe's solution API exposes no detector
score).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..weights import sha256_file
from .base import FramePoses, PoseBackend, PoseBackendUnavailable

__all__ = ["BlazePoseBackend", "BLAZEPOSE_TO_COCO", "landmarks_to_frameposes", "INSTALL_HINT"]

#: COCO-17 keypoint k = BlazePose landmark BLAZEPOSE_TO_COCO[k]
BLAZEPOSE_TO_COCO = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
INSTALL_HINT = ("the blazepose backend needs mediapipe 0.10.14 (its wheel ships the pose models): "
                "pip install 'aqa-pipeline[blazepose]' && pip install --no-deps mediapipe==0.10.14 "
                "(--no-deps: mediapipe's own requirements pull a second OpenCV wheel that clashes "
                "with opencv-contrib-python-headless)")


def landmarks_to_frameposes(landmarks: np.ndarray, width: int, height: int, box_margin: float = 0.05) -> FramePoses:
    """(33, 4) BlazePose landmarks ``(x, y, z, visibility)`` in normalised coordinates -> one-person
    :class:`FramePoses` in pixels (see module docstring)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (33, 4):
        raise ValueError(f"expected (33, 4) landmarks (x, y, z, visibility), got {lm.shape}")
    px = lm[:, 0] * width
    py = lm[:, 1] * height
    kp = np.stack([px, py, lm[:, 3]], axis=1)[list(BLAZEPOSE_TO_COCO)]
    x1, y1, x2, y2 = px.min(), py.min(), px.max(), py.max()
    mx, my = box_margin * (x2 - x1), box_margin * (y2 - y1)
    box = np.array([max(x1 - mx, 0.0), max(y1 - my, 0.0), min(x2 + mx, width - 1.0), min(y2 + my, height - 1.0)])
    score = float(np.clip(kp[:, 2], 0, 1).mean())
    return FramePoses(box[None], np.array([score]), kp[None])


def _model_hashes(mp, model_complexity: int) -> dict[str, str]:
    """sha256 of the .tflite files this configuration runs (provenance), keyed like the registry."""
    root = Path(mp.__file__).parent / "modules"
    variant = {0: "lite", 1: "full", 2: "heavy"}.get(model_complexity, str(model_complexity))
    out = {}
    for rel in ("pose_detection/pose_detection.tflite", f"pose_landmark/pose_landmark_{variant}.tflite"):
        f = root / rel
        if f.is_file():
            out[f"mediapipe_{Path(rel).stem}"] = sha256_file(f)
    return out


class BlazePoseBackend(PoseBackend):
    """MediaPipe Pose on each frame (see module docstring)."""

    name = "blazepose"

    def __init__(self, device: str = "cpu", weights=None, batch_size: int = 1, untrained: bool = False,
                 static_image_mode: bool = False, model_complexity: int = 1,
                 min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 box_margin: float = 0.05):
        super().__init__()
        try:
            import mediapipe as mp
        except ImportError as exc:
            raise PoseBackendUnavailable(INSTALL_HINT) from exc
        # ``untrained`` is accepted for a uniform signature: the weights ship inside the wheel, so
        # this backend is never untrained.
        self._mp_pose = mp.solutions.pose
        self.options = dict(static_image_mode=bool(static_image_mode), model_complexity=int(model_complexity),
                            min_detection_confidence=float(min_detection_confidence),
                            min_tracking_confidence=float(min_tracking_confidence))
        self.box_margin = float(box_margin)
        self.weights.update(_model_hashes(mp, self.options["model_complexity"]))

    def estimate(self, frames, video_path=None, frame_indices=None, progress: bool = True) -> list[FramePoses]:
        from aqa.data.logs import progress_bar

        arr = self._check_frames(frames)
        h, w = arr.shape[1:3]
        out: list[FramePoses] = []
        with self._mp_pose.Pose(**self.options) as pose:
            for img in progress_bar(arr, desc="pose blazepose", unit="frame", disable=not progress,
                                    leave=False):
                res = pose.process(np.ascontiguousarray(img))
                if res.pose_landmarks is None:
                    out.append(FramePoses.empty())
                    continue
                lm = np.array([(p.x, p.y, p.z, p.visibility) for p in res.pose_landmarks.landmark])
                out.append(landmarks_to_frameposes(lm, w, h, self.box_margin))
        return out
