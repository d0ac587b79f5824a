"""Readers for the published annotation files of the AQA benchmarks -> the common labels table.

Each reader takes the folder holding one benchmark's released label/split files, named as the
authors released them (the table below), and returns ``list[LabelRow]`` with the protocol's split in ``split``:

==========  ===================================================  ===========================  ==========
name        files                                                split                        video_id
==========  ===================================================  ===========================  ==========
aqa7        consolidated_{train,test}_list.mat                   train/test (split 4)         ``01_054``
mtl_aqa     [augmented_]final_annotations_dict.pkl,              train/test (split 0)         ``01_07``
            {train,test}_split_0.pkl
unlv_dive   final_annotations_dict.pkl, {train,test}_split_370_4  train/test                   ``01_07``
jigsaws     label.pkl, splits.pkl                                fold0..fold3 (4-fold CV)     trial name
finediving  fine-grained_annotation_aqa.pkl, {train,test}_split   train/test                   ``<event>_<clip>``
==========  ===================================================  ===========================  ==========

Facts about the released files that these readers encode (each checked against the real files):

- AQA-7: the third column is ``score * 100`` (diving 29.70..102.60 points is stored as 2970..10260); the
  readers divide by 100 and round to 6 decimals to drop float noise (1667.0000000000002 -> 16.67).
  This is also what the authors' own loader (C3D-LSTM--PyTorch) does.
- MTL-AQA: both annotation files have the same 1412 keys and identical shared fields; the augmented one
  adds ``judge_scores`` (7 floats). One judge score is off the 0-10 scale: key (4, 49) has ``45.0``,
  read as a decimal slip for ``4.5``; the final score (39.6 = 3.3 x (4 + 4 + 4), the middle three of
  the seven) is consistent with it but does not pin it (any value >= 4 would drop out the same).
  :data:`ERRATA` corrects it (``errata=False``, ``aqa-data labels --raw``, keeps the raw value). ``primary_view`` is 0 for every dive.
- UNLV-Dive: its annotation dict is the MTL-AQA format (same keys, same values for videos 1-3). The
  train split names (1, 64), which no annotation file holds (MTL-AQA numbering of video 1 skips clip
  64); it is dropped with a warning (:data:`KNOWN_MISSING`), so the protocol has 299 train / 70 test
  labelled dives. The annotations hold 3 dives in no split ((1, 191), (1, 192), (3, 73)), dropped
  unless ``include_unsplit=True`` (then ``split == ""``). Split keys are numpy uint8 pairs.
- JIGSAWS: 6 modified-GRS items per trial, each 1..5; the target is their sum (6..30). Every trial is
  in exactly one of the 4 folds of its task. Each trial is a stereo recording, ``capture1`` (left)
  and ``capture2`` (right): ``cameras="both"`` reads both as samples of their own, as JRG (Sec.
  4.2) and AIM (Sec. 5.1) do; the default is the left one, as MUSDL's loader reads.
- FineDiving: the value is ``[dive_number (str, e.g. '407c'), final_score, difficulty, step_ends
  (2-4 frame indices: last frame of each step before the next), frame_labels (one sub-action label per
  frame)]``. The dive number is kept as numeric sub-scores ``dive_code`` (407) and ``dive_position``
  (a=1 .. d=4); :func:`dive_number` turns them back into ``'407c'``. Events named ``01``..``26`` are
  MTL-AQA videos.

Anything else that does not fit (a key in a split but not in the annotations, a key in two splits, a
duplicate, a NaN or non-numeric score, a missing field) is a ``ValueError`` naming the keys and file.

Length: one reader per benchmark, each beside the facts about its released files that it encodes
(listed above); they share the key, split and field helpers.
"""
from __future__ import annotations

import math
import operator
import reprlib
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import numpy as np

from .labels import LabelRow, read_labels_csv
from .safepickle import safe_load

__all__ = [
    "AQA7_ACTIONS", "JIGSAWS_TASKS", "JIGSAWS_GRS_ITEMS", "JIGSAWS_CAMERAS", "MTL_AQA_FIELDS", "ERRATA", "KNOWN_MISSING",
    "EXPECTED_FILES", "DATASETS", "VIDEO_EXTENSIONS", "VideoItem",
    "read_aqa7", "read_mtl_aqa", "read_unlv_dive", "read_jigsaws", "jigsaws_video_id", "read_finediving",
    "read_finediving_frame_labels", "read_folder", "read_dataset", "video_relpath", "dive_number",
    "diving_final_score",
]

