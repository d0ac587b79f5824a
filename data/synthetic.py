"""Synthetic action-quality videos: the built-in demo and test data.

Each video shows one performer (``kind="single"``), two synchronized performers (``kind="sync"``,
like synchronized diving) or one performer judged on the timing between arms and legs
(``kind="coordination"``) doing a dive-like routine in three phases, filmed by a camera that tracks
them with a smooth pan/zoom (so the flow near the image border is non-zero):

* ``approach``: standing on a 3 m platform, arm swing, crouch, extension;
* ``flight``: a ballistic flight with 1 to 3.5 forward somersaults, tucking in the middle (the body
  spins faster while tucked) and opening before the water;
* ``entry``: the body goes into the water along its axis (submerged parts are drawn faintly) with a
  splash whose size grows with a poor entry.

The figures are 2-D articulated bodies with the 17 COCO joints, drawn as shaded thick limbs and a
head over a procedural background (noise-textured wall, stands with a crowd, platform, pool water
with ripples and lane lines). Everything is numpy + cv2 drawing and is deterministic by seed.

Files written by :func:`render_dataset` into ``out_dir``
--------------------------------------------------------
``<video_id>.mp4``  (cv2.VideoWriter, fourcc ``mp4v``; decodable by OpenCV and PyAV),
``<video_id>.pose.json`` (ground-truth pose sidecar), ``labels.csv`` (:mod:`aqa.data.labels`).

Pose sidecar format (``aqa-synth-pose`` version 1)
-------------------------------------------------
A JSON object::

    {"format": "aqa-synth-pose", "version": 1, "video_id": str,
     "fps": float, "width": int, "height": int, "n_frames": int,
     "joint_names": [17 COCO-17 names], "skeleton": [[i, j], ...]   (limb edges, joint indices),
     "phases": {"approach": [s, e], "flight": [s, e], "entry": [s, e]},   (primary performer)
     "camera": {"center": [[X, Y] per frame], "zoom": [px per metre per frame]},
     "persons": [{"role": 0 | 1,                      (0 = primary, 1 = secondary)
                  "phases": {...},                    (this performer's own boundaries)
                  "keypoints": [[[x, y, s] * 17] per frame],
                  "boxes": [[x0, y0, x1, y1] per frame]}]}

Phase ranges are half-open frame index ranges ``[s, e)`` that tile ``[0, n_frames)``. Keypoints
are in image pixels after the camera motion (x right, y down, pixel centres at integers), in COCO-17
order; ``s`` is 1.0 for a joint above the water and 0.3 for a submerged one (drawn faintly). Every
keypoint lies inside the frame. Boxes contain all 17 keypoints plus the limb/head thickness, clipped
to the frame. Persons are listed primary first. The camera maps world metres (X right, Y up, water
surface at Y=0) to pixels by ``x = (X - cx) * zoom + (W-1)/2``, ``y = (H-1)/2 - (Y - cy) * zoom``.

Hidden quality parameters (:class:`QualityParams`, sampled per video)
--------------------------------------------------------------------
``rotations`` (1.0..3.5 somersaults in halves; integer = feet-first entry, half = head-first),
``jitter`` (std of a tremor added to the joint angles, rad), ``asymmetry`` (relative extra flexion
of the left limbs over the right), ``lr_lag`` (frames the left limbs lag the right), ``tuck`` (tuck
tightness, fraction of the maximal 2.4 rad hip/knee flexion), ``tilt`` (over-/under-rotation at
entry, rad), ``bend`` (residual pike/knee bend at entry, rad), and for the secondary of a pair
``sync_lag`` (frames it lags the primary) with its own parameters drawn around the primary's
(spread ``sync_dev``). A latent athlete skill correlates them. They drive the motion only: the
score is computed from the motion as rendered (the keypoints), never from the parameters.

Quality model (per performer p, from its keypoints; every measure is invariant to the camera's
translation + zoom, so the same numbers come out of the sidecar keypoints)
-------------------------------------------------------------------------------------------
Let ``q_j(t)`` be joint j in the body frame (origin mid-hip, y axis towards mid-shoulder, unit =
torso length), ``theta_L/R`` the inner angles at shoulders, elbows, hips and knees, and flexion
``phi = pi - inner angle``. With ``F`` = flight frames and ``t_e`` = first entry frame:

* smoothness ``S = 10 exp(-max(0, J - 0.01) / 0.035)``, ``J = mean_{t, j in elbows, wrists, knees,
  ankles} ||Delta^3 q_j(t)||^2`` (squared jerk, third finite difference per frame; a clean routine
  has J ~ 0.012);
* coordination ``C = 10 exp(-max(0, D - 0.03) / 0.2)``, ``D = mean_{t, 4 joint pairs} |theta_L -
  theta_R|`` (left/right symmetry in rad; a left/right phase lag shows up as an angle difference);
* posture ``P = 0.4 P_tuck + 0.35 P_vert + 0.25 P_straight``:
  ``P_tuck = 10 clip((tight - 0.4) / 0.55, 0, 1)``, ``tight = mean(phi hips, knees) / 2.4`` over the
  middle of the flight (``[t1 + 0.3F, t1 + 0.65F)``);
  ``P_vert = 10 clip(1 - alpha / 0.8, 0, 1)``, ``alpha`` = angle between the mid-ankle ->
  mid-shoulder axis and the vertical line, mean over frames ``t_e - 1 .. t_e + 1``;
  ``P_straight = 10 clip(1 - bend / 1.0, 0, 1)``, ``bend`` = mean flexion of hips and knees there;
* execution ``E_p = 0.3 C + 0.3 S + 0.4 P``.

Single: ``E = E_0``. Coordination (one performer, always 2 somersaults, arms on their own clock
in the approach: ``limb_lag`` frames behind the legs, back in step early in the flight):
``E = 0.2 E_0 + 0.8 G`` with timing ``G = 10 exp(-max(0, |lag - (-1.5)| - 0.25) / 1.5)``, ``lag``
the arms' lag behind the legs measured from the keypoints (:func:`limb_timing`); the lag is drawn
around the ideal -1.5 (arms lead) independently of the skill, and the whole routine starts up to
3 frames early or late (``sync_lag``), so when one limb moves says nothing, and the statistics of
each joint's body-relative position over the video barely predict the score; the timing between
limbs does (sub-scores ``timing`` and ``limb_lag``). Pair: ``E = 0.6 (E_0 + E_1) / 2 + 0.4 Y`` with
synchronization
``Y = 10 exp(-max(0, Q - 0.05) / 0.4)``, ``Q = mean_{t, j} ||r_0j(t) - r_1j(t)||``,
``r_pj = (kp_pj - midhip_p) / torso_p`` (pose and orientation difference, time offsets included).
The recorded coordination, smoothness and posture of a pair are the mean over its two performers.

Judges (like diving): a panel of 7 judges with a per-dataset bias ``b_k ~ N(0, 0.2)`` awards
``a_k = clip(round_to_half(E + b_k + e_k), 0, 10)`` with ``e_k ~ N(0, 0.45)`` per video; the two
highest and two lowest awards are dropped and the middle three summed:
``execution = sum(middle 3)`` (0..30). ``difficulty = 1.6 + 0.8 (rotations - 1)`` (1.6..3.6 in steps
of 0.4) and ``score = round(difficulty * execution, 2)``. labels.csv sub-scores: ``execution``,
``execution_model`` (= 3E, the noise-free execution), ``coordination``, ``smoothness``, ``posture``,
``sync`` (NaN for singles), ``rotations``, ``judge_1`` .. ``judge_7``.

Length: a whole generator, simulation (body motion, camera, the quality model and judges that
set the labels) and drawing, sharing the body model and the :class:`SynthVideo` record; the
natural cut, should it grow, is between :func:`simulate` and :func:`render_frames`.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .labels import LabelRow, write_labels_csv

__all__ = [
    "JOINT_NAMES", "SKELETON", "KINDS", "PHASES", "SIDECAR_FORMAT", "SIDECAR_VERSION",
    "QualityParams", "SynthVideo", "sample_params", "difficulty_for", "simulate",
    "quality_measures", "limb_timing", "execution_model", "judge_panel", "render_frames",
    "render_video",
    "read_pose_sidecar", "render_dataset", "MIN_FRAMES", "MIN_SIZE", "check_size",
]

JOINT_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
               "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
               "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
SKELETON = ((0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11),
            (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16))
KINDS = ("single", "sync", "coordination")
PHASES = ("approach", "flight", "entry")
SIDECAR_FORMAT = "aqa-synth-pose"
SIDECAR_VERSION = 1
ROTATIONS = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5)
N_JUDGES = 7

# Body geometry in metres (scaled per performer).
TORSO, NECK, HEAD_R = 0.52, 0.27, 0.115
UPPER_ARM, FOREARM, THIGH, SHANK = 0.30, 0.27, 0.44, 0.43
SIDE = 0.05          # left/right offset along the facing direction (a slightly oblique view)
ANKLE_H = 0.07       # ankle height above the platform
PLATFORM_H = 3.0
H_MAX = 2.4          # flexion (rad) of a fully tight tuck
SUBMERGED_SCORE = 0.3

# Quality model constants (see the module docstring).
J_BASE, J0 = 0.01, 0.035
D_BASE, D0 = 0.03, 0.2
Q_BASE, Q0 = 0.05, 0.4
TIGHT_LO, TIGHT_SPAN, ALPHA0, BEND0 = 0.4, 0.55, 0.8, 1.0
W_COORD, W_SMOOTH, W_POSTURE = 0.3, 0.3, 0.4
W_PAIR_EXEC, W_PAIR_SYNC = 0.6, 0.4
IDEAL_LIMB_LAG = -1.5   # frames the arms lag the legs in an ideally timed approach (they lead)
LIMB_LAG_SPREAD = 4.0   # coordination kind: limb_lag ~ IDEAL_LIMB_LAG + U(-spread, spread)
G_BASE, G0 = 0.25, 1.5  # timing score: 10 exp(-max(0, |lag - ideal| - G_BASE) / G0)
ARM_RESYNC = 0.12      # fraction of the flight over which lagging/leading arms fall back in step
W_TIMING = 0.8          # coordination kind: E = (1 - W_TIMING) E_0 + W_TIMING G
JUDGE_BIAS_SD, JUDGE_NOISE_SD = 0.2, 0.45

_PHASE_FRAC = (0.30, 0.80)   # approach ends / flight ends, as fractions of n_frames
MIN_FRAMES = 32        #: the fewest frames a video may have (room for its three phases)
MIN_SIZE = (64, 48)    #: the smallest frame (width, height); both must also be even

# Joint index pairs (left, right) and the angle triples (a, vertex, c) used by the quality model.
_ANGLES_L = ((11, 5, 7), (5, 7, 9), (5, 11, 13), (11, 13, 15))   # shoulder, elbow, hip, knee
_ANGLES_R = ((12, 6, 8), (6, 8, 10), (6, 12, 14), (12, 14, 16))
_DISTAL = (7, 8, 9, 10, 13, 14, 15, 16)


def difficulty_for(rotations: float) -> float:
    """Degree of difficulty for a number of somersaults: 1.6 for 1, +0.4 per half somersault."""
    if float(rotations) not in ROTATIONS:
        raise ValueError(f"rotations must be one of {ROTATIONS}, got {rotations!r}")
    return round(1.6 + 0.8 * (float(rotations) - 1.0), 1)


@dataclass(frozen=True)
class QualityParams:
    """Hidden per-performer parameters that drive the rendered motion (see the module docstring)."""

    rotations: float = 2.0
    jitter: float = 0.02
    asymmetry: float = 0.0
    lr_lag: float = 0.0
    tuck: float = 0.9
    tilt: float = 0.0
    bend: float = 0.0
    sync_lag: float = 0.0
    sync_dev: float = 0.0
    limb_lag: float = 0.0

    def __post_init__(self):
        difficulty_for(self.rotations)
        checks = {"jitter": (0.0, 0.5), "asymmetry": (-0.2, 0.2), "lr_lag": (0.0, 5.0),
                  "tuck": (0.2, 1.0), "tilt": (-0.8, 0.8), "bend": (0.0, 1.2),
                  "sync_lag": (-5.0, 5.0), "sync_dev": (0.0, 1.0), "limb_lag": (-8.0, 8.0)}
        for name, (lo, hi) in checks.items():
            v = getattr(self, name)
            if not (lo <= v <= hi):
                raise ValueError(f"QualityParams.{name}={v!r} outside [{lo}, {hi}]")


def sample_params(rng: np.random.Generator, kind: str = "single") -> list[QualityParams]:
    """Draw the hidden parameters of one video: one :class:`QualityParams` per performer.

    A latent skill ~ Beta(2, 2) is shared by all parameters (good athletes are good at everything);
    the secondary of a pair gets parameters scattered around the primary's by ``sync_dev``.
    ``coordination``: one performer, always 2 somersaults, whose arms lag the legs by ``limb_lag``
    frames drawn around :data:`IDEAL_LIMB_LAG` independently of the skill, and whose whole routine
    starts ``sync_lag`` frames late (uniform in [-3, 3]), so only the timing *between* limbs
    tells the quality, not when one limb moves.
    """
    _check_kind(kind)
    skill = rng.beta(2.0, 2.0)

    def q() -> float:
        return float(np.clip(0.6 * skill + 0.4 * rng.random(), 0.0, 1.0))

    def sign() -> float:
        return float(rng.choice((-1.0, 1.0)))

    primary = QualityParams(
        rotations=float(rng.choice(ROTATIONS)),
        jitter=0.01 + 0.12 * (1.0 - q()),
        asymmetry=0.18 * (1.0 - q()) * sign(),
        lr_lag=2.5 * (1.0 - q()),
        tuck=0.45 + 0.55 * q(),
        tilt=0.5 * (1.0 - q()) * sign(),
        bend=0.7 * (1.0 - q()),
    )
    if kind == "single":
        return [primary]
    if kind == "coordination":
        lag = IDEAL_LIMB_LAG + LIMB_LAG_SPREAD * rng.uniform(-1.0, 1.0)
        return [replace(primary, rotations=2.0, limb_lag=float(lag),
                        sync_lag=float(rng.uniform(-3.0, 3.0)))]
    sync_q = q()
    dev = 0.6 * (1.0 - q())
    z = rng.standard_normal(6)
    secondary = replace(
        primary,
        jitter=float(np.clip(primary.jitter + 0.05 * dev * z[0], 0.005, 0.2)),
        asymmetry=float(np.clip(primary.asymmetry + 0.1 * dev * z[1], -0.2, 0.2)),
        lr_lag=float(np.clip(primary.lr_lag + 1.5 * dev * z[2], 0.0, 4.0)),
        tuck=float(np.clip(primary.tuck + 0.25 * dev * z[3], 0.3, 1.0)),
        tilt=float(np.clip(primary.tilt + 0.4 * dev * z[4], -0.7, 0.7)),
        bend=float(np.clip(primary.bend + 0.4 * dev * abs(z[5]), 0.0, 1.0)),
        sync_lag=3.0 * (1.0 - sync_q) * sign(),
        sync_dev=dev,
    )
    return [replace(primary, sync_dev=dev), secondary]


# ----------------------------------------------------------------------------------------------
# Kinematics
# ----------------------------------------------------------------------------------------------

def _smootherstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * x * (x * (6.0 * x - 15.0) + 10.0)


def _keys(u: np.ndarray, knots: Sequence[float], values: Sequence[float]) -> np.ndarray:
    """Piecewise C2 interpolation through key values (smootherstep between knots)."""
    knots = np.asarray(knots, float)
    values = np.asarray(values, float)
    u = np.clip(np.asarray(u, float), knots[0], knots[-1])
    i = np.clip(np.searchsorted(knots, u, side="right") - 1, 0, len(knots) - 2)
    s = _smootherstep((u - knots[i]) / (knots[i + 1] - knots[i]))
    return values[i] + (values[i + 1] - values[i]) * s


def _tuck_amount(u: np.ndarray) -> np.ndarray:
    """0 -> 1 (tucked) -> 0 over the flight, as a function of flight progress u in [0, 1]."""
    return _keys(u, (0.0, 0.05, 0.25, 0.68, 0.9, 1.0), (0.0, 0.0, 1.0, 1.0, 0.0, 0.0))


def _rotation_profile(tuck: float) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative somersault fraction R(u), with spin rate ~ 1/inertia (faster while tucked)."""
    u = np.linspace(0.0, 1.0, 2001)
    rate = 1.0 / (1.0 - 0.55 * tuck * _tuck_amount(u))
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]) * np.diff(u))])
    return u, cum / cum[-1]


