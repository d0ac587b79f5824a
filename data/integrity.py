"""Cache maintenance: :func:`verify` (check a cache completely), :func:`merge` (join shard caches)
and :func:`repair` (rebuild a damaged cache from what is still readable). The file format itself,
and its reader and writer, are :mod:`aqa.data.cache`."""
from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import h5py
import numpy as np

from .logs import progress_bar
from .cache import (_H5_ERRORS, FORMAT, FORMAT_VERSION, REQUIRED_VIDEO_ARRAYS, REQUIRED_VIDEO_ATTRS,
                    CacheError, CacheLockedError, CacheWriter, _members, _open_checked, _open_h5,
                    _read_labels, _root_config_hashes, _same_row, _unreadable, _write_labels,
                    _writer_lock)


# --------------------------------------------------------------------------------------------
# verify
@dataclass
class VerifyReport:
    path: str
    format_version: int | None = None
    n_videos: int = 0          # complete source videos
    n_views: int = 0           # complete augmented views (see aqa.data.views)
    families: dict[str, dict[str, list]] = field(default_factory=dict)  # fam -> part -> shape
    n_labels: int = 0
    untrained: bool = False
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    busy: str = ""      # set when another process holds the file's lock (not a defect of the file)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.busy

    def as_dict(self) -> dict:
        return {"path": self.path, "ok": self.ok, "busy": self.busy,
                "format_version": self.format_version,
                "n_videos": self.n_videos, "n_views": self.n_views, "families": self.families,
                "n_labels": self.n_labels,
                "untrained": self.untrained, "problems": self.problems, "warnings": self.warnings}


def _read_all(ds: h5py.Dataset) -> np.ndarray:
    """Read a dataset fully; fletcher32 makes a corrupted chunk raise OSError here."""
    return ds[()]


def verify(path: str | os.PathLike, progress: bool = False) -> VerifyReport:
    """Check a cache completely: format, attributes, every array (checksums), shapes, labels,
    and that the root config describes every video. A file locked by another process is reported
    as ``busy`` (after :data:`LOCK_TIMEOUT` seconds of retries), not as a problem."""
    path = Path(path)
    rep = VerifyReport(str(path))
    try:
        f = _open_h5(path, "r")
    except CacheLockedError as e:
        rep.busy = str(e)
        return rep
    except OSError as e:
        rep.problems.append(f"cannot open as HDF5: {e}")
        return rep
    with f:
        try:
            _verify_file(f, rep, progress)
        except Exception as e:  # noqa: BLE001 - a damaged HDF5 structure: report, don't crash
            rep.problems.append(f"damaged HDF5 structure ({type(e).__name__}: {e}); "
                                f"`aqa-data repair {path}` rebuilds the file from what is readable")
    return rep


def _video_names(f: h5py.File) -> list[str]:
    """Names of the members of /videos (empty when there is none)."""
    return list(f["videos"]) if "videos" in f else []


