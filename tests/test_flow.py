"""The optical flow interface, the OpenCV backend (tvl1-cpu), I3D flow scaling, camera motion, cropping."""
from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from aqa.extract.flow import (  # noqa: E402
    CAMERA_MOTION_FIELDS,
    TVL1Params,
    camera_motion,
    crop_flow,
    flow_to_i3d,
    get_flow_backend,
    to_gray,
)
from aqa.extract.flow.tvl1_cv import create_opencv_tvl1  # noqa: E402

try:
    from tests.media import opencv_sample
except ModuleNotFoundError:  # tests/ is not a package: pytest puts it on sys.path
    from media import opencv_sample


def _photo(w: int = 64, h: int = 48, name: str = "basketball1.png") -> np.ndarray:
    img = cv2.imread(str(opencv_sample(name)), cv2.IMREAD_GRAYSCALE)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def _shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Second frame for a constant flow (dx, dy): I1(x + d) = I0(x)."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT)


FAST = dict(nscales=3, warps=2, outer_iterations=2, inner_iterations=10)


# ---------------------------------------------------------------- parameters and factory

def test_defaults_match_opencv_object():
    """Our defaults are what OpenCV 4.10's DualTVL1OpticalFlow_create() actually sets."""
    cv = cv2.optflow.DualTVL1OpticalFlow_create()
    p = TVL1Params()
    assert (p.tau, p.lambda_, p.theta, p.gamma) == pytest.approx(
        (cv.getTau(), cv.getLambda(), cv.getTheta(), cv.getGamma()))
    assert (p.nscales, p.warps, p.inner_iterations, p.outer_iterations, p.median_filtering) == (
        cv.getScalesNumber(), cv.getWarpingsNumber(), cv.getInnerIterations(), cv.getOuterIterations(),
        cv.getMedianFiltering())
    assert (p.epsilon, p.scale_step) == pytest.approx((cv.getEpsilon(), cv.getScaleStep()))


def test_params_passed_through_to_opencv():
    p = TVL1Params.from_kwargs(tau=0.2, **{"lambda": 0.3}, theta=0.4, nscales=3, warps=2, epsilon=0.05,
                               inner_iterations=7, outer_iterations=4, scale_step=0.6, gamma=0.1,
                               median_filtering=3)
    cv = create_opencv_tvl1(p)
    assert cv.getLambda() == pytest.approx(0.3) and cv.getTau() == pytest.approx(0.2)
    assert cv.getInnerIterations() == 7 and cv.getOuterIterations() == 4 and cv.getScalesNumber() == 3
    assert cv.getScaleStep() == pytest.approx(0.6) and cv.getMedianFiltering() == 3
    assert cv.getGamma() == pytest.approx(0.1) and cv.getEpsilon() == pytest.approx(0.05)


@pytest.mark.parametrize("bad, message", [
    (dict(tau=0), "tau must be a number > 0, got 0"),
    (dict(tau="abc"), "tau must be a number > 0, got 'abc'"),
    (dict(nscales=0), "nscales must be an integer >= 1, got 0"),
    (dict(scale_step=1.0), r"scale_step must be a number in \(0, 1\), got 1.0"),
    (dict(warps=1.5), "warps must be an integer >= 1, got 1.5"),
    (dict(warps=-1), "warps must be an integer >= 1, got -1"),
    (dict(warps="abc"), "warps must be an integer >= 1, got 'abc'"),
    (dict(warps=True), "warps must be an integer >= 1, got True"),
    ({"lambda": float("nan")}, "lambda must be a number > 0, got nan"),
    (dict(median_filtering=4), r"median_filtering must be 0, 1 \(off\), 3 or 5, got 4"),
    (dict(epsilon=-1), "epsilon must be a number >= 0, got -1")])
def test_params_rejected_naming_the_parameter_and_allowed_values(bad, message):
    with pytest.raises(ValueError, match=f"^TV-L1 parameter {message}$"):
        TVL1Params.from_kwargs(**bad)


