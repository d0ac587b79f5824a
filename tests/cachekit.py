"""Small builders of cache content for tests (not a test module)."""
from __future__ import annotations

import numpy as np


def video_arrays(seed: int, S: int = 4, F: int = 12, D: int = 6, families=("kin_pose",)) -> dict:
    """Arrays of one plausible video: poses for one person and features per family."""
    rng = np.random.default_rng(seed)
    arrays = {
        "frames/index": np.arange(F, dtype=np.int32),
        "pose/keypoints": rng.normal(size=(F, 1, 17, 3)).astype(np.float32),
        "pose/boxes": rng.uniform(0, 50, size=(F, 1, 4)).astype(np.float32),
        "pose/box_scores": rng.uniform(size=(F, 1)).astype(np.float32),
        "pose/roles": np.zeros(1, np.int8),
        "motion/camera": rng.normal(size=(S, 5)).astype(np.float32),
    }
    for fam in families:
        arrays[f"features/{fam}/whole"] = rng.normal(size=(S, D)).astype(np.float32)
        arrays[f"features/{fam}/joints"] = rng.normal(size=(S, 17, D)).astype(np.float32)
        arrays[f"features/{fam}/clip_start"] = np.arange(S, dtype=np.int32) * 3
        arrays[f"features/{fam}/clip_end"] = np.arange(S, dtype=np.int32) * 3 + 2
    return arrays


VIDEO_ATTRS = {"fps": 25.0, "n_frames": 12, "height": 48, "width": 64, "source_relpath": "x.mp4",
               "source_sha256": "0" * 64}