def _verify_file(f: h5py.File, rep: VerifyReport, progress: bool) -> None:
    """The body of :func:`verify` on the open file."""
    a = f.attrs
    if a.get("format") != FORMAT:
        rep.problems.append(f"format attribute is {a.get('format')!r}, expected {FORMAT!r}")
        return
    rep.format_version = int(a.get("format_version", -1))
    if rep.format_version != FORMAT_VERSION:
        rep.problems.append(f"format_version {rep.format_version} not supported ({FORMAT_VERSION})")
    for k in ("aqa_version", "created_utc", "config_json", "weights", "untrained"):
        if k not in a:
            rep.problems.append(f"root attribute {k!r} missing")
    rep.untrained = bool(a.get("untrained", False))
    for k in ("config_json", "weights"):
        try:
            json.loads(a.get(k, "{}"))
        except ValueError:
            rep.problems.append(f"root attribute {k!r} is not valid JSON")
    try:
        if "_incomplete" in f and len(f["_incomplete"]):
            rep.warnings.append(f"{len(f['_incomplete'])} interrupted video write(s) under "
                                f"/_incomplete ({', '.join(list(f['_incomplete'])[:5])}); "
                                "re-run the extraction to redo them")
    except _H5_ERRORS as e:
        rep.problems.append(f"/_incomplete (an interrupted write) is unreadable: {e}; "
                            "`aqa-data repair` rebuilds the file without it")
    try:
        names = _video_names(f)
    except _H5_ERRORS as e:
        rep.problems.append(f"/videos is unreadable: {e}; `aqa-data repair` keeps what it can")
        names = []
    vids = _members(f)
    for vid in names:
        if vid not in vids:
            rep.problems.append(f"videos/{vid}: unreadable (damaged link, header or attributes)")
    items = list(vids.items())
    if progress:
        items = progress_bar(items, desc="verify", unit="video")
    for vid, g in items:
        try:
            _verify_video(vid, g, rep)
        except _H5_ERRORS as e:
            rep.problems.append(f"videos/{vid}: unreadable (checksum/corruption): {e}")
    complete = {v: g for v, g in vids.items() if g.attrs.get("status") == "complete"}
    views = {v: g for v, g in complete.items() if "view_of" in g.attrs}
    rep.n_videos, rep.n_views = len(complete) - len(views), len(views)
    _verify_views(views, complete, rep)
    _verify_configs(a, vids, rep)
    marked = sorted(v for v, g in vids.items() if g.attrs.get("untrained", False))
    if marked and not rep.untrained:
        rep.problems.append(f"{len(marked)} video(s) hold untrained features (e.g. {marked[:3]}) "
                            "but the root 'untrained' mark is false")
    try:
        has_labels = "labels" in f or "_labels_new" in f
        if has_labels:
            rows = _read_labels(f)
            rep.n_labels = len(rows)
            ids = {r.video_id for r in rows}
            unl = [v for v in vids if v not in ids and "view_of" not in vids[v].attrs]
            if unl and rows:
                rep.warnings.append(f"{len(unl)} video(s) without a label row, e.g. {unl[:3]}")
    except Exception as e:  # noqa: BLE001 - report, don't crash
        rep.problems.append(f"labels table unreadable: {e}")


def _verify_configs(attrs, vids, rep: VerifyReport) -> None:
    """A complete video extracted with another config than the root's is a provenance problem."""
    allowed = _root_config_hashes(attrs)
    other: dict[str, list[str]] = {}
    for vid, g in vids.items():
        h = g.attrs.get("config_sha256")
        if g.attrs.get("status") == "complete" and h is not None and h not in allowed:
            other.setdefault(str(h), []).append(vid)
    if not other:
        return
    try:
        known = json.loads(attrs.get("configs_json", "{}"))
    except ValueError:
        known = {}
    for h, ids in sorted(other.items()):
        cfg = json.dumps(known[h], sort_keys=True, default=str) if h in known else "not recorded"
        cfg = cfg if len(cfg) <= 240 else cfg[:237] + "..."
        rep.problems.append(
            f"{len(ids)} video(s) ({', '.join(sorted(ids)[:3])}{', ...' if len(ids) > 3 else ''}) "
            f"were extracted with config {h[:12]} ({cfg}), not the root config_json: re-run the "
            "extraction with one config to redo them, or extract into a separate file")


def _verify_views(views: Mapping, complete: Mapping, rep: VerifyReport) -> None:
    """Each view names a view by its canonical name and a complete source video, under the id it
    implies, and was made from the same file and config as that source."""
    from .views import parse_view, view_id

    for vid, g in sorted(views.items()):
        src, name = str(g.attrs["view_of"]), str(g.attrs.get("view", ""))
        try:
            canonical = parse_view(name).name
        except ValueError as e:
            rep.problems.append(f"videos/{vid}: view attribute {name!r} is not a view ({e})")
            continue
        if name != canonical:
            rep.problems.append(f"videos/{vid}: view attribute {name!r} is not the canonical "
                                f"name {canonical!r} (readers look views up by it)")
        elif vid != view_id(src, canonical):
            rep.problems.append(f"videos/{vid}: a view {canonical!r} of {src!r} must be "
                                f"stored as {view_id(src, canonical)!r}")
        elif src not in complete or "view_of" in complete[src].attrs:
            rep.warnings.append(f"videos/{vid}: its source video {src!r} is not in the cache")
        elif (why := view_mismatch(g.attrs, complete[src].attrs)):
            rep.problems.append(f"videos/{vid}: {why} than its source {src!r}: re-run the "
                                f"extraction with --view {canonical} to redo it")


