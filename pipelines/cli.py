"""`python -m aqa.pipelines`: run a published benchmark protocol end to end on your videos."""
from __future__ import annotations

import sys

import click

from aqa.data.cli import plain_warnings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(ctx):
    """Benchmark recipes: labels -> extraction -> every head -> report (see `list`)."""
    plain_warnings(ctx)


@main.command("list")
def list_cmd():
    """The recipes and their protocols."""
    from .recipes import RECIPES

    for r in RECIPES.values():
        click.echo(f"{r.name:<11} sampling={r.sampling:<13} protocol={r.protocol:<6} "
                   f"per_action={'yes' if r.per_action else 'no ':<4} {r.description}")


@main.command()
@click.argument("recipe")
@click.argument("video_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("annotation_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--heads", default="all", show_default=True, help="Comma-separated heads or all.")
@click.option("--seeds", default=5, show_default=True)
@click.option("--pose", default="keypoint-rcnn", show_default=True,
              type=click.Choice(["keypoint-rcnn", "detectron2", "blazepose", "file"]))
@click.option("--backbone", "backbones", multiple=True, default=("i3d",), show_default=True,
              type=click.Choice(["i3d", "i3d-r50", "c3d"]))
@click.option("--no-backbone", is_flag=True, help="Weight-free features only.")
@click.option("--without-difficulty", is_flag=True, help="Hide the difficulty from every head.")
@click.option("--device", default="auto", show_default=True)
@click.option("--weights", multiple=True, metavar="NAME=PATH")
@click.option("--untrained", is_flag=True, help="Allow random backbone weights (marked in reports).")
@click.option("--views", default=None, metavar="SPECS|paper",
              help="Augmented views of the training videos (e.g. 'flip', 'shift:1-5'), extracted "
                   "and added to the training rows of the heads that train on views; 'paper': "
                   "each head the views its paper trains on (JRG flips, the fragment network's "
                   "start shifts, the Siamese DML's zoom, brightness, histogram-equalised and "
                   "masked copies).")
@click.option("--cameras", type=click.Choice(["left", "right", "both"]), default=None,
              help="JIGSAWS: which camera's recordings (default left, as MUSDL reads; both: each "
                   "recording a sample of its own, as JRG and AIM did, a trial's two in one fold).")
@click.option("--allow-missing", is_flag=True,
              help="Run on the videos found although some are missing, leaving out the actions or "
                   "folds they leave empty (the report says what); without it, a missing video or "
                   "an empty split is an error before any extraction.")
def run(recipe, video_dir, annotation_dir, out, heads, seeds, pose, backbones, no_backbone,
        without_difficulty, device, weights, untrained, views, cameras, allow_missing):
    """Run RECIPE on the videos in VIDEO_DIR with the annotation files in ANNOTATION_DIR."""
    from aqa.extract.weights import WeightsError, parse_weight_overrides

    from .recipes import run_recipe

    if cameras and recipe != "jigsaws":
        click.echo(f"error: --cameras is for the jigsaws recipe, not {recipe}", err=True)
        sys.exit(2)
    try:
        res = run_recipe(recipe, video_dir, annotation_dir, out, heads=heads, seeds=seeds, pose=pose,
                         backbones=() if no_backbone else backbones,
                         with_difficulty=not without_difficulty, device=device,
                         untrained=untrained, weight_overrides=parse_weight_overrides(weights),
                         views=views, dataset_options={"cameras": cameras} if cameras else None,
                         allow_missing=allow_missing)
    except (ValueError, FileNotFoundError, WeightsError, RuntimeError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    click.echo(res["paths"]["md"].read_text())
    click.echo(f"report: {res['paths']['md']}")
    errors = res["result"].errors
    if errors:
        click.echo(f"error: {len(errors)} run(s) failed (listed in {res['paths']['md']})", err=True)
        sys.exit(1)


@main.command()
@click.argument("dataset", type=click.Choice(["mtl_aqa", "unlv_dive"]))
@click.argument("annotation_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("full_video_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="VIDEO_DIR to create: one frame folder per dive, <video>_<clip>/.")
@click.option("--min-frames", type=click.IntRange(min=1), default=103, show_default=True,
              help="Frames per dive at least, ending at its end_frame (CoRe's and MUSDL's 103).")
@click.option("--short-side", type=click.IntRange(min=1), default=None, metavar="PX",
              help="Downscale frames so the shorter side is PX (never up; default: as decoded).")
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True,
              help="JPEG quality of the frames written.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def cut(dataset, annotation_dir, full_video_dir, out, min_frames, short_side, quality, quiet):
    """Cut DATASET's full videos (01.mp4 ... or frame folders 01/ ... in FULL_VIDEO_DIR) into the
    per-dive frame folders `run` reads, by the frame ranges in ANNOTATION_DIR (resumable)."""
    from .cut import cut_dives

    try:
        s = cut_dives(dataset, annotation_dir, full_video_dir, out, min_frames=min_frames,
                      short_side=short_side, jpeg_quality=quality, progress=not quiet)
    except (ValueError, FileNotFoundError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    click.echo(f"{dataset}: {len(s.done)} dives cut, {len(s.skipped)} already there, "
               f"{len(s.failed)} failed -> {out}")
    if s.missing_videos:
        click.echo(f"warning: {len(s.missing_videos)} full video(s) not in {full_video_dir} "
                   f"({', '.join(f'{v:02d}' for v in s.missing_videos)}): their "
                   f"{len(s.missing_dives)} dives are not cut", err=True)
    for vid, reason in list(s.failed.items())[:10]:
        click.echo(f"  FAILED {vid}: {reason}", err=True)
    if s.failed:
        click.echo(f"error: {len(s.failed)} dive(s) failed", err=True)
        sys.exit(1)
    click.echo(f"next: python -m aqa.pipelines run {dataset} {out} {annotation_dir} --out RESULTS")


if __name__ == "__main__":  # pragma: no cover
    main()
