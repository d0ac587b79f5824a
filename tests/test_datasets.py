"""Dataset readers: parsing and validation on tiny synthetic files, and the facts of the real files."""
import math
import pickle
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from aqa.data.datasets import (AQA7_ACTIONS, DATASETS, ERRATA, JIGSAWS_GRS_ITEMS, VideoItem,
                               dive_number, diving_final_score, read_aqa7, read_dataset,
                               read_finediving, read_finediving_frame_labels, read_folder,
                               read_jigsaws, read_mtl_aqa, read_unlv_dive, video_relpath)
from aqa.data.labels import LabelRow, read_labels_csv, to_arrays, write_labels_csv

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
needs_real = pytest.mark.skipif(not SHARED.is_dir(), reason=f"real annotation files not found: {SHARED}")


def _dump(path, obj):
    path.write_bytes(pickle.dumps(obj, protocol=3))


def _by_id(rows):
    return {r.video_id: r for r in rows}


# ------------------------------------------------------------------------------ synthetic: AQA-7

def _aqa7(tmp_path, train, test):
    savemat(tmp_path / "consolidated_train_list.mat", {"consolidated_train_list": np.array(train, float)})
    savemat(tmp_path / "consolidated_test_list.mat", {"consolidated_test_list": np.array(test, float)})
    return tmp_path


def test_aqa7_synthetic(tmp_path):
    d = _aqa7(tmp_path, [[1, 54, 8415.0], [2, 7, 1667.0000000000002]], [[6, 90, 9936.0]])
    rows = read_aqa7(d)
    assert [(r.video_id, r.score, r.action, r.split) for r in rows] == [
        ("01_054", 84.15, "diving", "train"), ("02_007", 16.67, "gym_vault", "train"),
        ("06_090", 99.36, "sync_diving_10m", "test")]
    assert all(math.isnan(r.difficulty) and r.sub_scores == {} for r in rows)


@pytest.mark.parametrize("train,test,msg", [
    ([[1, 5, 100.0]], [[1, 5, 200.0]], r"01_005.*already listed in split 'train'"),
    ([[7, 5, 100.0]], [[1, 6, 200.0]], r"action class 7\.0"),
    ([[1, 5, np.nan]], [[1, 6, 200.0]], r"score of '01_005' is nan"),
    ([[1, 2.5, 100.0]], [[1, 6, 200.0]], r"sample number 2\.5"),
])
def test_aqa7_bad_rows(tmp_path, train, test, msg):
    with pytest.raises(ValueError, match=msg):
        read_aqa7(_aqa7(tmp_path, train, test))


def test_aqa7_wrong_shape_and_missing_file(tmp_path):
    savemat(tmp_path / "consolidated_train_list.mat", {"consolidated_train_list": np.ones((2, 4))})
    with pytest.raises(FileNotFoundError, match="consolidated_test_list.mat.*C3D-LSTM"):
        read_aqa7(tmp_path)
    savemat(tmp_path / "consolidated_test_list.mat", {"consolidated_test_list": np.ones((1, 3))})
    with pytest.raises(ValueError, match=r"shape \(2, 4\)"):
        read_aqa7(tmp_path)
    savemat(tmp_path / "consolidated_train_list.mat", {"consolidated_train_list": np.zeros((0, 3))})
    with pytest.raises(ValueError, match=r"consolidated_train_list.mat: .*expected \(n >= 1, 3\)"):
        read_aqa7(tmp_path)
    for junk in (b"", b"MATLAB 5.0 MAT-file truncated", bytes(range(256)) * 4):
        (tmp_path / "consolidated_train_list.mat").write_bytes(junk)
        with pytest.raises(ValueError, match=r"consolidated_train_list.mat: not a readable MATLAB"):
            read_aqa7(tmp_path)


# ----------------------------------------------------------------------------- synthetic: MTL-AQA

