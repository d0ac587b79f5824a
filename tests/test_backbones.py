"""Tests for aqa.extract.backbones: public key layouts, strict loading, shapes, preprocessing."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from aqa.extract.backbones import StateDictMismatchError, build_backbone, scale_flow
from aqa.extract.backbones import c3d as C3Dmod
from aqa.extract.backbones import i3d as I3Dmod
from aqa.extract.backbones import i3d_r50 as R50mod
from aqa.extract.backbones.base import load_checkpoint

# Key names copied by hand from the public ports (piergiaj/pytorch-i3d pytorch_i3d.py,
# hassony2/kinetics_i3d_pytorch src/i3dpt.py, DavideA/c3d-pytorch C3D_model.py, pytorchvideo
# create_resnet): the layouts must contain these, not merely be self-consistent.
PIERGIAJ_KEYS = [
    "Conv3d_1a_7x7.conv3d.weight", "Conv3d_1a_7x7.bn.running_mean", "Conv3d_1a_7x7.bn.running_var",
    "Conv3d_2b_1x1.conv3d.weight", "Conv3d_2c_3x3.bn.weight", "Mixed_3b.b0.conv3d.weight",
    "Mixed_3b.b1a.conv3d.weight", "Mixed_3b.b1b.bn.bias", "Mixed_4e.b2a.conv3d.weight",
    "Mixed_4f.b2b.bn.running_mean", "Mixed_5c.b3b.conv3d.weight", "logits.conv3d.weight", "logits.conv3d.bias",
]
HASSONY2_KEYS = [
    "conv3d_1a_7x7.conv3d.weight", "conv3d_1a_7x7.batch3d.weight", "conv3d_1a_7x7.batch3d.running_var",
    "conv3d_2b_1x1.conv3d.weight", "conv3d_2c_3x3.batch3d.bias", "mixed_3b.branch_0.conv3d.weight",
    "mixed_3b.branch_1.0.conv3d.weight", "mixed_3b.branch_1.1.batch3d.running_mean",
    "mixed_4d.branch_2.0.conv3d.weight", "mixed_5b.branch_2.1.conv3d.weight",
    "mixed_5c.branch_3.1.batch3d.bias", "conv3d_0c_1x1.conv3d.weight", "conv3d_0c_1x1.conv3d.bias",
]
C3D_KEYS = ["conv1.weight", "conv1.bias", "conv2.weight", "conv3a.weight", "conv3b.bias", "conv4a.weight",
            "conv4b.weight", "conv5a.bias", "conv5b.weight", "fc6.weight", "fc7.bias", "fc8.weight", "fc8.bias"]
R50_KEYS = ["blocks.0.conv.weight", "blocks.0.norm.running_mean", "blocks.1.res_blocks.0.branch1_conv.weight",
            "blocks.1.res_blocks.0.branch2.conv_a.weight", "blocks.3.res_blocks.3.branch2.norm_c.bias",
            "blocks.4.res_blocks.5.branch2.conv_b.weight", "blocks.5.res_blocks.2.branch2.conv_c.weight",
            "blocks.6.proj.weight", "blocks.6.proj.bias"]


def _randomize_bn(model, seed=0):
    """Give BatchNorm layers non-trivial statistics so a wrong mapping changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model


def _to_public(model, key_map):
    """Our state dict renamed into a public layout, without BN counters (as in the 2017 ports)."""
    sd = model.state_dict()
    return {key_map[k]: v.clone() for k, v in sd.items() if not k.endswith("num_batches_tracked")}


@pytest.fixture(scope="module")
def i3d_ref():
    torch.manual_seed(0)
    bb = build_backbone("i3d", "rgb", None, untrained=True)
    _randomize_bn(bb.model)
    return bb