AQA7_ACTIONS = {1: "diving", 2: "gym_vault", 3: "ski_big_air", 4: "snowboard_big_air",
                5: "sync_diving_3m", 6: "sync_diving_10m"}
JIGSAWS_TASKS = ("Suturing", "Knot_Tying", "Needle_Passing")
# Order of the 6 modified-GRS items in JIGSAWS' meta files (and in label.pkl).
JIGSAWS_GRS_ITEMS = ("grs_respect_for_tissue", "grs_suture_needle_handling", "grs_time_and_motion",
                     "grs_flow_of_operation", "grs_overall_performance", "grs_quality_of_final_product")
# Numeric per-dive fields of the MTL-AQA / UNLV-Dive dicts kept as sub-scores (besides the judges).
MTL_AQA_FIELDS = ("position", "armstand", "rotation_type", "ss_no", "tw_no", "primary_view",
                  "start_frame", "end_frame")

# (dataset, key, field, index or None) -> (published value, corrected value): values off the judging
# scale, each consistent with the published final score (difficulty x sum of the middle 3 of 7 judges).
ERRATA: dict[tuple, tuple[float, float]] = {
    ("mtl_aqa", (4, 49), "judge_scores", 3): (45.0, 4.5),
}
# Split keys known to have no annotation in the published files: dropped with a warning.
KNOWN_MISSING: dict[str, frozenset] = {"unlv_dive": frozenset({(1, 64)})}

EXPECTED_FILES: dict[str, tuple[str, ...]] = {
    "aqa7": ("consolidated_train_list.mat", "consolidated_test_list.mat"),
    "mtl_aqa": ("final_annotations_dict.pkl", "augmented_final_annotations_dict.pkl",
                "train_split_0.pkl", "test_split_0.pkl"),
    "unlv_dive": ("final_annotations_dict.pkl", "train_split_370_4.pkl", "test_split_370_4.pkl"),
    "jigsaws": ("label.pkl", "splits.pkl"),
    "finediving": ("fine-grained_annotation_aqa.pkl", "train_split.pkl", "test_split.pkl"),
}
_SOURCES = {
    "aqa7": "AQA-7 split 4 lists (ParitoshParmar/C3D-LSTM--PyTorch, input/)",
    "mtl_aqa": "MTL-AQA_dataset_release/Ready_2_Use (augmented file: nzl-thu/MUSDL MTL-AQA/data/info)",
    "unlv_dive": "MTL-AQA_dataset_release/Ready_2_Use/UNLV-Dive",
    "jigsaws": "nzl-thu/MUSDL JIGSAWS/data/info",
    "finediving": "xujinglin/FineDiving Annotations/",
}

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv")


# ----------------------------------------------------------------------------------------- helpers

def _file(ann_dir: str | Path, name: str, dataset: str) -> Path:
    """Path of an expected annotation file, or a FileNotFoundError saying what belongs where."""
    ann_dir = Path(ann_dir)
    p = ann_dir / name
    if not p.is_file():
        where = "" if ann_dir.is_dir() else f" (the folder {ann_dir} does not exist)"
        raise FileNotFoundError(
            f"{dataset}: expected annotation file {_r(name)} in {ann_dir}{where}; this reader needs "
            f"{', '.join(EXPECTED_FILES[dataset])} from {_SOURCES[dataset]}")
    return p


def _int_key(key: Any, source: Path) -> tuple[int, int]:
    """(video, clip) key as plain ints (UNLV-Dive stores numpy uint8 pairs)."""
    try:
        a, b = key
        return operator.index(a), operator.index(b)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: key {_r(key)} is not a (video, clip) pair of integers") from None


def _str_int_key(key: Any, source: Path) -> tuple[str, int]:
    try:
        a, b = key
        if not isinstance(a, str):
            raise TypeError
        return a, operator.index(b)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: key {_r(key)} is not an (event name, clip number) pair") from None