def _dive(score, diff, judges=None, **kw):
    d = {"primary_view": 0, "start_frame": 10, "end_frame": 90, "position": 2, "difficulty": diff,
         "armstand": 0, "rotation_type": 1, "ss_no": 5, "tw_no": 0, "final_score": score}
    d.update(kw)
    if judges is not None:
        d["judge_scores"] = np.array(judges, dtype=float)
    return d


def _mtl(tmp_path, ann, train, test, aug=True):
    _dump(tmp_path / ("augmented_final_annotations_dict.pkl" if aug else "final_annotations_dict.pkl"), ann)
    _dump(tmp_path / "train_split_0.pkl", train)
    _dump(tmp_path / "test_split_0.pkl", test)
    return tmp_path


def _mtl_ann():
    return {(1, 1): _dive(88.0, 3.2, [9.5, 9, 9.5, 9, 8.5, 9.5, 8.5]),
            (4, 49): _dive(39.6, 3.3, [2.5, 4, 4, 45, 3.5, 5, 4]),
            (12, 3): _dive(0.0, 2.0, [0, 0, 0, 0, 0, 0, 0], tw_no=3)}


def test_mtl_aqa_synthetic(tmp_path):
    d = _mtl(tmp_path, _mtl_ann(), [(1, 1), (12, 3)], [(4, 49)])
    rows = _by_id(read_mtl_aqa(d))
    assert set(rows) == {"01_01", "04_49", "12_03"}
    r = rows["01_01"]
    assert (r.score, r.difficulty, r.action, r.split) == (88.0, 3.2, "diving", "train")
    assert [r.sub_scores[f"judge_{j}"] for j in range(1, 8)] == [9.5, 9, 9.5, 9, 8.5, 9.5, 8.5]
    assert r.sub_scores["position"] == 2 and r.sub_scores["start_frame"] == 10
    assert rows["12_03"].sub_scores["tw_no"] == 3 and rows["04_49"].split == "test"
    # The erratum fixes exactly the listed judge; the published value stays available.
    assert rows["04_49"].sub_scores["judge_4"] == 4.5
    raw = _by_id(read_mtl_aqa(d, errata=False))
    assert raw["04_49"].sub_scores["judge_4"] == 45.0
    js = np.array([rows["04_49"].sub_scores[f"judge_{j}"] for j in range(1, 8)])
    assert diving_final_score(js, 3.3) == pytest.approx(39.6)


def test_mtl_aqa_not_augmented_has_no_judges(tmp_path):
    ann = {k: {f: v for f, v in d.items() if f != "judge_scores"} for k, d in _mtl_ann().items()}
    d = _mtl(tmp_path, ann, [(1, 1)], [(4, 49), (12, 3)], aug=False)
    rows = read_mtl_aqa(d, augmented=False)
    assert len(rows) == 3 and not any(k.startswith("judge") for r in rows for k in r.sub_scores)
    with pytest.raises(FileNotFoundError, match="augmented_final_annotations_dict.pkl"):
        read_mtl_aqa(d)


@pytest.mark.parametrize("mutate,msg", [
    (lambda a, tr, te: tr.append((9, 9)), r"1 key\(s\) of split 'train'.*no annotation.*\(9, 9\)"),
    (lambda a, tr, te: te.append((1, 1)), r"in both 'train' and 'test'.*\(1, 1\)"),
    (lambda a, tr, te: tr.append((1, 1)), r"more than once: \(1, 1\)"),
    (lambda a, tr, te: a[(1, 1)].update(final_score=float("nan")), r"final_score of \(1, 1\) is nan"),
    (lambda a, tr, te: a[(1, 1)].pop("difficulty"), r"\(1, 1\) lacks field\(s\) \['difficulty'\]"),
    (lambda a, tr, te: a[(1, 1)].update(position="pike"), r"position of \(1, 1\) is not a number"),
    (lambda a, tr, te: a[(1, 1)].update(judge_scores=np.ones(5)), r"\(1, 1\) has 5 values"),
    # a list holding itself (found by the fuzz suite): numpy's conversion of it never ended
    (lambda a, tr, te: a[(1, 1)].update(judge_scores=(lambda x: x.append(x) or x)([1.0])),
     r"judge_scores of \(1, 1\) is not a list of numbers"),
])
def test_mtl_aqa_errors_name_the_keys(tmp_path, mutate, msg):
    ann, train, test = _mtl_ann(), [(1, 1), (12, 3)], [(4, 49)]
    mutate(ann, train, test)
    with pytest.raises(ValueError, match=msg):
        read_mtl_aqa(_mtl(tmp_path, ann, train, test))


