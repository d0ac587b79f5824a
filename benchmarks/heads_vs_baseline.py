"""Learning curves: every head against the ``stats-ridge`` baseline on ``aqa-data synth`` data.

For each kind (``single``, ``sync``, ``coordination``) one synthetic set is rendered and extracted
once (poses from the sidecars, the weight-free ``kin_pose`` + ``hof_flow`` features with the demo's
light TV-L1). A fixed seeded draw of ``--n-test`` videos is the test set of every cell; for each
training size and seed, ``n_train`` training videos are drawn (seeded) from the rest (the largest
size takes all of them, so there the seeds differ in the heads' own randomness only). Each head then
runs through :func:`aqa.heads.bench.run_bench` exactly as ``aqa-heads bench`` runs it: default
settings and the default selection (grids and early stopping on validation parts of the training
rows only, never the test rows).

One table: per head (baselines first) and cell (kind x n_train) the mean ± std test Spearman over
the seeds, and the mean seconds per fit (input building, model selection, the refit and the
prediction included), wall and CPU (every thread; what a loaded machine changes least), written to stdout and ``--report`` as Markdown, refreshed after every fit
so a long run can be read while it goes on. Every finished cell is appended to
``OUT/cells.jsonl``; a second run with the same ``--out`` skips the cells already there (so a
stopped run resumes, and runs over different ``--heads`` fill one table).

    python benchmarks/heads_vs_baseline.py --out hvb_out            # the full grid (hours on a CPU)
    python benchmarks/heads_vs_baseline.py --n-train 80,320 --seeds 2 --heads stats-ridge,jrg
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

N_TRAIN = (40, 80, 160, 320)
N_TEST = 80
KINDS = ("single", "sync", "coordination")
FEATURES = "kin_pose+hof_flow"
REFERENCE = "stats-ridge"


def prepare_kind(folder: Path, kind: str, n_videos: int, frames: int = 40, size=(128, 96),
                 features: str = FEATURES, synth_seed: int = 0) -> Path:
    """Render ``n_videos`` synthetic videos of ``kind`` (``aqa-data synth`` seed ``synth_seed``) and
    extract them into ``folder/feats.h5`` (resumes: finished videos are neither rendered nor
    extracted again)."""
    from aqa.data.synthetic import render_dataset
    from aqa.extract.config import ExtractConfig
    from aqa.extract.runner import run_extraction
    from aqa.pipelines.demo import DEMO_FLOW

    videos = folder / "videos"
    if not (videos / "labels.csv").is_file():
        render_dataset(videos, n=n_videos, kind=kind, seed=synth_seed, n_frames=frames, size=size)
    persons = 2 if kind == "sync" else 1
    if "hof_flow" not in features.split("+"):
        return pose_only_cache(videos, folder / "kin_pose.h5", persons)
    cfg = ExtractConfig(sampling="jrg", pose="file", persons=persons, flow="tvl1-cpu",
                        flow_options=dict(DEMO_FLOW))
    cache = folder / "feats.h5"
    summary = run_extraction([videos], cache, cfg, labels=videos / "labels.csv", device="cpu")
    if summary.failed:
        raise RuntimeError(f"{kind}: {len(summary.failed)} video(s) failed to extract, first: "
                           f"{summary.failed[0].path}: {summary.failed[0].error}")
    return cache


def pose_only_cache(videos: Path, cache: Path, persons: int) -> Path:
    """``kin_pose`` features straight from the pose sidecars of ``videos`` into ``cache``, through
    the extractor's own steps (file pose backend, person selection, ``jrg`` sampling,
    :func:`aqa.extract.weightfree.kinematics`) but without decoding the videos or computing the
    TV-L1 flow that ``hof_flow`` needs (seconds per video on a CPU). Resumes."""
    from tqdm.auto import tqdm

    from aqa.data.cache import CacheReader, CacheWriter
    from aqa.data.labels import read_labels_csv
    from aqa.data.synthetic import read_pose_sidecar
    from aqa.extract.pose import select_persons
    from aqa.extract.pose.files import FilePoseBackend
    from aqa.extract.runner import _family
    from aqa.extract.sampling import sample
    from aqa.extract.weightfree import kinematics

    rows = read_labels_csv(videos / "labels.csv")
    done, labelled = set(), False
    if cache.is_file():
        with CacheReader(cache) as r:
            done, labelled = set(r.video_ids()), bool(r.labels())
    todo = [x for x in rows if x.video_id not in done]
    if not todo and labelled:
        return cache                      # complete: no writer, so parallel runs can read it
    backend = FilePoseBackend()
    config = {"sampling": "jrg", "pose": "file", "persons": persons, "flow": "none (kin_pose only)"}
    with CacheWriter(cache, config=config) as w:
        for row in tqdm(todo, desc="kin_pose", unit="video"):
            side = read_pose_sidecar(videos / f"{row.video_id}.pose.json")
            F, H, W = int(side["n_frames"]), int(side["height"]), int(side["width"])
            video = videos / f"{row.video_id}.mp4"
            per_frame = backend.estimate(np.zeros((F, H, W, 3), np.uint8), video_path=video)
            track = select_persons(per_frame, n_persons=persons, n_frames=F)
            samp = sample("jrg", F)
            kw, kj = kinematics(track.keypoints, samp.clips, fps=float(side["fps"]),
                                frame_index=np.arange(F), boxes=track.boxes, padded=samp.padded)
            arrays = {"frames/index": np.arange(F, dtype=np.int32),
                      "pose/keypoints": track.keypoints.astype(np.float32),
                      "pose/boxes": track.boxes.astype(np.float32),
                      "pose/box_scores": track.box_scores.astype(np.float32),
                      "pose/roles": np.asarray(track.roles, dtype=np.int8),
                      **_family("kin_pose", kw, kj, {"clip_start": samp.clip_start.astype(np.int32),
                                                     "clip_end": samp.clip_end.astype(np.int32)})}
            w.write_video(row.video_id, {"source_relpath": video.name, "fps": float(side["fps"]),
                                         "n_frames": F, "height": H, "width": W}, arrays)
        w.write_labels(rows)
    return cache


def split_rows(rows, n_train: int, n_test: int, seed: int):
    """``rows`` relabelled: a fixed (seed-independent) draw of ``n_test`` test rows, and a seeded
    draw of ``n_train`` training rows from the others; the rest are left out."""
    from dataclasses import replace

    rows = sorted(rows, key=lambda r: r.video_id)
    if n_train + n_test > len(rows):
        raise ValueError(f"n_train {n_train} + n_test {n_test} > the {len(rows)} labelled videos")
    order = np.random.default_rng(12345).permutation(len(rows))
    test, pool = order[:n_test], order[n_test:]
    train = np.random.default_rng([seed, n_train]).permutation(pool)[:n_train]
    return ([replace(rows[i], split="test") for i in test]
            + [replace(rows[i], split="train") for i in sorted(train)])


def run_cell(cache, rows, head: str, n_train: int, n_test: int, seed: int, feature=FEATURES,
             params=None, fit_log=None):
    """One head, one training size, one seed, through ``run_bench``: (the run dict with
    ``spearman`` and ``seconds``, the selection records) or (None, error message)."""
    from aqa.heads.bench import run_bench

    labels = split_rows(rows, n_train, n_test, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = run_bench(cache, labels=labels, heads=[head], seeds=[seed], feature=feature,
                        per_action=False, progress=False, params=params, fit_log=fit_log)
    runs = res.runs.get((head, "all"))
    if not runs:
        return None, "; ".join(dict.fromkeys(m for (h, _, _), m in res.errors.items() if h == head)) or "no run"
    return runs[0], res.setup["selection"][head]["runs"]


def _params_text(params) -> str:
    return json.dumps(params or {}, sort_keys=True)


def _stored(store: Path, features: str):
    """The well-formed records of ``store`` for ``features`` (a line cut short by a stop, or
    anything else unreadable, is skipped: that cell runs again)."""
    if not store.is_file():
        return
    for line in store.read_text().splitlines():
        try:
            c = json.loads(line)
            if c["features"] == features:
                yield c
        except (ValueError, KeyError, TypeError):
            continue


def load_cells(store: Path, features: str, params=None) -> dict:
    """The cells a previous run finished: ``(head, kind, n_train, seed, n_test)`` -> (spearman,
    seconds, CPU seconds), for the same features and the same ``params[head]`` (a failed cell is
    kept as NaN and not run again)."""
    params = params or {}
    done = {}
    for c in _stored(store, features):
        try:
            if c.get("params", "{}") == _params_text(params.get(c["head"])):
                done[(c["head"], c["kind"], int(c["n_train"]), int(c["seed"]), int(c["n_test"]))] = (
                    float(c["spearman"]), float(c["seconds"]), float(c.get("cpu_seconds", "nan")))
        except (ValueError, KeyError, TypeError):
            continue
    return done


def load_errors(store: Path, features: str) -> dict:
    """``(head, kind)`` -> the distinct error messages of its failed cells (first 200 characters)."""
    out: dict = {}
    for c in _stored(store, features):
        if c.get("error") and "head" in c and "kind" in c:
            _add_error(out, (c["head"], c["kind"]), str(c["error"]))
    return out


def _add_error(errors: dict, key: tuple, message: str) -> None:
    msgs = errors.setdefault(key, [])
    if message[:200] not in msgs:
        msgs.append(message[:200])


def save_cell(store: Path, key: tuple, features: str, got: tuple, params=None, error=None) -> None:
    head, kind, n, seed, n_test = key
    torn = False
    if store.is_file() and store.stat().st_size:
        with open(store, "rb") as f:          # a line cut short by a stop: start on a line of its own
            f.seek(-1, 2)
            torn = f.read(1) != b"\n"
    record = {"head": head, "kind": kind, "n_train": n, "seed": seed, "n_test": n_test,
              "features": features, "spearman": got[0], "seconds": got[1], "cpu_seconds": got[2],
              "params": _params_text(params), **({"error": str(error)} if error else {})}
    with open(store, "a") as f:
        f.write(("\n" if torn else "") + json.dumps(record) + "\n")


def _cell(values, seconds, cpu=()) -> str:
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return "failed" if values else ""
    sd = float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")
    txt = f"{np.mean(v):.3f}" + (f" ± {sd:.3f}" if math.isfinite(sd) else "")
    secs = [t for t in seconds if math.isfinite(t)]
    cpus = [t for t in cpu if math.isfinite(t)]
    return txt + (f" ({np.mean(secs):.1f} s" + (f", {np.mean(cpus):.1f} CPU s" if cpus else "") + ")"
                  if secs else "")


def to_markdown(results: dict, heads, kinds, n_trains, seeds, setup: str, errors=None) -> str:
    """``results[(head, kind, n)]`` = list of (spearman, seconds[, CPU seconds]) per seed that ran."""
    cols = [(k, n) for k in kinds for n in n_trains]
    out = ["# Heads vs the stats-ridge baseline (test Spearman, mean ± std over seeds; mean seconds "
           "per fit)", "", setup, "",
           "| head | " + " | ".join(f"{k} n={n}" for k, n in cols) + " |",
           "|---|" + "---|" * len(cols)]
    for h in heads:
        cells = []
        for k, n in cols:
            got = results.get((h, k, n), [])
            cells.append(_cell([g[0] for g in got], [g[1] for g in got], [g[2] for g in got if len(g) > 2])
                         + (f" [{len(got)}/{len(seeds)} seeds]" if got and len(got) < len(seeds) else ""))
        out.append(f"| {h} | " + " | ".join(cells) + " |")
    ref = [(k, n) for k, n in cols if results.get((REFERENCE, k, n))]
    if REFERENCE in heads and ref:
        out += ["", f"Difference to {REFERENCE} (mean test Spearman, same seeds):", "",
                "| head | " + " | ".join(f"{k} n={n}" for k, n in ref) + " |", "|---|" + "---|" * len(ref)]
        for h in heads:
            if h == REFERENCE:
                continue
            cells = []
            for k, n in ref:
                mine = {s: g[0] for s, g in zip(seeds, results.get((h, k, n), []))}
                base = {s: g[0] for s, g in zip(seeds, results.get((REFERENCE, k, n), []))}
                both = [s for s in seeds if s in mine and s in base and math.isfinite(mine[s])]
                cells.append(f"{np.mean([mine[s] - base[s] for s in both]):+.3f}" if both else "")
            out.append(f"| {h} | " + " | ".join(cells) + " |")
    notes = []
    for h in heads:
        for k in kinds:
            msgs = (errors or {}).get((h, k), [])
            failed = sum(not math.isfinite(g[0]) for n in n_trains for g in results.get((h, k, n), []))
            if msgs:
                notes.append(f"- {h} on {k} ({failed} failed fit(s)): {msgs[0]}"
                             + (f" (and {len(msgs) - 1} other message(s))" if len(msgs) > 1 else ""))
    if notes:
        out += ["", "Failed cells:", ""] + notes
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="heads_vs_baseline_out", help="work folder (videos, caches)")
    ap.add_argument("--report", default=None, help="Markdown file (default: OUT/heads_vs_baseline.md)")
    ap.add_argument("--n-train", default=",".join(map(str, N_TRAIN)), help="training sizes")
    ap.add_argument("--n-test", type=int, default=N_TEST, help="test videos (the same for every cell)")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"aqa-data synth kinds, of {KINDS}")
    ap.add_argument("--seeds", type=int, default=5, help="seeds (training draw and head seed)")
    ap.add_argument("--heads", default="all", help="comma-separated head names, or all")
    ap.add_argument("--features", default=FEATURES,
                    help="weight-free families to extract and train on (kin_pose alone skips the "
                         "TV-L1 flow, the slow part of extraction)")
    ap.add_argument("--frames", type=int, default=40, help="frames per synthetic video")
    ap.add_argument("--synth-seed", type=int, default=0,
                    help="aqa-data synth seed of the rendered sets: another seed gives other videos, "
                         "for choosing settings without reading the seed-0 test rows (use its own --out)")
    ap.add_argument("--table-only", action="store_true",
                    help="write the table from the cells already in OUT/cells.jsonl; run nothing")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="HEAD.KEY=VALUE",
                    help="a head parameter instead of its default (repeatable), e.g. core.hidden_dim=64")
    args = ap.parse_args(argv)

    from aqa.heads.registry import resolve_heads
    try:
        heads = resolve_heads(args.heads)
        n_trains = sorted({int(v) for v in args.n_train.split(",") if v.strip()})
        kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    except ValueError as e:
        ap.error(str(e))
    params: dict = {}
    from aqa.heads.presets import parse_params
    try:
        for key, value in parse_params(args.param).items():
            head, dot, name = key.partition(".")
            if not dot or head not in heads:
                raise ValueError(f"--param {key}: expected HEAD.KEY=VALUE with HEAD among --heads")
            params.setdefault(head, {})[name] = value
    except ValueError as e:
        ap.error(str(e))
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds or not n_trains or min(n_trains) < 2 or args.seeds < 1 or args.n_test < 2:
        ap.error(f"need kinds among {KINDS}, training sizes >= 2, --seeds >= 1, --n-test >= 2")
    fams = args.features.split("+")
    if any(f not in ("kin_pose", "hof_flow") for f in fams):
        ap.error("--features: kin_pose, hof_flow or kin_pose+hof_flow")
    out = Path(args.out)
    report = Path(args.report) if args.report else out / "heads_vs_baseline.md"
    report.parent.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds))
    n_videos = max(n_trains) + args.n_test
    setup = (f"aqa-data synth (seed {args.synth_seed}), {n_videos} videos per kind ({args.frames} frames, 128x96), poses from the "
             f"sidecars, features {args.features}"
             + (" (light TV-L1 as the demo)" if "hof_flow" in fams else "")
             + f"; {args.n_test} fixed test videos; seeds {seeds}; "
             + (f"head settings {params} else defaults" if params else "default head settings")
             + " and selection (aqa-heads bench); command: python benchmarks/heads_vs_baseline.py "
             + " ".join(argv if argv is not None else sys.argv[1:]))

    from aqa.data.cache import CacheReader
    from aqa.heads.dataset import load_rows
    data = {}
    for kind in ([] if args.table_only else kinds):
        print(f"== {kind}: rendering and extracting {n_videos} videos", file=sys.stderr, flush=True)
        cache = prepare_kind(out / kind, kind, n_videos, frames=args.frames, features=args.features,
                             synth_seed=args.synth_seed)
        with CacheReader(cache) as r:
            data[kind] = (cache, [x for x in load_rows(r, None) if math.isfinite(x.score)])

    store = out / "cells.jsonl"
    done = load_cells(store, args.features, params)
    errors = load_errors(store, args.features)
    results: dict = {}
    t0 = time.perf_counter()
    # the classical heads (seconds each) first, then the neural ones seed-major and the smaller
    # training sets first, so that a partial table already has a row for every head
    from aqa.heads.bench import _is_neural
    groups = ([h for h in heads if not _is_neural(h)], [h for h in heads if _is_neural(h)])
    cells = [(seed, n, head, kind) for group in groups for seed in seeds for n in n_trains
             for head in group for kind in kinds]
    for seed, n, head, kind in cells:
        key = (head, kind, n, seed, args.n_test)
        if key in done:
            results.setdefault((head, kind, n), []).append(done[key])
            continue
        if args.table_only:
            continue
        cache, rows = data[kind]
        run, sel = run_cell(cache, rows, head, n, args.n_test, seed, feature=args.features,
                            params={head: params[head]} if head in params else None)
        if run is None:
            print(f"{head} {kind} n={n} seed {seed}: FAILED {sel}", file=sys.stderr)
            got, error = (math.nan, math.nan, math.nan), sel
        else:
            got, error = (float(run["spearman"]), float(run["seconds"]), float(run["cpu_seconds"])), None
            print(f"{head} {kind} n={n} seed {seed}: rho {got[0]:.3f} "
                  f"({got[1]:.1f} s, {got[2]:.1f} CPU s; {time.perf_counter() - t0:.0f} s so far)",
                  file=sys.stderr, flush=True)
        results.setdefault((head, kind, n), []).append(got)
        save_cell(store, key, args.features, got, params.get(head), error)
        if error:
            _add_error(errors, (head, kind), str(error))
        report.write_text(to_markdown(results, heads, kinds, n_trains, seeds, setup, errors))
    text = to_markdown(results, heads, kinds, n_trains, seeds, setup, errors)
    report.write_text(text)
    print(text)
    print(f"report: {report}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
