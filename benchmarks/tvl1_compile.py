"""What compiling each part of tvl1-torch buys, side by side in one run on the same pairs, runs
interleaved: the default (``TorchTVL1.compiled_parts``: inner iteration and median filter), every part
(the warp too), the inner iteration alone, and nothing.

    python benchmarks/tvl1_compile.py [--device cpu|cuda] [--size 340x256] [--pairs 16] [--repeats 3]
                                      [--variants default,all,step,eager]

Frames: consecutive frames of opencv-doc's ``vtest.avi`` (see ``tests/media.py``), gray, resized.
Prints seconds per batch of each variant (every repeat and the minimum), each minimum relative to the
first variant's, and the flow difference (EPE) of each variant to the first. Compiled and eager inner
iterations round differently; the stopping rule can amplify that at a few pixels, so the check is on
the mean EPE (fails above 0.01 px), with the maximum printed.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: variant -> the parts of TorchTVL1 it compiles (TorchTVL1.compiled_parts; None: the class default)
VARIANTS = {"default": None, "all": ("step", "median", "warp"), "step": ("step",), "eager": ()}


def build(variant: str, device: str, batch: int):
    from aqa.extract.flow import get_flow_backend

    parts = VARIANTS[variant]
    be = get_flow_backend("tvl1-torch", device=device, compile=parts != (), batch_size=batch)
    if parts is not None:
        be.compiled_parts = parts
    return be


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", default="340x256", help="WxH")
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args(argv)
    names = args.variants.split(",")
    if unknown := sorted(set(names) - set(VARIANTS)):
        ap.error(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")

    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from tvl1 import _load_frames, _pairs

    from aqa.extract.flow.tvl1_torch import TorchTVL1

    w, h = (int(v) for v in args.size.split("x"))
    a, b = _pairs(_load_frames(None, args.pairs + 1), (w, h), args.pairs)
    backends = {}
    for name in names:
        be = backends[name] = build(name, args.device, args.pairs)
        be.compute(a[: min(4, len(a))], b[: min(4, len(b))])  # compilation, and smaller batches
        be.compute(a, b)

    def timed(be):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        flow = be.compute(a, b)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t, flow

    secs = {name: [] for name in names}
    flows = {}
    for _ in range(args.repeats):
        for name in names:
            dt, flows[name] = timed(backends[name])
            secs[name].append(dt)
    print(f"# {args.pairs} pairs {w}x{h} on {args.device}, torch {torch.__version__}")
    ref, worst = min(secs[names[0]]), 0.0
    for name in names:
        v = secs[name]
        parts = "+".join(TorchTVL1.compiled_parts if VARIANTS[name] is None else VARIANTS[name]) or "nothing"
        epe = np.linalg.norm(flows[name] - flows[names[0]], axis=-1)
        worst = max(worst, float(epe.mean()))
        print(f"{name:7s} ({parts} compiled) " + " ".join(f"{x:.2f}" for x in v)
              + f" s per batch; min {min(v):.2f} s = x{min(v) / ref:.2f} the time of '{names[0]}'; "
              f"EPE to it mean {epe.mean():.4f} max {epe.max():.2f} px")
    if worst > 0.01:
        raise SystemExit(f"the variants' flows differ by a mean EPE of {worst:.4f} px")


if __name__ == "__main__":
    main()