def test_unsplit_annotations_dropped_or_kept(tmp_path):
    d = _mtl(tmp_path, _mtl_ann(), [(1, 1)], [(4, 49)])
    with pytest.warns(UserWarning, match=r"leaving out 1 annotated key\(s\).*\(12, 3\)"):
        assert {r.video_id for r in read_mtl_aqa(d)} == {"01_01", "04_49"}
    kept = _by_id(read_mtl_aqa(d, include_unsplit=True))
    assert kept["12_03"].split == ""
    _dump(d / "test_split_0.pkl", [])
    with pytest.raises(ValueError, match=r"test_split_0.pkl: the split lists no keys"):
        read_mtl_aqa(d)


# --------------------------------------------------------------------------- synthetic: UNLV-Dive

def test_unlv_dive_uint8_keys_and_known_missing(tmp_path):
    ann = {(1, 63): _dive(59.2, 3.2), (1, 65): _dive(66.0, 3.0), (3, 73): _dive(50.0, 2.0)}
    u8 = np.uint8
    _dump(tmp_path / "final_annotations_dict.pkl", ann)
    _dump(tmp_path / "train_split_370_4.pkl", [(u8(1), u8(63)), (u8(1), u8(64))])
    _dump(tmp_path / "test_split_370_4.pkl", [(u8(1), u8(65))])
    with pytest.warns(UserWarning, match=r"dropping 1 key\(s\) of split 'train'.*\(1, 64\)"):
        rows = read_unlv_dive(tmp_path)
    assert [(r.video_id, r.split, r.score) for r in rows] == [("01_63", "train", 59.2), ("01_65", "test", 66.0)]
    with pytest.warns(UserWarning):
        assert _by_id(read_unlv_dive(tmp_path, include_unsplit=True))["03_73"].split == ""
    # Any other missing key is an error, not a warning.
    _dump(tmp_path / "test_split_370_4.pkl", [(u8(1), u8(65)), (u8(2), u8(2))])
    with pytest.raises(ValueError, match=r"split 'test'.*\(2, 2\)"), pytest.warns(UserWarning):
        read_unlv_dive(tmp_path)


# ----------------------------------------------------------------------------- synthetic: JIGSAWS

def _jig(tmp_path, labels, splits):
    _dump(tmp_path / "label.pkl", labels)
    _dump(tmp_path / "splits.pkl", splits)
    return tmp_path


def _jig_data():
    labels = {"Suturing_B001": [1, 2, 3, 4, 5, 5], "Suturing_C002": [1, 1, 1, 1, 1, 1],
              "Knot_Tying_D003": [2, 2, 2, 2, 2, 2], "Needle_Passing_E004": [5, 5, 5, 5, 5, 5]}
    splits = {"Suturing": [["Suturing_B001"], [], ["Suturing_C002"], []],
              "Knot_Tying": [[], ["Knot_Tying_D003"], [], []],
              "Needle_Passing": [[], [], [], ["Needle_Passing_E004"]]}
    return labels, splits


