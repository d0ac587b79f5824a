"""Tests for aqa.extract.patches: joint boxes, crop/resize, joint and whole clips."""
import numpy as np
import pytest

from aqa.extract import patches as P


def _person(n_frames=6, box=(100.0, 50.0, 200.0, 250.0)):
    rng = np.random.default_rng(0)
    kp = np.zeros((n_frames, 17, 3))
    kp[..., 0] = rng.uniform(box[0], box[2], size=(n_frames, 17))
    kp[..., 1] = rng.uniform(box[1], box[3], size=(n_frames, 17))
    kp[..., 2] = 1.0
    boxes = np.tile(np.array(box), (n_frames, 1))
    return kp, boxes


# ------------------------------------------------------------------------------------- joint_boxes
def test_joint_boxes_are_squares_centred_on_joints_with_documented_side():
    kp, boxes = _person()
    jb = P.joint_boxes(kp, boxes)
    assert jb.shape == (6, 17, 4) and jb.dtype == np.float32
    side = P.DEFAULT_SCALE * max(250 - 50, 200 - 100)          # scale * max(h, w) = 0.25 * 200
    np.testing.assert_allclose(jb[..., 2] - jb[..., 0], side, rtol=1e-6)
    np.testing.assert_allclose(jb[..., 3] - jb[..., 1], side, rtol=1e-6)
    np.testing.assert_allclose((jb[..., 0] + jb[..., 2]) / 2, kp[..., 0], atol=1e-3)
    np.testing.assert_allclose((jb[..., 1] + jb[..., 3]) / 2, kp[..., 1], atol=1e-3)


def test_joint_boxes_min_side_and_scale():
    kp, boxes = _person(box=(0.0, 0.0, 20.0, 40.0))
    jb = P.joint_boxes(kp, boxes, scale=0.25, min_side=16)
    np.testing.assert_allclose(jb[..., 2] - jb[..., 0], 16.0)     # 0.25 * 40 = 10 < 16
    jb = P.joint_boxes(kp, boxes, scale=0.5, min_side=1)
    np.testing.assert_allclose(jb[..., 2] - jb[..., 0], 20.0)


def test_missing_joint_follows_the_moving_person():
    # Person box translates by 10 px per frame; the wrist keeps a fixed offset from the box centre but is
    # missing in frames 2-3 (NaN) and low-score in frame 4.
    n = 7
    kp = np.zeros((n, 17, 3))
    boxes = np.zeros((n, 4))
    for f in range(n):
        boxes[f] = (10 * f, 0, 10 * f + 100, 200)
        kp[f, :, 0] = 10 * f + 50 + 30                         # offset +30 from the centre x
        kp[f, :, 1] = 100 - 40
        kp[f, :, 2] = 1.0
    truth = kp[..., :2].copy()
    kp[2:4, 9, :] = np.nan
    kp[4, 9, 2] = -5.0
    jb = P.joint_boxes(kp, boxes, min_score=0.0)
    centre = np.stack([(jb[..., 0] + jb[..., 2]) / 2, (jb[..., 1] + jb[..., 3]) / 2], -1)
    np.testing.assert_allclose(centre[:, 9], truth[:, 9], atol=1e-3)
    # Without the score threshold the low-score detection is used as it is.
    jb2 = P.joint_boxes(kp, boxes, min_score=None)
    np.testing.assert_allclose((jb2[4, 9, 0] + jb2[4, 9, 2]) / 2, kp[4, 9, 0], atol=1e-3)


def test_missing_joint_interpolates_between_neighbours_and_never_seen_goes_to_box_centre():
    kp, boxes = _person(n_frames=5)
    kp[0, 3, :2] = (120.0, 100.0)
    kp[4, 3, :2] = (160.0, 140.0)
    kp[1:4, 3] = np.nan
    kp[:, 7] = np.nan                                          # never seen
    jb = P.joint_boxes(kp, boxes)
    cx = (jb[..., 0] + jb[..., 2]) / 2
    cy = (jb[..., 1] + jb[..., 3]) / 2
    np.testing.assert_allclose(cx[:, 3], [120, 130, 140, 150, 160], atol=1e-3)
    np.testing.assert_allclose(cy[:, 3], [100, 110, 120, 130, 140], atol=1e-3)
    np.testing.assert_allclose(cx[:, 7], 150.0, atol=1e-3)
    np.testing.assert_allclose(cy[:, 7], 150.0, atol=1e-3)


def test_missing_person_box_is_interpolated_and_no_box_uses_keypoint_extent():
    kp, boxes = _person(n_frames=3, box=(0.0, 0.0, 100.0, 100.0))
    boxes[1] = np.nan
    jb = P.joint_boxes(kp, boxes)
    np.testing.assert_allclose(jb[1, :, 2] - jb[1, :, 0], 25.0, rtol=1e-6)
    kp2 = np.zeros((2, 17, 3))
    kp2[..., 2] = 1.0
    kp2[:, :, 0] = np.linspace(0, 80, 17)
    kp2[:, :, 1] = np.linspace(0, 40, 17)
    jb = P.joint_boxes(kp2, np.full((2, 4), np.nan))
    np.testing.assert_allclose(jb[..., 2] - jb[..., 0], 0.25 * 80, rtol=1e-6)


