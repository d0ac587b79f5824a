"""``tvl1-cpu``: TV-L1 optical flow through OpenCV contrib's ``cv2.optflow.DualTVL1OpticalFlow``."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .base import FlowBackend, TVL1Params


def create_opencv_tvl1(params: TVL1Params):
    """A fresh ``cv2.optflow.DualTVL1OpticalFlow`` with ``params``.

    A fresh object per call matters: OpenCV lowers the object's own ``nscales`` when an image is too small
    for the requested pyramid, which would silently carry over to later, larger images.
    """
    import cv2

    if not hasattr(cv2, "optflow"):
        raise ImportError("tvl1-cpu needs OpenCV contrib (pip package opencv-contrib-python-headless)")
    p = params
    return cv2.optflow.DualTVL1OpticalFlow_create(
        tau=p.tau, lambda_=p.lambda_, theta=p.theta, nscales=p.nscales, warps=p.warps,
        epsilon=p.epsilon, innnerIterations=p.inner_iterations, outerIterations=p.outer_iterations,
        scaleStep=p.scale_step, gamma=p.gamma, medianFiltering=p.median_filtering, useInitialFlow=False)


def opencv_tvl1_pair(a: np.ndarray, b: np.ndarray, params: TVL1Params) -> np.ndarray:
    """OpenCV TV-L1 flow for one gray pair (uint8, or float32 in [0, 1]) as (H,W,2) float32."""
    return create_opencv_tvl1(params).calc(a, b, None)


class OpenCVTVL1(FlowBackend):
    """OpenCV contrib's Dual TV-L1 (CPU). ``workers`` > 1 runs that many pairs at once in threads
    (OpenCV releases the GIL); OpenCV's own internal threading applies within each pair."""

    name = "tvl1-cpu"
    default_batch_size = 16

    def __init__(self, params: TVL1Params | None = None, device: str | None = None,
                 batch_size: int | None = None, workers: int = 1) -> None:
        if device not in (None, "cpu"):
            raise ValueError(f"tvl1-cpu runs on the CPU only; got device={device!r} (use tvl1-torch)")
        super().__init__(params, "cpu", batch_size)
        if int(workers) != workers or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        self.workers = int(workers)

    def _compute_gray(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.empty(a.shape + (2,), np.float32)

        def one(i: int) -> None:
            out[i] = opencv_tvl1_pair(a[i], b[i], self.params)

        if self.workers == 1 or len(a) == 1:
            for i in range(len(a)):
                one(i)
        else:
            with ThreadPoolExecutor(self.workers) as pool:
                list(pool.map(one, range(len(a))))
        return out
