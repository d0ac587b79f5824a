"""Pose estimation behind one interface, and person selection.

``get_pose_backend(name, device="cpu", weights=None, batch_size=4, untrained=False, **options)``
returns a :class:`PoseBackend` whose ``estimate(frames (F,H,W,3) uint8 RGB, video_path=None,
frame_indices=None)`` gives one :class:`FramePoses` per frame (boxes (P,4) xyxy, box_scores (P,),
keypoints (P,17,3) ``(x, y, score)`` in COCO-17 order, pixels, scores in [0, 1]).
:func:`select_persons` turns those into a :class:`PoseTrack` of 1 or 2 consistent persons.

Backends (registered in :data:`aqa.extract.registry.POSE`; heavy libraries are imported only
when a backend is built):

- ``keypoint-rcnn`` (:mod:`.rcnn`): torchvision Keypoint R-CNN R50-FPN, COCO checkpoint from the
  weights registry.
- ``detectron2`` (:mod:`.detectron`): detectron2 model zoo keypoint_rcnn_R_50_FPN_3x (if installed).
- ``blazepose`` (:mod:`.blazepose`): MediaPipe Pose, one person per frame, extra ``[blazepose]``.
- ``file`` (:mod:`.files`): COCO results / AlphaPose / OpenPose / aqa synthetic sidecar files.
"""
from __future__ import annotations

from ..registry import POSE
from .base import (COCO_KEYPOINTS, COCO_SKELETON, FramePoses, PoseBackend, PoseBackendUnavailable, PoseError,
                   PoseFileError, boxes_from_keypoints)
from .selection import PoseTrack, box_iou, select_persons

__all__ = [
    "COCO_KEYPOINTS", "COCO_SKELETON", "FramePoses", "PoseBackend", "PoseError", "PoseBackendUnavailable",
    "PoseFileError", "PoseTrack", "select_persons", "box_iou", "boxes_from_keypoints", "get_pose_backend",
    "pose_backend_class", "BACKENDS",
]

#: the pose backends' names (:data:`aqa.extract.registry.POSE`)
BACKENDS = POSE.names()


def pose_backend_class(name: str) -> type[PoseBackend]:
    """The class of pose backend ``name`` (importing it imports no heavy library)."""
    return POSE.load(name)


def get_pose_backend(name: str, device: str = "cpu", weights=None, batch_size: int = 4,
                     untrained: bool = False, **options) -> PoseBackend:
    """Build pose backend ``name`` (one of :data:`BACKENDS`).

    ``weights`` is the ``{checkpoint name: path}`` override dict of :func:`aqa.extract.weights.resolve`;
    a missing checkpoint raises :class:`aqa.extract.weights.MissingWeightsError` unless ``untrained``.
    ``options`` go to the backend (e.g. ``score_threshold`` for the R-CNNs, ``path`` for ``file``,
    ``static_image_mode`` for ``blazepose``); unknown options are a ``TypeError``.
    """
    name = POSE.canonical(name)
    cls = pose_backend_class(name)
    if name == "file":
        return cls(**options)  # no model: device, weights, batch size do not apply
    try:
        return cls(device=device, weights=weights, batch_size=batch_size, untrained=untrained, **options)
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise TypeError(f"pose backend {name!r}: {exc}") from None
        raise
