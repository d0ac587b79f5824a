"""Small builders of cache content for tests (not a test module)."""
from __future__ import annotations

import math

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


_HOLDER = ("import sys, time, h5py\nf = h5py.File(sys.argv[1], sys.argv[2])\nprint('open', flush=True)\n"
           "time.sleep(float(sys.argv[3]))\nf.close()\n")


def hold_open(path, mode: str, seconds: float):
    """Start a second process that keeps the HDF5 file ``path`` open (its file lock) for ``seconds``;
    returns the Popen once the file is open (kill and wait it when done)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path), mode, str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "open"
    return proc


def learnable_cache(path, n=40, actions=("diving", "gym_vault"), folds=False, untrained=False,
                    views=()):
    """Features whose first column drives the score, so a working head ranks test videos well.

    ``views``: canonical view names (``"flip"``) written for every video as ``ID@NAME`` groups,
    the source's features plus a little noise (what an augmented copy looks like to a head)."""
    from aqa.data.cache import CacheWriter
    from aqa.data.labels import LabelRow

    rng = np.random.default_rng(0)
    rows = []
    with CacheWriter(path, config={"sampling": "c3d", "pose": "file"}, untrained=untrained) as w:
        for i in range(n):
            a = video_arrays(i, S=4, D=6)
            q = rng.uniform(0, 1)
            a["features/kin_pose/whole"][:, 0] = q + rng.normal(0, 0.02, 4)
            a["features/kin_pose/joints"][:, :, 0] = q
            action = actions[i % len(actions)]
            split = f"fold{i % 4}" if folds else ("test" if i % 5 == 0 else "train")
            w.write_video(f"v{i:02d}", VIDEO_ATTRS, a)
            for name in views:
                va = {k: (v + rng.normal(0, 0.01, v.shape).astype(v.dtype)
                          if k.startswith("features/") and v.dtype.kind == "f" else v)
                      for k, v in a.items()}
                w.write_video(f"v{i:02d}@{name}", {**VIDEO_ATTRS, "view_of": f"v{i:02d}",
                                                    "view": name}, va)
            rows.append(LabelRow(f"v{i:02d}", 10 + 80 * q, action, math.nan, split))
        w.write_labels(rows)
    return path
