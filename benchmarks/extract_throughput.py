"""Per-stage seconds per video of `aqa-extract` on a folder of videos, for one device.

    python benchmarks/extract_throughput.py VIDEO_DIR [--device cpu|cuda] [--backbone i3d ...]
        [--untrained] [--sampling jrg] [--flow auto|tvl1-cpu|tvl1-torch] [--limit N]

With no VIDEO_DIR it renders 8 synthetic videos first. Extraction runs into a temporary cache, so
nothing is resumed; the table gives mean seconds per video per stage (decode, sampling, pose, flow,
camera, weightfree, each backbone x stream, write) and each stage's share of the total.
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
    ap.add_argument("--pose", default="file")
    ap.add_argument("--flow", default="auto")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N videos")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from aqa.extract.runner import ExtractConfig, discover_videos, run_extraction

    with tempfile.TemporaryDirectory() as tmp:
        vdir = Path(args.video_dir) if args.video_dir else Path(tmp) / "videos"
        if not args.video_dir:
            from aqa.data.synthetic import render_dataset
            render_dataset(vdir, n=8, kind="single", seed=0, progress=False)
        videos = [p for _, p in discover_videos([vdir])][: args.limit]
        cfg = ExtractConfig(sampling=args.sampling, pose=args.pose, flow=args.flow,
                            backbones=tuple(args.backbone),
                            streams=tuple(args.streams.split(",")))
        summary = run_extraction(videos, Path(tmp) / "bench.h5", cfg, device=args.device,
                                 batch_size=args.batch_size, untrained=args.untrained, progress=True)
    stages = summary.stage_seconds()
    total = sum(stages.values())
    if args.json:
        print(json.dumps({"device": args.device, "videos": summary.count("done"), "stages": stages}))
        return
    print(f"{summary.count('done')} videos, device={args.device}, "
          f"backbones={list(args.backbone) or 'none'}, failed={len(summary.failed)}")
    print(f"{'stage':<14}{'s/video':>10}{'share':>8}")
    for k, v in sorted(stages.items(), key=lambda kv: -kv[1]):
        print(f"{k:<14}{v:>10.3f}{v / total:>8.1%}")
    print(f"{'total':<14}{total:>10.3f}")


if __name__ == "__main__":
    main()
