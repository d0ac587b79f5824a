"""Augmented views of a video: what they are called and how they sit in the cache.

The papers augment their training videos: JRG flips them left-right (Pan et al. Sec. 4.1), Li et
al. shift the start frame by 0..5 frames, the Siamese DML adds zoomed, brightness-changed,
histogram-equalised, background-masked and frame-dropped copies (Jain et al. Sec. III-C, IV).
A view is such a transformed copy, extracted once into the cache beside its source video
(``aqa-extract --view flip``) and added to the *training* rows only (``aqa-heads train --views
flip``); test and validation scores are never taken on views.

Spec grammar (``parse_views``), each with its canonical name:

``flip``                 the frames mirrored left-right (poses and flow mirrored with them)
``shift:K`` / ``shiftK`` the video starting K frames later (K >= 1); ``shift:1-5`` is K = 1..5
``zoom:F`` / ``zoomF``   the central 1/F of each frame scaled back to full size (1 < F <= 4)
``bright:G``/``brightG`` intensities multiplied by G (0 < G <= 4, G != 1), clipped to [0, 255]
``histeq``               each frame's luminance histogram-equalised (poses and flow kept)
``mask``                 the background blacked out: everything outside the performers' boxes
                         (grown by a quarter of their size), flow there zeroed (poses kept)
``drop:P`` / ``dropP``   a fraction P of the frames (0 < P < 1) dropped at random, the first and
                         last kept; the flow across each gap chained through the dropped frames

In the cache a view is a video of its own, ``/videos/<source_id>@<name>``, with two more
attributes: ``view_of`` (the source's id) and ``view`` (the canonical name). Everything that
lists "the videos" (labels, splits, evaluation) sees sources only; views are asked for by name.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal

__all__ = ["View", "parse_view", "parse_views", "view_id", "VIEW_SEPARATOR", "VIEW_KINDS"]

VIEW_SEPARATOR = "@"
VIEW_KINDS = ("flip", "shift", "zoom", "bright", "histeq", "mask", "drop")
#: kinds that take no amount
_PLAIN = ("flip", "histeq", "mask")
_SPEC = re.compile(r"(flip|histeq|mask)|(shift|zoom|bright|drop):?([0-9.]+(?:-[0-9]+)?)")


@dataclass(frozen=True)
class View:
    """One augmentation: ``kind`` in :data:`VIEW_KINDS`, ``value`` its amount (None for the kinds
    without one: flip, histeq, mask)."""

    kind: str
    value: float | None = None

    def __post_init__(self):
        v = self.value
        if self.kind in _PLAIN:
            ok = v is None
        elif self.kind == "shift":
            ok = v is not None and float(v).is_integer() and v >= 1
        elif self.kind == "zoom":
            ok = v is not None and math.isfinite(v) and 1 < v <= 4
        elif self.kind == "bright":
            ok = v is not None and math.isfinite(v) and 0 < v <= 4 and v != 1
        elif self.kind == "drop":
            ok = v is not None and 0 < v < 1
        else:
            raise ValueError(f"unknown view kind {self.kind!r}; choose from {list(VIEW_KINDS)}")
        if not ok:
            need = "no amount" if self.kind in _PLAIN else {
                "shift": "a whole number of frames >= 1", "zoom": "a factor in (1, 4]",
                "bright": "a gain in (0, 4], not 1", "drop": "a fraction in (0, 1)"}[self.kind]
            raise ValueError(f"view {self.kind}: {v!r} is not {need}")

    @property
    def name(self) -> str:
        """Canonical name: ``flip``, ``histeq``, ``shift3``, ``zoom1.2``, ``bright0.8``,
        ``drop0.1``: the amount's shortest exact decimal, never in exponent form, so every name
        parses back to its view and two views never share a name."""
        if self.value is None:
            return self.kind
        v = float(self.value)
        return f"{self.kind}{int(v) if v.is_integer() else format(Decimal(repr(v)), 'f')}"


def parse_view(spec: str) -> View:
    """One view from its spec or canonical name (see the module docstring)."""
    views = parse_views([spec])
    if len(views) != 1:
        raise ValueError(f"view {spec!r} stands for {len(views)} views; give one")
    return views[0]


def parse_views(specs) -> list[View]:
    """Views from specs (strings, each possibly comma-separated; ``shift:1-5`` expands), in order,
    without duplicates; a bad spec is a ValueError naming it and the grammar."""
    if isinstance(specs, str):
        specs = [specs]
    out: list[View] = []
    for item in specs:
        for spec in (s.strip() for s in str(item).split(",")):
            if not spec:
                continue
            m = _SPEC.fullmatch(spec)
            if m is None:
                raise ValueError(f"view {spec!r}: expected flip, histeq, mask, shift:K, shift:K-L, "
                                 "zoom:F, bright:G or drop:P (e.g. "
                                 "flip,shift:1-5,zoom:1.2,bright:0.8,drop:0.1)")
            if m.group(1):
                views = [View(m.group(1))]
            else:
                kind, amount = m.group(2), m.group(3)
                lo, _, hi = amount.partition("-")
                try:
                    if hi:
                        if kind != "shift":
                            raise ValueError
                        views = [View(kind, float(k)) for k in range(int(lo), int(hi) + 1)]
                        if not views:
                            raise ValueError(f"view {spec!r}: empty range")
                    else:
                        views = [View(kind, float(lo))]
                except ValueError as e:
                    msg = str(e) or "a range K-L is only for shift, with whole numbers"
                    raise ValueError(msg if msg.startswith("view ")
                                     else f"view {spec!r}: {msg}") from None
            out += [v for v in views if v not in out]
    return out


def view_id(video_id: str, view: "View | str") -> str:
    """The cache id of ``video_id``'s view ``view`` (a :class:`View` or its canonical name)."""
    return f"{video_id}{VIEW_SEPARATOR}{view.name if isinstance(view, View) else view}"