class _Body:
    """Segment lengths (metres) of one performer of relative size ``scale``."""

    def __init__(self, scale: float = 1.0):
        self.scale = scale
        self.torso, self.neck, self.head_r = TORSO * scale, NECK * scale, HEAD_R * scale
        self.upper_arm, self.forearm = UPPER_ARM * scale, FOREARM * scale
        self.thigh, self.shank, self.side = THIGH * scale, SHANK * scale, SIDE * scale


def _angles(p: QualityParams, t: np.ndarray, t1: float, t2: float, gain: float):
    """Noise-free joint angles (shoulder a, elbow e, hip h, knee k) at (float) frame times t."""
    ua = np.clip(t / t1, 0.0, 1.0)
    uf = np.clip((t - t1) / (t2 - t1), 0.0, 1.0)
    appr = t < t1
    feet_first = float(p.rotations).is_integer()
    g = _tuck_amount(uf)
    late = uf >= 0.5
    h_tuck = p.tuck * H_MAX * gain
    k_tuck = p.tuck * (H_MAX + 0.05) * gain
    a_open, e_open = (0.1, 0.1) if feet_first else (math.pi - 0.05, 0.0)

    a_app = _keys(ua, (0, 0.35, 0.65, 1.0), (0.05, 1.2, -0.45, math.pi - 0.25))
    e_app = _keys(ua, (0, 0.35, 0.65, 1.0), (0.15, 0.35, 0.2, 0.05))
    h_app = _keys(ua, (0, 0.5, 0.85, 1.0), (0.05, 0.05, 0.7, 0.0)) * gain
    k_app = _keys(ua, (0, 0.5, 0.85, 1.0), (0.05, 0.05, 1.1, 0.0)) * gain

    h_other = np.where(late, p.bend * gain, 0.0)
    k_other = np.where(late, 0.7 * p.bend * gain, 0.0)
    a_other = np.where(late, a_open, math.pi - 0.25)
    e_other = np.where(late, e_open, 0.05)
    h_fl = (1 - g) * h_other + g * h_tuck
    k_fl = (1 - g) * k_other + g * k_tuck
    a_fl = (1 - g) * a_other + g * 0.9 * gain
    e_fl = (1 - g) * e_other + g * 1.2 * gain
    a = np.where(appr, a_app, a_fl)
    e = np.where(appr, e_app, e_fl)
    h = np.where(appr, h_app, h_fl)
    k = np.where(appr, k_app, k_fl)
    return a, e, h, k


