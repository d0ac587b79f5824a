"""TV-L1 throughput, measured side by side in one run: tvl1-torch (batched) vs OpenCV on every CPU core.

    python benchmarks/tvl1.py [--sizes 224x224,340x256,640x360] [--batch N] [--pairs N] [--cv-pairs N]
                              [--no-compile] [--cpu-eager] [--skip-torch-cpu] [--json]

Frames are consecutive frames of opencv-doc's ``vtest.avi`` (fetched by ``tests/media.py``; ``--video``
for another file), converted to gray and resized to each size; every method sees the same pairs.

- OpenCV: ``cv2.optflow.DualTVL1OpticalFlow`` with its defaults, one process per CPU core
  (``cv2.setNumThreads(1)`` in each), pool start-up excluded;
- tvl1-torch on CUDA (when available): one batch of ``--batch`` pairs, after a warm-up batch
  (``torch.compile`` happens there);
- tvl1-torch on the CPU (all threads, one batch, compiled unless ``--no-cpu-compile``), unless
  ``--skip-torch-cpu``; with ``--cpu-eager`` also eager in the same run (the two rows side by side:
  what ``--flow auto`` chooses between where compiling is not possible).

It prints pairs/s for each, the ratios tvl1-torch(GPU) / OpenCV(all cores) and tvl1-torch(CPU) /
OpenCV(all cores), the device it ran on, and the EPE between tvl1-torch and OpenCV on the measured pairs
(median / mean, px). Nothing is asserted: it is a measurement.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _load_frames(video: str | None, n: int) -> list[np.ndarray]:
    import cv2

    if video is None:
        sys.path.insert(0, str(ROOT))
        from tests.media import opencv_data_dir

        try:
            video = str(opencv_data_dir() / "vtest.avi")
        except BaseException as exc:  # pytest.skip raises an outcome exception outside pytest
            raise SystemExit(f"no sample video available ({exc}); pass --video PATH") from None
    cap = cv2.VideoCapture(video)
    frames = []
    while len(frames) < n:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY))
    cap.release()
    if len(frames) < 2:
        raise SystemExit(f"could not decode 2 frames from {video}")
    return frames


def _pairs(frames: list[np.ndarray], size: tuple[int, int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` consecutive-frame pairs at ``size`` (W, H), cycling through the decoded frames."""
    import cv2

    small = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
    idx = [i % (len(small) - 1) for i in range(n)]
    return np.stack([small[i] for i in idx]), np.stack([small[i + 1] for i in idx])


def _cv_init(_=None) -> None:
    import cv2

    cv2.setNumThreads(1)


def _cv_pair(args):
    import cv2

    a, b = args
    return cv2.optflow.DualTVL1OpticalFlow_create().calc(a, b, None)


