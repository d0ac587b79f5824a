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


def test_labels_jigsaws_both_cameras(tmp_path):
    if not (SHARED / "jigsaws").is_dir():
        pytest.skip(f"{SHARED / 'jigsaws'} absent (real annotation files not available)")
    out = tmp_path / "labels.csv"
    res = CliRunner().invoke(data_cli, ["labels", "jigsaws", str(SHARED / "jigsaws"), "--out", str(out),
                                        "--cameras", "both"])
    assert res.exit_code == 0, res.output
    ids = {r.video_id for r in read_labels_csv(out)}
    assert len(ids) == 206 and "Suturing_B001" in ids and "Suturing_B001_capture2" in ids
    res = CliRunner().invoke(data_cli, ["labels", "mtl_aqa", str(SHARED / "mtl_aqa"), "--out", str(out),
                                        "--cameras", "both"])
    assert res.exit_code == 2 and "--cameras is for jigsaws" in res.output


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


@pytest.mark.parametrize("args,message", [
    (["--size", "96by72"], "error: --size must be WIDTHxHEIGHT, e.g. 160x120, got '96by72'"),
    (["--size", "97x73"], "error: --size must be even and at least 64x48, got 97x73"),
    (["--size", "62x48"], "error: --size must be even and at least 64x48, got 62x48"),
    (["--frames", "10"], "Error: Invalid value for '--frames': 10 is not in the range x>=32."),
    (["--n", "0"], "Error: Invalid value for '--n': 0 is not in the range x>=1."),
])
def test_synth_bad_options_are_named(tmp_path, args, message):
    res = CliRunner().invoke(data_cli, ["synth", str(tmp_path / "t"), *args])
    assert res.exit_code == 2 and res.output.endswith(message + "\n")
    assert not (tmp_path / "t").exists()


def test_synth_help_states_the_limits():
    res = CliRunner().invoke(data_cli, ["synth", "--help"])
    text = " ".join(res.output.split())
    assert "x>=32" in text and "WIDTHxHEIGHT, both even, at least 64x48" in text


def test_synth_refuses_a_folder_with_labels(tmp_path):
    out = tmp_path / "s"
    args = ["synth", str(out), "--frames", "32", "--size", "64x48"]
    assert CliRunner().invoke(data_cli, [*args, "--n", "2"]).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    res = CliRunner().invoke(data_cli, [*args, "--n", "1"])
    assert res.exit_code == 1
    assert res.output == (f"error: {out} already holds a labels.csv (and 2 .mp4 video(s)), which synth "
                          "would overwrite: render into a new or empty folder\n")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_synth_into_a_folder_without_labels(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    res = CliRunner().invoke(data_cli, ["synth", str(out), "--n", "1", "--frames", "32", "--size", "64x48"])
    assert res.exit_code == 0, res.output
    assert (out / "notes.txt").read_text() == "mine" and len(read_labels_csv(out / "labels.csv")) == 1


def test_labels_garbage_pickle_names_the_file(tmp_path):
    (tmp_path / "label.pkl").write_text("garbage\n")
    (tmp_path / "splits.pkl").write_text("garbage\n")
    res = CliRunner().invoke(data_cli, ["labels", "jigsaws", str(tmp_path), "--out", str(tmp_path / "x.csv")])
    assert res.exit_code == 1
    assert res.output.startswith(f"error: {tmp_path / 'label.pkl'}: not a pickle file, or a truncated/corrupt "
                                 "one (ValueError: invalid literal for int()")
    assert not (tmp_path / "x.csv").exists()


def _cli_args(command, tmp_path, blocked):
    if command == "merge":
        from aqa.data.cache import CacheWriter
        with CacheWriter(tmp_path / "a.h5", config={}):
            pass
        return ["merge", str(tmp_path / "a.h5"), "--out", str(blocked / "m.h5")]
    if command == "labels":
        if not (SHARED / "jigsaws").is_dir():
            pytest.skip(f"{SHARED / 'jigsaws'} absent (real annotation files not available)")
        return ["labels", "jigsaws", str(SHARED / "jigsaws"), "--out", str(blocked / "x.csv")]
    return ["synth", str(blocked / "s"), "--n", "1", "--frames", "32", "--size", "64x48"]


@pytest.mark.parametrize("command", ["merge", "labels", "synth"])
def test_output_under_a_file_is_an_error_line(tmp_path, command):
    blocked = tmp_path / "plain_file"   # a file where the output's folder should be
    blocked.write_text("")
    res = CliRunner().invoke(data_cli, _cli_args(command, tmp_path, blocked))
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    last = res.output.splitlines()[-1]
    assert last in (f"error: {blocked}: File exists", f"error: {blocked / 's'}: Not a directory"), res.output


# --------------------------------------------------------------- labels CSV from other tools
from aqa.data.labels import LabelRow, write_labels_csv  # noqa: E402


def test_labels_csv_with_a_byte_order_mark_reads_like_without(tmp_path):
    plain = write_labels_csv([LabelRow("a", 1.5, "dive", 2.0, "train"), LabelRow("b", 3.0)],
                             tmp_path / "plain.csv")
    bom = tmp_path / "excel.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes().replace(b"\n", b"\r\n"))
    assert read_labels_csv(bom) == read_labels_csv(plain)


@pytest.mark.parametrize("text,line,what", [
    ("video_id,score\na,1\nb,x\n", 3, "column 'score' is not a number"),
    ("video_id,score,judge1\na,1,2\nb,2,\nc,3,bad\n", 4, "column 'judge1' is not a number"),
    ("video_id,score\na,1\n,2\n", 3, "empty video_id"),
    ("video_id,score\na,1\na,2\n", 3, "duplicate video_id 'a'"),
    ("video_id,score\na,1,7\n", 2, "more values than the header"),
    ("vid,score\na,1\n", 1, "lacks column(s) ['video_id']"),
    ("video_id,score\na,1\nb,\xe9\n", 3, "not UTF-8"),
    ("video_id,score\na,1\nb,\"2\n", 3, "not a readable CSV row"),
])
def test_every_labels_error_names_the_file_and_the_line(tmp_path, text, line, what):
    p = tmp_path / "labels.csv"
    p.write_bytes(text.encode("utf-8").replace("\xe9".encode(), b"\xe9"))
    with pytest.raises(ValueError) as err:
        read_labels_csv(p)
    msg = str(err.value)
    assert msg.startswith(f"{p} line {line}: ") and what in msg and "\n" not in msg, msg


def test_a_trailing_comma_is_not_an_error(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text("video_id,score\na,1,\n")
    assert [r.video_id for r in read_labels_csv(p)] == ["a"]