def _lean(p: QualityParams, t: np.ndarray, t1: float, t2: float) -> np.ndarray:
    """Body rotation theta (clockwise from upright; a forward somersault increases it)."""
    theta0 = 0.2
    ua = np.clip(t / t1, 0.0, 1.0)
    uf = np.clip((t - t1) / (t2 - t1), 0.0, 1.0)
    grid, cum = _rotation_profile(p.tuck)
    total = 2.0 * math.pi * p.rotations + p.tilt
    th_fl = theta0 + (total - theta0) * np.interp(uf, grid, cum)
    th_app = _keys(ua, (0, 0.5, 0.85, 1.0), (0.0, 0.0, 0.25, theta0))
    return np.where(t < t1, th_app, th_fl)


def _fk(root, theta, sides, nod, body: _Body):
    """Forward kinematics; sides = ((a, e, h, k) left, (a, e, h, k) right) -> (T,17,2), head."""
    up = np.stack([np.sin(theta), np.cos(theta)], -1)
    fw = np.stack([np.cos(theta), -np.sin(theta)], -1)

    def d(alpha):  # unit direction at flexion alpha from "down" towards the front
        return -up * np.cos(alpha)[:, None] + fw * np.sin(alpha)[:, None]

    T = len(theta)
    kp = np.zeros((T, 17, 2))
    mid_sh = root + body.torso * up
    for s, (a, e, h, k), (ish, iel, iwr, ihp, ikn, ian) in (
            (1.0, sides[0], (5, 7, 9, 11, 13, 15)), (-1.0, sides[1], (6, 8, 10, 12, 14, 16))):
        off = s * body.side * fw
        kp[:, ish] = mid_sh + off
        kp[:, iel] = kp[:, ish] + body.upper_arm * d(a)
        kp[:, iwr] = kp[:, iel] + body.forearm * d(a + e)
        kp[:, ihp] = root + off
        kp[:, ikn] = kp[:, ihp] + body.thigh * d(h)
        kp[:, ian] = kp[:, ikn] + body.shank * d(h - k)
    hu = up * np.cos(nod)[:, None] + fw * np.sin(nod)[:, None]
    hf = fw * np.cos(nod)[:, None] - up * np.sin(nod)[:, None]
    head = mid_sh + body.neck * hu
    r = body.head_r
    kp[:, 0] = head + r * (0.85 * hf - 0.15 * hu)
    kp[:, 1] = head + r * (0.65 * hf + 0.3 * hu)
    kp[:, 2] = head + r * (0.4 * hf + 0.3 * hu)
    kp[:, 3] = head + r * (0.05 * hf + 0.05 * hu)
    kp[:, 4] = head + r * (-0.3 * hf + 0.05 * hu)
    return kp, head


def _tremor(rng: np.random.Generator, n_frames: int) -> np.ndarray:
    """Unit-std, lightly smoothed white noise for the 8 joint angles: (n_frames, 2 sides, 4)."""
    from scipy.ndimage import gaussian_filter1d

    z = rng.standard_normal((n_frames + 16, 8))
    z = gaussian_filter1d(z, 0.8, axis=0)[8:-8]
    z /= z.std(axis=0, keepdims=True) + 1e-12
    return z.reshape(n_frames, 2, 4)


