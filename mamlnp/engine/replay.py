"""Record once, replay many: a NumPy function's kernel calls, replayed as straight-line code.

The engine is eager: every call of a meta-gradient builds a tape of ``Var`` objects and walks it three times
in Python. For a fixed configuration (the same shapes, dtypes and settings) that bookkeeping decides the
same things every time; only the numbers change. :func:`record` runs a function once with its input arrays
*traced* (an ndarray subclass that notes every NumPy call made on it), and returns a :class:`Program`: the
list of those calls, compiled into one Python function of straight-line code

    v7 = matmul(v3, v5)
    del v3                          # v3's last use: freed here, as early as possible
    v8 = add_reduce(v7, axis=-2)    # np.sum, without its Python wrapper

so a replay calls exactly the NumPy functions the eager run called, with the same arguments, in the same
order: its results are the eager results **bit for bit** (the tests check this on fresh inputs). The eager
engine stays the reference; this module knows nothing of tapes, primitives or MAML.

What makes a function recordable, and what happens otherwise:

* Every array derived from the inputs must come out of a NumPy call on a traced array: a ufunc (every
  operator), a function (``np.sum``, ``np.swapaxes``, …), or a method listed in ``_METHODS`` (``astype``,
  ``reshape``, ``x[i]``, ``x.T``, …). ``np.asarray(traced)`` would return an untraced copy of the reference
  (NumPy gives no hook for it): use ``np.asanyarray``. Such an escape cannot be seen here; callers check a
  program on a second, different input (see ``mamlnp.algorithms.maml``), where a stale value shows.
* Python decisions on values become **guards**: ``if x.min() < 0`` records the comparison and the branch
  taken; a replay whose comparison comes out otherwise raises :class:`GuardFailed` (the caller then runs the
  eager code, which raises its own error message).
* A value leaving NumPy (``float(x)``, ``x.item()``, ``int(x)``) cannot be replayed: :class:`NotReplayable`.

Not thread-safe (one recording at a time per process).
"""
from __future__ import annotations

import operator
import time
import weakref

import numpy as np

from .pytree import tree_flatten, tree_map, tree_unflatten

__all__ = ["record", "Program", "NotReplayable", "GuardFailed"]


class NotReplayable(Exception):
    """The recorded function did something a straight-line replay cannot reproduce (the message says what)."""


class GuardFailed(Exception):
    """A replay took a different Python branch than the recording (a guard's comparison came out otherwise)."""


class _Slot:
    """A reference to value number ``index`` of the program (an input or a recorded call's result)."""

    __slots__ = ("index",)

    def __init__(self, index):
        self.index = index


# NumPy functions that read only shapes and dtypes: answered directly, not recorded
_STATIC = {np.shape, np.ndim, np.size, np.result_type, np.iscomplexobj, np.isrealobj, np.may_share_memory,
           np.shares_memory}
# ndarray methods that make new arrays without passing through a ufunc or np.* function: recorded
_METHODS = ("astype", "reshape", "transpose", "swapaxes", "copy", "sum", "mean", "max", "min", "prod", "any",
            "all", "ravel", "flatten", "squeeze", "clip", "dot", "argmax", "argmin", "repeat", "take", "cumsum",
            "std", "var", "round", "conj")
_active = None  # the _Recording in progress


