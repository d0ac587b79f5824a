"""Fuzzing every reader of files that may come from someone else (annotation pickles and .mat
files, pose files, labels CSVs, head files, checkpoints): thousands of seeded mutations (bytes
flipped, truncated, inserted; values swapped for other types; crafted numpy dtypes; pickled
payloads), each run in a worker subprocess. Every input must end in success or the reader's own
error type with a one-line message: never another exception, a hang, a crash or a payload.
Deterministic (fixed seeds); each test prints its tally."""
import json
import pickle
import random
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

import fuzzkit as fk
import picklekit as pk

SEED = 22
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def _report(name, cases, tally, t0):
    print(f"\nfuzz {name}: {len(cases)} inputs in {time.time() - t0:.1f} s: "
          + ", ".join(f"{r} ok={t['ok']} error={t['error']}" for r, t in sorted(tally.items())))


# ----------------------------------------------------------------------------- annotation files
def _subset(d: Path, out: Path, keep: int = 6) -> None:
    """A small annotation folder like the real one ``d``: each split list cut to ``keep`` keys,
    each annotation dict to the keys the kept splits name (plus one unsplit key)."""
    from aqa.data.safepickle import safe_load
    out.mkdir(parents=True)
    loaded = {p.name: safe_load(p) for p in d.glob("*.pkl")}
    keys = set()
    for name, obj in loaded.items():
        if isinstance(obj, list):
            loaded[name] = obj[:keep]
            keys |= set(obj[:keep])
    for name, obj in loaded.items():
        if isinstance(obj, dict) and keys and not any(isinstance(v, list) and v and isinstance(v[0], list)
                                                      for v in obj.values()):
            extra = next((k for k in obj if k not in keys), None)
            loaded[name] = {k: v for k, v in obj.items() if k in keys or k == extra}
        (out / name).write_bytes(pickle.dumps(loaded[name], protocol=3))
    for p in d.glob("*.mat"):
        shutil.copy(p, out / p.name)


def _synthetic_seeds(root: Path) -> dict[str, Path]:
    from scipy.io import savemat

    from test_datasets import _dive, _jig, _jig_data, _mtl, _mtl_ann
    dirs = {n: root / n for n in ("aqa7", "mtl_aqa", "unlv_dive", "jigsaws", "finediving")}
    for d in dirs.values():
        d.mkdir(parents=True)
    savemat(dirs["aqa7"] / "consolidated_train_list.mat",
            {"consolidated_train_list": np.array([[1, 54, 8415.0], [2, 7, 1667.0]])})
    savemat(dirs["aqa7"] / "consolidated_test_list.mat", {"consolidated_test_list": np.array([[6, 90, 9936.0]])})
    _mtl(dirs["mtl_aqa"], _mtl_ann(), [(1, 1), (12, 3)], [(4, 49)])
    u8 = np.uint8
    for name, obj in (("final_annotations_dict.pkl", {(1, 63): _dive(59.2, 3.2), (1, 65): _dive(66.0, 3.0)}),
                      ("train_split_370_4.pkl", [(u8(1), u8(63))]), ("test_split_370_4.pkl", [(u8(1), u8(65))])):
        (dirs["unlv_dive"] / name).write_bytes(pickle.dumps(obj, protocol=3))
    _jig(dirs["jigsaws"], *_jig_data())
    for name, obj in (("fine-grained_annotation_aqa.pkl", {("01", 1): ["407c", 88.0, 3.2, np.array([2, 34]),
                                                                      np.array([4, 4, 4, 25, 36])]}),
                      ("train_split.pkl", []), ("test_split.pkl", [("01", 1)])):
        (dirs["finediving"] / name).write_bytes(pickle.dumps(obj, protocol=3))
    return dirs


def _annotation_seeds(root: Path) -> dict[str, Path]:
    if not SHARED.is_dir():
        return _synthetic_seeds(root)
    return {n: (_subset(SHARED / n, root / n) or root / n) for n in
            ("aqa7", "mtl_aqa", "unlv_dive", "jigsaws", "finediving")}


def _shared(levels=50, kind=list):
    """``kind`` of two copies of ``kind`` of two copies ... (small as a pickle, 2**levels as a tree)."""
    x = kind([1])
    for _ in range(levels):
        x = kind([x, x])
    return x


