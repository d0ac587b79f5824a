import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from aqa.heads.svr import ClipMean, PoseDCT, c3d_svr, i3d_svr, pose_dct_svr


def _dct2_ortho(x):
    """Orthonormal DCT-II written out: X_k = s_k sum_n x_n cos(pi k (2n+1) / 2N)."""
    N = len(x)
    out = np.zeros(N)
    for k in range(N):
        s = np.sqrt(1 / N) if k == 0 else np.sqrt(2 / N)
        out[k] = s * sum(x[n] * np.cos(np.pi * k * (2 * n + 1) / (2 * N)) for n in range(N))
    return out


def test_pose_dct_matches_formula():
    rng = np.random.RandomState(0)
    T = rng.randn(3, 10, 4, 2)                          # n, L, J, C
    Z = PoseDCT(n_joints=4, n_channels=2, n_coeffs=3).fit(T).transform(T)
    assert Z.shape == (3, 3 * 4 * 2)
    Zr = Z.reshape(3, 3, 8)
    for i in range(3):
        for jc in range(8):
            np.testing.assert_allclose(Zr[i, :, jc], _dct2_ortho(T[i, :, jc // 2, jc % 2])[:3], atol=1e-10)
    flat = PoseDCT(n_joints=4, n_channels=2, n_coeffs=3).fit(T.reshape(3, -1)).transform(T.reshape(3, -1))
    np.testing.assert_allclose(flat, Z)
    with pytest.raises(ValueError, match="multiple of"):
        PoseDCT(n_joints=3, n_channels=2).fit(np.zeros((2, 7)))


def test_low_frequencies_capture_smooth_motion():
    t = np.linspace(0, 1, 32)
    slow = np.sin(np.pi * t)[None, :, None, None]
    z = PoseDCT(n_joints=1, n_channels=1, n_coeffs=6).fit(slow).transform(slow)
    assert np.sum(z ** 2) > 0.99 * np.sum(slow ** 2)        # orthonormal: energy kept in 6 coefficients
    fast = np.sin(12 * np.pi * t)[None, :, None, None]
    zf = PoseDCT(n_joints=1, n_channels=1, n_coeffs=6).fit(fast).transform(fast)
    assert np.sum(zf ** 2) < 0.05 * np.sum(fast ** 2)       # high-frequency jitter is dropped


def test_c3d_svr_is_mean_scaler_svr():
    rng = np.random.RandomState(1)
    X = rng.randn(30, 5, 6)
    y = X[:, :, 0].mean(1) * 3 + 0.01 * rng.randn(30)
    pipe = c3d_svr().fit(X, y)
    Xm = X.mean(1)
    ref = SVR(kernel="linear").fit(StandardScaler().fit_transform(Xm), y)
    np.testing.assert_allclose(pipe.predict(X), ref.predict(StandardScaler().fit(Xm).transform(Xm)))
    np.testing.assert_allclose(ClipMean().fit(X).transform(X), Xm)
    pooled = c3d_svr().fit(Xm, y)                                 # already pooled 2-D input
    np.testing.assert_allclose(pooled.predict(Xm), pipe.predict(X))


@pytest.mark.parametrize("kernel", ["linear", "poly", "rbf"])
def test_i3d_svr_kernels(kernel):
    rng = np.random.RandomState(2)
    X = rng.randn(60, 4, 3)
    y = np.tanh(X[:, :, 0].mean(1)) + 0.01 * rng.randn(60)
    pipe = i3d_svr(kernel=kernel, C=10.0).fit(X[:45], y[:45])
    assert pipe.named_steps["svr"].kernel == kernel
    from scipy.stats import spearmanr
    assert spearmanr(pipe.predict(X[45:]), y[45:])[0] > 0.6


def test_bad_kernel_and_pose_pipeline():
    with pytest.raises(ValueError, match="kernel"):
        i3d_svr(kernel="sigmoid")
    rng = np.random.RandomState(3)
    amp = rng.rand(40)
    t = np.linspace(0, 1, 16)
    T = amp[:, None, None, None] * np.sin(2 * np.pi * t)[None, :, None, None] + 0.01 * rng.randn(40, 16, 2, 2)
    pipe = pose_dct_svr(n_joints=2, n_channels=2, n_coeffs=4).fit(T[:30], amp[:30])
    from scipy.stats import spearmanr
    assert spearmanr(pipe.predict(T[30:]), amp[30:])[0] > 0.8