def bench_opencv(pool, a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
    t = time.perf_counter()
    flows = pool.map(_cv_pair, list(zip(a, b)), chunksize=1)
    dt = time.perf_counter() - t
    return len(a) / dt, np.stack(flows)


def bench_torch(device: str, a: np.ndarray, b: np.ndarray, compile: bool | str) -> tuple[float, np.ndarray]:
    import torch

    from aqa.extract.flow import get_flow_backend

    be = get_flow_backend("tvl1-torch", device=device, compile=compile, batch_size=len(a))
    warm = max(1, min(len(a), 4 if device == "cpu" else len(a)))
    be.compute(a[:warm], b[:warm])  # warm-up (and compilation) outside the timing
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    flow = be.compute(a, b)  # includes host->device and device->host copies
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return len(a) / (time.perf_counter() - t), flow


def _epe(f, g) -> tuple[float, float]:
    e = np.linalg.norm(f - g, axis=-1)
    return float(np.median(e)), float(e.mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="224x224,340x256,640x360", help="comma-separated WxH")
    ap.add_argument("--batch", type=int, default=256, help="pairs per tvl1-torch GPU batch")
    ap.add_argument("--pairs", type=int, default=8, help="pairs for tvl1-torch on the CPU")
    ap.add_argument("--cv-pairs", type=int, default=None, help="pairs for OpenCV (default 2 per core)")
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="OpenCV processes (default: all cores)")
    ap.add_argument("--video", default=None, help="video to take frames from (default opencv-doc vtest.avi)")
    ap.add_argument("--no-compile", action="store_true", help="run tvl1-torch on CUDA without torch.compile")
    ap.add_argument("--no-cpu-compile", action="store_true",
                    help="run tvl1-torch on the CPU eagerly (default: torch.compile, compile time excluded)")
    ap.add_argument("--cpu-eager", action="store_true",
                    help="also run tvl1-torch on the CPU eagerly, beside the compiled run")
    ap.add_argument("--skip-torch-cpu", action="store_true")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)

    import torch

    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    cuda = torch.cuda.is_available()
    cv_pairs = args.cv_pairs or 2 * args.workers
    frames = _load_frames(args.video, 64)
    info = {
        "cpu": _cpu_name(), "cpu_cores": os.cpu_count(), "opencv_processes": args.workers,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "torch": torch.__version__, "torch_cpu_threads": torch.get_num_threads(),
        "compile_gpu": (not args.no_compile) if cuda else None, "compile_cpu": not args.no_cpu_compile,
    }
    if not args.json:
        print(f"# device: GPU {info['gpu'] or 'none (CUDA unavailable: GPU rows skipped)'}; "
              f"CPU {info['cpu']} x {info['cpu_cores']} cores; torch {info['torch']}")
    rows = []
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.workers, initializer=_cv_init) as pool:
        pool.map(_cv_init, range(args.workers))  # start every worker before timing
        for w, h in sizes:
            row = {"size": f"{w}x{h}"}
            a, b = _pairs(frames, (w, h), cv_pairs)
            row["opencv_pairs_per_s"], cv_flow = bench_opencv(pool, a, b)
            if cuda:
                ga, gb = _pairs(frames, (w, h), args.batch)
                row["torch_gpu_pairs_per_s"], flow = bench_torch(
                    "cuda", ga, gb, False if args.no_compile else True)
                row["gpu_vs_opencv"] = row["torch_gpu_pairs_per_s"] / row["opencv_pairs_per_s"]
                n = min(len(cv_flow), len(flow))
                row["epe_median_px"], row["epe_mean_px"] = _epe(flow[:n], cv_flow[:n])
            if not args.skip_torch_cpu:
                ca, cb = _pairs(frames, (w, h), args.pairs)
                row["torch_cpu_pairs_per_s"], flow = bench_torch("cpu", ca, cb, not args.no_cpu_compile)
                row["torch_cpu_vs_opencv"] = row["torch_cpu_pairs_per_s"] / row["opencv_pairs_per_s"]
                n = min(len(cv_flow), len(flow))
                row["cpu_epe_median_px"], row["cpu_epe_mean_px"] = _epe(flow[:n], cv_flow[:n])
                if args.cpu_eager and not args.no_cpu_compile:
                    row["torch_cpu_eager_pairs_per_s"], flow = bench_torch("cpu", ca, cb, False)
                    row["torch_cpu_eager_vs_opencv"] = (row["torch_cpu_eager_pairs_per_s"]
                                                        / row["opencv_pairs_per_s"])
            rows.append(row)
            if not args.json:
                parts = [f"{row['size']:>8}: OpenCV {args.workers} procs {row['opencv_pairs_per_s']:8.2f} pairs/s"]
                if "torch_gpu_pairs_per_s" in row:
                    parts.append(f"tvl1-torch GPU {row['torch_gpu_pairs_per_s']:9.2f} pairs/s "
                                 f"(x{row['gpu_vs_opencv']:.1f}; EPE vs OpenCV median "
                                 f"{row['epe_median_px']:.3f} mean {row['epe_mean_px']:.3f} px)")
                if "torch_cpu_pairs_per_s" in row:
                    parts.append(f"tvl1-torch CPU {row['torch_cpu_pairs_per_s']:7.2f} pairs/s "
                                 f"(x{row['torch_cpu_vs_opencv']:.2f}; EPE median "
                                 f"{row['cpu_epe_median_px']:.3f} mean {row['cpu_epe_mean_px']:.3f} px)")
                if "torch_cpu_eager_pairs_per_s" in row:
                    parts.append(f"eager {row['torch_cpu_eager_pairs_per_s']:7.2f} pairs/s "
                                 f"(x{row['torch_cpu_eager_vs_opencv']:.2f})")
                print(" | ".join(parts), flush=True)
    if args.json:
        print(json.dumps({"info": info, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
