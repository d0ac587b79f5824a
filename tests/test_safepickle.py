"""The restricted unpickler: real annotation files load, plain data round-trips, anything that would
run code is refused before it runs."""
import io
import pickle
from pathlib import Path

import numpy as np
import pytest

from aqa.data.safepickle import RestrictedUnpickler, UnsafePickleError, safe_load, safe_loads

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
REAL_PICKLES = sorted(SHARED.glob("*/*.pkl")) if SHARED.is_dir() else []


EXPECTED_LEN = {"finediving/fine-grained_annotation_aqa.pkl": 3000, "finediving/train_split.pkl": 2251,
                "finediving/test_split.pkl": 749, "jigsaws/label.pkl": 103, "jigsaws/splits.pkl": 3,
                "mtl_aqa/final_annotations_dict.pkl": 1412,
                "mtl_aqa/augmented_final_annotations_dict.pkl": 1412, "mtl_aqa/train_split_0.pkl": 1059,
                "mtl_aqa/test_split_0.pkl": 353, "unlv_dive/final_annotations_dict.pkl": 372,
                "unlv_dive/train_split_370_4.pkl": 300, "unlv_dive/test_split_370_4.pkl": 70}


@pytest.mark.skipif(not REAL_PICKLES, reason=f"real annotation files not found under {SHARED}")
@pytest.mark.parametrize("path", REAL_PICKLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_real_file_loads(path):
    # Plain pickle.load is never used on these files, not even here to compare against.
    got = safe_load(path)
    rel = f"{path.parent.name}/{path.name}"
    assert isinstance(got, (dict, list))
    assert len(got) == EXPECTED_LEN[rel]
    if rel == "mtl_aqa/augmented_final_annotations_dict.pkl":
        js = got[(1, 1)]["judge_scores"]
        assert isinstance(js, np.ndarray) and js.shape == (7,) and js.dtype == np.float64
    if rel.startswith("unlv_dive/t"):
        assert all(isinstance(x, np.uint8) for x in got[0])


PLAIN = {
    "arr": np.arange(6, dtype=np.float32).reshape(2, 3), "i8": np.array([1, -2], dtype=np.int64),
    "u8": np.uint8(7), "f64": np.float64(2.5), "str": "café", "bytes": b"\x00\xff", "set": {1, 2},
    "fs": frozenset({"a"}), "c": 1 + 2j, "sl": slice(1, 5, 2), "r": range(3), "ba": bytearray(b"xy"),
    "t": (1, 2.0, None, True), "nested": [{"k": [np.int16(3)]}], "obj": np.array([1, "x"], dtype=object),
    "rec": np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")]),
}


def _assert_plain_equal(got, ref):
    assert got.keys() == ref.keys()
    for k in ref:
        if isinstance(ref[k], np.ndarray):
            assert got[k].dtype == ref[k].dtype
            np.testing.assert_array_equal(got[k], ref[k])
        elif isinstance(ref[k], np.generic):
            assert type(got[k]) is type(ref[k]) and got[k] == ref[k]
        else:
            assert got[k] == ref[k], k


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_roundtrips_at_every_protocol(protocol):
    _assert_plain_equal(safe_loads(pickle.dumps(PLAIN, protocol=protocol)), PLAIN)


class _Py2Pickler(pickle._Pickler):
    """Writes ``bytes`` as Python 2 ``str`` (BINSTRING) and uses Python 2 module names, like a
    Python 2 process pickling numpy arrays at protocol 2."""
    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        self.write(pickle.BINSTRING + len(obj).to_bytes(4, "little") + obj)
        self.memoize(obj)
    dispatch[bytes] = _save_py2_str

    def save_global(self, obj, name=None):
        mod, qn = obj.__module__, obj.__qualname__
        if mod == "builtins":
            mod = "__builtin__"
            qn = {"range": "xrange"}.get(qn, qn)
        if mod.startswith("numpy._core"):
            mod = mod.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{mod}\n{qn}\n".encode())
        self.memoize(obj)
    dispatch[type] = save_global


def test_python2_protocol2_numpy_pickle_loads_with_latin1():
    data = {"a": np.array([1.5, -2.0, 3.25]), "r": range(4), "s": {3}, "x": np.float64(0.5)}
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(data)
    raw = buf.getvalue()
    assert b"__builtin__" in raw and b"numpy.core.multiarray" in raw and pickle.BINSTRING in raw
    got = safe_loads(raw)
    np.testing.assert_array_equal(got["a"], data["a"])
    assert got["r"] == range(4) and got["s"] == {3} and got["x"] == 0.5


def test_hand_written_python2_builtins():
    # Python 2 protocol 0: set([1, 2]) via __builtin__.set, a str key, and xrange(3).
    raw = b"(dp0\nS'k'\np1\nc__builtin__\nset\np2\n((lp3\nI1\naI2\natp4\nRp5\nsS'r'\nc__builtin__\nxrange\n(I3\ntRs."
    assert safe_loads(raw) == {"k": {1, 2}, "r": range(3)}


def _assert_refused(raw, name, tmp_path, marker):
    with pytest.raises(UnsafePickleError, match=name.replace(".", r"\.")) as e:
        safe_loads(raw, source=str(tmp_path / "evil.pkl"))
    assert "evil.pkl" in str(e.value)
    assert not marker.exists(), "the payload ran"


def test_os_system_payload_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    raw = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    _assert_refused(raw, "os.system", tmp_path, marker)
    # Control: the same bytes through plain pickle really would run it (proves the test can fail).
    pickle.loads(raw)
    assert marker.exists()


class _Evil:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_reduce_payloads_are_refused(tmp_path, protocol):
    import functools
    import os
    import subprocess
    marker = tmp_path / "pwned"
    cases = [
        (_Evil(os.system, f"touch {marker}"), f"{os.system.__module__}.system"),
        (_Evil(subprocess.Popen, ["touch", str(marker)]), "subprocess.Popen"),
        (_Evil(eval, f"open({str(marker)!r}, 'w')"), "builtins.eval"),
        (_Evil(exec, f"open({str(marker)!r}, 'w')"), "builtins.exec"),
        (functools.partial(print, 1), "functools.partial"),
        (_Evil(getattr, "abc", "upper"), "builtins.getattr"),
        (_Evil(np.load, str(marker)), "numpy.load"),
        ({"ok": [1, 2], "bad": _Evil(os.remove, str(marker))}, f"{os.remove.__module__}.remove"),
    ]
    for obj, name in cases:
        _assert_refused(pickle.dumps(obj, protocol=protocol), name, tmp_path, marker)


def test_dotted_and_disallowed_numpy_names_refused():
    raw = b"\x80\x04\x8c\x08builtins\x94\x8c\x0edict.__class__\x94\x93\x94."
    with pytest.raises(UnsafePickleError, match=r"builtins\.dict\.__class__"):
        safe_loads(raw)
    with pytest.raises(UnsafePickleError, match=r"numpy\.core\.multiarray\.frombuffer"):
        safe_loads(b"cnumpy.core.multiarray\nfrombuffer\n.")


def test_codecs_encode_only_latin1():
    assert safe_loads(b"c_codecs\nencode\n(V\xe9\nVlatin1\ntR.") == b"\xe9"
    with pytest.raises(UnsafePickleError, match="latin-1"):
        safe_loads(b"c_codecs\nencode\n(Vabc\nVrot13\ntR.")


def test_persistent_ids_refused():
    with pytest.raises(UnsafePickleError, match="persistent id"):
        safe_loads(b"Pfoo\n.")


def test_unsafe_error_is_value_error_and_subclass_usable():
    assert issubclass(UnsafePickleError, ValueError)
    u = RestrictedUnpickler(io.BytesIO(pickle.dumps([1])), source="x.pkl")
    assert u.load() == [1] and u.source == "x.pkl"


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pkl"):
        safe_load(tmp_path / "nope.pkl")
    p = tmp_path / "trunc.pkl"
    p.write_bytes(pickle.dumps({"a": list(range(100))})[:-20])
    with pytest.raises(ValueError, match="trunc.pkl: not a pickle file, or a truncated/corrupt one"):
        safe_load(p)


@pytest.mark.parametrize("data", [b"garbage\n", b"Ifoo\n.", b"hello world", b"\x80\x02K",
                                  b"K\x01)R.", b"N}b."])  # ValueError, TypeError, AttributeError...
def test_files_that_are_not_pickles_are_named(tmp_path, data):
    p = tmp_path / "label.pkl"
    p.write_bytes(data)
    with pytest.raises(ValueError) as err:
        safe_load(p)
    assert not isinstance(err.value, UnsafePickleError)
    assert str(err.value).startswith(f"{p}: not a pickle file, or a truncated/corrupt one (")


# --------------------------------------------------------------- numpy states that lie
from picklekit import crafted_numpy_values, crafted_pickle, dtype_changed_after_use  # noqa: E402


@pytest.mark.parametrize("name", list(crafted_numpy_values()))
def test_numpy_states_that_lie_are_refused_with_one_line(name):
    with pytest.raises(ValueError) as err:
        safe_loads(crafted_pickle(name), source="label.pkl")
    msg = str(err.value)
    assert msg.startswith("label.pkl: ") and "\n" not in msg and len(msg) < 400


@pytest.mark.parametrize("build_first", [False, True])
def test_a_dtype_cannot_change_under_an_array_that_uses_it(build_first):
    with pytest.raises(UnsafePickleError, match="before its state was set|twice"):
        safe_loads(dtype_changed_after_use(build_first))


def test_structured_and_subarray_dtypes_without_objects_still_load():
    ref = {"rec": np.ones(2, dtype=[("a", "<i4"), ("b", "<f8", (3,)), ("c", [("d", "<U2")])]),
           "aligned": np.zeros(1, dtype=np.dtype([("a", "u1"), ("b", "<f8")], align=True)),
           "sub": np.zeros((2,), dtype=("<i2", (2, 2))), "dt": np.array(["2020-01-01"], "M8[D]"),
           "void": np.void(b"\x01\x02"), "rec_scalar": np.ones(1, dtype=[("a", "<i4")])[0]}
    for protocol in (2, 3, 5):
        got = safe_loads(pickle.dumps(ref, protocol=protocol))
        for k, v in ref.items():
            assert got[k].dtype == v.dtype and got[k].tobytes() == v.tobytes(), k


def test_crafted_jigsaws_label_file_is_a_clean_cli_error(tmp_path):
    # The attack file: before the fix `aqa-data labels jigsaws` died with a segfault (rc 139)
    # while formatting the error. Run in a subprocess so a crash fails this test, not pytest.
    import subprocess
    import sys
    (tmp_path / "label.pkl").write_bytes(crafted_pickle("object-field, flags 0"))
    (tmp_path / "splits.pkl").write_bytes(pickle.dumps({"Suturing": [["Suturing_B001"]] * 4}))
    res = subprocess.run([sys.executable, "-m", "aqa.data.cli", "labels", "jigsaws", str(tmp_path),
                          "--out", str(tmp_path / "out.csv")], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 1, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / 'label.pkl'}: refusing"), lines
    assert not (tmp_path / "out.csv").exists()


def test_a_tuple_that_would_take_ages_to_hash_is_refused():
    import time

    from picklekit import tuple_bomb
    t0 = time.time()
    with pytest.raises(UnsafePickleError, match="nested into more than"):
        safe_loads(tuple_bomb())      # before: hashing the dict key never finished
    assert time.time() - t0 < 5
    # deep but small tuples, and tuple() of a list, still load
    assert safe_loads(pickle.dumps({((1, (2, 3)),): tuple([(1,), (2,)])})) == {((1, (2, 3)),): ((1,), (2,))}
