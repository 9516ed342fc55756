"""mamlnp: meta-learning from scratch on NumPy.

The package, by concern (each subpackage's docstring says what lives there and what it may import):

================  ======================================================================================
``engine``        the autodiff engine: tape, primitives with hand-derived HVP rules, transforms, checks
``models``        models, losses and optimizers as pure functions of parameter pytrees
``tasks``         task distributions (sinusoids, quadratics)
``algorithms``    the meta-learning algorithms, one module per family (also importable as ``mamlnp.meta``)
``app``           command line, training loop, evaluation, plots, checkpoints, benchmarks
``exercises``     the chapters' exercise checkers
================  ======================================================================================

The modules keep the short names they had before the split (``mamlnp.ops``, ``mamlnp.nn``, ``mamlnp.meta``,
``mamlnp.io``, …): each is the same module object as its new home, found through :data:`_ALIASES`.
"""
import importlib
import importlib.abc
import importlib.util
import sys

from .engine import ops, pytree
from .engine.checks import CheckResult, check_grad, check_hvp
from .engine.core import Var
from .engine.transforms import Trace, grad, hessian, hvp, jvp, trace, value_and_grad, vjp
from .models import losses

__version__ = "0.1.0"

__all__ = ["ops", "losses", "pytree", "Var", "Trace", "grad", "value_and_grad", "hvp", "hessian", "jvp", "vjp",
           "trace", "check_grad", "check_hvp", "CheckResult"]

# old short name -> the module's home; ``import mamlnp.io`` gives exactly the module ``mamlnp.app.io``
_ALIASES = {
    "core": "engine.core", "ops": "engine.ops", "transforms": "engine.transforms", "checks": "engine.checks",
    "pytree": "engine.pytree", "nn": "models.nn", "losses": "models.losses", "optim": "models.optim",
    "quadratic": "tasks.quadratic", "meta": "algorithms", "handwritten": "algorithms.handwritten",
    "cli": "app.cli", "train": "app.train", "evaluate": "app.evaluate", "plots": "app.plots", "io": "app.io",
    "bench": "app.bench", "perf": "app.perf", "notebook": "app.notebook",
}


class _AliasLoader(importlib.abc.Loader):
    """Loads ``mamlnp.<old>`` by importing its home and handing back that very module (no second copy)."""

    def __init__(self, home):
        self.home = home

    def create_module(self, spec):
        return importlib.import_module(self.home)

    def exec_module(self, module):
        pass  # the home module has already run


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        prefix, _, short = fullname.partition(".")
        if prefix != __name__ or short not in _ALIASES:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(f"{__name__}.{_ALIASES[short]}"))


if not any(isinstance(finder, _AliasFinder) for finder in sys.meta_path):
    sys.meta_path.insert(0, _AliasFinder())
