"""Named parameter sets of the heads: ``paper`` is each head's published training setup.

A neural head's defaults are the settings measured best on this project's synthetic data on a CPU
(``benchmarks/neural_defaults.py``); where they depart from its paper, the head class lists the
paper's values in its ``paper_params`` class attribute, and :func:`preset_params` returns them.
The recipes (published protocols) and ``python -m aqa.pipelines.demo --paper-defaults`` train
with this preset; ``aqa-heads train HEAD -p key=value`` sets any of them by hand
(:func:`parse_params` reads those pairs).
"""
from __future__ import annotations

import ast

__all__ = ["PRESETS", "parse_params", "preset_params", "presets_for"]

#: spellings of the Python constants a shell user types (``-p staged=false``)
_CONSTANTS = {"true": True, "false": False, "none": None, "null": None}

#: preset name -> what it is
PRESETS = {"paper": "each head's published training setup (iterations, learning rates, regularisers, "
                    "no input standardisation, no stats anchor)"}


def preset_params(head: str, preset: str) -> dict:
    """The parameters of ``head`` under ``preset`` that differ from its defaults ({} if none)."""
    from . import registry
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}")
    return dict(getattr(registry.estimator_class(head), "paper_params", {}))


def presets_for(heads, preset: str | None) -> dict:
    """``{head: parameters}`` of ``preset`` for every head that has some (``None``: {})."""
    if preset is None:
        return {}
    return {h: p for h in heads if (p := preset_params(h, preset))}


def parse_params(items) -> dict:
    """``key=value`` pairs as parameters: a Python literal (``3``, ``1e-3``, ``(4, 2)``,
    ``'cyclic'``), ``true``/``false``/``none`` in any case, else the text itself. Raises
    ``ValueError`` for an item without ``=`` or key."""
    out = {}
    for it in items:
        key, eq, val = it.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"expected key=value, got {it!r}")
        if val.strip().lower() in _CONSTANTS:
            out[key.strip()] = _CONSTANTS[val.strip().lower()]
            continue
        try:
            out[key.strip()] = ast.literal_eval(val)
        except (ValueError, SyntaxError):
            out[key.strip()] = val
    return out
