"""aqa-extract end to end on synthetic videos and real footage: cache validity, resume, failures."""
import dataclasses
import json
import re
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from aqa.data.cache import CacheReader
from aqa.data.integrity import verify
from aqa.extract.cli import main as extract_cli
from aqa.extract.config import ExtractConfig
from aqa.extract.discover import discover_videos, parse_shard, shard_out_path
from aqa.extract.runner import run_extraction

FAST_FLOW = {"nscales": 2, "warps": 2, "outer_iterations": 2, "inner_iterations": 5}
FAST = dict(sampling="c3d", sampling_options={"length": 8, "stride": 8}, flow="tvl1-cpu",
            flow_options=FAST_FLOW)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    from aqa.data.synthetic import render_dataset

    d = tmp_path_factory.mktemp("synth")
    render_dataset(d, n=4, kind="single", seed=3, n_frames=32, size=(96, 72), progress=False)
    return d


@pytest.fixture(scope="module")
def sync_dir(tmp_path_factory):
    from aqa.data.synthetic import render_dataset

    d = tmp_path_factory.mktemp("sync")
    render_dataset(d, n=2, kind="sync", seed=4, n_frames=32, size=(96, 72), progress=False)
    return d


@pytest.mark.slow
def test_synthetic_extraction_is_valid_and_complete(synth_dir, tmp_path):
    out = tmp_path / "f.h5"
    s = run_extraction([synth_dir], out, ExtractConfig(**FAST), labels=synth_dir / "labels.csv",
                       device="cpu", progress=False)
    assert s.count("done") == 4 and not s.failed
    rep = verify(out)
    assert rep.ok, rep.problems
    assert set(rep.families) == {"kin_pose", "hof_flow"}
    with CacheReader(out) as r:
        ids = r.video_ids()
        assert len(ids) == 4 and len(r.labels()) == 4
        kin = r.load("kin_pose", part="joints")
        hof = r.load("hof_flow", part="whole")
        assert kin.shape[:3] == (4, 4, 17) and hof.shape[:2] == (4, 4)  # 32 frames / 8 = 4 steps
        assert np.isfinite(kin).all() and np.isfinite(hof).all()
        cam = r.load_camera()
        assert cam.shape[:2] == (4, 4) and np.abs(cam).sum() > 0  # synthetic camera pans
        pose = r.pose(ids[0])
        assert pose["keypoints"].shape == (32, 1, 17, 3)
        prov = r.provenance()
        assert prov["config"]["sampling"] == "c3d" and prov["untrained"] is False
        start = r.load("kin_pose", part="clip_start")[0]
        np.testing.assert_array_equal(start, [0, 8, 16, 24])
        for part in ("clip_start", "clip_end"):   # frame indices stay integers when loaded
            for fam in ("kin_pose", "kin_pose+hof_flow"):
                assert r.load(fam, part=part).dtype.kind == "i", (fam, part)
        assert r.load("kin_pose", part="clip_end")[0].tolist() == [7, 15, 23, 31]
        assert r.load("kin_pose").dtype == np.float32


@pytest.mark.slow
def test_two_person_extraction(sync_dir, tmp_path):
    out = tmp_path / "f.h5"
    s = run_extraction([sync_dir], out, ExtractConfig(persons=2, **FAST), device="cpu",
                       progress=False)
    assert not s.failed, s.failed
    with CacheReader(out) as r:
        p = r.pose(r.video_ids()[0])
        assert p["keypoints"].shape[1] == 2 and list(p["roles"]) == [0, 1]
        assert np.isfinite(p["keypoints"][:, 1]).mean() > 0.9  # the secondary diver is tracked


