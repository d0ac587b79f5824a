"""The extraction runner: videos -> pose, flow, features -> one atomic cache commit per video.

Per video: decode -> pose -> person selection -> optical flow (:meth:`Extractor.prepare`), then
temporal sampling -> weight-free features (joint kinematics, flow histograms, camera motion) ->
backbone features on whole frames and joint patches, rgb and flow (:meth:`Extractor.features`) ->
:meth:`aqa.data.cache.CacheWriter.write_video`. The flow is computed for the frame pairs that
the features of the video and of its views read (:meth:`Extractor.flow_pairs`), not for every
pair: the features are the same, and a long video sampled sparsely costs only its samples.

Views (``views=``, ``aqa-extract --view flip --view shift:1-5``; :mod:`aqa.data.views`): augmented
copies of each video, stored as videos of their own (``<id>@<view>``, attributes ``view_of`` and
``view``) under the same config hash. Decoding, pose and flow run once per video; each view
transforms that data (:mod:`aqa.extract.views`) and runs the feature part on it, with its own
commit. Each entry, source or view, is skipped when complete, so adding a view to a finished cache
extracts only that view, and a video whose entries are all complete is not decoded. A view that
cannot be taken (a shift longer than the video) fails on its own: the source and the other views
are written. Results (:class:`VideoResult`) are per entry; a view's stage seconds count for its
source video as ``views:<stage>`` (:meth:`RunSummary.stage_seconds`).

Frame size: decoded frames are downscaled to a 256-pixel short side by default (``short_side``,
the Kinetics I3D convention the [-20, 20] px flow clipping assumes; see
:class:`~aqa.extract.config.ExtractConfig`).
Everything downstream, the stored poses and boxes included, is in pixels of those frames: the
video's ``height``/``width`` attributes; ``source_height``/``source_width`` are the decoded size.

A video that fails (unreadable, no frames, a backend error) is recorded in the failure manifest
with its stage and error; the batch goes on. A video that is extracted despite a problem (fewer
frames decode than its container declares, no primary person in most sampled frames: a
:class:`~aqa.extract.video.VideoWarning`) is warned about as it happens and listed with its
warnings in the summary and the manifest; a re-run that skips it keeps them there. Complete
videos whose config hash matches are skipped, so an interrupted run is resumed by running the
same command again; a complete video whose file has changed since (its size or mtime differ from
the cache's record, then its sha256; a file that gets new views is always hashed) is extracted
again, with a warning, its views with it; those this run does not ask for are removed. A touched
file with the same bytes gets its new stamp recorded. The hashed config
(:meth:`Extractor.cache_config`) is the :class:`~aqa.extract.config.ExtractConfig` with ``flow``
resolved to the backend that runs, plus the sha256 of every checkpoint used and the untrained mark:
features made with ``--untrained`` are redone once real weights are installed. Bad sampling, flow,
pose or backbone options and an unusable device fail once, before any video
(:class:`~aqa.extract.config.OptionError`), not once per video. A labels table is checked against
the input videos (a warning lists the ids that do not match) and written into the cache before the
first video, so an interrupted run keeps it.

The config and the checks of the options are in :mod:`aqa.extract.config`; finding the inputs,
their ids and shards in :mod:`aqa.extract.discover`.

Length: the :class:`Extractor` (the stages of one video) and the run loop that drives it (resume,
changed sources, views, labels, the manifest); the config and the input discovery are in their
own modules.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
import traceback
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from aqa.data.cache import CacheFullError, CacheLockedError, CacheWriter
from aqa.data.labels import read_labels_csv
from aqa.data.logs import native_output_quieted
from aqa.data.views import View, parse_views, view_id

from . import weights as W
from .config import (COUNT_BACKBONE_OPTIONS, ExtractConfig, OptionError, count_option, option_error,
                     resolve_device, resolve_flow)
from .discover import (VIDEO_EXTENSIONS, discover_videos, file_sha256, id_path_relpath, parse_shard,
                       shard_out_path, source_stamp)
from .flow import CAMERA_MOTION_FIELDS, camera_motion, flow_to_i3d, get_flow_backend
from .patches import clip_positions, iter_joint_clips, joint_boxes, pairs_read
from .pose import PoseFileError, get_pose_backend, pose_backend_class, select_persons
from .pose.selection import PoseTrack
from .registry import BACKBONES, family_name
from .sampling import sample
from .video import VideoWarning, probe, read_frames
from .views import VideoData, apply_view, flow_pairs_needed, view_frames
from .weightfree import camera_motion_steps, flow_histograms, kinematics

log = logging.getLogger(__name__)


@dataclass
class VideoResult:
    """The outcome of one cache entry: a source video, or one of its views (``view`` its canonical
    name, ``video_id`` the view's cache id ``<source_id>@<view>``)."""

    video_id: str
    path: str
    status: str                  # done | skipped | failed
    seconds: dict = field(default_factory=dict)
    error: str = ""
    stage: str = ""
    warnings: list = field(default_factory=list)  # messages of the VideoWarnings it raised
    view: str = ""               # "" for a source video

    @property
    def source_id(self) -> str:
        """The id of the source video (``video_id`` itself for a source)."""
        return self.video_id[:-len(self.view) - 1] if self.view else self.video_id


class StageError(RuntimeError):
    def __init__(self, stage: str, error: BaseException):
        super().__init__(f"{stage}: {type(error).__name__}: {error}")
        self.stage, self.error = stage, error



# ------------------------------------------------------------------------------------------
class Extractor:
    """Holds the backends (built once) and turns one video into the cache's arrays.

    Construction checks the options and resolves every checkpoint (so :meth:`cache_config`, which the
    resume rule hashes, is known), but the models that load checkpoints (Keypoint R-CNN, detectron2,
    the backbones) are built by :meth:`build`, on the first video that needs them: a re-run whose
    videos are all complete loads none.
    """

    #: flow for every pair of a video instead of the pairs its features read: the features are
    #: the same (tested); ``benchmarks/extract_throughput.py --all-flow-pairs`` measures the cost
    all_flow_pairs: bool = False

    def __init__(self, config: ExtractConfig, device: str = "cpu", batch_size: int = 8,
                 weight_overrides: dict | None = None, untrained: bool = False,
                 progress: bool = True):
        self.config, self.device, self.batch_size = config, device, batch_size
        self.progress = progress
        self.on_stage = None             # callback(stage name), e.g. to show it on a progress bar
        self.untrained = False           # set when a backbone actually runs without weights
        self.weights: dict[str, str] = {}

        try:  # bad options fail here, once, instead of once per video
            sample(config.sampling, 10_000, **config.sampling_options)
        except (ValueError, TypeError) as e:
            msg = str(e) if str(e).startswith(f"{config.sampling}:") else f"{config.sampling}: {e}"
            raise OptionError("--sampling-opt", msg) from None
        self._pose_kwargs = dict(device=device, weights=weight_overrides, untrained=untrained)
        pose_cls = pose_backend_class(config.pose)
        self.pose = None
        if pose_cls.default_checkpoint is None:  # loads no checkpoint: cheap, built now
            self._build_pose()
        else:
            _, used = pose_cls.resolve_checkpoint(weight_overrides, untrained,
                                                  config.pose_options.get("checkpoint"))
            self._note_weights(used, not used)
            self._pose_provenance = (used, not used)
        self.flow, self.flow_name, self._flow_compile = None, "none", None
        if config.left_out():
            log.info("flow none: %s read flow and are left out; kin_pose is extracted",
                     " and ".join(config.left_out()))
        if config.needs_flow:
            name, chosen = resolve_flow(config.flow, device)
            opts = {**chosen, **config.flow_options}
            self._flow_compile = opts.get("compile") if "compile" in chosen else None
            if config.flow == "auto":
                log.info("flow auto on %s: %s%s", device, name,
                         "" if "compile" not in opts else
                         " (compiled)" if opts["compile"] else " (eager: cannot compile here)")
            if name == "tvl1-cpu":  # pairs in parallel threads beat OpenCV's threads within a pair
                opts.setdefault("workers", os.cpu_count() or 1)
            try:
                self.flow = get_flow_backend(name, device=device if name == "tvl1-torch" else None,
                                             **opts)
            except (ValueError, TypeError) as e:
                raise OptionError("--flow-opt", f"flow {name!r}: {e}") from None
            self.flow_name = name
        self.backbones = {}              # (name, stream) -> backbone, filled by build()
        self._backbone_options = self._route_backbone_options()
        self._backbone_paths = {(name, stream): self._resolve_backbone(name, stream, weight_overrides,
                                                                       untrained)
                                for name, stream in config.backbone_streams()}

    def build(self) -> None:
        """Build the models that load checkpoints (once); :meth:`process` calls it. A broken option or
        checkpoint fails here, before any video, not once per video."""
        if self.pose is None:
            self._build_pose()
            got = (dict(self.pose.weights), bool(self.pose.untrained))
            if got != self._pose_provenance:
                raise RuntimeError(f"pose backend {self.config.pose!r} loaded {got}, not the checkpoint "
                                   f"resolved before ({self._pose_provenance})")
        from .backbones import build_backbone

        for (name, stream), path in self._backbone_paths.items():
            if (name, stream) in self.backbones:
                continue
            if path is None:  # like the pose backends that run untrained
                warnings.warn(f"{name}/{stream} runs with RANDOM weights (--untrained): its "
                              f"features are meaningless and marked untrained", UserWarning,
                              stacklevel=2)
            try:
                self.backbones[(name, stream)] = build_backbone(
                    name, stream, weights_path=path, device=self.device,
                    untrained=path is None, **self._backbone_options[name])
            except TypeError as e:
                raise option_error("--backbone-opt", f"backbone {name!r}: {e}", e) from None

    def _build_pose(self) -> None:
        try:
            with native_output_quieted():  # MediaPipe's absl/TF Lite lines (shown with -v)
                self.pose = get_pose_backend(self.config.pose, **self._pose_kwargs,
                                             **self.config.pose_options)
        except TypeError as e:
            raise option_error("--pose-opt", str(e), e) from None
        except PoseFileError as e:  # the file backend's path option names nothing
            raise OptionError("--pose-opt", str(e)) from None
        self._note_weights(getattr(self.pose, "weights", {}), getattr(self.pose, "untrained", False))

    def _route_backbone_options(self) -> dict[str, dict]:
        """``--backbone-opt`` keys per backbone: each gets the ones its builder takes (C3D has a
        fixed 112-pixel input, I3D a crop size); a key no selected backbone takes is an error."""
        from .backbones import builder_options

        opts = dict(self.config.backbone_options)
        names = sorted({n for n, _ in self.config.backbone_streams()})
        accepted = {n: builder_options(n) for n in names}
        unused = sorted(k for k in opts if not any(k in a for a in accepted.values()))
        if unused and not names:
            raise OptionError("--backbone-opt", f"{', '.join(unused)}: no --backbone is selected")
        if unused:
            raise OptionError("--backbone-opt", f"{', '.join(unused)}: not an option of "
                              + ", ".join(f"{n} ({', '.join(sorted(accepted[n]))})" for n in names))
        for k in set(opts) & set(COUNT_BACKBONE_OPTIONS):
            opts[k] = count_option(k, opts[k])
        return {n: {k: v for k, v in opts.items() if k in accepted[n]} for n in names}

    def _resolve_backbone(self, name, stream, overrides, untrained):
        """The checkpoint path of this backbone/stream (never downloads; None: random weights, only if
        allowed), noted for provenance. Any registered checkpoint for it may be named by ``--weights``."""

        names = W.checkpoints_for(f"backbone:{name}/{stream}", default=BACKBONES.get(name).weights[stream])
        wname, path = W.resolve_first(names, overrides=overrides, untrained=untrained)
        self._note_weights({wname: path} if path else {}, path is None)
        return path

    def cache_config(self) -> dict:
        """The config stored in the cache and hashed by the resume rule: :class:`ExtractConfig`
        with the flow backend that runs, each checkpoint's sha256 and the untrained mark."""
        d = self.config.as_dict()
        d["flow"] = self.flow_name
        if self._flow_compile is not None:  # --flow auto's choice on the CPU
            d["flow_compile"] = self._flow_compile
        d["checkpoints"] = dict(sorted(self.weights.items()))
        d["untrained"] = bool(self.untrained)
        return d

    def _note_weights(self, used: dict, untrained: bool) -> None:
        """Record checkpoints (name -> sha256) and whether anything runs on random weights."""

        self.untrained |= bool(untrained)
        for name, ref in (used or {}).items():   # ref: a checkpoint path or its sha256
            if ref and Path(str(ref)).is_file():
                self.weights[name] = W.sha256_file(ref)
            elif isinstance(ref, str) and len(ref) == 64:
                self.weights[name] = ref

    # -- one video -----------------------------------------------------------------------
    def process(self, path: Path, seconds: dict) -> tuple[dict, dict]:
        """Return (attrs, arrays) for one video; ``seconds`` receives per-stage wall times."""
        info, data = self.prepare(path, seconds)
        return self.features(path, info, data, seconds, warn=True)

    def process_view(self, view, path: Path, info, data, seconds: dict,
                     seed: int = 0) -> tuple[dict, dict]:
        """(attrs, arrays) of view ``view`` (:class:`aqa.data.views.View`) of the video whose
        :meth:`prepare` gave ``info, data``: the data transformed (stage ``view``, see
        :mod:`aqa.extract.views`; ``seed`` for the random ones), then :meth:`features` on it. The
        runner adds the ``view_of`` and ``view`` attributes."""

        with self._stage("view", seconds):
            data = apply_view(view, data, seed=seed)
        return self.features(path, info, data, seconds, warn=False)

    def prepare(self, path: Path, seconds: dict, cached: dict | None = None,
                uses: Sequence = (None,), seed: int = 0):
        """The stages done once per video, whatever its views: decode, pose, person selection and
        flow -> (:class:`~aqa.extract.video.VideoInfo`, :class:`~aqa.extract.views.VideoData`).
        ``cached``: the video's arrays from a complete cache entry of this config
        (:meth:`~aqa.data.cache.CacheWriter.committed`); its selected poses are used (stage
        ``pose-cached``), and pose estimation skipped, when its frame indices are the decoded
        ones. ``uses``: what the data will serve, None for the video itself and a view for each
        view (made with ``seed``); flow is computed for the pairs their features read only
        (:meth:`flow_pairs`), unless :attr:`all_flow_pairs`."""

        self.build()
        cfg = self.config
        with self._stage("decode", seconds):
            info = probe(path)
            frames, index = read_frames(path, frame_height=cfg.frame_height,
                                        short_side=cfg.short_side)
        if cached is not None and np.array_equal(cached["frames/index"], index):
            with self._stage("pose-cached", seconds):
                track = PoseTrack(*(cached[f"pose/{k}"]
                                    for k in ("keypoints", "boxes", "box_scores", "roles")))
        else:
            with self._stage("pose", seconds):
                with native_output_quieted():
                    per_frame = self.pose.estimate(frames, video_path=path, frame_indices=index,
                                                   progress=self.progress)
                track = select_persons(per_frame, n_persons=cfg.persons, n_frames=len(frames))
        flow, pairs = None, None
        if self.flow is not None:
            with self._stage("flow", seconds):
                import cv2
                gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
                pairs = None if self.all_flow_pairs else self.flow_pairs(len(frames), uses, seed)
                flow = self.flow.compute_video(gray, progress=self.progress, pairs=pairs)
        have = None if pairs is None else np.isin(np.arange(len(frames) - 1), pairs)
        return info, VideoData(frames, index, track, flow, have)

    def flow_pairs(self, n_frames: int, uses: Sequence = (None,), seed: int = 0) -> np.ndarray:
        """The flow pairs of an ``n_frames``-frame video that the features of ``uses`` (None: the
        video, or a view made with ``seed``) read: those of each one's sampling, a view's mapped
        back to the source's pairs (a dropped frame's gap needs every pair it spans). Flow on the
        other pairs is never read: for a long video sampled sparsely (JIGSAWS' 160 of thousands
        of frames) it would be most of the extraction's time. A use the video is too short for
        is skipped here; its own features raise the error."""

        cfg, need = self.config, [np.zeros(0, np.int64)]
        for use in uses:
            try:
                keep = np.arange(n_frames) if use is None else view_frames(use, n_frames, seed)
                samp = sample(cfg.sampling, len(keep), **cfg.sampling_options)
                read = pairs_read(samp.clips, len(keep), samp.padded)
            except ValueError:  # too short (a one-frame video has no pair): said where it is used
                continue
            need.append(flow_pairs_needed(keep, read))
        return np.unique(np.concatenate(need))

    def features(self, path: Path, info, data, seconds: dict,
                 warn: bool = True) -> tuple[dict, dict]:
        """Everything after the flow, on one video's (or one view's) data: sampling, camera motion,
        weight-free features, backbones -> (attrs, arrays). ``warn``: warn when the primary person
        is missing in most sampled frames (the source only: its views would repeat it)."""
        cfg = self.config
        frames, index, track, flow = data.frames, data.index, data.track, data.flow
        n_frames = len(frames)
        with self._stage("sampling", seconds):
            samp = sample(cfg.sampling, n_frames, **cfg.sampling_options)
            if warn:
                _warn_missing_primary(path, cfg.pose, track, samp)
        arrays = {"frames/index": index.astype(np.int32),
                  "pose/keypoints": track.keypoints.astype(np.float32),
                  "pose/boxes": track.boxes.astype(np.float32),
                  "pose/box_scores": track.box_scores.astype(np.float32),
                  "pose/roles": np.asarray(track.roles, dtype=np.int8)}
        if flow is not None:
            need = pairs_read(samp.clips, n_frames, samp.padded)
            if data.flow_pairs is not None and not data.flow_pairs[need].all():
                missing = need[~data.flow_pairs[need]]
                raise RuntimeError(f"flow pairs {missing[:5].tolist()} were not computed but the "
                                   f"sampling reads them (Extractor.flow_pairs missed them)")
            with self._stage("camera", seconds):
                cam_pairs = np.full((len(flow), len(CAMERA_MOTION_FIELDS)), np.nan, np.float32)
                for p in need:
                    cam_pairs[p] = camera_motion(flow[p], band=cfg.camera_band)
                arrays["motion/camera"] = camera_motion_steps(
                    cam_pairs, samp.clips, padded=samp.padded).astype(np.float32)
        primary_kp = track.keypoints[:, 0]
        primary_box = track.boxes[:, 0]
        jboxes = joint_boxes(primary_kp, primary_box, scale=cfg.patch_scale,
                             frame_size=frames.shape[1:3])
        steps = {"clip_start": samp.clip_start.astype(np.int32),
                 "clip_end": samp.clip_end.astype(np.int32)}
        if cfg.weightfree:
            with self._stage("weightfree", seconds):
                kw, kj = kinematics(track.keypoints, samp.clips, fps=info.fps or 25.0,
                                    frame_index=index, boxes=track.boxes, padded=samp.padded)
                arrays.update(_family("kin_pose", kw, kj, steps))
                if flow is not None:  # without flow: kin_pose only (ExtractConfig.left_out)
                    fw, fj = flow_histograms(flow, samp.clips, jboxes, camera=cam_pairs[:, 2:4],
                                             padded=samp.padded)
                    arrays.update(_family("hof_flow", fw, fj, steps))
        flow_input = None
        for (name, stream), net in self.backbones.items():
            with self._stage(f"{name}_{stream}", seconds):
                if stream != "rgb" and flow_input is None:
                    flow_input = _flow_input(flow, need)
                images = frames if stream == "rgb" else flow_input
                whole, joints = self._backbone_features(net, images, samp, jboxes, n_frames)
                arrays.update(_family(family_name(name, stream), whole, joints, steps))
        attrs = {"source_relpath": path.name, "fps": float(info.fps or 0.0),
                 "n_frames": int(n_frames), "height": int(frames.shape[1]),
                 "width": int(frames.shape[2]), "sampling": samp.name,
                 "n_padded": int(samp.padded.sum()),
                 "source_height": int(info.height), "source_width": int(info.width)}
        return attrs, arrays

    def _stage(self, name: str, seconds: dict) -> "_Stage":
        """Time stage ``name`` into ``seconds`` (and tag its errors), telling :attr:`on_stage`."""
        if self.on_stage is not None:
            self.on_stage(name)
        return _Stage(name, seconds)

    def _backbone_features(self, net, images, samp, jboxes, n_frames):
        """Whole-frame clips (the backbone resizes and centre-crops) and joint-patch clips
        (cropped around each joint, resized to the backbone input) -> (S,D), (S,J,D). Padded
        positions of the sampling are zero frames (Li et al.'s padding)."""

        clips = samp.clips
        pos = clip_positions(clips, len(images), n_frames)
        stacked = np.stack([images[row] for row in pos])
        stacked[samp.padded] = 0
        whole = net.extract(stacked, batch_size=self.batch_size, mode="frame",
                            progress=self.progress)
        del stacked
        joints = None
        if self.config.joints:
            from aqa.data.logs import progress_bar
            steps = progress_bar(iter_joint_clips(images, clips, jboxes, net.crop_size,
                                                  padded=samp.padded), total=len(pos),
                                 desc=f"{net.name}/{net.stream} joints", unit="step", leave=False,
                                 disable=not self.progress)
            joints = np.stack([net.extract(step, batch_size=self.batch_size, mode="patch")
                               for step in steps])
        return whole, joints


class _Stage:
    """Times a stage and tags exceptions with its name."""

    def __init__(self, name, seconds):
        self.name, self.seconds = name, seconds

    def __enter__(self):
        self.t0 = time.perf_counter()

    def __exit__(self, typ, exc, tb):
        self.seconds[self.name] = self.seconds.get(self.name, 0.0) + time.perf_counter() - self.t0
        if exc is not None and not isinstance(exc, (StageError, KeyboardInterrupt)):
            raise StageError(self.name, exc) from exc
        return False


def _warn_missing_primary(path, pose: str, track, samp) -> None:
    """A :class:`~aqa.extract.video.VideoWarning` when the primary person has no keypoint in more
    than half of the frames the sampling uses (padding excluded): its pose features are NaN or
    zero there."""

    sampled = np.unique(samp.clips[~samp.padded])
    missing = int((~np.isfinite(track.keypoints[sampled, 0, :, :2]).any(axis=(1, 2))).sum())
    if 2 * missing > len(sampled):
        warnings.warn(f"{path}: no primary person in {missing} of the {len(sampled)} sampled frames "
                      f"(pose {pose!r}); its pose and joint features are missing there",
                      VideoWarning, stacklevel=2)


def _flow_input(flow, pairs):
    """The I3D input of the flow ``pairs`` the features read; the other rows zero (untouched)."""

    out = np.zeros(flow.shape, np.float32)
    out[pairs] = flow_to_i3d(flow[pairs])
    return out


def _family(name: str, whole, joints, steps) -> dict:
    out = {f"features/{name}/whole": np.asarray(whole, np.float32)}
    if joints is not None:
        out[f"features/{name}/joints"] = np.asarray(joints, np.float32)
    out.update({f"features/{name}/{k}": v for k, v in steps.items()})
    return out


# ------------------------------------------------------------------------------------------
@dataclass
class RunSummary:
    """Results of a run: per input video its source entry, then one per requested view;
    ``changed``: the complete videos whose file had changed, so were extracted again, and
    ``removed``: their views this run did not extract, deleted as made from the old file."""

    out: str
    results: list = field(default_factory=list)
    changed: list = field(default_factory=list)
    removed: list = field(default_factory=list)

    def count(self, status: str, views: bool = False) -> int:
        """Source videos with ``status``; ``views``: the views' entries instead."""
        return sum(r.status == status and bool(r.view) == views for r in self.results)

    @property
    def failed(self) -> list:
        """Failed entries, source videos and views."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def warned(self) -> list:
        """Videos not failed that raised warnings (this run or, when skipped, the one before)."""
        return [r for r in self.results if r.warnings and r.status != "failed"]

    def stage_seconds(self) -> dict:
        """Mean seconds per processed video for each stage, over the videos with an entry written
        this run. A view's stages count for its source video, summed over its views, as
        ``views:<stage>`` (``views:view`` is the transform); decode, pose and flow run once per
        video, also when only its views were written."""
        per_video: dict[str, dict] = {}
        written = {r.source_id for r in self.results if r.status == "done"}
        for r in self.results:
            if r.source_id in written:
                acc = per_video.setdefault(r.source_id, {})
                for k, v in r.seconds.items():
                    k = f"views:{k}" if r.view else k
                    acc[k] = acc.get(k, 0.0) + v
        keys = sorted({k for acc in per_video.values() for k in acc},
                      key=lambda k: (k.startswith("views:"), k))
        return {k: float(np.mean([acc.get(k, 0.0) for acc in per_video.values()])) for k in keys}


def run_extraction(inputs: Sequence[str | os.PathLike], out: str | os.PathLike,
                   config: ExtractConfig, *, labels: str | os.PathLike | None = None,
                   device: str = "auto", batch_size: int = 8, weight_overrides: dict | None = None,
                   untrained: bool = False, shard: str | None = None,
                   manifest: str | os.PathLike | None = None, progress: bool = True,
                   views: Sequence = (), views_for=None) -> RunSummary:
    """Extract every video under ``inputs`` into the cache ``out``; see the module docstring."""
    videos = discover_videos(inputs, with_relpath=True)
    if not videos:
        raise FileNotFoundError(f"no video files ({', '.join(VIDEO_EXTENSIONS)}) or frame folders "
                                f"in {[str(i) for i in inputs]}")
    return run_extraction_items(videos, out, config, labels=labels, device=device,
                                batch_size=batch_size, weight_overrides=weight_overrides,
                                untrained=untrained, shard=shard, manifest=manifest,
                                progress=progress, views=views, views_for=views_for)


def run_extraction_items(videos: Sequence[tuple], out, config: ExtractConfig, *,
                         labels=None, device: str = "auto", batch_size: int = 8,
                         weight_overrides: dict | None = None, untrained: bool = False,
                         shard: str | None = None, manifest=None, progress: bool = True,
                         root: str | os.PathLike | None = None, views: Sequence = (),
                         views_for=None) -> RunSummary:
    """Like :func:`run_extraction` for explicit ``(video_id, path)`` pairs or ``(video_id, path,
    relpath)`` triples; a path may be a video file or a folder of frames (the layout of several
    benchmark releases). The cache's ``source_relpath`` is ``relpath``, else the path relative to
    ``root`` when it lies under it, else the file or folder name. ``views``: augmented views to
    extract beside each video (:class:`aqa.data.views.View` s or specs such as ``"shift:1-5"``);
    ``views_for``: the video ids that get them (default: every video), e.g. a protocol's training
    videos, since views are training rows only."""
    from aqa.data.logs import progress_bar


    views = _as_views(views)
    device = resolve_device(device)
    videos = sorted(id_path_relpath(item, root) for item in videos)
    label_rows = read_labels_csv(labels) if labels else None
    if label_rows is not None:
        _warn_label_mismatch(labels, label_rows, [vid for vid, _, _ in videos])
    views_for = None if views_for is None else set(views_for)

    def views_of(vid):
        return views if views_for is None or vid in views_for else []

    _check_view_ids(videos, views_of)
    sh = parse_shard(shard)
    if sh is not None:
        videos = videos[sh[0]::sh[1]]
    out = shard_out_path(Path(out), sh)
    manifest = Path(manifest) if manifest else out.with_name(out.name + ".failures.json")
    earlier = _manifest_warnings(manifest)
    config = _keep_cached_flow(config, out, device)
    extractor = Extractor(config, device=device, batch_size=batch_size,
                          weight_overrides=weight_overrides, untrained=untrained, progress=progress)
    summary = RunSummary(str(out))
    writer = CacheWriter(out, config=extractor.cache_config(), weights=extractor.weights,
                         untrained=extractor.untrained)
    done = writer.complete_ids() if out.exists() else set()
    adding = {vid for vid, _, _ in videos if vid in done
              and any(key not in done for key, _ in _entries(vid, views_of(vid))[1:])}
    changed, hashes, restamp = (_check_sources(writer, videos, adding, progress) if done
                                else (set(), {}, {}))
    if changed or any(key not in done for vid, _, _ in videos
                      for key, _ in _entries(vid, views_of(vid))):
        extractor.build()  # before the cache is touched; a model that cannot load stops the run
    with writer:
        if label_rows is not None:  # before any video: an interrupted run keeps the labels too
            writer.write_labels(label_rows)
        if restamp:
            writer.update_attrs({key: {"source_size": size, "source_mtime_ns": mtime}
                                 for key, (size, mtime) in restamp.items()})
        done = writer.complete_ids()
        summary.changed, summary.removed = _redo_changed(writer, videos, changed, done, views_of)
        bar = progress_bar(videos, desc="extract", unit="video", disable=not progress)
        for vid, path, relpath in bar:
            results = [VideoResult(key, str(path), "skipped" if key in done else "failed",
                                   warnings=list(earlier.get(key, [])) if key in done else [],
                                   view=view.name if view else "")
                       for key, view in _entries(vid, views_of(vid))]
            summary.results += results
            if any(r.status == "failed" for r in results):  # i.e. to do
                _extract_video(extractor, writer, bar, (vid, path, relpath), results, views_of(vid),
                               lambda: _write_manifest(manifest, summary), sha=hashes.get(vid))
    _write_manifest(manifest, summary)
    return summary


def _keep_cached_flow(config: ExtractConfig, out: Path, device: str) -> ExtractConfig:
    """``--flow auto`` on a cache extracted with OpenCV's TV-L1 (``tvl1-cpu``, what ``auto`` chose
    on the CPU before tvl1-torch was measured faster there) keeps tvl1-cpu, so that a resumed run
    skips its finished videos instead of redoing them all (the resume rule hashes the backend)."""
    if config.flow != "auto" or not out.is_file() or resolve_flow("auto", device)[0] == "tvl1-cpu":
        return config
    from aqa.data.cache import CacheError, CacheReader

    try:
        with CacheReader(out) as r:
            before = (r.provenance().get("config") or {}).get("flow")
    except (CacheError, OSError, ValueError, AttributeError):  # not readable: the writer says why
        return config
    if before != "tvl1-cpu":
        return config
    log.info("flow auto: tvl1-cpu, the backend %s was extracted with (its finished videos are "
             "kept; --flow tvl1-torch to change)", out)
    return dataclasses.replace(config, flow="tvl1-cpu")


def _check_view_ids(videos, views_of) -> None:
    """A view's cache id (``<source>@<view>``) that is also an input video's id is an error: the
    two would overwrite each other."""
    ids = {vid for vid, _, _ in videos}
    clash = sorted(key for vid, _, _ in videos for key, _ in _entries(vid, views_of(vid))[1:]
                   if key in ids)
    if clash:
        raise ValueError(f"{len(clash)} view id(s) are also the ids of input videos: "
                         f"{', '.join(clash[:3])}{' ...' if len(clash) > 3 else ''}; rename those "
                         "videos (an id must not end in '@' and a view name)")


def _check_sources(writer, videos, adding: set, progress: bool = True):
    """Which videos changed since their complete entries (the source, its views) were extracted.

    A file is hashed when its size or mtime differs from the record of any of its entries, and
    always when this run adds views to it (they are made from its cached poses, so a stamp that
    missed a change must not let old poses meet new frames). It has changed when its sha256
    differs from the one an entry was made from (a copy with a new mtime and the same bytes has
    not): a view left from an earlier file, whose source failed then, counts too. An entry
    recorded without a stamp (caches written before stamps existed) is hashed only when views are
    added. Returns (changed ids, sha256 of each file hashed, new (size, mtime) of each entry of an
    unchanged file whose recorded stamp is out of date or missing, so the next run need not hash
    it again)."""
    from aqa.data.logs import progress_bar

    entries: dict[str, dict[str, dict]] = {}   # source id -> its complete entries' records
    for key, rec in writer.source_records().items():
        entries.setdefault(str(rec.get("view_of", key)), {})[key] = rec
    suspects = []
    for vid, path, _ in videos:
        recs = entries.get(vid)
        if not recs or not path.exists():
            continue
        stamp = source_stamp(path)
        recorded = {key: (int(rec["source_size"]), int(rec["source_mtime_ns"]))
                    if "source_size" in rec and "source_mtime_ns" in rec else None
                    for key, rec in recs.items()}
        if vid in adding or any(r is not None and r != stamp for r in recorded.values()):
            suspects.append((vid, path, recs, stamp, recorded))
    changed, hashes, restamp = set(), {}, {}
    for vid, path, recs, stamp, recorded in progress_bar(
            suspects, desc="checking files: sha256", unit="file",
            disable=not progress or not suspects):
        hashes[vid] = now = file_sha256(path)
        if any(rec.get("source_sha256") != now for rec in recs.values()):
            changed.add(vid)
        else:
            restamp.update((key, stamp) for key, r in recorded.items() if r != stamp)
    return changed, hashes, restamp


def _redo_changed(writer, videos, changed: set, done: set, views_of) -> tuple[list, list]:
    """Make the changed videos (:func:`_check_sources`) to do again: the source and every view of
    it (found by their ``view_of``, whatever the ids look like) are removed from the cache, since
    they were made from the old file; those this run asks for are extracted again, and one that
    then fails is missing (and in the manifest), not left behind from the old file. Each is
    warned about (:class:`~aqa.extract.video.VideoWarning`); returns (the changed ids, the
    removed view ids this run does not extract again)."""

    if not changed:
        return [], []
    views_by_source = writer.views_by_source()
    stale = [key for vid in sorted(changed) for key in [vid, *views_by_source.get(vid, [])]]
    writer.remove_videos(stale)
    done.difference_update(stale)
    redo, removed = [], []
    for vid, path, _ in videos:
        if vid not in changed:
            continue
        views = views_by_source.get(vid, [])
        again = {key for key, _ in _entries(vid, views_of(vid))}
        gone = [k for k in views if k not in again]
        msg = f"{path}: changed since it was extracted (its sha256 differs): extracted again"
        if gone:
            msg += (f"; its views {', '.join(k[len(vid) + 1:] for k in gone)} were made from the "
                    "old file and are removed (--view adds them again)")
        warnings.warn(msg, VideoWarning, stacklevel=3)
        redo.append(vid)
        removed += gone
    return redo, removed


def _as_views(views) -> list:
    """:class:`aqa.data.views.View` s from views or specs, in order, without duplicates."""

    views = [views] if isinstance(views, (str, View)) else list(views or ())
    return parse_views([v.name if isinstance(v, View) else v for v in views])


def _entries(vid: str, views) -> list[tuple]:
    """(cache id, view) of a video's entries: the source (view None), then each view."""

    return [(vid, None), *((view_id(vid, v), v) for v in views)]