def _number(value: Any, what: str, key: Any, source: Path) -> float:
    """A finite float, or a ValueError naming the key, the field and the file."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: {what} of {_r(key)} is not a number: {_r(value)}") from None
    if not math.isfinite(x):
        raise ValueError(f"{source}: {what} of {_r(key)} is {x} (need a finite number)")
    return x


def _r(value: Any, limit: int = 80) -> str:
    """A value read from an annotation file as a short one-line repr for an error message (an
    array's repr runs over lines, a deeply nested list's past the recursion limit)."""
    text = " ".join(_REPR.repr(value).split())
    return text if len(text) <= limit else text[:limit] + "..."


class _ShortRepr(reprlib.Repr):
    """reprlib's bounded repr (a few items a level, a few levels: lists sharing items through a
    pickle's memo cannot make it long), arrays as their shape and dtype."""

    def __init__(self):
        super().__init__()
        self.maxlevel, self.maxother, self.maxstring = 3, 40, 80

    def repr_ndarray(self, x, level):
        return f"array(shape={x.shape}, dtype={x.dtype})" if x.size > 8 or x.dtype.kind == "O" \
            else " ".join(repr(x).split())


_REPR = _ShortRepr()


def _show(keys: Iterable, limit: int = 10) -> str:
    keys = sorted(keys, key=_r)
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(_r(k) for k in keys[:limit]) + more


def _load_dict(path: Path) -> dict:
    obj = safe_load(path)
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict of annotations, got {type(obj).__name__}")
    return obj


def _load_split(path: Path, normalise: Callable[[Any, Path], Any]) -> list:
    obj = safe_load(path)
    if not isinstance(obj, (list, tuple)):
        raise ValueError(f"{path}: expected a list of keys, got {type(obj).__name__}")
    if not obj:
        raise ValueError(f"{path}: the split lists no keys")
    keys = [normalise(k, path) for k in obj]
    seen, dups = set(), set()
    for k in keys:
        (dups if k in seen else seen).add(k)
    if dups:
        raise ValueError(f"{path}: key(s) listed more than once: {_show(dups)}")
    return keys


def _assign_splits(dataset: str, splits: dict[str, tuple[list, Path]], annotated: Iterable,
                   ann_path: Path, include_unsplit: bool) -> dict[Any, str]:
    """key -> split name; checks that splits are disjoint and name only annotated keys."""
    annotated = set(annotated)
    out: dict[Any, str] = {}
    for name, (keys, path) in splits.items():
        both = [k for k in keys if k in out]
        if both:
            raise ValueError(f"{dataset}: key(s) in both {_r(out[both[0]])} and {_r(name)} ({path}): "
                             f"{_show(both)}")
        missing = [k for k in keys if k not in annotated]
        known = KNOWN_MISSING.get(dataset, frozenset())
        unknown = [k for k in missing if k not in known]
        if unknown:
            raise ValueError(f"{dataset}: {len(unknown)} key(s) of split {_r(name)} ({path}) have no "
                             f"annotation in {ann_path}: {_show(unknown)}")
        if missing:
            warnings.warn(f"{dataset}: dropping {len(missing)} key(s) of split {_r(name)} that the "
                          f"published annotations lack (known defect): {_show(missing)}",
                          stacklevel=3)
        out.update((k, name) for k in keys if k in annotated)
    unsplit = [k for k in annotated if k not in out]
    if include_unsplit:
        out.update((k, "") for k in unsplit)
    elif unsplit:
        warnings.warn(f"{dataset}: leaving out {len(unsplit)} annotated key(s) of {ann_path} that no "
                      f"split lists: {_show(unsplit)} (include_unsplit=True keeps them, split '')",
                      stacklevel=3)
    return out


def _check_fields(d: Any, fields: Sequence[str], key: Any, source: Path) -> dict:
    if not isinstance(d, dict):
        raise ValueError(f"{source}: annotation of {_r(key)} is a {type(d).__name__}, expected a dict")
    missing = [f for f in fields if f not in d]
    if missing:
        raise ValueError(f"{source}: annotation of {_r(key)} lacks field(s) {missing}; has {_show(d)}")
    return d


# ------------------------------------------------------------------------------------------ AQA-7

