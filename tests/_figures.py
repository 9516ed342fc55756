"""Does every figure in a notebook show as an image? Shared by the notebook tests.

Two ways a figure goes missing, both seen in this project:

* a cell's output is only the text ``<Figure size 840x360 with 2 Axes>`` (a bare matplotlib ``Figure``
  with no PNG representation, or pyplot without an inline backend): the reader sees no picture;
* a cell that makes a figure (calls ``save_figure``, ``plt.subplots``/``plt.figure``/``plt.subplot_mosaic``
  or a ``plot_…`` function) has no ``image/png`` output at all (e.g. the figure was never shown, or the
  notebook was committed without outputs).

A cell whose figure depends on an optional package (PyTorch in chapter 6) says so with the comment
``# optional figure: <why>``; such a cell may lack an image when *run* here (``optional_ok=True``, the fast-mode run
without the package), never in a committed notebook.
"""
import re

# a figure-making call; not a definition (``def plot_x(``) and not a method (``ax.plot_surface(``)
FIGURE_CALL = re.compile(r"(?<!def )(?<![.\w])(save_figure|plt\.(?:subplots|figure|subplot_mosaic)|plot_\w+)\s*\(")
FIGURE_TEXT = re.compile(r"<\w*Figure size [^>]*>")  # also subclasses, e.g. <NotebookFigure size …>
OPTIONAL = re.compile(r"#\s*optional figure:")


def _first_line(source):
    for line in source.splitlines():
        if line.strip():
            return line.strip()[:70]
    return ""


def figure_problems(nb, name, optional_ok=False):
    """One message per cell whose figure does not show as an image, naming the notebook and the cell.

    ``optional_ok``: cells marked ``# optional figure: …`` may have no image (a run without the optional package).
    """
    problems = []
    code_number = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        code_number += 1
        where = f"{name}, cell {index} (code cell {code_number}, starting {_first_line(cell.source)!r})"
        outputs = cell.get("outputs", [])
        has_png = False
        for output in outputs:
            data = output.get("data", {})
            png = "image/png" in data
            has_png = has_png or png
            text = data.get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            match = FIGURE_TEXT.search(text)
            if match and not png:
                problems.append(f"{where}: output is the text {match.group(0)!r} with no image/png beside it — the "
                                f"figure does not render (return a figure with a PNG repr, e.g. from mamlnp.plots, "
                                f"or use pyplot and plt.show())")
        call = FIGURE_CALL.search(cell.source)
        if optional_ok and OPTIONAL.search(cell.source):
            continue
        if call and not has_png and not any("<Figure size" in p and where in p for p in problems):
            problems.append(f"{where}: calls {call.group(1)}(…) but has no image/png output — the figure is not "
                            f"shown (end the cell with the figure or plt.show(), and commit the notebook with outputs)")
    return problems