def test_factory_errors_and_auto():
    with pytest.raises(ValueError, match="unknown flow backend"):
        get_flow_backend("farneback")
    with pytest.raises(TypeError, match="unknown"):
        get_flow_backend("tvl1-cpu", bogus=1)
    with pytest.raises(ValueError, match="CPU only"):
        get_flow_backend("tvl1-cpu", device="cuda")
    with pytest.raises(TypeError, match="lambda"):
        TVL1Params.from_kwargs(**{"lambda": 0.1, "lambda_": 0.2})
    torch = pytest.importorskip("torch")
    expect = "tvl1-torch" if torch.cuda.is_available() else "tvl1-cpu"
    assert get_flow_backend("auto").name == expect
    assert get_flow_backend("auto", lambda_=0.3).params.lambda_ == 0.3


# ---------------------------------------------------------------- input handling

def test_to_gray_bgr_and_errors():
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (2, 8, 10, 3), dtype=np.uint8)
    g = to_gray(bgr)
    assert g.shape == (2, 8, 10) and g.dtype == np.uint8
    assert np.array_equal(g[1], cv2.cvtColor(bgr[1], cv2.COLOR_BGR2GRAY))
    assert to_gray([bgr[0, ..., 0], bgr[1, ..., 0]]).shape == (2, 8, 10)
    assert to_gray(bgr[..., 0].astype(np.float64) / 255).dtype == np.float32
    with pytest.raises(ValueError, match="expected"):
        to_gray(np.zeros((8, 10), np.uint8))
    with pytest.raises(ValueError, match="at least 4x4"):
        to_gray(np.zeros((1, 3, 10), np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        to_gray(np.zeros((1, 8, 8), bool))
    be = get_flow_backend("tvl1-cpu")
    with pytest.raises(ValueError, match="differ in shape"):
        be.compute(np.zeros((1, 8, 8), np.uint8), np.zeros((1, 8, 9), np.uint8))
    with pytest.raises(ValueError, match="at least 2 frames"):
        be.compute_video(np.zeros((1, 8, 8), np.uint8))


# ---------------------------------------------------------------- tvl1-cpu

def test_cpu_backend_is_opencv():
    """tvl1-cpu returns exactly OpenCV's flow, for gray, BGR and float input."""
    a = _photo()
    b = _shift(a, 1.5, -1.0)
    ref = cv2.optflow.DualTVL1OpticalFlow_create().calc(a, b, None)
    be = get_flow_backend("tvl1-cpu")
    out = be.compute(a[None], b[None])
    assert out.shape == (1, 48, 64, 2) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], ref)
    bgr = np.repeat(np.stack([a, b])[..., None], 3, axis=-1)
    np.testing.assert_array_equal(be.compute(bgr[:1], bgr[1:])[0], ref)
    as_float = be.compute(a[None] / 255.0, b[None] / 255.0)[0]
    assert np.abs(as_float - ref).mean() < 0.05


def test_cpu_backend_recovers_translation():
    a = _photo(96, 72)
    b = _shift(a, 1.5, -1.0)
    flow = get_flow_backend("tvl1-cpu").compute(a[None], b[None])[0]
    inner = flow[8:-8, 8:-8].reshape(-1, 2)
    assert np.median(inner, axis=0) == pytest.approx([1.5, -1.0], abs=0.1)


def test_cpu_backend_fresh_object_per_pair():
    """OpenCV lowers nscales on a too-small image; the backend must not carry that to later pairs."""
    a = _photo()
    b = _shift(a, 2.0, 0.0)
    be = get_flow_backend("tvl1-cpu")
    be.compute(a[None, :20, :20], b[None, :20, :20])
    np.testing.assert_array_equal(be.compute(a[None], b[None])[0],
                                  cv2.optflow.DualTVL1OpticalFlow_create().calc(a, b, None))


def test_compute_video_matches_pairs_and_threads():
    a = _photo()
    frames = np.stack([a, _shift(a, 1, 0), _shift(a, 2, 1), _shift(a, 2, 2)])
    be = get_flow_backend("tvl1-cpu", **FAST)
    vid = be.compute_video(frames, batch_size=2, progress=False)
    assert vid.shape == (3, 48, 64, 2)
    pairs = be.compute(frames[:-1], frames[1:])
    np.testing.assert_array_equal(vid, pairs)
    threaded = get_flow_backend("tvl1-cpu", workers=2, **FAST).compute(frames[:-1], frames[1:])
    np.testing.assert_array_equal(threaded, pairs)
    with pytest.raises(ValueError, match="workers"):
        get_flow_backend("tvl1-cpu", workers=0)


