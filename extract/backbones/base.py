"""The common backbone interface, input preprocessing and strict state-dict loading.

A :class:`Backbone` wraps an ``nn.Module`` plus the input convention its public weights expect.
Callers hand it raw clips and get pooled features back::

    bb = build_backbone("i3d", "rgb", weights_path, device="cuda")
    feats = bb.extract(clips_uint8)          # (N, T, H, W, 3) uint8 RGB -> (N, 1024) float32

Input conventions (``preprocess``):

* ``rgb``: uint8 RGB clips ``(N, T, H, W, 3)``; the backbone applies its own value scaling
  (I3D: [-1, 1]; I3D-R50: Kinetics mean/std; C3D: BGR minus the Sports-1M mean).
* ``flow``: float clips ``(N, T, H, W, 2)`` (x, y) already clipped to [-20, 20] pixels and
  divided by 20, i.e. in [-1, 1] (the Kinetics I3D convention; see :func:`scale_flow`). Values
  outside [-1, 1] are rejected so unscaled flow is never silently fed to the network.
  Resizing does not rescale flow vectors: compute flow at (about) the resolution that is fed to
  the network, as the Kinetics I3D recipe does (flow on frames whose short side is 256).
* spatial: ``mode="frame"`` resizes whole frames (I3D / I3D-R50: short side to 256 keeping the
  aspect ratio, then a centre crop of 224x224; C3D: to exactly 128x171, then a centre crop of
  112x112, as in Tran et al.); ``mode="patch"`` resizes joint patches directly to the crop size
  (no crop, the patch is already centred on the joint). Resizing is bilinear (antialiased when
  shrinking) on the float tensor.

Execution: ``forward_features`` runs under ``torch.inference_mode``; on CUDA it autocasts to
bf16 (fp16 where bf16 is unsupported) and on the CPU it stays fp32; features are returned as
float32. :meth:`Backbone.extract` splits the input into batches (with an optional progress bar, :func:`aqa.data.logs.progress_bar`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class StateDictMismatchError(RuntimeError):
    """A checkpoint's keys or shapes do not match the expected public layout."""


def scale_flow(flow, bound: float = 20.0):
    """Clip optical flow (pixels) to [-bound, bound] and divide by bound, giving [-1, 1]."""
    if isinstance(flow, torch.Tensor):
        return flow.clamp(-bound, bound) / bound
    return np.clip(np.asarray(flow, dtype=np.float32), -bound, bound) / bound


def load_checkpoint(path, fmt: str = "torch_state_dict") -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat ``{key: tensor}`` dict on the CPU.

    ``fmt`` is a :class:`aqa.extract.weights.WeightSpec` format: ``torch_state_dict`` or
    ``pytorchvideo_checkpoint`` (whose ``model_state`` entry is the state dict). Files are read
    with ``weights_only=True``: a checkpoint that needs arbitrary code to unpickle is refused.
    """
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with context
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]  # torch's text runs on
        raise StateDictMismatchError(f"cannot read {path} as a PyTorch checkpoint ({fmt}): "
                                     f"{first[:200]}") from e
    if fmt == "pytorchvideo_checkpoint":
        if not isinstance(obj, dict) or "model_state" not in obj:
            keys = list(obj)[:5] if isinstance(obj, dict) else type(obj).__name__
            raise StateDictMismatchError(f"{path}: expected a pytorchvideo checkpoint with a 'model_state' "
                                         f"entry, found {keys}")
        obj = obj["model_state"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise StateDictMismatchError(f"{path}: expected a state dict of tensors")
    return dict(obj)


def _is_bn_counter(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def load_mapped_state_dict(model: nn.Module, public_sd: dict, key_map: dict[str, str], layout: str) -> None:
    """Load ``public_sd`` into ``model`` through ``key_map`` (our key -> public key), strictly.

    Every mapped public key must be present with the right shape and no other key may be
    present; any difference raises :class:`StateDictMismatchError` naming the keys. BatchNorm
    ``num_batches_tracked`` counters are ignored on both sides (they do not affect inference and
    the PyTorch-0.3-era ports do not store them).
    """
    ours = model.state_dict()
    expected = {pk: ok for ok, pk in key_map.items() if not _is_bn_counter(ok)}
    given = {k for k in public_sd if not _is_bn_counter(k)}
    missing = sorted(set(expected) - given)
    unexpected = sorted(given - set(expected))
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing[:20])}" + (" ..." if len(missing) > 20 else ""))
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected[:20])}" + (" ..." if len(unexpected) > 20 else ""))
    for pk, ok in expected.items():
        if pk in public_sd and tuple(public_sd[pk].shape) != tuple(ours[ok].shape):
            problems.append(f"shape of {pk}: checkpoint {tuple(public_sd[pk].shape)} vs model {tuple(ours[ok].shape)}")
    if problems:
        raise StateDictMismatchError(f"checkpoint does not match the {layout} layout: " + "; ".join(problems))
    new_sd = {ok: public_sd[pk] for pk, ok in expected.items()}
    for k, v in ours.items():  # keep our own BN counters
        if _is_bn_counter(k):
            new_sd[k] = v
    model.load_state_dict(new_sd, strict=True)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize (N, C, T, H, W) to (N, C, T, *size)."""
    n, c, t, h, w = x.shape
    if (h, w) == tuple(size):
        return x
    y = x.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
    antialias = size[0] < h or size[1] < w
    y = F.interpolate(y, size=size, mode="bilinear", align_corners=False, antialias=antialias)
    return y.reshape(n, t, c, *size).permute(0, 2, 1, 3, 4)


