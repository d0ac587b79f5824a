"""C3D (Tran et al., "Learning Spatiotemporal Features with 3D Convolutional Networks", ICCV 2015).

Eight 3x3x3 convolutions (64, 128, 256, 256, 512, 512, 512, 512; stride 1, padding 1) with
ReLU, five max pools (pool1 1x2x2, pool2..pool5 2x2x2; pool5 pads H and W by 1 so a 7x7 map
gives 4x4), fc6 (8192 -> 4096), fc7 (4096 -> 4096), fc8 (4096 -> 487 Sports-1M classes).
The fully connected layers fix the input to 16 x 112 x 112.

Checkpoint: the Sports-1M ``c3d.pickle`` of DavideA/c3d-pytorch (a converted copy of the Caffe
model), keys ``conv1.weight``, ``conv1.bias``, ``conv2.*``, ``conv3a.*``, ``conv3b.*``, ``conv4a.*``,
``conv4b.*``, ``conv5a.*``, ``conv5b.*``, ``fc6.*``, ``fc7.*``, ``fc8.*``; loaded strictly.

Feature: ``fc6`` by default (4096-d, after ReLU). Parmar & Morris' C3D-SVR/C3D-LSTM and the
Siamese DML paper (Jain, Harit and Sharma, "Action Quality Assessment using Siamese Network-Based
Deep Metric Learning": "clip-level C3D FC-6 layer features") use fc6; ``feature_layer="fc7"`` gives fc7
(4096-d, after ReLU) and ``"pool5"`` the flattened 8192-d pool5 output. Li et al. fine-tune C3D
end to end, so their network is not a frozen-feature choice.

Preprocessing, following the Caffe C3D release: frames resized to exactly 128x171, centre crop
112x112 (joint patches: resized directly to 112x112), 16-frame clips, channels in BGR order,
minus the Sports-1M mean. We subtract a per-channel mean (B, G, R) = ``SPORTS1M_BGR_MEAN``, the
channel average of the Sports-1M mean cube (a value this project took over, not re-derived here from
``sport1m_train16_128_mean.binaryproto``, which it does not ship). Pass
``mean=...`` (in the network's channel order) to override it; the value used is recorded in ``Backbone.config()``. No
scaling to [0, 1]: the Caffe model takes 0..255 values.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Backbone, load_checkpoint, load_mapped_state_dict

SPORTS1M_BGR_MEAN = (90.25, 97.66, 101.41)
FEATURE_LAYERS = {"fc6": 4096, "fc7": 4096, "pool5": 8192}
NUM_CLASSES = 487
_CONVS = [("conv1", 3, 64), ("conv2", 64, 128), ("conv3a", 128, 256), ("conv3b", 256, 256),
          ("conv4a", 256, 512), ("conv4b", 512, 512), ("conv5a", 512, 512), ("conv5b", 512, 512)]
_POOL_AFTER = {"conv1": ((1, 2, 2), 0), "conv2": ((2, 2, 2), 0), "conv3b": ((2, 2, 2), 0),
               "conv4b": ((2, 2, 2), 0), "conv5b": ((2, 2, 2), (0, 1, 1))}


class C3D(nn.Module):
    """The C3D network; :meth:`features` returns pool5 / fc6 / fc7 activations."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        for name, cin, cout in _CONVS:
            self.add_module(name, nn.Conv3d(cin, cout, 3, padding=1))
        self.fc6 = nn.Linear(8192, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, num_classes)

    def pool5(self, x):
        if x.shape[-3:] != (16, 112, 112):
            raise ValueError(f"C3D needs 16x112x112 clips (its fc6 is fixed), got {tuple(x.shape[-3:])}")
        for name, _, _ in _CONVS:
            x = F.relu(getattr(self, name)(x))
            if name in _POOL_AFTER:
                k, p = _POOL_AFTER[name]
                x = F.max_pool3d(x, k, k, padding=p)
        return x.flatten(1)

    def features(self, x, layer: str = "fc6"):
        h = self.pool5(x)
        if layer == "pool5":
            return h
        h = F.relu(self.fc6(h))
        if layer == "fc6":
            return h
        return F.relu(self.fc7(h))

    def forward(self, x):
        return self.fc8(self.features(x, "fc7"))


EXPECTED_KEYS = [f"{n}.{p}" for n, _, _ in _CONVS for p in ("weight", "bias")] + \
                [f"fc{i}.{p}" for i in (6, 7, 8) for p in ("weight", "bias")]


def load_c3d_state_dict(model: C3D, sd: dict) -> None:
    """Strictly load a DavideA/c3d-pytorch layout state dict (same key names as ours)."""
    load_mapped_state_dict(model, sd, {k: k for k in EXPECTED_KEYS}, "C3D c3d-pytorch")


def build_c3d(stream: str = "rgb", weights_path=None, *, device, dtype, untrained: bool = False,
              feature_layer: str = "fc6", mean=SPORTS1M_BGR_MEAN, channel_order: str = "bgr") -> Backbone:
    """C3D backbone (rgb only); D = 4096 (fc6/fc7) or 8192 (pool5)."""
    if stream != "rgb":
        raise ValueError("C3D has only an rgb stream")
    if feature_layer not in FEATURE_LAYERS:
        raise ValueError(f"feature_layer must be one of {sorted(FEATURE_LAYERS)}, got {feature_layer!r}")
    if channel_order not in ("bgr", "rgb"):
        raise ValueError("channel_order must be 'bgr' or 'rgb'")
    model = C3D()
    if weights_path is not None:
        load_c3d_state_dict(model, load_checkpoint(weights_path))
    model.eval().to(device)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1, 1)

    def normalize(x):  # x: RGB 0..255, (N, 3, T, H, W)
        if channel_order == "bgr":
            x = x.flip(1)
        return x - mean_t

    return Backbone(name="c3d", stream="rgb", model=model, feature_dim=FEATURE_LAYERS[feature_layer],
                    crop_size=112, clip_len=16, resize=(128, 171), normalize=normalize,
                    features_fn=lambda m, x: m.features(x, feature_layer), logits_fn=lambda m, x: m(x),
                    device=device, dtype=dtype, weights=str(weights_path) if weights_path else None,
                    untrained=untrained,
                    info={"feature_layer": feature_layer, "mean": list(mean), "channel_order": channel_order})