def test_jigsaws_synthetic(tmp_path):
    rows = _by_id(read_jigsaws(_jig(tmp_path, *_jig_data())))
    r = rows["Suturing_B001"]
    assert (r.score, r.action, r.split) == (20.0, "Suturing", "fold0")
    assert list(r.sub_scores) == list(JIGSAWS_GRS_ITEMS) and list(r.sub_scores.values()) == [1, 2, 3, 4, 5, 5]
    assert [(v, rows[v].action, rows[v].split, rows[v].score) for v in sorted(rows)] == [
        ("Knot_Tying_D003", "Knot_Tying", "fold1", 12.0), ("Needle_Passing_E004", "Needle_Passing", "fold3", 30.0),
        ("Suturing_B001", "Suturing", "fold0", 20.0), ("Suturing_C002", "Suturing", "fold2", 6.0)]


def test_jigsaws_cameras(tmp_path):
    ann = _jig(tmp_path, *_jig_data())
    left = read_jigsaws(ann)
    both = read_jigsaws(ann, cameras="both")
    right = _by_id(read_jigsaws(ann, cameras="right"))
    assert len(both) == 2 * len(left) == 8
    assert sorted(right) == sorted(f"{r.video_id}_capture2" for r in left)
    for r in left:        # the right camera's recording: the same trial, score, task and fold
        o = right[f"{r.video_id}_capture2"]
        assert (o.score, o.action, o.split, o.sub_scores) == (r.score, r.action, r.split, r.sub_scores)
    assert {r.video_id for r in both} == {r.video_id for r in left} | set(right)
    assert read_dataset("jigsaws", ann, cameras=["right", "left"])[0].video_id == "Knot_Tying_D003_capture2"
    with pytest.raises(ValueError, match="jigsaws cameras 'top': choose left, right or both"):
        read_jigsaws(ann, cameras="top")


@pytest.mark.parametrize("mutate,msg", [
    (lambda l, s: s["Suturing"][3].append("Suturing_B001"), r"'Suturing_B001' is in fold0 and fold3"),
    (lambda l, s: l.pop("Suturing_C002"), r"have no label.*Suturing_C002"),
    (lambda l, s: l.update(Suturing_Z009=[1] * 6), r"in no fold.*Suturing_Z009"),
    (lambda l, s: s["Knot_Tying"][0].append("Suturing_C002"), r"fold 0 of 'Knot_Tying' holds 'Suturing_C002'"),
    (lambda l, s: s["Knot_Tying"].pop(), r"'Knot_Tying' should have 4 folds"),
    (lambda l, s: l.update(Suturing_B001=[1, 2, 3]), r"'Suturing_B001' has GRS items \[1, 2, 3\], expected"),
    (lambda l, s: l.update(Suturing_B001=7), r"'Suturing_B001' has GRS items 7, expected a list of 6"),
    (lambda l, s: s.update(Cutting=[[], [], [], []]), r"unknown task 'Cutting'"),
])
def test_jigsaws_errors(tmp_path, mutate, msg):
    labels, splits = _jig_data()
    mutate(labels, splits)
    with pytest.raises(ValueError, match=msg):
        read_jigsaws(_jig(tmp_path, labels, splits))


# -------------------------------------------------------------------------- synthetic: FineDiving