@pytest.mark.slow
def test_resume_skips_finished_and_corrupt_video_goes_to_manifest(synth_dir, tmp_path):
    vids = tmp_path / "v"
    shutil.copytree(synth_dir, vids)
    out = tmp_path / "f.h5"
    first = sorted(vids.glob("*.mp4"))[:2]
    run_extraction(first, out, ExtractConfig(**FAST), device="cpu", progress=False)
    (vids / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    res = CliRunner().invoke(extract_cli, [str(vids), "--out", str(out), "--sampling", "c3d",
                                           "--sampling-opt", "length=8", "--sampling-opt",
                                           "stride=8", "--flow", "tvl1-cpu", "--quiet",
                                           *sum((["--flow-opt", f"{k}={v}"]
                                                 for k, v in FAST_FLOW.items()), [])])
    assert res.exit_code == 1, res.output
    assert "2 extracted, 2 already complete, 1 failed" in res.output
    manifest = json.loads((tmp_path / "f.h5.failures.json").read_text())
    (entry,) = manifest["failed"]
    assert entry["video_id"] == "broken" and entry["stage"] == "decode" and entry["error"]
    rep = verify(out)
    assert rep.ok and rep.n_videos == 4


def test_missing_pose_sidecar_is_a_recorded_failure(synth_dir, tmp_path):
    vids = tmp_path / "v"
    vids.mkdir()
    src = sorted(synth_dir.glob("*.mp4"))[0]
    shutil.copy(src, vids / "nopose.mp4")
    s = run_extraction([vids], tmp_path / "f.h5", ExtractConfig(**FAST), device="cpu",
                       progress=False)
    assert s.failed and s.failed[0].stage == "pose"


def _fast_cli_args():
    return ["--quiet", "--sampling", "c3d", "--sampling-opt", "length=8", "--sampling-opt", "stride=8",
            "--flow", "tvl1-cpu", *sum((["--flow-opt", f"{k}={v}"] for k, v in FAST_FLOW.items()), [])]


def _with_poses_only_in(sidecar: Path, out: Path, frames) -> None:
    """A copy of a synthetic pose sidecar whose persons are present only in ``frames``."""
    doc = json.loads(sidecar.read_text())
    for person in doc["persons"]:
        for f in set(range(doc["n_frames"])) - set(frames):
            person["keypoints"][f] = [[None, None, 0.0]] * 17
            if person.get("boxes") is not None:
                person["boxes"][f] = [None] * 4
    out.write_text(json.dumps(doc))


@pytest.mark.slow
def test_short_and_personless_videos_are_warned_and_listed_at_the_end(synth_dir, tmp_path):
    """Extracted, not failed, but never silently: a truncated video (fewer frames decode than its
    header declares) and videos whose primary person is missing in more than half of the sampled
    frames are listed at the end of the run and in the manifest, also by a re-run that skips them."""
    from test_video import cut_faststart_mp4

    src = sorted(synth_dir.glob("*.mp4"))[0]
    sidecar = src.with_suffix(".pose.json")
    vids = tmp_path / "v"
    vids.mkdir()
    for name in ("ok", "cut", "nobody", "few", "half"):
        shutil.copy(src, vids / f"{name}.mp4")
        shutil.copy(sidecar, vids / f"{name}.pose.json")
    cut_faststart_mp4(src, vids / "cut.mp4", 12)
    doc = json.loads(sidecar.read_text())
    (vids / "nobody.pose.json").write_text(json.dumps({**doc, "persons": []}))
    _with_poses_only_in(sidecar, vids / "few.pose.json", range(10))      # 22 of 32 missing
    _with_poses_only_in(sidecar, vids / "half.pose.json", range(16))     # 16 of 32: not more than half
    out = tmp_path / "f.h5"
    expected = {
        "cut": [f"{vids / 'cut.mp4'}: decoded only 12 of the 32 frames the container declares "
                "(a truncated file?)"],
        "nobody": [f"{vids / 'nobody.mp4'}: no primary person in 32 of the 32 sampled frames "
                   "(pose 'file'); its pose and joint features are missing there"],
        "few": [f"{vids / 'few.mp4'}: no primary person in 22 of the 32 sampled frames "
                "(pose 'file'); its pose and joint features are missing there"]}
    manifest = tmp_path / "f.h5.failures.json"
    for run, counts in enumerate(("5 extracted, 0 already complete", "0 extracted, 5 already complete")):
        res = CliRunner().invoke(extract_cli, [str(vids), "--out", str(out), *_fast_cli_args()])
        assert res.exit_code == 0, res.output
        assert f"{counts}, 0 failed" in res.output
        for (msg,) in expected.values():
            assert f"  WARNING {msg}\n" in res.output, (run, res.output)
        assert (f"warning: 3 video(s) extracted with warnings; see the manifest {manifest}"
                in res.output)
        doc = json.loads(manifest.read_text())
        assert doc["failed"] == []
        assert {w["video_id"]: w["warnings"] for w in doc["warned"]} == expected
    assert verify(out).ok and verify(out).n_videos == 5
    with CacheReader(out) as r:
        assert r.pose("cut")["keypoints"].shape[0] == 12


@pytest.mark.slow
def test_labels_that_do_not_match_the_videos_are_warned_and_survive_an_interrupt(
        synth_dir, tmp_path, monkeypatch):
    from aqa.data.labels import read_labels_csv, write_labels_csv
    from aqa.extract.runner import Extractor

    rows = read_labels_csv(synth_dir / "labels.csv")
    ids = sorted(r.video_id for r in rows)
    ghosts = [dataclasses.replace(rows[0], video_id=v) for v in ("ghost_a", "ghost_b")]
    labels = write_labels_csv([r for r in rows if r.video_id != ids[-1]] + ghosts,
                              tmp_path / "labels.csv")
    with warnings.catch_warnings():  # every input labelled: no word, also in a shard of the inputs
        warnings.filterwarnings("error", message="labels")
        run_extraction([synth_dir], tmp_path / "ok.h5", ExtractConfig(**FAST), shard="1/4",
                       labels=synth_dir / "labels.csv", device="cpu", progress=False)
    prepare, calls = Extractor.prepare, []  # the runner's first step of each video

    def interrupted_on_the_second_video(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return prepare(self, *args, **kwargs)

    monkeypatch.setattr(Extractor, "prepare", interrupted_on_the_second_video)
    out = tmp_path / "f.h5"
    with pytest.warns(UserWarning) as rec, pytest.raises(KeyboardInterrupt):
        run_extraction([synth_dir], out, ExtractConfig(**FAST), labels=labels, device="cpu",
                       progress=False)
    assert [str(w.message) for w in rec if "labels" in str(w.message)] == [
        f"labels {labels}: 2 of 5 labelled videos are not among the inputs (ghost_a, ghost_b); "
        f"1 of 4 input videos have no label row ({ids[-1]})"]
    assert verify(out).ok
    with CacheReader(out) as r:  # the labels are in from the start, not only once the run ends
        assert r.video_ids() == ids[:1]
        assert sorted(x.video_id for x in r.labels()) == sorted(ids[:-1] + ["ghost_a", "ghost_b"])


@pytest.mark.slow
def test_real_footage_vtest(tmp_path):
    """vtest.avi (people walking): decode, TV-L1, camera motion on real video; poses from a file."""
    from media import opencv_sample

    try:
        src = opencv_sample("vtest.avi")
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"opencv-doc sample media unavailable: {e}")
    from aqa.extract.video import read_frames

    frames, _ = read_frames(src, indices=np.arange(24))
    import cv2
    vdir = tmp_path / "v"
    vdir.mkdir()
    w = cv2.VideoWriter(str(vdir / "vtest24.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10,
                        (frames.shape[2], frames.shape[1]))
    for f in frames:
        w.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    w.release()
    # a COCO-style result file with one walking person box per frame (no keypoint model here)
    h, wd = frames.shape[1:3]
    dets = [{"image_id": i, "category_id": 1, "score": 0.9, "bbox": [100 + i, 150, 40, 120],
             "keypoints": sum(([110 + i + (j % 3) * 5, 160 + j * 6, 0.9] for j in range(17)), [])}
            for i in range(24)]
    (vdir / "vtest24.pose.json").write_text(json.dumps(dets))
    out = tmp_path / "f.h5"
    s = run_extraction([vdir], out, ExtractConfig(sampling="c3d", sampling_options={"length": 8, "stride": 8},
                                                  flow="tvl1-cpu", flow_options=FAST_FLOW),
                       device="cpu", progress=False)
    assert not s.failed, s.failed
    rep = verify(out)
    assert rep.ok and set(rep.families) == {"kin_pose", "hof_flow"}
    with CacheReader(out) as r:
        hof = r.load("hof_flow", part="joints")
        assert hof.shape[:3] == (1, 3, 17) and np.isfinite(hof).all()
        kp = r.pose("vtest24")["keypoints"]
    # its contact sheet: the real frames decoded again at the cache's 256-px short side, under
    # the poses scaled with them (the file's pixels are those of the 768x576 source)
    from aqa.extract.show import sheet_frames

    d = sheet_frames(out, "vtest24", root=vdir, n=3)
    assert d["frames"].shape == (3, 256, 341, 3) and list(d["index"]) == [0, 12, 23]
    assert np.abs(d["frames"].astype(int) - cv2.resize(
        frames[12], (341, 256), interpolation=cv2.INTER_AREA)).mean() < 8    # MJPG round trip
    np.testing.assert_allclose(d["keypoints"][1, 0, 0, :2], kp[12, 0, 0, :2])
    np.testing.assert_allclose(kp[12, 0, 0, :2], np.array([110 + 12, 160]) * 256 / 576, atol=0.5)


#: family -> D of its backbone (extract/backbones: I3D 1024, I3D-R50 2048, C3D fc6 4096)
BACKBONE_FAMILIES = {"i3d_rgb": 1024, "i3d_flow": 1024, "i3dr50_rgb": 2048, "c3d_rgb": 4096}


@pytest.mark.slow
def test_real_footage_vtest_blazepose_every_family(tmp_path, monkeypatch):
    """`aqa-extract` on 16 real frames of vtest.avi with BlazePose, TV-L1 and all three untrained
    backbones: a valid cache holding every feature family of docs/architecture.md, marked untrained, with
    plausible poses of the walking man."""
    try:
        import mediapipe  # noqa: F401
    except Exception as e:  # noqa: BLE001 - an optional extra; a broken install skips too
        pytest.skip(f"mediapipe (the blazepose extra) is not importable: {e}")
    from media import opencv_sample

    try:
        src = opencv_sample("vtest.avi")
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"opencv-doc sample media unavailable: {e}")
    import cv2

    from aqa.data.cli import main as data_cli
    from aqa.extract.video import read_frames

    # pedestrians are ~90 px tall in 768x576, too small for BlazePose's detector on the full frame
    # (see test_pose.py): crop around the man on the left, with room for him to walk right, x1.6
    frames, _ = read_frames(src, indices=np.arange(16))  # one 16-frame clip (C3D's length)
    y0, x0, ch, cw, s = 180, 185, 160, 240, 1.6
    w, h = round(cw * s), round(ch * s)
    vdir = tmp_path / "v"
    vdir.mkdir()
    writer = cv2.VideoWriter(str(vdir / "vtest_crop.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    for f in frames:
        crop = cv2.resize(f[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_CUBIC)
        writer.write(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    writer.release()
    monkeypatch.setenv("AQA_WEIGHTS_DIR", str(tmp_path / "weights"))  # no checkpoint anywhere
    monkeypatch.setenv("HOME", str(tmp_path))

    out = tmp_path / "f.h5"
    args = [str(vdir), "--out", str(out), "--quiet", "--device", "cpu", "--pose", "blazepose",
            "--sampling", "c3d", "--sampling-opt", "length=16", "--sampling-opt", "stride=16",
            "--flow", "tvl1-cpu", "--short-side", str(h),
            *sum((["--flow-opt", f"{k}={v}"] for k, v in
                  {"nscales": 2, "warps": 1, "outer_iterations": 2, "inner_iterations": 5}.items()), []),
            "--backbone", "i3d", "--backbone", "i3d-r50", "--backbone", "c3d", "--untrained",
            # small I3D / I3D-R50 inputs keep this CPU-cheap (both pool globally, so any size
            # gives their feature); C3D stays at its fixed 112x112
            "--backbone-opt", "crop_size=32", "--backbone-opt", "resize=32"]
    res = CliRunner().invoke(extract_cli, args)
    assert res.exit_code == 0, (res.output, res.exception)
    assert "1 extracted, 0 already complete, 0 failed" in res.output

    res = CliRunner().invoke(data_cli, ["verify", str(out), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["ok"] and rep["n_videos"] == 1 and rep["untrained"] is True, rep
    fams = rep["families"]
    assert set(fams) == {"kin_pose", "hof_flow", *BACKBONE_FAMILIES}, fams
    for fam, d in BACKBONE_FAMILIES.items():
        assert fams[fam] == {"whole": ["S", d], "joints": ["S", 17, d]}, (fam, fams[fam])
    assert fams["kin_pose"]["joints"][:2] == ["S", 17] and fams["hof_flow"]["joints"][:2] == ["S", 17]

    with CacheReader(out) as r:
        (vid,) = r.video_ids()
        assert r.video_attrs(vid)["n_frames"] == 16
        assert (r.video_attrs(vid)["height"], r.video_attrs(vid)["width"]) == (h, w)
        for fam in ("kin_pose", "hof_flow", *BACKBONE_FAMILIES):
            whole, joints = r.load(fam)[0], r.load(fam, part="joints")[0]
            assert whole.shape[0] == 1 and joints.shape[:2] == (1, 17), (fam, whole.shape)
            assert np.isfinite(whole).all() and np.isfinite(joints).all(), fam
            assert r.load(fam, part="clip_start")[0].tolist() == [0]
            assert r.load(fam, part="clip_end")[0].tolist() == [15]
        for fam in BACKBONE_FAMILIES:  # patches sit on the joints: head and ankle patches differ
            j = r.load(fam, part="joints")[0, 0]
            assert not np.allclose(j[0], j[16]), fam
        cam = r.load_camera()[0]
        assert cam.shape[0] == 1 and cam.shape[1] > 0 and np.isfinite(cam).all()
        prov = r.provenance()
        assert prov["untrained"] is True and prov["config"]["untrained"] is True
        assert prov["config"]["pose"] == "blazepose"
        assert prov["config"]["backbones"] == ["i3d", "i3d-r50", "c3d"]
        # no backbone checkpoint was used: only the pose models that ship in the mediapipe wheel
        assert set(prov["config"]["checkpoints"]) == {"mediapipe_pose_detection",
                                                      "mediapipe_pose_landmark_full"}
        pose = r.pose(vid)

    kp = pose["keypoints"]
    assert kp.shape == (16, 1, 17, 3) and list(pose["roles"]) == [0]
    kp = kp[:, 0]
    found = np.isfinite(kp[..., :2]).all(axis=(1, 2))
    assert found.sum() >= 12, found  # the man is found on (almost) every frame
    k = kp[found]
    assert (k[..., 0] >= 0).all() and (k[..., 0] <= w).all(), k[..., 0]  # inside the frame
    assert (k[..., 1] >= 0).all() and (k[..., 1] <= h).all(), k[..., 1]
    shoulders, hips, ankles = (k[:, idx, 1].mean(1) for idx in ([5, 6], [11, 12], [15, 16]))
    upright = (shoulders < hips) & (hips < ankles)  # image y grows downwards
    assert upright.mean() >= 0.8, np.stack([shoulders, hips, ankles], 1)
    boxes = pose["boxes"][found, 0]
    assert (boxes[:, 3] - boxes[:, 1]).min() > 0.4 * h  # a whole person, not a fragment


@pytest.mark.slow
def test_backbone_without_weights_is_refused_or_marked(synth_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("AQA_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ValueError, match="16-frame clips"):
        ExtractConfig(backbones=("c3d",), streams=("rgb",), **FAST)
    fast16 = dict(FAST, sampling_options={"length": 16, "stride": 16})
    cfg = ExtractConfig(backbones=("c3d",), streams=("rgb",), **fast16)
    from aqa.extract.weights import MissingWeightsError

    with pytest.raises(MissingWeightsError, match="c3d.pickle"):
        run_extraction([synth_dir], tmp_path / "f.h5", cfg, device="cpu", progress=False)
    # one 16-frame clip of the whole frame (C3D costs ~2 CPU s a clip, so not its 17 joint
    # patches here: test_real_footage_vtest_blazepose_every_family runs untrained C3D on them)
    one = sorted(synth_dir.glob("*.mp4"))[:1]
    cfg = ExtractConfig(backbones=("c3d",), streams=("rgb",), joints=False,
                        **dict(fast16, sampling_options={"length": 16, "stride": 16, "stop": 16}))
    s = run_extraction(one, tmp_path / "u.h5", cfg, device="cpu", untrained=True, progress=False)
    assert not s.failed, s.failed
    rep = verify(tmp_path / "u.h5")
    assert rep.ok and rep.untrained and "c3d_rgb" in rep.families
    assert rep.families["c3d_rgb"] == {"whole": ["S", 4096]}
    with CacheReader(tmp_path / "u.h5") as r:
        w = r.load("c3d_rgb")[0]
        assert w.shape == (1, 4096) and np.isfinite(w).all() and (w >= 0).all()  # fc6 after ReLU
        assert (w > 0).any()
        assert r.provenance()["untrained"] is True


def test_discovery_shards_and_errors(tmp_path):
    (tmp_path / "a").mkdir()
    for n in ("x.mp4", "y.avi", "notes.txt"):
        (tmp_path / "a" / n).write_bytes(b"")
    (tmp_path / "a" / "sub").mkdir()
    (tmp_path / "a" / "sub" / "z.mp4").write_bytes(b"")
    ids = [v for v, _ in discover_videos([tmp_path / "a"])]
    assert ids == ["sub__z", "x", "y"]
    with pytest.raises(FileNotFoundError):
        discover_videos([tmp_path / "nope"])
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "x", "1-4"):
        with pytest.raises(ValueError):
            parse_shard(bad)
    assert shard_out_path(tmp_path / "f.h5", (1, 4)).name == "f.shard1-of-4.h5"
    res = CliRunner().invoke(extract_cli, [str(tmp_path / "a"), "--out", str(tmp_path / "o.h5"),
                                           "--backbone", "i3d", "--no-weightfree", "--flow", "none"])
    assert res.exit_code == 2 and "flow 'none'" in res.output


def test_flow_none_extracts_kin_pose_without_a_flow_stage(synth_dir, tmp_path):
    """Pose-only features pay for no flow: `--flow none` with file poses writes kin_pose, says in one
    line that hof_flow and camera motion are left out, and has no flow stage in its seconds."""
    one = sorted(synth_dir.glob("*.mp4"))[0]
    out = tmp_path / "k.h5"
    res = CliRunner().invoke(extract_cli, [str(one), "--out", str(out), "--quiet", "--sampling",
                                           "c3d", "--sampling-opt", "length=8", "--flow", "none"])
    assert res.exit_code == 0, res.output
    stages = next(ln for ln in res.output.splitlines() if ln.startswith("mean seconds per video"))
    assert "pose" in stages and "weightfree" in stages
    assert "flow" not in stages and "camera" not in stages
    rep = verify(out)
    assert rep.ok and set(rep.families) == {"kin_pose"}
    with CacheReader(out) as r:
        assert r.provenance()["config"]["flow"] == "none"
        assert np.isfinite(r.load("kin_pose", part="joints")).all()
    res = CliRunner().invoke(extract_cli, [str(one), "--out", str(tmp_path / "k2.h5"), "--sampling",
                                           "c3d", "--sampling-opt", "length=8", "--flow", "none"])
    said = [ln for ln in res.output.splitlines() if "left out" in ln]
    assert res.exit_code == 0 and said == [
        "flow none: hof_flow and motion/camera read flow and are left out; kin_pose is extracted"]
    res = CliRunner().invoke(extract_cli, [str(one), "--out", str(tmp_path / "k3.h5"), "--flow",
                                           "none", "--backbone", "i3d"])
    assert res.exit_code == 2 and "flow stream reads flow; use --streams rgb" in res.output


def test_cli_help_lists_everything():
    res = CliRunner().invoke(extract_cli, ["run", "--help"])
    for opt in ("--pose", "--flow", "--backbone", "--sampling", "--device", "--batch-size",
                "--shard", "--weights", "--untrained", "--labels"):
        assert opt in res.output
    text = re.sub(r"-\s+", "-", " ".join(res.output.split()))  # undo the wrapping
    assert "into its own file: OUT.shardK-of-N.h5 instead of OUT" in text
    assert "'none': no flow; the weight-free kin_pose is extracted, hof_flow and camera motion" in text
    res = CliRunner().invoke(extract_cli, ["--help"])
    assert "merge" in res.output and "weights" in res.output


@pytest.mark.slow
def test_killed_extraction_resumes_without_redoing(synth_dir, tmp_path):
    """SIGKILL `aqa-extract` after its first commit; the re-run skips finished videos."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import h5py

    out = tmp_path / "f.h5"
    # a TV-L1 light enough for a short test, heavy enough (about 2 s a video here, the default
    # takes 20) that the kill after the first commit lands seconds before the last video is done
    flow = {"nscales": 3, "warps": 2, "outer_iterations": 3, "inner_iterations": 10}
    cmd = [sys.executable, "-m", "aqa.extract.cli", str(synth_dir), "--out", str(out), "--quiet",
           "--sampling", "c3d", "--sampling-opt", "length=8", "--sampling-opt", "stride=8",
           "--flow", "tvl1-cpu", *sum((["--flow-opt", f"{k}={v}"] for k, v in flow.items()), [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    done = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
        try:
            with h5py.File(out, "r") as f:
                done = sum(g.attrs.get("status") == "complete" for g in f.get("videos", {}).values())
        except (OSError, KeyError):
            continue
        if done >= 1:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    if proc.returncode == 0:
        pytest.skip("extraction finished before it could be killed")
    assert done >= 1 and proc.returncode == -signal.SIGKILL
    assert verify(out).ok
    res = CliRunner().invoke(extract_cli, cmd[3:])
    assert res.exit_code == 0, res.output
    assert f"{4 - done} extracted, {done} already complete, 0 failed" in res.output
    rep = verify(out)
    assert rep.ok and rep.n_videos == 4 and not rep.warnings


@pytest.mark.slow
def test_shards_then_merge(synth_dir, tmp_path):
    """Two --shard runs write one file each; merging them gives every video once."""
    from aqa.data.integrity import merge

    out = tmp_path / "f.h5"
    parts = []
    for k in range(2):
        s = run_extraction([synth_dir], out, ExtractConfig(**FAST), shard=f"{k}/2", device="cpu",
                           labels=synth_dir / "labels.csv", progress=False)
        assert s.count("done") == 2 and not s.failed
        parts.append(s.out)
    assert [p.rsplit("/", 1)[1] for p in parts] == ["f.shard0-of-2.h5", "f.shard1-of-2.h5"]
    summary = merge(parts, out, progress=False)
    assert summary["videos"] == 4 and summary["labels"] == 4
    rep = verify(out)
    assert rep.ok and rep.n_videos == 4


TINY_I3D = dict(sampling="c3d", sampling_options={"length": 8, "stride": 8, "stop": 8},
                flow="tvl1-cpu", flow_options=FAST_FLOW, backbones=("i3d",),
                backbone_options={"crop_size": 32, "resize": 32, "clip_len": 8})


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("AQA_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path / "weights"


def _i3d_checkpoint(path, stream, layout):
    """A random I3D saved in a public port's key layout (as the real files are)."""
    import torch

    from aqa.extract.backbones import build_backbone
    from aqa.extract.backbones.i3d import public_key_map

    model = build_backbone("i3d", stream, None, untrained=True).model
    keys = public_key_map(model, layout)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({keys[k]: v for k, v in model.state_dict().items()
                if not k.endswith("num_batches_tracked")}, path)
    return path


@pytest.mark.slow
def test_untrained_i3d_end_to_end_then_real_weights_redo(synth_dir, tmp_path, no_weights, monkeypatch):
    """Untrained I3D rgb+flow on one video (S=1), marked so; installing weights redoes it; a re-run
    with nothing left to do loads no model."""
    one = sorted(synth_dir.glob("*.mp4"))[:1]
    out, cfg = tmp_path / "f.h5", ExtractConfig(**TINY_I3D)
    s = run_extraction(one, out, cfg, device="cpu", untrained=True, progress=False)
    assert s.count("done") == 1 and not s.failed, s.failed
    rep = verify(out)
    assert rep.ok and rep.untrained, rep.problems
    with CacheReader(out) as r:
        for fam in ("i3d_rgb", "i3d_flow"):
            whole, joints = r.load(fam), r.load(fam, part="joints")
            assert whole.shape == (1, 1, 1024) and joints.shape == (1, 1, 17, 1024)
            assert np.isfinite(whole).all() and np.isfinite(joints).all()
        cfg_stored = r.provenance()["config"]
        assert cfg_stored["untrained"] is True and cfg_stored["checkpoints"] == {}
    # the user installs real weights (here: the model_rgb.pth port via --weights, flow in the dir)
    _i3d_checkpoint(no_weights / "flow_imagenet.pt", "flow", "piergiaj")
    rgb = _i3d_checkpoint(tmp_path / "model_rgb.pth", "rgb", "hassony2")
    overrides = {"i3d_rgb_kinetics_hassony2": str(rgb)}
    s = run_extraction(one, out, cfg, device="cpu", weight_overrides=overrides, progress=False)
    assert s.count("done") == 1 and s.count("skipped") == 0  # redone, not skipped
    with CacheReader(out) as r:
        cfg_stored = r.provenance()["config"]
        assert cfg_stored["untrained"] is False
        assert set(cfg_stored["checkpoints"]) == {"i3d_rgb_kinetics_hassony2", "i3d_flow_imagenet"}
    assert verify(out).ok

    def no_model(*args, **kwargs):
        raise AssertionError("a model was built for a run with nothing to do")

    monkeypatch.setattr("aqa.extract.backbones.build_backbone", no_model)
    s = run_extraction(one, out, cfg, device="cpu", weight_overrides=overrides, progress=False)
    assert s.count("skipped") == 1  # same weights: resumed, without building the backbones


def test_flow_auto_hashes_as_the_backend_it_resolves_to(tmp_path, monkeypatch):
    from aqa.extract.runner import Extractor

    from aqa.extract import config

    base = {k: v for k, v in FAST.items() if k != "flow"}
    auto = Extractor(ExtractConfig(flow="auto", **base), device="cpu", progress=False)
    torch_cpu = Extractor(ExtractConfig(flow="tvl1-torch", **base), device="cpu", progress=False)
    opencv = Extractor(ExtractConfig(flow="tvl1-cpu", **base), device="cpu", progress=False)
    assert auto.cache_config() == opencv.cache_config()  # OpenCV measured faster on a 2-core CPU
    compiles = config.can_compile_on_cpu()
    monkeypatch.setitem(config.CPU_FLOW_VS_OPENCV, "tvl1-torch compiled", 1.5)
    monkeypatch.setitem(config.CPU_FLOW_VS_OPENCV, "tvl1-torch eager", 1.2)
    auto = Extractor(ExtractConfig(flow="auto", **base), device="cpu", progress=False)
    assert auto.cache_config() == {**torch_cpu.cache_config(), "flow_compile": compiles}
    assert auto.flow.compile is compiles
    assert "flow_compile" not in Extractor(ExtractConfig(flow="tvl1-cpu", **base), device="cpu",
                                           progress=False).cache_config()


def test_flow_auto_picks_the_backend_measured_faster(monkeypatch):
    """The rule reads the side-by-side measurement: on the CPU the fastest of compiled tvl1-torch
    (where compiling is possible), eager tvl1-torch and OpenCV; today OpenCV."""
    from aqa.data.compat import config_differences
    from aqa.extract import config

    assert config.resolve_flow("auto", "cuda:1") == ("tvl1-torch", {})
    assert config.resolve_flow("tvl1-cpu", "cuda") == ("tvl1-cpu", {})
    monkeypatch.setattr(config, "can_compile_on_cpu", lambda: True)
    assert config.resolve_flow("auto", "cpu") == ("tvl1-cpu", {})  # compile included: x0.94
    monkeypatch.setitem(config.CPU_FLOW_VS_OPENCV, "tvl1-torch compiled", 1.5)
    assert config.resolve_flow("auto", "cpu") == ("tvl1-torch", {"compile": True})
    monkeypatch.setattr(config, "can_compile_on_cpu", lambda: False)
    assert config.resolve_flow("auto", "cpu") == ("tvl1-cpu", {})  # eager measured x0.03
    monkeypatch.setitem(config.CPU_FLOW_VS_OPENCV, "tvl1-torch eager", 1.5)
    assert config.resolve_flow("auto", "cpu") == ("tvl1-torch", {"compile": False})
    monkeypatch.setattr(config, "can_compile_on_cpu", lambda: True)
    monkeypatch.setitem(config.CPU_FLOW_VS_OPENCV, "tvl1-torch compiled", 0.9)
    assert config.resolve_flow("auto", "cpu") == ("tvl1-torch", {"compile": False})
    # a head trained on OpenCV-flow features applies to tvl1-torch ones, compiled or not
    cfg = {"flow": "tvl1-cpu", "flow_options": {}, "sampling": "jrg"}
    assert config_differences(cfg, {**cfg, "flow": "tvl1-torch", "flow_compile": True}) == []


def test_flow_auto_resuming_an_opencv_cache_keeps_opencv(synth_dir, tmp_path, monkeypatch):
    """A cache extracted when auto meant OpenCV on the CPU: a resume with auto, which now means
    tvl1-torch, skips its videos."""
    from aqa.extract import config

    monkeypatch.setitem(config.CPU_FLOW_VS_OPENCV, "tvl1-torch eager", 1.5)
    monkeypatch.setattr(config, "can_compile_on_cpu", lambda: False)
    assert config.resolve_flow("auto", "cpu") == ("tvl1-torch", {"compile": False})
    base = {k: v for k, v in FAST.items() if k != "flow"}
    one = sorted(synth_dir.glob("*.mp4"))[:1]
    out = tmp_path / "f.h5"
    run_extraction(one, out, ExtractConfig(flow="tvl1-cpu", **base), device="cpu", progress=False)
    s = run_extraction(one, out, ExtractConfig(flow="auto", **base), device="cpu", progress=False)
    assert s.count("skipped") == 1 and s.count("done") == 0


@pytest.mark.slow
def test_bad_options_fail_once_before_any_video(synth_dir, tmp_path):
    out = tmp_path / "f.h5"
    i3d = ["--backbone", "i3d", "--streams", "rgb", "--untrained"]
    for opt, value, msg, *extra in (
            ("--sampling-opt", "bogus=1", "bogus"), ("--sampling-opt", "length=0", "length"),
            ("--flow-opt", "warps=0", "TV-L1 parameter warps must be an integer >= 1, got 0"),
            ("--flow-opt", "warps=abc", "TV-L1 parameter warps must be an integer >= 1, got 'abc'"),
            ("--flow-opt", "nope=3", "nope"), ("--pose-opt", "nope=3", "nope"),
            ("--pose-opt", "path=/nonexist", "path=/nonexist: no such pose file or directory"),
            ("--backbone-opt", "nope=3", "nope", *i3d),
            ("--backbone-opt", "crop_size=abc", "crop_size='abc': expected a positive integer", *i3d),
            ("--device", "gpu", "'gpu': expected cpu, cuda, cuda:N, mps or auto"),
            ("--device", "cuda:99", "cuda:99: "),
            # a model built only for the first video to extract: still before it
            ("--pose-opt", "nope=3", "nope", "--pose", "keypoint-rcnn", "--untrained")):
        res = CliRunner().invoke(extract_cli, [str(synth_dir), "--out", str(out), "--quiet",
                                               "--flow", "tvl1-cpu", opt, value, *extra])
        assert res.exit_code == 2, res.output
        assert f"Invalid value for {opt}: " in res.output and msg in res.output, res.output
        assert "Traceback" not in res.output
        assert not out.exists()  # nothing was decoded or written
    for n in ("0", "-1"):
        res = CliRunner().invoke(extract_cli, [str(synth_dir), "--out", str(out), "--batch-size", n])
        assert res.exit_code == 2 and f"'--batch-size': {n} is not in the range x>=1" in res.output
    assert not out.exists()


def test_devices_are_checked_against_the_machine(monkeypatch):
    torch = pytest.importorskip("torch")
    from aqa.extract.config import OptionError, resolve_device

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(OptionError, match="^cuda: CUDA is not available on this machine; use "
                                          "--device cpu or auto$") as ei:
        resolve_device("cuda")
    assert ei.value.option == "--device"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(OptionError, match=r"^cuda:2: this machine has 2 CUDA device\(s\), "
                                          "cuda:0..cuda:1; use --device cpu or auto$"):
        resolve_device("cuda:2")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(OptionError, match="^mps: PyTorch's MPS backend is not available"):
        resolve_device("mps")
    for bad in ("cuda:", "cuda:x", "CPU", "tpu"):
        with pytest.raises(OptionError, match="expected cpu, cuda, cuda:N, mps or auto"):
            resolve_device(bad)


def test_backbone_options_go_to_the_backbones_that_take_them():
    from types import SimpleNamespace

    from aqa.extract.config import OptionError
    from aqa.extract.runner import Extractor
    cfg = ExtractConfig(backbones=("i3d", "c3d"), backbone_options={"crop_size": 64,
                                                                     "feature_layer": "fc7"})
    routed = Extractor._route_backbone_options(SimpleNamespace(config=cfg))
    assert routed == {"c3d": {"feature_layer": "fc7"}, "i3d": {"crop_size": 64}}
    cfg = ExtractConfig(backbones=("c3d",), backbone_options={"crop_size": 64})
    with pytest.raises(OptionError, match=r"crop_size: not an option of c3d \(channel_order, "):
        Extractor._route_backbone_options(SimpleNamespace(config=cfg))
    cfg = ExtractConfig(backbones=(), backbone_options={"crop_size": 64})  # would only change the hash
    with pytest.raises(OptionError, match="crop_size: no --backbone is selected"):
        Extractor._route_backbone_options(SimpleNamespace(config=cfg))
    cfg = ExtractConfig(backbones=("i3d",), backbone_options={"resize": [128, 171], "clip_len": 8})
    assert Extractor._route_backbone_options(SimpleNamespace(config=cfg)) == {
        "i3d": {"resize": (128, 171), "clip_len": 8}}
    for key, bad, allowed in (("crop_size", "abc", "a positive integer"),
                              ("clip_len", 0, "a positive integer"),
                              ("crop_size", True, "a positive integer"),
                              ("resize", [128], "a positive integer or [height, width]")):
        cfg = ExtractConfig(backbones=("i3d",), backbone_options={key: bad})
        with pytest.raises(OptionError, match=re.escape(f"{key}={bad!r}: expected {allowed}") + "$"):
            Extractor._route_backbone_options(SimpleNamespace(config=cfg))


def test_cli_errors_are_one_line(synth_dir, tmp_path, no_weights, monkeypatch):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5" * 100)
    junk_pt = tmp_path / "junk.pt"
    junk_pt.write_bytes(b"not a checkpoint")
    one = str(sorted(synth_dir.glob("*.mp4"))[0])
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # as if the extra were not installed
    cases = [
        (["--out", str(junk)], "not a readable HDF5 file"),                               # CacheError
        (["--out", str(tmp_path / "a.h5"), "--pose", "blazepose"], "--no-deps mediapipe"),  # PoseError
        (["--out", str(tmp_path / "b.h5"), "--backbone", "i3d", "--streams", "rgb",         # state dict
          "--weights", f"i3d_rgb_imagenet={junk_pt}"], "as a PyTorch checkpoint"),
        (["--out", str(tmp_path / "c.h5"), "--pose", "keypoint-rcnn",                       # checksum
          "--weights", f"keypointrcnn_resnet50_fpn_coco={junk_pt}"], "checksum mismatch"),
    ]
    for args, msg in cases:
        res = CliRunner().invoke(extract_cli, [one, "--quiet", "--flow", "tvl1-cpu", *args])
        assert res.exit_code == 2, (args, res.output, res.exception)
        last = res.output.strip().splitlines()[-1]
        assert last.startswith("error: ") and msg in last, res.output
        assert "Traceback" not in res.output


@pytest.mark.slow
def test_frame_folders_are_videos(synth_dir, tmp_path):
    import cv2

    from aqa.extract.video import read_frames

    src = sorted(synth_dir.glob("*.mp4"))[0]
    vids = tmp_path / "v"
    clip = vids / "event" / "clipA"  # a leaf folder of frames, one level down
    clip.mkdir(parents=True)
    frames, _ = read_frames(src)
    for i, f in enumerate(frames):
        cv2.imwrite(str(clip / f"img_{i + 1:05d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    shutil.copy(src.with_suffix(".pose.json"), clip.parent / "clipA.pose.json")
    shutil.copy(src, vids / "whole.mp4")
    shutil.copy(src.with_suffix(".pose.json"), vids / "whole.pose.json")
    (vids / "notes").mkdir()  # a folder without images is not a video
    (vids / "notes" / "readme.txt").write_text("x")
    assert discover_videos([vids]) == [("event__clipA", clip), ("whole", vids / "whole.mp4")]
    assert discover_videos([clip]) == [("clipA", clip)]  # a frame folder named directly
    mixed = tmp_path / "mixed"  # videos with a cover image: a folder of videos, not of frames
    mixed.mkdir()
    (mixed / "a.mp4").write_bytes(b"")
    (mixed / "cover.jpg").write_bytes(b"")
    assert discover_videos([mixed]) == [("a", mixed / "a.mp4")]
    (vids / "poster").mkdir()  # one image is no frame sequence: left out, and said so
    (vids / "poster" / "cover.jpg").write_bytes(b"")
    with pytest.warns(UserWarning, match=r"left out 1 folder\(s\) holding a single image.*poster"):
        assert discover_videos([vids]) == [("event__clipA", clip), ("whole", vids / "whole.mp4")]
    with pytest.warns(UserWarning, match="single image"), pytest.raises(FileNotFoundError):
        run_extraction([vids / "poster"], tmp_path / "p.h5", ExtractConfig(**FAST), progress=False)
    shutil.rmtree(vids / "poster")
    out = tmp_path / "f.h5"
    s = run_extraction([vids], out, ExtractConfig(**FAST), device="cpu", progress=False)
    assert s.count("done") == 2 and not s.failed, s.failed
    assert verify(out).ok
    with CacheReader(out) as r:  # the frames give the same video as the file they came from
        np.testing.assert_array_equal(r.pose("event__clipA")["keypoints"],
                                      r.pose("whole")["keypoints"])
        assert r.video_attrs("event__clipA")["n_frames"] == len(frames)
        # relative to the input folder, not the path as given on the command line
        assert r.video_attrs("event__clipA")["source_relpath"] == "event/clipA"
        assert r.video_attrs("whole")["source_relpath"] == "whole.mp4"


def test_a_frame_folder_stamp_sees_its_frames_renamed(tmp_path):
    """Two frames swapped by renaming keep the total size and every file's mtime; the folder's
    own mtime moves, so the stamp differs and the hash (names and bytes) decides."""
    import os

    from aqa.extract.discover import file_sha256, source_stamp

    d = tmp_path / "clip"
    d.mkdir()
    (d / "1.png").write_bytes(b"first")
    (d / "2.png").write_bytes(b"other")
    for p in (d / "1.png", d / "2.png", d):
        os.utime(p, ns=(10**9, 10**9))
    stamp, sha = source_stamp(d), file_sha256(d)
    assert stamp == (10, 10**9)
    os.rename(d / "1.png", d / "t.png")
    os.rename(d / "2.png", d / "1.png")
    os.rename(d / "t.png", d / "2.png")
    assert [os.stat(d / n).st_mtime_ns for n in ("1.png", "2.png")] == [10**9, 10**9]
    assert source_stamp(d)[0] == 10 and source_stamp(d) != stamp and file_sha256(d) != sha


def test_pose_stage_shows_progress_when_the_runner_does(synth_dir):
    from aqa.extract.runner import Extractor

    ex = Extractor(ExtractConfig(**FAST), device="cpu", progress=True)
    seen = []
    real = ex.pose.estimate
    ex.pose.estimate = lambda *a, **k: seen.append(k.get("progress")) or real(*a, **k)
    ex.process(sorted(synth_dir.glob("*.mp4"))[0], {})
    assert seen == [True]


@pytest.mark.slow
def test_extraction_waits_for_a_reader_and_stops_clearly_when_locked(synth_dir, tmp_path,
                                                                    monkeypatch):
    from cachekit import hold_open

    from aqa.data import cache as cache_mod

    vids = sorted(synth_dir.glob("*.mp4"))
    out = tmp_path / "f.h5"
    run_extraction(vids[:1], out, ExtractConfig(**FAST), device="cpu", progress=False)
    proc = hold_open(out, "r", 1.0)  # e.g. `aqa-data verify` or a notebook reading the cache
    try:
        s = run_extraction(vids[:2], out, ExtractConfig(**FAST), device="cpu", progress=False)
    finally:
        proc.wait()
    assert s.count("done") == 1 and not s.failed, s.failed
    # a lock that outlasts the retries stops the run with a clear error and a manifest entry
    def locked(self, vid, attrs, arrays):
        raise cache_mod.CacheLockedError(f"{out}: locked by another process")
    monkeypatch.setattr(cache_mod.CacheWriter, "write_video", locked)
    with pytest.raises(cache_mod.CacheLockedError):
        run_extraction(vids[:3], out, ExtractConfig(**FAST), device="cpu", progress=False)
    (entry,) = json.loads((tmp_path / "f.h5.failures.json").read_text())["failed"]
    assert entry["stage"] == "write" and "locked by another process" in entry["error"]
    assert verify(out).ok and verify(out).n_videos == 2


@pytest.mark.slow
def test_source_relpath_is_relative_to_the_input_folder(synth_dir, tmp_path):
    from aqa.extract.runner import run_extraction_items

    (tmp_path / "a" / "sub").mkdir(parents=True)
    (tmp_path / "a" / "sub" / "z.mp4").write_bytes(b"")
    (tmp_path / "a" / "x.mp4").write_bytes(b"")
    assert discover_videos([tmp_path / "a"], with_relpath=True) == [
        ("sub__z", tmp_path / "a" / "sub" / "z.mp4", "sub/z.mp4"),
        ("x", tmp_path / "a" / "x.mp4", "x.mp4")]
    assert discover_videos([tmp_path / "a" / "sub" / "z.mp4"], with_relpath=True) == [
        ("z", tmp_path / "a" / "sub" / "z.mp4", "z.mp4")]  # a file named directly: its name
    src = sorted(synth_dir.glob("*.mp4"))[0]
    nested = tmp_path / "root" / "event"
    nested.mkdir(parents=True)
    shutil.copy(src, nested / "v.mp4")
    shutil.copy(src.with_suffix(".pose.json"), nested / "v.pose.json")
    out = tmp_path / "f.h5"
    run_extraction([str(tmp_path / "root")], out, ExtractConfig(**FAST), device="cpu", progress=False)
    run_extraction_items([("given", nested / "v.mp4")], out, ExtractConfig(**FAST), device="cpu",
                         progress=False, root=tmp_path / "root")
    with CacheReader(out) as r:
        assert r.video_attrs("event__v")["source_relpath"] == "event/v.mp4"
        assert r.video_attrs("given")["source_relpath"] == "event/v.mp4"


@pytest.fixture(scope="module")
def big_dir(tmp_path_factory):
    """One synthetic video rendered at 640x480 (a short side above the 256 default)."""
    from aqa.data.synthetic import render_dataset

    d = tmp_path_factory.mktemp("big")
    render_dataset(d, n=1, kind="single", seed=5, n_frames=32, size=(640, 480), progress=False)
    return d


def test_default_resize_sizes_config(synth_dir):
    cfg = ExtractConfig(**FAST)
    assert cfg.short_side == 256 and cfg.as_dict()["short_side"] == 256  # hashed with the config
    assert ExtractConfig(frame_height=120, **FAST).short_side is None    # an explicit height wins
    assert ExtractConfig(short_side=0, **FAST).short_side is None        # full resolution on request
    assert ExtractConfig(short_side=128, **FAST).short_side == 128
    with pytest.raises(ValueError, match="not both"):
        ExtractConfig(frame_height=120, short_side=200, **FAST)
    with pytest.raises(ValueError, match="short_side must be a positive integer"):
        ExtractConfig(short_side="big", **FAST)
    res = CliRunner().invoke(extract_cli, ["run", "--help"])
    assert "--short-side" in res.output and "256" in res.output and "Never upscales" in res.output


@pytest.mark.slow
def test_large_video_is_processed_at_256_short_side_with_patches_on_the_joints(big_dir):
    from aqa.extract.patches import crop_resize, joint_boxes
    from aqa.extract.runner import Extractor
    from aqa.extract.video import read_frames

    video = sorted(big_dir.glob("*.mp4"))[0]
    ex = Extractor(ExtractConfig(**FAST), device="cpu", progress=False)
    seen = []
    real = ex.flow.compute_video
    ex.flow.compute_video = lambda gray, **k: seen.append(gray.shape) or real(gray, **k)
    attrs, arrays = ex.process(video, {})
    assert ex.cache_config()["short_side"] == 256
    assert seen == [(32, 256, 341)]                       # flow ran on the downscaled frames
    assert (attrs["height"], attrs["width"]) == (256, 341)
    assert (attrs["source_height"], attrs["source_width"]) == (480, 640)
    side = json.loads(video.with_suffix(".pose.json").read_text())
    src = np.asarray(side["persons"][0]["keypoints"], np.float32)           # source pixels
    kp = arrays["pose/keypoints"][:, 0]
    sx, sy = 341 / 640, 256 / 480
    np.testing.assert_allclose(kp[..., 0], src[..., 0] * sx, rtol=1e-5, equal_nan=True)
    np.testing.assert_allclose(kp[..., 1], src[..., 1] * sy, rtol=1e-5, equal_nan=True)
    # a patch cut around a stored joint of the processed frames shows what the patch around the
    # sidecar joint of the source frame shows (and patches at unscaled coordinates would not)
    small, _ = read_frames(video, short_side=256)
    full, _ = read_frames(video)
    src_box = np.asarray(side["persons"][0]["boxes"], np.float32)
    jb = joint_boxes(kp, arrays["pose/boxes"][:, 0], frame_size=small.shape[1:3])
    jb_src = joint_boxes(src, src_box, frame_size=full.shape[1:3])

    def diff(frames_a, boxes_a, frames_b, boxes_b):
        d = [np.abs(crop_resize(frames_a[f:f + 1], boxes_a[f, j][None], 24).astype(float)
                    - crop_resize(frames_b[f:f + 1], boxes_b[f, j][None], 24)).mean()
             for f in range(0, 32, 4) for j in range(17)]
        return float(np.mean(d))

    good = diff(small, jb, full, jb_src)
    wrong = diff(small, jb_src, full, jb_src)       # source coordinates used on the resized frames
    assert good < 8 and good < wrong / 3, (good, wrong)


def test_small_videos_are_not_upscaled(synth_dir):
    from aqa.extract.runner import Extractor

    ex = Extractor(ExtractConfig(**FAST), device="cpu", progress=False)
    attrs, _ = ex.process(sorted(synth_dir.glob("*.mp4"))[0], {})
    assert (attrs["height"], attrs["width"]) == (72, 96)


def test_fragments_pad_short_videos_with_zero_frames(synth_dir):
    """Li et al. pad short videos with zero frames: 32 frames, 3 x 16-frame fragments."""
    from aqa.extract.runner import Extractor
    from aqa.extract.sampling import sample
    from aqa.extract.video import read_frames
    from aqa.extract.weightfree import FAMILIES

    cfg = ExtractConfig(sampling="fragments", sampling_options={"n_fragments": 3, "length": 16},
                        flow="tvl1-cpu", flow_options=FAST_FLOW)
    ex = Extractor(cfg, device="cpu", progress=False)
    video = sorted(synth_dir.glob("*.mp4"))[0]
    attrs, arrays = ex.process(video, {})
    assert attrs["n_padded"] == 16
    valid = FAMILIES["kin_pose"].slices("joints")["valid"]
    kin = arrays["features/kin_pose/joints"]
    assert (kin[:2, :, valid] == 1).all() and not kin[2].any()      # the padded fragment: no person
    hof = arrays["features/hof_flow/whole"]
    assert hof[2, 8] == 1.0 and hof[2, :8].sum() == 0 and hof[:2, :8].sum() > 0  # zero flow
    np.testing.assert_array_equal(arrays["features/hof_flow/clip_end"], [15, 31, 31])

    class Recorder:  # a backbone stand-in that keeps what it is fed
        name, stream, crop_size = "rec", "rgb", 8

        def __init__(self):
            self.seen = []

        def extract(self, x, batch_size, mode, progress=False):
            self.seen.append(np.array(x))
            return np.asarray(x, float).reshape(len(x), -1).mean(1, keepdims=True)

    frames, _ = read_frames(video)
    samp = sample("fragments", len(frames), n_fragments=3, length=16)
    jb = np.tile(np.array([10.0, 10.0, 30.0, 30.0]), (len(frames), 17, 1))
    net = Recorder()
    whole, joints = ex._backbone_features(net, frames, samp, jb, len(frames))
    clips = net.seen[0]                                              # (3, 16, H, W, 3) whole clips
    assert (clips[2] == 0).all() and (clips[:2].reshape(32, -1).max(1) > 0).all()
    assert whole[2] == 0 and (whole[:2] > 0).all()
    assert joints.shape == (3, 17, 1) and not joints[2].any() and (joints[:2] > 0).all()


@pytest.mark.slow
def test_checkpoint_models_resolve_at_once_and_build_on_demand(tmp_path, monkeypatch):
    """Keypoint R-CNN: a missing checkpoint fails at construction; with --untrained the provenance
    (hashed by the resume rule) is known before the model is built, and the built model agrees."""
    from aqa.extract.runner import Extractor
    from aqa.extract.weights import MissingWeightsError

    monkeypatch.setenv("AQA_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = ExtractConfig(pose="keypoint-rcnn", **FAST)
    with pytest.raises(MissingWeightsError, match="keypointrcnn_resnet50_fpn_coco"):
        Extractor(cfg, device="cpu", progress=False)
    ex = Extractor(cfg, device="cpu", untrained=True, progress=False)
    before = ex.cache_config()
    assert ex.pose is None and before["untrained"] is True and before["checkpoints"] == {}
    with pytest.warns(UserWarning, match="RANDOM weights"):
        ex.build()
    assert ex.pose.untrained and ex.cache_config() == before


def test_cli_warnings_are_one_plain_line(tmp_path):
    """A warning in a command prints as `warning: ...`, not Python's file:line and code line (run as
    the console script: pytest records warnings in-process); in-process the formatter is restored
    when the command ends."""
    import subprocess
    import warnings
    (tmp_path / "vids" / "poster").mkdir(parents=True)
    (tmp_path / "vids" / "poster" / "cover.jpg").write_bytes(b"")
    exe = Path(sys.executable).with_name("aqa-extract")
    res = subprocess.run([str(exe), str(tmp_path / "vids"), "--out", str(tmp_path / "f.h5")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert res.stderr.splitlines()[0] == ("warning: left out 1 folder(s) holding a single image, not a "
                                          f"frame sequence: {tmp_path / 'vids' / 'poster'}")
    assert "UserWarning" not in res.stderr and "runner.py" not in res.stderr
    assert res.stderr.splitlines()[1].startswith("error: no video files")
    before = warnings.formatwarning
    with pytest.warns(UserWarning, match="single image"):
        CliRunner().invoke(extract_cli, [str(tmp_path / "vids"), "--out", str(tmp_path / "f.h5")])
    assert warnings.formatwarning is before