def test_joint_boxes_nothing_at_all():
    kp = np.full((3, 17, 3), np.nan)
    with pytest.raises(ValueError, match="frame_size"):
        P.joint_boxes(kp, np.full((3, 4), np.nan))
    jb = P.joint_boxes(kp, np.full((3, 4), np.nan), frame_size=(100, 200))
    np.testing.assert_allclose(jb[0, 0], [75, 25, 125, 75])
    assert np.isfinite(jb).all()


def test_joint_boxes_bad_shapes():
    with pytest.raises(ValueError, match=r"\(F, 17, 3\)"):
        P.joint_boxes(np.zeros((3, 2, 17, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="person_boxes"):
        P.joint_boxes(np.zeros((3, 17, 3)), np.zeros((2, 4)))


# ------------------------------------------------------------------------------------- crop_resize
def test_crop_resize_integer_box_returns_the_slice():
    img = np.arange(2 * 10 * 12 * 3, dtype=np.uint8).reshape(2, 10, 12, 3)
    out = P.crop_resize(img, np.array([[2, 3, 7, 8], [0, 0, 5, 5]], float), 5)
    assert out.dtype == np.uint8 and out.shape == (2, 5, 5, 3)
    np.testing.assert_array_equal(out[0], img[0, 3:8, 2:7])
    np.testing.assert_array_equal(out[1], img[1, 0:5, 0:5])


def test_crop_resize_upscale_matches_bilinear_formula():
    # A horizontal ramp v(x) = x at pixel centres; bilinear sampling is exact for a linear function.
    img = np.tile(np.arange(16, dtype=np.float32), (16, 1))[None, ..., None]
    out = P.crop_resize(img, np.array([[4.0, 4.0, 8.0, 8.0]]), 8)[0, ..., 0]
    u = np.arange(8)
    expected = 4.0 + (u + 0.5) * 0.5 - 0.5                    # pixel index sampled by output pixel u
    np.testing.assert_allclose(out, np.tile(expected, (8, 1)), atol=1e-5)


def test_crop_resize_pads_outside_with_zeros_or_edges():
    img = np.full((1, 6, 6, 1), 7.0, dtype=np.float32)
    out = P.crop_resize(img, np.array([[-3.0, -3.0, 3.0, 3.0]]), 6)[0, ..., 0]
    np.testing.assert_array_equal(out[:3, :], 0.0)
    np.testing.assert_array_equal(out[:, :3], 0.0)
    np.testing.assert_array_equal(out[3:, 3:], 7.0)
    out = P.crop_resize(img, np.array([[-3.0, -3.0, 3.0, 3.0]]), 6, border="replicate")[0, ..., 0]
    np.testing.assert_array_equal(out, 7.0)
    far = P.crop_resize(img, np.array([[100.0, 100.0, 200.0, 200.0]]), 4)
    np.testing.assert_array_equal(far, 0.0)


def test_crop_resize_keeps_flow_values_and_many_channels():
    flow = np.zeros((3, 20, 30, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2.5, -1.25
    for box in ([5, 5, 9, 9], [0, 0, 30, 20], [10, 2, 22, 14]):   # up-, down-, and 1:1 scaling
        out = P.crop_resize(flow, np.tile(np.array(box, float), (3, 1)), 8)
        np.testing.assert_allclose(out[..., 0], 2.5, atol=1e-5)
        np.testing.assert_allclose(out[..., 1], -1.25, atol=1e-5)
    many = np.random.default_rng(1).random((1, 9, 9, 6)).astype(np.float32)
    out = P.crop_resize(many, np.array([[1.0, 2.0, 6.0, 7.0]]), 5)
    np.testing.assert_allclose(out[0], many[0, 2:7, 1:6], atol=1e-6)


def test_crop_resize_antialias_downscale_averages():
    # A 1-px checkerboard downscaled 8x: without a low-pass a bilinear sample hits single pixels.
    img = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.float32)[None, ..., None]
    out = P.crop_resize(img, np.array([[0.0, 0.0, 64.0, 64.0]]), 8)
    assert np.abs(out - 127.5).max() < 10


def test_crop_resize_errors():
    img = np.zeros((2, 5, 5, 3), np.uint8)
    with pytest.raises(ValueError, match="boxes"):
        P.crop_resize(img, np.zeros((3, 4)), 4)
    with pytest.raises(ValueError, match="NaN"):
        P.crop_resize(img, np.full((2, 4), np.nan), 4)
    with pytest.raises(ValueError, match="x1 > x0"):
        P.crop_resize(img, np.array([[3, 0, 1, 2], [0, 0, 1, 1]], float), 4)
    with pytest.raises(ValueError, match="border"):
        P.crop_resize(img, np.array([[0, 0, 1, 1]] * 2, float), 4, border="wrap")
    with pytest.raises(ValueError, match="dtype"):
        P.crop_resize(img.astype(np.int64), np.array([[0, 0, 1, 1]] * 2, float), 4)


# ------------------------------------------------------------------------------------- joint clips
def test_joint_clips_shapes_and_content():
    n_frames, h, w = 12, 40, 50
    frames = np.zeros((n_frames, h, w, 3), np.uint8)
    kp = np.zeros((n_frames, 17, 3))
    kp[..., 2] = 1.0
    for f in range(n_frames):
        kp[f, :, 0] = 10 + f                                   # every joint at x = 10 + f + 0.5 centre
        kp[f, :, 1] = 20
        frames[f, 19:21, 9 + f:11 + f] = 200                   # a bright 2x2 dot at the joint
    boxes = np.tile([0.0, 0.0, 50.0, 40.0], (n_frames, 1))
    jb = P.joint_boxes(kp, boxes, scale=0.2, min_side=4)       # side 10 px
    clips = np.array([[0, 2, 4, 6], [5, 7, 9, 11]])
    arr = P.joint_clips(frames, clips, jb, 10)
    assert arr.shape == (2, 17, 4, 10, 10, 3) and arr.dtype == np.uint8
    np.testing.assert_array_equal(arr[:, :, :, 4:6, 4:6], 200)   # the dot sits in the patch centre
    assert arr[:, :, :, :3].max() == 0
    steps = list(P.iter_joint_clips(frames, clips, jb, 10))
    assert len(steps) == 2 and steps[1].shape == (17, 4, 10, 10, 3)
    np.testing.assert_array_equal(steps[1], arr[1])


def test_joint_clips_flow_uses_pairs_and_clamps_last_frame():
    n_frames = 6
    flow = np.stack([np.full((20, 20, 2), p, np.float32) for p in range(n_frames - 1)])
    kp, boxes = _person(n_frames, box=(2.0, 2.0, 18.0, 18.0))
    jb = P.joint_boxes(kp, boxes)
    clips = np.array([[3, 4, 5]])
    arr = P.joint_clips(flow, clips, jb, 6)
    assert arr.shape == (1, 17, 3, 6, 6, 2) and arr.dtype == np.float32
    inside = arr[0, :, :, 2:4, 2:4, 0]                         # patch centres are inside the frame
    np.testing.assert_allclose(inside[:, 0], 3.0, atol=1e-5)
    np.testing.assert_allclose(inside[:, 1], 4.0, atol=1e-5)
    np.testing.assert_allclose(inside[:, 2], 4.0, atol=1e-5)              # frame 5 reads pair 4
    with pytest.raises(ValueError, match="flow pairs"):
        P.joint_clips(flow[:3], clips, jb, 6)
    with pytest.raises(ValueError, match=r"\[0, 6\)"):
        P.joint_clips(flow, np.array([[6]]), jb, 6)


def test_whole_clips_modes():
    frames = np.zeros((4, 20, 40, 1), np.float32)
    frames[:, :, :10] = 1.0                                    # left quarter bright
    clips = np.array([[0, 1], [2, 3]])
    out = P.whole_clips(frames, clips, 8)
    assert out.shape == (2, 2, 8, 8, 1)
    np.testing.assert_allclose(out[..., 0, 0, 0], 1.0, atol=1e-4)
    np.testing.assert_allclose(out[..., 0, -1, 0], 0.0, atol=1e-4)
    cc = P.whole_clips(frames, clips, 8, mode="center_crop", antialias=False)
    np.testing.assert_allclose(cc, 0.0)                        # centred 20x20 square misses the quarter
    with pytest.raises(ValueError, match="mode"):
        P.whole_clips(frames, clips, 8, mode="pad")


def test_padded_positions_are_zero_frames_in_joint_and_whole_clips():
    kp, boxes = _person(n_frames=5)
    jb = P.joint_boxes(kp, boxes, frame_size=(300, 300))
    frames = np.full((5, 300, 300, 3), 200, np.uint8)
    flow = np.full((4, 300, 300, 2), 3.0, np.float32)
    clips = np.array([[0, 1, 2], [3, 4, 4]])               # the sampling put the last frame at padding
    padded = np.array([[False, False, False], [False, False, True]])
    for images in (frames, flow):
        joints = np.stack(list(P.iter_joint_clips(images, clips, jb, 8, padded=padded)))
        assert (joints[1, :, 2] == 0).all() and (joints[1, :, :2] != 0).all() and (joints[0] != 0).all()
        whole = P.whole_clips(images, clips, 8, n_frames=5, padded=padded)
        assert (whole[1, 2] == 0).all() and (whole[1, :2] != 0).all() and (whole[0] != 0).all()
    unpadded = P.whole_clips(frames, clips, 8, padded=np.zeros_like(padded))
    assert (unpadded != 0).all()                            # nothing padded: nothing zeroed
    with pytest.raises(ValueError, match="padded must be a bool array"):
        P.whole_clips(frames, clips, 8, padded=padded[:, :2])
