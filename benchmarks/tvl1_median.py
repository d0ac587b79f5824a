"""tvl1-torch with its median filter compiled vs eager, side by side in one run (both with the
compiled inner iteration, the CUDA default), on the same pairs, runs interleaved.

    python benchmarks/tvl1_median.py [--device cpu|cuda] [--size 340x256] [--pairs 16] [--repeats 3]

Frames: consecutive frames of opencv-doc's ``vtest.avi`` (see ``tests/media.py``), gray, resized.
Prints seconds per batch of each variant (every repeat, and the minimum) and the ratio of the minima;
asserts nothing but that both give the same flow.
"""
from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", default="340x256", help="WxH")
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    import torch

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from tvl1 import _load_frames, _pairs

    from aqa.extract.flow import get_flow_backend
    from aqa.extract.flow.median import median_network, sorting_network
    from aqa.extract.flow.tvl1_torch import median_step

    w, h = (int(v) for v in args.size.split("x"))
    a, b = _pairs(_load_frames(None, args.pairs + 1), (w, h), args.pairs)
    variants = {}
    for name in ("compiled median", "eager median"):
        be = get_flow_backend("tvl1-torch", device=args.device, compile=True, batch_size=args.pairs)
        if name == "eager median":
            k = be.params.median_filtering
            be._median = functools.partial(median_step, k=k, column_sort=sorting_network(k),
                                           selection=median_network(k))
        be.compute(a[: min(4, len(a))], b[: min(4, len(b))])  # compile, and meet smaller batches
        be.compute(a, b)
        variants[name] = be

    def timed(be):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        flow = be.compute(a, b)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t, flow

    secs = {name: [] for name in variants}
    flows = {}
    for _ in range(args.repeats):
        for name, be in variants.items():
            dt, flows[name] = timed(be)
            secs[name].append(dt)
    diff = float(np.abs(flows["compiled median"] - flows["eager median"]).max())
    print(f"# {args.pairs} pairs {w}x{h} on {args.device}, torch {torch.__version__}; max |flow difference| "
          f"{diff:.2g} px")
    for name, v in secs.items():
        print(f"{name:16s} " + " ".join(f"{x:.2f}" for x in v) + f" s per batch (min {min(v):.2f})")
    print(f"eager / compiled (minima): x{min(secs['eager median']) / min(secs['compiled median']):.2f}")
    if diff > 1e-3:
        raise SystemExit(f"the two variants disagree by {diff} px")


if __name__ == "__main__":
    main()
