"""``python -m mamlnp grade``: run students' copies of a chapter notebook and report every exercise.

For a teacher with a folder of submitted notebooks::

    python -m mamlnp grade submissions/                      # every *.ipynb in the folder (recursively)
    python -m mamlnp grade alice.ipynb bob.ipynb --csv class.csv --timeout 120

For each submission it

1. reads the file once (it is never written: the kernel runs an in-memory copy, in a temporary working
   folder, in fast mode ``MAMLNP_FAST=1`` with figures sent to a temporary folder);
2. finds the chapter from the checkers it imports (``mamlnp.exercises.ch03_2`` …) and the chapter's
   exercises from the committed notebook of that chapter in ``chapters/`` (the labels its checker cells print);
3. executes every cell, errors allowed (a broken cell does not stop the rest), each cell under a time limit;
4. reads each checker's printed feedback — ``[label] PASSED: …`` or ``[label] NOT YET: …`` — and reports
   the exercise as *passed*, *failed* (with the checker's message) or *not attempted*.

A file that is not a notebook, a notebook of no chapter (or of another chapter than ``--chapter``), a cell
that loops past the time limit and a kernel that dies each get one clear line, never a traceback. The exit
status is 0 when every submission could be graded (whatever the students' results), 1 when some could not,
2 for bad arguments (no such file, no notebook found).

Running students' notebooks runs their code with your permissions: grade in an account or container you
are prepared to let them use.
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Submission", "ExerciseResult", "chapter_exercises", "grade_notebook", "main"]

CHAPTERS = Path(__file__).resolve().parents[2] / "chapters"
REPO = CHAPTERS.parent
EXIT_OK, EXIT_UNGRADABLE, EXIT_BAD_INPUT = 0, 1, 2

# what a checker prints (mamlnp.exercises.Feedback.__str__): "[label] PASSED: message" / "[label] NOT YET: message"
FEEDBACK = re.compile(r"^\[(?P<label>[^\]\n]+)\] (?P<verdict>PASSED|NOT YET): (?P<message>.*)$", re.MULTILINE)
CHAPTER_IMPORT = re.compile(r"mamlnp\.exercises(?:\.(?P<dotted>ch\d+(?:_\d+)?)|\s+import\s+[^\n]*?\b(?P<named>ch\d+(?:_\d+)?)\b)")
CHECK_CALL = re.compile(r"\b(check_\w+)\s*\(")


@dataclass
class ExerciseResult:
    label: str
    status: str            # "passed" | "failed" | "not attempted" | "no result"
    message: str = ""


@dataclass
class Submission:
    path: Path
    chapter: str | None = None
    problem: str | None = None          # a submission that could not be graded (fully), in one line
    results: list = field(default_factory=list)

    @property
    def passed(self):
        return sum(r.status == "passed" for r in self.results)


# ------------------------------------------------------------------------------------------ notebooks
def _read(path):
    import nbformat
    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as err:  # JSON errors, schema errors, binary files: all "not a notebook"
        return None, f"not a Jupyter notebook ({type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''})"
    return nb, None


def _chapter_of(nb):
    found = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            for match in CHAPTER_IMPORT.finditer(cell.source):
                name = match.group("dotted") or match.group("named")
                if name not in found:
                    found.append(name)
    return found


def _outputs_text(cell):
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif "data" in output:
            text = output["data"].get("text/plain", "")
            parts.append("".join(text) if isinstance(text, list) else text)
    return "\n".join(parts)


def _cell_error(cell):
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".strip().rstrip(":")
    return None


def chapter_exercises(chapter, chapters_dir=CHAPTERS):
    """``[(label, checker name)]`` of a chapter, in order, read from its committed notebook's checker cells."""
    for path in sorted(Path(chapters_dir).glob("*.ipynb")):
        nb, problem = _read(path)
        if problem or chapter not in _chapter_of(nb):
            continue
        exercises = []
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            labels = [m.group("label") for m in FEEDBACK.finditer(_outputs_text(cell))]
            calls = CHECK_CALL.findall(cell.source)
            for label in labels:
                if label not in [e[0] for e in exercises]:
                    exercises.append((label, calls[-1] if calls else None))
        if exercises:
            return path, exercises
    return None, []


@contextmanager
def _environment(**values):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _execute(nb, timeout):
    """Run ``nb`` in place (an in-memory copy); return None or a one-line problem (timeout, dead kernel)."""
    import nbclient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    with tempfile.TemporaryDirectory(prefix="mamlnp-grade-") as work:
        pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        with _environment(MAMLNP_FAST="1", MAMLNP_FIGURES=str(Path(work) / "figures"), PYTHONPATH=pythonpath,
                          MPLBACKEND="module://matplotlib_inline.backend_inline"):
            client = nbclient.NotebookClient(nb, timeout=timeout, startup_timeout=120, kernel_name="python3",
                                             allow_errors=True, resources={"metadata": {"path": work}})
            running = {"index": None}
            original = client.async_execute_cell

            async def tracked(cell, cell_index, *args, **kwargs):
                running["index"] = cell_index
                return await original(cell, cell_index, *args, **kwargs)

            client.async_execute_cell = tracked
            try:
                client.execute()
            except CellTimeoutError:
                return f"timed out: cell {running['index']} ran longer than {timeout:g} s (an endless loop?)"
            except DeadKernelError:
                return f"the kernel died while running cell {running['index']} (a crash or os._exit in the notebook?)"
            except Exception as err:  # the kernel did not start, etc.: the teacher's setup, said in one line
                return f"could not run the notebook: {type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
    return None


