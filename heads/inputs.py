"""Turn a feature cache (+ video ids) into each head's X: one shared path for the CLI, the
benchmarks and the pipelines.

A builder is ``build(reader, ids, feature) -> np.ndarray`` (``reader``: an open
:class:`aqa.data.cache.CacheReader`; ``feature``: a feature family such as ``"i3d_rgb"``, or None for
:func:`default_feature`). The builders, by the name :data:`aqa.heads.registry.INPUTS` gives them:

``jrg``        (n, S, 1+J, D): node 0 = whole-scene feature of each step, nodes 1..J = joint features;
               the smaller of whole/joint dims is zero-padded to D (exactly equivalent for the first
               linear layer, see :class:`aqa.heads.jrg.JRGRegressor`).
``steps``      (n, S, D): each step's feature vector (MLP, Siamese, CoRe, fragment network; C3D-/I3D-SVR
               average them): a backbone family's whole-scene clip feature, as the papers read it;
               ``kin_pose``'s whole-scene part followed by its joint features, where the pose is
               (see :data:`JOINTS_IN_STEPS`).
``clip_mean``  (n, D): the ``steps`` features averaged over steps.
``pose_traj``  (n, L, 17, 2): the primary athlete's joint trajectories, x/width and y/height,
               missing frames linearly interpolated, resampled to L=64 frames (Pose+DCT-SVR).

A new one is a function anywhere, named as ``"module:function"`` in the head registry (or given a
short name in :data:`aqa.heads.registry.INPUTS`); :func:`aqa.heads.dataset.build_inputs` builds a
head's X by its registry entry.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

__all__ = ["default_feature", "families_with_joints", "step_columns", "JOINTS_IN_STEPS", "INPUT_LAYOUTS",
           "input_layout", "jrg_inputs", "step_inputs", "clip_mean_inputs", "pose_trajectories",
           "FEATURE_PREFERENCE"]

#: families tried in order when no --feature is given (learned backbones first, weight-free last).
FEATURE_PREFERENCE = ("i3d_rgb", "i3dr50_rgb", "i3d_flow", "c3d_rgb", "kin_pose", "hof_flow")

#: families whose step features for the ``steps`` heads include the joints part: ``kin_pose``
#: (docs/architecture.md, "Feature families"). A backbone's whole-scene part is the clip descriptor
#: the papers regress from; ``kin_pose``'s whole-scene part holds only the body centre's motion, the
#: torso orientation and extent, and the body's pose and limb motion are in its joints. Read
#: whole-scene only, a head cannot see the pose: on ``aqa-data synth`` seed 1 (``kin_pose``, 80 test
#: videos, 3 seeds; never the table's test rows) MLP, CoRe and the fragment network were 0.35-0.55
#: Spearman behind ``stats-ridge`` on the coordination kind and 0.02-0.04 behind on single at 40
#: training videos; with the joints they are within 0.02 of it on every kind. ``hof_flow``'s joints
#: (flow histograms in 17 small patches) are left out: with them as well, on ``kin_pose+hof_flow``
#: (synth seed 3, 60 training and 60 test videos, 2 seeds) MLP / CoRe / fragment were +0.002 /
#: +0.007 / +0.016 (single) and -0.001 / -0.015 / +0.000 (sync) from ``stats-ridge``, against
#: +0.017 / +0.014 / +0.018 and +0.038 / -0.009 / +0.063 with ``kin_pose``'s joints only
#: (docs/heads_vs_baseline.md, "Step features").
JOINTS_IN_STEPS = ("kin_pose",)

#: builder -> {version: what its X holds}, newest last. A model file records the version it was
#: trained on (``train_config_["input_layout"]``), so that applying it to X of another layout fails
#: with the reason instead of a bare width mismatch. A builder not listed has kept version 1.
INPUT_LAYOUTS: dict[str, dict[int, str]] = {
    "steps": {1: "each family's whole-scene feature only",
              2: "the whole-scene feature, then kin_pose's joint features: JOINTS_IN_STEPS"},
}
INPUT_LAYOUTS["clip_mean"] = INPUT_LAYOUTS["steps"]


def input_layout(builder: str) -> int:
    """The current layout version of input builder ``builder`` (a short name or ``"module:function"``)."""
    return max(INPUT_LAYOUTS.get(builder, {1: ""}))


def default_feature(reader, prefer: Iterable[str] = (), part: str = "whole") -> str:
    """The first family present in the cache among ``prefer`` then :data:`FEATURE_PREFERENCE`;
    ``part="joints"``: among the families that have joint features (JRG's input)."""
    fams = reader.families()
    if part == "joints":
        fams = families_with_joints(reader, fams)
    for f in list(prefer) + list(FEATURE_PREFERENCE):
        if f in fams:
            return f
    if fams:
        return fams[0]
    raise ValueError(f"{reader.path}: the cache holds no feature family"
                     f"{' with joint features' if part == 'joints' else ''} present in every video")


def families_with_joints(reader, fams: Iterable[str]) -> list[str]:
    """The families among ``fams`` whose ``joints`` part every video of the cache has."""
    ids = reader.video_ids()
    return [f for f in fams if all(f"features/{f}/joints" in reader.group(v) for v in ids)]


def jrg_inputs(reader, ids, feature=None) -> np.ndarray:
    feature = feature or default_feature(reader, part="joints")
    lacking = [f for f in feature.split("+") if not families_with_joints(reader, [f])]
    if lacking:
        raise ValueError(f"jrg needs joint features, and {lacking[0]!r} has none (extracted with "
                         f"--no-joints?); families with joints: "
                         f"{families_with_joints(reader, reader.families()) or 'none'}")
    whole = reader.load(feature, ids, part="whole")            # (n,S,Dw)
    joints = reader.load(feature, ids, part="joints")          # (n,S,J,Dj)
    if whole.shape[:2] != joints.shape[:2]:
        raise ValueError(f"{feature}: whole {whole.shape} and joints {joints.shape} differ in steps")
    D = max(whole.shape[2], joints.shape[3])
    n, S, J = joints.shape[:3]
    X = np.zeros((n, S, 1 + J, D), dtype=np.float32)
    X[:, :, 0, : whole.shape[2]] = whole
    X[:, :, 1:, : joints.shape[3]] = joints
    return X


def step_columns(reader, ids, feature: str, joint_families=None) -> np.ndarray:
    """(n, S, D) float32: per step, each family of ``feature`` (``"a+b"``) side by side, its
    whole-scene feature followed by its J joint features flattened joint-major when the family is
    among ``joint_families`` (None: every family) and every video has its joints part."""
    parts = []
    for fam in feature.split("+"):
        whole = reader.load(fam, ids, part="whole")
        parts.append(whole)
        if (joint_families is None or fam in joint_families) and families_with_joints(reader, [fam]):
            joints = reader.load(fam, ids, part="joints")
            if joints.shape[:2] != whole.shape[:2]:
                raise ValueError(f"{fam}: whole {whole.shape} and joints {joints.shape} differ in steps")
            parts.append(joints.reshape(joints.shape[0], joints.shape[1], -1))
    steps = {p.shape[1] for p in parts}
    if len(steps) != 1:
        raise ValueError(f"feature families of {feature!r} differ in steps: {sorted(steps)}")
    return np.concatenate(parts, axis=2).astype(np.float32, copy=False)


def step_inputs(reader, ids, feature=None) -> np.ndarray:
    return step_columns(reader, ids, feature or default_feature(reader), JOINTS_IN_STEPS)


def clip_mean_inputs(reader, ids, feature=None) -> np.ndarray:
    return step_inputs(reader, ids, feature).mean(axis=1)


def _interp_nan(a: np.ndarray) -> np.ndarray:
    """Linearly interpolate NaNs along axis 0 of a 1-D series (edges held); all-NaN -> zeros."""
    ok = np.isfinite(a)
    if not ok.any():
        return np.zeros_like(a)
    x = np.arange(len(a))
    return np.interp(x, x[ok], a[ok])


def pose_trajectories(reader, ids, feature=None, length: int = 64) -> np.ndarray:
    """(n, length, 17, 2) normalised joint trajectories of the primary person (``feature`` unused)."""
    out = np.zeros((len(ids), length, 17, 2), dtype=np.float32)
    for k, vid in enumerate(ids):
        pose = reader.pose(vid)
        kp = np.asarray(pose["keypoints"], dtype=np.float64)          # (F,P,17,3)
        roles = np.asarray(pose.get("roles", np.zeros(kp.shape[1])))
        if kp.ndim != 4 or kp.shape[2] != 17 or kp.shape[1] == 0:
            raise ValueError(f"video {vid!r}: pose/keypoints has shape {kp.shape}, expected (F,P,17,3)")
        p = int(np.flatnonzero(roles == 0)[0]) if (roles == 0).any() else 0
        attrs = reader.video_attrs(vid)
        scale = np.array([float(attrs.get("width", 1.0)) or 1.0, float(attrs.get("height", 1.0)) or 1.0])
        xy = kp[:, p, :, :2] / scale                                   # (F,17,2)
        F = xy.shape[0]
        src = np.linspace(0, F - 1, length)
        for j in range(17):
            for c in range(2):
                series = _interp_nan(xy[:, j, c])
                out[k, :, j, c] = np.interp(src, np.arange(F), series)
    return out