def _pickle_swaps(marker):
    crafted = pk.crafted_numpy_values()
    return fk.JSON_SWAPS + tuple(fk.payloads(marker)) + tuple(crafted.values()) + (
        np.zeros((2, 2)), np.array([1, "x"], dtype=object), np.float32(3), np.uint8(7), (1,), ("a", 1),
        np.zeros(0), np.array("s"), np.zeros((1, 0, 3)), np.array([np.nan]), b"\xff" * 3, {1, 2},
        np.zeros(2, dtype=[("a", "<i4")]), np.datetime64("2020-01-01"), 1 + 2j, range(3), slice(1),
        _shared(), _shared(kind=tuple))


def _mat_value(rng):
    return rng.choice([np.array([[1.0, 2.0, 3.0]]), np.array([["a", "b", "c"]]), np.zeros((0, 3)),
                       np.zeros((2, 3, 1)), np.array([[np.nan, 1, 2]]), np.array([[1e308, -1, 0]]),
                       np.array([[1 + 2j, 1, 1]]), {"a": np.ones(3)}, np.array([[1, 2]], dtype=object),
                       np.array([[7, 1, 100]], dtype=np.uint8), "text", np.ones((3, 3)) * 2])


@pytest.mark.slow
def test_fuzz_annotation_readers(tmp_path):
    from scipy.io import savemat

    from aqa.data.safepickle import safe_load
    t0 = time.time()
    rng = random.Random(SEED)
    marker = tmp_path / "pwned"
    seeds = _annotation_seeds(tmp_path / "seeds")
    swaps = _pickle_swaps(marker)
    per = {"aqa7": 200, "mtl_aqa": 200, "unlv_dive": 200, "jigsaws": 240, "finediving": 200}
    cases = []
    loaded = {}
    for name, n in per.items():
        files = sorted(p for p in seeds[name].iterdir())
        for _ in range(n):
            d = tmp_path / "cases" / str(len(cases))
            d.mkdir(parents=True)
            target = rng.choice(files)
            for f in files:                       # the unchanged files: links to the seeds
                if f != target:
                    (d / f.name).symlink_to(f)
            if rng.random() < 0.45:
                data, how = fk.mutate_bytes(target.read_bytes(), rng)
                (d / target.name).write_bytes(data)
            elif target.suffix == ".mat":
                var = target.stem
                how = "mat value"
                savemat(d / target.name, {var if rng.random() < 0.9 else "other": _mat_value(rng)})
            else:
                if target not in loaded:
                    loaded[target] = safe_load(target)
                obj, how = fk.swap_node(loaded[target], rng, swaps)
                (d / target.name).write_bytes(pickle.dumps(obj, protocol=rng.choice([0, 2, 3, 4, 5])))
            cases.append({"i": len(cases), "reader": f"dataset:{name}", "path": str(d),
                          "how": f"{target.name}: {how}"})
    # the unpickler alone: crafted dtypes, payloads and deep nesting anywhere in plain data
    for k in range(200):
        p = tmp_path / "cases" / f"p{k}.pkl"
        if k == 0:
            p.write_bytes(fk.deep_pickle())
            how = "deep"
        elif k < 20:
            p.write_bytes(pk.dtype_changed_after_use(build_first=bool(k % 2)))
            how = "dtype rebuilt"
        else:
            base = {"a": [1, 2.5, "x"], "b": {"c": np.arange(3)}, "d": (np.float64(1), None)}
            obj, how = fk.swap_node(base, rng, swaps)
            p.write_bytes(pickle.dumps(obj, protocol=rng.choice([2, 3, 4, 5])))
        cases.append({"i": len(cases), "reader": "pickle", "path": str(p), "how": how})
    tally = fk.check(cases, fk.run_cases(cases, tmp_path), [marker])
    _report("annotations", cases, tally, t0)
    assert len(cases) >= 1200 and sum(t["error"] for t in tally.values()) > len(cases) / 4