def _person_motion(p: QualityParams, n_frames: int, t1: float, t2: float, body: _Body,
                   noise: np.ndarray, x_ankle: float, apex: float, travel: float):
    """World keypoints (T,17,2) and head centres (T,2) of one performer, shifted by sync_lag."""
    t = np.arange(n_frames, dtype=float) - p.sync_lag
    sides = []
    for s, (lag, gain) in enumerate(((p.lr_lag / 2, 1 + p.asymmetry / 2),
                                     (-p.lr_lag / 2, 1 - p.asymmetry / 2))):
        a, e, h, k = _angles(p, t - lag, t1, t2, gain)
        if p.limb_lag:   # the arms on their own clock in the approach, back in step early in the flight
            back = _smootherstep((t - lag - t1) / (ARM_RESYNC * (t2 - t1)))
            a, e, _, _ = _angles(p, t - lag - p.limb_lag * (1.0 - back), t1, t2, gain)
        z = noise[:, s] * p.jitter
        sides.append((a + z[:, 0], e + 0.7 * z[:, 1], h + z[:, 2], k + z[:, 3]))
    theta = _lean(p, t, t1, t2)
    uf = np.clip((t - t1) / (t2 - t1), 0.0, 1.0)
    nod = 0.3 * _tuck_amount(uf)

    # Approach: ankles planted at (x_ankle, platform + ANKLE_H); the root follows from the legs.
    rel, _ = _fk(np.zeros((n_frames, 2)), theta, sides, nod, body)
    foot = 0.5 * (rel[:, 15] + rel[:, 16])
    root_app = np.array([x_ankle, PLATFORM_H + ANKLE_H]) - foot

    # Take-off state (noise-free, mean of sides) and the entry pose, for the parabola's endpoints.
    def clean_rel(tt: float):
        tt = np.array([tt])
        sd = [tuple(_angles(p, tt, t1, t2, 1.0))] * 2
        kp, head = _fk(np.zeros((1, 2)), _lean(p, tt, t1, t2), sd,
                       0.3 * _tuck_amount(np.clip((tt - t1) / (t2 - t1), 0, 1)), body)
        return kp[0], head[0]

    kp_to, _ = clean_rel(t1)
    root0 = np.array([x_ankle, PLATFORM_H + ANKLE_H]) - 0.5 * (kp_to[15] + kp_to[16])
    kp_en, head_en = clean_rel(t2)
    y_end = -min(kp_en[:, 1].min(), head_en[1] - body.head_r)
    drop = root0[1] - y_end
    qa = 2 * apex + 2 * math.sqrt(apex * apex + apex * drop)
    qb = qa + drop
    F = t2 - t1
    u = (t - t1) / F
    root_fl = np.stack([root0[0] + travel * u, root0[1] + qa * u - qb * u * u], -1)
    vel = np.array([travel, qa - 2 * qb]) / F
    tau = np.maximum(t - t2, 0.0)[:, None]
    kdrag = 0.3
    root_en = np.array([root0[0] + travel, y_end]) + vel * (1 - np.exp(-kdrag * tau)) / kdrag
    root = np.where((t < t1)[:, None], root_app, np.where((t < t2)[:, None], root_fl, root_en))
    return _fk(root, theta, sides, nod, body)


# ----------------------------------------------------------------------------------------------
# Quality model
# ----------------------------------------------------------------------------------------------

def _inner_angle(kp: np.ndarray, a: int, b: int, c: int) -> np.ndarray:
    u = kp[..., a, :] - kp[..., b, :]
    v = kp[..., c, :] - kp[..., b, :]
    cross = u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]
    dot = (u * v).sum(-1)
    return np.abs(np.arctan2(cross, dot))


def _torso_frame(kp: np.ndarray):
    """Mid-hip origin, unit axis towards mid-shoulder and torso length, per frame."""
    mid_hip = 0.5 * (kp[:, 11] + kp[:, 12])
    axis = 0.5 * (kp[:, 5] + kp[:, 6]) - mid_hip
    length = np.linalg.norm(axis, axis=-1)
    return mid_hip, axis / length[:, None], length


def quality_measures(kp: np.ndarray, phases: dict) -> dict[str, float]:
    """Raw measures of one performer from keypoints (T,17,2+): J, D, tight, alpha, bend.

    World (y up) and image (y down) coordinates give the same numbers: only the vertical line,
    angles and torso-normalised lengths are used. ``phases``: this performer's phase ranges.
    """
    kp = np.asarray(kp, float)[..., :2]
    if kp.ndim != 3 or kp.shape[1] != 17:
        raise ValueError(f"keypoints must be (T, 17, 2|3), got {kp.shape}")
    T = kp.shape[0]
    mid_hip, ax, length = _torso_frame(kp)
    rel = (kp - mid_hip[:, None]) / length[:, None, None]
    # body frame: y along the torso axis, x perpendicular (sign fixed by the axis orientation)
    perp = np.stack([ax[:, 1], -ax[:, 0]], -1)
    q = np.stack([(rel * perp[:, None]).sum(-1), (rel * ax[:, None]).sum(-1)], -1)
    jerk = np.diff(q[:, _DISTAL], n=3, axis=0)
    J = float((jerk ** 2).sum(-1).mean())
    angL = np.stack([_inner_angle(kp, *tr) for tr in _ANGLES_L], -1)
    angR = np.stack([_inner_angle(kp, *tr) for tr in _ANGLES_R], -1)
    D = float(np.abs(angL - angR).mean())
    flex = np.pi - np.concatenate([angL[:, 2:], angR[:, 2:]], -1)   # hips and knees

    f0, f1 = phases["flight"]
    F = f1 - f0
    mid = slice(max(0, int(round(f0 + 0.3 * F))), min(T, max(int(round(f0 + 0.65 * F)),
                                                            int(round(f0 + 0.3 * F)) + 1)))
    tight = float(flex[mid].mean() / H_MAX)
    te = phases["entry"][0]
    win = slice(max(0, te - 1), min(T, te + 2))
    body_axis = 0.5 * (kp[win, 5] + kp[win, 6]) - 0.5 * (kp[win, 15] + kp[win, 16])
    cosv = np.abs(body_axis[:, 1]) / np.linalg.norm(body_axis, axis=-1)
    alpha = float(np.arccos(np.clip(cosv, 0.0, 1.0)).mean())
    bend = float(flex[win].mean())
    return {"J": J, "D": D, "tight": tight, "alpha": alpha, "bend": bend}


def _sync_distance(kp0: np.ndarray, kp1: np.ndarray) -> float:
    out = []
    for kp in (kp0, kp1):
        mid_hip, _, length = _torso_frame(np.asarray(kp, float)[..., :2])
        out.append((np.asarray(kp, float)[..., :2] - mid_hip[:, None]) / length[:, None, None])
    return float(np.linalg.norm(out[0] - out[1], axis=-1).mean())


def limb_timing(kp: np.ndarray, phases: dict) -> float:
    """Frames the arms lag the legs in one performer's approach, measured from keypoints (T,17,2+).

    The arm signal (inner shoulder angle, mean of both sides) and the leg signal (knee flexion,
    mean of both sides) are each matched in time over the approach, by least squares over shifts
    in steps of 0.05 frames, to the clean approach motion (which does not depend on the
    performer's parameters); the lag is the arms' shift minus the legs'. Only angles are used, so
    world and image coordinates give the same number.
    """
    kp = np.asarray(kp, float)[..., :2]
    T = kp.shape[0]
    t1, t2 = round(_PHASE_FRAC[0] * T), round(_PHASE_FRAC[1] * T)
    arm = 0.5 * (_inner_angle(kp, 11, 5, 7) + _inner_angle(kp, 12, 6, 8))
    leg = math.pi - 0.5 * (_inner_angle(kp, 11, 13, 15) + _inner_angle(kp, 12, 14, 16))
    s1 = phases["flight"][0]
    shifts = np.arange(-12.0, 12.0001, 0.05)[:, None]
    ref = QualityParams()

    def best_shift(signal, frames, part):
        tt = frames[None, :].astype(float) - shifts
        tpl = _angles(ref, tt.ravel(), t1, t2, 1.0)[part].reshape(tt.shape)
        tpl = np.abs(tpl) if part == 0 else tpl
        return float(shifts[np.argmin(((signal[frames][None] - tpl) ** 2).mean(1)), 0])

    legs = best_shift(leg, np.arange(0, max(2, s1 - 1)), 3)
    arms = best_shift(arm, np.arange(0, max(2, s1 - 1)), 0)
    return arms - legs


