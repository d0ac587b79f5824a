"""Weight-free features: pose kinematics and histograms of optical flow, per time step.

The embedded default when no backbone checkpoint is present (``docs/architecture.md``, "Feature families"). Two
families, each with the cache's shapes ``whole (S, D)`` and ``joints (S, 17, D)``:

* ``kin_pose`` (:func:`kinematics`): per joint, the position relative to the body centre, velocity and
  acceleration of that relative position, all in body sizes (and per second), plus the keypoint score;
  per step for the body, the centre's motion, the torso orientation, the extent, and for two-person
  videos the secondary athlete relative to the primary (AIM's primary/secondary split).
* ``hof_flow`` (:func:`flow_histograms`): histograms of oriented optical flow (HOF) over the whole frame
  and inside each joint patch, with the camera motion (border-band median flow) removed inside the patches.

Camera motion per step for ``motion/camera`` is :func:`camera_motion_steps`. Column layouts are in
:data:`FAMILIES`. Outputs are never NaN: a step without data gives zeros and says so in its ``valid``
columns. Pure numpy; no torch, no weights.

Padded clip positions (``padded=``, a short video filled up to the protocol's length, see
:attr:`aqa.extract.sampling.Sampling.padded`) are what zero frames give, as Li et al. pad: no person
(missing in ``kin_pose``, so its ``valid`` columns drop) and zero flow (no motion in ``hof_flow``,
no camera motion).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .patches import clip_positions, padded_mask

__all__ = [
    "ColumnGroup",
    "FeatureFamily",
    "FAMILIES",
    "DEFAULT_N_BINS",
    "kinematics",
    "flow_histograms",
    "hof_columns",
    "hof_family",
    "border_median_flow",
    "camera_motion_steps",
]

# COCO-17 indices used for the body frame.
L_SHO, R_SHO, L_HIP, R_HIP = 5, 6, 11, 12
DEFAULT_N_BINS = 8


# --------------------------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class ColumnGroup:
    """A run of ``width`` adjacent feature columns with one meaning."""

    name: str
    width: int
    description: str


@dataclass(frozen=True)
class FeatureFamily:
    """Column layout of one weight-free feature family (``features/<name>/whole`` and ``/joints``)."""

    name: str
    description: str
    whole: tuple[ColumnGroup, ...]
    joints: tuple[ColumnGroup, ...]

    @property
    def whole_dim(self) -> int:
        return sum(g.width for g in self.whole)

    @property
    def joints_dim(self) -> int:
        return sum(g.width for g in self.joints)

    def slices(self, part: str = "joints") -> dict[str, slice]:
        """Column slice of each group of ``part`` ("whole" or "joints")."""
        out, i = {}, 0
        for g in getattr(self, part):
            out[g.name] = slice(i, i + g.width)
            i += g.width
        return out

    def to_dict(self) -> dict:
        """JSON-friendly description, e.g. for cache attributes and reports."""
        def groups(gs):
            return [{"name": g.name, "width": g.width, "description": g.description} for g in gs]
        return {"name": self.name, "description": self.description, "whole_dim": self.whole_dim,
                "joints_dim": self.joints_dim, "whole": groups(self.whole), "joints": groups(self.joints)}


_KIN_JOINTS = (
    ColumnGroup("pos", 2, "mean (x, y) of the joint relative to the body centre, in body sizes"),
    ColumnGroup("pos_std", 2, "std of that relative position over the step"),
    ColumnGroup("vel", 2, "mean velocity of the relative position, body sizes per second"),
    ColumnGroup("vel_std", 2, "std of that velocity"),
    ColumnGroup("speed", 1, "mean speed (norm of the velocity)"),
    ColumnGroup("acc", 2, "mean acceleration of the relative position, body sizes per second^2"),
    ColumnGroup("acc_std", 2, "std of that acceleration"),
    ColumnGroup("acc_norm", 1, "mean norm of the acceleration"),
    ColumnGroup("score", 1, "mean keypoint score where detected (the pose backend's scale)"),
    ColumnGroup("valid", 1, "fraction of the step's frames where the joint was detected"),
)
_KIN_BODY = (
    ColumnGroup("centre_vel", 2, "mean velocity of the body centre in the image, body sizes per second"),
    ColumnGroup("centre_vel_std", 2, "std of that velocity"),
    ColumnGroup("centre_speed", 1, "mean speed of the body centre"),
    ColumnGroup("centre_acc_norm", 1, "mean norm of the body centre's acceleration"),
    ColumnGroup("orient", 2, "mean (cos, sin) of the torso angle (hip mid -> shoulder mid, 0 = upright)"),
    ColumnGroup("ang_speed", 1, "mean |angular velocity| of the torso, radians per second"),
    ColumnGroup("extent", 2, "mean width and height of the keypoints' bounding box, body sizes"),
    ColumnGroup("score", 1, "mean keypoint score over detected joints"),
    ColumnGroup("valid", 1, "fraction of the step's frames with a body centre"),
)
_KIN_PAIR = (
    ColumnGroup("pair_offset", 2, "mean secondary centre minus primary centre, primary body sizes"),
    ColumnGroup("pair_dist", 1, "mean distance between the two centres, primary body sizes"),
    ColumnGroup("pair_rel_vel", 2, "mean secondary minus primary centre velocity, primary sizes per s"),
    ColumnGroup("pair_pose_diff", 1, "mean over joints of |relative position difference| (own sizes)"),
    ColumnGroup("pair_vel_diff", 1, "mean over joints of |relative velocity difference| (own sizes)"),
    ColumnGroup("pair_orient_diff", 2, "mean (cos, sin) of the torso angle difference"),
    ColumnGroup("pair_valid", 1, "fraction of frames with both centres; all pair columns 0 for P=1"),
)


def hof_columns(n_bins: int = DEFAULT_N_BINS) -> tuple[ColumnGroup, ...]:
    """Column groups of one HOF vector with ``n_bins`` orientation bins."""
    return (
        ColumnGroup("hist", n_bins, f"magnitude-weighted flow orientation, {n_bins} bins of "
                    f"{360 / n_bins:g} deg centred on 0 (+x), 90 (+y, image down), ...; L1 with no_motion"),
        ColumnGroup("no_motion", 1, "share of pixels below min_magnitude (each weighted min_magnitude)"),
        ColumnGroup("mean_mag", 1, "mean flow magnitude, pixels of the original frame per frame pair"),
        ColumnGroup("coverage", 1, "fraction of the region's area inside the frame (1 for whole)"),
    )


FAMILIES: dict[str, FeatureFamily] = {
    "kin_pose": FeatureFamily(
        "kin_pose",
        "pose kinematics of the primary athlete (whole: body motion + secondary relative to primary)",
        whole=_KIN_BODY + _KIN_PAIR, joints=_KIN_JOINTS),
    "hof_flow": None,  # filled below by hof_family(DEFAULT_N_BINS)
}


def hof_family(n_bins: int = DEFAULT_N_BINS) -> FeatureFamily:
    """The ``hof_flow`` layout for ``n_bins`` orientation bins (FAMILIES holds the default's)."""
    return FeatureFamily(
        "hof_flow",
        "histograms of oriented TV-L1 flow, whole frame and inside each joint patch (camera removed)",
        whole=hof_columns(n_bins), joints=hof_columns(n_bins))


FAMILIES["hof_flow"] = hof_family(DEFAULT_N_BINS)


# ---------------------------------------------------------------------------------------- helpers
def _masked_stats(x: np.ndarray, ok: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of ``x`` over ``axis`` using only entries where ``ok``; 0 where none is ok."""
    w = ok.astype(np.float64)
    while w.ndim < x.ndim:
        w = w[..., None]
    xz = np.where(w > 0, x, 0.0)
    n = w.sum(axis=axis)
    mean = xz.sum(axis=axis) / np.maximum(n, 1)
    var = (w * (xz - np.expand_dims(mean, axis)) ** 2).sum(axis=axis) / np.maximum(n, 1)
    return mean, np.sqrt(np.maximum(var, 0.0))


def _times(n_frames: int, fps: float, frame_index) -> np.ndarray:
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if frame_index is None:
        return np.arange(n_frames, dtype=np.float64) / fps
    idx = np.asarray(frame_index, dtype=np.float64)
    if idx.shape != (n_frames,):
        raise ValueError(f"frame_index must be ({n_frames},), got {idx.shape}")
    if n_frames > 1 and not np.all(np.diff(idx) > 0):
        raise ValueError("frame_index must be strictly increasing")
    return idx / fps


def _deriv(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Time derivative along axis 0 (second-order central differences, one-sided at the ends).

    NaN samples make their neighbours' derivatives NaN, which the step statistics then skip.
    """
    if x.shape[0] < 2:
        return np.full_like(x, np.nan)
    return np.gradient(x, t, axis=0)


def _mid(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a + b) / 2


def _body_frame(kp: np.ndarray, ok: np.ndarray, boxes: np.ndarray | None):
    """Body centre (F, 2), torso vector (F, 2) and one body size for a person track (F, 17, 3).

    Centre: hip midpoint, else shoulder midpoint, else the mean of the detected joints. Size: median
    torso length (shoulder mid to hip mid) over the video, else median person-box height, else median
    keypoint-extent height; ``None`` when the person is never seen.
    """
    xy = np.where(ok[..., None], kp[..., :2], np.nan)
    hip = _mid(xy[:, L_HIP], xy[:, R_HIP])
    sho = _mid(xy[:, L_SHO], xy[:, R_SHO])
    with np.errstate(invalid="ignore"):
        anyj = ok.any(axis=1)
        mean_j = np.where(anyj[:, None], np.nansum(np.nan_to_num(xy, nan=0.0), axis=1)
                          / np.maximum(ok.sum(axis=1), 1)[:, None], np.nan)
    centre = np.where(np.isfinite(hip).all(1, keepdims=True), hip,
                      np.where(np.isfinite(sho).all(1, keepdims=True), sho, mean_j))
    torso = sho - hip                                          # NaN unless all four joints are present
    tlen = np.linalg.norm(torso, axis=1)
    size = None
    if np.isfinite(tlen).any() and np.nanmedian(tlen) > 0:
        size = float(np.nanmedian(tlen))
    elif boxes is not None and np.isfinite(boxes).all(axis=1).any():
        h = boxes[:, 3] - boxes[:, 1]
        h = h[np.isfinite(h) & (h > 0)]
        size = float(np.median(h)) if h.size else None
    if size is None and (ok.sum(axis=1) >= 2).any():
        ys = np.where(ok, kp[..., 1], np.nan)[ok.sum(axis=1) >= 2]
        ext = np.nanmax(ys, 1) - np.nanmin(ys, 1)
        size = float(np.median(ext)) if np.median(ext) > 0 else None
    return centre, torso, size


# ------------------------------------------------------------------------------------- kinematics
def _person_series(kp, ok, boxes, t):
    """Per-frame series of one person in its own body sizes; None if the person is never seen."""
    centre, torso, size = _body_frame(kp, ok, boxes)
    if size is None:
        return None
    rel = np.where(ok[..., None], (kp[..., :2] - centre[:, None, :]) / size, np.nan)   # (F, 17, 2)
    vel = _deriv(rel, t)
    acc = _deriv(vel, t)
    c = centre / size
    cvel = _deriv(c, t)
    cacc = _deriv(cvel, t)
    # Torso angle from upright: image y points down, so upright torso = (0, -1) -> angle 0.
    ang = np.arctan2(torso[:, 0], -torso[:, 1])
    fin = np.isfinite(ang)
    ang_u = ang.copy()
    if fin.sum() >= 1:
        ang_u[fin] = np.unwrap(ang[fin])
    angvel = _deriv(ang_u, t)
    xs = np.where(ok, kp[..., 0], np.nan)
    ys = np.where(ok, kp[..., 1], np.nan)
    two = ok.sum(axis=1) >= 2
    ext = np.full((kp.shape[0], 2), np.nan)
    if two.any():
        ext[two, 0] = (np.nanmax(xs[two], 1) - np.nanmin(xs[two], 1)) / size
        ext[two, 1] = (np.nanmax(ys[two], 1) - np.nanmin(ys[two], 1)) / size
    return dict(size=size, centre=centre, rel=rel, vel=vel, acc=acc, cvel=cvel, cacc=cacc, ang=ang,
                angvel=angvel, ext=ext, score=np.where(ok, kp[..., 2], np.nan), ok=ok)


def _pad_rows(rows: np.ndarray, padded, n: int, *series: dict) -> tuple:
    """Point ``padded`` positions of ``rows`` at an extra row ``n`` that every per-frame array of
    each ``series`` dict gets appended: NaN (float) or False (bool), i.e. missing."""
    pad = padded_mask(padded, rows)
    if pad is None:
        return (rows, *series)
    out = []
    for d in series:
        if d is not None:
            d = {k: np.concatenate([v, np.full((1,) + v.shape[1:], False if v.dtype == bool
                                               else np.nan, v.dtype)])
                 if isinstance(v, np.ndarray) and v.ndim and v.shape[0] == n else v
                 for k, v in d.items()}
        out.append(d)
    return (np.where(pad, n, rows), *out)


def _step_mean(x, rows):
    """Mean/std over each step's rows of a per-frame series x (F, ...), skipping NaN entries."""
    xs = x[rows]                                               # (S, L, ...)
    ok = np.isfinite(xs)
    return _masked_stats(np.nan_to_num(xs, nan=0.0), ok, axis=1)


def _step_pool(x, rows):
    """Mean over each step's frames *and* joints of a per-frame, per-joint series x (F, 17) -> (S, 1)."""
    xs = x[rows].reshape(rows.shape[0], -1)
    return _masked_stats(np.nan_to_num(xs, nan=0.0), np.isfinite(xs), axis=1)[0][:, None]


def kinematics(
    keypoints: np.ndarray,
    clips: np.ndarray,
    fps: float,
    frame_index: np.ndarray | None = None,
    boxes: np.ndarray | None = None,
    min_score: float | None = 0.0,
    padded: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-step pose kinematics of the primary athlete (and the secondary relative to it).

    Parameters
    ----------
    keypoints : (F, P, 17, 3) x, y, score for the selected persons (P >= 1; person 0 is the primary,
        person 1 the secondary), NaN where absent.
    clips : (S, L) positions into the decoded frames; step ``s`` aggregates frames ``clips[s]``.
    fps : frame rate of the source video. Derivatives use times ``frame_index / fps`` (default
        ``arange(F) / fps``), so decoding every k-th frame still gives velocities per second.
    frame_index : (F,) decoded frame indices (the cache's ``frames/index``).
    boxes : (F, P, 4) person boxes, used for the body size only when no torso is ever seen.
    min_score : joints scoring below this count as missing (``None``: only NaN is missing).
    padded : (S, L) bool, clip positions that are padding: missing (module docstring).

    Returns
    -------
    whole : (S, Dw) float32, ``FAMILIES["kin_pose"].whole`` columns. The pair columns describe the
        secondary relative to the primary (centre offset, distance, relative velocity, mean joint-wise
        pose and velocity differences each in its own body sizes, torso angle difference); they are all
        zero with ``pair_valid = 0`` when P = 1 or the secondary is absent, so Dw does not depend on P.
    joints : (S, 17, Dk) float32 for the primary, ``FAMILIES["kin_pose"].joints`` columns.

    Joint motion is that of the body-centred position (the centre's own motion is in ``whole``; their sum
    is the joint's motion in the image). Body size: median torso length over the video. Steps or joints
    with no data give zeros and a ``valid`` of 0; outputs are never NaN.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 4 or kp.shape[2:] != (17, 3) or kp.shape[1] < 1:
        raise ValueError(f"keypoints must be (F, P, 17, 3) with P >= 1, got {kp.shape}")
    n, n_person = kp.shape[:2]
    rows = clip_positions(clips, n, n)
    if boxes is not None:
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.shape != (n, n_person, 4):
            raise ValueError(f"boxes must be (F, P, 4) = ({n}, {n_person}, 4), got {boxes.shape}")
    t = _times(n, fps, frame_index)
    ok = np.isfinite(kp[..., 0]) & np.isfinite(kp[..., 1])
    if min_score is not None:
        with np.errstate(invalid="ignore"):
            ok &= kp[..., 2] >= min_score

    fam = FAMILIES["kin_pose"]
    n_steps = rows.shape[0]
    whole = np.zeros((n_steps, fam.whole_dim))
    joints = np.zeros((n_steps, 17, fam.joints_dim))
    p = _person_series(kp[:, 0], ok[:, 0], None if boxes is None else boxes[:, 0], t)
    if p is None:
        return whole.astype(np.float32), joints.astype(np.float32)
    q = None
    if n_person >= 2:
        q = _person_series(kp[:, 1], ok[:, 1], None if boxes is None else boxes[:, 1], t)
    rows, p, q = _pad_rows(rows, padded, n, p, q)

    js, ws = fam.slices("joints"), fam.slices("whole")
    m, s = _step_mean(p["rel"], rows)
    joints[..., js["pos"]], joints[..., js["pos_std"]] = m, s
    m, s = _step_mean(p["vel"], rows)
    joints[..., js["vel"]], joints[..., js["vel_std"]] = m, s
    joints[..., js["speed"]] = _step_mean(np.linalg.norm(p["vel"], axis=-1), rows)[0][..., None]
    m, s = _step_mean(p["acc"], rows)
    joints[..., js["acc"]], joints[..., js["acc_std"]] = m, s
    joints[..., js["acc_norm"]] = _step_mean(np.linalg.norm(p["acc"], axis=-1), rows)[0][..., None]
    joints[..., js["score"]] = _step_mean(p["score"], rows)[0][..., None]
    joints[..., js["valid"]] = p["ok"][rows].mean(axis=1)[..., None]

    m, s = _step_mean(p["cvel"], rows)
    whole[:, ws["centre_vel"]], whole[:, ws["centre_vel_std"]] = m, s
    whole[:, ws["centre_speed"]] = _step_mean(np.linalg.norm(p["cvel"], axis=-1), rows)[0][:, None]
    whole[:, ws["centre_acc_norm"]] = _step_mean(np.linalg.norm(p["cacc"], axis=-1), rows)[0][:, None]
    whole[:, ws["orient"]] = _step_mean(np.stack([np.cos(p["ang"]), np.sin(p["ang"])], -1), rows)[0]
    whole[:, ws["ang_speed"]] = _step_mean(np.abs(p["angvel"]), rows)[0][:, None]
    whole[:, ws["extent"]] = _step_mean(p["ext"], rows)[0]
    whole[:, ws["score"]] = _step_pool(p["score"], rows)
    whole[:, ws["valid"]] = np.isfinite(p["centre"]).all(-1)[rows].mean(axis=1)[:, None]

    if q is not None:
        size = p["size"]
        off = (q["centre"] - p["centre"]) / size
        whole[:, ws["pair_offset"]] = _step_mean(off, rows)[0]
        whole[:, ws["pair_dist"]] = _step_mean(np.linalg.norm(off, axis=-1), rows)[0][:, None]
        # Centre velocities in primary body sizes: q's are in q's sizes, rescale.
        rv = q["cvel"] * (q["size"] / size) - p["cvel"]
        whole[:, ws["pair_rel_vel"]] = _step_mean(rv, rows)[0]
        pd = np.linalg.norm(q["rel"] - p["rel"], axis=-1)              # (F, 17), NaN where either missing
        whole[:, ws["pair_pose_diff"]] = _step_pool(pd, rows)
        vd = np.linalg.norm(q["vel"] - p["vel"], axis=-1)
        whole[:, ws["pair_vel_diff"]] = _step_pool(vd, rows)
        da = q["ang"] - p["ang"]
        whole[:, ws["pair_orient_diff"]] = _step_mean(np.stack([np.cos(da), np.sin(da)], -1), rows)[0]
        both = np.isfinite(p["centre"]).all(-1) & np.isfinite(q["centre"]).all(-1)
        whole[:, ws["pair_valid"]] = both[rows].mean(axis=1)[:, None]
    return whole.astype(np.float32), joints.astype(np.float32)


# ----------------------------------------------------------------------------------------- flow
def border_median_flow(flow_pair: np.ndarray, band: float = 0.1) -> np.ndarray:
    """Median (dx, dy) of the flow in the border band (``band`` of each side): the camera translation.

    AIM uses "the optical flow at the region near the edge of images" as camera motion; the median is
    robust to an athlete crossing the border.
    """
    f = np.asarray(flow_pair)
    if f.ndim != 3 or f.shape[-1] != 2:
        raise ValueError(f"flow_pair must be (H, W, 2), got {f.shape}")
    if not 0 < band < 0.5:
        raise ValueError(f"band must be in (0, 0.5), got {band}")
    h, w = f.shape[:2]
    bh, bw = max(int(round(band * h)), 1), max(int(round(band * w)), 1)
    if 2 * bh >= h or 2 * bw >= w:
        vals = f.reshape(-1, 2)
    else:  # top and bottom bands full width, left and right bands between them
        vals = np.concatenate([f[:bh].reshape(-1, 2), f[h - bh:].reshape(-1, 2),
                               f[bh:h - bh, :bw].reshape(-1, 2), f[bh:h - bh, w - bw:].reshape(-1, 2)])
    vals = vals.astype(np.float64)
    if not np.isfinite(vals).all():
        vals = vals[np.isfinite(vals).all(axis=1)]
    return np.median(vals, axis=0) if len(vals) else np.zeros(2)


def _pixel_bins(flow_pair: np.ndarray, n_bins: int, min_magnitude: float):
    """Per-pixel HOF contribution of one flow pair: bin index, weight, magnitude, finite mask (H, W each).

    A pixel moving at least ``min_magnitude`` adds its magnitude to the bin of its direction (hard
    binning, bin k centred on k * 360 / n_bins degrees, angles measured with image y pointing down); a
    slower pixel adds ``min_magnitude`` to the no-motion bin (index ``n_bins``), so a pixel's weight is
    continuous in its magnitude. Non-finite flow counts as no data (weight 0, not counted).
    """
    dx, dy = flow_pair[..., 0], flow_pair[..., 1]
    fin = np.isfinite(dx) & np.isfinite(dy)
    if not fin.all():
        dx, dy = np.where(fin, dx, 0), np.where(fin, dy, 0)
    mag = np.hypot(dx, dy).astype(np.float64)
    k = np.floor(np.arctan2(dy, dx) * (n_bins / (2 * np.pi)) + 0.5).astype(np.int64) % n_bins
    moving = mag >= min_magnitude
    k[~moving] = n_bins
    wgt = np.where(moving, mag, min_magnitude)
    wgt[~fin] = 0.0
    return k, wgt, mag, fin


def _raw_hof(k, wgt, mag, fin, n_bins: int, area: float) -> np.ndarray:
    """Raw sums of one region: n_bins + 1 bin weights, magnitude sum, finite pixel count, area."""
    hist = np.bincount(k.ravel(), weights=wgt.ravel(), minlength=n_bins + 1)
    return np.concatenate([hist, [mag.sum(), fin.sum(), area]])


def _finish(raw: np.ndarray, n_bins: int) -> np.ndarray:
    """Raw sums (..., n_bins + 4: bins, no-motion, magnitude sum, count, area) -> HOF columns."""
    hist = raw[..., :n_bins + 1]
    tot = hist.sum(axis=-1, keepdims=True)
    hist = np.where(tot > 0, hist / np.where(tot > 0, tot, 1), 0.0)
    cnt = raw[..., n_bins + 2:n_bins + 3]
    mean_mag = np.where(cnt > 0, raw[..., n_bins + 1:n_bins + 2] / np.maximum(cnt, 1), 0.0)
    area = raw[..., n_bins + 3:n_bins + 4]
    coverage = np.where(area > 0, cnt / np.maximum(area, 1e-12), 0.0)
    return np.concatenate([hist, mean_mag, np.clip(coverage, 0, 1)], axis=-1)


def flow_histograms(
    flow: np.ndarray,
    clips: np.ndarray,
    jboxes: np.ndarray,
    n_bins: int = DEFAULT_N_BINS,
    min_magnitude: float = 0.5,
    subtract_camera: bool = True,
    subtract_camera_whole: bool = False,
    camera: np.ndarray | None = None,
    band: float = 0.1,
    progress: bool = False,
    padded: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Histograms of oriented optical flow per time step, whole frame and inside each joint patch.

    Parameters
    ----------
    flow : (F-1, H, W, 2) float pixels, ``flow[p]`` maps decoded frame p to p+1.
    clips : (S, L) positions into the F decoded frames; step s pools flow pairs ``clips[s]`` (the last
        frame reads pair F-2, see :func:`aqa.extract.patches.clip_positions`).
    jboxes : (F, J, 4) joint patch boxes (:func:`aqa.extract.patches.joint_boxes`); pair p uses frame p's.
    n_bins : orientation bins; ``min_magnitude`` (pixels per pair) separates motion from no motion.
    subtract_camera : remove the camera translation (per pair) before the joint histograms, so a patch
        on a still limb of a panned athlete reads "no motion". ``subtract_camera_whole`` does the same for
        the whole-frame histogram (off by default: the whole scene keeps the camera's motion, which also
        goes to ``motion/camera``).
    camera : (F-1, 2) per-pair camera translation (dx, dy) to subtract, e.g. the ``median_dx, median_dy``
        columns of ``aqa.extract.flow.camera_motion`` (``cam[:, 2:4]``), which saves recomputing them;
        default: :func:`border_median_flow` with ``band`` (the same border band and statistic).
    padded : (S, L) bool, clip positions that are padding: they read a zero flow pair (no motion).

    Returns
    -------
    whole (S, n_bins + 3) and joints (S, J, n_bins + 3) float32, columns ``hof_columns(n_bins)``: the
    step's pixel weights are summed over its pairs and then L1-normalised, the mean magnitude is over all
    the step's pixels, and ``coverage`` is the share of the patch area inside the frame. Pixels of a patch
    outside the frame are ignored (not padded). A patch entirely outside gives zeros.
    """
    flow = np.asarray(flow)
    jboxes = np.asarray(jboxes, dtype=np.float64)
    if flow.ndim != 4 or flow.shape[-1] != 2:
        raise ValueError(f"flow must be (F-1, H, W, 2), got {flow.shape}")
    if jboxes.ndim != 3 or jboxes.shape[-1] != 4:
        raise ValueError(f"jboxes must be (F, J, 4), got {jboxes.shape}")
    if jboxes.shape[0] != flow.shape[0] + 1:
        raise ValueError(f"jboxes has {jboxes.shape[0]} frames but flow has {flow.shape[0]} pairs "
                         f"(expected {flow.shape[0] + 1} frames)")
    if not np.isfinite(jboxes).all():
        raise ValueError("jboxes contain NaN/inf; joint_boxes fills missing joints")
    if int(n_bins) < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if not min_magnitude > 0:
        raise ValueError(f"min_magnitude must be > 0, got {min_magnitude}")
    n_bins = int(n_bins)
    n_pairs, h, w = flow.shape[:3]
    rows = clip_positions(clips, n_pairs, n_pairs + 1)
    pad = padded_mask(padded, rows)
    if pad is not None:  # pair index n_pairs: a zero pair on the last frame's boxes
        rows = np.where(pad, n_pairs, rows)
    if camera is not None:
        camera = np.asarray(camera, dtype=np.float64)
        if camera.shape != (n_pairs, 2):
            raise ValueError(f"camera must be (F-1, 2) = ({n_pairs}, 2) translations, got {camera.shape}")
    n_joints = jboxes.shape[1]
    d = n_bins + 4

    # Pixel windows of every joint box (pixels whose centres fall in the box), clipped to the frame;
    # the area counts the full box, so coverage = share of the box inside the frame.
    x0 = np.floor(jboxes[..., 0] + 0.5).astype(np.int64)
    y0 = np.floor(jboxes[..., 1] + 0.5).astype(np.int64)
    x1 = np.maximum(np.floor(jboxes[..., 2] + 0.5).astype(np.int64), x0 + 1)
    y1 = np.maximum(np.floor(jboxes[..., 3] + 0.5).astype(np.int64), y0 + 1)
    area = ((x1 - x0) * (y1 - y0)).astype(np.float64)
    cx0, cy0 = np.clip(x0, 0, w), np.clip(y0, 0, h)
    cx1, cy1 = np.clip(x1, 0, w), np.clip(y1, 0, h)

    used = np.unique(rows)
    pair_whole, pair_joint = {}, {}
    it = used
    if progress:
        from aqa.data.logs import progress_bar
        it = progress_bar(used, desc="flow histograms", unit="pair")
    for p in it:
        fp = flow[p] if p < n_pairs else np.zeros_like(flow[0])
        cam = None
        if subtract_camera or subtract_camera_whole:
            cam = (camera[p] if camera is not None and p < n_pairs
                   else border_median_flow(fp, band))
            cam = cam.astype(fp.dtype if fp.dtype.kind == "f" else np.float64)
        whole_bins = _pixel_bins(fp - cam if subtract_camera_whole else fp, n_bins, min_magnitude)
        pair_whole[p] = _raw_hof(*whole_bins, n_bins, float(h * w))
        out = np.zeros((n_joints, d))
        for j in range(n_joints):
            ys, xs = slice(cy0[p, j], cy1[p, j]), slice(cx0[p, j], cx1[p, j])
            if subtract_camera == subtract_camera_whole:
                bins = tuple(m[ys, xs] for m in whole_bins)
            else:  # only the patch pixels need the other convention
                region = fp[ys, xs]
                bins = _pixel_bins(region - cam if subtract_camera else region, n_bins, min_magnitude)
            out[j] = _raw_hof(*bins, n_bins, area[p, j])
        pair_joint[p] = out

    whole_raw = np.zeros((rows.shape[0], d))
    joint_raw = np.zeros((rows.shape[0], n_joints, d))
    for s, row in enumerate(rows):
        for p in row:
            whole_raw[s] += pair_whole[p]
            joint_raw[s] += pair_joint[p]
    return _finish(whole_raw, n_bins).astype(np.float32), _finish(joint_raw, n_bins).astype(np.float32)


def camera_motion_steps(per_pair_camera: np.ndarray, clips: np.ndarray, with_std: bool = False,
                        padded: np.ndarray | None = None) -> np.ndarray:
    """Aggregate per-pair camera-motion vectors (F-1, Dc) into per-step rows (S, Dc).

    Step s averages the pairs its clip positions read (the last frame reads pair F-2). NaN entries are
    skipped; a step with none gives 0. ``with_std`` appends the per-step std: (S, 2 * Dc).
    Positions where ``padded`` (S, L) is True count as zero motion (zero frames' flow).
    """
    cam = np.asarray(per_pair_camera, dtype=np.float64)
    if cam.ndim != 2:
        raise ValueError(f"per_pair_camera must be (F-1, Dc), got {cam.shape}")
    rows = clip_positions(clips, cam.shape[0], cam.shape[0] + 1)
    pad = padded_mask(padded, rows)
    if pad is not None:
        rows, cam = np.where(pad, cam.shape[0], rows), np.vstack([cam, np.zeros((1, cam.shape[1]))])
    xs = cam[rows]                                                             # (S, L, Dc)
    mean, std = _masked_stats(np.nan_to_num(xs, nan=0.0), np.isfinite(xs), axis=1)
    out = np.concatenate([mean, std], axis=1) if with_std else mean
    return out.astype(np.float32)
