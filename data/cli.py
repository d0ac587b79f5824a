"""`aqa-data`: cache verification, merging and repair, dataset label tables, synthetic demo videos."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from . import logs
from .synthetic import MIN_FRAMES, MIN_SIZE


def fail(msg: str, code: int = 1):
    """One ``error:`` line on stderr, then exit with ``code`` (every CLI's bad-input ending)."""
    click.echo(f"error: {msg}", err=True)
    sys.exit(code)


def os_error(e: OSError) -> str:
    """An ``OSError`` as one line: ``path: reason`` when it names a path, else its message."""
    return f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e)


def plain_warnings(ctx: click.Context) -> None:
    """For the rest of the command, warnings print as one ``warning: message`` line (not Python's
    source file, line number and code line); the formatter is restored when the command ends."""
    import warnings
    saved = warnings.formatwarning
    warnings.formatwarning = lambda message, *args, **kwargs: f"warning: {message}\n"
    ctx.call_on_close(lambda: setattr(warnings, "formatwarning", saved))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True,
              help="Debug lines and third-party libraries' output (silenced by default).")
@click.option("-q", "--quiet", is_flag=True, help="Warnings and errors only.")
@click.pass_context
def main(ctx, verbose, quiet):
    """Data tools for aqa-pipeline: the HDF5 feature cache, dataset labels, synthetic videos."""
    if verbose and quiet:
        raise click.UsageError("-v/--verbose and -q/--quiet exclude each other")
    logs.setup(verbose=verbose, quiet=quiet)
    plain_warnings(ctx)


