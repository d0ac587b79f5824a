"""aqa.extract.pose: FramePoses, person selection, the file backend's formats, the R-CNN backends'
construction and output conversion, and BlazePose on real photos/footage (when mediapipe is installed)."""
from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import pytest

from aqa.extract.pose import (BACKENDS, COCO_KEYPOINTS, FramePoses, PoseBackendUnavailable, PoseFileError,
                              get_pose_backend, select_persons)
from aqa.extract.pose.files import find_pose_file, load_pose_file

# ------------------------------------------------------------------------------------------------
# synthetic people: an upright stick figure inside its box
# ------------------------------------------------------------------------------------------------
# (x, y) of each COCO keypoint as fractions of the box width/height
_FIG = np.array([[.5, .06], [.45, .04], [.55, .04], [.4, .06], [.6, .06], [.3, .2], [.7, .2], [.25, .35],
                 [.75, .35], [.2, .5], [.8, .5], [.38, .52], [.62, .52], [.38, .75], [.62, .75], [.38, .98],
                 [.62, .98]])


def person(cx, cy, h, score=0.9, kp_score=0.9):
    w = 0.4 * h
    box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)
    kp = np.concatenate([box[:2] + _FIG * [w, h], np.full((17, 1), kp_score)], 1).astype(np.float32)
    return box, score, kp


def frame(*people, rng=None):
    people = list(people)
    if rng is not None:
        rng.shuffle(people)
    if not people:
        return FramePoses.empty()
    return FramePoses(np.stack([p[0] for p in people]), np.array([p[1] for p in people]),
                      np.stack([p[2] for p in people]))


def centers(track, p):
    b = track.boxes[:, p]
    return (b[:, 0] + b[:, 2]) / 2


# ------------------------------------------------------------------------------------------------
def test_framepose_validation_and_empty():
    e = FramePoses.empty()
    assert len(e) == 0 and e.keypoints.shape == (0, 17, 3) and e.boxes.dtype == np.float32
    with pytest.raises(ValueError, match="must agree"):
        FramePoses(np.zeros((2, 4)), np.zeros(1), np.zeros((2, 17, 3)))
    b, s, k = person(100, 100, 80)
    fp = FramePoses(b[None], [s], k[None]).scaled(0.5, 2.0)
    assert np.allclose(fp.boxes[0], b * [0.5, 2, 0.5, 2])
    assert np.allclose(fp.keypoints[0, :, 2], k[:, 2])
    assert len(COCO_KEYPOINTS) == 17 and set(BACKENDS) == {"keypoint-rcnn", "detectron2", "blazepose", "file"}


def test_selection_two_people_crossing_keep_identity():
    rng = np.random.default_rng(0)
    F = 25
    xa = np.linspace(60, 340, F)  # A (taller: primary) walks right
    xb = np.linspace(340, 60, F)  # B walks left; they cross in the middle
    per = [frame(person(xa[f], 150, 140, 0.95), person(xb[f], 155, 120, 0.9), rng=rng) for f in range(F)]
    tr = select_persons(per, n_persons=2)
    assert tr.keypoints.shape == (F, 2, 17, 3) and tr.boxes.shape == (F, 2, 4) and tr.box_scores.shape == (F, 2)
    assert tr.roles.tolist() == [0, 1]
    assert np.allclose(centers(tr, 0), xa, atol=1e-3)
    assert np.allclose(centers(tr, 1), xb, atol=1e-3)
    assert tr.found.all()


def test_selection_list_order_swaps_do_not_swap_identity():
    per = []
    for f in range(12):
        a, b = person(100, 150, 120, 0.9), person(300, 150, 110, 0.95)
        per.append(frame(a, b) if f % 2 else frame(b, a))
    tr = select_persons(per, n_persons=2)
    assert np.allclose(centers(tr, 0), 100) and np.allclose(centers(tr, 1), 300)  # role 0 = larger box
    tr_lr = select_persons(per, n_persons=2, roles="left-right")
    assert np.allclose(centers(tr_lr, 0), 100)
    per_rl = [frame(person(300, 150, 120, 0.9), person(100, 150, 110, 0.9)) for _ in range(5)]
    assert np.allclose(centers(select_persons(per_rl, 2, roles="left-right"), 0), 100)
    assert np.allclose(centers(select_persons(per_rl, 2, roles="area"), 0), 300)