# ---------------------------------------------------------------- post-processing

def test_flow_to_i3d():
    rng = np.random.default_rng(1)
    flow = rng.normal(0, 15, (3, 5, 6, 2)).astype(np.float32)
    out = flow_to_i3d(flow)
    ref = np.minimum(np.maximum(flow, -20), 20) / 20
    assert out.dtype == np.float32 and out.shape == flow.shape
    np.testing.assert_allclose(out, ref, rtol=1e-6)
    assert out.min() >= -1 and out.max() <= 1 and (np.abs(out) == 1).any()
    with pytest.raises(ValueError, match="size 2"):
        flow_to_i3d(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="bound"):
        flow_to_i3d(flow, bound=0)


def _grid(h, w):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return x - (w - 1) / 2, y - (h - 1) / 2


def test_camera_motion_known_fields():
    h, w = 40, 60
    rx, ry = _grid(h, w)
    trans = np.broadcast_to(np.array([2.0, -1.0]), (h, w, 2))
    zoom = np.stack([0.02 * rx, 0.02 * ry], -1)
    rot = np.stack([-0.01 * ry, 0.01 * rx], -1)
    out = camera_motion(np.stack([trans, zoom + trans, rot]))
    assert out.shape == (3, len(CAMERA_MOTION_FIELDS)) == (3, 8) and out.dtype == np.float32
    f = {name: i for i, name in enumerate(CAMERA_MOTION_FIELDS)}
    np.testing.assert_allclose(out[0, [f["mean_dx"], f["mean_dy"], f["median_dx"], f["median_dy"]]],
                               [2, -1, 2, -1], atol=1e-6)
    np.testing.assert_allclose(out[0, [f["std_dx"], f["std_dy"], f["zoom"], f["rotation"]]], 0, atol=1e-6)
    assert out[1, f["zoom"]] == pytest.approx(0.02, rel=1e-5)
    assert out[1, f["rotation"]] == pytest.approx(0, abs=1e-7)
    assert out[1, f["mean_dx"]] == pytest.approx(2, abs=1e-5)
    assert out[2, f["rotation"]] == pytest.approx(0.01, rel=1e-5)
    assert out[2, f["zoom"]] == pytest.approx(0, abs=1e-7)


def test_camera_motion_matches_numpy_reference_and_ignores_centre():
    rng = np.random.default_rng(2)
    flow = rng.normal(0, 1, (30, 50, 2))
    mask = np.zeros((30, 50), bool)
    mask[:3] = mask[-3:] = True
    mask[:, :5] = mask[:, -5:] = True
    v = flow[mask]
    got = camera_motion(flow, band=0.1)
    assert got.shape == (8,)
    np.testing.assert_allclose(got[:6], np.concatenate([v.mean(0), np.median(v, 0), v.std(0)]), rtol=1e-5)
    moved = flow.copy()
    moved[~mask] += 50.0  # an athlete moving in the centre does not change the camera estimate
    np.testing.assert_allclose(camera_motion(moved), got, rtol=1e-6)
    with pytest.raises(ValueError, match="band"):
        camera_motion(flow, band=0.5)
    with pytest.raises(ValueError, match="flow must be"):
        camera_motion(flow[..., 0])


def test_crop_flow():
    flow = np.arange(2 * 10 * 12 * 2, dtype=np.float32).reshape(2, 10, 12, 2)
    out = crop_flow(flow, (2.5, 1, 6, 4.2))
    assert out.shape == (2, 4, 4, 2)
    np.testing.assert_array_equal(out, flow[:, 1:5, 2:6])
    np.testing.assert_array_equal(crop_flow(flow[0], (-5, -5, 3, 3)), flow[0, :3, :3])
    with pytest.raises(ValueError, match="outside"):
        crop_flow(flow, (20, 20, 30, 30))
    with pytest.raises(ValueError, match="x2 > x1"):
        crop_flow(flow, (5, 5, 5, 8))


def test_media_helper():
    path = opencv_sample("vtest.avi")
    assert path.is_file() and path.stat().st_size > 1_000_000
    with pytest.raises(FileNotFoundError, match="not in the opencv-doc"):
        opencv_sample("no-such-file.png")