def execution_model(keypoints: Sequence[np.ndarray], phases: Sequence[dict],
                    timing: bool = False) -> dict[str, float]:
    """Noise-free execution E (0..10) and its sub-scores from each performer's keypoints.

    ``keypoints``: one (T,17,2|3) array per performer (primary first), world or image coordinates;
    ``phases``: one phase dict per performer. ``timing`` (the coordination kind, one performer):
    E is mostly the arm/leg timing score ``timing`` (see the module docstring). Formulas in the
    module docstring.
    """
    if len(keypoints) not in (1, 2) or len(phases) != len(keypoints):
        raise ValueError("execution_model needs 1 or 2 performers with one phase dict each")
    per = []
    for kp, ph in zip(keypoints, phases):
        m = quality_measures(kp, ph)
        S = 10.0 * math.exp(-max(0.0, m["J"] - J_BASE) / J0)
        C = 10.0 * math.exp(-max(0.0, m["D"] - D_BASE) / D0)
        p_tuck = 10.0 * float(np.clip((m["tight"] - TIGHT_LO) / TIGHT_SPAN, 0, 1))
        p_vert = 10.0 * float(np.clip(1 - m["alpha"] / ALPHA0, 0, 1))
        p_str = 10.0 * float(np.clip(1 - m["bend"] / BEND0, 0, 1))
        P = 0.4 * p_tuck + 0.35 * p_vert + 0.25 * p_str
        per.append({"coordination": C, "smoothness": S, "posture": P,
                    "E": W_COORD * C + W_SMOOTH * S + W_POSTURE * P})
    out = {k: float(np.mean([d[k] for d in per]))
           for k in ("coordination", "smoothness", "posture")}
    if timing:
        if len(per) != 1:
            raise ValueError("the timing model is defined for one performer")
        lag = limb_timing(keypoints[0], phases[0])
        G = 10.0 * math.exp(-max(0.0, abs(lag - IDEAL_LIMB_LAG) - G_BASE) / G0)
        out.update(sync=math.nan, limb_lag=lag, timing=G,
                   E=(1.0 - W_TIMING) * per[0]["E"] + W_TIMING * G)
    elif len(per) == 1:
        out["sync"] = math.nan
        out["E"] = per[0]["E"]
    else:
        Y = 10.0 * math.exp(-max(0.0, _sync_distance(keypoints[0], keypoints[1]) - Q_BASE) / Q0)
        out["sync"] = Y
        out["E"] = W_PAIR_EXEC * 0.5 * (per[0]["E"] + per[1]["E"]) + W_PAIR_SYNC * Y
    return out


def judge_panel(E: float, rng: np.random.Generator, bias: np.ndarray) -> tuple[np.ndarray, float]:
    """Seven awards in half points and the execution (sum of the middle three, 0..30)."""
    awards = np.clip(np.round(2.0 * (E + bias + rng.normal(0, JUDGE_NOISE_SD, N_JUDGES))) / 2.0,
                     0.0, 10.0)
    return awards, float(np.sort(awards)[2:5].sum())


# ----------------------------------------------------------------------------------------------
# Simulation: motion + camera + labels (no pixels)
# ----------------------------------------------------------------------------------------------

@dataclass
class SynthVideo:
    """One simulated video: everything but the pixels. ``keypoints`` are image pixels (P,T,17,3)."""

    video_id: str
    kind: str
    fps: float
    width: int
    height: int
    n_frames: int
    params: list[QualityParams]
    difficulty: float
    world: np.ndarray            # (P, T, 17, 2) metres, Y up
    heads: np.ndarray            # (P, T, 2) head centres, metres
    body_scale: list[float]
    keypoints: np.ndarray        # (P, T, 17, 3) pixels + visibility score
    boxes: np.ndarray            # (P, T, 4)
    phases: list[dict]           # per performer, {"approach": [s, e], ...}
    cam_center: np.ndarray       # (T, 2) metres
    cam_zoom: np.ndarray         # (T,) pixels per metre
    quality: dict                # execution_model output
    judges: np.ndarray           # (7,)
    execution: float
    score: float
    scene_seed: int = 0
    splash: list = field(default_factory=list)   # per performer: (entry frame, x, size)

    def label_row(self, split: str = "") -> LabelRow:
        subs = {"execution": self.execution, "execution_model": 3.0 * self.quality["E"],
                "coordination": self.quality["coordination"],
                "smoothness": self.quality["smoothness"], "posture": self.quality["posture"],
                "sync": self.quality["sync"], "rotations": self.params[0].rotations}
        if "timing" in self.quality:   # the coordination kind
            subs.update(timing=self.quality["timing"], limb_lag=self.quality["limb_lag"])
        subs.update({f"judge_{i + 1}": float(a) for i, a in enumerate(self.judges)})
        return LabelRow(video_id=self.video_id, score=self.score, action=f"synth_{self.kind}",
                        difficulty=self.difficulty, split=split, sub_scores=subs)

    def sidecar(self) -> dict:
        """The pose sidecar as a JSON-ready dict (format in the module docstring)."""
        def r(a, nd=2):
            return np.round(np.asarray(a, float), nd).tolist()
        return {
            "format": SIDECAR_FORMAT, "version": SIDECAR_VERSION, "video_id": self.video_id,
            "fps": float(self.fps), "width": int(self.width), "height": int(self.height),
            "n_frames": int(self.n_frames), "joint_names": list(JOINT_NAMES),
            "skeleton": [list(e) for e in SKELETON], "phases": self.phases[0],
            "camera": {"center": r(self.cam_center, 4), "zoom": r(self.cam_zoom, 4)},
            "persons": [{"role": i, "phases": self.phases[i], "keypoints": r(self.keypoints[i]),
                         "boxes": r(self.boxes[i])} for i in range(len(self.params))],
        }


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def check_size(size: tuple[int, int], what: str = "size") -> tuple[int, int]:
    """``size`` as (width, height) ints, or a ValueError naming ``what`` unless both are even and at
    least :data:`MIN_SIZE`."""
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be (width, height), got {size!r}") from None
    if w < MIN_SIZE[0] or h < MIN_SIZE[1] or w % 2 or h % 2:
        raise ValueError(f"{what} must be even and at least {MIN_SIZE[0]}x{MIN_SIZE[1]}, "
                         f"got {w}x{h}")
    return w, h


def _check_geometry(n_frames: int, size: tuple[int, int], fps: float) -> tuple[int, int]:
    if int(n_frames) != n_frames or n_frames < MIN_FRAMES:
        raise ValueError(f"n_frames must be an integer >= {MIN_FRAMES}, got {n_frames!r}")
    w, h = check_size(size)
    if not (fps > 0):
        raise ValueError(f"fps must be positive, got {fps!r}")
    return w, h


def _kind_code(kind: str) -> int:
    return KINDS.index(kind) + 1


def _camera(world: np.ndarray, heads: np.ndarray, pad_m: float, W: int, H: int, n_frames: int,
            rng: np.random.Generator):
    """Tracking camera: smoothed bounding-box centre and a zoom that keeps everyone in frame."""
    from scipy.ndimage import gaussian_filter1d, minimum_filter1d

    pts = world.transpose(1, 0, 2, 3).reshape(n_frames, -1, 2)
    lo = pts.min(1) - pad_m
    hi = pts.max(1) + pad_m
    size = hi - lo
    margin = 0.12
    z_req = np.minimum(W * (1 - 2 * margin) / size[:, 0], H * (1 - 2 * margin) / size[:, 1])
    z_cap = 0.6 * H / 1.85
    z_t = np.minimum(z_req, z_cap)
    sig_z, sig_c = 4.0, 3.0
    z = gaussian_filter1d(minimum_filter1d(z_t, 2 * int(3 * sig_z) + 1, mode="nearest"), sig_z,
                          mode="nearest")
    center = gaussian_filter1d(0.5 * (lo + hi), sig_c, axis=0, mode="nearest")
    t = np.arange(n_frames)
    per = rng.uniform(40, 90, 3)
    ph = rng.uniform(0, 2 * math.pi, 3)
    wob_z = 1.0 - 0.06 * (0.5 + 0.5 * np.sin(2 * math.pi * t / per[0] + ph[0]))
    pan = np.stack([np.sin(2 * math.pi * t / per[1] + ph[1]),
                    np.sin(2 * math.pi * t / per[2] + ph[2])], -1)
    z = z * wob_z
    center = center + 0.03 * pan * np.array([W, H]) / z[:, None]
    for _ in range(30):   # shrink the zoom until every keypoint (+ head radius) is in frame
        xy = _to_image(pts, center, z, W, H)
        padpx = pad_m * z[:, None]
        ok = ((xy[..., 0] >= padpx) & (xy[..., 0] <= W - 1 - padpx)
              & (xy[..., 1] >= padpx) & (xy[..., 1] <= H - 1 - padpx)).all()
        if ok:
            return center, z
        z = z * 0.93
    raise RuntimeError("synthetic camera could not fit the performers in the frame")


