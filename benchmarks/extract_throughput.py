"""Per-stage seconds per video of `aqa-extract` on a folder of videos, for one device.

    python benchmarks/extract_throughput.py VIDEO_DIR [--device cpu|cuda] [--backbone i3d ...]
        [--untrained] [--sampling jrg --sampling-opt KEY=VALUE]
        [--flow auto|tvl1-cpu|tvl1-torch --flow-opt KEY=VALUE]
        [--limit N] [--frames N] [--pose file|keypoint-rcnn --pose-opt KEY=VALUE]
        [--views flip,shift:2 [--add-views]] [--all-flow-pairs]

With no VIDEO_DIR it renders 8 synthetic videos first (``--frames`` long). Extraction runs into a temporary cache, so
nothing is resumed; the table gives mean seconds per video per stage (decode, sampling, pose, flow,
camera, weightfree, each backbone x stream, write; a view's stages as ``views:<stage>``) and each
stage's share of the total. ``--add-views``: the sources are extracted first, then the views added
to that finished cache (which reuses its poses: stage ``pose-cached``); the two runs' tables side
by side. ``--all-flow-pairs``: the extraction as it is (flow on the pairs the sampling reads) and
with flow on every pair of each video, side by side, with the flow stage's ratio and whether the
two caches hold the same arrays (they must; an untrained backbone gets the same seed in both).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("video_dir", nargs="?")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--backbone", action="append", default=[], choices=["i3d", "i3d-r50", "c3d"])
    ap.add_argument("--streams", default="rgb,flow")
    ap.add_argument("--untrained", action="store_true", help="random backbone weights (timing only)")
    ap.add_argument("--sampling", default="jrg")
    ap.add_argument("--sampling-opt", action="append", default=[], metavar="KEY=VALUE",
                    help="sampling option, as aqa-extract's (e.g. stop=103)")
    ap.add_argument("--frames", type=int, default=72, help="frames of each synthetic video")
    ap.add_argument("--pose", default="file")
    ap.add_argument("--pose-opt", action="append", default=[], metavar="KEY=VALUE",
                    help="pose backend option, as aqa-extract's (e.g. min_size=240)")
    ap.add_argument("--flow", default="auto")
    ap.add_argument("--flow-opt", action="append", default=[], metavar="KEY=VALUE",
                    help="TV-L1 option, as aqa-extract's (e.g. warps=2)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N videos")
    ap.add_argument("--views", default="", help="augmented views to extract too (e.g. flip)")
    ap.add_argument("--add-views", action="store_true",
                    help="extract the sources first, then add the --views to that cache")
    ap.add_argument("--all-flow-pairs", action="store_true",
                    help="also extract with flow on every pair, side by side")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.add_views and args.all_flow_pairs:
        ap.error("--add-views and --all-flow-pairs are two different comparisons: pick one")

    from aqa.extract.cli import parse_options
    from aqa.extract.config import ExtractConfig
    from aqa.extract.discover import discover_videos
    from aqa.extract.runner import Extractor, run_extraction

    with tempfile.TemporaryDirectory() as tmp:
        vdir = Path(args.video_dir) if args.video_dir else Path(tmp) / "videos"
        if not args.video_dir:
            from aqa.data.synthetic import render_dataset
            render_dataset(vdir, n=8, kind="single", seed=0, n_frames=args.frames, progress=False)
        videos = [p for _, p in discover_videos([vdir])][: args.limit]
        cfg = ExtractConfig(sampling=args.sampling, pose=args.pose, flow=args.flow,
                            flow_options=parse_options(args.flow_opt, "--flow-opt"),
                            sampling_options=parse_options(args.sampling_opt, "--sampling-opt"),
                            pose_options=parse_options(args.pose_opt, "--pose-opt"),
                            backbones=tuple(args.backbone),
                            streams=tuple(args.streams.split(",")))
        # (name, views, flow on every pair, cache)
        if args.add_views:
            runs = [("sources", (), False, "bench.h5"), ("views added", args.views, False, "bench.h5")]
        elif args.all_flow_pairs:
            runs = [("read pairs", args.views, False, "read.h5"),
                    ("all pairs", args.views, True, "all.h5")]
        else:
            runs = [("run", args.views, False, "bench.h5")]
        summaries = {}
        for name, views, every, cache in runs:
            Extractor.all_flow_pairs = every
            _seed_torch()  # an untrained backbone: the same weights in every run
            summaries[name] = run_extraction(videos, Path(tmp) / cache, cfg, device=args.device,
                                             batch_size=args.batch_size, untrained=args.untrained,
                                             progress=True, views=views)
        Extractor.all_flow_pairs = False
        same = (_same_arrays(Path(tmp) / "read.h5", Path(tmp) / "all.h5")
                if args.all_flow_pairs else None)
    tables = {name: s.stage_seconds() for name, s in summaries.items()}
    if args.json:
        print(json.dumps({"device": args.device, "videos": len(videos), "runs": tables,
                          "same_arrays": same}))
        return
    first = next(iter(summaries.values()))
    print(f"{first.count('done')} videos, device={args.device}, pose={args.pose}, "
          f"backbones={list(args.backbone) or 'none'}, views={args.views or 'none'}, "
          f"failed={sum(len(s.failed) for s in summaries.values())}")
    names = list(tables)
    order = sorted({k for t in tables.values() for k in t},
                   key=lambda k: -max(t.get(k, 0.0) for t in tables.values()))
    print(f"{'stage':<22}" + "".join(f"{n + ' s/video':>22}{'share':>8}" for n in names))
    totals = {n: sum(t.values()) for n, t in tables.items()}
    for k in order:
        print(f"{k:<22}" + "".join(
            f"{tables[n].get(k, 0.0):>22.3f}{tables[n].get(k, 0.0) / (totals[n] or 1):>8.1%}"
            for n in names))
    print(f"{'total':<22}" + "".join(f"{totals[n]:>22.3f}{'':>8}" for n in names))
    if same is not None:
        read, every = tables["read pairs"].get("flow", 0.0), tables["all pairs"].get("flow", 0.0)
        print(f"flow on every pair / on the pairs read: {every / (read or float('nan')):.2f}x "
              f"({every:.2f} vs {read:.2f} s/video); whole run "
              f"{totals['all pairs'] / (totals['read pairs'] or float('nan')):.2f}x; "
              f"the two caches hold {'the same' if same else 'DIFFERENT'} arrays")


def _seed_torch() -> None:
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(0)


def cache_arrays(path: Path) -> dict:
    """Every array under /videos of a cache, by its path there (``<id>/features/.../whole``)."""
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        f["videos"].visititems(lambda k, o: out.__setitem__(k, o[()])
                               if isinstance(o, h5py.Dataset) else None)
    return out


def _same_arrays(a: Path, b: Path) -> bool:
    """Whether two caches hold the same videos with the same arrays, bit for bit (NaN, a missing
    keypoint, equal to NaN)."""
    import numpy as np

    x, y = cache_arrays(a), cache_arrays(b)
    return x.keys() == y.keys() and all(
        np.array_equal(x[k], y[k], equal_nan=np.asarray(x[k]).dtype.kind in "fc") for k in x)


if __name__ == "__main__":
    main()
