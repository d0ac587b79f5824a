"""``aqa.extract.extract``: stage 1 from Python in one call, the same run as ``aqa-extract``."""
from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Mapping, Sequence

__all__ = ["extract"]


def extract(inputs: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike, *,
            pose: str = "file", flow: str = "auto", backbone: str | Sequence[str] = (),
            labels: str | os.PathLike | None = None, sampling: str = "jrg",
            weightfree: bool = True, device: str = "auto", batch_size: int = 8,
            weights: Mapping[str, str | os.PathLike] | None = None, untrained: bool = False,
            views: str | Sequence[str] = (), progress: bool = True, **options):
    """Extract features of the videos ``inputs`` (files, folders of videos or of frame images) into
    the HDF5 cache ``out``, like ``aqa-extract INPUTS --out OUT``; returns the run's
    :class:`~aqa.extract.runner.RunSummary` (``.out`` the cache path, ``.count("done")``,
    ``.failed``, ``.stage_seconds()``).

    ``pose``: ``file`` (``<video>.pose.json`` sidecars), ``keypoint-rcnn``, ``detectron2`` or
    ``blazepose``; ``flow``: ``auto``, ``tvl1-cpu``, ``tvl1-torch`` or ``none`` (pose-only
    features: ``kin_pose``, no flow computed); ``backbone``: ``i3d``, ``i3d-r50``, ``c3d`` or a
    list of them; ``labels``: a labels CSV stored in the cache; ``weights``: registry name ->
    checkpoint path (``aqa-extract weights list``); ``views``: augmented views (``"flip"``,
    ``["flip", "shift:1-5"]``). Any other :class:`~aqa.extract.config.ExtractConfig` field
    goes in ``options`` (``sampling_options={"T": 10}``, ``streams=("rgb",)``, ``persons=2``,
    ``short_side=0``...). A finished video is skipped when run again with the same settings.
    Videos that fail are listed in the manifest ``OUT.failures.json`` and warned about; the
    others are written. Bad options raise ``ValueError`` before any video.

    Example (pose-only features of videos with pose sidecars, then a head's inputs)::

        from aqa.extract import extract
        from aqa.data.cache import CacheReader

        run = extract("videos/", out="feats.h5", pose="file", flow="none",
                      labels="videos/labels.csv")
        print(run.count("done"), "videos;", run.stage_seconds())
        with CacheReader(run.out) as cache:
            ids = cache.video_ids()
            X = cache.load("kin_pose", ids)     # (videos, steps, features)
            score = {r.video_id: r.score for r in cache.labels()}
            y = [score[i] for i in ids]
    """
    from .config import ExtractConfig
    from .runner import run_extraction
    from .weights import parse_weight_overrides

    fields = {f.name for f in dataclasses.fields(ExtractConfig)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise TypeError(f"extract() got unknown option(s) {unknown}; options are the fields of "
                        f"ExtractConfig: {sorted(fields - {'pose', 'flow', 'backbones'})}")
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    backbones = (backbone,) if isinstance(backbone, str) else tuple(backbone)
    cfg = ExtractConfig(pose=pose, flow=flow, backbones=backbones, sampling=sampling,
                        weightfree=weightfree, **options)
    overrides = parse_weight_overrides(f"{k}={v}" for k, v in (weights or {}).items())
    summary = run_extraction(list(inputs), out, cfg, labels=labels, device=device,
                             batch_size=batch_size, weight_overrides=overrides,
                             untrained=untrained, progress=progress, views=views)
    if summary.failed:
        manifest = Path(summary.out).with_name(Path(summary.out).name + ".failures.json")
        first = summary.failed[0]
        warnings.warn(f"{len(summary.failed)} video(s) failed, e.g. {first.path} [{first.stage}] "
                      f"{first.error}; see the manifest {manifest}", UserWarning, stacklevel=2)
    return summary