def view_seed(video_id: str) -> int:
    """The seed of a video's random views (``drop``): a hash of its id, so each video drops its
    own frames and every run (a resume, a shard, another machine) drops the same ones."""
    return zlib.crc32(video_id.encode("utf-8"))


def _extract_video(extractor: "Extractor", writer, bar, item: tuple, results: list, views,
                   save_manifest, sha: str | None = None) -> None:
    """Extract the entries of one video that are to do (status ``failed`` until written): decode,
    pose and flow once (their seconds on the source's entry), then each entry's features, each
    with its own commit. A failure is recorded on the entries it stops, the others go on. New
    views of a complete source reuse its cached poses when ``sha``, the file's sha256 hashed by
    :func:`_check_sources`, is the one they were made from."""
    vid, path, relpath = item
    todo = [(r, v) for r, v in zip(results, [None, *views]) if r.status == "failed"]
    source = results[0]

    def show(r):
        bar.set_postfix_str(r.video_id)
        extractor.on_stage = lambda st: bar.set_postfix_str(f"{r.video_id}: {st}")

    show(source)
    notes = source.warnings if source.status == "failed" else []  # a complete source keeps its own
    with _failures_recorded([r for r, _ in todo], save_manifest):
        cached = None
        if source.status != "failed":   # a complete source: its poses serve its new views
            before, cached = writer.committed(vid) or ({}, None)
            if sha is None or before.get("source_sha256") != sha:
                cached = None           # not checked against the file: estimate afresh
        with _noting_video_warnings(notes):
            info, data = extractor.prepare(path, source.seconds, cached=cached,
                                           uses=[v for _, v in todo], seed=view_seed(vid))
        size, mtime = source_stamp(path)
        extra = {"source_relpath": relpath, "source_sha256": sha or file_sha256(path),
                 "source_size": size, "source_mtime_ns": mtime}
        for r, view in todo:
            show(r)
            with _failures_recorded([r], save_manifest), _noting_video_warnings(r.warnings):
                if view is None:
                    attrs, arrays = extractor.features(path, info, data, r.seconds, warn=True)
                else:
                    attrs, arrays = extractor.process_view(view, path, info, data, r.seconds,
                                                           seed=view_seed(vid))
                    attrs.update(view_of=vid, view=view.name)
                t0 = time.perf_counter()
                writer.write_video(r.video_id, {**attrs, **extra}, arrays)
                r.seconds["write"] = time.perf_counter() - t0
                r.status = "done"


