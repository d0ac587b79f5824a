"""Tests for aqa.extract.weights: resolution order, error messages, checksums, explicit fetch."""
import dataclasses
import hashlib
import json
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from aqa.extract import weights as W


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """Isolated HOME and $AQA_WEIGHTS_DIR."""
    home = tmp_path / "home"
    env = tmp_path / "envdir"
    home.mkdir()
    env.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv(W.ENV_VAR, str(env))
    W._HASH_CACHE.clear()
    return {"home": home / ".cache" / "aqa" / "weights", "env": env, "tmp": tmp_path}


@pytest.fixture
def no_network(monkeypatch):
    """Make any download attempt fail loudly."""
    def fail(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(urllib.request, "urlopen", fail)


def _put(directory: Path, name: str, content: bytes = b"weights") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    p = directory / W.REGISTRY[name].filename
    p.write_bytes(content)
    return p


def test_registry_has_required_entries_with_public_urls():
    expected = {
        "i3d_rgb_imagenet": "rgb_imagenet.pt",
        "i3d_flow_imagenet": "flow_imagenet.pt",
        "i3d_rgb_kinetics_hassony2": "model_rgb.pth",
        "i3d_r50_kinetics": "I3D_8x8_R50.pyth",
        "c3d_sports1m": "c3d.pickle",
        "keypointrcnn_resnet50_fpn_coco": "keypointrcnn_resnet50_fpn_coco-fc266e95.pth",
        "keypointrcnn_resnet50_fpn_coco_legacy": "keypointrcnn_resnet50_fpn_coco-9f466800.pth",
        "detectron2_keypoint_rcnn_R_50_FPN_3x": "model_final_a6e10b.pkl",
    }
    for name, fn in expected.items():
        spec = W.REGISTRY[name]
        assert spec.name == name and spec.filename == fn
        assert spec.url.startswith(("http://", "https://")) and spec.url.endswith(fn)
        assert spec.used_by and spec.description and spec.format


@pytest.mark.slow
def test_torchvision_entries_match_torchvision_and_carry_hash_prefix():
    from torchvision.models.detection import KeypointRCNN_ResNet50_FPN_Weights as KW

    assert W.REGISTRY["keypointrcnn_resnet50_fpn_coco"].url == KW.COCO_V1.url
    assert W.REGISTRY["keypointrcnn_resnet50_fpn_coco_legacy"].url == KW.COCO_LEGACY.url
    for name in ("keypointrcnn_resnet50_fpn_coco", "keypointrcnn_resnet50_fpn_coco_legacy"):
        spec = W.REGISTRY[name]
        assert spec.sha256_prefix and spec.filename.endswith(f"-{spec.sha256_prefix}.pth")


def test_resolution_order_explicit_then_env_then_home(dirs, tmp_path):
    name = "i3d_rgb_imagenet"
    in_home = _put(dirs["home"], name, b"home")
    assert W.resolve(name) == in_home
    in_env = _put(dirs["env"], name, b"env")
    assert W.resolve(name) == in_env
    explicit = tmp_path / "mine.pt"
    explicit.write_bytes(b"explicit")
    assert W.resolve(name, overrides={name: str(explicit)}) == explicit
    # an override for another checkpoint does not affect this one
    assert W.resolve(name, overrides={"c3d_sports1m": str(explicit)}) == in_env


def test_home_cache_used_when_env_unset(dirs, monkeypatch):
    monkeypatch.delenv(W.ENV_VAR)
    p = _put(dirs["home"], "c3d_sports1m")
    assert W.search_dirs() == [dirs["home"]]
    assert W.resolve("c3d_sports1m") == p


def test_missing_file_message_says_what_to_put_where(dirs, no_network):
    spec = W.REGISTRY["i3d_flow_imagenet"]
    with pytest.raises(W.MissingWeightsError) as ei:
        W.resolve(spec.name)
    msg = str(ei.value)
    assert f"Put the file {spec.filename} in {dirs['env']}" in msg
    assert str(dirs["home"]) in msg
    assert spec.url in msg
    assert f"aqa-extract weights fetch {spec.name}" in msg
    assert "--untrained" in msg and f"--weights {spec.name}=" in msg


def test_untrained_missing_returns_none_but_present_returns_path(dirs):
    assert W.resolve("c3d_sports1m", untrained=True) is None
    p = _put(dirs["env"], "c3d_sports1m")
    assert W.resolve("c3d_sports1m", untrained=True) == p


def test_unknown_name_is_an_error(dirs):
    with pytest.raises(W.WeightsError, match="unknown checkpoint 'nope'"):
        W.resolve("nope")


def test_parse_overrides_ok_and_errors(dirs, tmp_path):
    f = tmp_path / "x.pt"
    f.write_bytes(b"x")
    assert W.parse_weight_overrides([f"i3d_rgb_imagenet={f}"]) == {"i3d_rgb_imagenet": str(f.resolve())}
    assert W.parse_weight_overrides(None) == {}
    with pytest.raises(W.BadOverrideError, match="expected NAME=PATH"):
        W.parse_weight_overrides(["i3d_rgb_imagenet"])
    with pytest.raises(W.BadOverrideError, match="unknown checkpoint 'bogus'"):
        W.parse_weight_overrides([f"bogus={f}"])
    with pytest.raises(W.BadOverrideError, match="no such file"):
        W.parse_weight_overrides([f"i3d_rgb_imagenet={tmp_path / 'absent.pt'}"])
    with pytest.raises(W.BadOverrideError, match="more than once"):
        W.parse_weight_overrides([f"c3d_sports1m={f}", f"c3d_sports1m={f}"])
    assert issubclass(W.BadOverrideError, ValueError)
    with pytest.raises(W.BadOverrideError, match="no such file"):
        W.resolve("c3d_sports1m", overrides={"c3d_sports1m": str(tmp_path / "gone")})


def test_sha256_file_streams_and_caches(tmp_path, monkeypatch):
    W._HASH_CACHE.clear()
    p = tmp_path / "f.bin"
    data = bytes(range(256)) * 5000
    p.write_bytes(data)
    assert W.sha256_file(p, chunk_size=1000) == hashlib.sha256(data).hexdigest()
    # second call is served from the cache: make reading impossible and call again
    monkeypatch.setattr("builtins.open", lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-read")))
    assert W.sha256_file(p) == hashlib.sha256(data).hexdigest()
    monkeypatch.undo()
    p.write_bytes(data + b"!")  # size changes -> recomputed
    assert W.sha256_file(p) == hashlib.sha256(data + b"!").hexdigest()


def test_verify_prefix_and_full_checksum(dirs, monkeypatch):
    content = b"pretend checkpoint"
    digest = hashlib.sha256(content).hexdigest()
    name = "keypointrcnn_resnet50_fpn_coco"
    good = dataclasses.replace(W.REGISTRY[name], sha256_prefix=digest[:8])
    monkeypatch.setitem(W.REGISTRY, name, good)
    p = _put(dirs["env"], name, content)
    assert W.verify(name, p) is True
    assert W.resolve(name) == p
    bad = dataclasses.replace(good, sha256_prefix="00000000" if digest[:8] != "00000000" else "11111111")
    monkeypatch.setitem(W.REGISTRY, name, bad)
    with pytest.raises(W.ChecksumError, match="checksum mismatch for 'keypointrcnn_resnet50_fpn_coco'"):
        W.resolve(name)
    assert W.resolve(name, check=False) == p
    full = dataclasses.replace(W.REGISTRY["c3d_sports1m"], sha256="ab" * 32)
    monkeypatch.setitem(W.REGISTRY, "c3d_sports1m", full)
    with pytest.raises(W.ChecksumError, match=digest):
        W.verify("c3d_sports1m", p)


def test_verify_without_published_checksum_is_none(dirs):
    p = _put(dirs["env"], "i3d_r50_kinetics")
    assert W.verify("i3d_r50_kinetics", p) is None


def test_fetch_file_url_with_checksum_and_atomic_rename(dirs, monkeypatch, tmp_path):
    content = b"\x00checkpoint bytes\xff" * 1000
    src = tmp_path / "remote.bin"
    src.write_bytes(content)
    name = "keypointrcnn_resnet50_fpn_coco"
    spec = dataclasses.replace(W.REGISTRY[name], url=src.as_uri(),
                               sha256_prefix=hashlib.sha256(content).hexdigest()[:8])
    monkeypatch.setitem(W.REGISTRY, name, spec)
    dest = tmp_path / "dl"
    out = W.fetch(name, dest_dir=dest, progress=False)
    assert out == dest / spec.filename and out.read_bytes() == content
    assert [q.name for q in dest.iterdir()] == [spec.filename]  # no temp file left behind
    # checksum mismatch: nothing is left in place
    bad = dataclasses.replace(spec, sha256_prefix="ffffffff" if not spec.sha256_prefix.startswith("ff") else "00000000")
    monkeypatch.setitem(W.REGISTRY, name, bad)
    dest2 = tmp_path / "dl2"
    with pytest.raises(W.ChecksumError):
        W.fetch(name, dest_dir=dest2, progress=False)
    assert list(dest2.iterdir()) == []


def test_fetch_default_dest_is_env_dir(dirs, monkeypatch, tmp_path):
    src = tmp_path / "remote.bin"
    src.write_bytes(b"abc")
    monkeypatch.setitem(W.REGISTRY, "c3d_sports1m",
                        dataclasses.replace(W.REGISTRY["c3d_sports1m"], url=src.as_uri()))
    out = W.fetch("c3d_sports1m", progress=False)
    assert out == dirs["env"] / "c3d.pickle" and out.read_bytes() == b"abc"
    assert W.resolve("c3d_sports1m") == out


def test_resolve_and_status_never_download(dirs, no_network):
    # urlopen raises AssertionError; resolving missing files must only raise MissingWeightsError
    for name in W.REGISTRY:
        with pytest.raises(W.MissingWeightsError):
            W.resolve(name)
        assert W.resolve(name, untrained=True) is None
    rows = W.status()
    assert [r[0] for r in rows] == list(W.REGISTRY) and all(r[1] is None and r[2] is None for r in rows)


def test_status_reports_found_and_mismatch(dirs, monkeypatch):
    p = _put(dirs["env"], "c3d_sports1m")
    name = "keypointrcnn_resnet50_fpn_coco"
    monkeypatch.setitem(W.REGISTRY, name, dataclasses.replace(W.REGISTRY[name], sha256_prefix="zzzz"))
    _put(dirs["home"], name, b"corrupt")
    rows = {r[0]: r for r in W.status()}
    assert rows["c3d_sports1m"][1:] == (p, None)
    assert rows[name][2] is False


def test_cli_list_json_and_table(dirs, no_network):
    p = _put(dirs["env"], "i3d_rgb_imagenet")
    runner = CliRunner()
    res = runner.invoke(W.weights_cli, ["list", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    by = {r["name"]: r for r in data["weights"]}
    assert by["i3d_rgb_imagenet"]["path"] == str(p) and by["c3d_sports1m"]["path"] is None
    assert data["search_dirs"] == [str(dirs["env"]), str(dirs["home"])]
    res = runner.invoke(W.weights_cli, ["list"])
    assert res.exit_code == 0 and "i3d_rgb_imagenet" in res.output and "missing" in res.output
    lines = res.output.splitlines()
    c3d = next(i for i, line in enumerate(lines) if line.startswith("c3d_sports1m "))
    assert "missing" in lines[c3d] and lines[c3d + 1].split() == ["from", W.REGISTRY["c3d_sports1m"].url]
    assert f"weights fetch NAME`, or put the file under {dirs['env']}" in lines[-1]


def test_cli_fetch_unknown_name_fails(dirs, no_network):
    res = CliRunner().invoke(W.weights_cli, ["fetch", "nope"])
    assert res.exit_code != 0 and "unknown checkpoint 'nope'" in res.output


def test_any_registered_checkpoint_of_a_backbone_stream_resolves(dirs, no_network):
    names = W.checkpoints_for("backbone:i3d/rgb", default="i3d_rgb_imagenet")
    assert names == ["i3d_rgb_imagenet", "i3d_rgb_kinetics_hassony2"]
    assert W.checkpoints_for("backbone:i3d/flow", default="i3d_flow_imagenet") == ["i3d_flow_imagenet"]
    with pytest.raises(W.MissingWeightsError, match="i3d_rgb_kinetics_hassony2") as e:
        W.resolve_first(names)
    assert "rgb_imagenet.pt" in str(e.value)
    assert W.resolve_first(names, untrained=True) == ("i3d_rgb_imagenet", None)
    alt = _put(dirs["env"], "i3d_rgb_kinetics_hassony2")  # model_rgb.pth only: the alternative is used
    assert W.resolve_first(names) == ("i3d_rgb_kinetics_hassony2", alt)
    default = _put(dirs["home"], "i3d_rgb_imagenet")
    assert W.resolve_first(names) == ("i3d_rgb_imagenet", default)  # default first when both exist
    ov = W.parse_weight_overrides([f"i3d_rgb_kinetics_hassony2={alt}"])
    assert W.resolve_first(names, overrides=ov) == ("i3d_rgb_kinetics_hassony2", alt)  # explicit wins
    both = W.parse_weight_overrides([f"i3d_rgb_kinetics_hassony2={alt}", f"i3d_rgb_imagenet={default}"])
    with pytest.raises(W.BadOverrideError, match="pass only one"):
        W.resolve_first(names, overrides=both)


def test_cli_fetch_offline_says_where_to_put_the_file(dirs, monkeypatch):
    """No network (an address that never resolves): one error naming the URL it cannot reach, the
    exact path to put the file downloaded elsewhere, and the checksum it must have."""
    name = "keypointrcnn_resnet50_fpn_coco"
    url = "http://weights.invalid/keypointrcnn_resnet50_fpn_coco-fc266e95.pth"
    monkeypatch.setitem(W.REGISTRY, name, dataclasses.replace(W.REGISTRY[name], url=url))
    res = CliRunner().invoke(W.weights_cli, ["fetch", name])
    assert res.exit_code == 1
    assert f"cannot reach {url}" in res.output
    assert f"put it at\n    {dirs['env'] / W.REGISTRY[name].filename}\n" in res.output
    assert "expected: sha256 starting fc266e95" in res.output
    assert "`aqa-extract weights list` then shows it found" in res.output
    assert list(dirs["env"].iterdir()) == []  # no partial file left
    dest = dirs["tmp"] / "elsewhere"
    monkeypatch.setitem(W.REGISTRY, "c3d_sports1m", dataclasses.replace(
        W.REGISTRY["c3d_sports1m"], url="http://weights.invalid/c3d.pickle"))
    with pytest.raises(W.UnreachableError, match="no published checksum") as e:
        W.fetch("c3d_sports1m", dest_dir=dest, progress=False)
    assert f"put it at\n    {dest / 'c3d.pickle'}\n" in str(e.value) and "weights list" not in str(e.value)
