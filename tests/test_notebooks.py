"""Every chapter notebook runs top to bottom in fast mode (MAMLNP_FAST=1) without an error, and every
figure shows as an image — in the committed outputs and when run.

A notebook that raises in any cell fails here with the cell's traceback; a figure that does not render
fails with the notebook and cell named (see ``tests/_figures.py``).
"""
import os
from pathlib import Path

import pytest

from _figures import figure_problems

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

CHAPTERS = Path(__file__).resolve().parent.parent / "chapters"
NOTEBOOKS = sorted(CHAPTERS.glob("*.ipynb"))


def test_chapters_exist():
    assert NOTEBOOKS, f"no notebooks found in {CHAPTERS}"


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_fast_mode(path, tmp_path, monkeypatch):
    omniglot = CHAPTERS.parent.parent / "shared" / "data" / "omniglot" / "images_background_small1.zip"
    if path.stem.startswith("05_1") and not omniglot.is_file():
        pytest.skip(f"chapter 5.1 reads the shared Omniglot files, not found at {omniglot.parent} (../shared/data)")
    monkeypatch.setenv("MAMLNP_FAST", "1")
    monkeypatch.setenv("MAMLNP_FIGURES", str(tmp_path / "figures"))
    # what Jupyter uses (and ipykernel's default): a figure that would show in the reader's notebook shows here
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # the kernel imports this checkout's mamlnp, installed or not (e.g. a git worktree beside an installed copy)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(CHAPTERS.parent), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(CHAPTERS)}})
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    problems = figure_problems(nb, f"chapters/{path.name} (run in fast mode)", optional_ok=True)
    assert not problems, "figures that do not show as images:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_figures_are_images(path):
    # the committed outputs are what a reader opening the notebook on GitHub or in Jupyter sees
    problems = figure_problems(nbformat.read(path, as_version=4), f"chapters/{path.name}")
    assert not problems, "figures that do not show as images in the committed notebook:\n" + "\n".join(problems)


def _notebook(*cells):
    nb = nbformat.v4.new_notebook()
    for source, outputs in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.outputs = [nbformat.v4.new_output("execute_result", data=data, execution_count=1) for data in outputs]
        nb.cells.append(cell)
    return nb


def test_figure_check_catches_text_only_and_missing_figures():
    # chapter 4's first edition: a bare Figure whose only output was its text repr
    text_only = _notebook(("fig = plot_mse_vs_steps(curves, path)\nfig", [{"text/plain": "<Figure size 840x360 with 2 Axes>"}]))
    (problem,) = figure_problems(text_only, "chapters/04_code_example.ipynb")
    assert "chapters/04_code_example.ipynb, cell 0" in problem and "'<Figure size 840x360 with 2 Axes>'" in problem
    assert "'fig = plot_mse_vs_steps(curves, path)'" in problem
    # a figure made and saved, never shown (or a notebook committed without outputs)
    unshown = _notebook(("x = 1", []), ("fig, ax = plt.subplots()\nsave_figure(fig, 'ch_x')", []))
    (problem,) = figure_problems(unshown, "chapters/x.ipynb")
    assert "chapters/x.ipynb, cell 1 (code cell 2" in problem and "no image/png" in problem
    # what passes: an image beside the text; helpers that only define or draw into axes need no image
    fine = _notebook(("fig = plot_adaptation(models, path)\nfig", [{"text/plain": "<Figure size 8x6>", "image/png": "iVBOR"}]),
                     ("def plot_final(ax, values):\n    ax.plot(values)", []),
                     ("colors = plt.cm.tab10(range(3))", []))
    assert figure_problems(fine, "chapters/y.ipynb") == []


def test_an_optional_figure_may_be_missing_only_in_a_run_without_its_package():
    marked = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "# optional figure: needs PyTorch\nif have_torch:\n    fig, ax = plt.subplots()")])
    assert figure_problems(marked, "chapters/z.ipynb", optional_ok=True) == []
    (problem,) = figure_problems(marked, "chapters/z.ipynb")  # a committed notebook must still show it
    assert "no image/png output" in problem
