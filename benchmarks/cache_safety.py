"""What the cache's crash safety costs, side by side in one run: a commit staged in a file of its
own and copied in (what `CacheWriter.write_video` does) vs the same arrays written straight into
the cache; and, at a resume, listing the complete videos with every array read back (checksums,
what `CacheWriter.complete_ids` does) vs their status only.

    python benchmarks/cache_safety.py [--videos 40] [--mb 4]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np


def arrays(seed: int, mb: float) -> dict:
    """One video's arrays: poses and one feature family of about ``mb`` MiB (float32)."""
    rng = np.random.default_rng(seed)
    steps = max(1, int(mb * 2**20 / 4 / (17 * 512)))
    return {"frames/index": np.arange(96, dtype=np.int32),
            "pose/keypoints": rng.normal(size=(96, 1, 17, 3)).astype(np.float32),
            "pose/boxes": rng.uniform(0, 99, size=(96, 1, 4)).astype(np.float32),
            "pose/box_scores": rng.uniform(size=(96, 1)).astype(np.float32),
            "pose/roles": np.zeros(1, np.int8),
            "features/i3d_rgb/joints": rng.normal(size=(steps, 17, 512)).astype(np.float32),
            "features/i3d_rgb/whole": rng.normal(size=(steps, 1024)).astype(np.float32)}


def main() -> None:
    from aqa.data.cache import CacheWriter, _dataset_kwargs

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=40)
    ap.add_argument("--mb", type=float, default=4.0, help="MiB of features per video")
    a = ap.parse_args()
    attrs = {"fps": 25.0, "n_frames": 96, "height": 256, "width": 340, "source_relpath": "x.mp4"}
    data = [arrays(i, a.mb) for i in range(a.videos)]
    with tempfile.TemporaryDirectory() as tmp:
        staged, direct = Path(tmp) / "staged.h5", Path(tmp) / "direct.h5"
        t0 = time.perf_counter()
        with CacheWriter(staged, config={"bench": 1}) as w:
            for i, arr in enumerate(data):
                w.write_video(f"v{i:04d}", attrs, arr)
        t_staged = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i, arr in enumerate(data):   # the same arrays, written in place, one opening each
            with h5py.File(direct, "a") as f:
                g = f.create_group(f"videos/v{i:04d}")
                for k, v in attrs.items():
                    g.attrs[k] = v
                for rel, x in arr.items():
                    g.create_dataset(rel, data=x, **_dataset_kwargs(x))
                g.attrs["status"] = "complete"
        t_direct = time.perf_counter() - t0
        w = CacheWriter(staged, config={"bench": 1})
        t0 = time.perf_counter()
        n_checked = len(w.complete_ids())
        t_check = time.perf_counter() - t0
        t0 = time.perf_counter()
        with h5py.File(staged, "r") as f:
            n_listed = sum(g.attrs.get("status") == "complete" for g in f["videos"].values())
        t_list = time.perf_counter() - t0
        size = staged.stat().st_size / 2**20
    print(f"{a.videos} videos, {a.mb:g} MiB of features each, cache {size:.0f} MiB")
    print(f"commit  staged+copied {1e3 * t_staged / a.videos:7.1f} ms/video   "
          f"written in place {1e3 * t_direct / a.videos:7.1f} ms/video   "
          f"ratio {t_staged / t_direct:.2f}")
    print(f"resume  checksums read {t_check:7.2f} s ({n_checked} videos)   "
          f"status only {t_list:7.3f} s ({n_listed} videos)")


if __name__ == "__main__":
    main()