@main.command()
@click.argument("cache", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify(cache, as_json):
    """Check CACHE fully (format, attributes, every array's checksum, shapes, provenance); exit 1
    if broken, 3 if another process holds it open (busy: retry later)."""
    from .integrity import verify as _verify

    rep = _verify(cache, progress=not as_json)
    if as_json:
        click.echo(json.dumps(rep.as_dict(), indent=2))
    elif rep.busy:
        click.echo(f"BUSY: {rep.busy}")
    else:
        views = f"views={rep.n_views} " if rep.n_views else ""
        click.echo(f"{rep.path}: format_version={rep.format_version} videos={rep.n_videos} {views}"
                   f"labels={rep.n_labels}{'  [UNTRAINED features]' if rep.untrained else ''}")
        for fam, parts in sorted(rep.families.items()):
            shapes = "  ".join(f"{p}={tuple(s)}" for p, s in parts.items())
            click.echo(f"  features/{fam}: {shapes}")
        for w in rep.warnings:
            click.echo(f"  warning: {w}")
        for p in rep.problems:
            click.echo(f"  PROBLEM: {p}")
        click.echo("OK" if rep.ok else f"BROKEN: {len(rep.problems)} problem(s)")
    sys.exit(3 if rep.busy else 0 if rep.ok else 1)


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Merged cache to create.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def merge(inputs, out, as_json):
    """Join shard caches INPUTS (from --shard K/N runs) into one cache OUT."""
    from .cache import CacheError
    from .integrity import merge as _merge

    try:
        summary = _merge(inputs, out, progress=not as_json)
    except CacheError as e:
        fail(str(e))
    except OSError as e:
        fail(os_error(e))
    click.echo(json.dumps(summary) if as_json else
               f"merged {summary['videos']} videos from {summary['inputs']} file(s) into {out}"
               f" ({summary['duplicates_skipped']} duplicate(s) skipped, "
               + (f"{summary['stale_views_dropped']} stale view(s) dropped, "
                  if summary['stale_views_dropped'] else "")
               + f"{summary['labels']} labels)")


@main.command()
@click.argument("cache", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def repair(cache, as_json):
    """Rebuild a damaged CACHE from everything still readable (complete videos whose checksums
    verify, labels, provenance) into a fresh file that replaces it; say what was dropped. Re-run
    the extraction afterwards to redo the dropped videos."""
    from .cache import CacheError
    from .integrity import repair as _repair

    try:
        summary = _repair(cache, progress=not as_json)
    except CacheError as e:
        fail(str(e))
    except OSError as e:
        fail(os_error(e))
    if as_json:
        click.echo(json.dumps(summary))
        return
    views = f", {summary['views']} views" if summary["views"] else ""
    click.echo(f"repaired {cache}: kept {summary['videos']} videos{views}, "
               f"{summary['labels']} labels; dropped {len(summary['dropped'])}")
    for what, why in summary["dropped"]:
        click.echo(f"  dropped {what}: {why}")


@main.command()
@click.argument("dataset")
@click.argument("annotation_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="labels CSV to write.")
@click.option("--raw", is_flag=True, help="Keep the published values as they are (no correction of "
              "the MTL-AQA judge score that is off the scale; see aqa.data.datasets.ERRATA).")
@click.option("--cameras", type=click.Choice(["left", "right", "both"]), default=None,
              help="jigsaws: which camera's recordings (default left; both: each a row of its own).")
def labels(dataset, annotation_dir, out, raw, cameras):
    """Write the common labels table of DATASET (aqa7, mtl_aqa, unlv_dive, jigsaws, finediving)."""
    from .datasets import DATASETS, read_dataset
    from .labels import write_labels_csv

    if dataset not in DATASETS:
        fail(f"unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}", 2)
    try:
        kw = {"errata": False} if raw and dataset == "mtl_aqa" else {}
        if cameras:
            if dataset != "jigsaws":
                fail(f"--cameras is for jigsaws, not {dataset}", 2)
            kw["cameras"] = cameras
        rows = read_dataset(dataset, annotation_dir, **kw)
        write_labels_csv(rows, out)
    except (ValueError, KeyError) as e:
        fail(str(e))
    except OSError as e:
        fail(os_error(e))
    splits = {}
    for r in rows:
        splits[r.split] = splits.get(r.split, 0) + 1
    click.echo(f"{dataset}: {len(rows)} rows -> {out}  splits: "
               + ", ".join(f"{k or '(none)'}={v}" for k, v in sorted(splits.items())))


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--n", type=click.IntRange(min=1), default=48, show_default=True,
              help="Number of videos.")
@click.option("--kind", type=click.Choice(["single", "sync", "coordination"]), default="single",
              show_default=True, help="coordination: scored on the timing between arms and legs")
@click.option("--seed", default=0, show_default=True)
@click.option("--frames", type=click.IntRange(min=MIN_FRAMES), default=72, show_default=True,
              help="Frames per video.")
@click.option("--size", default="160x120", show_default=True,
              help=f"Frame size WIDTHxHEIGHT, both even, at least {MIN_SIZE[0]}x{MIN_SIZE[1]}.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes.")
def synth(out_dir, n, kind, seed, frames, size, jobs):
    """Render N synthetic AQA videos with pose sidecars and labels.csv into OUT_DIR (a new or
    empty folder, or one without a labels.csv: an existing labels.csv is never overwritten)."""
    from .synthetic import check_size, render_dataset

    m = re.fullmatch(r"(\d+)x(\d+)", size.strip().lower())
    if not m:
        fail(f"--size must be WIDTHxHEIGHT, e.g. 160x120, got {size!r}", 2)
    try:
        wh = check_size((int(m[1]), int(m[2])), "--size")
    except ValueError as e:
        fail(str(e), 2)
    labels_csv = Path(out_dir) / "labels.csv"
    if labels_csv.exists():
        n_videos = len(list(labels_csv.parent.glob("*.mp4")))
        fail(f"{out_dir} already holds a labels.csv (and {n_videos} .mp4 video(s)), which synth "
             "would overwrite: render into a new or empty folder")
    try:
        rows = render_dataset(out_dir, n=n, kind=kind, seed=seed, n_frames=frames, size=wh, jobs=jobs)
    except ValueError as e:
        fail(str(e), 2)
    except OSError as e:
        fail(os_error(e))
    click.echo(f"rendered {len(rows)} {kind} videos into {out_dir} (labels: {out_dir}/labels.csv)")


if __name__ == "__main__":  # pragma: no cover
    main()