def test_finediving_synthetic(tmp_path):
    ann = {("01", 1): ["407c", 88.0, 3.2, np.array([2, 34]), np.array([4, 4, 4, 25, 36])],
           ("Tokyo_r1", 12): ["5253b", 70.5, 3.0, np.array([1, 2, 3]), np.array([1, 2, 3, 4])]}
    _dump(tmp_path / "fine-grained_annotation_aqa.pkl", ann)
    _dump(tmp_path / "train_split.pkl", [("Tokyo_r1", 12)])
    _dump(tmp_path / "test_split.pkl", [("01", 1)])
    rows = _by_id(read_finediving(tmp_path))
    a, b = rows["01_1"], rows["Tokyo_r1_12"]
    assert (a.score, a.difficulty, a.split, b.split) == (88.0, 3.2, "test", "train")
    assert a.sub_scores == {"dive_code": 407, "dive_position": 3, "n_frames": 5, "step_end_1": 2,
                            "step_end_2": 34}
    assert dive_number(b.sub_scores["dive_code"], b.sub_scores["dive_position"]) == "5253b"
    assert b.sub_scores["step_end_3"] == 3
    fl = read_finediving_frame_labels(tmp_path)
    np.testing.assert_array_equal(fl["01_1"], [4, 4, 4, 25, 36])
    assert video_relpath("finediving", b) == "Tokyo_r1/12"
    ann[("01", 1)][0] = "forward"
    _dump(tmp_path / "fine-grained_annotation_aqa.pkl", ann)
    with pytest.raises(ValueError, match=r"dive number of \('01', 1\) is 'forward'"):
        read_finediving(tmp_path)
    ann[("01", 1)][0], ann[("01", 1)][4] = "407c", 5
    _dump(tmp_path / "fine-grained_annotation_aqa.pkl", ann)
    with pytest.raises(ValueError, match=r"\('01', 1\) frame labels are a int, expected a sequence"):
        read_finediving(tmp_path)


def test_dive_number_bad():
    with pytest.raises(ValueError, match="positions are 1..4"):
        dive_number(407, 5)


# ------------------------------------------------------------------------------- generic folder

def _folder(tmp_path, names, labels):
    vd = tmp_path / "videos"
    vd.mkdir()
    for n in names:
        (vd / n).write_bytes(b"")
    csv = write_labels_csv([LabelRow(v, s, split="train") for v, s in labels], tmp_path / "labels.csv")
    return vd, csv


def test_read_folder_matches_by_stem(tmp_path):
    vd, csv = _folder(tmp_path, ["b.MP4", "a.avi", "notes.txt"], [("a", 1.0), ("b", 2.5)])
    items = read_folder(vd, csv)
    assert [(i.path.name, i.row.video_id, i.row.score) for i in items] == [("a.avi", "a", 1.0), ("b.MP4", "b", 2.5)]
    assert all(isinstance(i, VideoItem) for i in items)


def test_read_folder_missing_and_unlabelled(tmp_path):
    vd, csv = _folder(tmp_path, ["a.mp4", "extra.mp4"], [("a", 1.0), ("gone", 2.0)])
    with pytest.raises(ValueError, match=r"1 labelled video\(s\).*'gone'.*1 video\(s\).*no label.*'extra'.*strict=False"):
        read_folder(vd, csv)
    with pytest.warns(UserWarning, match="'gone'.*'extra'.*dropping"):
        items = read_folder(vd, csv, strict=False)
    assert [i.row.video_id for i in items] == ["a"]


def test_read_folder_stem_clash_and_no_dir(tmp_path):
    vd, csv = _folder(tmp_path, ["a.mp4", "a.avi"], [("a", 1.0)])
    with pytest.raises(ValueError, match="share a stem.*a: a.avi, a.mp4"):
        read_folder(vd, csv, strict=False)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_folder(tmp_path / "nowhere", csv)


# ------------------------------------------------------------------------ registry and helpers

def test_read_dataset_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'ucf'.*aqa7.*finediving"):
        read_dataset("ucf", tmp_path)
    with pytest.raises(FileNotFoundError, match="jigsaws: annotation folder .*nope.*label.pkl, splits.pkl"):
        read_dataset("jigsaws", tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"expected annotation file 'label.pkl' in .*MUSDL"):
        read_dataset("jigsaws", tmp_path)
    assert set(DATASETS) == {"aqa7", "mtl_aqa", "unlv_dive", "jigsaws", "finediving"}