@contextlib.contextmanager
def _failures_recorded(results: list, save_manifest):
    """Record an error of the block as the failure (stage, error) of each of ``results`` and go on;
    a locked cache, or a full file system, stops the run (every later write would fail too), the
    manifest saved first where there is room for it."""

    def record(error: str, stage: str):
        for r in results:
            if r.status == "failed" and not r.error:
                r.error, r.stage = error, stage

    try:
        yield
    except StageError as e:
        record(f"{type(e.error).__name__}: {e.error}", e.stage)
    except (CacheLockedError, CacheFullError) as e:
        record(str(e), "write")
        try:
            save_manifest()
        except OSError as why:
            warnings.warn(f"the failures manifest could not be saved: {why}", stacklevel=3)
        raise
    except Exception as e:  # noqa: BLE001 - recorded in the manifest, the batch goes on
        record(f"{type(e).__name__}: {e}", "write")
        if os.environ.get("AQA_DEBUG"):
            traceback.print_exc()


@contextlib.contextmanager
def _noting_video_warnings(notes: list):
    """Append the message of every :class:`~aqa.extract.video.VideoWarning` shown meanwhile to
    ``notes``; each is still shown as usual, and shown (so noted) even where the same message was
    shown before, unless a warnings filter of the user's says otherwise."""

    with warnings.catch_warnings():  # restores the filters and showwarning afterwards
        warnings.filterwarnings("always", category=VideoWarning, append=True)
        show = warnings.showwarning

        def noting(message, category, *args, **kwargs):
            if issubclass(category, VideoWarning):
                notes.append(str(message))
            show(message, category, *args, **kwargs)

        warnings.showwarning = noting
        yield