# ----------------------------------------------------------------------------- pose files
def _pose_seeds(root: Path) -> list[Path]:
    from test_pose import person
    root.mkdir()
    b, s, k = person(100, 150, 120, 0.9)
    box = [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]
    coco = [{"image_id": f, "category_id": 1, "keypoints": k.reshape(-1).tolist(), "score": float(s), "bbox": box}
            for f in range(3)]
    alpha = [{"image_id": f"{f}.jpg", "category_id": 1, "keypoints": np.concatenate(
        [k, np.tile(k[:1], (9, 1))]).reshape(-1).tolist(), "score": 2.5, "box": box, "idx": 1} for f in range(2)]
    kps = np.stack([k, k])
    sidecar = {"format": "aqa-synth-pose", "version": 1, "fps": 25, "width": 320, "height": 240, "n_frames": 2,
               "phases": [], "persons": [{"role": 0, "keypoints": kps.tolist(), "boxes": [b.tolist(), b.tolist()]}]}
    docs = {"coco.json": coco, "cocodict.json": {"annotations": coco, "images": [{"id": 0}]},
            "alpha.json": alpha, "syn.pose.json": sidecar}
    out = []
    for name, doc in docs.items():
        (root / name).write_text(json.dumps(doc))
        out.append(root / name)
    op = root / "openpose"
    op.mkdir()
    for f in range(2):
        (op / f"clip_{f:012d}_keypoints.json").write_text(json.dumps(
            {"version": 1.3, "people": [{"pose_keypoints_2d": np.ones(75).tolist()}]}))
    out.append(op)
    return out


@pytest.mark.slow
def test_fuzz_pose_files(tmp_path):
    t0 = time.time()
    rng = random.Random(SEED + 1)
    seeds = _pose_seeds(tmp_path / "seeds")
    cases = []
    for k in range(1000):
        seed = rng.choice(seeds)
        src = rng.choice(sorted(seed.iterdir())) if seed.is_dir() else seed
        if seed.is_dir():
            dst_dir = tmp_path / "cases" / str(k)
            shutil.copytree(seed, dst_dir)
            dst, path = dst_dir / src.name, dst_dir
        else:
            (tmp_path / "cases").mkdir(exist_ok=True)
            dst = path = tmp_path / "cases" / f"{k}.{seed.name}"
        if k < 3:
            dst.write_bytes(fk.deep_json())
            how = "deep"
        elif rng.random() < 0.4:
            data, how = fk.mutate_bytes(src.read_bytes(), rng)
            dst.write_bytes(data)
        else:
            obj, how = fk.swap_node(json.loads(src.read_text()), rng, fk.JSON_SWAPS)
            dst.write_text(json.dumps(obj))
        cases.append({"i": k, "reader": "pose", "path": str(path), "how": f"{src.name}: {how}"})
    tally = fk.check(cases, fk.run_cases(cases, tmp_path))
    _report("pose", cases, tally, t0)
    assert tally["pose"]["error"] > 300 and tally["pose"]["ok"] > 50


# ----------------------------------------------------------------------------- labels CSV
def test_fuzz_labels_csv(tmp_path):
    from aqa.data.labels import LabelRow, write_labels_csv
    t0 = time.time()
    rng = random.Random(SEED + 2)
    seed = write_labels_csv([LabelRow(f"v{i}", 50.0 + i, "dive", 2.5, "train" if i % 3 else "test",
                                      {"judge1": 8.5, "execution": 7.0}) for i in range(8)], tmp_path / "seed.csv")
    text = seed.read_text()
    cells = ("", "nan", "inf", "-", "1e999", "x", '"', '""', ",", "\r", "\ufeff", "\x00", "é", "1,2", "video_id")
    cases = []
    (tmp_path / "cases").mkdir()
    for k in range(500):
        p = tmp_path / "cases" / f"{k}.csv"
        if rng.random() < 0.5:
            data, how = fk.mutate_bytes(("\ufeff" if k % 7 == 0 else "") .encode() + text.encode(), rng)
            p.write_bytes(data)
        else:
            lines = text.splitlines()
            li = rng.randrange(len(lines))
            parts = lines[li].split(",")
            parts[rng.randrange(len(parts))] = rng.choice(cells)
            lines[li] = ",".join(parts)
            how = f"line {li + 1} cell"
            p.write_text("\n".join(lines) + "\n")
        cases.append({"i": k, "reader": "labels_csv", "path": str(p), "how": how})
    tally = fk.check(cases, fk.run_cases(cases, tmp_path))
    _report("labels", cases, tally, t0)
    assert tally["labels_csv"]["error"] > 100 and tally["labels_csv"]["ok"] > 50


