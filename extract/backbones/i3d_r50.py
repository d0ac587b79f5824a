"""I3D-R50: the 3D ResNet-50 of pytorchvideo's ``i3d_r50`` (Kinetics-400, 8x8 setting).

Built with ``pytorchvideo.models.resnet.create_resnet`` and the same arguments that
``pytorchvideo.models.hub.resnet.i3d_r50`` passes (stem kernel 5x7x7, a temporal max pool after
stage 1, inflated 3x1x1 ``conv_a`` kernels in the pattern of the paper), but never through the hub:
nothing is downloaded. The ``I3D_8x8_R50.pyth`` checkpoint (a dict whose ``model_state`` is the
state dict, keys like ``blocks.0.conv.weight``, ``blocks.1.res_blocks.0.branch2.conv_a.weight``,
``blocks.6.proj.weight``) is loaded strictly.

Feature: the 2048-d output of the last stage averaged over T, H, W (the input of the
classifier ``blocks.6.proj``; at the native 8x224x224 input this is exactly the head's
4x7x7 average pool). Logits: ``proj`` applied to that feature.

Input (pytorchvideo's Kinetics convention): RGB / 255, minus mean 0.45, divided by std 0.225;
frames short side 256, centre crop 224; 8-frame clips (sampling rate 8 during training).
Only pytorchvideo's model builders are imported; its ``transforms`` package (broken with
torchvision >= 0.17) is never touched.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Backbone, load_checkpoint, load_mapped_state_dict

FEATURE_DIM = 2048
KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)


def create_i3d_r50(num_classes: int = 400) -> nn.Module:
    """The ``i3d_r50`` architecture with random weights (no hub, no download)."""
    from pytorchvideo.models.resnet import create_resnet

    return create_resnet(
        model_num_class=num_classes,
        stem_conv_kernel_size=(5, 7, 7),
        stage1_pool=nn.MaxPool3d,
        stage_conv_a_kernel_size=(
            (3, 1, 1),
            [(3, 1, 1), (1, 1, 1)],
            [(3, 1, 1), (1, 1, 1)],
            [(1, 1, 1), (3, 1, 1)],
        ),
    )


def _features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    for block in model.blocks[:-1]:
        x = block(x)
    return x.mean(dim=(2, 3, 4))


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.blocks[-1].proj(_features(model, x))


def load_i3d_r50_state_dict(model: nn.Module, sd: dict) -> None:
    """Strictly load a pytorchvideo ``model_state`` dict (same key names as the built model)."""
    load_mapped_state_dict(model, sd, {k: k for k in model.state_dict()}, "pytorchvideo i3d_r50")


def build_i3d_r50(stream: str = "rgb", weights_path=None, *, device, dtype, untrained: bool = False,
                  crop_size: int = 224, resize: int | tuple[int, int] = 256, clip_len: int = 8) -> Backbone:
    """I3D-R50 backbone (rgb only); D = 2048."""
    if stream != "rgb":
        raise ValueError("i3d_r50 has only an rgb stream")
    num_classes = 400
    sd = None
    if weights_path is not None:
        sd = load_checkpoint(weights_path, "pytorchvideo_checkpoint")
        if "blocks.6.proj.weight" in sd:
            num_classes = sd["blocks.6.proj.weight"].shape[0]
    model = create_i3d_r50(num_classes)
    if sd is not None:
        load_i3d_r50_state_dict(model, sd)
    model.eval().to(device)
    mean = torch.tensor(KINETICS_MEAN, device=device).view(1, 3, 1, 1, 1)
    std = torch.tensor(KINETICS_STD, device=device).view(1, 3, 1, 1, 1)

    def normalize(x):
        return (x / 255.0 - mean) / std

    return Backbone(name="i3d-r50", stream="rgb", model=model, feature_dim=FEATURE_DIM, crop_size=crop_size,
                    clip_len=clip_len, resize=resize, normalize=normalize, features_fn=_features,
                    logits_fn=_logits, device=device, dtype=dtype,
                    weights=str(weights_path) if weights_path else None, untrained=untrained)
