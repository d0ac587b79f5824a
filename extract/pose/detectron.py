"""``detectron2``: detectron2's model-zoo Keypoint R-CNN (``COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x``).

Used when detectron2 is importable. It is not on PyPI; install it from source
(``pip install 'git+https://github.com/facebookresearch/detectron2.git'``, needs a compiler and a
matching torch), otherwise this backend raises :class:`PoseBackendUnavailable` with that hint.

The checkpoint (``model_final_a6e10b.pkl``) comes from :func:`aqa.extract.weights.resolve`
(``detectron2_keypoint_rcnn_R_50_FPN_3x``); ``cfg.MODEL.WEIGHTS`` is set to that local file, or to
``""`` with ``untrained=True`` (the zoo config's default would fetch ImageNet weights from the network,
which we never do). Frames are run in batches through ``predictor.model`` with the predictor's own
resize (``ResizeShortestEdge``) and BGR input, as ``DefaultPredictor.__call__`` does for one image.
``instances.pred_keypoints`` holds ``(x, y, heatmap logit)``: the logit goes through a sigmoid so the
score is in [0, 1] like every other backend.
"""
from __future__ import annotations

import warnings

import numpy as np

from .base import FramePoses, PoseBackend, PoseBackendUnavailable, sigmoid

__all__ = ["Detectron2Backend", "convert_instances", "ZOO_CONFIG", "INSTALL_HINT"]

ZOO_CONFIG = "COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml"
INSTALL_HINT = ("detectron2 is not installed (it is not on PyPI). Install it from source: "
                "pip install 'git+https://github.com/facebookresearch/detectron2.git' "
                "(see https://detectron2.readthedocs.io/en/latest/tutorials/install.html), "
                "or use --pose keypoint-rcnn, the same model family in torchvision.")


def _to_numpy(t) -> np.ndarray:
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()
    return np.asarray(t, dtype=np.float32)


def convert_instances(instances, score_threshold: float = 0.0) -> FramePoses:
    """A detectron2 ``Instances`` (``pred_boxes`` (a Boxes with ``.tensor``), ``scores``,
    ``pred_keypoints`` (N, 17, 3) ``(x, y, logit)``, optional ``pred_classes``) -> :class:`FramePoses`."""
    if hasattr(instances, "to"):
        instances = instances.to("cpu")
    n = len(instances)
    if n == 0:
        return FramePoses.empty()
    boxes = getattr(instances, "pred_boxes")
    boxes = _to_numpy(getattr(boxes, "tensor", boxes)).reshape(n, 4)
    scores = _to_numpy(instances.scores).reshape(n)
    if not hasattr(instances, "pred_keypoints"):
        raise ValueError("detectron2 instances carry no pred_keypoints: not a keypoint model")
    kp = _to_numpy(instances.pred_keypoints).reshape(n, -1, 3).copy()
    if kp.shape[1] != 17:
        raise ValueError(f"expected 17 COCO keypoints, got {kp.shape[1]}")
    kp[:, :, 2] = sigmoid(kp[:, :, 2])
    keep = scores >= score_threshold
    if hasattr(instances, "pred_classes"):
        keep &= _to_numpy(instances.pred_classes).reshape(n) == 0  # the keypoint model's only class: person
    return FramePoses(boxes[keep], scores[keep], kp[keep])


class Detectron2Backend(PoseBackend):
    """detectron2 Keypoint R-CNN R50-FPN 3x (see module docstring)."""

    name = "detectron2"
    default_checkpoint = "detectron2_keypoint_rcnn_R_50_FPN_3x"

    def __init__(self, device: str = "cpu", weights=None, batch_size: int = 4, untrained: bool = False,
                 score_threshold: float = 0.5, checkpoint: str | None = None):
        super().__init__()
        try:
            from detectron2 import model_zoo
            from detectron2.config import get_cfg
            from detectron2.engine import DefaultPredictor
        except ImportError as exc:
            raise PoseBackendUnavailable(INSTALL_HINT) from exc
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        path, provenance = self.resolve_checkpoint(weights, untrained, checkpoint)
        cfg = get_cfg()
        cfg.merge_from_file(model_zoo.get_config_file(ZOO_CONFIG))
        cfg.MODEL.DEVICE = str(device)
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = float(score_threshold)
        if path is None:
            cfg.MODEL.WEIGHTS = ""
            self.untrained = True
            warnings.warn("detectron2 keypoint model runs with RANDOM weights (untrained=True)", UserWarning,
                          stacklevel=2)
        else:
            cfg.MODEL.WEIGHTS = str(path)
            self.weights.update(provenance)
        self.cfg = cfg
        self.predictor = DefaultPredictor(cfg)
        self.batch_size, self.score_threshold = int(batch_size), float(score_threshold)

    def estimate(self, frames, video_path=None, frame_indices=None, progress: bool = True) -> list[FramePoses]:
        import torch
        from aqa.data.logs import progress_bar

        arr = self._check_frames(frames)
        pred = self.predictor
        bgr = pred.input_format == "BGR"
        out: list[FramePoses] = []
        with torch.no_grad(), progress_bar(total=len(arr), desc="pose detectron2", unit="frame",
                                           disable=not progress, leave=False) as bar:
            for s in range(0, len(arr), self.batch_size):
                inputs = []
                for img in arr[s:s + self.batch_size]:
                    img = img[:, :, ::-1] if bgr else img
                    h, w = img.shape[:2]
                    resized = pred.aug.get_transform(img).apply_image(img)
                    tensor = torch.as_tensor(np.ascontiguousarray(resized).astype("float32").transpose(2, 0, 1))
                    inputs.append({"image": tensor.to(pred.cfg.MODEL.DEVICE), "height": h, "width": w})
                for res in pred.model(inputs):
                    out.append(convert_instances(res["instances"], self.score_threshold))
                bar.update(len(inputs))
        return out