# ----------------------------------------------------------------------------- head files, checkpoints
def _head_seeds(root: Path):
    torch = pytest.importorskip("torch")
    from aqa.heads.base import save_head
    from aqa.heads.mlp import SceneMLPRegressor
    from aqa.heads.svr import c3d_svr
    root.mkdir()
    rng = np.random.RandomState(0)
    X = rng.randn(12, 2, 3).astype(np.float32)
    y = X[:, :, 0].sum(1)
    mlp = SceneMLPRegressor(encoder_dim=4, hidden_dim=3, max_iter=2, random_state=0).fit(X, y)
    seeds = [mlp.save(root / "mlp.pt", config={"head": "mlp"}),
             save_head(c3d_svr().fit(X, y), root / "svr.pt", config={"head": "c3d-svr"})]
    sd = {"fc.weight": torch.ones(2, 3), "fc.bias": torch.zeros(2), "bn.weight": torch.ones(2),
          "bn.bias": torch.zeros(2), "bn.running_mean": torch.zeros(2), "bn.running_var": torch.ones(2)}
    torch.save(sd, root / "ckpt.pt")
    torch.save({"model_state": sd, "epoch": 3}, root / "pv.pyth")
    return seeds, [root / "ckpt.pt", root / "pv.pyth"]


def _swap_payload(payload: dict, rng, marker):
    import torch
    p = dict(payload)
    key = rng.choice(sorted(p))
    v = p[key]
    choice = rng.random()
    if isinstance(v, torch.Tensor) and v.dtype == torch.uint8 and choice < 0.6:   # skops bytes
        data, how = fk.mutate_bytes(v.numpy().tobytes(), rng)
        p[key] = torch.frombuffer(bytearray(data or b"\x00"), dtype=torch.uint8)
    elif isinstance(v, str) and key.endswith("_json") and choice < 0.6:
        obj, how = fk.swap_node(json.loads(v), rng, fk.JSON_SWAPS)
        p[key] = json.dumps(obj)
    elif isinstance(v, dict) and v and choice < 0.6:                               # a state dict
        inner = dict(v)
        k = rng.choice(sorted(inner))
        inner[k] = rng.choice([torch.zeros(1), torch.zeros(7, 7), torch.zeros(2, dtype=torch.int64), 1.5,
                               "x", None, torch.zeros(0), torch.full((2, 3), float("nan"))])
        p[key], how = inner, f"{key}[{k}]"
    else:
        p[key] = rng.choice(["aqa.heads.jrg:torch.os.system", "aqa.heads.base:importlib.import_module",
                             "mlp", "c3d-svr", "sklearn-pickle", "torch", "sklearn-skops", 2, 99, -1, None,
                             torch.zeros(3), [1], {"a": 1}, "", "{}", "[]", fk.Evil(len, "x")]
                            + fk.payloads(marker))
        how = f"{key} -> {type(p[key]).__name__}"
    return p, how


@pytest.mark.slow
def test_fuzz_head_files_and_checkpoints(tmp_path):
    torch = pytest.importorskip("torch")
    t0 = time.time()
    rng = random.Random(SEED + 3)
    marker = tmp_path / "pwned"
    heads, ckpts = _head_seeds(tmp_path / "seeds")
    (tmp_path / "cases").mkdir()
    cases, loaded = [], {}
    for k in range(500):
        is_head = k < 300
        seed = rng.choice(heads if is_head else ckpts)
        p = tmp_path / "cases" / f"{k}{seed.suffix}"
        if rng.random() < 0.35:
            data, how = fk.mutate_bytes(seed.read_bytes(), rng)
            p.write_bytes(data)
        else:
            if seed not in loaded:
                loaded[seed] = torch.load(seed, weights_only=True)
            payload = dict(loaded[seed])
            if "model_state" in payload and rng.random() < 0.5:
                inner, how = _swap_payload(payload["model_state"], rng, marker)
                payload = {**payload, "model_state": inner}
            else:
                payload, how = _swap_payload(payload, rng, marker)
            torch.save(payload, p)
        reader = "head" if is_head else ("checkpoint:pytorchvideo_checkpoint" if seed.suffix == ".pyth"
                                         else "checkpoint:torch_state_dict")
        cases.append({"i": k, "reader": reader, "path": str(p), "how": f"{seed.name}: {how}"})
    tally = fk.check(cases, fk.run_cases(cases, tmp_path), [marker])
    _report("heads+checkpoints", cases, tally, t0)
    assert tally["head"]["ok"] > 20 and tally["head"]["error"] > 150


