"""The figures mamlnp.plots returns show as images in a notebook, with or without pyplot."""
import numpy as np
import pytest
from matplotlib.figure import Figure

from mamlnp.plots import NotebookFigure, plot_mse_vs_steps

formatters = pytest.importorskip("IPython.core.formatters")


def _curves(rng):
    by_k = {5: {s: rng.uniform(0.5, 1.5, size=20) / (1 + s) for s in range(3)}}
    return [("MAML", "maml", by_k)]


def test_returned_figure_is_shown_as_png(rng, tmp_path):
    fig = plot_mse_vs_steps(_curves(rng), tmp_path / "curves.png")
    assert isinstance(fig, NotebookFigure)
    # a fresh formatter: no pyplot inline backend registered, as in a notebook that never imports pyplot
    data, _ = formatters.DisplayFormatter().format(fig)
    assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bare_figure_is_text_only():
    # the failure this guards against (chapter 4's first edition): a plain Figure gives only '<Figure size …>'
    data, _ = formatters.DisplayFormatter().format(Figure())
    assert "image/png" not in data and data["text/plain"].startswith("<Figure size")
