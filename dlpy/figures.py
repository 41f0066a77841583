"""matplotlib figures, drawn off-screen and written atomically.

Figures are built from `matplotlib.figure.Figure` with an Agg canvas, not through pyplot: no
global figure state, no display needed, and nothing to close (matplotlib's "Figure without
pyplot" recipe, docs: "Embedding in a web application server").
"""

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dlpy.io import atomic_write

DPI = 100


def new_figure(width: float, height: float) -> Figure:
    """A figure of width x height inches on an Agg canvas."""
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | Path) -> None:
    """The figure as a PNG file; a run killed mid-write leaves no half-written picture."""
    atomic_write(path, lambda f: figure.savefig(f, format="png"))
