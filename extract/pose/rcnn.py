"""``keypoint-rcnn``: torchvision's Keypoint R-CNN (ResNet-50-FPN, COCO), the seed papers' "Mask-RCNN pose".

The model is built with ``weights=None, weights_backbone=None`` (torchvision never downloads
anything) and the COCO checkpoint is loaded from the file :func:`aqa.extract.weights.resolve` finds
(``keypointrcnn_resnet50_fpn_coco``, or the ``..._legacy`` one via ``checkpoint=``). Without the file
:class:`~aqa.extract.weights.MissingWeightsError` says where to put it, unless ``untrained=True``,
which runs randomly initialised weights (``self.untrained`` is then True, for provenance).

Output per detection: the box, its score, and 17 keypoints whose score is the sigmoid of the
keypoint heatmap logit torchvision returns as ``keypoints_scores`` (so every backend reports
scores in [0, 1]). Frames are run in batches of ``batch_size``.
"""
from __future__ import annotations

import inspect
import warnings

import numpy as np

from .base import FramePoses, PoseBackend, sigmoid

__all__ = ["KeypointRCNNBackend", "convert_torchvision_output"]


def convert_torchvision_output(out: dict, score_threshold: float = 0.0) -> FramePoses:
    """One torchvision detection dict (``boxes``, ``labels``, ``scores``, ``keypoints``,
    ``keypoints_scores``) -> :class:`FramePoses`, keeping persons (label 1) with score >= threshold."""
    def np_(t):
        return t.detach().float().cpu().numpy() if hasattr(t, "detach") else np.asarray(t, np.float32)

    boxes, scores = np_(out["boxes"]).reshape(-1, 4), np_(out["scores"]).reshape(-1)
    kp = np_(out["keypoints"]).reshape(-1, 17, 3).copy()
    kp_scores = np_(out["keypoints_scores"]).reshape(-1, 17)
    labels = np_(out["labels"]).reshape(-1) if "labels" in out else np.ones(len(scores))
    keep = (labels == 1) & (scores >= score_threshold)
    kp[:, :, 2] = sigmoid(kp_scores)
    return FramePoses(boxes[keep], scores[keep], kp[keep])


def _check_model_options(options: dict) -> None:
    """torchvision's constructors pass unknown keywords on to the image transform, which ignores them:
    refuse any that neither ``KeypointRCNN`` nor ``GeneralizedRCNNTransform`` names."""
    from torchvision.models.detection.keypoint_rcnn import KeypointRCNN
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    taken = {"backbone", "num_classes", "num_keypoints", "box_score_thresh", "box_detections_per_img", "self",
             "kwargs"}  # set by the backend, or not options
    known = {n for c in (KeypointRCNN, GeneralizedRCNNTransform)
             for n in inspect.signature(c.__init__).parameters} - taken
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {', '.join(unknown)}; Keypoint R-CNN takes "
                        f"score_threshold, max_detections, checkpoint and {', '.join(sorted(known))}")



def _read_state_dict(path):
    """The checkpoint at ``path`` as a dict of tensors (a ``{"model": ...}`` wrapper, as torchvision
    writes, is opened); anything else is a one-line StateDictMismatchError."""
    import torch

    from aqa.extract.backbones.base import StateDictMismatchError
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure: not a checkpoint
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise StateDictMismatchError(f"cannot read {path} as a PyTorch checkpoint: {first[:200]}") from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                            for k, v in obj.items()):
        raise StateDictMismatchError(f"{path}: expected a state dict of tensors")
    return obj

class KeypointRCNNBackend(PoseBackend):
    """torchvision ``keypointrcnn_resnet50_fpn`` on batches of frames (see module docstring).

    Options: ``score_threshold`` (0.5: persons below are dropped), ``max_detections`` (per frame,
    100), ``min_size``/``max_size`` (the model's internal resize, 800/1333 as trained),
    ``checkpoint`` (registry name); any other keyword goes to torchvision's ``KeypointRCNN``
    constructor (e.g. ``rpn_post_nms_top_n_test``).
    """

    name = "keypoint-rcnn"
    default_checkpoint = "keypointrcnn_resnet50_fpn_coco"

    def __init__(self, device: str = "cpu", weights=None, batch_size: int = 4, untrained: bool = False,
                 score_threshold: float = 0.5, max_detections: int = 100, min_size: int = 800,
                 max_size: int = 1333,
                 checkpoint: str | None = None, **model_options):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        path, provenance = self.resolve_checkpoint(weights, untrained, checkpoint)  # fails fast, before torch
        import torch
        from torchvision.models.detection import keypointrcnn_resnet50_fpn

        _check_model_options(model_options)
        self.device = torch.device(device)
        self.batch_size, self.score_threshold = int(batch_size), float(score_threshold)
        model = keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_keypoints=17,
                                          min_size=min_size, max_size=max_size,
                                          box_score_thresh=min(0.05, self.score_threshold),
                                          box_detections_per_img=int(max_detections), **model_options)
        if path is None:
            self.untrained = True
            warnings.warn("keypoint-rcnn runs with RANDOM weights (untrained=True): its poses are "
                          "meaningless and marked untrained", UserWarning, stacklevel=2)
        else:
            from aqa.extract.backbones.base import StateDictMismatchError
            state = _read_state_dict(path)
            try:
                missing, unexpected = model.load_state_dict(state, strict=False)
            except RuntimeError as e:           # shapes that differ: torch's text runs over lines
                raise StateDictMismatchError(f"{path} does not match keypointrcnn_resnet50_fpn: "
                                             f"{' '.join(str(e).split())[:300]}") from None
            if missing or unexpected:
                raise StateDictMismatchError(
                    f"{path} does not match keypointrcnn_resnet50_fpn: {len(missing)} missing keys "
                    f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})")
            self.weights.update(provenance)
        self.model = model.eval().to(self.device)

    def estimate(self, frames, video_path=None, frame_indices=None, progress: bool = True) -> list[FramePoses]:
        import torch
        from aqa.data.logs import progress_bar

        arr = self._check_frames(frames)
        out: list[FramePoses] = []
        with torch.inference_mode(), progress_bar(total=len(arr), desc="pose keypoint-rcnn",
                                                  unit="frame", disable=not progress,
                                                  leave=False) as bar:
            for s in range(0, len(arr), self.batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(arr[s:s + self.batch_size]))
                batch = batch.to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
                for det in self.model(list(batch)):
                    out.append(convert_torchvision_output(det, self.score_threshold))
                bar.update(len(batch))
        return out
