"""The published evaluation protocols, end to end: labels -> extraction -> bench -> report.

A recipe takes the benchmark's published annotation files (the folder the authors released,
read by :mod:`aqa.data.datasets`), a folder of its videos laid out as the release lays them out
(:func:`aqa.data.datasets.video_relpath`: files for AQA-7 and JIGSAWS, frame folders for MTL-AQA,
UNLV-Dive and FineDiving; MTL-AQA and UNLV-Dive are released as full videos, which
:mod:`aqa.pipelines.cut` cuts into those per-dive folders), and runs:

1. the labels table of the protocol's split; a video missing from the folder, or a split left
   empty by the missing ones, is an error (:class:`ProtocolIncomplete`) before any extraction,
   with the expected paths in ``missing_videos.txt``; ``allow_missing`` runs on what there is,
   leaves out the actions (or folds) it cannot run, and the report says what was left out;
2. extraction with the protocol's temporal sampling into ``OUT/feats.h5`` (resumable);
3. :func:`aqa.heads.bench.run_bench` with the protocol (per action or not, train/test split or
   JIGSAWS' 4 folds), model selection on validation rows carved from training rows only;
4. the report (Markdown, CSV, JSON, plot) with the cache's provenance and published figures.

========== ================ ====================================== ============ ==========
recipe     labels           sampling                               protocol     per action
========== ================ ====================================== ============ ==========
aqa7       split 4          core: 103 frames from the start,       train/test   yes (6)
                            10 windows of 16 (CoRe's AQA-7;
                            JRG used 10 uniform segments of 16)
mtl_aqa    split 0          core: 103 frames ending at the dive's  train/test   no
                            last frame (CoRe's MTL-AQA loader)
unlv_dive  370 split        fragments: 9 x 16 frames (Li et al.)   train/test   no
jigsaws    4-fold           core-jigsaws: 160 frames, 10 snippets  4-fold CV    yes (3)
finediving official split   core: 96 frames evenly over the    train/test   no
                            clip (FineDiving's loader), 10
                            windows of 16, one every 9 frames
========== ================ ====================================== ============ ==========

JIGSAWS' stereo recordings: the left camera by default, both with ``dataset_options={"cameras":
"both"}`` (``--cameras both``), each recording a sample of its own in its trial's fold, as JRG
(Sec. 4.2) and AIM did.

The benchmarks with difficulty labels (MTL-AQA, UNLV-Dive, FineDiving) run with the difficulty
given to the heads that take it (CoRe's exemplar choice, "w/ DD") or hidden from them
(``with_difficulty=False``, "w/o DD"); AQA-7 and JIGSAWS have none, and the report says so.

Features (:func:`recipe_features`): the heads run on the RGB family of the preferred backbone
extracted (I3D, then I3D-R50, then C3D; :func:`aqa.extract.registry.family_name` maps ``--backbone``
names to cache families: ``i3d`` -> ``i3d_rgb``, ``i3d-r50`` -> ``i3dr50_rgb``, ``c3d`` ->
``c3d_rgb``), or on the weight-free ``kin_pose+hof_flow`` without a backbone; JRG, whose joint
features are I3D RGB and flow, gets ``i3d_rgb+i3d_flow`` when I3D flow was extracted; C3D-SVR gets
``c3d_rgb`` when present (:data:`aqa.heads.bench.METHOD_FEATURES`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence


@dataclass(frozen=True)
class Recipe:
    name: str
    sampling: str
    sampling_options: dict = field(default_factory=dict)
    protocol: str = "split"
    per_action: bool = False
    persons: int = 1
    description: str = ""
    #: head -> parameters the published run used on this benchmark (the user's -p keys win)
    head_params: dict = field(default_factory=dict)


RECIPES: dict[str, Recipe] = {
    "aqa7": Recipe("aqa7", "core", {"anchor": "start"}, "split", True, 2,
                   "AQA-7 split 4, per action, Fisher-z average over the six actions",
                   # Gao et al. (AIM) Sec. 5.5: "In this task, we fix the weight decay rate of Adam
                   # Optimizer in our model to 0.8" (0.5 elsewhere, AIMRegressor's default)
                   head_params={"aim": {"weight_decay": 0.8}}),
    "mtl_aqa": Recipe("mtl_aqa", "core", {"anchor": "end"}, "split", False, 1,
                      "MTL-AQA split 0 (1059/353), with or without difficulty"),
    "unlv_dive": Recipe("unlv_dive", "fragments", {}, "split", False, 1,
                        "UNLV-Dive, the 300/70 split of Parmar & Morris",
                        # Li et al. Sec. 5.3: "we only use the last fragment" for their Table 2
                        head_params={"fragment": {"fragments": "last"}}),
    "jigsaws": Recipe("jigsaws", "core-jigsaws", {}, "folds", True, 1,
                      "JIGSAWS 4-fold cross-validation per task (Suturing, Knot_Tying, Needle_Passing)"),
    # FineDiving's clips are often shorter than 103 frames (1783 of 3000): its official loader
    # samples 96 frames evenly over the trimmed clip instead of padding a 103-frame window
    "finediving": Recipe("finediving", "core", {"frames": 96, "resample": "uniform", "stride": 9},
                         "split", False, 1,
                         "FineDiving official train/test split"),
}


def recipe_head_params(recipe: Recipe, heads: Sequence[str], user: dict | None) -> dict:
    """Per-head parameters of a run: each head's ``paper`` preset (:mod:`aqa.heads.presets`; a
    published protocol trains as the paper did), the recipe's published settings over it, the
    user's keys over those."""
    from aqa.heads.presets import presets_for
    user = user or {}
    paper = presets_for(heads, "paper")
    return {h: {**paper.get(h, {}), **recipe.head_params.get(h, {}), **user.get(h, {})}
            for h in heads if h in paper or h in recipe.head_params or h in user}


