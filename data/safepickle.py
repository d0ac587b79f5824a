"""A restricted unpickler for the benchmarks' annotation files (untrusted input).

``pickle.load`` runs whatever callable a pickle names, so a label file could run ``os.system``.
:class:`RestrictedUnpickler` resolves a global only when it is a plain builtin data type
(dict, list, tuple, set, frozenset, str, bytes, bytearray, int, float, complex, bool, slice, range,
collections.OrderedDict) or one of the few numpy pieces that rebuild arrays, dtypes and scalars
(``numpy.ndarray``, ``numpy.dtype``, ``numpy[._]core.multiarray._reconstruct`` / ``scalar``,
``numpy[._]core.numeric._frombuffer``). Any other global raises :class:`UnsafePickleError` before it
is imported or called. Python 2 era names (``__builtin__.xrange``, ``__builtin__.unicode``...) map to
their Python 3 types, and ``_codecs.encode`` (how Python 3 writes ``bytes`` at protocol 2) is allowed
for the latin-1 codec only.

The released label files of MTL-AQA, UNLV-Dive, JIGSAWS and FineDiving are all protocol 3 (written by Python 3); the ones holding
numpy values use ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype`` and
``numpy.core.multiarray.scalar``.

Allowed names are not enough for numpy: a dtype's pickled state carries its own flags and field
offsets, and numpy believes them. A structured dtype with an object field and flags 0 makes numpy
read the array's bytes as object pointers (a crash, or worse, on first use). So the unpickler is the
pure-Python one with its BUILD step checked: a dtype's state is tried on a fresh copy first, and a
dtype that holds objects inside a structure or a sub-array, whose flags disagree with what its
structure needs, or whose fields reach outside its item size is refused before numpy ever uses it;
a dtype is built at most once and used only after it is built, and arrays and scalars are built only
from dtypes that passed. Error messages never format an unchecked value (only type names).
"""
from __future__ import annotations

import _compat_pickle
import builtins
import collections
import importlib
import io
import pickle
from pathlib import Path
from typing import Any, Callable

__all__ = ["UnsafePickleError", "RestrictedUnpickler", "safe_load", "safe_loads", "ALLOWED_BUILTINS"]


#: the most tuples one tuple may hold, counted as a tree (shared ones once per use)
MAX_TUPLE_NODES = 100_000


class UnsafePickleError(ValueError):
    """A pickle named a global outside the allow-list; nothing of it was imported or called."""


ALLOWED_BUILTINS = frozenset({
    "dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int", "float",
    "complex", "bool", "slice", "range",
})

# Python 2 names of plain data types (protocol 0-2 pickles written by Python 2).
_PY2_BUILTINS = {"xrange": "range", "unicode": "str", "long": "int"}

_NUMPY_CORE_MODULES = {"numpy.core.multiarray", "numpy._core.multiarray",
                       "numpy.core.numeric", "numpy._core.numeric"}
_NUMPY_CORE_NAMES = {"multiarray": {"_reconstruct", "scalar"}, "numeric": {"_frombuffer"}}


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode`` that only performs the latin-1 str->bytes step pickles use."""
    if not isinstance(text, str) or encoding.lower().replace("_", "-") not in ("latin1", "latin-1",
                                                                              "iso-8859-1"):
        raise UnsafePickleError(f"_codecs.encode is allowed only as a latin-1 str->bytes conversion, "
                                f"not with encoding {encoding!r} on {type(text).__name__}")
    return text.encode("latin-1", errors)


def _numpy_core(sub: str):
    """The installed numpy's core submodule (``numpy._core`` in numpy 2, ``numpy.core`` in 1.x)."""
    try:
        return importlib.import_module(f"numpy._core.{sub}")
    except ImportError:
        return importlib.import_module(f"numpy.core.{sub}")


# numpy's dtype flag bits (numpy/ndarraytypes.h) that say "items hold Python object pointers".
_OBJECT_FLAGS = 0x01 | 0x02 | 0x04          # NPY_ITEM_REFCOUNT/HASOBJECT, NPY_LIST_PICKLE, IS_POINTER


