"""Whether features of two caches are comparable: a head trained on one and applied to the other.

A head learns on features made with one extraction config (:meth:`aqa.extract.runner.Extractor.
cache_config`: sampling, pose, TV-L1 parameters, frame size, patch scale, checkpoints...). Applied
to features extracted otherwise (another frame size, other I3D weights, random weights), it still
returns numbers, but they mean nothing. :func:`config_differences` lists what differs, for
``aqa-heads evaluate/predict/explain`` to refuse (or, when the user insists, to warn).

What does not count: which families were extracted besides (``backbones``, ``streams``: a missing
family fails to load anyway), which TV-L1 implementation ran (``tvl1-cpu`` and ``tvl1-torch``,
compiled or not, compute the same flow to OpenCV's accuracy, so shards extracted on CPU and GPU
machines mix), and where a ``file`` pose backend read its poses (``pose_options.path``).
Checkpoints count by role: two files that serve the same role (``backbone:i3d/rgb``) must be the
same file (sha256).
"""
from __future__ import annotations

import json

__all__ = ["config_differences", "provenance_differences"]

#: config keys that do not change the values of a feature family (see the module docstring)
IGNORED_KEYS = ("backbones", "streams", "flow", "flow_compile", "checkpoints", "untrained")


def _configs(config) -> list[dict]:
    """The configs a cache's root config stands for (several in a merged file)."""
    if isinstance(config, dict) and set(config) == {"merged_configs"}:
        return [c for c in config["merged_configs"] if isinstance(c, dict)]
    return [config] if isinstance(config, dict) else []


def _settings(cfg: dict) -> dict:
    out = {k: v for k, v in cfg.items() if k not in IGNORED_KEYS}
    if isinstance(out.get("pose_options"), dict):
        out["pose_options"] = {k: v for k, v in out["pose_options"].items() if k != "path"}
    return out


def _by_role(checkpoints: dict) -> dict[str, set]:
    """role (``backbone:i3d/rgb``, ``pose:keypoint-rcnn``) -> {(registry name, sha256)}."""
    from .checkpoints import REGISTRY

    roles: dict[str, set] = {}
    for name, sha in (checkpoints or {}).items():
        for role in (REGISTRY[name].used_by if name in REGISTRY else (name,)):
            roles.setdefault(role, set()).add((name, sha))
    return roles


def _show(value) -> str:
    if value is None:
        return "not set"
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def config_differences(trained, other) -> list[str]:
    """One line per setting in which the extraction config ``other`` (a cache's root
    ``config``, see :meth:`aqa.data.cache.CacheReader.provenance`) differs from ``trained`` (the
    config of the features a head was trained on) in a way that changes feature values; empty when
    their features are comparable. An empty or missing config on either side says nothing: []."""
    lines: list[str] = []
    for t in _configs(trained):
        for o in _configs(other):
            if not t or not o:
                continue
            st, so = _settings(t), _settings(o)
            for k in sorted(set(st) | set(so)):
                if st.get(k) != so.get(k):
                    lines.append(f"{k}: {_show(st.get(k))} (training) vs {_show(so.get(k))}")
            rt, ro = _by_role(t.get("checkpoints", {})), _by_role(o.get("checkpoints", {}))
            for role in sorted(set(rt) & set(ro)):
                if rt[role] != ro[role]:
                    def files(s):
                        return ", ".join(f"{n} ({sha[:12]})" for n, sha in sorted(s))
                    lines.append(f"checkpoint for {role}: {files(rt[role])} (training) vs "
                                 f"{files(ro[role])}")
            if bool(t.get("untrained")) != bool(o.get("untrained")):
                lines.append(f"untrained weights: {bool(t.get('untrained'))} (training) vs "
                             f"{bool(o.get('untrained'))}")
    return list(dict.fromkeys(lines))


def provenance_differences(trained: dict, other: dict) -> list[str]:
    """:func:`config_differences` of two caches' provenance dicts
    (:meth:`aqa.data.cache.CacheReader.provenance`), their root ``untrained`` marks included."""
    trained, other = trained or {}, other or {}
    lines = config_differences(trained.get("config"), other.get("config"))
    if "untrained" in trained and bool(trained["untrained"]) != bool(other.get("untrained")):
        lines.append(f"untrained weights: {bool(trained['untrained'])} (training) vs "
                     f"{bool(other.get('untrained'))}")
    return list(dict.fromkeys(lines))