def recipe_features(backbones: Sequence[str], families) -> tuple[str, dict[str, str]]:
    """(feature for every head, {head: feature} exceptions) for a cache extracted with ``backbones``
    that holds the feature ``families``."""
    from aqa.extract.registry import BACKBONES, family_name
    from aqa.heads.inputs import FEATURE_PREFERENCE

    unknown = [b for b in backbones if b not in BACKBONES]
    if unknown:
        raise ValueError(f"unknown backbone(s) {unknown}; choose from {sorted(BACKBONES.names())}")
    wanted = [family_name(b, "rgb") for b in backbones]
    wanted = [f for f in FEATURE_PREFERENCE if f in wanted] + [f for f in wanted if f not in FEATURE_PREFERENCE]
    present = [f for f in wanted if f in families]
    if wanted and not present:
        raise RuntimeError(f"the cache holds none of the backbone features {wanted} "
                           f"(families: {sorted(families)})")
    feature = present[0] if present else "kin_pose+hof_flow"
    exceptions = {}
    if feature == "i3d_rgb" and "i3d_flow" in families:
        exceptions["jrg"] = "i3d_rgb+i3d_flow"   # JRG: I3D features of RGB and TV-L1 flow
    return feature, exceptions


def recipe_views(heads: Sequence[str], views) -> list:
    """The views a recipe extracts: none for None; for ``"paper"`` the paper views of the
    ``heads`` that train on views; else the specs given (:func:`aqa.data.views.parse_views`)."""
    from aqa.data.views import parse_views
    from aqa.heads import registry

    if views is None:
        return []
    if views == "paper":
        return parse_views([s for h in heads if registry.accepts_views(h)
                            for s in registry.get(h).paper_views])
    return parse_views(views)


def locate_videos(name: str, rows, video_dir) -> tuple[list[tuple[str, Path]], list[str]]:
    """(video_id, path) of each labelled video present under ``video_dir``, and the missing ids."""
    from aqa.data.datasets import video_relpath

    video_dir = Path(video_dir)
    found, missing = [], []
    for r in rows:
        p = video_dir / video_relpath(name, r)
        (found.append((r.video_id, p)) if p.exists() else missing.append(r.video_id))
    return found, missing


class ProtocolIncomplete(FileNotFoundError):
    """The published protocol cannot be run on the videos found (missing videos, empty splits)."""


def protocol_gaps(recipe: Recipe, labelled, present) -> dict[str, str]:
    """Part of the protocol (an action, or ``"all"``) -> why it cannot run on the ``present``
    label rows, given every ``labelled`` row: no video found, an empty train or test split, a
    fold without a video."""
    from aqa.heads.bench import fold_plan

    def by_action(rows, a):
        return rows if a == "all" else [r for r in rows if r.action == a]

    actions = sorted({r.action for r in labelled}) if recipe.per_action else ["all"]
    gaps = {}
    for a in actions:
        want, have = by_action(labelled, a), by_action(present, a)
        if not have:
            gaps[a] = f"none of its {len(want)} videos found"
            continue
        if recipe.protocol == "folds":
            lost = sorted({r.split for r in want} - {r.split for r in have})
            if lost:
                gaps[a] = f"no video of {', '.join(lost)} found"
                continue
        try:
            plan = fold_plan(have, recipe.protocol, "train", "test")
        except ValueError as e:
            plan, why = [], str(e)
        else:
            why = "empty train or test split"
        if not plan:
            n = {s: sum(r.split == s for r in have) for s in ("train", "test")}
            gaps[a] = why + (f" ({n['train']} train, {n['test']} test videos found)"
                             if recipe.protocol == "split" else "")
    return gaps


