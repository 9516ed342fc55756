"""``python -m mamlnp grade``: reference solutions pass, stubs are "not attempted", wrong answers fail with the
checker's message; a loop, a crash, a non-notebook and a notebook of no (or another) chapter each get one line;
the submitted file is never modified."""
import csv
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")

from mamlnp.app import cli, grade  # noqa: E402

CHAPTERS = Path(__file__).resolve().parent.parent / "chapters"
CHAPTER_03_2 = CHAPTERS / "03_2_gradient_based_meta_learning.ipynb"
SOLUTIONS = CHAPTERS / "solutions"

# answers for chapter 3.2's exercises, by the name of the function the stub defines
FORWARD_DIFFERENCES = '''
def numerical_grad(f, theta, eps=1e-4):
    g = np.zeros_like(theta, dtype=float)
    base = f(theta)
    for i in np.ndindex(theta.shape):
        shifted = theta.astype(float)
        shifted[i] += eps
        g[i] = (f(shifted) - base) / eps
    return g
'''


def _submission(tmp_path, name, answers):
    """Chapter 3.2 cut down to its import cell and exercise cells; ``answers``: stub name -> code or 'reference'."""
    nb = nbformat.read(CHAPTER_03_2, as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    cells = [first_code] + [c for c in nb.cells if c.cell_type == "code" and grade.CHECK_CALL.search(c.source)
                            and "def " in c.source]
    for cell in cells[1:]:
        stub = re.search(r"^def (\w+)\(", cell.source, re.MULTILINE).group(1)
        call = next(line for line in cell.source.splitlines() if grade.CHECK_CALL.search(line))
        answer = answers.get(stub)
        if answer == "reference":
            answer = f"import sys\nsys.path.insert(0, {str(CHAPTERS)!r})\nfrom solutions.ch03_2 import {stub}\n"
        if answer:
            cell.source = cell.source.replace(call, answer + "\n" + call)
    nb.cells = cells
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def _statuses(sub):
    return [r.status for r in sub.results]


def test_every_chapter_with_exercises_lists_them_from_its_committed_outputs():
    # the grader reads each chapter's exercises from the labels its committed checker cells print
    for chapter in ("ch03_1", "ch03_2", "ch03_3", "ch04"):
        reference, exercises = grade.chapter_exercises(chapter)
        assert reference is not None and len(exercises) >= 3, (chapter, exercises)
        assert all(checker and checker.startswith("check_") for _, checker in exercises), exercises


def test_reference_solutions_pass_and_the_file_is_not_modified(tmp_path):
    path = _submission(tmp_path, "alice", {"adam_meta_update": "reference", "inner_sgd_step": "reference",
                                           "numerical_grad": "reference"})
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    sub = grade.grade_notebook(path, timeout=60)
    assert sub.problem is None and sub.chapter == "ch03_2"
    assert _statuses(sub) == ["passed"] * 3, grade.format_submission(sub)
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime


def test_stubs_are_not_attempted(tmp_path):
    sub = grade.grade_notebook(_submission(tmp_path, "bob", {}), timeout=60)
    assert _statuses(sub) == ["not attempted"] * 3, grade.format_submission(sub)


def test_a_wrong_answer_fails_with_the_checkers_message_and_a_broken_cell_is_named(tmp_path):
    path = _submission(tmp_path, "carol", {"numerical_grad": FORWARD_DIFFERENCES, "adam_meta_update": "reference",
                                           "inner_sgd_step": "raise ValueError('oops')"})
    sub = grade.grade_notebook(path, timeout=60)
    adam, inner, numerical = sub.results
    assert adam.status == "passed"
    assert inner.status == "no result" and "check_inner_sgd_step raised ValueError: oops" in inner.message
    assert numerical.status == "failed" and "forward difference" in numerical.message, numerical
    report = grade.format_submission(sub)
    assert "1 of 3 passed" in report and "Traceback" not in report


def _tiny(tmp_path, name, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_loop_and_a_crash_get_one_clear_line(tmp_path):
    imports = "from mamlnp.exercises.ch03_2 import check_numerical_grad"
    looping = grade.grade_notebook(_tiny(tmp_path, "loop", imports, "while True:\n    pass"), timeout=3)
    assert looping.problem.startswith("timed out: cell 1 ran longer than 3 s")
    assert {r.status for r in looping.results} == {"no result"}
    crashed = grade.grade_notebook(_tiny(tmp_path, "crash", imports, "import os\nos._exit(3)"), timeout=30)
    assert crashed.problem.startswith("the kernel died while running cell 1")


def test_not_a_notebook_no_chapter_and_another_chapter(tmp_path):
    garbage = tmp_path / "essay.ipynb"
    garbage.write_text("my answers are in the attached pdf")
    assert grade.grade_notebook(garbage).problem.startswith("not a Jupyter notebook")
    plain = _tiny(tmp_path, "plain", "print('hello')")
    assert grade.grade_notebook(plain).problem == "not a notebook of a chapter: it imports no checkers from mamlnp.exercises"
    other = _tiny(tmp_path, "other", "from mamlnp.exercises import ch04")
    assert grade.grade_notebook(other, chapter="ch03_2").problem == "a notebook of ch04, not of ch03_2"


def test_command_line_folder_and_csv(tmp_path, capsys):
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "dave.ipynb").write_text("{not json")
    _tiny(folder, "erin", "print('no exercises here')")
    out = tmp_path / "class.csv"
    status = cli.main(["grade", str(folder), "--csv", str(out)])
    printed = capsys.readouterr().out
    assert status == grade.EXIT_UNGRADABLE and "!! not a Jupyter notebook" in printed and "Traceback" not in printed
    rows = list(csv.DictReader(out.open()))
    assert [r["student"] for r in rows] == ["dave", "erin"] and all(r["problem"] for r in rows)
    assert cli.main(["grade", str(tmp_path / "missing")]) == grade.EXIT_BAD_INPUT
    assert "no such file or folder" in capsys.readouterr().err
    assert cli.main(["grade", str(folder), "--timeout", "0"]) == grade.EXIT_BAD_INPUT