@pytest.fixture(scope="module")
def clips_rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(3, 8, 64, 80, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------- I3D
@pytest.mark.parametrize("layout,expected", [("piergiaj", PIERGIAJ_KEYS), ("hassony2", HASSONY2_KEYS)])
def test_i3d_public_layout_contains_known_keys(i3d_ref, layout, expected):
    keys = set(I3Dmod.public_key_map(i3d_ref.model, layout).values())
    assert set(expected) <= keys
    assert len(keys) == len(i3d_ref.model.state_dict())  # injective map


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["piergiaj", "hassony2"])
def test_i3d_strict_load_roundtrip_from_file(i3d_ref, layout, tmp_path, clips_rgb):
    public = _to_public(i3d_ref.model, I3Dmod.public_key_map(i3d_ref.model, layout))
    assert I3Dmod.detect_layout(public) == layout
    path = tmp_path / "ckpt.pt"
    torch.save(public, path)
    bb = build_backbone("i3d", "rgb", path, crop_size=64, resize=64)
    assert bb.info["layout"] == layout and not bb.untrained
    ref = build_backbone("i3d", "rgb", None, untrained=True, crop_size=64, resize=64)
    ref.model.load_state_dict(i3d_ref.model.state_dict())
    x = bb.preprocess(clips_rgb[:2])
    expected = ref.logits(x)  # depends on every weight, the logits conv included
    assert torch.equal(bb.logits(x), expected)
    fresh = build_backbone("i3d", "rgb", None, untrained=True, crop_size=64, resize=64)
    assert not torch.allclose(fresh.logits(x), expected)


@pytest.mark.parametrize("layout", ["piergiaj", "hassony2"])
def test_i3d_missing_and_unexpected_keys_fail_loudly(i3d_ref, layout):
    public = _to_public(i3d_ref.model, I3Dmod.public_key_map(i3d_ref.model, layout))
    model = I3Dmod.InceptionI3D(3, 400)
    victim = "Mixed_4c.b1b.bn.running_var" if layout == "piergiaj" else "mixed_4c.branch_1.1.batch3d.running_var"
    broken = dict(public)
    del broken[victim]
    with pytest.raises(StateDictMismatchError, match=f"missing keys: {victim.replace('.', '[.]')}"):
        I3Dmod.load_i3d_state_dict(model, broken)
    extra = dict(public, **{"Mixed_6a.b0.conv3d.weight": torch.zeros(1)})
    with pytest.raises(StateDictMismatchError, match="unexpected keys: Mixed_6a[.]b0[.]conv3d[.]weight"):
        I3Dmod.load_i3d_state_dict(model, extra, layout)
    wrong = dict(public)
    k = victim.replace("running_var", "weight")
    wrong[k] = torch.ones(3)
    with pytest.raises(StateDictMismatchError, match="shape of"):
        I3Dmod.load_i3d_state_dict(model, wrong)
    with pytest.raises(ValueError, match="not an I3D checkpoint"):
        I3Dmod.detect_layout({"foo": torch.zeros(1)})


@pytest.mark.slow
def test_i3d_flow_checkpoint_and_stream_checks(tmp_path):
    torch.manual_seed(1)
    flow = build_backbone("i3d", "flow", None, untrained=True, crop_size=64, resize=64)
    assert flow.model.conv_1a.conv.weight.shape[1] == 2
    public = _to_public(flow.model, I3Dmod.public_key_map(flow.model, "piergiaj"))
    path = tmp_path / "flow_imagenet.pt"
    torch.save(public, path)
    with pytest.raises(ValueError, match="2 input channels; the rgb stream needs 3"):
        build_backbone("i3d", "rgb", path)
    bb = build_backbone("i3d", "flow", path, crop_size=64, resize=64)
    f = np.random.default_rng(1).uniform(-1, 1, size=(2, 8, 64, 64, 2)).astype(np.float32)
    out = bb.extract(f, batch_size=2)
    assert out.shape == (2, 1024) and out.dtype == np.float32
    np.testing.assert_allclose(out, flow.extract(f, batch_size=1), rtol=1e-4, atol=1e-9)
    with pytest.raises(ValueError, match="scale_flow"):
        bb.preprocess(f * 20)
    np.testing.assert_allclose(scale_flow(np.array([-40.0, -10.0, 5.0, 25.0])), [-1, -0.5, 0.25, 1])