def _dtype_problem(dt, depth: int = 0) -> str | None:
    """Why dtype ``dt`` (built from untrusted state) is unsafe for numpy to use, or None.

    Checked from its structure, never from its flags alone (a crafted state sets those): a plain
    dtype must have exactly the flags numpy gives a fresh dtype of its type; a structured or
    sub-array dtype may hold no object anywhere (every field and sub-array base, recursively), must
    carry none of the object flags, and its fields and sub-array must fit inside its item size.
    """
    import numpy as np
    if depth > 32:
        return "a dtype nested too deeply"
    if dt.fields is None and dt.subdtype is None:
        if dt.names:
            return "a dtype with field names but no fields"
        try:
            fresh = np.dtype(dt.str)
        except (TypeError, ValueError):
            return "a dtype numpy cannot rebuild from its type string"
        if (dt.flags, dt.itemsize, dt.kind) != (fresh.flags, fresh.itemsize, fresh.kind):
            return "a dtype whose flags or item size do not match its type"
        return None
    if dt.flags & _OBJECT_FLAGS:
        return "a structured or sub-array dtype holding objects"
    if dt.subdtype is not None:
        base, shape = dt.subdtype
        why = _dtype_problem(base, depth + 1)
        if why or base.kind == "O":
            return why or "a structured or sub-array dtype holding objects"
        n = 1
        for v in shape:
            n *= int(v)
        if n < 0 or base.itemsize * n != dt.itemsize:
            return "a sub-array dtype whose size does not match its item size"
    if dt.fields is not None:
        if set(dt.names or ()) != {k for k, v in dt.fields.items() if len(v) < 3 or v[2] != k}:
            return "a structured dtype whose names do not match its fields"
        for field in dt.fields.values():
            sub, offset = field[0], int(field[1])
            why = _dtype_problem(sub, depth + 1)
            if why or sub.kind == "O":
                return why or "a structured or sub-array dtype holding objects"
            if offset < 0 or offset + sub.itemsize > dt.itemsize:
                return "a structured dtype with a field outside its item size"
    return None


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler whose ``find_class`` admits only plain data types and numpy arrays/scalars,
    and whose BUILD step checks every numpy dtype and array state before numpy uses it.

    It is the pure-Python ``pickle._Unpickler`` (as fast as the C one here, since every global goes
    through Python code anyway) so that BUILD can be checked. ``source`` names the file in error
    messages. ``encoding`` decodes Python 2 ``str`` objects (``latin1`` is what numpy needs to read
    Python 2 array pickles; the default here).
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, *, source: str = "<bytes>", encoding: str = "latin1"):
        super().__init__(file, encoding=encoding)
        self.source = source
        self._unbuilt: dict[int, Any] = {}   # id -> dtype/array made here and not yet BUILT
        self._tuple_sizes: dict[int, tuple] = {}   # id -> (tuples in it as a tree, the tuple)

    def _unsafe(self, what: str):
        raise UnsafePickleError(f"{self.source}: refusing {what} (not plain data)")

    def _refuse(self, module: str, name: str):
        shown = f"'{module}.{name}'"
        py3 = _compat_pickle.NAME_MAPPING.get((module, name))
        if py3 is None and module in _compat_pickle.IMPORT_MAPPING:
            py3 = (_compat_pickle.IMPORT_MAPPING[module], name)
        if py3 is not None and py3 != (module, name):
            shown += f" (Python 3 name '{py3[0]}.{py3[1]}')"
        raise UnsafePickleError(
            f"{self.source}: refusing to unpickle global {shown}: only plain builtin data "
            f"types ({', '.join(sorted(ALLOWED_BUILTINS))}) and numpy arrays/dtypes/scalars are "
            f"allowed in annotation files")

    # ------------------------------------------------------------------ numpy stand-ins
    def _checked_dtype(self, dt, role: str):
        import numpy as np
        if not isinstance(dt, np.dtype):
            self._unsafe(f"{role}: a {type(dt).__name__} where a numpy dtype belongs")
        if id(dt) in self._unbuilt:
            self._unsafe(f"{role}: a numpy dtype used before its state was set")
        why = _dtype_problem(dt)
        if why:
            self._unsafe(f"{role}: {why}")
        return dt

    def _make_dtype(self, obj, align=False, copy=False):
        """``numpy.dtype(obj, align, copy)`` as numpy pickles it: always a new dtype object (never
        numpy's shared one, which a later BUILD would change for the whole process)."""
        import numpy as np
        if isinstance(obj, bytes):
            obj = obj.decode("latin-1")
        if not isinstance(obj, str):
            self._unsafe(f"numpy.dtype of a {type(obj).__name__} (numpy pickles a type string)")
        dt = np.dtype(obj, align=bool(align), copy=True)
        self._checked_dtype(dt, "numpy.dtype")
        self._unbuilt[id(dt)] = dt
        return dt

    def _reconstruct(self, cls, shape, typecode):
        import numpy as np
        if cls is not _NDARRAY or not isinstance(typecode, (bytes, str)):
            self._unsafe("numpy _reconstruct of anything but a plain ndarray")
        arr = _numpy_core("multiarray")._reconstruct(np.ndarray, shape, typecode)
        self._unbuilt[id(arr)] = arr
        return arr

    def _scalar(self, dtype, *args):
        self._checked_dtype(dtype, "numpy scalar")
        return _numpy_core("multiarray").scalar(dtype, *args)

    def _frombuffer(self, buf, dtype, shape, order):
        dt = self._checked_dtype(dtype, "numpy _frombuffer")
        if dt.hasobject or dt.kind == "O":
            self._unsafe("numpy _frombuffer of an object dtype")
        return _numpy_core("numeric")._frombuffer(buf, dt, shape, order)

    def find_class(self, module: str, name: str) -> Callable[..., Any]:
        if module in ("builtins", "__builtin__"):
            name3 = _PY2_BUILTINS.get(name, name) if module == "__builtin__" else name
            if name3 == "tuple":
                return self._tuple_of
            if name3 in ALLOWED_BUILTINS:
                return getattr(builtins, name3)
        elif module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        elif module == "_codecs" and name == "encode":
            return _latin1_encode
        elif module == "numpy" and name == "ndarray":
            return _NDARRAY       # only ever the first argument of _reconstruct, never called
        elif module == "numpy" and name == "dtype":
            return self._make_dtype
        elif module in _NUMPY_CORE_MODULES:
            sub = module.rsplit(".", 1)[1]
            if name in _NUMPY_CORE_NAMES[sub]:
                return {"_reconstruct": self._reconstruct, "scalar": self._scalar,
                        "_frombuffer": self._frombuffer}[name]
        self._refuse(module, name)

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self.source}: refusing a persistent id ({type(pid).__name__}; "
                                f"not plain data)")

    # ------------------------------------------------------------------ bounded tuples
    def _bounded(self, t):
        """``t`` if, counted as a tree, it holds at most :data:`MAX_TUPLE_NODES` tuples. A pickle can
        nest one tuple in another many times over through the memo (a few bytes for 2**40 nodes);
        hashing such a key (a dict, a set) would never finish."""
        sizes = self._tuple_sizes
        n = 1 + sum(sizes.get(id(e), (1,))[0] for e in t if isinstance(e, tuple))
        if n > MAX_TUPLE_NODES:
            self._unsafe(f"a tuple nested into more than {MAX_TUPLE_NODES} tuples (it could not be "
                         f"hashed in reasonable time)")
        if n > 1:
            sizes[id(t)] = (n, t)
        return t

    def _tuple_of(self, iterable=()):
        return self._bounded(tuple(iterable))

    def _checked_tuple_op(op):
        def load(self):
            op(self)
            self._bounded(self.stack[-1])
        return load

    for _code in (pickle.TUPLE, pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3):
        dispatch[_code[0]] = _checked_tuple_op(pickle._Unpickler.dispatch[_code[0]])
    del _code, _checked_tuple_op

    # ------------------------------------------------------------------ the checked BUILD
    def load_build(self):
        import numpy as np
        stack = self.stack
        if len(stack) < 2:
            raise pickle.UnpicklingError("BUILD on an empty stack")
        state, inst = stack[-1], stack[-2]
        if isinstance(inst, (np.dtype, np.ndarray)):
            if self._unbuilt.pop(id(inst), None) is not inst:
                self._unsafe(f"setting the state of a numpy {type(inst).__name__} twice or of one "
                             f"not made by this pickle")
            if not isinstance(state, tuple):
                self._unsafe(f"a numpy {type(inst).__name__} state that is a {type(state).__name__}")
            if isinstance(inst, np.dtype):
                probe = np.dtype(inst, copy=True)     # the state tried where nothing uses it yet
                probe.__setstate__(state)
                self._checked_dtype(probe, "numpy.dtype state")
            else:
                dtypes = [x for x in state if isinstance(x, np.dtype)]
                if len(dtypes) != 1:
                    self._unsafe("a numpy array state without exactly one dtype")
                self._checked_dtype(dtypes[0], "numpy array")
            stack.pop()
            inst.__setstate__(state)
            if isinstance(inst, np.dtype):
                self._checked_dtype(inst, "numpy.dtype state")
            return
        # plain data never has its state set (and setting one on an allowed function is refused)
        raise pickle.UnpicklingError(f"BUILD on a {type(inst).__name__}")

    dispatch[pickle.BUILD[0]] = load_build