def _to_image(pts: np.ndarray, center: np.ndarray, z: np.ndarray, W: int, H: int) -> np.ndarray:
    """World metres (T, N, 2) -> image pixels with the per-frame camera (centre, zoom)."""
    x = (pts[..., 0] - center[:, None, 0]) * z[:, None] + (W - 1) / 2.0
    y = (H - 1) / 2.0 - (pts[..., 1] - center[:, None, 1]) * z[:, None]
    return np.stack([x, y], -1)


def simulate(index: int = 0, kind: str = "single", seed: int = 0, n_frames: int = 72,
             size: tuple[int, int] = (160, 120), fps: float = 25.0,
             params: Sequence[QualityParams] | None = None) -> SynthVideo:
    """Simulate video ``index`` of the dataset ``(kind, seed)``: motion, camera, keypoints, labels.

    ``params`` overrides the sampled hidden parameters (one per performer); the tremor noise, the
    scene and the judges' noise stay those of ``(seed, index)``, so only the parameters change.
    """
    _check_kind(kind)
    W, H = _check_geometry(n_frames, size, fps)
    n_frames = int(n_frames)
    ss = np.random.SeedSequence([int(seed), _kind_code(kind), int(index)])
    rng_par, rng_noise, rng_scene, rng_judge = (np.random.default_rng(s) for s in ss.spawn(4))
    sampled = sample_params(rng_par, kind)
    if params is None:
        params = sampled
    params = list(params)
    if len(params) != len(sampled) or not all(isinstance(p, QualityParams) for p in params):
        raise ValueError(f"kind={kind!r} needs {len(sampled)} QualityParams, got {params!r}")
    if len(params) == 2 and params[1].rotations != params[0].rotations:
        raise ValueError("both performers of a pair must do the same number of rotations")

    t1 = round(_PHASE_FRAC[0] * n_frames)
    t2 = round(_PHASE_FRAC[1] * n_frames)
    apex = rng_scene.uniform(0.8, 1.2)
    travel = rng_scene.uniform(0.8, 1.3)
    scales = [1.0] + ([float(rng_scene.uniform(0.92, 1.05))] if len(params) == 2 else [])
    offsets = [0.0] + ([-float(rng_scene.uniform(1.25, 1.45))] if len(params) == 2 else [])
    world, heads, phases = [], [], []
    for i, p in enumerate(params):
        noise = _tremor(rng_noise, n_frames)
        kp, head = _person_motion(p, n_frames, t1, t2, _Body(scales[i]), noise,
                                  x_ankle=-0.25 + offsets[i], apex=apex, travel=travel)
        world.append(kp)
        heads.append(head)
        s1 = int(np.clip(round(t1 + p.sync_lag), 1, n_frames - 2))
        s2 = int(np.clip(round(t2 + p.sync_lag), s1 + 1, n_frames - 1))
        phases.append({"approach": [0, s1], "flight": [s1, s2], "entry": [s2, n_frames]})
    world = np.stack(world)
    heads = np.stack(heads)

    pad_m = HEAD_R * max(scales) + 0.03
    center, zoom = _camera(world, heads, pad_m, W, H, n_frames, rng_scene)
    xy = _to_image(world.transpose(1, 0, 2, 3).reshape(n_frames, -1, 2), center, zoom, W, H)
    xy = xy.reshape(n_frames, len(params), 17, 2).transpose(1, 0, 2, 3)
    vis = np.where(world[..., 1] >= 0.0, 1.0, SUBMERGED_SCORE)
    keypoints = np.concatenate([xy, vis[..., None]], -1)
    pad = (pad_m * zoom)[None, :, None]
    boxes = np.concatenate([np.maximum(xy.min(2) - pad, 0.0),
                            np.minimum(xy.max(2) + pad, [W - 1.0, H - 1.0])], -1)

    quality = execution_model(list(world), phases, timing=kind == "coordination")
    bias = np.random.default_rng([int(seed), 7919]).normal(0, JUDGE_BIAS_SD, N_JUDGES)
    judges, execution = judge_panel(quality["E"], rng_judge, bias)
    dd = difficulty_for(params[0].rotations)

    splash = []
    for i in range(len(params)):
        m = quality_measures(world[i], phases[i])
        size_ = float(np.clip(0.25 + m["alpha"] + 0.6 * m["bend"], 0.2, 1.5))
        te = phases[i]["entry"][0]
        splash.append((te, float(0.5 * (world[i, te, 15, 0] + world[i, te, 9, 0])), size_))
    return SynthVideo(
        video_id=f"synth_{kind}_s{int(seed)}_{int(index):04d}", kind=kind, fps=float(fps),
        width=W, height=H, n_frames=n_frames, params=params, difficulty=dd, world=world,
        heads=heads, body_scale=scales, keypoints=keypoints, boxes=boxes, phases=phases,
        cam_center=center, cam_zoom=zoom, quality=quality, judges=judges, execution=execution,
        score=round(dd * execution, 2), scene_seed=int(rng_scene.integers(2 ** 31)), splash=splash)


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------