def view_mismatch(view_attrs: Mapping, source_attrs: Mapping) -> str | None:
    """Why a view cannot stand beside its source (made from another version of the file, or
    with another config), else None."""
    if view_attrs.get("source_sha256") != source_attrs.get("source_sha256"):
        return "made from another version of the file"
    if view_attrs.get("config_sha256") != source_attrs.get("config_sha256"):
        return "extracted with another config"
    return None


def _verify_video(vid: str, g: h5py.Group, rep: VerifyReport) -> None:
    where = f"videos/{vid}"
    for k in REQUIRED_VIDEO_ATTRS:
        if k not in g.attrs:
            rep.problems.append(f"{where}: attribute {k!r} missing")
    if g.attrs.get("status") != "complete":
        rep.problems.append(f"{where}: status is {g.attrs.get('status')!r}, not 'complete'")
    for k in REQUIRED_VIDEO_ARRAYS:
        if k not in g:
            rep.problems.append(f"{where}: array {k!r} missing")
    arrays: dict[str, np.ndarray] = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            try:
                arrays[name] = _read_all(obj)
            except (OSError, RuntimeError) as e:
                rep.problems.append(f"{where}/{name}: unreadable (checksum/corruption): {e}")
    g.visititems(visit)
    kp = arrays.get("pose/keypoints")
    if kp is not None and (kp.ndim != 4 or kp.shape[2:] != (17, 3)):
        rep.problems.append(f"{where}: pose/keypoints shape {kp.shape}, expected (F,P,17,3)")
    fi = arrays.get("frames/index")
    if kp is not None and fi is not None and kp.shape[0] != fi.shape[0]:
        rep.problems.append(f"{where}: pose has {kp.shape[0]} frames, frames/index {fi.shape[0]}")
    for fam in g.get("features", {}):
        base = f"features/{fam}"
        whole, joints = arrays.get(f"{base}/whole"), arrays.get(f"{base}/joints")
        start = arrays.get(f"{base}/clip_start")
        shapes = rep.families.setdefault(fam, {})
        if whole is None and joints is None:
            rep.problems.append(f"{where}/{base}: neither whole nor joints")
            continue
        for part, arr, nd in (("whole", whole, 2), ("joints", joints, 3)):
            if arr is None:
                continue
            if arr.ndim != nd:
                rep.problems.append(f"{where}/{base}/{part}: {arr.ndim}-d, expected {nd}-d")
            elif not np.isfinite(arr).all():
                rep.problems.append(f"{where}/{base}/{part}: contains NaN/inf")
            shape = ["S", *arr.shape[1:]]
            if shapes.setdefault(part, shape) != shape:
                rep.problems.append(f"{where}/{base}/{part}: shape {arr.shape} differs from other "
                                    f"videos ({shapes[part]})")
        steps = {a.shape[0] for a in (whole, joints, start) if a is not None}
        if len(steps) > 1:
            rep.problems.append(f"{where}/{base}: whole/joints/clip_start disagree on S: {steps}")


# --------------------------------------------------------------------------------------------
# merge
def merge(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, progress: bool = True) -> dict:
    """Join shard caches into one: every complete video, the union of labels and weights.

    A video id present in two inputs is an error unless both copies have the same
    ``source_sha256`` and ``config_sha256`` (and are both the same view, or both no view; then the
    first is kept). A view that does not match its source from another input (another version
    of the file, another config) is dropped with a warning. Returns a summary dict.
    The merge is written to a hidden temporary file next to ``out`` and renamed to ``out`` only
    when complete; a merge that fails (or is interrupted) leaves no ``out`` behind.
    """
    out = Path(out)
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise CacheError("merge: no input caches given")
    out.parent.mkdir(parents=True, exist_ok=True)
    with _writer_lock(out):
        if out.exists():
            raise CacheError(f"merge: output {out} already exists; choose a new file")
        tmp = out.with_name(f".{out.name}.merging-{os.getpid()}")
        try:
            summary = _merge_into(inputs, tmp, progress)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
            tmp.with_name(tmp.name + ".lock").unlink(missing_ok=True)  # CacheWriter's lock of tmp
    return {"out": str(out), **summary}


