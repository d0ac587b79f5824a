"""The ``file`` pose backend: import poses computed elsewhere instead of running a model.

JRG's robustness study swaps pose estimators (Mask R-CNN vs AlphaPose), and some datasets ship poses
or kinematics rather than video, so stored poses are a first-class source. Formats (detected from
the content, see :func:`load_pose_file`):

- **COCO keypoint results** (a JSON list): ``{"image_id": int | "000012.jpg", "category_id": 1,
  "keypoints": [x, y, v] * 17, "score": float, "bbox": [x, y, w, h] (optional)}``; the frame index is
  ``"frame"``/``"frame_index"`` when present, else ``image_id`` (an int, or the number in a file name).
- **AlphaPose** results (a JSON list): ``{"image_id": "0.jpg", "keypoints": [...], "score",
  "box": [x, y, w, h], "idx"}``; 17 (COCO), 26 (Halpe-26) or 133 (COCO-WholeBody) keypoints, of which
  the first 17 are COCO-17 in every case.
- **OpenPose**: a directory of per-frame ``*_<frame>_keypoints.json`` files (``{"people":
  [{"pose_keypoints_2d": [...]}]}``), BODY_25 (25 points) or COCO-18 (18 points), mapped to COCO-17;
  a (0, 0, 0) point (OpenPose's "not detected") becomes NaN with score 0.
- **aqa synthetic sidecar** ``<video_id>.pose.json`` (``{"format": "aqa-synth-pose", ...}``, written by
  :mod:`aqa.data.synthetic`).

Boxes missing from a file are the keypoints' bounding box; missing person scores are the mean
keypoint score. Identities a file carries (AlphaPose ``idx``, ``track_id``, the sidecar's person
index and ``role``) are kept in :attr:`FramePoses.ids`/``roles`` for person selection. Where a file lies: an explicit ``path`` (file, or a directory holding
``<stem>.pose.json``, ``<stem>.json`` or an OpenPose folder ``<stem>/``), else ``<stem>.pose.json``
next to the video. Coordinates are rescaled when the frames given to :meth:`FilePoseBackend.estimate`
are not the size the poses were computed at (known from the sidecar, from ``source_size``, or by
probing the video or frame folder), e.g. when the runner downscales frames to a 256-pixel short
side: the returned poses are always in pixels of the frames given.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .base import FramePoses, PoseBackend, PoseFileError, boxes_from_keypoints
from ..video import probe

__all__ = ["FilePoseBackend", "load_pose_file", "find_pose_file", "OPENPOSE_BODY25_TO_COCO",
           "OPENPOSE_COCO18_TO_COCO"]

#: COCO-17 keypoint k is OpenPose BODY_25 point OPENPOSE_BODY25_TO_COCO[k]
OPENPOSE_BODY25_TO_COCO = (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11)
#: COCO-17 keypoint k is OpenPose COCO-18 point OPENPOSE_COCO18_TO_COCO[k]
OPENPOSE_COCO18_TO_COCO = (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10)

_N_WITH_COCO_PREFIX = {17, 26, 133}  # COCO, Halpe-26, COCO-WholeBody: first 17 are COCO-17


class PoseTable:
    """Poses read from a file: ``frames`` maps frame index -> :class:`FramePoses`; ``size`` is the
    (height, width) the coordinates refer to when the file says so, else None."""

    def __init__(self, frames: dict[int, FramePoses], size: tuple[int, int] | None, fmt: str, path: Path):
        self.frames, self.size, self.format, self.path = frames, size, fmt, path

    def n_frames(self) -> int:
        return max(self.frames) + 1 if self.frames else 0


def _err(path, msg) -> PoseFileError:
    """The error for a bad pose file: one line, at most ~300 characters of detail, printable (a
    value from the file may be long, span lines or hold lone surrogates)."""
    msg = " ".join(str(msg).split()).encode("utf-8", "backslashreplace").decode("utf-8")
    return PoseFileError(f"pose file {path}: {msg if len(msg) <= 300 else msg[:300] + '...'}")


#: what malformed JSON values make Python and numpy raise while a file is parsed
_MALFORMED = (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError, RecursionError)


def _frame_of(rec: dict, path, i: int) -> int:
    for key in ("frame", "frame_index", "frame_id"):
        if key in rec:
            return _as_index(rec[key], path, i, key)
    if "image_id" in rec:
        return _as_index(rec["image_id"], path, i, "image_id")
    raise _err(path, f"record {i} has no frame index (frame, frame_index or image_id)")


def _as_index(v, path, i, key) -> int:
    if isinstance(v, bool):
        raise _err(path, f"record {i}: {key} {v!r} is not a frame index")
    if isinstance(v, (int, np.integer)) or (isinstance(v, float) and float(v).is_integer()):
        if int(v) < 0:
            raise _err(path, f"record {i}: negative {key} {v!r}")
        return int(v)
    if isinstance(v, str):
        nums = re.findall(r"\d+", Path(v).stem)
        if nums:
            return int(nums[-1])
    raise _err(path, f"record {i}: cannot read a frame index from {key}={v!r}")


def _kp17(values, path, i) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size % 3 or arr.size // 3 not in _N_WITH_COCO_PREFIX:
        raise _err(path, f"record {i}: 'keypoints' has {arr.size} values; expected 3 x (17, 26 or 133)")
    return arr.reshape(-1, 3)[:17].astype(np.float32)


def _xywh_to_xyxy(b, path, i, key) -> np.ndarray:
    arr = np.asarray(b, dtype=np.float64).reshape(-1)
    if arr.size != 4:
        raise _err(path, f"record {i}: '{key}' must hold 4 numbers [x, y, w, h], got {arr.size}")
    return np.array([arr[0], arr[1], arr[0] + arr[2], arr[1] + arr[3]], np.float32)


def _normalise_kp_scores(kp: np.ndarray) -> np.ndarray:
    """COCO ground-truth style visibility flags (0, 1, 2) become 0/1 scores; other scores are kept."""
    v = kp[:, 2]
    if np.all(np.isin(v, (0.0, 1.0, 2.0))) and np.any(v == 2.0):
        kp = kp.copy()
        kp[:, 2] = (v > 0).astype(np.float32)
    return kp


def _load_records(records: list, path: Path, fmt: str) -> PoseTable:
    per: dict[int, list] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise _err(path, f"record {i} is a {type(rec).__name__}, expected an object")
        if "keypoints" not in rec:
            raise _err(path, f"record {i} has no 'keypoints'")
        if rec.get("category_id", 1) != 1:
            continue  # not a person
        f = _frame_of(rec, path, i)
        kp = _normalise_kp_scores(_kp17(rec["keypoints"], path, i))
        if "bbox" in rec:
            box = _xywh_to_xyxy(rec["bbox"], path, i, "bbox")
        elif "box" in rec:
            box = _xywh_to_xyxy(rec["box"], path, i, "box")
        else:
            box = boxes_from_keypoints(kp[None], min_score=0.0)[0]
        score = rec.get("score")
        if score is None:
            score = float(np.nanmean(kp[:, 2])) if np.isfinite(kp[:, 2]).any() else 0.0
        try:
            score = float(score)
        except (TypeError, ValueError):
            raise _err(path, f"record {i}: score {rec.get('score')!r} is not a number") from None
        per.setdefault(f, []).append((box, score, kp, _track_id(rec)))
    with_ids = all(r[3] is not None for v in per.values() for r in v)
    frames = {f: FramePoses(np.stack([r[0] for r in v]), np.array([r[1] for r in v]), np.stack([r[2] for r in v]),
                            ids=np.array([r[3] for r in v]) if with_ids else None)
              for f, v in per.items()}
    return PoseTable(frames, None, fmt, path)


def _track_id(rec: dict):
    """A tracker's person identity (AlphaPose ``idx``, COCO-style ``track_id``), or None."""
    v = rec.get("idx", rec.get("track_id"))
    if isinstance(v, list) and v:
        v = v[0]
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