# ----------------------------------------------------------------------------- what the fuzzer found
def test_pose_values_of_the_wrong_type_are_pose_file_errors(tmp_path):
    from aqa.extract.pose.base import PoseFileError
    from aqa.extract.pose.files import load_pose_file
    good = {"image_id": 0, "category_id": 1, "keypoints": [1.0] * 51, "score": 0.9, "bbox": [0, 0, 5, 5]}
    for bad in ({"keypoints": [{}] * 51}, {"keypoints": [1.0] * 50 + [[1, 2]]}, {"keypoints": [""] * 51},
                {"bbox": [0, 0, "x", 5]}):
        p = tmp_path / "p.json"
        p.write_text(json.dumps([{**good, **bad}]))
        with pytest.raises(PoseFileError, match=r"^pose file .*p\.json: ") as err:
            load_pose_file(p)
        assert "\n" not in str(err.value)
    p.write_bytes(fk.deep_json(50000))
    with pytest.raises(PoseFileError, match="not valid JSON"):
        load_pose_file(p)


def test_annotation_errors_show_values_on_one_line(tmp_path):
    from test_datasets import _jig, _jig_data

    from aqa.data.datasets import read_jigsaws
    labels, splits = _jig_data()
    for change, match in (({"Suturing": [1, [], [], []]}, "fold 0 of 'Suturing' is a int"),
                          ({"Suturing": [[np.zeros((3, 3))], [], [], []]}, r"holds array\(shape=\(3, 3\), dtype=float64\)"),
                          ):
        d = tmp_path / str(len(change))
        d.mkdir(exist_ok=True)
        _jig(d, labels, {**splits, **change})
        with pytest.raises(ValueError, match=match) as err:
            read_jigsaws(d)
        assert "\n" not in str(err.value)
    # a field renamed to a number: the message lists the fields (ints and strs, was a TypeError)
    from test_datasets import _mtl, _mtl_ann

    from aqa.data.datasets import read_mtl_aqa
    ann = _mtl_ann()
    ann[(1, 1)][0] = ann[(1, 1)].pop("final_score")
    (tmp_path / "mtl").mkdir()
    d = _mtl(tmp_path / "mtl", ann, [(1, 1), (12, 3)], [(4, 49)])
    with pytest.raises(ValueError, match=r"lacks field\(s\) \['final_score'\]; has 'armstand', .* and 1 more"):
        read_mtl_aqa(d)


@pytest.mark.parametrize("content", ["garbage", "not-tensors", "payload"])
def test_keypoint_rcnn_checkpoint_that_is_not_one_is_a_one_line_error(tmp_path, content):
    torch = pytest.importorskip("torch")
    from aqa.extract.backbones.base import StateDictMismatchError
    from aqa.extract.pose.rcnn import _read_state_dict
    p, marker = tmp_path / "k.pth", tmp_path / "pwned"
    if content == "garbage":
        p.write_bytes(b"PK\x03\x04" + bytes(100))
    elif content == "not-tensors":
        torch.save({"backbone.body.conv1.weight": [1, 2]}, p)
    else:
        torch.save({"model": fk.payloads(marker)[0]}, p)
    with pytest.raises(StateDictMismatchError) as err:
        _read_state_dict(p)
    assert "\n" not in str(err.value) and str(p) in str(err.value) and not marker.exists()


@pytest.mark.slow
def test_keypoint_rcnn_checkpoint_of_other_shapes_is_a_one_line_error(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    from aqa.extract.backbones.base import StateDictMismatchError
    from aqa.extract.pose import get_pose_backend, rcnn
    p = tmp_path / "k.pth"
    torch.save({"model": {"backbone.body.conv1.weight": torch.zeros(1)}}, p)
    # past the sha256 check (a checkpoint registered without a published checksum is read as is)
    monkeypatch.setattr(rcnn.KeypointRCNNBackend, "resolve_checkpoint",
                        classmethod(lambda cls, *a, **k: (p, {"keypointrcnn_resnet50_fpn_coco": "x"})))
    with pytest.raises(StateDictMismatchError) as err:
        get_pose_backend("keypoint-rcnn", min_size=64, max_size=64)
    assert "\n" not in str(err.value) and str(p) in str(err.value)
