"""Synthetic benchmarks in the real release layouts: annotation files in each benchmark's own
format and synthetic videos placed where the release keeps them (not a test module)."""
from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np

from aqa.data.datasets import video_relpath
from aqa.data.labels import LabelRow


def _dump(path: Path, obj) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=3))


def _place(src_mp4: Path, dest: Path) -> None:
    """Put a rendered video at ``dest``: a file (any video extension) or a folder of JPEG frames,
    with its pose sidecar beside it as ``<dest stem>.pose.json``."""
    import cv2

    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.suffix:
        shutil.copy(src_mp4, dest)  # PyAV reads the container from its bytes, not its name
        base = dest.with_suffix("")
    else:
        dest.mkdir(exist_ok=True)
        cap = cv2.VideoCapture(str(src_mp4))
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            cv2.imwrite(str(dest / f"{i:05d}.jpg"), frame)
            i += 1
        base = dest
    shutil.copy(src_mp4.with_suffix(".pose.json"), base.parent / f"{base.name}.pose.json")


def _grs(score: float) -> list[int]:
    """Six GRS items in 1..5 summing to round(score) (score in 6..30)."""
    total = int(np.clip(round(score), 6, 30))
    items = [1] * 6
    for k in range(total - 6):
        items[k % 6] += 1
    return items


def make_benchmark(name: str, synth: list[LabelRow], synth_dir: Path, root: Path) -> tuple[Path, Path]:
    """Write ``name``'s annotation files for the synthetic videos and lay the videos out.

    Returns (video_dir, annotation_dir). Synthetic scores are mapped into the benchmark's range.
    """
    ann, vids = root / "annotations", root / "videos"
    ann.mkdir(parents=True)
    n = len(synth)
    rows: list[LabelRow] = []
    if name == "aqa7":
        from scipy.io import savemat

        table = {"train": [], "test": []}
        for i, r in enumerate(synth):
            cls = 1 if i < n // 2 else 5            # single diving and sync 3m springboard
            split = "test" if i % 3 == 0 else "train"
            table[split].append([cls, i + 1, round(r.score * 100, 2)])
            rows.append(LabelRow(f"{cls:02d}_{i + 1:03d}", r.score, split=split))
        for s in ("train", "test"):
            savemat(ann / f"consolidated_{s}_list.mat",
                    {f"consolidated_{s}_list": np.array(table[s], float)})
    elif name in ("mtl_aqa", "unlv_dive"):
        d, splits = {}, {"train": [], "test": []}
        for i, r in enumerate(synth):
            key = (1, i + 1)
            judges = np.array([r.sub_scores[f"judge_{j}"] for j in range(1, 8)], float)
            d[key] = {"primary_view": 0, "start_frame": 0, "end_frame": 31, "position": 2,
                      "difficulty": r.difficulty, "armstand": 0, "rotation_type": 1, "ss_no": 5,
                      "tw_no": 0, "final_score": r.score, "judge_scores": judges}
            split = "test" if i % 3 == 0 else "train"
            splits[split].append(key if name == "mtl_aqa" else np.array(key, np.uint8))
            rows.append(LabelRow(f"01_{i + 1:02d}", r.score, split=split))
        if name == "mtl_aqa":
            _dump(ann / "augmented_final_annotations_dict.pkl", d)
            _dump(ann / "train_split_0.pkl", splits["train"])
            _dump(ann / "test_split_0.pkl", splits["test"])
        else:
            _dump(ann / "final_annotations_dict.pkl",
                  {k: {f: v for f, v in x.items() if f != "judge_scores"} for k, x in d.items()})
            _dump(ann / "train_split_370_4.pkl", splits["train"])
            _dump(ann / "test_split_370_4.pkl", splits["test"])
    elif name == "jigsaws":
        lo, hi = min(r.score for r in synth), max(r.score for r in synth)
        labels, folds = {}, {"Suturing": [[], [], [], []], "Knot_Tying": [[], [], [], []],
                             "Needle_Passing": [[], [], [], []]}
        for i, r in enumerate(synth):
            trial = f"Suturing_B{i + 1:03d}"
            labels[trial] = _grs(6 + 24 * (r.score - lo) / (hi - lo))
            folds["Suturing"][i % 4].append(trial)
            rows.append(LabelRow(trial, float(sum(labels[trial]))))
        _dump(ann / "label.pkl", labels)
        _dump(ann / "splits.pkl", folds)
    elif name == "finediving":
        d, splits = {}, {"train": [], "test": []}
        for i, r in enumerate(synth):
            key = ("FINAWorldChampionships2019_Women10m_final_r1", i + 1)
            d[key] = ["407c", r.score, r.difficulty, np.array([10, 31]), np.zeros(32, np.int64)]
            split = "test" if i % 3 == 0 else "train"
            splits[split].append(key)
            rows.append(LabelRow(f"{key[0]}_{key[1]}", r.score, split=split))
        _dump(ann / "fine-grained_annotation_aqa.pkl", d)
        _dump(ann / "train_split.pkl", splits["train"])
        _dump(ann / "test_split.pkl", splits["test"])
    else:
        raise ValueError(name)
    for row, src in zip(rows, synth):
        _place(synth_dir / f"{src.video_id}.mp4", vids / video_relpath(name, row))
    return vids, ann


def place_on_real_labels(name: str, ann_dir: Path, synth: list[LabelRow], synth_dir: Path,
                         video_dir: Path, n: int = 12) -> list[LabelRow]:
    """Put ``n`` synthetic videos where the real release keeps the videos of real labelled keys of
    benchmark ``name`` (annotation files in ``ann_dir``, read by the project's reader), chosen so
    every per-action protocol has train and test rows: AQA-7 two classes x (4 train + 2 test),
    JIGSAWS three tasks x one trial per fold, the single-action benchmarks 8 train + 4 test.
    Returns the chosen label rows (real scores, real keys)."""
    import warnings

    from aqa.data.datasets import read_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # UNLV-Dive's known missing key is warned about
        rows = read_dataset(name, ann_dir)
    by = {}
    for r in rows:
        by.setdefault((r.action, r.split), []).append(r)
    if name == "aqa7":
        quota = {(a, s): k for a in ("diving", "gym_vault") for s, k in (("train", 4), ("test", 2))}
    elif name == "jigsaws":
        quota = {(t, f"fold{k}"): 1 for t in ("Suturing", "Knot_Tying", "Needle_Passing") for k in range(4)}
    else:
        quota = {("diving", "train"): 8, ("diving", "test"): 4}
    chosen = [r for key, k in quota.items() for r in sorted(by[key], key=lambda r: r.video_id)[:k]]
    assert len(chosen) == n, (name, len(chosen))
    for row, src in zip(chosen, synth):
        _place(synth_dir / f"{src.video_id}.mp4", video_dir / video_relpath(name, row))
    return chosen
