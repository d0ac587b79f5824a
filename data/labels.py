"""The common labels table: one row per video, shared by every dataset reader and the cache.

Columns (CSV header order): ``video_id, score, action, difficulty, split`` then any number of
extra numeric columns, which are sub-scores (judge scores, GRS items, execution, sync, ...).
``action`` is a string (e.g. ``diving``), ``difficulty`` is NaN when a dataset has none, ``split``
is ``train``, ``test``, ``val``, ``fold0``.. or empty.

The table is a plain list of :class:`LabelRow`; :func:`to_arrays` turns it into numpy columns.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

BASE_COLUMNS = ("video_id", "score", "action", "difficulty", "split")


@dataclass
class LabelRow:
    video_id: str
    score: float
    action: str = ""
    difficulty: float = math.nan
    split: str = ""
    sub_scores: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = {"video_id": self.video_id, "score": self.score, "action": self.action,
             "difficulty": self.difficulty, "split": self.split}
        d.update(self.sub_scores)
        return d


def _fmt(v) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return str(v)


def write_labels_csv(rows: Iterable[LabelRow], path: str | Path) -> Path:
    """Write rows to CSV; sub-score columns are the union over rows (missing ones left empty)."""
    rows = list(rows)
    extra: list[str] = []
    for r in rows:
        for k in r.sub_scores:
            if k not in extra and k not in BASE_COLUMNS:
                extra.append(k)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(list(BASE_COLUMNS) + extra)
        for r in rows:
            d = r.as_dict()
            w.writerow([_fmt(d.get(c, math.nan)) for c in list(BASE_COLUMNS) + extra])
    return path


def _float(s: str, what: str, where: str) -> float:
    if s is None or s.strip() == "":
        return math.nan
    try:
        return float(s)
    except ValueError:
        raise ValueError(f"{where}: column {what!r} is not a number: {s[:60]!r}") from None


def _text(path: Path) -> str:
    """The file's text: UTF-8 with or without a byte-order mark (Excel writes one)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise ValueError(f"{path}: cannot read the labels CSV ({e.strerror or e})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ValueError(f"{path} line {line}: not UTF-8 text (byte 0x{data[e.start]:02x}); save the "
                         f"labels CSV as UTF-8") from None


def read_labels_csv(path: str | Path) -> list[LabelRow]:
    """Read a labels CSV (UTF-8, a byte-order mark allowed). Requires ``video_id`` and ``score``;
    other base columns are optional. Every error is a ValueError naming the file and the line."""
    path = Path(path)
    reader = csv.DictReader(io.StringIO(_text(path), newline=""), strict=True)
    rows, seen, end = [], set(), 1       # end: the last line of the row read before
    try:
        cols = reader.fieldnames or []
        end = reader.line_num
        missing = [c for c in ("video_id", "score") if c not in cols]
        if missing:
            raise ValueError(f"{path} line 1: labels CSV lacks column(s) {missing}; has "
                             f"{[c[:40] for c in cols[:20]]}")
        for d in reader:
            where, end = f"{path} line {end + 1}", reader.line_num   # where the row starts
            if any((v or "").strip() for v in d.get(None, ())):   # a trailing comma is harmless
                raise ValueError(f"{where}: more values than the header's {len(cols)} columns")
            vid = (d.get("video_id") or "").strip()
            if not vid:
                raise ValueError(f"{where}: empty video_id")
            if vid in seen:
                raise ValueError(f"{where}: duplicate video_id {vid[:80]!r}")
            seen.add(vid)
            subs = {c: _float(d[c], c, where) for c in cols if c not in BASE_COLUMNS}
            rows.append(LabelRow(video_id=vid, score=_float(d["score"], "score", where),
                                 action=(d.get("action") or "").strip(),
                                 difficulty=_float(d.get("difficulty", ""), "difficulty", where),
                                 split=(d.get("split") or "").strip(), sub_scores=subs))
    except csv.Error as e:
        raise ValueError(f"{path} line {end + 1}: not a readable CSV row ({e})") from None
    return rows


def to_arrays(rows: Sequence[LabelRow]) -> dict[str, np.ndarray]:
    """Columns as numpy arrays: video_id/action/split as str, score/difficulty and sub-scores float."""
    out = {"video_id": np.array([r.video_id for r in rows], dtype=str),
           "score": np.array([r.score for r in rows], dtype=float),
           "action": np.array([r.action for r in rows], dtype=str),
           "difficulty": np.array([r.difficulty for r in rows], dtype=float),
           "split": np.array([r.split for r in rows], dtype=str)}
    keys = []
    for r in rows:
        keys += [k for k in r.sub_scores if k not in keys]
    for k in keys:
        out[k] = np.array([r.sub_scores.get(k, math.nan) for r in rows], dtype=float)
    return out