def read_aqa7(ann_dir: str | Path) -> list[LabelRow]:
    """AQA-7 split 4: 803 train / 303 test rows from the two ``.mat`` lists.

    Each row of a list is ``[action_class 1..6, sample_no, score * 100]``; ``score`` is divided back
    by 100. ``video_id`` is ``f"{action_class:02d}_{sample_no:03d}"``; ``difficulty`` is NaN.
    """
    from scipy.io import loadmat

    paths = {s: _file(ann_dir, f"consolidated_{s}_list.mat", "aqa7") for s in ("train", "test")}
    rows: list[LabelRow] = []
    seen: dict[str, str] = {}
    for split, path in paths.items():
        var = f"consolidated_{split}_list"
        try:
            mat = loadmat(path)
        except Exception as e:          # scipy raises ValueError, OSError, TypeError... on bad files
            raise ValueError(f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {e})") from e
        if var not in mat:
            raise ValueError(f"{path}: no variable {_r(var)}; has "
                             f"{[k for k in mat if not k.startswith('__')]}")
        a = np.asarray(mat[var], dtype=float)
        if a.ndim != 2 or a.shape[1] != 3 or len(a) == 0:
            raise ValueError(f"{path}: {var} has shape {a.shape}, expected (n >= 1, 3) rows of "
                             f"[action_class, sample_no, score*100]")
        for i, (cls, sample, score100) in enumerate(a):
            if cls not in AQA7_ACTIONS:
                raise ValueError(f"{path}: row {i} has action class {cls}, expected 1..6")
            if not (sample >= 1 and sample == int(sample)):
                raise ValueError(f"{path}: row {i} has sample number {sample}, expected an integer >= 1")
            vid = f"{int(cls):02d}_{int(sample):03d}"
            score = round(_number(score100, "score", vid, path) / 100.0, 6)
            if vid in seen:
                raise ValueError(f"{path}: sample {vid} ({AQA7_ACTIONS[int(cls)]} #{int(sample)}) "
                                 f"already listed in split {_r(seen[vid])}")
            seen[vid] = split
            rows.append(LabelRow(video_id=vid, score=score, action=AQA7_ACTIONS[int(cls)],
                                 split=split))
    return rows


# ------------------------------------------------------------------------ MTL-AQA and UNLV-Dive

def _mtl_rows(dataset: str, ann: dict, ann_path: Path, split_of: dict, judges: bool,
              errata: bool) -> list[LabelRow]:
    fields = ("final_score", "difficulty") + MTL_AQA_FIELDS + (("judge_scores",) if judges else ())
    rows = []
    for raw_key in ann:
        key = _int_key(raw_key, ann_path)
        if key not in split_of:
            continue
        d = _check_fields(ann[raw_key], fields, key, ann_path)
        vid = f"{key[0]:02d}_{key[1]:02d}"
        subs: dict[str, float] = {}
        if judges:
            raw = d["judge_scores"]   # checked first: np.asarray never ends on a list holding itself
            if not (isinstance(raw, np.ndarray) and raw.dtype.kind in "iuf") and not (
                    isinstance(raw, (list, tuple)) and all(
                        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                        for v in raw)):
                raise ValueError(f"{ann_path}: judge_scores of {key} is not a list of numbers")
            js = np.asarray(raw, dtype=float).ravel()
            if js.shape != (7,):
                raise ValueError(f"{ann_path}: judge_scores of {key} has {js.size} values, expected 7")
            for (ds, k, f, i), (old, new) in ERRATA.items():
                if errata and ds == dataset and k == key and f == "judge_scores" and js[i] == old:
                    js = js.copy()
                    js[i] = new
            for j, s in enumerate(js, 1):
                subs[f"judge_{j}"] = _number(s, f"judge score {j}", key, ann_path)
        for f in MTL_AQA_FIELDS:
            subs[f] = _number(d[f], f, key, ann_path)
        rows.append(LabelRow(video_id=vid, score=_number(d["final_score"], "final_score", key, ann_path),
                             action="diving",
                             difficulty=_number(d["difficulty"], "difficulty", key, ann_path),
                             split=split_of[key], sub_scores=subs))
    return rows