def test_video_relpath():
    assert video_relpath("aqa7", "01_054") == "diving/054.avi"
    assert video_relpath("aqa7", LabelRow("04_120", 1.0)) == "snowboard_big_air/120.avi"
    assert video_relpath("mtl_aqa", "01_07") == "01_07"
    assert video_relpath("jigsaws", "Knot_Tying_B001") == "Knot_Tying/video/Knot_Tying_B001_capture1.avi"
    assert video_relpath("jigsaws", "Knot_Tying_B001_capture2") == \
        "Knot_Tying/video/Knot_Tying_B001_capture2.avi"
    assert video_relpath("finediving", "FINADivingWorldCup2021_Men3m_final_r1_8") == "FINADivingWorldCup2021_Men3m_final_r1/8"
    for name, bad in [("aqa7", "07_001"), ("mtl_aqa", "x_1"), ("jigsaws", "Cutting_B001"), ("finediving", "noclip")]:
        with pytest.raises(ValueError):
            video_relpath(name, bad)
    with pytest.raises(ValueError, match="unknown dataset"):
        video_relpath("ucf", "x")


def test_diving_final_score_reference():
    rng = np.random.default_rng(0)
    js = rng.integers(0, 21, size=(50, 7)) / 2
    dd = rng.uniform(1.2, 4.1, size=50)
    ref = np.array([d * sum(sorted(j)[2:5]) for j, d in zip(js, dd)])
    np.testing.assert_allclose(diving_final_score(js, dd), ref)
    with pytest.raises(ValueError, match="7 judge scores"):
        diving_final_score(np.ones((2, 5)), 1.0)


# ------------------------------------------------------------------------------------ real files

def _split_counts(rows):
    return Counter(r.split for r in rows)


@needs_real
def test_real_mtl_aqa():
    rows = read_mtl_aqa(SHARED / "mtl_aqa")
    assert _split_counts(rows) == {"train": 1059, "test": 353}
    a = to_arrays(rows)
    assert a["score"].min() == 0.0 and a["score"].max() == 104.5
    assert a["difficulty"].min() == 1.5 and a["difficulty"].max() == 4.1
    js = np.stack([a[f"judge_{j}"] for j in range(1, 8)], axis=1)
    assert js.min() == 0.0 and js.max() == 10.0 and np.all(js * 2 == np.round(js * 2))
    match = np.abs(diving_final_score(js, a["difficulty"]) - a["score"]) < 0.005
    assert match.sum() == 1382  # of 1412 (97.9%); the rest are penalties or annotation slips
    assert set(np.unique(a["primary_view"])) == {0.0}
    # The raw file, without errata, has the 45.0 typo, and the non-augmented file agrees field by field.
    raw = _by_id(read_mtl_aqa(SHARED / "mtl_aqa", errata=False))
    assert raw["04_49"].sub_scores["judge_4"] == ERRATA[("mtl_aqa", (4, 49), "judge_scores", 3)][0]
    plain = _by_id(read_mtl_aqa(SHARED / "mtl_aqa", augmented=False))
    for r in rows:
        p = plain[r.video_id]
        assert (p.score, p.difficulty, p.split) == (r.score, r.difficulty, r.split)
        assert all(r.sub_scores[k] == v for k, v in p.sub_scores.items())


@needs_real
def test_real_unlv_dive():
    with pytest.warns(UserWarning) as said:
        rows = read_unlv_dive(SHARED / "unlv_dive")
    said = " | ".join(str(w.message) for w in said)
    assert "(1, 64)" in said and "leaving out 3 annotated key(s)" in said and "(3, 73)" in said
    assert _split_counts(rows) == {"train": 299, "test": 70}
    with pytest.warns(UserWarning):
        allrows = read_unlv_dive(SHARED / "unlv_dive", include_unsplit=True)
    assert sorted(r.video_id for r in allrows if r.split == "") == ["01_191", "01_192", "03_73"]
    # Same dives, same labels as MTL-AQA.
    mtl = _by_id(read_mtl_aqa(SHARED / "mtl_aqa", augmented=False))
    for r in rows:
        assert (r.score, r.difficulty) == (mtl[r.video_id].score, mtl[r.video_id].difficulty)


