"""The pluggable parts of stage 1, one line each: backbones, pose backends, flow backends, sampling
protocols and views.

Every table is an :class:`aqa.data.registry.Registry` of specs whose ``factory`` is a
``"module:attr"`` string, imported only when the part is used, so this module imports no heavy
library and ``aqa-extract --help`` lists the parts from here (its choices and help texts are
generated from these tables). Adding a part is one module plus one line below; see
``docs/architecture.md``.

The cache's backbone feature families are named by :func:`family_name` alone
(``i3d-r50`` + ``rgb`` -> ``i3dr50_rgb``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from aqa.data.registry import Registry

__all__ = ["BackboneSpec", "PartSpec", "FlowSpec", "ViewSpec", "BACKBONES", "POSE", "FLOW",
           "SAMPLING", "VIEWS", "STREAMS", "family_name"]

#: the inputs a backbone can run on: RGB frames, or TV-L1 flow
STREAMS = ("rgb", "flow")


@dataclass(frozen=True)
class BackboneSpec:
    """``factory(stream, weights_path, *, device, dtype, untrained, **options) -> Backbone``;
    ``streams`` it was trained on; ``family``: the prefix of its cache families
    (``<family>_<stream>``); ``weights``: stream -> the checkpoint (:mod:`aqa.data.checkpoints`)
    used when none is named."""

    name: str
    factory: str
    description: str
    streams: tuple[str, ...]
    family: str
    weights: dict = field(default_factory=dict)
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class PartSpec:
    """A part chosen by name: ``factory`` is a pose backend (a :class:`aqa.extract.pose.PoseBackend`
    subclass) or a sampling protocol (``factory(n_frames, **options) -> Sampling``,
    :mod:`aqa.extract.sampling`)."""

    name: str
    factory: str
    description: str


@dataclass(frozen=True)
class FlowSpec:
    """``factory(params: TVL1Params, device=None, **options)``: a :class:`aqa.extract.flow.FlowBackend`;
    ``options``: the backend options it takes besides the TV-L1 parameters."""

    name: str
    factory: str
    description: str
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class ViewSpec:
    """``factory(data: VideoData[, amount][, seed=]) -> VideoData`` (:mod:`aqa.extract.views`);
    ``syntax``: how ``--view`` spells it; ``seeded``: it draws at random (from ``seed``)."""

    name: str
    factory: str
    description: str
    syntax: str
    seeded: bool = False


BACKBONES: Registry[BackboneSpec] = Registry("backbone", [
    BackboneSpec("i3d", "aqa.extract.backbones.i3d:build_i3d",
                 "I3D Inception-v1, 1024-d, rgb and flow", ("rgb", "flow"), "i3d",
                 {"rgb": "i3d_rgb_imagenet", "flow": "i3d_flow_imagenet"}),
    BackboneSpec("i3d-r50", "aqa.extract.backbones.i3d_r50:build_i3d_r50",
                 "I3D ResNet-50 (pytorchvideo), 2048-d, rgb", ("rgb",), "i3dr50",
                 {"rgb": "i3d_r50_kinetics"}, aliases=("i3d_r50", "i3dr50")),
    BackboneSpec("c3d", "aqa.extract.backbones.c3d:build_c3d",
                 "C3D (Sports-1M), 4096-d fc6, rgb", ("rgb",), "c3d", {"rgb": "c3d_sports1m"}),
])

POSE: Registry[PartSpec] = Registry("pose backend", [
    PartSpec("file", "aqa.extract.pose.files:FilePoseBackend",
             "reads pose files beside the videos (COCO results, AlphaPose, OpenPose, aqa sidecars)"),
    PartSpec("keypoint-rcnn", "aqa.extract.pose.rcnn:KeypointRCNNBackend",
             "torchvision Keypoint R-CNN R50-FPN (COCO)"),
    PartSpec("detectron2", "aqa.extract.pose.detectron:Detectron2Backend",
             "detectron2 keypoint_rcnn_R_50_FPN_3x (if installed)"),
    PartSpec("blazepose", "aqa.extract.pose.blazepose:BlazePoseBackend",
             "MediaPipe Pose, one person per frame (extra [blazepose])"),
])

FLOW: Registry[FlowSpec] = Registry("flow backend", [
    FlowSpec("tvl1-cpu", "aqa.extract.flow.tvl1_cv:OpenCVTVL1",
             "OpenCV contrib's TV-L1, frame pairs on parallel threads", ("batch_size", "workers")),
    FlowSpec("tvl1-torch", "aqa.extract.flow.tvl1_torch:TorchTVL1",
             "batched PyTorch TV-L1 on CUDA or the CPU", ("batch_size", "compile", "check_every")),
])

SAMPLING: Registry[PartSpec] = Registry("sampling protocol", [
    PartSpec("jrg", "aqa.extract.sampling:jrg", "T segments of `length` evenly spaced frames (Pan et al.)"),
    PartSpec("core", "aqa.extract.sampling:core", "overlapping 16-frame windows of 103 frames (Yu et al.)"),
    PartSpec("core-jigsaws", "aqa.extract.sampling:core_jigsaws",
                 "10 non-overlapping 16-frame snippets of 160 evenly sampled frames (CoRe on JIGSAWS)"),
    PartSpec("c3d", "aqa.extract.sampling:c3d", "consecutive 16-frame clips every `stride` frames"),
    PartSpec("fragments", "aqa.extract.sampling:fragments",
                 "n_fragments consecutive 16-frame fragments (Li et al.)"),
])

VIEWS: Registry[ViewSpec] = Registry("view", [
    ViewSpec("flip", "aqa.extract.views:flip", "mirrored left-right", "flip"),
    ViewSpec("shift", "aqa.extract.views:shift", "starting K frames later", "shift:K or shift:K-L"),
    ViewSpec("zoom", "aqa.extract.views:zoom", "the central 1/F of each frame scaled back up, 1 < F <= 4",
             "zoom:F"),
    ViewSpec("bright", "aqa.extract.views:bright", "intensities times G", "bright:G"),
    ViewSpec("histeq", "aqa.extract.views:histeq", "luminance histogram-equalised", "histeq"),
    ViewSpec("mask", "aqa.extract.views:mask", "the background outside the performers' boxes blacked out",
             "mask"),
    ViewSpec("drop", "aqa.extract.views:drop", "a fraction P of the frames dropped at random, the same ones "
             "on every run", "drop:P", seeded=True),
])


def family_name(backbone: str, stream: str) -> str:
    """The cache family of ``backbone``'s features on ``stream``: ``<family>_<stream>``."""
    return f"{BACKBONES.get(backbone).family}_{stream}"