def _merge_into(inputs: list[Path], out: Path, progress: bool) -> dict:
    """The body of :func:`merge`: write the merged cache to the new file ``out``."""

    for p in inputs:
        rep = verify(p)
        if not rep.ok:
            raise CacheError(f"merge: {p}: {rep.busy}" if rep.busy else
                             f"merge: {p} is not a valid cache: {rep.problems[:3]}")
    configs, weights, untrained, labels, history = set(), {}, False, {}, {}
    with _open_checked(inputs[0], "r") as f0:
        config = json.loads(f0.attrs["config_json"])
    n_copied, n_dupes = 0, 0
    with CacheWriter(out, config=config) as w, w._file() as fo:
        seen: dict[str, tuple] = {}
        for p in inputs:
            with _open_checked(p, "r") as fi:
                configs.add(fi.attrs["config_json"])
                history.update(json.loads(fi.attrs.get("configs_json", "{}")))
                weights.update(json.loads(fi.attrs["weights"]))
                untrained |= bool(fi.attrs["untrained"])
                for r in _read_labels(fi):
                    prev = labels.get(r.video_id)
                    if prev is not None and not _same_row(prev, r):
                        raise CacheError(f"merge: conflicting labels for {r.video_id!r} in {p}")
                    labels[r.video_id] = r
                for vid in progress_bar(sorted(fi.get("videos", {})), desc=f"merge {p.name}",
                                unit="video", disable=not progress):
                    g = fi[f"videos/{vid}"]
                    key = tuple(g.attrs.get(k) for k in ("source_sha256", "config_sha256",
                                                         "view_of", "view"))
                    if vid in seen or vid in fo["videos"]:
                        if seen.get(vid) == key:
                            n_dupes += 1
                            continue
                        raise CacheError(f"merge: video {vid!r} appears in two inputs with "
                                         f"different content/config (second: {p})")
                    seen[vid] = key
                    fi.copy(g, fo["videos"], name=vid)
                    n_copied += 1
        stale = _drop_stale_views(fo)
        fo.attrs["weights"] = json.dumps(weights, sort_keys=True)
        fo.attrs["untrained"] = untrained
        fo.attrs["configs_json"] = json.dumps(history, sort_keys=True, default=str)
        if len(configs) > 1:
            fo.attrs["config_json"] = json.dumps(
                {"merged_configs": [json.loads(c) for c in sorted(configs)]}, sort_keys=True)
        if labels:
            _write_labels(fo, list(labels.values()))
    return {"inputs": len(inputs), "videos": n_copied - len(stale), "duplicates_skipped": n_dupes,
            "stale_views_dropped": len(stale), "labels": len(labels), "configs": len(configs),
            "untrained": untrained}


def _drop_stale_views(f: h5py.File) -> list[str]:
    """Delete the views of a merged file that came from another input than their source and do
    not match it (:func:`view_mismatch`: one part holds a view of the old file, another the
    re-extracted source); each is warned about. Returns their ids."""
    vids = f["videos"]
    stale = []
    for vid in sorted(vids):
        a = vids[vid].attrs
        src = str(a.get("view_of", ""))
        if src and src in vids and (why := view_mismatch(a, vids[src].attrs)):
            warnings.warn(f"merge: dropped the view {vid!r}, {why} than its source {src!r} "
                          f"(re-run the extraction with --view {a.get('view')} to redo it)",
                          UserWarning, stacklevel=4)
            stale.append(vid)
    for vid in stale:
        del vids[vid]
    return stale




