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
def run(recipe, video_dir, annotation_dir, out, heads, seeds, pose, backbones, no_backbone,
        without_difficulty, device, weights, untrained):
    """Run RECIPE on the videos in VIDEO_DIR with the annotation files in ANNOTATION_DIR."""
    from aqa.extract.weights import WeightsError, parse_weight_overrides

    from .recipes import run_recipe

    try:
        res = run_recipe(recipe, video_dir, annotation_dir, out, heads=heads, seeds=seeds, pose=pose,
                         backbones=() if no_backbone else backbones,
                         with_difficulty=not without_difficulty, device=device,
                         untrained=untrained, weight_overrides=parse_weight_overrides(weights))
    except (ValueError, FileNotFoundError, WeightsError, RuntimeError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    click.echo(res["paths"]["md"].read_text())
    click.echo(f"report: {res['paths']['md']}")


if __name__ == "__main__":  # pragma: no cover
    main()