def read_mtl_aqa(ann_dir: str | Path, augmented: bool = True, *, errata: bool = True,
                 include_unsplit: bool = False) -> list[LabelRow]:
    """MTL-AQA split 0: 1059 train / 353 test dives.

    ``augmented=True`` reads ``augmented_final_annotations_dict.pkl`` and adds the 7 judges' scores as
    ``judge_1``..``judge_7``; ``False`` reads ``final_annotations_dict.pkl`` (no judges). Sub-scores
    also hold the numeric fields in :data:`MTL_AQA_FIELDS`. ``errata`` applies :data:`ERRATA`.
    """
    name = "augmented_final_annotations_dict.pkl" if augmented else "final_annotations_dict.pkl"
    ann_path = _file(ann_dir, name, "mtl_aqa")
    paths = {s: _file(ann_dir, f"{s}_split_0.pkl", "mtl_aqa") for s in ("train", "test")}
    ann = _load_dict(ann_path)
    annotated = [_int_key(k, ann_path) for k in ann]
    splits = {s: (_load_split(p, _int_key), p) for s, p in paths.items()}
    split_of = _assign_splits("mtl_aqa", splits, annotated, ann_path, include_unsplit)
    return _mtl_rows("mtl_aqa", ann, ann_path, split_of, augmented, errata)


def read_unlv_dive(ann_dir: str | Path, *, include_unsplit: bool = False) -> list[LabelRow]:
    """UNLV-Dive (the 300/70 split ``*_split_370_4.pkl``) in the MTL-AQA dict format.

    Split keys are numpy uint8 pairs, converted to ints. The published train split names (1, 64),
    which has no annotation: it is dropped with a warning, leaving 299 train / 70 test rows.
    """
    ann_path = _file(ann_dir, "final_annotations_dict.pkl", "unlv_dive")
    paths = {s: _file(ann_dir, f"{s}_split_370_4.pkl", "unlv_dive") for s in ("train", "test")}
    ann = _load_dict(ann_path)
    annotated = [_int_key(k, ann_path) for k in ann]
    splits = {s: (_load_split(p, _int_key), p) for s, p in paths.items()}
    split_of = _assign_splits("unlv_dive", splits, annotated, ann_path, include_unsplit)
    return _mtl_rows("unlv_dive", ann, ann_path, split_of, False, False)


# ---------------------------------------------------------------------------------------- JIGSAWS

#: JIGSAWS camera -> the suffix of its recordings (``<trial>_capture1.avi``); the left camera's
#: video id is the trial name, the right camera's ``<trial>_capture2``
JIGSAWS_CAMERAS = {"left": "capture1", "right": "capture2"}


def _jigsaws_cameras(cameras) -> list[str]:
    """``"left"``, ``"right"``, ``"both"`` or a sequence of the first two -> camera names."""
    if isinstance(cameras, str):
        cams = list(JIGSAWS_CAMERAS) if cameras == "both" else [cameras]
    else:
        cams = list(cameras)
    bad = [c for c in cams if c not in JIGSAWS_CAMERAS]
    if bad or not cams:
        raise ValueError(f"jigsaws cameras {_r(cameras)}: choose left, right or both")
    return list(dict.fromkeys(cams))


def jigsaws_video_id(trial: str, camera: str = "left") -> str:
    """The video id of ``trial``'s recording by ``camera``: the trial name for the left camera (the
    ids of MUSDL's labels), ``<trial>_capture2`` for the right one."""
    return trial if camera == "left" else f"{trial}_{JIGSAWS_CAMERAS[camera]}"


def _jigsaws_trial(video_id: str) -> tuple[str, str]:
    """(trial, capture suffix) of a JIGSAWS video id (:func:`jigsaws_video_id`)."""
    for capture in JIGSAWS_CAMERAS.values():
        if video_id.endswith("_" + capture):
            return video_id[:-len(capture) - 1], capture
    return video_id, JIGSAWS_CAMERAS["left"]


def _jigsaws_task(trial: str, source: Path) -> str:
    m = re.fullmatch(r"(Suturing|Knot_Tying|Needle_Passing)_([A-Z])(\d{3})", trial)
    if not m:
        raise ValueError(f"{source}: trial name {_r(trial)} is not <task>_<surgeon letter><3 digits> "
                         f"with a task in {JIGSAWS_TASKS}")
    return m.group(1)


