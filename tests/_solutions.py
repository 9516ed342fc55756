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
