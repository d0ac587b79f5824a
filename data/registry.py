"""The registry pattern every pluggable part follows: a name -> spec table whose factories are
``"module:attr"`` strings, imported only when a part is used (so ``--help`` and listing the parts
import no heavy library).

A spec is any frozen dataclass with ``name``, ``factory`` (``"module:attr"``) and ``description``;
an optional ``aliases`` tuple lists old spellings of the name, still accepted with a
:class:`DeprecationWarning`. :mod:`aqa.extract.registry` (backbones, pose and flow backends,
sampling protocols, views) and :mod:`aqa.heads.registry` (heads) are the tables; see
``docs/architecture.md`` for adding a part.
"""
from __future__ import annotations

import importlib
import warnings
from typing import Any, Generic, Iterable, Iterator, TypeVar

__all__ = ["load", "Registry"]

S = TypeVar("S")


def load(spec: str) -> Any:
    """The object ``"package.module:attr"`` (``attr`` may be dotted) names, its module imported now."""
    mod, _, attr = spec.partition(":")
    if not mod or not attr:
        raise ValueError(f"expected 'module:attr', got {spec!r}")
    obj = importlib.import_module(mod)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class Registry(Generic[S]):
    """The specs of one kind of part (``what``: "backbone", "pose backend", ...), in order."""

    def __init__(self, what: str, specs: Iterable[S]):
        self.what = what
        self._specs: dict[str, S] = {}
        self._aliases: dict[str, str] = {}
        for s in specs:
            for key in (s.name, *getattr(s, "aliases", ())):
                if key in self._specs or key in self._aliases:
                    raise ValueError(f"{what} {key!r} registered twice")
            self._specs[s.name] = s
            self._aliases.update((a, s.name) for a in getattr(s, "aliases", ()))

    def names(self) -> tuple[str, ...]:
        """The names, one spelling each (what the command line shows)."""
        return tuple(self._specs)

    def __iter__(self) -> Iterator[S]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs or name in self._aliases

    def deprecated(self, name: str) -> str | None:
        """The current spelling when ``name`` is an old one, else None."""
        return self._aliases.get(name)

    def canonical(self, name: str) -> str:
        """``name``'s one spelling: an old spelling warns (DeprecationWarning) and maps to it; an
        unknown name is a ValueError that lists the known ones."""
        if name in self._specs:
            return name
        new = self._aliases.get(name)
        if new is None:
            raise ValueError(f"unknown {self.what} {name!r}; choose from {', '.join(self._specs)}")
        warnings.warn(f"{self.what} {name!r} is deprecated; use {new!r}", DeprecationWarning, stacklevel=3)
        return new

    def get(self, name: str) -> S:
        """The spec of ``name`` (an old spelling warns, see :meth:`canonical`)."""
        return self._specs[self.canonical(name)]

    def load(self, name: str) -> Any:
        """The factory of ``name``, imported now."""
        return load(self.get(name).factory)

    def help(self) -> str:
        """One ``name: description`` clause per part, for ``--help`` texts."""
        return "; ".join(f"{s.name}: {s.description}" for s in self)
