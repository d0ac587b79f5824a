"""`aqa-data labels` and `aqa-data synth` as a user runs them."""
from pathlib import Path

import pytest
from click.testing import CliRunner

from aqa.data.cli import main as data_cli
from aqa.data.labels import read_labels_csv

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.mark.parametrize("name,folder,n", [("mtl_aqa", "mtl_aqa", 1412), ("jigsaws", "jigsaws", 103),
                                           ("aqa7", "aqa7", 1106)])
def test_labels_command_writes_the_common_table(tmp_path, name, folder, n):
    if not (SHARED / folder).is_dir():
        pytest.skip(f"{SHARED / folder} absent (real annotation files not available)")
    out = tmp_path / "labels.csv"
    res = CliRunner().invoke(data_cli, ["labels", name, str(SHARED / folder), "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = read_labels_csv(out)
    assert len(rows) == n
    assert all(r.split for r in rows)


def test_labels_raw_keeps_the_published_judge_score(tmp_path):
    if not (SHARED / "mtl_aqa").is_dir():
        pytest.skip(f"{SHARED / 'mtl_aqa'} absent (real annotation files not available)")
    judge = {}
    for flag in ([], ["--raw"]):
        out = tmp_path / f"labels{len(flag)}.csv"
        res = CliRunner().invoke(data_cli, ["labels", "mtl_aqa", str(SHARED / "mtl_aqa"), "--out", str(out),
                                            *flag])
        assert res.exit_code == 0, res.output
        row = next(r for r in read_labels_csv(out) if r.video_id == "04_49")
        judge[len(flag)] = row.sub_scores["judge_4"]
    assert judge == {0: 4.5, 1: 45.0}


def test_labels_command_errors(tmp_path):
    res = CliRunner().invoke(data_cli, ["labels", "nope", str(tmp_path), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "unknown dataset" in res.output
    res = CliRunner().invoke(data_cli, ["labels", "mtl_aqa", str(tmp_path), "--out", str(tmp_path / "x")])
    assert res.exit_code == 1 and "final_annotations_dict.pkl" in res.output


def test_synth_command(tmp_path):
    res = CliRunner().invoke(data_cli, ["synth", str(tmp_path / "s"), "--n", "2", "--kind", "sync"])
    assert res.exit_code == 0, res.output
    rows = read_labels_csv(tmp_path / "s" / "labels.csv")
    assert len(rows) == 2 and all((tmp_path / "s" / f"{r.video_id}.mp4").exists() for r in rows)
    assert all((tmp_path / "s" / f"{r.video_id}.pose.json").exists() for r in rows)


def test_synth_frames_and_size(tmp_path):
    import cv2
    res = CliRunner().invoke(data_cli, ["synth", str(tmp_path / "s"), "--n", "1", "--frames", "32",
                                        "--size", "96x72"])
    assert res.exit_code == 0, res.output
    cap = cv2.VideoCapture(str(next((tmp_path / "s").glob("*.mp4"))))
    assert (int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (32, 96, 72)
    cap.release()
    res = CliRunner().invoke(data_cli, ["synth", str(tmp_path / "t"), "--size", "96by72"])
    assert res.exit_code == 2 and "WIDTHxHEIGHT" in res.output
    res = CliRunner().invoke(data_cli, ["synth", str(tmp_path / "t"), "--size", "95x72"])
    assert res.exit_code == 2 and "size must be even" in res.output
