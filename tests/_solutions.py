"""Load a chapter's reference solutions (chapters/solutions/NAME.py) for the exercise tests.

The solutions live beside the notebooks, outside the package, so that students do not import them by
accident; the tests load them by path.
"""
import importlib.util
from pathlib import Path

SOLUTIONS_DIR = Path(__file__).resolve().parent.parent / "chapters" / "solutions"


def load_solutions(name):
    path = SOLUTIONS_DIR / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_solutions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stub(*args, **kwargs):
    """An unanswered exercise, as the notebooks ship it."""
    raise NotImplementedError


def fails_with(feedback, *phrases):
    """The checker rejected the answer and its explanation names each of ``phrases``."""
    assert not feedback, str(feedback)
    text = str(feedback)
    for phrase in phrases:
        assert phrase in text, f"expected {phrase!r} in the feedback:\n{text}"
