"""Matplotlib figures written as PNG from an Agg canvas: no display and no pyplot global state, so
plots are safe in worker processes and tests. Shared by the heads' explain plots and
``aqa-extract show``."""
from __future__ import annotations

from pathlib import Path

__all__ = ["new_figure", "save_figure"]


def new_figure(w: float = 6.0, h: float = 3.5):
    """A ``w`` x ``h`` inch matplotlib Figure (100 dpi) on its own Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path) -> Path:
    """``fig`` laid out and written as a PNG at ``path`` (its folder made); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path