def _center_crop(x: torch.Tensor, crop: tuple[int, int]) -> torch.Tensor:
    h, w = x.shape[-2:]
    ch, cw = crop
    if h < ch or w < cw:
        raise ValueError(f"cannot centre-crop {ch}x{cw} from {h}x{w}")
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top:top + ch, left:left + cw]


def autocast_dtype(device: torch.device, dtype: torch.dtype | None) -> torch.dtype:
    """The compute dtype: fp32 on the CPU; on CUDA the requested one or bf16 (fp16 if no bf16)."""
    if device.type != "cuda":
        return torch.float32
    if dtype is not None:
        return dtype
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@dataclass
class Backbone:
    """A feature extractor: model + input convention + execution settings.

    Attributes: ``name`` (``i3d``, ``i3d-r50``, ``c3d``), ``stream`` (``rgb`` or ``flow``),
    ``crop_size`` (network input H = W), ``clip_len`` (frames per clip the weights were trained
    with; other lengths work but change the receptive field), ``feature_dim`` (D of
    :meth:`forward_features`), ``resize`` (frame-mode resize: an int is the short side, a pair
    is an exact (H, W)), ``weights`` (checkpoint path or None), ``untrained`` (random weights).
    """

    name: str
    stream: str
    model: nn.Module
    feature_dim: int
    crop_size: int
    clip_len: int
    resize: int | tuple[int, int]
    normalize: Callable[[torch.Tensor], torch.Tensor]
    features_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    logits_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    weights: str | None = None
    untrained: bool = False
    info: dict = field(default_factory=dict)

    @property
    def in_channels(self) -> int:
        return 3 if self.stream == "rgb" else 2

    def config(self) -> dict:
        """JSON-serialisable description for the cache's provenance."""
        return {"backbone": self.name, "stream": self.stream, "feature_dim": self.feature_dim,
                "crop_size": self.crop_size, "clip_len": self.clip_len,
                "resize": list(self.resize) if isinstance(self.resize, tuple) else self.resize,
                "weights": self.weights, "untrained": self.untrained,
                "dtype": str(self.dtype).removeprefix("torch."), **self.info}

    # ------------------------------------------------------------------ input
    def _check_clips(self, clips) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(clips)) if not isinstance(clips, torch.Tensor) else clips
        if x.ndim != 5 or x.shape[-1] != self.in_channels:
            raise ValueError(f"{self.name}/{self.stream} expects clips of shape (N, T, H, W, {self.in_channels}), "
                             f"got {tuple(x.shape)}")
        if self.stream == "rgb":
            if x.dtype != torch.uint8:
                raise ValueError(f"rgb clips must be uint8 in [0, 255], got {x.dtype}")
            return x
        if not x.is_floating_point():
            raise ValueError(f"flow clips must be floating point in [-1, 1], got {x.dtype}")
        x = x.float()
        if x.numel() and float(x.abs().max()) > 1.0 + 1e-4:
            raise ValueError("flow clips must be clipped to [-20, 20] and scaled to [-1, 1] "
                             "(use aqa.extract.backbones.scale_flow); got values up to "
                             f"{float(x.abs().max()):.3g}")
        return x

    def preprocess(self, clips, mode: str = "frame") -> torch.Tensor:
        """Raw clips -> normalised network input (N, C, T, crop, crop) float32 on ``device``."""
        if mode not in ("frame", "patch"):
            raise ValueError(f"mode must be 'frame' or 'patch', got {mode!r}")
        x = self._check_clips(clips).to(self.device)
        x = x.permute(0, 4, 1, 2, 3).float()  # N, C, T, H, W
        crop = (self.crop_size, self.crop_size)
        if mode == "patch":
            x = _resize(x, crop)
        else:
            h, w = x.shape[-2:]
            if isinstance(self.resize, tuple):
                size = self.resize
            else:
                s = self.resize / min(h, w)
                size = (max(self.crop_size, round(h * s)), max(self.crop_size, round(w * s)))
            x = _center_crop(_resize(x, size), crop)
        return self.normalize(x).contiguous()

    # ---------------------------------------------------------------- forward
    def _run(self, fn, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            x = x.to(self.device)
            if self.device.type == "cuda":
                with torch.autocast("cuda", dtype=self.dtype):
                    out = fn(self.model, x)
            else:
                out = fn(self.model, x.float())
        return out.float()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed input (N, C, T, H, W) -> pooled features (N, feature_dim) float32."""
        return self._run(self.features_fn, x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed input -> class logits of the pre-training task (N, num_classes)."""
        if self.logits_fn is None:
            raise NotImplementedError(f"{self.name} has no classifier logits")
        return self._run(self.logits_fn, x)

    def extract(self, clips, batch_size: int = 8, mode: str = "frame", progress: bool = False) -> np.ndarray:
        """Raw clips (N, T, H, W, C) -> features (N, feature_dim) float32 numpy, in batches."""
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        n = len(clips)
        out = np.empty((n, self.feature_dim), dtype=np.float32)
        from aqa.data.logs import progress_bar

        for i in progress_bar(range(0, n, batch_size), desc=f"{self.name}/{self.stream}",
                              disable=not progress, leave=False,
                              unit="batch"):
            x = self.preprocess(clips[i:i + batch_size], mode=mode)
            out[i:i + batch_size] = self.forward_features(x).cpu().numpy()
        return out