@pytest.mark.slow
def test_i3d_shapes_and_batched_equals_single(i3d_ref, clips_rgb):
    bb = build_backbone("i3d", "rgb", None, untrained=True, crop_size=64, resize=64)
    bb.model.load_state_dict(i3d_ref.model.state_dict())
    batched = bb.extract(clips_rgb, batch_size=3)
    single = np.concatenate([bb.extract(clips_rgb[i:i + 1], batch_size=1) for i in range(3)])
    assert batched.shape == (3, 1024)
    np.testing.assert_allclose(batched, single, rtol=1e-4, atol=1e-5 * np.abs(single).max())
    assert bb.logits(bb.preprocess(clips_rgb[:1])).shape == (1, 400)


def test_tf_same_padding_matches_tensorflow_rule():
    # TF: out = ceil(n / s); total pad = max((out - 1) * s + k - n, 0), the extra cell at the end
    for n in range(1, 20):
        for k in (1, 2, 3, 7):
            for s in (1, 2):
                before, after = I3Dmod._same_pad(n, k, s)
                out = -(-n // s)
                assert before + after == max((out - 1) * s + k - n, 0)
                assert after - before in (0, 1)
                assert (n + before + after - k) // s + 1 == out
    x = torch.ones(1, 1, 5, 9, 9)
    assert I3Dmod.MaxPool3dSame((3, 3, 3), (2, 2, 2))(x).shape[-3:] == (3, 5, 5)
    u = I3Dmod.Unit3D(1, 1, (7, 7, 7), (2, 2, 2), bn=False, relu=False)
    assert u(torch.ones(1, 1, 8, 64, 63)).shape[-3:] == (4, 32, 32)


# ------------------------------------------------------------------------------- preprocess
def test_rgb_preprocess_matches_numpy_reference(i3d_ref):
    bb = build_backbone("i3d", "rgb", None, untrained=True, crop_size=4, resize=4)
    clip = np.random.default_rng(2).integers(0, 256, size=(1, 2, 4, 6, 3), dtype=np.uint8)
    x = bb.preprocess(clip)  # short side already 4: no resize, centre crop of columns 1..4
    ref = clip[0].transpose(3, 0, 1, 2)[:, :, :, 1:5].astype(np.float32) / 127.5 - 1
    assert x.shape == (1, 3, 2, 4, 4)
    np.testing.assert_allclose(x[0].numpy(), ref, atol=1e-6)
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    big = np.zeros((1, 2, 30, 60, 3), dtype=np.uint8)
    assert bb.preprocess(big, mode="patch").shape == (1, 3, 2, 4, 4)
    with pytest.raises(ValueError, match="uint8"):
        bb.preprocess(clip.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(N, T, H, W, 3\)"):
        bb.preprocess(clip[..., :2])
    with pytest.raises(ValueError, match="mode"):
        bb.preprocess(clip, mode="zoom")


def test_frame_resize_keeps_aspect_then_crops():
    bb = build_backbone("i3d", "rgb", None, untrained=True, crop_size=8, resize=10)
    clip = np.zeros((1, 1, 20, 40, 3), dtype=np.uint8)
    clip[..., 18:22, :] = 255  # a vertical bar at the horizontal centre survives the centre crop
    x = bb.preprocess(clip)
    assert x.shape == (1, 3, 1, 8, 8)
    assert float(x[0, 0, 0, :, 3:5].mean()) > 0.5 and float(x[0, 0, 0, :, 0].max()) == -1.0


def test_c3d_preprocess_bgr_minus_mean():
    bb = build_backbone("c3d", "rgb", None, untrained=True)
    clip = np.zeros((1, 16, 128, 171, 3), dtype=np.uint8)
    clip[..., 0], clip[..., 1], clip[..., 2] = 200, 100, 50  # R, G, B
    x = bb.preprocess(clip)
    assert x.shape == (1, 3, 16, 112, 112)
    b, g, r = C3Dmod.SPORTS1M_BGR_MEAN
    np.testing.assert_allclose(x[0, :, 0, 0, 0].numpy(), [50 - b, 100 - g, 200 - r], atol=1e-4)
    assert bb.config()["channel_order"] == "bgr" and bb.config()["feature_layer"] == "fc6"


# -------------------------------------------------------------------------------------- C3D
@pytest.fixture(scope="module")
def c3d_ref():
    torch.manual_seed(3)
    return build_backbone("c3d", "rgb", None, untrained=True)


@pytest.mark.slow
def test_c3d_layout_strict_load_errors(c3d_ref):
    public = {k: v.clone() for k, v in c3d_ref.model.state_dict().items()}
    assert set(C3D_KEYS) <= set(public) and set(public) == set(C3Dmod.EXPECTED_KEYS)
    C3Dmod.load_c3d_state_dict(C3Dmod.C3D(), public)
    broken = dict(public)
    del broken["conv4b.bias"]
    with pytest.raises(StateDictMismatchError, match=r"missing keys: conv4b\.bias"):
        C3Dmod.load_c3d_state_dict(C3Dmod.C3D(), broken)
    with pytest.raises(StateDictMismatchError, match=r"unexpected keys: fc9\.weight"):
        C3Dmod.load_c3d_state_dict(C3Dmod.C3D(), dict(public, **{"fc9.weight": torch.zeros(1)}))
    with pytest.raises(ValueError, match="16x112x112"):
        c3d_ref.model.features(torch.zeros(1, 3, 8, 112, 112))
    with pytest.raises(ValueError, match="feature_layer"):
        build_backbone("c3d", "rgb", None, untrained=True, feature_layer="fc8")


@pytest.mark.slow
def test_c3d_loaded_model_matches_and_fc6_is_relu_of_pool5(c3d_ref, tmp_path):
    path = tmp_path / "c3d.pickle"
    torch.save(c3d_ref.model.state_dict(), path)
    bb = build_backbone("c3d", "rgb", path)
    assert bb.feature_dim == 4096 and not bb.untrained
    x = torch.randn(1, 3, 16, 112, 112) * 50
    fc6 = bb.forward_features(x)
    p5 = c3d_ref._run(lambda m, t: m.features(t, "pool5"), x)
    assert p5.shape == (1, 8192) and fc6.shape == (1, 4096)
    w, b = (t.detach().numpy() for t in (c3d_ref.model.fc6.weight, c3d_ref.model.fc6.bias))
    np.testing.assert_allclose(fc6.numpy(), np.maximum(p5.numpy() @ w.T + b, 0), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_c3d_batched_equals_single_fc7():
    torch.manual_seed(4)
    bb = build_backbone("c3d", "rgb", None, untrained=True, feature_layer="fc7")
    clips = np.random.default_rng(4).integers(0, 256, size=(2, 16, 120, 160, 3), dtype=np.uint8)
    batched = bb.extract(clips, batch_size=2)
    single = np.concatenate([bb.extract(clips[i:i + 1]) for i in range(2)])
    assert batched.shape == (2, 4096)
    np.testing.assert_allclose(batched, single, rtol=1e-4, atol=1e-5 * np.abs(single).max())


# --------------------------------------------------------------------------------- I3D-R50
@pytest.mark.slow
def test_i3d_r50_import_does_not_touch_broken_transforms():
    code = ("import sys; from aqa.extract.backbones.i3d_r50 import create_i3d_r50; m = create_i3d_r50(); "
            "assert not any(k.startswith('pytorchvideo.transforms') for k in sys.modules), 'transforms imported'; "
            "print(sum(p.numel() for p in m.parameters()))")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) > 20_000_000


@pytest.mark.slow
def test_i3d_r50_pyth_roundtrip_shapes_and_errors(tmp_path, clips_rgb):
    clips_rgb = clips_rgb[:2]
    torch.manual_seed(5)
    ref = build_backbone("i3d-r50", "rgb", None, untrained=True, crop_size=64, resize=64)
    _randomize_bn(ref.model, seed=5)
    sd = ref.model.state_dict()
    assert set(R50_KEYS) <= set(sd)
    path = tmp_path / "I3D_8x8_R50.pyth"
    torch.save({"model_state": {k: v.clone() for k, v in sd.items()}, "epoch": 196}, path)
    bb = build_backbone("i3d-r50", "rgb", path, crop_size=64, resize=64)
    batched = bb.extract(clips_rgb, batch_size=2)
    assert batched.shape == (2, 2048)
    np.testing.assert_array_equal(batched, ref.extract(clips_rgb, batch_size=2))
    single = np.concatenate([bb.extract(clips_rgb[i:i + 1]) for i in range(2)])
    np.testing.assert_allclose(batched, single, rtol=1e-4, atol=1e-5 * np.abs(single).max())
    assert bb.logits(bb.preprocess(clips_rgb[:1])).shape == (1, 400)
    # pytorchvideo normalisation: (x/255 - 0.45) / 0.225
    x = bb.preprocess(np.full((1, 8, 64, 64, 3), 255, dtype=np.uint8))
    np.testing.assert_allclose(float(x.mean()), (1 - 0.45) / 0.225, rtol=1e-5)
    bad = tmp_path / "bad.pyth"
    torch.save({k: v for k, v in sd.items()}, bad)
    with pytest.raises(StateDictMismatchError, match="model_state"):
        load_checkpoint(bad, "pytorchvideo_checkpoint")
    broken = {k: v for k, v in sd.items() if k != "blocks.3.res_blocks.1.branch2.conv_b.weight"}
    with pytest.raises(StateDictMismatchError, match=r"missing keys: blocks\.3\.res_blocks\.1\.branch2\.conv_b\.weight"):
        R50mod.load_i3d_r50_state_dict(R50mod.create_i3d_r50(), broken)
    with pytest.raises(StateDictMismatchError, match=r"unexpected keys: blocks\.7\.proj\.weight"):
        R50mod.load_i3d_r50_state_dict(R50mod.create_i3d_r50(), dict(sd, **{"blocks.7.proj.weight": torch.zeros(1)}))


# ----------------------------------------------------------------------------- build rules
def test_build_backbone_refuses_random_weights_without_untrained():
    with pytest.raises(ValueError, match="untrained=True"):
        build_backbone("i3d", "rgb", None)
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("resnet", "rgb", None, untrained=True)
    with pytest.raises(ValueError, match="no 'flow' stream"):
        build_backbone("c3d", "flow", None, untrained=True)
    bb = build_backbone("i3d", "flow", None, untrained=True)
    cfg = bb.config()
    assert cfg["untrained"] is True and cfg["weights"] is None and cfg["feature_dim"] == 1024
    assert cfg["dtype"] == "float32"  # CPU always fp32


def test_load_checkpoint_rejects_non_state_dict(tmp_path):
    p = tmp_path / "x.pt"
    torch.save({"a": 1}, p)
    with pytest.raises(StateDictMismatchError, match="state dict of tensors"):
        load_checkpoint(p)
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(StateDictMismatchError, match="cannot read"):
        load_checkpoint(p)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cuda_autocast_close_to_fp32(i3d_ref, clips_rgb, dtype):
    gpu = build_backbone("i3d", "rgb", None, device="cuda", dtype=dtype, untrained=True, crop_size=64, resize=64)
    gpu.model.load_state_dict(i3d_ref.model.state_dict())
    cpu = build_backbone("i3d", "rgb", None, untrained=True, crop_size=64, resize=64)
    cpu.model.load_state_dict(i3d_ref.model.state_dict())
    assert gpu.dtype == dtype
    a, b = gpu.extract(clips_rgb), cpu.extract(clips_rgb)
    assert a.dtype == np.float32 and a.shape == (3, 1024)
    rel = np.linalg.norm(a - b) / np.linalg.norm(b)
    assert rel < 0.05, rel
