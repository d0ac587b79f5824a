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

The benchmark files in ``../shared/datasets`` are all protocol 3 (written by Python 3); the ones holding
numpy values use ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype`` and
``numpy.core.multiarray.scalar``.
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


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` admits only plain data types and numpy arrays/scalars.

    ``source`` names the file in error messages. ``encoding`` decodes Python 2 ``str`` objects
    (``latin1`` is what numpy needs to read Python 2 array pickles; the default here).
    """

    def __init__(self, file, *, source: str = "<bytes>", encoding: str = "latin1"):
        super().__init__(file, encoding=encoding)
        self.source = source

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

    def find_class(self, module: str, name: str) -> Callable[..., Any]:
        if module in ("builtins", "__builtin__"):
            name3 = _PY2_BUILTINS.get(name, name) if module == "__builtin__" else name
            if name3 in ALLOWED_BUILTINS:
                return getattr(builtins, name3)
        elif module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        elif module == "_codecs" and name == "encode":
            return _latin1_encode
        elif module == "numpy" and name in ("ndarray", "dtype"):
            import numpy
            return getattr(numpy, name)
        elif module in _NUMPY_CORE_MODULES:
            sub = module.rsplit(".", 1)[1]
            if name in _NUMPY_CORE_NAMES[sub]:
                return getattr(_numpy_core(sub), name)
        self._refuse(module, name)

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self.source}: refusing persistent id {pid!r} (not plain data)")


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
                         f"({type(e).__name__}: {e})") from e


def safe_load(path: str | Path, *, encoding: str = "latin1") -> Any:
    """Load the pickle file at ``path`` with :class:`RestrictedUnpickler` (see :func:`safe_loads`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pickle file not found: {path}")
    return safe_loads(path.read_bytes(), source=str(path), encoding=encoding)