class _NdarrayMark:
    """What the global ``numpy.ndarray`` unpickles to: a token :meth:`RestrictedUnpickler._reconstruct`
    accepts, so a pickle can never call the ndarray constructor (buffer, offset, strides) itself."""

    def __repr__(self):
        return "numpy.ndarray"


_NDARRAY = _NdarrayMark()


def safe_loads(data: bytes, *, source: str = "<bytes>", encoding: str = "latin1") -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`.

    Raises :class:`UnsafePickleError` for a disallowed global and ``ValueError`` (naming ``source``)
    for data that is not a pickle or a truncated/corrupt one.
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data), source=source, encoding=encoding).load()
    except UnsafePickleError:
        raise
    except Exception as e:  # noqa: BLE001 - garbage bytes make the opcodes fail in any way
        # (UnpicklingError, EOFError, ValueError from a bad INT line, TypeError, OverflowError,
        # MemoryError from a corrupt length...): all of them mean the file is not a usable pickle
        raise ValueError(f"{source}: not a pickle file, or a truncated/corrupt one "
                         f"({type(e).__name__}: {_one_line(e)})") from None


def _one_line(e: BaseException, limit: int = 200) -> str:
    """An exception's message on one short line (messages of garbage input can be long)."""
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[:limit] + "..."


def safe_load(path: str | Path, *, encoding: str = "latin1") -> Any:
    """Load the pickle file at ``path`` with :class:`RestrictedUnpickler` (see :func:`safe_loads`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pickle file not found: {path}")
    return safe_loads(path.read_bytes(), source=str(path), encoding=encoding)