@needs_real
def test_real_aqa7():
    rows = read_aqa7(SHARED / "aqa7")
    assert _split_counts(rows) == {"train": 803, "test": 303}
    per = {act: (sum(r.action == act and r.split == "train" for r in rows),
                 sum(r.action == act and r.split == "test" for r in rows)) for act in AQA7_ACTIONS.values()}
    assert per == {"diving": (300, 70), "gym_vault": (120, 56), "ski_big_air": (120, 55),
                   "snowboard_big_air": (140, 66), "sync_diving_3m": (60, 28), "sync_diving_10m": (63, 28)}
    a = to_arrays(rows)
    ranges = {act: (a["score"][a["action"] == act].min(), a["score"][a["action"] == act].max())
              for act in AQA7_ACTIONS.values()}
    assert ranges == {"diving": (21.6, 102.6), "gym_vault": (12.3, 16.87), "ski_big_air": (8.0, 50.0),
                      "snowboard_big_air": (8.0, 50.0), "sync_diving_3m": (46.2, 104.88),
                      "sync_diving_10m": (49.8, 99.36)}
    assert np.all(np.round(a["score"], 3) == a["score"])


@needs_real
def test_real_jigsaws():
    rows = read_jigsaws(SHARED / "jigsaws")
    assert len(rows) == 103 and len({r.video_id for r in rows}) == 103
    both = read_jigsaws(SHARED / "jigsaws", cameras="both")
    assert len({r.video_id for r in both}) == 206        # "There are 206 videos" (AIM Sec. 5.1)
    assert Counter(r.action for r in rows) == {"Suturing": 39, "Knot_Tying": 36, "Needle_Passing": 28}
    folds = Counter((r.action, r.split) for r in rows)
    assert set(folds) == {(t, f"fold{i}") for t in ("Suturing", "Knot_Tying", "Needle_Passing") for i in range(4)}
    assert [folds[("Suturing", f"fold{i}")] for i in range(4)] == [9, 10, 10, 10]
    a = to_arrays(rows)
    assert a["score"].min() == 6 and a["score"].max() == 30
    items = np.stack([a[k] for k in JIGSAWS_GRS_ITEMS], axis=1)
    assert items.min() == 1 and items.max() == 5
    np.testing.assert_array_equal(items.sum(1), a["score"])


@needs_real
def test_real_finediving():
    rows = read_finediving(SHARED / "finediving")
    assert _split_counts(rows) == {"train": 2251, "test": 749}
    a = to_arrays(rows)
    assert a["score"].min() == 0.0 and a["score"].max() == 114.8
    assert a["difficulty"].min() == 1.5 and a["difficulty"].max() == 4.1
    assert len({dive_number(c, p) for c, p in zip(a["dive_code"], a["dive_position"])}) == 52
    assert a["n_frames"].min() == 63 and a["n_frames"].max() == 273
    # FineDiving events 01..26 are MTL-AQA's videos: shared dives carry the same labels.
    mtl = _by_id(read_mtl_aqa(SHARED / "mtl_aqa", augmented=False))
    r = _by_id(rows)["01_1"]
    assert (r.score, r.difficulty) == (mtl["01_01"].score, mtl["01_01"].difficulty)


@needs_real
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_real_roundtrip_through_labels_csv(tmp_path, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = read_dataset(name, SHARED / name)
    back = read_labels_csv(write_labels_csv(rows, tmp_path / f"{name}.csv"))
    a, b = to_arrays(rows), to_arrays(back)
    assert a.keys() == b.keys()
    for k in a:
        if a[k].dtype.kind == "f":
            np.testing.assert_array_equal(a[k], b[k])  # NaN == NaN here; floats exact via repr
        else:
            assert list(a[k]) == list(b[k])

