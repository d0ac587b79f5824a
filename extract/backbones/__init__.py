"""Video backbones for stage 1: I3D Inception-v1, I3D-R50 (pytorchvideo) and C3D.

=========  ======  =====  ====  ======================  ========================================
name       stream  D      T     input                   default checkpoint (aqa.extract.weights)
=========  ======  =====  ====  ======================  ========================================
i3d        rgb     1024   16    224, RGB in [-1, 1]     i3d_rgb_imagenet (or ..._kinetics_hassony2)
i3d        flow    1024   16    224, flow in [-1, 1]    i3d_flow_imagenet
i3d-r50    rgb     2048   8     224, Kinetics mean/std  i3d_r50_kinetics
c3d        rgb     4096   16    112, BGR - mean         c3d_sports1m
=========  ======  =====  ====  ======================  ========================================

The names, streams, factories and default checkpoints are registered in
:data:`aqa.extract.registry.BACKBONES` (a new backbone: one module plus one line there).

Use :func:`build_backbone` with a checkpoint path from :func:`aqa.extract.weights.resolve`.
Random weights are only built when ``untrained=True`` is passed explicitly: the runner must
then mark the features as untrained in the cache's provenance. See :mod:`.base` for the input
convention (``preprocess``) and execution (batched, ``inference_mode``, bf16/fp16 autocast on
CUDA, fp32 on the CPU), and each module for its architecture and checkpoint key layout.

torch and pytorchvideo are imported when this package is imported; ``aqa.extract`` itself
does not import it.
"""
from __future__ import annotations

import inspect

import torch

from ..registry import BACKBONES
from .base import Backbone, StateDictMismatchError, autocast_dtype, load_checkpoint, scale_flow

__all__ = ["Backbone", "StateDictMismatchError", "build_backbone", "builder_options", "scale_flow",
           "load_checkpoint", "autocast_dtype"]


def build_backbone(name: str, stream: str = "rgb", weights_path=None, device="cpu", dtype=None, *,
                   untrained: bool = False, **options) -> Backbone:
    """Build backbone ``name`` for ``stream`` with the checkpoint at ``weights_path``.

    ``weights_path=None`` builds random weights and is refused unless ``untrained=True``; with a
    checkpoint, ``untrained`` is ignored (``Backbone.untrained`` is then False).
    ``dtype`` is the CUDA autocast dtype (default bf16, fp16 without bf16 support); on the CPU
    computation is always fp32. ``options`` go to the specific builder (e.g. ``feature_layer``
    for C3D, ``crop_size``/``resize``/``clip_len`` for I3D and I3D-R50, ``layout`` for I3D).
    """
    name = BACKBONES.canonical(name)
    spec = BACKBONES.get(name)
    if stream not in spec.streams:
        raise ValueError(f"backbone {name!r} has no {stream!r} stream (streams: {', '.join(spec.streams)})")
    if weights_path is None and not untrained:
        raise ValueError(f"no checkpoint for {name}/{stream}: pass weights_path (see "
                         f"aqa.extract.weights.resolve({spec.weights[stream]!r})) or untrained=True "
                         "to use random weights, whose features must be marked untrained")
    untrained = weights_path is None  # a checkpoint that was found wins over --untrained
    device = torch.device(device)
    dt = autocast_dtype(device, dtype)
    return BACKBONES.load(name)(stream, weights_path, device=device, dtype=dt, untrained=untrained, **options)


def builder_options(name: str) -> set[str]:
    """The ``options`` that :func:`build_backbone` accepts for backbone ``name`` (its builder's
    keyword parameters beyond the checkpoint, device and dtype)."""
    params = inspect.signature(BACKBONES.load(BACKBONES.canonical(name))).parameters
    return set(params) - {"stream", "weights_path", "device", "dtype", "untrained"}
