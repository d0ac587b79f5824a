"""aqa-extract show: contact sheets of cached videos and views, their frames as extraction saw them."""
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from aqa.data.cache import CacheReader
from aqa.extract.cli import main as extract_cli
from aqa.extract.config import ExtractConfig
from aqa.extract.runner import run_extraction
from aqa.extract.show import contact_sheet, sheet_frames
from aqa.extract.video import read_frames

FAST = dict(sampling="c3d", sampling_options={"length": 8, "stride": 8}, flow="tvl1-cpu",
            flow_options={"nscales": 2, "warps": 2, "outer_iterations": 2, "inner_iterations": 5},
            short_side=96)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """Two synthetic two-person videos at 160x120, decoded at a 96-pixel short side, with views."""
    from aqa.data.synthetic import render_dataset

    root = tmp_path_factory.mktemp("show")
    vids = root / "videos"
    render_dataset(vids, n=2, kind="sync", seed=5, n_frames=32, progress=False)
    out = root / "f.h5"
    s = run_extraction([vids], out, ExtractConfig(persons=2, **FAST), device="cpu",
                       progress=False, views=["flip", "drop:0.25", "zoom:1.5", "mask"])
    assert not s.failed, s.failed
    with CacheReader(out) as r:
        ids = r.video_ids()
    return out, vids, ids


@pytest.mark.slow
def test_source_sheet_is_the_decoded_frames_under_the_cached_poses(extracted):
    out, vids, ids = extracted
    d = sheet_frames(out, ids[0], root=vids, n=5)
    with CacheReader(out) as r:
        index, pose = r.group(ids[0])["frames/index"][()], r.pose(ids[0])
    np.testing.assert_array_equal(d["positions"], [0, 8, 16, 23, 31])   # spread, ends included
    np.testing.assert_array_equal(d["index"], index[d["positions"]])
    frames, _ = read_frames(vids / f"{ids[0]}.mp4", indices=d["index"], short_side=96)
    assert frames.shape[1:3] == (96, 128)                      # the extraction's resolution
    np.testing.assert_array_equal(d["frames"], frames)
    np.testing.assert_array_equal(d["keypoints"], pose["keypoints"][d["positions"]])
    assert d["keypoints"].shape == (5, 2, 17, 3) and d["pose"] == "file" and d["view"] == ""
    assert sheet_frames(out, ids[0], root=vids, n=100)["frames"].shape[0] == 32  # no repeats


@pytest.mark.slow
def test_view_sheets_show_the_view_s_pixels(extracted):
    out, vids, ids = extracted
    src = sheet_frames(out, ids[1], root=vids, n=4)
    flip = sheet_frames(out, f"{ids[1]}@flip", root=vids, n=4)
    np.testing.assert_array_equal(flip["frames"], src["frames"][:, :, ::-1])
    with CacheReader(out) as r:
        np.testing.assert_array_equal(flip["keypoints"],
                                      r.pose(f"{ids[1]}@flip")["keypoints"][flip["positions"]])
        kept = r.group(f"{ids[1]}@drop0.25")["frames/index"][()]
    drop = sheet_frames(out, f"{ids[1]}@drop0.25", root=vids, n=4)
    np.testing.assert_array_equal(drop["index"], kept[drop["positions"]])
    frames, _ = read_frames(vids / f"{ids[1]}.mp4", indices=drop["index"], short_side=96)
    np.testing.assert_array_equal(drop["frames"], frames)      # a drop only chooses frames
    zoom = sheet_frames(out, f"{ids[1]}@zoom1.5", root=vids, n=4)
    assert zoom["frames"].shape == src["frames"].shape
    assert not np.array_equal(zoom["frames"], src["frames"])
    # mask: black outside the source persons' grown boxes in those very frames
    from aqa.extract.pose.selection import PoseTrack
    from aqa.extract.views import VideoData, foreground

    mask = sheet_frames(out, f"{ids[1]}@mask", root=vids, n=4)
    track = PoseTrack(src["keypoints"], src["boxes"], np.ones(src["boxes"].shape[:2], np.float32),
                      src["roles"])
    keep = foreground(VideoData(src["frames"], src["index"], track))
    assert 0.05 < keep.mean() < 0.95
    np.testing.assert_array_equal(mask["frames"], src["frames"] * keep[..., None])


@pytest.mark.slow
def test_cli_writes_a_png_and_refuses_what_it_cannot_draw(extracted, tmp_path):
    import matplotlib.image

    out, vids, ids = extracted
    png = tmp_path / "sheet.png"
    res = CliRunner().invoke(extract_cli, ["show", str(out), f"{ids[0]}@flip", "--root",
                                           str(vids), "--frames", "6", "--patches", "--out",
                                           str(png)])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == str(png)
    img = matplotlib.image.imread(png)
    assert img.shape[1] == 4 * 260 and img.shape[0] > 260     # 4 columns, 2 rows at 100 dpi
    for args, msg in (([ids[0]], f"{ids[0]}.mp4: no such video (the cache's source_relpath is "
                                 f"'{ids[0]}.mp4'); give --root DIR"),
                      (["nobody", "--root", str(vids)], "no complete video 'nobody'")):
        res = CliRunner().invoke(extract_cli, ["show", str(out), *args, "--out", str(png)])
        assert res.exit_code == 2 and msg in res.output, res.output


@pytest.mark.slow
def test_a_file_that_is_not_the_extracted_one_is_warned_about_or_refused(extracted, tmp_path):
    out, vids, ids = extracted
    other = tmp_path / "other.mp4"
    shutil.copy(vids / f"{ids[1]}.mp4", other)
    with pytest.warns(UserWarning, match="not the file .* was extracted from"):
        sheet_frames(out, ids[0], video=other, n=2)
    from aqa.data.synthetic import render_dataset

    render_dataset(tmp_path / "big", n=1, kind="single", seed=1, n_frames=32, size=(320, 180),
                   progress=False)
    big = next((tmp_path / "big").glob("*.mp4"))
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="decodes at 96x171, the "
                                                                    "cache's frames are 96x128"):
        sheet_frames(out, ids[0], video=big, n=2)
    with pytest.raises(ValueError, match="n must be >= 1"):
        sheet_frames(out, ids[0], root=vids, n=0)
    assert contact_sheet(out, ids[0], tmp_path / "s.png", root=vids, n=1).is_file()