class _Traced(np.ndarray):
    """An array whose every NumPy call is recorded; ``slot`` is its value number (None: made where the
    recorder could not see, e.g. by iterating — using it raises NotReplayable)."""

    slot = None
    scalar = False

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _record(ufunc if method == "__call__" else getattr(ufunc, method), inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        if func in _STATIC:
            real, _ = _split(args)
            return func(*real, **kwargs)
        return _record(func, args, kwargs)

    def __getitem__(self, key):
        return _record(operator.getitem, (self, key), {})

    def __setitem__(self, key, value):
        _record(operator.setitem, (self, key, value), {})

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    @property
    def base(self):
        """As for the array this stands for: None if it owns its memory, else (the traced stand-in for) the array
        that does — so code deciding by ownership whether it may write in place decides as in the eager run."""
        owner = np.ndarray.base.__get__(self)  # a traced array is a view of the real one (NumPy collapses chains)
        stand_in = _active.owners.get(id(owner)) if _active is not None else None
        if stand_in is self:
            return None
        return owner if stand_in is None else stand_in

    @property
    def T(self):
        return _record(np.transpose, (self,), {})

    def __bool__(self):
        if _active is None:
            raise NotReplayable("a traced array was used after its recording ended")
        value = bool(self.view(np.ndarray))
        _active.guards.append((len(_active.calls), _slot_of(self), value))
        return value

    def _leaves_numpy(self, *args, **kwargs):
        raise NotReplayable("a traced value was turned into a Python value (float(), int(), .item(), .tolist(), "
                            "format(), `in`); a replay could not reproduce what the code did with it — keep results "
                            "as arrays")

    __float__ = __int__ = __index__ = __complex__ = __format__ = __contains__ = _leaves_numpy
    item = tolist = tobytes = _leaves_numpy

    def _unrecorded_write(self, *args, **kwargs):
        raise NotReplayable("an in-place ndarray method (sort, fill, put, resize, …) or a .shape/.flat assignment "
                            "changes a traced array where the recorder cannot see; use the NumPy function (np.sort, "
                            "np.full_like, …) instead")

    sort = fill = put = partition = resize = setfield = itemset = byteswap = setflags = _unrecorded_write
    flat = property(_unrecorded_write)
    shape = property(np.ndarray.shape.__get__, _unrecorded_write)

    def __repr__(self):  # no values: printing them would be a decision a replay cannot see
        return f"<traced array: value {self.slot}, shape {np.ndarray.shape.__get__(self)}, dtype {self.dtype}>"

    __str__ = __repr__


def _method(name):
    unbound = getattr(np.ndarray, name)

    def method(self, *args, **kwargs):
        return _record(unbound, (self,) + args, kwargs)
    method.__name__ = name
    return method


for _name in _METHODS:
    setattr(_Traced, _name, _method(_name))


def _slot_of(x):
    if x.slot is None:
        raise NotReplayable(f"an array of shape {x.shape} was derived from traced values where the recorder could "
                            "not see (e.g. a view made by iteration or a NumPy internal); record through NumPy calls")
    return x.slot


def _split(obj):
    """(the real object, its symbolic form) of a call's arguments (nested lists, tuples, dicts): traced arrays
    become plain arrays and _Slot references."""
    leaves, treedef = tree_flatten(obj)
    real = [x.view(np.ndarray) if isinstance(x, _Traced) else x for x in leaves]
    symbolic = [_Slot(_slot_of(x)) if isinstance(x, _Traced) else x for x in leaves]
    return tree_unflatten(treedef, real), tree_unflatten(treedef, symbolic)


def _holds_arrays(value):
    """Is ``value`` an array (or NumPy scalar), or a non-empty tuple or list of them?"""
    if isinstance(value, (tuple, list)):
        return bool(value) and all(isinstance(v, (np.ndarray, np.generic)) for v in value)
    return isinstance(value, (np.ndarray, np.generic))


def _wrap(value):
    """A new traced value for a call's result or an input (NumPy scalars become 0-d arrays while recording)."""
    if isinstance(value, (np.ndarray, np.generic)):
        real = np.asanyarray(value)
        traced = real.view(_Traced)
        if real.base is None:
            _active.owners[id(real)] = traced
        traced.slot = _active.new_slot()
        traced.scalar = isinstance(value, np.generic)  # a replay will see a NumPy scalar here, not an array
        return traced
    if _holds_arrays(value):
        return type(value)(_wrap(v) for v in value)
    return value


def _slots(result):
    if isinstance(result, _Traced):
        return result.slot
    if isinstance(result, (tuple, list)):
        return tuple(r.slot for r in result)
    return None


# functions that write into their first argument (besides ``out=``): the target must be traced
_WRITES_FIRST = {operator.setitem, np.copyto, np.put, np.put_along_axis, np.putmask, np.place, np.fill_diagonal}


def _write_targets(func, args, kwargs):
    """The arrays a call writes into: its ``out=`` arrays and, for the functions above and ``ufunc.at``, its first."""
    out = kwargs.get("out")
    targets = list(out) if isinstance(out, tuple) else [] if out is None else [out]
    if args and (func in _WRITES_FIRST or getattr(func, "__name__", None) == "at"):
        targets.append(args[0])
    return targets


def _record(func, args, kwargs):
    if _active is None:
        raise NotReplayable("a traced array was used after its recording ended")
    for target in _write_targets(func, args, kwargs):
        if type(target) is np.ndarray:  # written with traced values, but the code holds it untraced: would go stale
            raise NotReplayable(f"{getattr(func, '__name__', func)} writes traced values into an array made where the "
                                "recorder could not see (np.zeros(shape), say); make it from a traced array "
                                "(np.zeros_like(g, shape=…)) so that each replay makes it anew")
    real_args, sym_args = _split(args)
    real_kwargs, sym_kwargs = _split(kwargs)
    result = func(*real_args, **real_kwargs)
    if result is not None and not _holds_arrays(result):
        name = getattr(func, "__name__", repr(func))
        raise NotReplayable(f"{name} returned a Python {type(result).__name__} computed from traced arrays; "
                            "a replay could not reproduce what the code did with it")
    shortcut = _SHORTCUTS.get(func)
    if shortcut is not None and isinstance(args[0], np.ndarray) and not getattr(args[0], "scalar", False):
        func, sym_args, sym_kwargs = shortcut(sym_args, sym_kwargs, result)
    real_out, traced_out = real_kwargs.get("out"), kwargs.get("out")
    for real, traced in zip(*(o if isinstance(o, tuple) else (o,) for o in (real_out, traced_out))):
        if result is real and isinstance(traced, _Traced):  # it returned its out= array: give back that very array,
            _active.calls.append((func, sym_args, sym_kwargs, None))  # as the eager code gets it (same owner, same id)
            return traced
    result = _wrap(result)
    _active.calls.append((func, sym_args, sym_kwargs, _slots(result)))
    return result


def _sum(args, kwargs, result):
    if len(args) == 1 and set(kwargs) <= {"axis", "keepdims"}:  # what np.sum itself calls for an ndarray
        return np.add.reduce, args, kwargs
    return np.sum, args, kwargs


# The same computation without a NumPy Python wrapper (each costs microseconds; a meta-step makes dozens of calls).
# Each is what the wrapper itself does for a plain ndarray, so the results are the same bit for bit.
_SHORTCUTS = {
    np.sum: _sum,
    np.swapaxes: lambda args, kwargs, result: (np.ndarray.swapaxes, args, kwargs),
    np.expand_dims: lambda args, kwargs, result: (np.ndarray.reshape, (args[0], np.shape(result)), {}),
}


class _Recording:
    def __init__(self):
        self.count = 0
        self.calls = []   # (func, symbolic args, symbolic kwargs, output slot(s) or None)
        self.guards = []  # (position in calls, slot, the bool it had)
        self.owners = weakref.WeakValueDictionary()  # id(array owning memory) -> the traced array standing for it

    def new_slot(self):
        self.count += 1
        return self.count - 1


def record(fn, arrays):
    """Run ``fn(*arrays)`` once with every array traced; return the :class:`Program` of its NumPy calls.

    ``fn`` must return a tuple or list of arrays computed from ``arrays``. Raises :class:`NotReplayable` if it
    does something a replay cannot reproduce. The recording run itself is eager NumPy on the real values
    (its results are discarded: replay the program to get them).
    """
    global _active
    if _active is not None:
        raise NotReplayable("record() was called while another recording is in progress (no nesting)")
    recording = _Recording()
    _active = recording
    try:
        for a in arrays:
            if not isinstance(a, np.ndarray):
                raise TypeError(f"record: inputs must be NumPy arrays, got {type(a).__name__}")
        outputs = fn(*[_wrap(a) for a in arrays])
        if not isinstance(outputs, (tuple, list)):
            raise NotReplayable(f"the recorded function must return a tuple or list of arrays, got {type(outputs).__name__}")
        out_slots = []
        for k, out in enumerate(outputs):
            if not isinstance(out, _Traced):
                raise NotReplayable(f"output {k} ({type(out).__name__}) was not computed by traced NumPy calls")
            out_slots.append(_slot_of(out))
    finally:
        _active = None
    return Program(len(arrays), recording.calls, recording.guards, out_slots)


class Program:
    """The recorded NumPy calls of one function, compiled to straight-line Python; call it on new arrays of
    the recorded shapes and dtypes. ``source`` is the generated code (print it to see what the engine does).
    """

    def __init__(self, n_inputs, calls, guards, out_slots):
        self.n_inputs, self.calls, self.out_slots = n_inputs, calls, out_slots
        self.source, namespace = self._compile(calls, guards)
        self._run = namespace["program"]

    def __call__(self, *arrays):
        """The outputs for these inputs (a tuple); :class:`GuardFailed` if a recorded branch goes otherwise."""
        if len(arrays) != self.n_inputs:
            raise ValueError(f"this program takes {self.n_inputs} arrays, got {len(arrays)}")
        return self._run(*arrays)

    def kernel_seconds(self, *arrays, repeats=20):
        """(outputs, seconds of each recorded call) for these inputs, every call timed alone: run ``repeats`` times on
        its arguments (a call that writes in place gets its target restored first), the fastest run kept, minus the
        timer's own cost. The sum is the time spent inside NumPy (its C code and Python wrappers) with warm
        caches: a floor for any eager implementation that makes these calls (a run in place also pays for caches
        and allocations as the previous calls left them)."""
        clock = time.perf_counter
        gaps = []
        for _ in range(200):
            t = clock()
            gaps.append(clock() - t)
        gap = min(gaps)
        values = dict(zip(range(self.n_inputs), arrays))
        seconds = np.zeros(len(self.calls))
        for k, (func, args, kwargs, out) in enumerate(self.calls):
            args, kwargs = _resolve(args, values), _resolve(kwargs, values)
            targets = _write_targets(func, args, kwargs)
            saved = [t.copy() for t in targets]
            best = float("inf")
            for _ in range(repeats):
                for t, c in zip(targets, saved):
                    np.copyto(t, c)
                t0 = clock()
                result = func(*args, **kwargs)
                best = min(best, clock() - t0)
            seconds[k] = max(best - gap, 0.0)
            if isinstance(out, int):
                values[out] = result
            elif out:
                values.update(zip(out, result))
        return tuple(values[s] for s in self.out_slots), seconds

    def __len__(self):
        return len(self.calls)

    def __repr__(self):
        return f"<Program: {self.n_inputs} inputs, {len(self.calls)} NumPy calls, {len(self.out_slots)} outputs>"

    def _compile(self, calls, guards):
        names = {}      # id(object) -> global name, for functions and constants
        namespace = {"GuardFailed": GuardFailed}
        last_use = {}
        for k, (_, args, kwargs, _) in enumerate(calls):
            for s in _slot_refs((args, kwargs)):
                last_use[s] = k
        for position, slot, _ in guards:
            last_use[slot] = max(last_use.get(slot, -1), position)
        keep = set(self.out_slots)
        guards_at = {}
        for position, slot, value in guards:
            guards_at.setdefault(position, []).append((slot, value))

        def name_of(obj, prefix):
            key = id(obj)
            if key not in names:
                if prefix == "f":  # functions by their NumPy names, so the source reads as NumPy code
                    owner = getattr(obj, "__self__", None)
                    name = getattr(obj, "__name__", "f")
                    name = f"{owner.__name__}_{name}" if isinstance(owner, np.ufunc) else name
                    base = name if name.isidentifier() else "f"
                    name = base if base not in namespace else f"{base}_{len(names)}"
                else:
                    name = f"{prefix}{len(names)}"
                names[key] = name
                namespace[name] = obj
            return names[key]

        def render(obj):
            if isinstance(obj, _Slot):
                return f"v{obj.index}"
            if isinstance(obj, tuple):
                return "(" + "".join(render(o) + ", " for o in obj) + ")"
            if isinstance(obj, list):
                return "[" + ", ".join(render(o) for o in obj) + "]"
            if isinstance(obj, dict):
                return "{" + ", ".join(f"{k!r}: {render(v)}" for k, v in obj.items()) + "}"
            if obj is None or isinstance(obj, (bool, int, str)) or (type(obj) is float and np.isfinite(obj)):
                return repr(obj)
            if obj is Ellipsis:
                return "..."
            return name_of(obj, "k")

        params = [f"v{i}" for i in range(self.n_inputs)]
        lines = [f"def program({', '.join(params)}):"]
        dead = [[] for _ in calls]  # slots freed after call k
        for s, k in last_use.items():
            if s not in keep and k < len(calls):  # read by a final guard: freed on return
                dead[k].append(s)
        for s in range(self.n_inputs):  # inputs nobody reads
            if s not in last_use and s not in keep:
                lines.append(f"    del v{s}")
        for k, (func, args, kwargs, out) in enumerate(calls):
            for slot, value in guards_at.get(k, ()):  # a guard sits before the call that followed it
                lines.append(f"    if bool(v{slot}) != {value}: raise GuardFailed('branch {k} went otherwise')")
            call = name_of(func, "f") + "(" + ", ".join(
                [render(a) for a in args] + [f"{key}={render(v)}" for key, v in kwargs.items()]) + ")"
            outs = [out] if isinstance(out, int) else list(out or ())
            target = ", ".join(f"v{s}" for s in outs) + ("," if len(outs) == 1 and isinstance(out, tuple) else "")
            stmt = f"{target} = {call}" if outs else call
            lines.append(f"    {stmt}")
            unused = [s for s in outs if s not in last_use and s not in keep]
            if dead[k] or unused:
                lines.append("    del " + ", ".join(f"v{s}" for s in sorted(set(dead[k] + unused))))
        for slot, value in guards_at.get(len(calls), ()):
            lines.append(f"    if bool(v{slot}) != {value}: raise GuardFailed('the final branch went otherwise')")
        lines.append("    return (" + "".join(f"v{s}, " for s in self.out_slots) + ")")
        source = "\n".join(lines) + "\n"
        exec(compile(source, "<mamlnp replay>", "exec"), namespace)
        return source, namespace


def _resolve(obj, values):
    """``obj`` with every _Slot replaced by its value."""
    return tree_map(lambda x: values[x.index] if isinstance(x, _Slot) else x, obj)


def _slot_refs(obj):
    """The value numbers ``obj`` refers to."""
    return [x.index for x in tree_flatten(obj)[0] if isinstance(x, _Slot)]
