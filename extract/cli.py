"""`aqa-extract`: videos -> HDF5 feature cache (stage 1), plus `merge` and `weights`."""
from __future__ import annotations

import json
import sys

import click

from aqa.data.cli import merge as data_merge
from aqa.data.cli import plain_warnings
from aqa.data.logs import logging_options
from aqa.data.labels import read_labels_csv
from aqa.data.views import parse_views

from .pose.base import PoseError
from .registry import BACKBONES, FLOW, POSE, SAMPLING, VIEWS
from .weights import MissingWeightsError, WeightsError, parse_weight_overrides, weights_cli


class _DefaultRun(click.Group):
    """`aqa-extract VIDEOS... --out F` runs extraction; `merge` and `weights` are subcommands."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


class RegistryChoice(click.Choice):
    """One of a registry's names (or of ``choices``, default the registry's names): the ``--help``
    choices come from the registry; an old spelling is accepted with a ``warning:`` line."""

    def __init__(self, registry, choices=None):
        super().__init__(list(registry.names() if choices is None else choices))
        self.registry = registry

    def convert(self, value, param, ctx):
        new = self.registry.deprecated(value) if isinstance(value, str) else None
        if new is not None:
            hint = f"{param.get_error_hint(ctx)} " if param is not None else ""
            click.echo(f"warning: {hint}{value!r} is deprecated; use {new!r}", err=True)
            value = new
        return super().convert(value, param, ctx)


def _view_help() -> str:
    kinds = ", ".join(f"{v.syntax} ({v.description})" for v in VIEWS)
    return ("Also extract an augmented view of each video, stored beside it as ID@NAME (repeatable, "
            f"comma-separated allowed): {kinds}. Decode, pose and flow run once per video; complete "
            "views are skipped; new views of a finished video reuse its cached poses. Views are for "
            "training rows only: `aqa-heads train --views ...`.")


def _expected_errors() -> tuple[type, ...]:
    """Errors that mean bad input or environment: reported as one `error:` line, exit 2.

    The backbones' StateDictMismatchError is added only once that module is loaded (it imports
    torch; it cannot have been raised otherwise)."""
    from aqa.data.cache import CacheError   # h5py: only once a command runs

    errs = [ValueError, FileNotFoundError, WeightsError, CacheError, PoseError]
    base = sys.modules.get("aqa.extract.backbones.base")
    if base is not None:
        errs.append(base.StateDictMismatchError)
    return tuple(errs)


def parse_options(items, what):
    """``KEY=VALUE`` option strings -> dict, each value read as JSON where it parses (``3``,
    ``true``, ``[1, 2]``) and kept as a string otherwise; a bad item is a click usage error."""
    out = {}
    for it in items:
        if "=" not in it:
            raise click.BadParameter(f"expected KEY=VALUE, got {it!r}", param_hint=what)
        k, v = it.split("=", 1)
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out


@click.group(cls=_DefaultRun, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(ctx):
    """Extract pose, TV-L1 flow and I3D/C3D features from videos into an HDF5 cache.

    \b
      aqa-extract VIDEOS_OR_DIRS... --out feats.h5 [options]   (see `aqa-extract run --help`)
      aqa-extract merge parts/*.h5 --out feats.h5
      aqa-extract show feats.h5 VIDEO_ID --root videos/ --out sheet.png
      aqa-extract weights list | fetch NAME
    """
    plain_warnings(ctx)


def _view_split_ids(split, labels, views):
    """The ids of the --labels rows of split ``split`` (None without --view-split)."""
    if split is None:
        return None
    if not views or not labels:
        raise click.UsageError("--view-split needs --view and --labels")
    rows = read_labels_csv(labels)
    ids = {r.video_id for r in rows if r.split == split}
    if not ids:
        have = sorted({r.split for r in rows})
        raise click.BadParameter(f"no row of {labels} has split {split!r} (splits: {have})",
                                 param_hint="--view-split")
    return ids


@main.command("run")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Cache file (HDF5).")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False),
              help="labels CSV (video_id, score, ...) stored in the cache's /labels table.")
@click.option("--sampling", type=RegistryChoice(SAMPLING), default="jrg", show_default=True,
              help=f"Temporal sampling protocol: {SAMPLING.help()}.")
@click.option("--sampling-opt", multiple=True, metavar="KEY=VALUE",
              help="Sampling option, e.g. T=10, length=16 (jrg), stride=16 (c3d), n_fragments=9 (repeatable).")
@click.option("--pose", type=RegistryChoice(POSE), default="file", show_default=True,
              help=f"Pose backend: {POSE.help()}.")
@click.option("--pose-opt", multiple=True, metavar="KEY=VALUE", help="Pose backend option.")
@click.option("--persons", type=click.IntRange(1, 2), default=1, show_default=True,
              help="1, or 2 for two-person events (synchronised diving).")
@click.option("--flow", type=RegistryChoice(FLOW, ("auto", *FLOW.names(), "none")), default="auto",
              show_default=True,
              help="Optical flow (auto: the backend measured faster on the device: "
                   "tvl1-torch on CUDA, and on the CPU where torch.compile works; recorded in "
                   "the cache config). 'none': no flow; "
                   "the weight-free kin_pose is extracted, hof_flow and camera motion are left "
                   "out, and backbones run on the rgb stream only (--streams rgb).")
@click.option("--flow-opt", multiple=True, metavar="KEY=VALUE",
              help="TV-L1 parameter with OpenCV's name, e.g. warps=3 (repeatable).")
@click.option("--backbone", "backbones", multiple=True, type=RegistryChoice(BACKBONES),
              help=f"Backbone(s) for whole-frame and joint-patch features (repeatable): {BACKBONES.help()}.")
@click.option("--backbone-opt", multiple=True, metavar="KEY=VALUE",
              help="Backbone option, e.g. crop_size=112, resize=128, clip_len=8, feature_layer=fc7 "
                   "(C3D); each --backbone gets the keys it takes (repeatable).")
@click.option("--streams", default="rgb,flow", show_default=True, help="Backbone streams.")
@click.option("--no-joints", is_flag=True, help="Backbones on whole frames only.")
@click.option("--no-weightfree", is_flag=True, help="Skip the weight-free feature families.")
@click.option("--short-side", type=click.IntRange(min=0), default=None, metavar="PX",
              help="Downscale decoded frames so their short side is PX before pose, flow and "
                   "backbones. Default: 256 whenever flow or a backbone is computed, the Kinetics "
                   "I3D convention (its flow clipping to [-20, 20] px assumes ~256-px frames; at "
                   "720p/1080p the clip saturates and TV-L1 is far slower). Never upscales; 0 "
                   "keeps the source resolution. Recorded in the cache config; pose "
                   "coordinates are pixels of the resized frames.")
@click.option("--frame-height", type=click.IntRange(min=1), default=None, metavar="PX",
              help="Resize frames to exactly this height instead (up or down; replaces the "
                   "--short-side default).")
@click.option("--device", default="auto", show_default=True,
              help="cpu, cuda, cuda:N, mps or auto (cuda when available, else cpu).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Clips per backbone batch.")
@click.option("--shard", default=None, metavar="K/N",
              help="Process every N-th video starting at K (0-based) into its own file: "
                   "OUT.shardK-of-N.h5 instead of OUT (feats.h5 -> feats.shard0-of-4.h5; join "
                   "them with `aqa-extract merge`). 'auto' reads torchrun/Slurm variables.")
@click.option("--weights", "weights", multiple=True, metavar="NAME=PATH",
              help="Checkpoint file for a registry name (see `aqa-extract weights list`).")
@click.option("--untrained", is_flag=True,
              help="Allow random backbone weights when a checkpoint is missing (marked in the cache).")
@click.option("--manifest", type=click.Path(dir_okay=False), default=None,
              help="Manifest of the failed videos and of those extracted with warnings "
                   "(default: OUT.failures.json).")
@click.option("--view", "views", multiple=True, metavar="SPEC", help=_view_help())
@click.option("--view-split", default=None, metavar="SPLIT",
              help="Extract the --view copies only of the videos whose --labels row has this "
                   "split (e.g. train): test videos are never scored on views.")
@logging_options
def run(inputs, out, labels, sampling, sampling_opt, pose, pose_opt, persons, flow, flow_opt,
        backbones, backbone_opt, streams, no_joints, no_weightfree, short_side, frame_height, device,
        batch_size, shard, weights, untrained, manifest, views, view_split, quiet):
    """Extract features of INPUTS (video files, folders of videos or of frame images) into OUT."""
    from .config import ExtractConfig, OptionError
    from .runner import run_extraction   # h5py and the stages: not for --help

    try:
        views = parse_views(views)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--view") from None
    views_for = _view_split_ids(view_split, labels, views)
    try:
        cfg = ExtractConfig(sampling=sampling, sampling_options=parse_options(sampling_opt, "--sampling-opt"),
                            pose=pose, pose_options=parse_options(pose_opt, "--pose-opt"), persons=persons,
                            flow=flow, flow_options=parse_options(flow_opt, "--flow-opt"),
                            weightfree=not no_weightfree, backbones=backbones,
                            backbone_options=parse_options(backbone_opt, "--backbone-opt"),
                            streams=tuple(s.strip() for s in streams.split(",") if s.strip()),
                            joints=not no_joints, frame_height=frame_height,
                            short_side="auto" if short_side is None else short_side)
        overrides = parse_weight_overrides(weights)
        summary = run_extraction(inputs, out, cfg, labels=labels, device=device,
                                 batch_size=batch_size, weight_overrides=overrides,
                                 untrained=untrained, shard=shard, manifest=manifest,
                                 progress=not quiet, views=views, views_for=views_for)
    except OptionError as e:
        raise click.BadParameter(str(e), param_hint=e.option) from None
    except Exception as e:  # noqa: BLE001 - expected ones become one line, the rest propagate
        if not isinstance(e, _expected_errors()):
            raise
        msg = str(e) if isinstance(e, MissingWeightsError) else " ".join(str(e).split())
        click.echo(f"error: {msg}", err=True)  # missing weights: the lines say what to put where
        sys.exit(2)
    n_done, failed = summary.count("done"), summary.failed
    line = (f"{summary.out}: {n_done} extracted, {summary.count('skipped')} already complete, "
            f"{summary.count('failed')} failed")
    if views:
        line += (f"; views: {summary.count('done', views=True)} written, "
                 f"{summary.count('skipped', views=True)} already complete, "
                 f"{summary.count('failed', views=True)} failed")
    click.echo(line)
    stages = summary.stage_seconds()
    if stages:
        click.echo("mean seconds per video: " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    manifest = manifest or summary.out + ".failures.json"
    if summary.warned:
        for r in summary.warned[:10]:
            for w in r.warnings:
                click.echo(f"  WARNING {w}", err=True)
        click.echo(f"warning: {len(summary.warned)} video(s) extracted with warnings; see the "
                   f"manifest {manifest}", err=True)
    if failed:
        for r in failed[:10]:
            what = f"{r.path} (view {r.view})" if r.view else r.path
            click.echo(f"  FAILED {what} [{r.stage}] {r.error}", err=True)
        n_views = summary.count("failed", views=True)
        counts = f"{len(failed) - n_views} video(s)" + (f" and {n_views} view(s)" if n_views else "")
        click.echo(f"error: {counts} failed; see the manifest {manifest}", err=True)
        sys.exit(1)


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.pass_context
def merge(ctx, inputs, out):
    """Join shard caches into one (same as `aqa-data merge`)."""
    ctx.invoke(data_merge, inputs=inputs, out=out, as_json=False)


@main.command()
@click.argument("cache", type=click.Path(exists=True, dir_okay=False))
@click.argument("video_id")
@click.option("--root", type=click.Path(exists=True, file_okay=False), default=None,
              help="The folder extraction read (the cache stores each video's path relative to "
                   "it). Default: the current folder.")
@click.option("--video", type=click.Path(exists=True), default=None,
              help="The source video file itself (instead of --root).")
@click.option("--frames", "n", type=click.IntRange(min=1), default=8, show_default=True,
              help="How many frames, evenly spread over the video.")
@click.option("--patches", is_flag=True, help="Also draw the primary person's joint patches.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="PNG to write. Default: VIDEO_ID.pose.png.")
def show(cache, video_id, root, video, n, patches, out):
    """Draw the cached poses of VIDEO_ID (a source or a view, ID@flip) on its frames: a contact
    sheet PNG to check person selection and keypoints by eye."""
    from aqa.data.cache import CacheError

    from .show import contact_sheet

    out = out or f"{video_id.replace('/', '_')}.pose.png"
    try:
        path = contact_sheet(cache, video_id, out, video=video, root=root, n=n, patches=patches)
    except (ValueError, FileNotFoundError, KeyError, CacheError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        click.echo(f"error: {' '.join(str(msg).split())}", err=True)
        sys.exit(2)
    click.echo(str(path))


main.add_command(weights_cli, "weights")

if __name__ == "__main__":  # pragma: no cover
    main()