def read_jigsaws(ann_dir: str | Path, cameras="left") -> list[LabelRow]:
    """JIGSAWS: one row per trial (103) and camera, ``score`` = sum of the 6 GRS items (sub-scores
    :data:`JIGSAWS_GRS_ITEMS`), ``action`` = task, ``split`` = ``fold0``..``fold3`` of its task.

    ``cameras``: ``"left"`` (default; ids are the trial names), ``"right"`` or ``"both"`` (each
    recording a sample of its own, :func:`jigsaws_video_id`); a trial's recordings share its fold,
    so cross-validation never tests a trial whose other camera it trained on."""
    cams = _jigsaws_cameras(cameras)
    lab_path = _file(ann_dir, "label.pkl", "jigsaws")
    sp_path = _file(ann_dir, "splits.pkl", "jigsaws")
    labels = _load_dict(lab_path)
    splits = _load_dict(sp_path)
    fold_of: dict[str, str] = {}
    for task, folds in splits.items():
        if task not in JIGSAWS_TASKS:
            raise ValueError(f"{sp_path}: unknown task {_r(task)}; expected {JIGSAWS_TASKS}")
        if not isinstance(folds, (list, tuple)) or len(folds) != 4:
            raise ValueError(f"{sp_path}: task {_r(task)} should have 4 folds (lists of trial names)")
        for i, fold in enumerate(folds):
            if not isinstance(fold, (list, tuple)):
                raise ValueError(f"{sp_path}: fold {i} of {_r(task)} is a {type(fold).__name__}, "
                                 f"expected a list of trial names")
            for trial in fold:
                if not isinstance(trial, str) or _jigsaws_task(trial, sp_path) != task:
                    raise ValueError(f"{sp_path}: fold {i} of {_r(task)} holds {_r(trial)}, "
                                     f"a trial of another task")
                if trial in fold_of:
                    raise ValueError(f"{sp_path}: trial {_r(trial)} is in {fold_of[trial]} and fold{i}")
                fold_of[trial] = f"fold{i}"
    unknown = set(fold_of) - set(labels)
    if unknown:
        raise ValueError(f"jigsaws: {len(unknown)} trial(s) of {sp_path} have no label in "
                         f"{lab_path}: {_show(unknown)}")
    unsplit = set(labels) - set(fold_of)
    if unsplit:
        raise ValueError(f"jigsaws: {len(unsplit)} labelled trial(s) of {lab_path} are in no fold "
                         f"of {sp_path}: {_show(unsplit)}")
    not_names = [k for k in labels if not isinstance(k, str)]
    if not_names:
        raise ValueError(f"{lab_path}: trial key(s) that are not names: {_show(not_names)}")
    rows = []
    for trial in sorted(labels):
        items = labels[trial]
        task = _jigsaws_task(trial, lab_path)
        if not isinstance(items, (list, tuple, np.ndarray)) or len(items) != len(JIGSAWS_GRS_ITEMS):
            raise ValueError(f"{lab_path}: trial {_r(trial)} has GRS items {_r(items)}, expected a list of 6")
        vals = [_number(v, name, trial, lab_path) for v, name in zip(items, JIGSAWS_GRS_ITEMS)]
        rows += [LabelRow(video_id=jigsaws_video_id(trial, cam), score=float(sum(vals)), action=task,
                          split=fold_of[trial], sub_scores=dict(zip(JIGSAWS_GRS_ITEMS, vals)))
                 for cam in cams]
    return rows


# ------------------------------------------------------------------------------------- FineDiving

_POSITIONS = "abcd"


def dive_number(code: float, position: float) -> str:
    """FINA dive number from FineDiving's numeric sub-scores: ``dive_number(407, 3) == '407c'``."""
    p = int(position)
    if not 1 <= p <= 4 or int(code) != code:
        raise ValueError(f"not a dive number: code {code}, position {position} (positions are 1..4)")
    return f"{int(code)}{_POSITIONS[p - 1]}"


def _parse_dive_number(dn: Any, key: Any, source: Path) -> tuple[float, float]:
    m = re.fullmatch(r"(\d{3,4})([a-dA-D])", str(dn)) if isinstance(dn, str) else None
    if not m:
        raise ValueError(f"{source}: dive number of {_r(key)} is {_r(dn)}, expected digits + a..d "
                         f"(e.g. '407c')")
    return float(m.group(1)), float(_POSITIONS.index(m.group(2).lower()) + 1)


def _finediving_ann(ann_dir: str | Path) -> tuple[dict, Path]:
    ann_path = _file(ann_dir, "fine-grained_annotation_aqa.pkl", "finediving")
    raw = _load_dict(ann_path)
    ann = {}
    for k, v in raw.items():
        key = _str_int_key(k, ann_path)
        if not isinstance(v, (list, tuple)) or len(v) < 5:
            raise ValueError(f"{ann_path}: annotation of {_r(key)} should be [dive_number, final_score, "
                             f"difficulty, step_ends, frame_labels], got {type(v).__name__} "
                             f"of length {len(v) if hasattr(v, '__len__') else '?'}")
        ann[key] = v
    return ann, ann_path