def test_selection_missing_frames_are_nan_not_zero():
    per = [frame(person(100 + 3 * f, 150, 120)) if f not in (4, 5, 6) else frame() for f in range(10)]
    tr = select_persons(per, n_persons=1, n_frames=13)
    assert tr.keypoints.shape == (13, 1, 17, 3)
    missing = [4, 5, 6, 10, 11, 12]
    assert np.isnan(tr.keypoints[missing]).all() and np.isnan(tr.boxes[missing]).all()
    assert np.isnan(tr.box_scores[missing]).all()
    present = [f for f in range(13) if f not in missing]
    assert np.isfinite(tr.keypoints[present]).all()
    assert np.allclose(centers(tr, 0)[present], [100 + 3 * f for f in present])  # re-found after the gap
    with pytest.raises(ValueError, match="smaller"):
        select_persons(per, n_frames=5)


def test_selection_ignores_small_low_score_distractor():
    per = []
    for f in range(15):
        main = person(200 + 2 * f, 160, 150, 0.97)
        distractor = person(40, 60, 30, 0.45)
        per.append(frame(distractor) if f in (7, 8) else frame(distractor, main, rng=np.random.default_rng(f)))
    tr = select_persons(per, n_persons=1)
    ok = [f for f in range(15) if f not in (7, 8)]
    assert np.allclose(centers(tr, 0)[ok], [200 + 2 * f for f in ok])
    assert np.isnan(tr.boxes[[7, 8]]).all()  # the main performer is missing: not replaced by the distractor
    assert np.allclose(tr.box_scores[ok, 0], 0.97)


def test_selection_edge_cases():
    tr = select_persons([frame(), frame()], n_persons=2)
    assert np.isnan(tr.keypoints).all() and tr.roles.tolist() == [0, 1]
    # only one person ever present in a two-person request: it is the primary, the secondary is NaN
    tr = select_persons([frame(person(100, 100, 80)) for _ in range(4)], n_persons=2)
    assert tr.found[:, 0].all() and not tr.found[:, 1].any()
    # the second person appears later: it is tracked from its first appearance on
    per = [frame(person(100, 100, 80))] * 3 + [frame(person(100, 100, 80), person(300, 100, 60))] * 3
    tr = select_persons(per, n_persons=2)
    assert tr.found[:, 0].all() and tr.found[:, 1].tolist() == [False] * 3 + [True] * 3
    with pytest.raises(ValueError, match="n_persons"):
        select_persons(per, n_persons=3)
    with pytest.raises(TypeError, match="FramePoses"):
        select_persons([None])