def _value_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth noise in [0, 1] with features about ``cell`` pixels wide (bicubic upsampling)."""
    import cv2

    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    small = rng.random((gh, gw)).astype(np.float32)
    return np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def _background(rng: np.random.Generator, x0: float, y1: float, wc: int, hc: int,
                rho: float) -> np.ndarray:
    """World-anchored procedural scene (BGR uint8): wall, stands with a crowd, platform, water.

    Canvas pixel (i, j) is the world point (x0 + i / rho, y1 - j / rho).
    """
    import cv2

    X = x0 + np.arange(wc, dtype=np.float32)[None, :] / np.float32(rho)
    Y = y1 - np.arange(hc, dtype=np.float32)[:, None] / np.float32(rho)

    def rows(lo: float, hi: float) -> slice:   # canvas rows with lo <= Y < hi
        return slice(int(np.clip(math.floor((y1 - hi) * rho) + 1, 0, hc)),
                     int(np.clip(math.floor((y1 - lo) * rho) + 1, 0, hc)))

    n1 = _value_noise(rng, hc, wc, rho * 1.0)[..., None]
    n2 = _value_noise(rng, hc, wc, max(2.0, rho * 0.15))[..., None]

    # wall with vertical panel joints
    wall = rng.uniform(90, 190, 3).astype(np.float32)
    panel = rng.uniform(1.2, 2.2)
    stripe = (np.mod(X, panel) < 0.08)[..., None]
    img = wall * (0.8 + 0.35 * n1) * np.where(stripe, np.float32(0.65), np.float32(1.0))

    # stands: tiers with a crowd of coloured blobs
    s0, s1, tier = rng.uniform(0.8, 1.4), rng.uniform(5.0, 7.0), rng.uniform(0.4, 0.55)
    seat = rng.uniform(60, 160, 3).astype(np.float32)
    cw, ch = max(1, int(0.14 * rho)), max(1, int(0.22 * rho))
    gh, gw = hc // ch + 1, wc // cw + 1
    palette = rng.uniform(30, 230, (6, 3)).astype(np.float32)
    crowd = (0.55 * palette[rng.integers(0, 6, (gh, gw))] + 0.45 * seat).astype(np.float32)
    crowd_on = (rng.random((gh, gw)) < rng.uniform(0.25, 0.6)).astype(np.uint8)
    r = rows(s0, s1)
    if r.stop > r.start:
        crowd = cv2.resize(crowd, (gw * cw, gh * ch), interpolation=cv2.INTER_NEAREST)[r, :wc]
        crowd_on = cv2.resize(crowd_on, (gw * cw, gh * ch),
                              interpolation=cv2.INTER_NEAREST)[r, :wc, None]
        Ys = Y[r]
        band = np.where(np.mod(np.floor((Ys - s0) / tier), 2) > 0, np.float32(1.0),
                        np.float32(0.75))
        stands = seat * band[..., None] * (0.85 + 0.3 * n2[r])
        sitting = (np.mod(Ys - s0, tier) > 0.45 * tier)[..., None] & (crowd_on > 0)
        img[r] = np.where(sitting, crowd, stands)

    # water: ripples, lane lines, tiles, darker with depth; a bright surface line
    water_c = np.array([rng.uniform(140, 210), rng.uniform(100, 160), rng.uniform(20, 70)],
                       np.float32)
    lam, lam2 = rng.uniform(0.25, 0.45), rng.uniform(1.0, 2.0)
    r = rows(-1e9, 0.0)
    if r.stop > r.start:
        Yw = Y[r]
        ripple = 0.5 + 0.5 * np.sin(2 * np.pi * Yw / lam + 1.3 * np.sin(2 * np.pi * X / lam2))
        lanes = np.abs(np.mod(X, 2.5) - 1.25) < 0.07
        tiles = (np.mod(X, 0.5) < 0.03) | (np.mod(Yw, 0.5) < 0.03)
        shade = 0.8 + 0.25 * ripple + 0.15 * n2[r, :, 0] - 0.25 * np.clip(-Yw / 3.0, 0, 1)
        shade = shade * np.where(lanes, np.float32(0.65), np.float32(1.0))
        shade = shade * np.where(tiles, np.float32(0.88), np.float32(1.0))
        img[r] = water_c * shade[..., None]
        img[rows(-0.06, 0.0)] = 235.0

    # platform (front face at X=0, top at PLATFORM_H) with a white edge strip
    conc = np.float32(rng.uniform(120, 170))
    cols = slice(0, int(np.clip(math.ceil(-x0 * rho), 0, wc)))
    r = rows(0.0, PLATFORM_H)
    if r.stop > r.start and cols.stop > 0:
        joints = np.where(np.mod(X[:, cols], 1.0) < 0.05, np.float32(0.7), np.float32(1.0))
        img[r, cols] = conc * (0.75 + 0.4 * n2[r, cols]) * joints[..., None]
        img[rows(PLATFORM_H - 0.1, PLATFORM_H), cols] = 240.0
    return np.clip(img, 0, 255).astype(np.uint8)


def _shades(color, f: float = 1.0) -> tuple:
    """(outline, base, highlight) BGR int tuples of a colour dimmed by ``f``."""
    c = np.asarray(color, float) * f
    return tuple(tuple(int(v) for v in np.clip(x, 0, 255)) for x in (0.45 * c, c, 1.2 * c + 25))


class _Palette:
    """Per-performer colours: skin (near and far side), swimsuit, hair."""

    def __init__(self, rng: np.random.Generator):
        skin = np.array(rng.choice([[140, 180, 230], [110, 150, 205], [80, 115, 170],
                                    [60, 85, 125]]), float) * rng.uniform(0.9, 1.05)
        suit = rng.uniform(0, 255, 3)
        suit[rng.integers(3)] = rng.uniform(0, 40)  # saturated
        hair = rng.uniform(10, 80, 3)
        self.near, self.far = _shades(skin), _shades(skin, 0.72)
        self.suit = _shades(suit)
        self.hair = _shades(hair)[1]


_LIGHT = (-0.6, -0.8)   # towards the light, image coordinates


def _draw_limb(img, p, q, width: float, shades) -> None:
    """A thick segment with a dark outline and a highlight on the lit side (p, q in pixels)."""
    import cv2

    w = max(1, int(round(width)))
    px, py, qx, qy = float(p[0]), float(p[1]), float(q[0]), float(q[1])
    P = (int(round(px * 16)), int(round(py * 16)))
    Q = (int(round(qx * 16)), int(round(qy * 16)))
    cv2.line(img, P, Q, shades[0], w + 2, cv2.LINE_AA, 4)
    cv2.line(img, P, Q, shades[1], w, cv2.LINE_AA, 4)
    if w >= 3:
        nx, ny = py - qy, qx - px
        norm = math.hypot(nx, ny) + 1e-9
        o = (0.25 * w / norm) * (1.0 if nx * _LIGHT[0] + ny * _LIGHT[1] >= 0 else -1.0)
        ox, oy = nx * o, ny * o
        cv2.line(img, (int(round((px + ox) * 16)), int(round((py + oy) * 16))),
                 (int(round((qx + ox) * 16)), int(round((qy + oy) * 16))),
                 shades[2], max(1, w // 3), cv2.LINE_AA, 4)


def _draw_person(img, kp: np.ndarray, head: np.ndarray, zoom: float, scale: float,
                 pal: _Palette) -> None:
    """Shaded limbs, torso and head of one performer (kp: (17,2) pixels, head: (2,) pixels).

    Far (left) limbs first and dimmer, then torso and head, then the near (right) limbs.
    """
    import cv2

    zs = zoom * scale
    _draw_limb(img, kp[5], kp[7], 0.085 * zs, pal.far)
    _draw_limb(img, kp[7], kp[9], 0.07 * zs, pal.far)
    _draw_limb(img, kp[11], kp[13], 0.13 * zs, pal.far)
    _draw_limb(img, kp[13], kp[15], 0.095 * zs, pal.far)
    _draw_limb(img, 0.5 * (kp[11] + kp[12]), 0.5 * (kp[5] + kp[6]), 0.24 * zs, pal.suit)
    r = HEAD_R * zs
    hc = (int(round(head[0] * 16)), int(round(head[1] * 16)))
    cv2.circle(img, hc, int(round((r + 1) * 16)), pal.near[0], -1, cv2.LINE_AA, 4)
    cv2.circle(img, hc, int(round(r * 16)), pal.near[1], -1, cv2.LINE_AA, 4)
    back = head - (kp[0] - head) * 0.35
    cv2.circle(img, (int(round(back[0] * 16)), int(round(back[1] * 16))),
               int(round(0.75 * r * 16)), pal.hair, -1, cv2.LINE_AA, 4)
    if r >= 3:
        for j in (1, 2):
            cv2.circle(img, (int(round(kp[j, 0] * 16)), int(round(kp[j, 1] * 16))),
                       int(max(0.5, 0.12 * r) * 16), (30, 30, 30), -1, cv2.LINE_AA, 4)
    _draw_limb(img, kp[12], kp[14], 0.13 * zs, pal.near)
    _draw_limb(img, kp[14], kp[16], 0.095 * zs, pal.near)
    _draw_limb(img, kp[6], kp[8], 0.085 * zs, pal.near)
    _draw_limb(img, kp[8], kp[10], 0.07 * zs, pal.near)


def _scene_layout(sim: SynthVideo):
    zmax = float(sim.cam_zoom.max())
    rho = max(8.0, 1.2 * zmax)
    hw = (sim.width - 1) / 2.0 / sim.cam_zoom
    hh = (sim.height - 1) / 2.0 / sim.cam_zoom
    x0 = float((sim.cam_center[:, 0] - hw).min()) - 0.5
    x1 = float((sim.cam_center[:, 0] + hw).max()) + 0.5
    y0 = float((sim.cam_center[:, 1] - hh).min()) - 0.5
    y1 = float((sim.cam_center[:, 1] + hh).max()) + 0.5
    return rho, x0, y1, int(math.ceil((x1 - x0) * rho)) + 1, int(math.ceil((y1 - y0) * rho)) + 1


def render_frames(sim: SynthVideo, figures: bool = True) -> Iterator[np.ndarray]:
    """Yield the video's frames as (H, W, 3) BGR uint8; ``figures=False`` gives the bare scene."""
    import cv2

    rng = np.random.default_rng(sim.scene_seed)
    rho, x0, y1, wc, hc = _scene_layout(sim)
    canvas = _background(rng, x0, y1, wc, hc, rho)
    pals = [_Palette(rng) for _ in sim.params]
    drops = []
    for (te, xe, sz) in sim.splash:
        n = int(5 + 18 * sz)
        drops.append((te, xe, sz, rng.normal(0, 0.05 * sz, n), rng.uniform(0.04, 0.14, n) * sz,
                      rng.normal(0, 0.1, n)))
    W, H = sim.width, sim.height
    rows = np.arange(H, dtype=np.float32)[:, None, None]
    order = list(range(len(sim.params)))[::-1]   # secondary behind the primary
    for t in range(sim.n_frames):
        z = float(sim.cam_zoom[t])
        cx, cy = sim.cam_center[t]
        M = np.array([[z / rho, 0, (x0 - cx) * z + (W - 1) / 2.0],
                      [0, z / rho, (H - 1) / 2.0 - (y1 - cy) * z]], np.float64)
        bg = cv2.warpAffine(canvas, M, (W, H), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT)
        if not figures:
            yield bg
            continue
        frame = bg.copy()
        for i in order:
            head = _to_image(sim.heads[i, t][None, None], sim.cam_center[t:t + 1],
                             sim.cam_zoom[t:t + 1], W, H)[0, 0]
            _draw_person(frame, sim.keypoints[i, t, :, :2], head, z, sim.body_scale[i], pals[i])
        # parts under the water surface are seen faintly through it
        yw = (H - 1) / 2.0 + cy * z
        r0 = int(np.clip(math.floor(yw + 0.5), 0, H))
        if r0 < H:
            alpha = 0.6 * np.clip(rows[r0:] - yw + 0.5, 0.0, 1.0)
            frame[r0:] = (frame[r0:] * (1 - alpha) + bg[r0:] * alpha).astype(np.uint8)
        for te, xe, sz, vx, vy, sx in drops:
            tau = t - te
            if tau < 0:
                continue
            fx = (xe - cx) * z + (W - 1) / 2.0
            cv2.ellipse(frame, (int(round(fx * 16)), int(round(yw * 16))),
                        (int(max(1, (0.25 + 0.5 * sz) * z * min(1.0, 0.3 + 0.1 * tau)) * 16),
                         int(max(1, 0.05 * z) * 16)), 0, 0, 360, (235, 235, 230), -1,
                        cv2.LINE_AA, 4)
            X = xe + sx + vx * tau
            Yd = vy * tau - 0.012 * tau * tau
            for k in np.flatnonzero(Yd > 0):
                px = (X[k] - cx) * z + (W - 1) / 2.0
                py = (H - 1) / 2.0 - (Yd[k] - cy) * z
                cv2.circle(frame, (int(round(px * 16)), int(round(py * 16))),
                           int(max(0.6, 0.035 * z) * 16), (245, 245, 240), -1, cv2.LINE_AA, 4)
        yield frame