def _warn_label_mismatch(labels, rows, video_ids: Sequence[str]) -> None:
    """Warn when the labels table and the input videos do not match, with counts and a few ids."""
    def few(ids):
        ids = sorted(ids)
        return ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")

    labelled, inputs = {r.video_id for r in rows}, set(video_ids)
    problems = []
    if labelled - inputs:
        problems.append(f"{len(labelled - inputs)} of {len(labelled)} labelled videos are not "
                        f"among the inputs ({few(labelled - inputs)})")
    if inputs - labelled:
        problems.append(f"{len(inputs - labelled)} of {len(inputs)} input videos have no label "
                        f"row ({few(inputs - labelled)})")
    if problems:
        warnings.warn(f"labels {labels}: " + "; ".join(problems), UserWarning, stacklevel=3)


def _write_manifest(path: Path, summary: RunSummary) -> None:
    """``{"cache", "failed": [...], "warned": [...]}``: the failed videos and views (each its own
    entry: ``video_id`` the view id, ``view`` its name) and those extracted with warnings; removed
    when there is neither."""
    failed = [dataclasses.asdict(r) for r in summary.failed]
    warned = [{"video_id": r.video_id, "path": r.path, "warnings": r.warnings}
              for r in summary.warned]
    if failed or warned:
        path.write_text(json.dumps({"cache": summary.out, "failed": failed, "warned": warned},
                                   indent=2))
    elif path.exists():  # a clean re-run clears an old manifest
        path.unlink()


def _manifest_warnings(path: Path) -> dict[str, list]:
    """video_id -> warnings of the videos an earlier run's manifest lists as warned."""
    try:
        return {w["video_id"]: list(w["warnings"])
                for w in json.loads(path.read_text()).get("warned", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # none, or not ours
        return {}
