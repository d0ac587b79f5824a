"""Crafted pickles for the restricted-unpickler tests and the fuzz suite: numpy arrays, dtypes and
scalars whose pickled state lies (flags, fields, offsets), written with the real pickler so the
bytes are what an attacker's file would hold."""
import pickle
import pickletools

import numpy as np

_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]      # numpy's own _reconstruct
_SCALAR = np.float64(1).__reduce__()[0]                   # numpy's own scalar


class DtypeState:
    """Pickles as ``numpy.dtype(code, False, copy)`` then BUILD ``state`` (numpy's own way)."""

    def __init__(self, code, state, copy=True):
        self.code, self.state, self.copy = code, state, copy

    def __reduce__(self):
        return np.dtype, (self.code, False, self.copy), self.state


def lying(dt, **change):
    """``dt`` pickled with parts of its state replaced: ``flags``, ``fields``, ``elsize``."""
    _, (code, *_), state = dt.__reduce__()
    st = list(state)
    for k, v in change.items():
        st[{"subarray": 2, "names": 3, "fields": 4, "elsize": 5, "alignment": 6, "flags": 7}[k]] = v
    return DtypeState(code, tuple(st))


class ArrayState:
    """Pickles as numpy's ``_reconstruct(ndarray, (0,), b'b')`` then BUILD
    ``(1, shape, dtype, False, data)``."""

    def __init__(self, shape, dtype, data):
        self.shape, self.dtype, self.data = shape, dtype, data

    def __reduce__(self):
        return _RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, self.shape, self.dtype, False, self.data)


class ScalarOf:
    """Pickles as numpy's ``scalar(dtype, data)``."""

    def __init__(self, dtype, data):
        self.dtype, self.data = dtype, data

    def __reduce__(self):
        return _SCALAR, (self.dtype, self.data)


def object_field_array():
    """The JIGSAWS label.pkl attack: a structured dtype with an object field, flags 0, data
    ``b'A' * 8`` (numpy would read the bytes as a pointer)."""
    return ArrayState((1,), lying(np.dtype([("a", "O")]), flags=0), b"A" * 8)


def crafted_numpy_values() -> dict:
    """name -> a value whose pickle must be refused (each would crash or corrupt numpy if built)."""
    obj = np.dtype("O")
    return {
        "object-field, flags 0": object_field_array(),
        "object-field, honest flags": ArrayState((1,), np.dtype([("a", "O")]), b"A" * 8),
        "plain object dtype, flags 0": ArrayState((1,), lying(obj, flags=0), b"A" * 8),
        "object sub-array": ArrayState((1,), lying(np.dtype(("O", (2,))), flags=0), b"A" * 16),
        "nested object field": ArrayState(
            (1,), lying(np.dtype([("a", [("b", "O")])]), flags=0), b"A" * 8),
        "object field in a sub-array field": ArrayState(
            (1,), lying(np.dtype([("a", "O", (1,))]), flags=0), b"A" * 8),
        "field outside the item": ArrayState(
            (1,), lying(np.dtype([("a", "<i8")]), fields={"a": (np.dtype("<i8"), 1 << 20)}), b"A" * 8),
        "float64 with item size 1": ArrayState((8,), lying(np.dtype("<f8"), elsize=1), b"A" * 8),
        "int flagged as objects": ArrayState((1,), lying(np.dtype("<i8"), flags=63), [b"A"]),
        "void scalar with object field": ScalarOf(lying(np.dtype([("a", "O")]), flags=0), b"A" * 8),
        "object scalar, flags 0": ScalarOf(lying(obj, flags=0), b"A" * 8),
        "shared float64 dtype rewritten": [np.zeros(2), DtypeState("f8", (3, "<", None, ("a",), {
            "a": (obj, 0)}, 8, 1, 0), copy=False)],
    }


def crafted_pickle(name: str, protocol: int = 3) -> bytes:
    return pickle.dumps({"Suturing_B001": crafted_numpy_values()[name]}, protocol=protocol)


def _body(obj) -> bytes:
    """The opcodes of ``obj`` at protocol 2 without the header and STOP (to splice by hand)."""
    raw = pickletools.optimize(pickle.dumps(obj, protocol=2))     # no memo PUTs left
    assert raw[:2] == b"\x80\x02" and raw[-1:] == b"."
    return raw[2:-1]


def dtype_changed_after_use(build_first: bool) -> bytes:
    """A dtype D (``V8``) put in the memo, an array of D holding 8 bytes, then D's state set to a
    structured dtype with an object field: numpy changes D in place, under the array. With
    ``build_first`` D gets its own state once before the array uses it (so the attack is a second
    BUILD); without, the array uses D before any BUILD."""
    evil_state = (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0)
    own_state = np.dtype("V8").__reduce__()[2]
    out = b"\x80\x02cnumpy\ndtype\n(X\x02\x00\x00\x00V8\x89\x88tRq\x00"
    if build_first:
        out += _body(own_state) + b"b"
    out += b"0"                                              # D in memo 0 only
    out += (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R"
            b"(K\x01K\x01\x85h\x00\x89C\x08AAAAAAAAtbq\x01")   # array of D (8 bytes)
    out += b"h\x00" + _body(evil_state) + b"b"
    return out + b"\x86."


def tuple_bomb(levels: int = 60) -> bytes:
    """A dict whose key is a tuple of two copies of a tuple of two copies ... ``levels`` deep, each
    level one memo reference: a few hundred bytes, 2**levels tuples to hash."""
    raw = b"\x80\x02K\x01\x85q\x00"
    for i in range(1, levels):
        raw += b"h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"\x86q" + bytes([i])
    return raw + b"0}h" + bytes([levels - 1]) + b"K\x01s."