def render_video(sim: SynthVideo, out_dir: str | Path) -> tuple[Path, Path]:
    """Encode ``sim`` to ``out_dir/<video_id>.mp4`` (mp4v) and write ``<video_id>.pose.json``."""
    import cv2

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{sim.video_id}.mp4"
    tmp = out_dir / f".{sim.video_id}.tmp.mp4"
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(sim.fps),
                             (sim.width, sim.height))
    if not writer.isOpened():
        raise OSError(f"{tmp}: OpenCV cannot open an mp4v writer there (folder not writable?)")
    try:
        for frame in render_frames(sim):
            writer.write(frame)
    finally:
        writer.release()
    os.replace(tmp, path)
    side = out_dir / f"{sim.video_id}.pose.json"
    tmp_side = out_dir / f".{sim.video_id}.pose.json.tmp"
    tmp_side.write_text(json.dumps(sim.sidecar(), separators=(",", ":")))
    os.replace(tmp_side, side)
    return path, side


def read_pose_sidecar(path: str | Path) -> dict:
    """Read and check a pose sidecar; returns the dict with ``keypoints`` (P,T,17,3), ``boxes``
    (P,T,4) and ``roles`` (P,) as numpy arrays added."""
    path = Path(path)
    with open(path) as f:
        d = json.load(f)
    if d.get("format") != SIDECAR_FORMAT or d.get("version") != SIDECAR_VERSION:
        raise ValueError(f"{path}: not an {SIDECAR_FORMAT} v{SIDECAR_VERSION} sidecar "
                         f"(format={d.get('format')!r}, version={d.get('version')!r})")
    kp = np.asarray([p["keypoints"] for p in d["persons"]], np.float32)
    boxes = np.asarray([p["boxes"] for p in d["persons"]], np.float32)
    T = d["n_frames"]
    if kp.shape[1:] != (T, 17, 3) or boxes.shape[1:] != (T, 4):
        raise ValueError(f"{path}: keypoints {kp.shape} / boxes {boxes.shape} do not match "
                         f"n_frames={T}")
    d["keypoints"], d["boxes"] = kp, boxes
    d["roles"] = np.asarray([p["role"] for p in d["persons"]], np.int64)
    return d


# ----------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------

def _render_one(args) -> LabelRow:
    out_dir, index, kind, seed, n_frames, size, fps, split = args
    import cv2

    cv2.setNumThreads(1)
    sim = simulate(index, kind, seed, n_frames, size, fps)
    render_video(sim, out_dir)
    return sim.label_row(split)


def render_dataset(out_dir: str | Path, n: int = 48, kind: str = "single", seed: int = 0,
                   n_frames: int = 72, size: tuple[int, int] = (160, 120), fps: float = 25.0,
                   jobs: int = 1, progress: bool = True) -> list[LabelRow]:
    """Render ``n`` synthetic videos with pose sidecars and ``labels.csv`` into ``out_dir``.

    Deterministic by ``seed`` (any ``jobs``). Split: a seeded shuffle puts 25% in ``test``, the
    rest in ``train``. Returns the label rows in video order.
    """
    from aqa.data.logs import progress_bar

    _check_kind(kind)
    _check_geometry(n_frames, size, fps)
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if int(jobs) != jobs or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    perm = np.random.default_rng([int(seed), _kind_code(kind), 104729]).permutation(int(n))
    split = np.full(int(n), "train", dtype=object)
    split[perm[: int(round(0.25 * n))]] = "test"
    tasks = [(str(out_dir), i, kind, int(seed), int(n_frames), tuple(int(v) for v in size),
              float(fps), str(split[i])) for i in range(int(n))]
    bar = dict(total=len(tasks), desc=f"synth {kind}", unit="video", disable=not progress)
    # the bars are closed before an error propagates, so that its message is not drawn over
    if jobs == 1:
        with progress_bar(tasks, **bar) as it:
            rows = [_render_one(a) for a in it]
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(int(jobs), len(tasks))) as pool, \
                progress_bar(pool.imap(_render_one, tasks), **bar) as it:
            rows = list(it)
    write_labels_csv(rows, out_dir / "labels.csv")
    return rows
