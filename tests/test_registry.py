"""The registries of pluggable parts: the CLI offers exactly their names, every factory imports,
old spellings warn and still work, and the cache families keep their names."""
import inspect
import warnings

import click
import pytest
from click.testing import CliRunner

from aqa.data.registry import Registry, load
from aqa.data.views import VIEW_KINDS
from aqa.extract import registry as R
from aqa.extract.cli import main as extract_cli
from aqa.extract.cli import run as run_command


def _choices(option: str) -> tuple:
    (param,) = [p for p in run_command.params if option in p.opts]
    assert isinstance(param.type, click.Choice), option
    return tuple(param.type.choices)


def test_cli_choices_are_the_registries():
    assert _choices("--backbone") == R.BACKBONES.names() == ("i3d", "i3d-r50", "c3d")
    assert _choices("--pose") == R.POSE.names()
    assert _choices("--sampling") == R.SAMPLING.names() and "core-jigsaws" in _choices("--sampling")
    assert _choices("--flow") == ("auto", *R.FLOW.names(), "none")
    help_text = CliRunner().invoke(extract_cli, ["run", "--help"], terminal_width=400).output
    for reg in (R.BACKBONES, R.POSE, R.SAMPLING, R.VIEWS):
        for spec in reg:
            assert spec.description in " ".join(help_text.split()), (reg.what, spec.name)


def test_views_registry_is_the_parsed_kinds():
    assert R.VIEWS.names() == VIEW_KINDS


@pytest.mark.parametrize("reg", [R.BACKBONES, R.POSE, R.FLOW, R.SAMPLING, R.VIEWS], ids=lambda r: r.what)
def test_every_factory_is_importable(reg):
    if reg is R.BACKBONES:
        pytest.importorskip("torch")
    for spec in reg:
        assert callable(load(spec.factory)), spec.name


def test_sampling_and_views_dispatch_through_the_registry():
    from aqa.extract.sampling import sample

    assert sample("core-jigsaws", 400).clips.shape == (10, 16)
    sig = inspect.signature(load(R.VIEWS.get("drop").factory))
    assert "seed" in sig.parameters and not any(
        "seed" in inspect.signature(load(s.factory)).parameters for s in R.VIEWS if not s.seeded)


def test_family_names_are_those_of_existing_caches():
    fams = {R.family_name(b.name, s) for b in R.BACKBONES for s in b.streams}
    assert fams == {"i3d_rgb", "i3d_flow", "i3dr50_rgb", "c3d_rgb"}
    with pytest.warns(DeprecationWarning, match="'i3d_r50' is deprecated; use 'i3d-r50'"):
        assert R.family_name("i3d_r50", "rgb") == "i3dr50_rgb"


def test_registry_rejects_unknown_and_duplicate_names():
    with pytest.raises(ValueError, match=r"unknown backbone 'r3d'; choose from i3d, i3d-r50, c3d"):
        R.BACKBONES.get("r3d")
    with pytest.raises(ValueError, match="registered twice"):
        Registry("part", [R.BACKBONES.get("i3d"), R.BACKBONES.get("i3d")])
    with pytest.raises(ValueError, match="expected 'module:attr'"):
        load("aqa.extract.registry")


@pytest.mark.parametrize("old", ["i3d_r50", "i3dr50"])
def test_old_backbone_spelling_warns_and_gives_the_same_config(old):
    from aqa.extract.config import ExtractConfig

    with pytest.warns(DeprecationWarning, match=f"'{old}' is deprecated; use 'i3d-r50'"):
        cfg = ExtractConfig(backbones=(old,), streams=("rgb",))
    assert cfg.as_dict() == ExtractConfig(backbones=("i3d-r50",), streams=("rgb",)).as_dict()


@pytest.mark.parametrize("old", ["i3d_r50", "i3dr50"])
def test_old_backbone_spelling_on_the_command_line(old, tmp_path, monkeypatch):
    """The CLI takes the old spelling with one warning line and runs i3d-r50 (same config, so the
    same cache and resume hash)."""
    import aqa.extract.runner as runner

    seen = {}

    def fake_run(inputs, out, cfg, **kw):
        seen["backbones"] = cfg.backbones
        raise ValueError("stopped here")

    monkeypatch.setattr(runner, "run_extraction", fake_run)
    video = tmp_path / "a.mp4"
    video.write_bytes(b"")
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # the CLI says it in a line, not as a Python warning
        res = CliRunner().invoke(extract_cli, [str(video), "--out", str(tmp_path / "f.h5"), "--backbone", old,
                                               "--streams", "rgb", "--untrained"])
    assert seen["backbones"] == ("i3d-r50",), res.output
    assert f"warning: '--backbone' {old!r} is deprecated; use 'i3d-r50'" in res.output
    assert "error: stopped here" in res.output and res.exit_code == 2


def test_unknown_backbone_is_a_usage_error(tmp_path):
    video = tmp_path / "a.mp4"
    video.write_bytes(b"")
    res = CliRunner().invoke(extract_cli, [str(video), "--out", str(tmp_path / "f.h5"), "--backbone", "r3d"])
    assert res.exit_code == 2 and "'r3d' is not one of 'i3d', 'i3d-r50', 'c3d'" in res.output


def test_head_file_naming_a_missing_class_is_a_format_error(tmp_path):
    from aqa.heads.base import HeadFormatError, _head_class

    for spec in ("aqa.heads.jrg:NoSuchHead", "aqa.heads.no_such_module:X"):
        with pytest.raises(HeadFormatError, match="which is not a registered head"):
            _head_class(spec, tmp_path / "h.pt")


def test_every_head_input_builder_resolves():
    from aqa.heads import inputs, registry

    got = {h: registry.input_builder(h) for h in registry.names()}
    assert got["jrg"] is inputs.jrg_inputs and got["pose-dct-svr"] is inputs.pose_trajectories
    assert all(callable(f) for f in got.values())
    bad = registry.HeadSpec("x", "aqa.heads.svr:c3d_svr", "no_such_input", "", "")
    registry.HEADS.append(bad)
    try:
        with pytest.raises(KeyError, match="unknown input builder 'no_such_input'"):
            registry.input_builder("x")
    finally:
        registry.HEADS.remove(bad)