def pose_sheets(cache, rows, root, folder, limit: int = 8) -> list[Path]:
    """Contact sheets (:func:`aqa.extract.show.contact_sheet`) of the first video of each action
    among ``rows`` (at most ``limit``), as ``folder/<id>.png``: a look at the poses the heads will
    learn from. A sheet that cannot be drawn is warned about; the recipe goes on."""
    import warnings

    from aqa.extract.show import contact_sheet

    first: dict[str, str] = {}
    for r in sorted(rows, key=lambda r: r.video_id):
        first.setdefault(r.action, r.video_id)
    out = []
    for vid in list(first.values())[:limit]:
        try:
            out.append(contact_sheet(cache, vid, Path(folder) / f"{vid}.png", root=root,
                                     patches=True))
        except (OSError, ValueError, KeyError) as e:
            warnings.warn(f"no pose sheet of {vid}: {e}", stacklevel=2)
    return out


def run_recipe(name: str, video_dir, annotation_dir, out_dir, *, heads: Sequence[str] | str = "all",
               seeds: int = 5, pose: str = "keypoint-rcnn", backbones: Sequence[str] = ("i3d",),
               flow: str = "auto", flow_options: dict | None = None,
               sampling_options: dict | None = None, with_difficulty: bool = True,
               device: str = "auto", untrained: bool = False, weight_overrides: dict | None = None,
               head_params: dict | None = None, feature: str | None = None,
               views=None, dataset_options: dict | None = None, progress: bool = True,
               allow_missing: bool = False) -> dict:
    """Run recipe ``name`` (see :data:`RECIPES`) and write its report into ``out_dir``.

    ``views``: augmented views extracted for the protocol's training videos only (every video
    under 4-fold cross-validation) and added to the training rows of the heads that train on
    views: view specs (``"flip"``) for every such head, or ``"paper"`` for each head's own
    (:attr:`aqa.heads.registry.HeadSpec.paper_views`). ``dataset_options``: keywords of the
    benchmark's reader (:mod:`aqa.data.datasets`), e.g. ``{"cameras": "both"}`` for JIGSAWS.
    ``allow_missing``: run on the videos found even if some are missing, leaving out the parts
    of the protocol (:func:`protocol_gaps`) they leave empty; without it a missing video or an
    empty split raises :class:`ProtocolIncomplete` before any extraction."""
    from aqa.data.integrity import verify
    from aqa.data.datasets import read_dataset
    from aqa.data.labels import write_labels_csv
    from aqa.extract.config import ExtractConfig
    from aqa.extract.runner import run_extraction_items
    from aqa.heads.bench import run_bench
    from aqa.heads.dataset import score_ranges_of
    from aqa.heads.report import takes_difficulty, write_report

    from aqa.heads.registry import resolve_heads

    from .cut import CUT_DATASETS

    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {sorted(RECIPES)}")
    heads = resolve_heads(heads)             # a typo fails now, not after hours of extraction
    extract_views = recipe_views(heads, views)
    recipe = RECIPES[name]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = read_dataset(name, annotation_dir, **(dataset_options or {}))
    # R-l2's per-action score range (CoRe eq. 11) over every labelled score, present video or not
    ranges = score_ranges_of(rows)
    has_difficulty = any(math.isfinite(r.difficulty) for r in rows)
    items, missing = locate_videos(name, rows, video_dir)
    from aqa.data.datasets import video_relpath
    by_id = {r.video_id: r for r in rows}
    missing_paths = [Path(video_dir) / video_relpath(name, by_id[m]) for m in missing]
    (out / "missing_videos.txt").write_text("".join(f"{p}\n" for p in missing_paths))
    if not items:
        hint = (f"; to cut the release's full videos into these folders: python -m aqa.pipelines "
                f"cut {name} {annotation_dir} FULL_VIDEO_DIR --out {video_dir}"
                if name in CUT_DATASETS else "")
        raise FileNotFoundError(f"none of the {len(rows)} {name} videos is under {video_dir} "
                                f"(expected e.g. {Path(video_dir) / video_relpath(name, rows[0])})"
                                + hint)
    present = {vid for vid, _ in items}
    labelled, rows = rows, [r for r in rows if r.video_id in present]
    gaps = protocol_gaps(recipe, labelled, rows)
    if missing or gaps:
        what = "; ".join(f"{a}: {why}" for a, why in gaps.items())
        shown = ", ".join(str(p) for p in missing_paths[:5]) + (", ..." if len(missing) > 5 else "")
        msg = ((f"{len(missing)} of {len(labelled)} {name} videos are missing (expected at {shown}; "
                f"all listed in {out / 'missing_videos.txt'})" if missing else "")
               + ("; " if missing and gaps else "") + (f"protocol parts left empty: {what}" if gaps else ""))
        if not allow_missing:
            raise ProtocolIncomplete(f"{msg}. The protocol cannot be run as published; "
                                     f"--allow-missing runs on the {len(items)} videos found and the "
                                     f"report lists what was left out")
        if recipe.per_action and len(gaps) < len({r.action for r in labelled}):
            rows = [r for r in rows if r.action not in gaps]
        elif gaps:
            raise ProtocolIncomplete(f"{msg}: nothing of the protocol can be run")
    if not with_difficulty:
        rows = [replace(r, difficulty=math.nan) for r in rows]
    write_labels_csv(rows, out / "labels.csv")

    cfg = ExtractConfig(sampling=recipe.sampling,
                        sampling_options={**recipe.sampling_options, **(sampling_options or {})},
                        pose=pose, persons=recipe.persons, flow=flow,
                        flow_options=dict(flow_options or {}), backbones=tuple(backbones))
    cache = out / "feats.h5"
    train_ids = {r.video_id for r in rows if recipe.protocol == "folds" or r.split == "train"}
    summary = run_extraction_items(items, cache, cfg, labels=out / "labels.csv", device=device,
                                   untrained=untrained, weight_overrides=weight_overrides,
                                   progress=progress, root=video_dir, views=extract_views,
                                   views_for=train_ids)
    rep = verify(cache)
    if not rep.ok:
        raise RuntimeError(f"{cache} failed verification: {rep.problems[:3]}")
    from aqa.data.cache import CacheReader
    with CacheReader(cache) as reader:
        families = set(reader.families())
        extracted = set(reader.video_ids())
    sheets = pose_sheets(cache, [r for r in rows if r.video_id in extracted], video_dir,
                         out / "poses")
    auto_feature, head_features = recipe_features(backbones, families)
    if feature:          # the user's choice holds for every head (bar METHOD_FEATURES)
        head_features = {}
    feature = feature or auto_feature
    res = run_bench(cache, labels=rows, heads=heads, seeds=seeds, feature=feature,
                    protocol=recipe.protocol, per_action=recipe.per_action,
                    params=recipe_head_params(recipe, heads, head_params),
                    benchmark=name, progress=progress,
                    score_ranges=ranges, head_features=head_features,
                    views="paper" if views == "paper" else [v.name for v in extract_views],
                    store=out / "report" / "fits")
    res.setup.update({"recipe": name, "description": recipe.description,
                      "videos_found": len(items), "videos_missing": len(missing),
                      "left_out": gaps,
                      "difficulty_labels": has_difficulty,
                      "difficulty_requested": with_difficulty,
                      "dataset_options": dict(dataset_options or {}),
                      "extraction_failed": [r.video_id for r in summary.failed]})
    paths = write_report(res, out / "report")
    md = paths["md"].read_text()
    takes = [h for h in res.heads if takes_difficulty(h)]
    if not has_difficulty:
        dd = f"n/a ({name} has no difficulty labels)"
    elif not with_difficulty:
        dd = "no (hidden from every head: the w/o DD setting)"
    else:
        dd = f"yes, to the heads that take it ({', '.join(takes) or 'none of those run'})"
    head = [f"# {name}: {recipe.description}", "",
            f"- videos: {len(items)} found, {len(missing)} missing (listed in missing_videos.txt), "
            f"{len(summary.failed)} failed extraction (see {cache.name}.failures.json)",
            *([f"- left out (--allow-missing: the protocol is NOT run as published): "
               f"{len(missing)} missing videos"
               + "".join(f"; {a}: {why}" for a, why in gaps.items())] if missing or gaps else []),
            f"- difficulty given to heads: {dd}",
            f"- poses drawn on frames, to check person selection by eye: "
            f"{', '.join(str(p.relative_to(out)) for p in sheets) or 'none'} "
            "(`aqa-extract show` draws any other video)",
            *([f"- annotation reader options: {dataset_options}"] if dataset_options else []), ""]
    paths["md"].write_text("\n".join(head) + md)
    (out / "recipe.json").write_text(json.dumps(res.setup, indent=2, default=str))
    return {"result": res, "paths": paths, "cache": cache, "missing": missing,
            "missing_paths": missing_paths, "left_out": gaps, "failed": summary.failed}