# --------------------------------------------------------------------------------------------
# repair
def repair(path: str | os.PathLike, progress: bool = True) -> dict:
    """Rebuild a damaged cache from everything still readable: the root attributes (provenance),
    every complete video whose arrays all read back (checksums), the labels table.

    The new file is written beside ``path`` and renamed over it only when complete (an interrupted
    repair leaves the file as it was), under the writer lock. Returns ``{"path", "videos",
    "views", "labels", "dropped"}``, ``dropped`` a list of ``(what, why)``: the videos, labels or
    attributes left out, and interrupted writes. A file that does not open as HDF5 at all is a
    :class:`CacheError` (nothing in it can be found)."""
    from .cache import SPACE_MARGIN, CacheFullError

    path = Path(path)
    if not path.is_file():
        raise CacheError(f"{path}: no such cache file")
    with _writer_lock(path):
        need = path.stat().st_size + SPACE_MARGIN
        if (free := shutil.disk_usage(path.parent).free) < need:
            raise CacheFullError(f"{path}: repair writes a new copy beside it and needs "
                                 f"{need / 2**20:.1f} MiB free there, {free / 2**20:.1f} MiB are: "
                                 "free space, or move the file, then repair again")
        try:
            f = _open_h5(path, "r")
        except CacheLockedError:
            raise
        except OSError as e:
            raise CacheError(f"{path}: cannot be opened as HDF5 ({e}): nothing in it can be "
                             "recovered; extract the videos again into a new file") from None
        tmp = path.with_name(f".{path.name}.repairing-{os.getpid()}")
        try:
            with f, h5py.File(tmp, "w") as out:
                summary = _repair_into(f, out, progress)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return {"path": str(path), **summary}


def _repair_into(f: h5py.File, out: h5py.File, progress: bool) -> dict:
    """The body of :func:`repair`: copy what is readable of ``f`` into the new file ``out``."""

    from .cache import _untrained_videos, aqa_version

    dropped: list[tuple[str, str]] = []
    root = {}
    try:
        keys = list(f.attrs)
    except _H5_ERRORS as e:
        keys = []
        dropped.append(("root attributes", f"unreadable: {e}"))
    for key in keys:
        try:
            root[key] = f.attrs[key]
        except _H5_ERRORS as e:
            dropped.append((f"root attribute {key!r}", f"unreadable: {e}"))
    if root.get("format", FORMAT) != FORMAT:
        raise CacheError(f"{f.filename}: format attribute is {root['format']!r}, not an aqa cache")
    for key, value in root.items():
        out.attrs[key] = value
    try:
        incomplete = list(f["_incomplete"]) if "_incomplete" in f else []
    except _H5_ERRORS as e:
        incomplete = ["(unlisted)"]
        dropped.append(("/_incomplete", f"unreadable: {e}"))
    dropped += [(f"_incomplete/{v}", "an interrupted write (the extraction redoes it)")
                for v in incomplete if v != "(unlisted)"]
    try:
        names = sorted(f["videos"]) if "videos" in f else []
    except _H5_ERRORS as e:
        names = []
        dropped.append(("/videos", f"its index is unreadable ({e}): every video is lost"))
    videos = out.create_group("videos")
    kept, views = 0, 0
    for vid in progress_bar(names, desc="repair", unit="video", disable=not progress):
        try:
            g = f["videos"][vid]
            status = g.attrs.get("status")
        except _H5_ERRORS as e:
            dropped.append((f"videos/{vid}", f"unreadable link or header: {e}"))
            continue
        why = "not complete" if status != "complete" else _unreadable(g)
        if not why:
            try:
                f.copy(g, videos, name=vid)
            except _H5_ERRORS as e:
                why = f"cannot be copied: {e}"
        if why:
            dropped.append((f"videos/{vid}", why))
            if vid in videos:
                del videos[vid]
            continue
        kept += 1
        views += "view_of" in videos[vid].attrs
    try:
        rows = _read_labels(f)
        if rows or "labels" in f:
            _write_labels(out, rows)
    except Exception as e:  # noqa: BLE001 - any damage of the table: left out, reported
        rows = []
        dropped.append(("labels", f"unreadable ({type(e).__name__}: {e}); re-run the "
                                  "extraction with --labels to add them again"))
    defaults = {"format": FORMAT, "format_version": FORMAT_VERSION, "aqa_version": aqa_version(),
                "created_utc": "unknown", "weights": "{}", "config_json": "{}",
                "untrained": bool(_untrained_videos(out))}
    for key, value in defaults.items():
        if key not in out.attrs:
            out.attrs[key] = value
            if root:
                dropped.append((f"root attribute {key!r}", f"missing: set to {value!r}"))
    return {"videos": kept - views, "views": views, "labels": len(rows), "dropped": dropped}
