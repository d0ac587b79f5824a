"""Optical flow for stage 1: TV-L1 behind one interface (``tvl1-cpu`` = OpenCV contrib, ``tvl1-torch`` =
our batched PyTorch port for CUDA and CPU), plus I3D flow scaling, camera motion and flow cropping.

Heavy libraries (cv2, torch) are imported only when a backend is created or used.
"""
from .base import (
    BACKEND_NAMES,
    CAMERA_MOTION_FIELDS,
    FlowBackend,
    TVL1Params,
    camera_motion,
    crop_flow,
    flow_to_i3d,
    get_flow_backend,
    to_gray,
)

__all__ = [
    "BACKEND_NAMES",
    "CAMERA_MOTION_FIELDS",
    "FlowBackend",
    "TVL1Params",
    "camera_motion",
    "crop_flow",
    "flow_to_i3d",
    "get_flow_backend",
    "to_gray",
]