# ------------------------------------------------------------------------------------------------
# file backend
# ------------------------------------------------------------------------------------------------
def _coco_records(F=6):
    recs = []
    for f in range(F):
        for cx, h, sc in ((100 + f, 120, 0.9), (300, 60, 0.3)):
            b, s, k = person(cx, 150, h, sc)
            recs.append({"image_id": f, "category_id": 1, "keypoints": k.reshape(-1).tolist(), "score": s,
                         "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
    return recs


def test_file_backend_coco_results_and_sidecar_rule(tmp_path):
    video = tmp_path / "dive01.mp4"
    (tmp_path / "dive01.pose.json").write_text(json.dumps(_coco_records()))
    assert find_pose_file(video) == tmp_path / "dive01.pose.json"
    be = get_pose_backend("file", source_size=(300, 400))
    frames = np.zeros((6, 300, 400, 3), np.uint8)
    out = be.estimate(frames, video_path=video)
    assert len(out) == 6 and all(len(fp) == 2 for fp in out)
    b, s, k = person(103, 150, 120, 0.9)
    assert np.allclose(out[3].boxes[0], b, atol=1e-3) and np.allclose(out[3].keypoints[0], k, atol=1e-3)
    # frames at half resolution: coordinates follow; a frame without poses is empty
    half = be.estimate(np.zeros((7, 150, 200, 3), np.uint8), video_path=video, frame_indices=[0, 1, 2, 3, 4, 5, 9])
    assert np.allclose(half[3].boxes[0], b / 2, atol=1e-3) and len(half[6]) == 0
    track = select_persons(out, 1)
    assert np.allclose(centers(track, 0), 100 + np.arange(6))


def test_file_backend_alphapose_and_explicit_dir(tmp_path):
    recs = []
    for f in range(3):
        b, s, k = person(200, 100 + f, 100)
        halpe = np.concatenate([k, np.tile(k[:1], (9, 1))])  # Halpe-26: first 17 are COCO
        recs.append({"image_id": f"{f}.jpg", "category_id": 1, "keypoints": halpe.reshape(-1).tolist(),
                     "score": 2.5, "box": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                     "idx": 1})
    d = tmp_path / "poses"
    d.mkdir()
    (d / "vault7.json").write_text(json.dumps(recs))
    table = load_pose_file(d / "vault7.json")
    assert table.format == "alphapose" and sorted(table.frames) == [0, 1, 2]
    be = get_pose_backend("file", path=str(d), source_size=(200, 400))
    out = be.estimate(np.zeros((3, 200, 400, 3), np.uint8), video_path=tmp_path / "vault7.avi")
    assert np.allclose(out[2].keypoints[0], person(200, 102, 100)[2], atol=1e-3)


def test_file_backend_openpose_directory(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    b, s, k = person(150, 150, 100)
    body25 = np.zeros((25, 3), np.float32)
    from aqa.extract.pose.files import OPENPOSE_BODY25_TO_COCO
    for coco_i, op_i in enumerate(OPENPOSE_BODY25_TO_COCO):
        body25[op_i] = k[coco_i]
    body25[OPENPOSE_BODY25_TO_COCO[16]] = 0  # right ankle not detected
    for f in range(2):
        doc = {"version": 1.3, "people": [{"pose_keypoints_2d": body25.reshape(-1).tolist()}]}
        (folder / f"clip_{f:012d}_keypoints.json").write_text(json.dumps(doc))
    table = load_pose_file(folder)
    assert table.format == "openpose" and sorted(table.frames) == [0, 1]
    kp = table.frames[1].keypoints[0]
    assert np.allclose(kp[:16], k[:16], atol=1e-4)
    assert np.isnan(kp[16, :2]).all() and kp[16, 2] == 0


def test_file_backend_synthetic_sidecar(tmp_path):
    F = 4
    kps = np.stack([person(100 + f, 120, 100)[2] for f in range(F)])
    boxes = np.stack([person(100 + f, 120, 100)[0] for f in range(F)])
    kps[2] = np.nan  # the person is invisible in frame 2
    boxes[2] = np.nan
    doc = {"format": "aqa-synth-pose", "version": 1, "fps": 25, "width": 320, "height": 240, "n_frames": F,
           "phases": [], "persons": [{"role": 0, "keypoints": np.where(np.isnan(kps), None, kps).tolist(),
                                      "boxes": np.where(np.isnan(boxes), None, boxes).tolist()}]}
    (tmp_path / "syn_003.pose.json").write_text(json.dumps(doc))
    be = get_pose_backend("file")
    out = be.estimate(np.zeros((F, 120, 160, 3), np.uint8), video_path=tmp_path / "syn_003.mp4")
    assert [len(fp) for fp in out] == [1, 1, 0, 1]
    assert np.allclose(out[3].boxes[0], boxes[3] / 2)  # the sidecar's size (240x320) -> frames' 120x160
    tr = select_persons(out, 1)
    assert np.isnan(tr.keypoints[2]).all() and np.isfinite(tr.keypoints[[0, 1, 3]]).all()


def test_selection_uses_declared_roles_and_tracker_ids():
    # declared roles (sidecar): the smaller person is the primary because the source says so
    small, big = person(100, 150, 60), person(300, 150, 120)
    per = [FramePoses(np.stack([big[0], small[0]]), [0.9, 0.9], np.stack([big[2], small[2]]), ids=[1, 0],
                      roles=[1, 0]) for _ in range(4)]
    tr = select_persons(per, 2)
    assert np.allclose(centers(tr, 0), 100) and np.allclose(centers(tr, 1), 300)
    assert np.allclose(centers(select_persons(per, 2, use_source_identity=False), 0), 300)
    # tracker ids: identities survive a jump no geometric tracker could follow; a weak id is dropped
    per = []
    for f in range(6):
        xa, xb = (100, 300) if f < 3 else (300, 100)  # the two swap places between frames 2 and 3
        a, b, c = person(xa, 150, 120, 0.9), person(xb, 150, 110, 0.9), person(200, 40, 30, 0.3)
        per.append(FramePoses(np.stack([c[0], b[0], a[0]]), [c[1], b[1], a[1]], np.stack([c[2], b[2], a[2]]),
                              ids=[9, 5, 7]))
    tr = select_persons(per, 2)
    assert np.allclose(centers(tr, 0), [100] * 3 + [300] * 3)  # id 7 (larger): primary
    assert np.allclose(centers(tr, 1), [300] * 3 + [100] * 3)


def test_file_backend_on_the_synthetic_generator_output(tmp_path):
    synthetic = pytest.importorskip("aqa.data.synthetic")
    from aqa.extract.video import read_frames

    sim = synthetic.simulate(0, kind="sync", n_frames=32)
    video, side = synthetic.render_video(sim, tmp_path)
    assert find_pose_file(video) == side
    frames, _ = read_frames(video)
    out = get_pose_backend("file").estimate(frames, video_path=video)
    tr = select_persons(out, 2)
    truth = synthetic.read_pose_sidecar(side)
    for r in (0, 1):
        j = int(np.flatnonzero(truth["roles"] == r)[0])
        assert np.allclose(tr.keypoints[:, r], truth["keypoints"][j])
        assert np.allclose(tr.boxes[:, r], truth["boxes"][j])


@pytest.mark.parametrize("content, match", [
    ("{not json", "not valid JSON"),
    ('{"format": "aqa-synth-pose", "version": 2}', "version 2"),
    ('{"format": "aqa-synth-pose", "version": 1, "n_frames": 2, "width": 4, "height": 4, '
     '"persons": [{"keypoints": [[[0, 0, 1]]]}]}', r"shape \(1, 1, 3\), expected \(2, 17, 3\)"),
    ('[{"image_id": 0, "keypoints": [1, 2, 3]}]', "3 x \\(17, 26 or 133\\)"),
    ('[{"keypoints": ' + json.dumps([0] * 51) + "}]", "no frame index"),
    ('[{"image_id": "abc.jpg", "keypoints": ' + json.dumps([0] * 51) + "}]", "cannot read a frame index"),
    ('[{"image_id": 0, "keypoints": ' + json.dumps([0] * 51) + ', "bbox": [1, 2]}]', "4 numbers"),
    ('{"people": []}', "single OpenPose frame"),
    ('"hello"', "neither a list"),
    ('{"format": "aqa-synth-pose", "version": 1, "n_frames": 1, "width": 4, "height": 4, '
     '"persons": [{"role": 3, "keypoints": [[[0, 0, 1]]]}]}', "role 3"),
])
def test_file_backend_malformed_files(tmp_path, content, match):
    p = tmp_path / "bad.pose.json"
    p.write_text(content)
    with pytest.raises(PoseFileError, match=match) as ei:
        load_pose_file(p)
    assert "bad.pose.json" in str(ei.value)


def test_file_backend_missing_file_says_where_it_looked(tmp_path):
    with pytest.raises(PoseFileError, match="x.pose.json.*--pose-opt path"):
        get_pose_backend("file").estimate(np.zeros((1, 8, 8, 3), np.uint8), video_path=tmp_path / "x.mp4")
    with pytest.raises(PoseFileError, match="needs a video_path"):
        get_pose_backend("file").estimate(np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(TypeError, match="unknown options"):
        get_pose_backend("file", score_threshold=0.3)
    with pytest.raises(PoseFileError, match=f"^path={tmp_path / 'nope'}: no such pose file or directory$"):
        get_pose_backend("file", path=str(tmp_path / "nope"))  # at once, before any video
    with pytest.raises(ValueError, match="unknown pose backend"):
        get_pose_backend("openpifpaf")


# ------------------------------------------------------------------------------------------------
# keypoint-rcnn (torchvision) and detectron2
# ------------------------------------------------------------------------------------------------
def test_keypoint_rcnn_without_checkpoint_raises_helpful_error(tmp_path, monkeypatch):
    from aqa.extract.weights import MissingWeightsError

    monkeypatch.setenv("AQA_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError, match="(?s)keypointrcnn_resnet50_fpn_coco-fc266e95.pth.*--untrained"):
        get_pose_backend("keypoint-rcnn")


def test_torchvision_output_conversion():
    """Arrays stand in for the model's tensors (the tensor path runs in the slow model test)."""
    out = {"boxes": np.array([[0, 0, 10, 20], [5, 5, 9, 9], [1, 1, 2, 2.]]),
           "labels": np.array([1, 1, 2]), "scores": np.array([0.9, 0.2, 0.99]),
           "keypoints": np.random.default_rng(0).random((3, 17, 3)) * 10,
           "keypoints_scores": np.array([[0.0] * 17, [5.0] * 17, [1.0] * 17])}
    from aqa.extract.pose.rcnn import convert_torchvision_output

    fp = convert_torchvision_output(out, score_threshold=0.5)
    assert len(fp) == 1  # the low-score person and the non-person (label 2) are dropped
    assert np.allclose(fp.boxes[0], [0, 0, 10, 20]) and np.allclose(fp.keypoints[0, :, 2], 0.5)
    assert np.allclose(fp.keypoints[0, :, :2], out["keypoints"][0, :, :2])
    fp = convert_torchvision_output(out, score_threshold=0.0)
    assert len(fp) == 2 and np.allclose(fp.keypoints[1, :, 2], 1 / (1 + np.exp(-5)))


@pytest.mark.slow
def test_keypoint_rcnn_untrained_runs_batched_and_is_marked():
    pytest.importorskip("torchvision")
    with pytest.warns(UserWarning, match="RANDOM weights"):
        be = get_pose_backend("keypoint-rcnn", untrained=True, batch_size=2, score_threshold=0.0,
                              max_detections=3, min_size=96, max_size=128, rpn_pre_nms_top_n_test=50,
                              rpn_post_nms_top_n_test=10)
    assert be.untrained and be.describe()["untrained"] is True and be.weights == {}
    frames = np.random.default_rng(0).integers(0, 256, (3, 72, 96, 3), dtype=np.uint8)
    out = be.estimate(frames, progress=False)
    assert len(out) == 3
    for fp in out:
        assert isinstance(fp, FramePoses) and len(fp) <= 3
        assert fp.boxes.shape == (len(fp), 4) and fp.keypoints.shape == (len(fp), 17, 3)
        assert fp.keypoints.dtype == np.float32 and ((fp.keypoints[..., 2] >= 0) & (fp.keypoints[..., 2] <= 1)).all()
        assert (fp.boxes[:, 2] >= fp.boxes[:, 0]).all() and (fp.boxes[:, 2] <= 96 + 1e-3).all()
    with pytest.raises(ValueError, match="uint8"):
        be.estimate(frames.astype(np.float32))


def test_detectron2_missing_is_a_clear_error():
    try:
        import detectron2  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("detectron2 is installed here")
    with pytest.raises(PoseBackendUnavailable, match="not on PyPI.*keypoint-rcnn"):
        get_pose_backend("detectron2")
    with pytest.raises(ImportError):  # also an ImportError, for callers that probe optional backends
        get_pose_backend("detectron2")


class _FakeBoxes:
    def __init__(self, t):
        self.tensor = t


class _FakeInstances:
    """Duck-typed detectron2 ``Instances`` (fields as attributes, ``len``, ``to``)."""

    def __init__(self, boxes, scores, kps, classes):
        self.pred_boxes, self.scores, self.pred_keypoints, self.pred_classes = _FakeBoxes(boxes), scores, kps, classes
        self.moved_to = None

    def __len__(self):
        return len(self.scores)

    def to(self, device):
        self.moved_to = device
        return self


def test_detectron2_instances_conversion():
    """A duck-typed Instances with arrays (detectron2 holds CPU tensors after ``.to("cpu")``)."""
    from aqa.extract.pose.detectron import convert_instances

    kps = np.zeros((2, 17, 3))
    kps[..., 0], kps[..., 1], kps[..., 2] = 3.0, 4.0, np.array([0.0, 2.0])[:, None]
    inst = _FakeInstances(np.array([[1, 2, 30, 40], [0, 0, 5, 5.]]), np.array([0.8, 0.6]), kps, np.array([0, 0]))
    fp = convert_instances(inst, score_threshold=0.7)
    assert inst.moved_to == "cpu" and len(fp) == 1
    assert np.allclose(fp.boxes[0], [1, 2, 30, 40]) and np.allclose(fp.keypoints[0, :, :2], [3, 4])
    assert np.allclose(fp.keypoints[0, :, 2], 0.5)
    fp = convert_instances(inst)
    assert len(fp) == 2 and np.allclose(fp.keypoints[1, :, 2], 1 / (1 + np.exp(-2.0)))
    empty = _FakeInstances(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 17, 3)), np.zeros(0))
    assert len(convert_instances(empty)) == 0
    bad = _FakeInstances(np.zeros((1, 4)), np.ones(1), np.zeros((1, 5, 3)), np.zeros(1))
    with pytest.raises(ValueError, match="17 COCO keypoints"):
        convert_instances(bad)


# ------------------------------------------------------------------------------------------------
# blazepose (mediapipe 0.10.14; optional extra)
# ------------------------------------------------------------------------------------------------
def test_blazepose_landmark_conversion():
    from aqa.extract.pose.blazepose import BLAZEPOSE_TO_COCO, landmarks_to_frameposes

    lm = np.zeros((33, 4))
    lm[:, 0] = np.linspace(0.2, 0.6, 33)
    lm[:, 1] = np.linspace(0.1, 0.9, 33)
    lm[:, 3] = np.linspace(0, 1, 33)
    fp = landmarks_to_frameposes(lm, width=200, height=100, box_margin=0.0)
    assert len(fp) == 1
    assert np.allclose(fp.keypoints[0, :, 0], lm[list(BLAZEPOSE_TO_COCO), 0] * 200)
    assert np.allclose(fp.keypoints[0, :, 1], lm[list(BLAZEPOSE_TO_COCO), 1] * 100)
    assert np.allclose(fp.boxes[0], [40, 10, 120, 90])
    assert np.isclose(fp.box_scores[0], lm[list(BLAZEPOSE_TO_COCO), 3].mean())
    with pytest.raises(ValueError, match="33, 4"):
        landmarks_to_frameposes(np.zeros((17, 3)), 10, 10)


def test_blazepose_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import fails as if it were not installed
    with pytest.raises(PoseBackendUnavailable, match=r"aqa-pipeline\[blazepose\]") as e:
        get_pose_backend("blazepose")
    assert "pip install --no-deps mediapipe==0.10.14" in str(e.value)  # the working install


def test_blazepose_mapping_matches_mediapipe_names():
    mp = pytest.importorskip("mediapipe")
    from aqa.extract.pose.blazepose import BLAZEPOSE_TO_COCO

    names = {lm.value: lm.name.lower() for lm in mp.solutions.pose.PoseLandmark}
    assert len(names) == 33
    assert [names[i] for i in BLAZEPOSE_TO_COCO] == list(COCO_KEYPOINTS)


def _upright_checks(fp, w, h):
    assert len(fp) == 1
    kp, box = fp.keypoints[0], fp.boxes[0]
    vis = kp[:, 2] > 0.5
    assert vis[[5, 6, 11, 12]].all()  # shoulders and hips visible
    inside = (kp[vis, 0] >= box[0] - 1) & (kp[vis, 0] <= box[2] + 1) & (kp[vis, 1] >= box[1] - 1) & (kp[vis, 1] <= box[3] + 1)
    assert inside.all()
    shoulders, hips = kp[[5, 6], 1].mean(), kp[[11, 12], 1].mean()
    assert kp[0, 1] < shoulders < hips  # image y grows downwards: nose above shoulders above hips
    if vis[[15, 16]].all():
        assert hips < kp[[15, 16], 1].mean()
    assert 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h


def test_blazepose_on_a_photo_of_a_person():
    pytest.importorskip("mediapipe")
    cv2 = pytest.importorskip("cv2")
    from media import opencv_sample

    img = cv2.cvtColor(cv2.imread(str(opencv_sample("messi5.jpg"))), cv2.COLOR_BGR2RGB)
    be = get_pose_backend("blazepose", static_image_mode=True)
    fp = be.estimate(img[None], progress=False)[0]
    _upright_checks(fp, img.shape[1], img.shape[0])
    assert not be.untrained
    assert set(be.weights) == {"mediapipe_pose_detection", "mediapipe_pose_landmark_full"}
    assert all(len(h) == 64 for h in be.weights.values())


def test_blazepose_on_real_footage_vtest():
    """vtest.avi: pedestrians ~90 px tall in 768x576, too small for BlazePose's detector on the full
    frame (it finds nobody there), so we crop around the man on the left and upscale x3."""
    pytest.importorskip("mediapipe")
    cv2 = pytest.importorskip("cv2")
    from aqa.extract.pose import box_iou
    from aqa.extract.video import read_frames
    from media import opencv_sample

    frames, _ = read_frames(opencv_sample("vtest.avi"), np.arange(0, 15, 3))
    y0, x0, s = 180, 185, 3
    crops = np.stack([cv2.resize(f[y0:y0 + 160, x0:x0 + 160], (480, 480), interpolation=cv2.INTER_CUBIC)
                      for f in frames])
    out = get_pose_backend("blazepose").estimate(crops, progress=False)
    assert len(out) == len(frames)
    assert sum(len(fp) == 1 for fp in out) >= 4  # found in (almost) every frame
    for fp in out:
        if len(fp):
            _upright_checks(fp, 480, 480)
    # back to full-frame pixels: frame 0 matches a hand-drawn box around that man (x 250-288, y 218-310)
    full = out[0].scaled(1 / s, 1 / s)
    full.boxes += np.array([x0, y0, x0, y0], np.float32)
    assert box_iou(full.boxes, np.array([[250, 218, 288, 310]]))[0, 0] > 0.6
    tr = select_persons(out, 1)
    assert tr.found[:, 0].sum() == sum(len(fp) for fp in out)
    xs = centers(tr, 0)[tr.found[:, 0]]
    assert np.all(np.diff(xs) > 0)  # he walks to the right