def _load_sidecar(doc: dict, path: Path) -> PoseTable:
    if doc.get("version") != 1:
        raise _err(path, f"unsupported aqa-synth-pose version {doc.get('version')!r} (this reader knows 1)")
    try:
        n = int(doc["n_frames"])
        size = (int(doc["height"]), int(doc["width"]))
        persons = doc["persons"]
    except (KeyError, TypeError, ValueError) as exc:
        raise _err(path, f"aqa-synth-pose sidecar lacks n_frames/height/width/persons ({exc})") from None
    if not isinstance(persons, list):
        raise _err(path, "'persons' must be a list")
    kps, boxes, scores, roles = [], [], [], []
    for j, person in enumerate(persons):
        role = person.get("role", j) if isinstance(person, dict) else j
        if role not in (0, 1):
            raise _err(path, f"person {j}: role {role!r} must be 0 (primary) or 1 (secondary)")
        roles.append(role)
        try:
            k = np.asarray(person["keypoints"], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise _err(path, f"person {j}: unreadable 'keypoints' ({exc})") from None
        if k.shape != (n, 17, 3):
            raise _err(path, f"person {j}: keypoints have shape {k.shape}, expected ({n}, 17, 3)")
        if person.get("boxes") is not None:
            b = np.asarray(person["boxes"], dtype=np.float32)
            if b.shape != (n, 4):
                raise _err(path, f"person {j}: boxes have shape {b.shape}, expected ({n}, 4)")
        else:
            b = boxes_from_keypoints(k)
        if person.get("box_scores") is not None:
            s = np.asarray(person["box_scores"], dtype=np.float32).reshape(n)
        else:
            kk = np.where(np.isfinite(k[..., 2]), k[..., 2], 0.0)
            cnt = np.isfinite(k[..., 2]).sum(1)
            s = np.where(cnt > 0, kk.sum(1) / np.maximum(cnt, 1), np.nan)
        kps.append(k)
        boxes.append(b)
        scores.append(s.astype(np.float32))
    frames = {}
    for f in range(n):
        present = [j for j in range(len(persons)) if np.isfinite(boxes[j][f]).all()]
        if present:
            frames[f] = FramePoses(np.stack([boxes[j][f] for j in present]),
                                   np.array([scores[j][f] for j in present]),
                                   np.stack([kps[j][f] for j in present]),
                                   ids=np.array(present), roles=np.array([roles[j] for j in present]))
    table = PoseTable(frames, size, "aqa-synth-pose", path)
    table.n_frames_declared = n
    return table


def _load_openpose_dir(folder: Path) -> PoseTable:
    files = sorted(folder.glob("*_keypoints.json"))
    if not files:
        raise _err(folder, "directory holds no OpenPose *_keypoints.json files")
    frames = {}
    for f in files:
        m = re.search(r"(\d+)_keypoints\.json$", f.name)
        if not m:
            raise _err(f, "cannot read a frame number from the file name (expected *_<frame>_keypoints.json)")
        try:
            doc = json.loads(f.read_text())
            people = doc["people"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            raise _err(f, f"not an OpenPose keypoints file ({type(exc).__name__}: {exc})") from None
        ks = []
        for i, person in enumerate(people):
            arr = np.asarray(person.get("pose_keypoints_2d", []), dtype=np.float32).reshape(-1)
            if arr.size == 75:
                mapping = OPENPOSE_BODY25_TO_COCO
            elif arr.size == 54:
                mapping = OPENPOSE_COCO18_TO_COCO
            else:
                raise _err(f, f"person {i}: pose_keypoints_2d has {arr.size} values; expected 75 (BODY_25) or 54 (COCO-18)")
            k = arr.reshape(-1, 3)[list(mapping)].copy()
            missing = (k[:, 2] <= 0) & (k[:, 0] == 0) & (k[:, 1] == 0)
            k[missing] = (np.nan, np.nan, 0.0)
            ks.append(k)
        if ks:
            kk = np.stack(ks)
            b = boxes_from_keypoints(kk)
            with np.errstate(invalid="ignore"):
                s = np.nanmean(kk[..., 2], axis=1)
            keep = np.isfinite(b).all(1)
            frames[int(m.group(1))] = FramePoses(b[keep], s[keep], kk[keep])
    return PoseTable(frames, None, "openpose", folder)


def load_pose_file(path) -> PoseTable:
    """Read a pose file or OpenPose directory into a :class:`PoseTable`; :class:`PoseFileError` if it is
    missing or malformed (a value of the wrong type or shape anywhere in it included)."""
    p = Path(path)
    try:
        return _load_pose_path(p)
    except PoseFileError:
        raise
    except _MALFORMED as exc:
        raise _err(p, f"malformed ({type(exc).__name__}: {exc})") from None


def _load_pose_path(p: Path) -> PoseTable:
    if p.is_dir():
        return _load_openpose_dir(p)
    if not p.is_file():
        raise _err(p, "no such file")
    try:
        doc = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _err(p, f"not valid JSON ({type(exc).__name__}: {exc})") from None
    if isinstance(doc, dict):
        if doc.get("format") == "aqa-synth-pose":
            return _load_sidecar(doc, p)
        if "people" in doc:
            raise _err(p, "a single OpenPose frame file; pass the directory of per-frame files")
        if isinstance(doc.get("annotations"), list):  # COCO ground-truth style file
            ids = {im["id"]: im for im in doc.get("images", []) if isinstance(im, dict) and "id" in im}
            recs = []
            for a in doc["annotations"]:
                rec = dict(a)
                im = ids.get(a.get("image_id"))
                if im is not None and "frame" not in rec and "frame_index" not in rec:
                    rec["image_id"] = im.get("frame_id", im.get("file_name", a.get("image_id")))
                recs.append(rec)
            return _load_records(recs, p, "coco")
        raise _err(p, "unknown JSON object: expected an aqa-synth-pose sidecar or a COCO file with 'annotations'")
    if isinstance(doc, list):
        fmt = "alphapose" if doc and isinstance(doc[0], dict) and "box" in doc[0] else "coco-results"
        return _load_records(doc, p, fmt)
    raise _err(p, f"top-level JSON {type(doc).__name__} is neither a list of detections nor an object")


def find_pose_file(video_path=None, path=None) -> Path:
    """Where the poses of ``video_path`` are: an explicit file ``path``, a file in directory ``path``
    (``<stem>.pose.json``, ``<stem>.json``, an OpenPose folder ``<stem>/``), or ``<stem>.pose.json``
    next to the video."""
    tried = []
    if path is not None:
        p = Path(path)
        if p.is_file():
            return p
        if p.is_dir():
            if video_path is None:
                if list(p.glob("*_keypoints.json")):
                    return p
                raise PoseFileError(f"pose directory {p}: which video? (no video_path given)")
            stem = Path(video_path).stem
            for cand in (p / f"{stem}.pose.json", p / f"{stem}.json", p / stem):
                tried.append(cand)
                if cand.is_file() or (cand.is_dir() and list(cand.glob("*_keypoints.json"))):
                    return cand
        else:
            tried.append(p)
    elif video_path is not None:
        v = Path(video_path)
        base = v if v.is_dir() else v.with_suffix("")
        cand = base.parent / f"{base.name}.pose.json"
        tried.append(cand)
        if cand.is_file():
            return cand
    else:
        raise PoseFileError("the file pose backend needs a video_path or a 'path' option")
    raise PoseFileError("no pose file found; looked for " + ", ".join(str(t) for t in tried)
                        + " (pass --pose-opt path=FILE_OR_DIR)")


class FilePoseBackend(PoseBackend):
    """Poses from files (see module docstring). Options: ``path`` (file or directory; one that does
    not exist is a :class:`PoseFileError` at once) and ``source_size`` ((height, width) the stored
    coordinates refer to, when the file does not say)."""

    name = "file"

    def __init__(self, path=None, source_size=None, **unused):
        super().__init__()
        if unused:
            raise TypeError(f"file pose backend: unknown options {sorted(unused)}")
        if path is not None and not Path(path).exists():
            raise PoseFileError(f"path={path}: no such pose file or directory")
        self.path = path
        self.source_size = tuple(int(v) for v in source_size) if source_size is not None else None
        self._cache: dict[str, PoseTable] = {}

    def load(self, video_path=None) -> PoseTable:
        where = find_pose_file(video_path, self.path)
        key = str(where.resolve())
        if key not in self._cache:
            self._cache = {key: load_pose_file(where)}  # keep only the current video's table
        return self._cache[key]

    def estimate(self, frames, video_path=None, frame_indices=None, progress: bool = False) -> list[FramePoses]:
        arr = self._check_frames(frames)
        table = self.load(video_path)
        idx = np.arange(len(arr)) if frame_indices is None else np.asarray(frame_indices, dtype=np.int64)
        if len(idx) != len(arr):
            raise ValueError(f"{len(idx)} frame indices for {len(arr)} frames")
        src = table.size or self.source_size
        if src is None and video_path is not None:  # a video file or a frame folder

            info = probe(video_path)
            src = (info.height, info.width)
        h, w = arr.shape[1:3]
        sx = sy = 1.0
        if src is not None and (src[0], src[1]) != (h, w):
            sy, sx = h / src[0], w / src[1]
        out = []
        for i in idx.tolist():
            fp = table.frames.get(int(i))
            if fp is None:
                out.append(FramePoses.empty())
            else:
                out.append(fp.scaled(sx, sy) if (sx, sy) != (1.0, 1.0) else fp)
        return out