def read_finediving(ann_dir: str | Path, *, include_unsplit: bool = False) -> list[LabelRow]:
    """FineDiving: 2251 train / 749 test dives; ``video_id`` = ``f"{event}_{clip}"``.

    Sub-scores: ``dive_code``/``dive_position`` (the dive number, see :func:`dive_number`),
    ``n_frames`` (length of the per-frame labels) and ``step_end_1``.. (the 2-4 step boundaries).
    """
    ann, ann_path = _finediving_ann(ann_dir)
    paths = {s: _file(ann_dir, f"{s}_split.pkl", "finediving") for s in ("train", "test")}
    splits = {s: (_load_split(p, _str_int_key), p) for s, p in paths.items()}
    split_of = _assign_splits("finediving", splits, ann, ann_path, include_unsplit)
    rows = []
    for key, v in ann.items():
        if key not in split_of:
            continue
        code, pos = _parse_dive_number(v[0], key, ann_path)
        if not isinstance(v[4], (list, tuple, np.ndarray)):
            raise ValueError(f"{ann_path}: {_r(key)} frame labels are a {type(v[4]).__name__}, "
                             f"expected a sequence (one step label per frame)")
        subs = {"dive_code": code, "dive_position": pos, "n_frames": float(len(v[4]))}
        for i, s in enumerate(np.asarray(v[3]).ravel(), 1):
            subs[f"step_end_{i}"] = _number(s, f"step end {i}", key, ann_path)
        rows.append(LabelRow(video_id=f"{key[0]}_{key[1]}",
                             score=_number(v[1], "final_score", key, ann_path), action="diving",
                             difficulty=_number(v[2], "difficulty", key, ann_path),
                             split=split_of[key], sub_scores=subs))
    return rows


def read_finediving_frame_labels(ann_dir: str | Path) -> dict[str, np.ndarray]:
    """FineDiving's per-frame sub-action labels, keyed by the same ``video_id`` as :func:`read_finediving`."""
    ann, ann_path = _finediving_ann(ann_dir)
    return {f"{e}_{c}": np.asarray(v[4], dtype=np.int64) for (e, c), v in ann.items()}


# ----------------------------------------------------------------------------------- generic folder

class VideoItem(NamedTuple):
    """A labelled video file found by :func:`read_folder`."""
    path: Path
    row: LabelRow


def read_folder(video_dir: str | Path, labels_csv: str | Path, *, strict: bool = True,
                extensions: Sequence[str] = VIDEO_EXTENSIONS) -> list[VideoItem]:
    """Match a labels CSV (:func:`aqa.data.labels.read_labels_csv`) to the videos in ``video_dir``.

    A video's id is its file stem; only files directly in ``video_dir`` with a suffix in
    ``extensions`` count. Labelled ids without a video and videos without a label are a ValueError
    listing them (``strict=True``) or a warning, after which they are dropped (``strict=False``).
    Two files with the same stem are always an error. Items follow the CSV's row order.
    """
    video_dir = Path(video_dir)
    if not video_dir.is_dir():
        raise FileNotFoundError(f"video folder not found: {video_dir}")
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    files: dict[str, Path] = {}
    clashes: dict[str, list[str]] = {}
    for p in sorted(video_dir.iterdir()):
        if p.is_file() and p.suffix.lower() in exts:
            if p.stem in files:
                clashes.setdefault(p.stem, [files[p.stem].name]).append(p.name)
            files[p.stem] = p
    if clashes:
        raise ValueError(f"{video_dir}: several videos share a stem (video id): "
                         + "; ".join(f"{s}: {', '.join(n)}" for s, n in sorted(clashes.items())))
    rows = read_labels_csv(labels_csv)
    labelled = {r.video_id for r in rows}
    missing = [r.video_id for r in rows if r.video_id not in files]
    unlabelled = sorted(set(files) - labelled)
    if missing or unlabelled:
        parts = []
        if missing:
            parts.append(f"{len(missing)} labelled video(s) of {labels_csv} not found in {video_dir} "
                         f"(extensions {sorted(exts)}): {_show(missing)}")
        if unlabelled:
            parts.append(f"{len(unlabelled)} video(s) in {video_dir} have no label in {labels_csv}: "
                         f"{_show(unlabelled)}")
        msg = "; ".join(parts)
        if strict:
            raise ValueError(msg + " (pass strict=False to drop them with a warning)")
        warnings.warn(msg + "; dropping them", stacklevel=2)
    return [VideoItem(files[r.video_id], r) for r in rows if r.video_id in files]


