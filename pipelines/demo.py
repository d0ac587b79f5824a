"""`make demo`: the whole story on built-in synthetic data, on a CPU, in minutes.

1. render synthetic dives (ground-truth pose sidecars, labels with a train/test split);
2. extract them into a feature cache (`aqa-extract`: poses from the sidecars, TV-L1 flow, the
   weight-free feature families; I3D too when its checkpoint is installed);
3. verify the cache, and draw the first video's cached poses on its frames (``aqa-extract show``);
4. bench every registered head on the same cache and split over several seeds and print the table
   (Markdown, CSV, JSON and a predicted-vs-true plot land in OUT/bench/).

Re-running resumes: finished videos are not re-extracted. The demo's TV-L1 uses a lighter setting
than OpenCV's defaults (2 scales, 1 warp, 4 outer x 10 inner iterations) so that it fits in a few CPU minutes; pass
``--full-flow`` for the defaults. The heads train with their defaults (budgets of a few hundred
steps, measured for a CPU and tens to hundreds of videos, see :mod:`aqa.heads.presets`) instead of
the papers' thousands; ``--paper-defaults`` uses the papers' settings.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEMO_FLOW = {"nscales": 2, "warps": 1, "outer_iterations": 4, "inner_iterations": 10}
PAPER_SETTINGS = "the papers' settings (preset 'paper')"
DEFAULT_SETTINGS = "the heads' defaults"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m aqa.pipelines.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    ap.add_argument("--n", type=int, default=48, help="number of synthetic videos")
    ap.add_argument("--kind", choices=["single", "sync", "coordination"], default="single",
                    help="coordination: one performer scored on the timing between arms and legs")
    ap.add_argument("--frames", type=int, default=40, help="frames per video")
    ap.add_argument("--seeds", type=int, default=3, help="training seeds per head")
    ap.add_argument("--heads", default="all", help="comma-separated head names, or all")
    ap.add_argument("--full-flow", action="store_true", help="OpenCV's default TV-L1 parameters")
    ap.add_argument("--paper-defaults", action="store_true",
                    help="train the neural heads with their papers' settings, the 'paper' preset of "
                         "aqa.heads.presets (slow on a CPU)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    from aqa.heads.registry import resolve_heads
    try:
        heads = resolve_heads(args.heads)
    except ValueError as e:
        ap.error(str(e))
    for name in ("n", "frames", "seeds"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be a positive integer, got {getattr(args, name)}")

    from aqa.data.integrity import verify
    from aqa.data.synthetic import render_dataset
    from aqa.extract.config import ExtractConfig
    from aqa.extract.runner import run_extraction
    from aqa.extract.registry import BACKBONES
    from aqa.extract.weights import MissingWeightsError, checkpoints_for, resolve_first
    from aqa.heads.bench import run_bench
    from aqa.heads.report import to_markdown, write_report

    out = Path(args.out)
    t0 = time.perf_counter()
    videos = out / "videos"
    print(f"[1/4] rendering {args.n} synthetic '{args.kind}' videos into {videos}")
    render_dataset(videos, n=args.n, kind=args.kind, seed=0, n_frames=args.frames, size=(128, 96))

    backbones = ()
    try:
        for stream in ("rgb", "flow"):    # any registered I3D checkpoint of each stream will do
            resolve_first(checkpoints_for(f"backbone:i3d/{stream}", BACKBONES.get("i3d").weights[stream]),
                          check=False)   # presence only: the extractor verifies the sha256
        backbones = ("i3d",)
    except MissingWeightsError:
        print("      (no I3D checkpoint installed: weight-free features only; see "
              "`aqa-extract weights list`)")
    cfg = ExtractConfig(sampling="jrg", pose="file", persons=2 if args.kind == "sync" else 1,
                        flow="auto", flow_options={} if args.full_flow else dict(DEMO_FLOW),
                        backbones=backbones)
    cache = out / "feats.h5"
    print(f"[2/4] extracting into {cache} (pose from sidecars, TV-L1 "
          f"{'defaults' if args.full_flow else DEMO_FLOW}, sampling jrg)")
    summary = run_extraction([videos], cache, cfg, labels=videos / "labels.csv",
                             device=args.device)
    if summary.failed:
        for r in summary.failed:
            print(f"      FAILED {r.path} [{r.stage}] {r.error}", file=sys.stderr)
        return 1
    print(f"      {summary.count('done')} extracted, {summary.count('skipped')} already in the cache")
    stages = summary.stage_seconds()
    if stages:
        print("      seconds per video: " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))

    print(f"[3/4] verifying {cache}")
    rep = verify(cache)
    print(f"      {rep.n_videos} videos, families {sorted(rep.families)}, "
          f"{'OK' if rep.ok else 'BROKEN: ' + '; '.join(rep.problems[:3])}")
    if not rep.ok:
        return 1
    from aqa.data.cache import CacheReader
    from aqa.extract.show import contact_sheet

    with CacheReader(cache) as r:
        first = r.video_ids()[0]
    sheet = contact_sheet(cache, first, out / f"poses_{first}.png", root=videos, patches=True)
    print(f"      poses on the frames of {first}: {sheet} (`aqa-extract show` draws any video)")

    feature = "i3d_rgb" if backbones else "kin_pose+hof_flow"
    from aqa.heads.presets import presets_for
    budget = presets_for(heads, "paper") if args.paper_defaults else {}
    print(f"[4/4] bench: heads={args.heads}, seeds={args.seeds}, feature={feature}, training "
          f"settings: {PAPER_SETTINGS if args.paper_defaults else DEFAULT_SETTINGS}")
    res = run_bench(cache, heads=heads, seeds=args.seeds, feature=feature,
                    per_action=False, params=budget)
    res.setup["training_budget"] = PAPER_SETTINGS if args.paper_defaults else DEFAULT_SETTINGS
    paths = write_report(res, out / "bench")
    print()
    print(to_markdown(res))
    print(f"report: {paths['md']}  {paths['csv']}  {paths['json']}  plot: {paths['png']}")
    print(f"demo finished in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
