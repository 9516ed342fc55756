"""Checkers for the chapters' classroom exercises.

Each chapter has a module here (``ch03_1``, ``ch03_2``, ``ch03_3``) whose ``check_*`` functions take a
student's answer and return :class:`Feedback`: truthy when the answer is right, and otherwise a message
that says what is wrong (which rule, which input, by how much). A stub that still raises
``NotImplementedError`` gets a "not attempted yet" feedback instead of an exception, so a notebook
with unanswered exercises still runs top to bottom. Reference solutions live in ``chapters/solutions/``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..engine.ops import Primitive, primitive

__all__ = ["Feedback", "attempt", "as_primitive"]


@dataclass
class Feedback:
    exercise: str
    passed: bool
    message: str
    details: list = field(default_factory=list)

    def __bool__(self):
        return self.passed

    def __str__(self):
        head = f"[{self.exercise}] {'PASSED' if self.passed else 'NOT YET'}: {self.message}"
        return "\n".join([head] + [f"  - {d}" for d in self.details])

    def _repr_pretty_(self, printer, cycle):  # IPython shows the explanation, not a dataclass repr
        printer.text(str(self))


def attempt(exercise, fn, *args, **kwargs):
    """Call the student's ``fn``; return ``(result, None)`` or ``(None, Feedback)`` if it is still a stub.

    Only ``NotImplementedError`` is turned into feedback; any other exception propagates, because it is
    a bug the student must see with its traceback. A failed Feedback is falsy, so test the second item
    with ``if stub is not None:`` — ``if stub:`` would skip exactly the "not attempted" case.
    """
    try:
        return fn(*args, **kwargs), None
    except NotImplementedError:
        return None, Feedback(exercise, False, "not attempted yet (the stub still raises NotImplementedError)")


def as_primitive(student, exercise, checker):
    """The student's answer to a "write a new primitive" exercise as an unregistered Primitive.

    Accepts the class (forward, vjp, jvp, vjp_tangent) or the Primitive built from it. Returns
    ``(primitive, None)`` or ``(None, Feedback)`` when a rule is missing — the student's mistake, reported as
    feedback; anything that is not a class or Primitive is a TypeError naming ``checker``.
    """
    if isinstance(student, Primitive):
        return student, None
    if isinstance(student, type):
        try:
            return primitive(student, register=False), None
        except TypeError as err:
            return None, Feedback(exercise, False, f"cannot build a primitive from class {student.__name__}: {err}")
    raise TypeError(f"{checker} expects your class (with forward, vjp, jvp and vjp_tangent) or the Primitive made "
                    f"from it by mamlnp.ops.primitive(cls, register=False); got {type(student).__name__}")