# ------------------------------------------------------------------------------ registry and naming

DATASETS: dict[str, Callable[..., list[LabelRow]]] = {
    "aqa7": read_aqa7,
    "mtl_aqa": read_mtl_aqa,
    "unlv_dive": read_unlv_dive,
    "jigsaws": read_jigsaws,
    "finediving": read_finediving,
}


def read_dataset(name: str, ann_dir: str | Path, **kw) -> list[LabelRow]:
    """Read benchmark ``name`` (a key of :data:`DATASETS`) from its annotation folder ``ann_dir``."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {_r(name)}; known: {', '.join(sorted(DATASETS))} "
                         f"(for your own videos use read_folder(video_dir, labels_csv))")
    ann_dir = Path(ann_dir)
    if not ann_dir.is_dir():
        raise FileNotFoundError(f"{name}: annotation folder {ann_dir} does not exist; it should hold "
                                f"{', '.join(EXPECTED_FILES[name])} from {_SOURCES[name]}")
    return DATASETS[name](ann_dir, **kw)


def video_relpath(name: str, video_id: str | LabelRow) -> str:
    """Where a benchmark's release keeps the video (or frame folder) of ``video_id``.

    - ``aqa7``: ``<action>/<sample:03d>.avi`` (action folder names as in :data:`AQA7_ACTIONS`; the
      authors' loader reads frames from ``<action dir>/frames/<sample:03d>/``).
    - ``mtl_aqa``, ``unlv_dive``: ``<video:02d>_<clip:02d>``, the frame folder of the dive cut from
      full video ``<video:02d>`` up to its ``end_frame`` (MUSDL's layout; ``python -m aqa.pipelines
      cut`` makes it from the release's full videos, see :mod:`aqa.pipelines.cut`).
    - ``jigsaws``: ``<task>/video/<trial>_capture1.avi`` (the left camera; the right camera's id
      ``<trial>_capture2`` is ``<task>/video/<trial>_capture2.avi``).
    - ``finediving``: ``<event>/<clip>``, the frame folder (FINADiving_MTL_256s layout).
    """
    vid = video_id.video_id if isinstance(video_id, LabelRow) else str(video_id)
    if name == "aqa7":
        m = re.fullmatch(r"0?([1-6])_(\d+)", vid)
        if not m:
            raise ValueError(f"aqa7 video_id {_r(vid)} is not '<class 01..06>_<sample>'")
        return f"{AQA7_ACTIONS[int(m.group(1))]}/{int(m.group(2)):03d}.avi"
    if name in ("mtl_aqa", "unlv_dive"):
        if not re.fullmatch(r"\d+_\d+", vid):
            raise ValueError(f"{name} video_id {_r(vid)} is not '<video>_<clip>'")
        v, c = vid.split("_")
        return f"{int(v):02d}_{int(c):02d}"
    if name == "jigsaws":
        trial, capture = _jigsaws_trial(vid)
        return f"{_jigsaws_task(trial, Path('video_id'))}/video/{trial}_{capture}.avi"
    if name == "finediving":
        event, sep, clip = vid.rpartition("_")
        if not sep or not event or not clip.isdigit():
            raise ValueError(f"finediving video_id {_r(vid)} is not '<event>_<clip>'")
        return f"{event}/{int(clip)}"
    raise ValueError(f"unknown dataset {_r(name)}; known: {', '.join(sorted(DATASETS))}")


def diving_final_score(judge_scores: np.ndarray, difficulty: np.ndarray | float) -> np.ndarray:
    """FINA individual-diving score with 7 judges: difficulty x sum of the middle 3 scores
    (the 2 highest and 2 lowest are dropped). ``judge_scores`` has shape (..., 7)."""
    js = np.asarray(judge_scores, dtype=float)
    if js.shape[-1] != 7:
        raise ValueError(f"need 7 judge scores on the last axis, got shape {js.shape}")
    return np.asarray(difficulty, dtype=float) * np.sort(js, axis=-1)[..., 2:5].sum(axis=-1)