def _first_line(message, limit=240):
    line = message.strip().splitlines()[0] if message.strip() else ""
    return line if len(line) <= limit else line[:limit - 1] + "…"


def grade_notebook(path, *, chapter=None, timeout=120.0, chapters_dir=CHAPTERS):
    """Grade one submission: a :class:`Submission` with one :class:`ExerciseResult` per exercise."""
    submission = Submission(Path(path))
    nb, problem = _read(path)
    if problem:
        submission.problem = problem
        return submission
    found = _chapter_of(nb)
    if not found:
        submission.problem = "not a notebook of a chapter: it imports no checkers from mamlnp.exercises"
        return submission
    if chapter is not None and chapter not in found:
        submission.problem = f"a notebook of {', '.join(found)}, not of {chapter}"
        submission.chapter = found[0]
        return submission
    submission.chapter = chapter or found[0]
    reference, exercises = chapter_exercises(submission.chapter, chapters_dir)
    if not exercises:
        submission.problem = f"no committed notebook in {chapters_dir} has the exercises of {submission.chapter}"
        return submission
    submission.problem = _execute(nb, timeout)

    latest = {}  # label -> (verdict, message); a checker run twice counts with its last result
    for cell in nb.cells:
        if cell.cell_type == "code":
            for m in FEEDBACK.finditer(_outputs_text(cell)):
                latest[m.group("label")] = (m.group("verdict"), m.group("message"))
    for label, checker in exercises:
        if label in latest:
            verdict, message = latest[label]
            if verdict == "PASSED":
                submission.results.append(ExerciseResult(label, "passed"))
            elif message.startswith("not attempted"):  # the untouched stub; a half-done one is "failed"
                submission.results.append(ExerciseResult(label, "not attempted"))
            else:
                submission.results.append(ExerciseResult(label, "failed", _first_line(message)))
            continue
        calling = [c for c in nb.cells if c.cell_type == "code" and checker and re.search(rf"\b{checker}\s*\(", c.source)]
        errors = [e for e in (_cell_error(c) for c in calling) if e]
        if errors:
            why = f"the cell calling {checker} raised {_first_line(errors[-1], 160)}"
        elif not calling:
            why = f"no cell calls {checker}"
        elif submission.problem:
            why = "not reached"
        else:
            why = f"{checker} printed no feedback (is its result the last line of the cell?)"
        submission.results.append(ExerciseResult(label, "no result", why))
    return submission


# ------------------------------------------------------------------------------------------ reporting
def _collect(paths):
    files, missing = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(p for p in sorted(path.rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts)
        elif path.exists():
            files.append(path)
        else:
            missing.append(raw)
    return files, missing


def format_submission(sub):
    head = f"{sub.path}" + (f"  ({sub.chapter})" if sub.chapter else "")
    lines = [head]
    if sub.problem:
        lines.append(f"  !! {sub.problem}")
    if sub.results:
        width = max(len(r.label) for r in sub.results)
        for r in sub.results:
            lines.append(f"  {r.label:<{width}}  {r.status}" + (f" — {r.message}" if r.message else ""))
        lines.append(f"  {sub.passed} of {len(sub.results)} passed")
    return "\n".join(lines)


def write_csv(submissions, out):
    labels = []
    for sub in submissions:
        for r in sub.results:
            if r.label not in labels:
                labels.append(r.label)
    writer = csv.writer(out)
    writer.writerow(["student", "file", "chapter", "problem", "passed", "exercises"]
                    + [x for label in labels for x in (label, f"{label}: message")])
    for sub in submissions:
        by_label = {r.label: r for r in sub.results}
        cells = []
        for label in labels:
            r = by_label.get(label)
            cells += [r.status if r else "", r.message if r else ""]
        writer.writerow([sub.path.stem, str(sub.path), sub.chapter or "", sub.problem or "", sub.passed,
                         len(sub.results)] + cells)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m mamlnp grade", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m mamlnp grade submissions/ --csv class.csv\n"
               "  python -m mamlnp grade alice.ipynb --chapter ch03_2 --timeout 60")
    parser.add_argument("submissions", nargs="+", help="notebooks, or folders searched for *.ipynb")
    parser.add_argument("--chapter", default=None, metavar="chNN",
                        help="the chapter every submission must be (e.g. ch03_2; default: found from its imports)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds allowed per cell (default 120)")
    parser.add_argument("--csv", default=None, metavar="FILE", help="also write one row per student to FILE ('-': stdout)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.timeout > 0:
        print(f"error: --timeout must be a positive number of seconds, got {args.timeout:g}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.chapter is not None and not re.fullmatch(r"ch\d+(?:_\d+)?", args.chapter):
        print(f"error: --chapter must name a checker module like ch03_2, got {args.chapter!r}", file=sys.stderr)
        return EXIT_BAD_INPUT
    files, missing = _collect(args.submissions)
    if missing:
        print(f"error: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not files:
        print(f"error: no .ipynb files in {', '.join(args.submissions)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    submissions = []
    for path in files:
        sub = grade_notebook(path, chapter=args.chapter, timeout=args.timeout)
        submissions.append(sub)
        print(format_submission(sub), flush=True)
    if args.csv:
        if args.csv == "-":
            write_csv(submissions, sys.stdout)
        else:
            with open(args.csv, "w", newline="", encoding="utf-8") as out:
                write_csv(submissions, out)
            print(f"wrote {args.csv} ({len(submissions)} rows)")
    return EXIT_UNGRADABLE if any(s.problem for s in submissions) else EXIT_OK
