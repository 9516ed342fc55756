"""The primitives: every operation the engine can differentiate, each in one entry.

An entry is a class turned into a :class:`Primitive` by ``@primitive``. It holds four functions:

``forward(*inputs, **params)``
    the value, with NumPy.
``vjp(i, g, out, inputs, **params)``
    reverse mode: the cotangent of input i given the output cotangent ``g`` (ȳ). It may be returned in
    the broadcast shape of the output; the engine's ``unbroadcast`` sums it down.
``jvp(i, t, out, inputs, **params)``
    forward mode: the contribution of input i's tangent ``t`` (ẋᵢ) to the output tangent ẏ.
``vjp_tangent(i, g, out, out_tangent, inputs, input_tangents, **params)``
    the second-order rule: the derivative of ``vjp(i, g, …)`` when the primal inputs move along their
    tangents (``None`` = zero), holding g fixed. With it the engine forms Pearlmutter's
    R{x̄ᵢ} = vjp_i(R{ȳ}) + vjp_tangent_i. ``None`` as the whole rule means the vjp does not depend on the
    primal inputs (the primitive is linear), so that term vanishes.
``r_vjp(i, g, rg, out, out_tangent, inputs, input_tangents, **params)`` (optional)
    the whole R{x̄ᵢ} = vjp_i(R{ȳ}) + vjp_tangent_i in one expression, for a primitive that can form it more
    cheaply than the two terms apart (affine: Ẋᵀ Ȳ added into Xᵀ R{Ȳ} in place — one parameter-sized array
    fewer). The engine calls it when both R{ȳ} and a tangent are present; it must equal
    the two-term sum to rounding (the tests compare them).
``piecewise_linear = True`` (optional)
    the primitive is not linear, but its vjp_tangent is zero wherever it is defined (relu): the engine then
    neither calls it nor keeps the adjoint and tangents a second-order rule would read.
``reads_out_tangent = False`` (optional)
    the vjp_tangent rule never reads ``out_tangent`` (ẏ), so a forward-tangent sweep need not keep it for the
    second-order reverse sweep (matmul, affine, mul, square).
``second_order_reads = {i: (j, …)}`` (optional)
    vjp_tangent for input i is zero unless input j (one of those listed) is traced: affine's W̄ term needs Ẋ, its
    X̄ term needs Ẇ. A node whose traced inputs can get no second-order term (the first layer, whose X is
    data) keeps no adjoint for the HVP sweeps.
``saves`` (optional)
    which primal values the rules read: input indices and/or ``"out"`` (e.g. ``(0, 1)`` for x·y, ``("out",)``
    for relu, ``()`` for a linear map). A traced step that will only be swept (the MAML inner steps) replaces
    every other value by its shape and dtype (``Tape.release_unread_values``), so the tape keeps only what a
    later sweep needs. Left out, every input and the output are kept.

Notation in the docstrings: y is the output, ȳ = g its cotangent, ẋ a tangent, R{·} the tangent of a
backward quantity. ``PRIMITIVES`` is the registry; the test suite checks every entry in it.
"""
from __future__ import annotations

import inspect

import numpy as np

from .core import Var, apply, value_of

PRIMITIVES: dict[str, "Primitive"] = {}

__all__ = [
    "PRIMITIVES", "Primitive", "primitive",
    "add", "affine", "sub", "mul", "div", "neg", "power", "matmul", "sum", "mean", "reshape", "transpose",
    "swapaxes", "broadcast_to", "getitem", "take_along_axis", "exp", "log", "tanh", "relu", "sigmoid",
    "softplus", "logsumexp", "log_softmax", "square", "concatenate", "stack", "sqrt", "maximum", "minimum",
    "where", "clip",
]


class Primitive:
    """A differentiable operation: forward, vjp, jvp and vjp_tangent kept together.

    The positional parameters of ``forward`` are its array inputs (what gets differentiated); its
    keyword-only parameters are static settings (an axis, a shape, an exponent) with their defaults.
    Calling the primitive accepts settings positionally after the inputs, e.g. ``sum(x, 0)``. A ``forward``
    with ``*xs`` takes any number of inputs, passed as one sequence as in NumPy: ``concatenate([a, b], 0)``;
    its rules receive the index i of the input they are asked about, as for any other primitive.
    """

    def __init__(self, name, forward, vjp, jvp, vjp_tangent, check=None, doc="", r_vjp=None, saves=None,
                 piecewise_linear=False, reads_out_tangent=True, second_order_reads=None):
        self.name, self.forward, self.vjp, self.jvp, self.vjp_tangent = name, forward, vjp, jvp, vjp_tangent
        self.r_vjp, self.saves, self.piecewise_linear = r_vjp, saves, piecewise_linear
        self.reads_out_tangent, self.second_order_reads = reads_out_tangent, second_order_reads
        self.check = check
        self.__doc__ = doc
        sig = inspect.signature(forward).parameters.values()
        self.input_names = tuple(p.name for p in sig if p.kind is p.POSITIONAL_OR_KEYWORD)
        # ``forward(*xs, axis=…)``: any number of array inputs, passed as one sequence (as np.concatenate)
        self.variadic = any(p.kind is p.VAR_POSITIONAL for p in sig)
        self.param_names = tuple(p.name for p in sig if p.kind is p.KEYWORD_ONLY)
        self.defaults = {p.name: p.default for p in sig if p.kind is p.KEYWORD_ONLY and p.default is not p.empty}

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        if name in ("vjp_tangent", "piecewise_linear"):
            # what the sweeps ask, kept as a plain attribute (read per node per sweep): can a second-order term
            # arise here (a vjp_tangent that is not identically zero)? Recomputed if either rule is replaced.
            object.__setattr__(self, "second_order", getattr(self, "vjp_tangent", None) is not None
                               and not getattr(self, "piecewise_linear", False))

    def __repr__(self):
        inputs = ("arrays",) if self.variadic else self.input_names
        return f"<primitive {self.name}({', '.join(inputs + self.param_names)})>"

    def __call__(self, *args, **kwargs):
        if not self.param_names and not kwargs and len(args) == len(self.input_names):
            return apply(self, *args)  # the hot path: no settings to bind
        if self.variadic:
            return self._call_variadic(args, kwargs)
        n = len(self.input_names)
        if len(args) < n or len(args) > n + len(self.param_names):
            raise TypeError(
                f"{self.name} takes {n} array input(s) {self.input_names} and settings {self.param_names}; "
                f"got {len(args)} positional argument(s)"
            )
        return self._bind(args[:n], args[n:], kwargs)

    def _call_variadic(self, args, kwargs):
        if not args or not isinstance(args[0], (list, tuple)):
            got = type(args[0]).__name__ if args else "nothing"
            raise TypeError(f"{self.name} takes a list or tuple of arrays first, as np.{self.name} does "
                            f"({self.name}([a, b], axis=0)); got {got}")
        arrays = tuple(args[0])
        if not arrays:
            raise ValueError(f"{self.name} needs at least one array, got an empty {type(args[0]).__name__}")
        return self._bind(arrays, args[1:], kwargs)

    def _bind(self, inputs, settings, kwargs):
        if len(settings) > len(self.param_names):
            raise TypeError(f"{self.name} takes settings {self.param_names}; got {len(settings)} positional setting(s)")
        params = dict(self.defaults)
        params.update(zip(self.param_names, settings))
        for key, value in kwargs.items():
            if key not in self.param_names:
                raise TypeError(f"{self.name} got an unexpected setting {key!r}; its settings are {self.param_names}")
            params[key] = value
        missing = [p for p in self.param_names if p not in params]
        if missing:
            raise TypeError(f"{self.name} needs the setting(s) {missing}")
        return apply(self, *inputs, **params)

    def check_and_forward(self, inputs, params):
        if self.check is not None:
            try:
                self.check(*inputs, **params)
            except (ValueError, TypeError) as err:
                if str(err).startswith(self.name + ":"):
                    raise
                raise type(err)(f"{self.name}: {err}") from err
        try:
            return self.forward(*inputs, **params)
        except ValueError as err:
            shapes = ", ".join(str(np.shape(x)) for x in inputs)
            raise ValueError(f"{self.name}: cannot apply to inputs of shapes {shapes}: {err}") from err


def primitive(cls=None, *, register=True):
    """Class decorator: collect forward/vjp/jvp/vjp_tangent (and optional check) into a Primitive.

    ``@primitive`` registers it in ``PRIMITIVES`` (the library's own set, all of which the test suite
    checks); ``primitive(cls, register=False)`` builds one without registering, for exercises and
    experiments.
    """
    if cls is None:
        return lambda c: primitive(c, register=register)
    body = vars(cls)
    for required in ("forward", "vjp", "jvp", "vjp_tangent"):
        if required not in body:
            raise TypeError(f"primitive {cls.__name__} lacks its {required} rule")
    prim = Primitive(cls.__name__, body["forward"], body["vjp"], body["jvp"], body["vjp_tangent"],
                     body.get("check"), cls.__doc__ or "", body.get("r_vjp"), body.get("saves"),
                     body.get("piecewise_linear", False), body.get("reads_out_tangent", True),
                     body.get("second_order_reads"))
    if register:
        if prim.name in PRIMITIVES:
            raise ValueError(f"a primitive named {prim.name!r} is already registered")
        PRIMITIVES[prim.name] = prim
    return prim


def _sum_none(a, b):
    if a is None:
        return b
    return a if b is None else a + b


# ---------------------------------------------------------------------------------------- arithmetic
@primitive
class add:
    """y = a + b (broadcasting). Linear: ȳ flows unchanged to both; ẏ = ȧ + ḃ; no second-order term."""

    saves = ()
    def forward(a, b): return a + b
    def vjp(i, g, out, inputs): return g
    def jvp(i, t, out, inputs): return t
    vjp_tangent = None


@primitive
class sub:
    """y = a − b. Linear: ā = ȳ, b̄ = −ȳ; ẏ = ȧ − ḃ; no second-order term."""

    saves = ()
    def forward(a, b): return a - b
    def vjp(i, g, out, inputs): return g if i == 0 else -g
    def jvp(i, t, out, inputs): return t if i == 0 else -t
    vjp_tangent = None


@primitive
class neg:
    """y = −x. Linear: x̄ = −ȳ; ẏ = −ẋ."""

    saves = ()
    def forward(x): return -x
    def vjp(i, g, out, inputs): return -g
    def jvp(i, t, out, inputs): return -t
    vjp_tangent = None


@primitive
class mul:
    """y = a ⊙ b.

    vjp:  ā = ȳ ⊙ b,  b̄ = ȳ ⊙ a                      (∂y/∂a = b, ∂y/∂b = a)
    jvp:  ẏ = ȧ ⊙ b + a ⊙ ḃ                           (product rule)
    2nd:  R{ā} − vjp(R{ȳ}) = ȳ ⊙ ḃ,  R{b̄} − vjp(R{ȳ}) = ȳ ⊙ ȧ   (ā = ȳ ⊙ b is linear in b)
    """

    saves = (0, 1)
    reads_out_tangent = False
    def forward(a, b): return a * b
    def vjp(i, g, out, inputs): return g * inputs[1 - i]
    def jvp(i, t, out, inputs): return t * inputs[1 - i]

    def vjp_tangent(i, g, out, out_tangent, inputs, input_tangents):
        other = input_tangents[1 - i]
        return None if other is None else g * other


@primitive
class div:
    """y = a / b.

    vjp:  ā = ȳ / b,  b̄ = −ȳ a / b² = −ȳ y / b
    jvp:  ẏ = ȧ / b − a ḃ / b²
    2nd:  d(ȳ/b) = −ȳ ḃ / b²;   d(−ȳ a/b²) = −ȳ ȧ / b² + 2 ȳ a ḃ / b³
    """

    def forward(a, b): return a / b

    def vjp(i, g, out, inputs):
        return g / inputs[1] if i == 0 else -g * out / inputs[1]

    def jvp(i, t, out, inputs):
        return t / inputs[1] if i == 0 else -t * out / inputs[1]

    def vjp_tangent(i, g, out, out_tangent, inputs, input_tangents):
        a, b = inputs
        ta, tb = input_tangents
        b2 = b * b
        if i == 0:
            return None if tb is None else -g * tb / b2
        term = None if ta is None else -g * ta / b2
        if tb is not None:
            term = _sum_none(term, 2.0 * g * a * tb / (b2 * b))
        return term


def _zeros_of(shape, *arrays):
    return np.zeros(shape, dtype=np.result_type(*arrays))


@primitive
class power:
    """y = x^p for a constant real p.

    vjp:  x̄ = ȳ p x^(p−1)
    jvp:  ẏ = p x^(p−1) ẋ
    2nd:  d(ȳ p x^(p−1)) = ȳ p (p−1) x^(p−2) ẋ

    A term whose coefficient is zero is exactly zero, never evaluated: p = 0 has no first-order term
    (d x⁰/dx = 0 also at x = 0, where 0 · x^(−1) would be 0 · inf = NaN), and p ∈ {0, 1} no second-order
    term (x¹ is linear). Exact zeros are common (relu outputs, x − x). For other p, x^(p−1) at x = 0 is the
    true value: inf where p < 1 (the derivative of √x at 0), 0 where p > 1.
    """

    def check(x, *, p):
        if not isinstance(p, (int, float)) or isinstance(p, bool):
            raise TypeError(f"power: exponent p must be a Python int or float constant, got {type(p).__name__}")

    def forward(x, *, p): return x ** p

    def vjp(i, g, out, inputs, p):
        if p == 0:
            return _zeros_of(np.shape(inputs[0]), inputs[0], g)
        return g * (p * inputs[0] ** (p - 1))

    def jvp(i, t, out, inputs, p):
        if p == 0:
            return _zeros_of(np.shape(out), out, t)
        return t * (p * inputs[0] ** (p - 1))

    def vjp_tangent(i, g, out, out_tangent, inputs, input_tangents, p):
        if p == 0 or p == 1:
            return None
        return g * (p * (p - 1) * inputs[0] ** (p - 2)) * input_tangents[0]


@primitive
class square:
    """y = x². Same as power(x, 2) but cheaper (the MSE loss uses it).

    vjp: x̄ = 2 ȳ x;  jvp: ẏ = 2 x ẋ;  2nd: d(2 ȳ x) = 2 ȳ ẋ
    """

    saves = (0,)
    reads_out_tangent = False
    def forward(x): return x * x
    def vjp(i, g, out, inputs): return 2.0 * g * inputs[0]
    def jvp(i, t, out, inputs): return 2.0 * inputs[0] * t
    def vjp_tangent(i, g, out, out_tangent, inputs, input_tangents): return 2.0 * g * input_tangents[0]


def _swap_last(x):
    return np.swapaxes(x, -1, -2)


def _mm(a, b):
    """a @ b, with two faster routes to the identical numbers:

    * when the contracted axis has length 1 it is an outer product, and broadcasting ``*`` gives the same
      numbers several times faster than batched matmul (the 1-40-40-1 net's first and last layers);
    * when every task multiplies by the same large matrix (b is a task-broadcast view of shared weights: the
      first inner step, evaluation from θ), one 2-D GEMM over all tasks' rows replaces one GEMM per task, which
      repacks the matrix for every task — 2.7× faster for the Omniglot MLP's 784 × 256 float32 layer, nothing
      gained below :data:`SHARED_GEMM_MIN_SIZE` entries (40 × 40 to 160 × 160: 0.9–1.1×). BLAS may sum in
      another order for another number of rows, so this route is taken only for shapes where it gives the
      per-task product's bits (:func:`_shared_gemm_is_exact`).
    """
    if a.shape[-1] == 1:
        return a * b
    w = _shared_matrix(a, b)
    if w is not None and _shared_gemm_is_exact(a, w, b.shape):
        return _stacked_rows_times(a, w)
    return a @ b


def _shared_matrix(a, b):
    """The one matrix every leading index of ``b`` shows (b = w, or a broadcast view of w with stride 0 along each
    leading axis), when it has at least SHARED_GEMM_MIN_SIZE entries and ``a`` has leading axes of its own that can
    be folded into rows without a copy; else None. (Shapes and strides only until then: under a replay recording,
    indexing b would be recorded.)"""
    if (a.ndim < 3 or b.shape[-2] * b.shape[-1] < SHARED_GEMM_MIN_SIZE or b.ndim > a.ndim
            or a.dtype != b.dtype or a.dtype.kind != "f" or a.strides != _c_strides(a.shape, a.itemsize)
            or not (a.flags.aligned and b.flags.aligned)
            or any(s != 0 for s in b.strides[:-2]) or b.shape[:-2] != a.shape[a.ndim - b.ndim:-2]
            or b.strides[-2:] not in (_c_strides(b.shape[-2:], b.itemsize), _f_strides(b.shape[-2:], b.itemsize))):
        return None
    return b[(0,) * (b.ndim - 2)] if b.ndim > 2 else b


def _c_strides(shape, itemsize):
    """The strides of a freshly made C-ordered array of this shape (the layout the probe reproduces; NumPy also
    calls arrays with other strides along length-1 axes contiguous, and may then take another matmul loop)."""
    strides, step = [], itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def _f_strides(shape, itemsize):
    """The strides of a freshly made Fortran-ordered (transposed) 2-D array of this shape."""
    return (itemsize, itemsize * shape[0])


def _stacked_rows_times(a, w):
    """(all leading axes of a folded into rows) @ w, unfolded: one GEMM instead of one per task."""
    return (a.reshape(-1, a.shape[-1]) @ w).reshape(a.shape[:-1] + (w.shape[-1],))


SHARED_GEMM_MIN_SIZE = 1 << 15  # entries of the shared matrix (256 × 128 and up) for the one-GEMM route
_SHARED_GEMM_EXACT: dict = {}  # (a.shape, b.shape, w.strides, dtype) -> whether the 2-D GEMM gives a @ b's bits
_SHARED_GEMM_KINDS_KEPT = 256


def _shared_gemm_is_exact(a, w, b_shape):
    """Whether one 2-D GEMM gives the bits of the per-task product for operands of these shapes and layout.

    BLAS picks its kernels, blockings and summation order from the shapes, strides and dtype alone, never from
    the values; so comparing the two routes once, on random operands laid out like these, settles it for every
    call of this kind (a different summation order differs on random data almost surely). Checked once per kind
    and kept (the last 256 kinds); the check allocates one more operand of a's size and runs both routes once.
    On this project's machine it holds for the forward products with the weights as stored and not,
    e.g., for a 64 × 5 float32 layer, or for one point per task (NumPy then takes a matrix-vector route)."""
    key = (a.shape, tuple(b_shape), w.strides, a.dtype.str)
    exact = _SHARED_GEMM_EXACT.get(key)
    if exact is None:
        rng = np.random.default_rng(0)
        probe_a = rng.standard_normal(a.shape).astype(a.dtype)
        probe_w = rng.standard_normal(w.shape).astype(w.dtype)
        if w.strides != _c_strides(w.shape, w.itemsize):  # read transposed (a vjp's Ȳ Wᵀ): the same layout
            probe_w = np.asfortranarray(probe_w)
        per_task = probe_a @ np.broadcast_to(probe_w, b_shape)
        exact = probe_w.strides == w.strides and bool(np.array_equal(per_task, _stacked_rows_times(probe_a, probe_w)))
        if len(_SHARED_GEMM_EXACT) >= _SHARED_GEMM_KINDS_KEPT:  # first in, first out: a kind seen again is re-checked
            del _SHARED_GEMM_EXACT[next(iter(_SHARED_GEMM_EXACT))]
        _SHARED_GEMM_EXACT[key] = exact
    return exact


@primitive
class matmul:
    """Y = A B over the last two axes, leading axes broadcast (batched matmul; both inputs ≥ 2-D).

    vjp:  Ā = Ȳ Bᵀ,  B̄ = Aᵀ Ȳ        (then summed over broadcast batch axes by unbroadcast)
    jvp:  Ẏ = Ȧ B + A Ḃ
    2nd:  Ā = Ȳ Bᵀ is linear in B:  R{Ā} − vjp(R{Ȳ}) = Ȳ Ḃᵀ;  likewise R{B̄} − vjp(R{Ȳ}) = Ȧᵀ Ȳ
    """

    def check(a, b):
        if np.ndim(a) < 2 or np.ndim(b) < 2:
            raise ValueError(
                f"matmul: both inputs must have at least 2 axes (…, n, k) @ (…, k, m); got shapes "
                f"{np.shape(a)} and {np.shape(b)} (reshape vectors to (1, k) or (k, 1))"
            )
        if np.shape(a)[-1] != np.shape(b)[-2]:
            raise ValueError(
                f"matmul: a has shape {np.shape(a)} and b has shape {np.shape(b)}; a.shape[-1] "
                f"({np.shape(a)[-1]}) must equal b.shape[-2] ({np.shape(b)[-2]})"
            )

    reads_out_tangent = False
    second_order_reads = {0: (1,), 1: (0,)}
    def forward(a, b): return _mm(a, b)

    def vjp(i, g, out, inputs):
        a, b = inputs
        return _mm(g, _swap_last(b)) if i == 0 else _mm(_swap_last(a), g)

    def jvp(i, t, out, inputs):
        a, b = inputs
        return _mm(t, b) if i == 0 else _mm(a, t)

    def vjp_tangent(i, g, out, out_tangent, inputs, input_tangents):
        ta, tb = input_tangents
        if i == 0:
            return None if tb is None else _mm(g, _swap_last(tb))
        return None if ta is None else _mm(_swap_last(ta), g)


@primitive
class affine:
    """Y = X W + b, a dense layer in one node: X (…, n, k), W (…, k, m), b (…, m) added to every row.

    Equivalent to add(matmul(X, W), b[..., None, :]) but recorded as one node (MLPs are hot paths).
    vjp:  X̄ = Ȳ Wᵀ,  W̄ = Xᵀ Ȳ,  b̄ = Σ_rows Ȳ
    jvp:  Ẏ = Ẋ W + X Ẇ + ḃ
    2nd:  R{X̄} − vjp(R{Ȳ}) = Ȳ Ẇᵀ;  R{W̄} − vjp(R{Ȳ}) = Ẋᵀ Ȳ;  b̄ does not depend on X, W, b: no term
    """

    def check(x, w, b):
        if np.ndim(x) < 2 or np.ndim(w) < 2 or np.ndim(b) < 1:
            raise ValueError(f"affine: need x (…, n, k), w (…, k, m), b (…, m); got shapes "
                             f"{np.shape(x)}, {np.shape(w)}, {np.shape(b)}")
        if np.shape(x)[-1] != np.shape(w)[-2] or np.shape(b)[-1] != np.shape(w)[-1]:
            raise ValueError(f"affine: x {np.shape(x)} @ w {np.shape(w)} + b {np.shape(b)} do not fit: need "
                             f"x.shape[-1] == w.shape[-2] and b.shape[-1] == w.shape[-1]")

    saves = (0, 1)  # x and w; b and the output are never read (b's cotangent is Σ_rows Ȳ)
    reads_out_tangent = False
    second_order_reads = {0: (1,), 1: (0,), 2: ()}
    def forward(x, w, b): return _mm(x, w) + b[..., None, :]

    def vjp(i, g, out, inputs):
        x, w, b = inputs
        if i == 0:
            return _mm(g, _swap_last(w))
        if i == 1:
            return _mm(_swap_last(x), g)
        return np.sum(g, axis=-2)

    def jvp(i, t, out, inputs):
        x, w, b = inputs
        if i == 0:
            return _mm(t, w)
        if i == 1:
            return _mm(x, t)
        return t[..., None, :]

    def vjp_tangent(i, g, out, out_tangent, inputs, input_tangents):
        tx, tw, _ = input_tangents
        if i == 0:
            return None if tw is None else _mm(g, _swap_last(tw))
        if i == 1:
            return None if tx is None else _mm(_swap_last(tx), g)
        return None

    def r_vjp(i, g, rg, out, out_tangent, inputs, input_tangents):
        # R{W̄} = Xᵀ R{Ȳ} + Ẋᵀ Ȳ without a third weight-sized array (per-task W̄ is the largest array of an HVP):
        # Ẋᵀ Ȳ is added in place into Xᵀ R{Ȳ}, this rule's own new array — the same two-term sum, bit for bit
        rct = affine.vjp(i, rg, out, inputs)
        extra = affine.vjp_tangent(i, g, out, out_tangent, inputs, input_tangents)
        if extra is None:
            return rct
        if i == 1 and rct.shape == extra.shape and rct.dtype == np.result_type(rct, extra):
            return np.add(rct, extra, out=rct)
        return rct + extra


# ---------------------------------------------------------------------------------------- reductions / shape
def _normalize_axis(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, list):
        raise TypeError(f"axis must be None, an int or a tuple of ints (as in NumPy), got the list {axis!r}")
    axes = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for a in axes:
        if not isinstance(a, (int, np.integer)) or not -ndim <= a < ndim:
            hint = " (a 0-d input has no axes: use axis=None)" if ndim == 0 else ""
            raise ValueError(f"axis {axis!r} is out of range for an input with {ndim} axes{hint}")
        out.append(int(a) % ndim)
    return tuple(sorted(out))


def _expand_back(g, shape, axis, keepdims):
    """Broadcast a reduced cotangent back to the input's shape."""
    if not keepdims:
        g = np.expand_dims(g, _normalize_axis(axis, len(shape)))
    return np.broadcast_to(g, shape)


@primitive
class sum:
    """y = Σ_axis x. Linear: x̄ = ȳ broadcast back over the summed axes; ẏ = Σ_axis ẋ."""

    def check(x, *, axis=None, keepdims=False):
        _normalize_axis(axis, np.ndim(x))

    saves = ()  # the vjp reads only the input's shape
    def forward(x, *, axis=None, keepdims=False): return np.sum(x, axis=axis, keepdims=keepdims)
    def vjp(i, g, out, inputs, axis, keepdims): return _expand_back(g, np.shape(inputs[0]), axis, keepdims)
    def jvp(i, t, out, inputs, axis, keepdims): return np.sum(t, axis=axis, keepdims=keepdims)
    vjp_tangent = None


def _count(shape, axis):
    n = 1
    for a in _normalize_axis(axis, len(shape)):
        n *= shape[a]
    return n


@primitive
class mean:
    """y = (1/n) Σ_axis x. Linear: x̄ = ȳ/n broadcast back; ẏ = mean_axis ẋ."""

    def check(x, *, axis=None, keepdims=False):
        _normalize_axis(axis, np.ndim(x))

    saves = ()  # the vjp reads only the input's shape
    def forward(x, *, axis=None, keepdims=False): return np.mean(x, axis=axis, keepdims=keepdims)

    def vjp(i, g, out, inputs, axis, keepdims):
        shape = np.shape(inputs[0])
        return _expand_back(g / _count(shape, axis), shape, axis, keepdims)

    def jvp(i, t, out, inputs, axis, keepdims): return np.mean(t, axis=axis, keepdims=keepdims)
    vjp_tangent = None


@primitive
class reshape:
    """y = x viewed with another shape. Linear: x̄ = ȳ reshaped back; ẏ = ẋ reshaped."""

    def forward(x, *, shape): return np.reshape(x, shape)
    def vjp(i, g, out, inputs, shape): return np.reshape(g, np.shape(inputs[0]))
    def jvp(i, t, out, inputs, shape): return np.reshape(t, np.shape(out))
    vjp_tangent = None


@primitive
class transpose:
    """y = x with axes permuted by ``axes`` (None: reversed). Linear: x̄ = ȳ permuted by the inverse."""

    def forward(x, *, axes=None): return np.transpose(x, axes)

    def vjp(i, g, out, inputs, axes):
        if axes is None:
            return np.transpose(g)
        return np.transpose(g, np.argsort([a % np.ndim(g) for a in axes]))  # negative axes allowed, as in numpy

    def jvp(i, t, out, inputs, axes): return np.transpose(t, axes)
    vjp_tangent = None


@primitive
class broadcast_to:
    """y = x broadcast to ``shape``. Linear: x̄ = ȳ summed back (the engine's unbroadcast does it)."""

    def forward(x, *, shape): return np.broadcast_to(x, shape)
    def vjp(i, g, out, inputs, shape): return g
    def jvp(i, t, out, inputs, shape): return np.broadcast_to(t, shape)
    vjp_tangent = None


@primitive
class getitem:
    """y = x[key] (basic or advanced indexing). Linear: x̄ = zeros with ȳ scattered-added at key."""

    def forward(x, *, key): return x[key]

    def vjp(i, g, out, inputs, key):
        x = inputs[0]
        ct = np.zeros_like(g, shape=np.shape(x), dtype=np.result_type(x, g))  # made from g: see engine.replay
        np.add.at(ct, key, g)
        return ct

    def jvp(i, t, out, inputs, key): return t[key]
    vjp_tangent = None


@primitive
class take_along_axis:
    """y = x picked at integer ``indices`` along ``axis`` (np.take_along_axis); the cross-entropy's pick.

    Linear: x̄ = zeros with ȳ put back at the picked places; ẏ = ẋ picked the same way.
    """

    def check(x, *, indices, axis):
        if not isinstance(indices, np.ndarray):
            raise TypeError(f"take_along_axis: indices must be a NumPy integer array, got a {type(indices).__name__}; "
                            "wrap it: indices=np.asarray(indices)")
        if not np.issubdtype(indices.dtype, np.integer):
            raise TypeError(f"take_along_axis: indices must be integers, got dtype {indices.dtype}")

    def forward(x, *, indices, axis): return np.take_along_axis(x, indices, axis=axis)

    def vjp(i, g, out, inputs, indices, axis):
        x = inputs[0]
        ct = np.zeros_like(g, shape=np.shape(x), dtype=np.result_type(x, g))  # made from g: see engine.replay
        # np.add.at accumulates where an index repeats or where x broadcast against indices;
        # np.put_along_axis would keep only one of the contributions.
        if axis is None:
            np.add.at(ct.reshape(-1), indices, g)  # reshape of a fresh array is a view: writes into ct
            return ct
        axis = axis % ct.ndim
        index = tuple(indices if k == axis else np.arange(n).reshape([-1 if d == k else 1 for d in range(ct.ndim)])
                      for k, n in enumerate(ct.shape))
        np.add.at(ct, index, g)
        return ct

    def jvp(i, t, out, inputs, indices, axis): return np.take_along_axis(t, indices, axis=axis)
    vjp_tangent = None


def _slot(axis, ndim, index):
    """The index tuple that selects ``index`` (an int or a slice) along ``axis`` of an ndim-array."""
    return (slice(None),) * (axis % ndim) + (index,)


def _check_join(name, xs, axis, out_ndim):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{name}: axis must be an int, got {axis!r}")
    ndims = {np.ndim(x) for x in xs}
    if len(ndims) != 1:
        raise ValueError(f"{name}: all arrays need the same number of axes; got shapes "
                         f"{[np.shape(x) for x in xs]}")
    nd = ndims.pop()
    if name == "concatenate" and nd == 0:
        raise ValueError("concatenate: 0-d arrays have no axis to join along; use stack")
    _normalize_axis(axis, out_ndim(nd))


@primitive
class concatenate:
    """y = (x₁, x₂, …, x_k) joined along ``axis``: ``concatenate([a, b], axis=0)`` as np.concatenate (shapes
    agree except along ``axis``; no broadcasting). Input i fills the block of rows o_i … o_i + n_i − 1 of
    y along the axis (o_i = n_1 + … + n_{i−1}).

    Linear, so: vjp  x̄ᵢ = ȳ[block i]  (the adjoint of placing xᵢ in its block is reading the block back);
    jvp  ẏ = (ẋ₁, …, ẋ_k) joined, which the engine assembles as the sum over inputs of ẋᵢ placed in block i
    with zeros elsewhere; no second-order term (vjp_tangent None).
    """

    def check(*xs, axis=0):
        _check_join("concatenate", xs, axis, lambda nd: nd)

    def forward(*xs, axis=0): return np.concatenate(xs, axis=axis)

    def vjp(i, g, out, inputs, axis):
        return g[_concat_block(i, inputs, axis, g.ndim)]

    def jvp(i, t, out, inputs, axis):
        ct = _zeros_of(np.shape(out), out, t)
        ct[_concat_block(i, inputs, axis, ct.ndim)] = t
        return ct

    vjp_tangent = None


def _concat_block(i, inputs, axis, ndim):
    ax = axis % ndim
    start = 0
    for x in inputs[:i]:
        start += np.shape(x)[ax]
    return _slot(ax, ndim, slice(start, start + np.shape(inputs[i])[ax]))


@primitive
class stack:
    """y = (x₁, …, x_k) stacked along a new axis ``axis``: ``stack([a, b], axis=0)`` as np.stack (equal shapes).
    y[…, i, …] = xᵢ with i at position ``axis``.

    Linear, so: vjp  x̄ᵢ = ȳ[…, i, …];  jvp  ẏ = (ẋ₁, …, ẋ_k) stacked (assembled as the sum of ẋᵢ placed in
    slot i, zeros elsewhere);  no second-order term.
    """

    def check(*xs, axis=0):
        _check_join("stack", xs, axis, lambda nd: nd + 1)

    def forward(*xs, axis=0): return np.stack(xs, axis=axis)
    def vjp(i, g, out, inputs, axis): return g[_slot(axis, g.ndim, i)]

    def jvp(i, t, out, inputs, axis):
        ct = _zeros_of(np.shape(out), out, t)
        ct[_slot(axis, ct.ndim, i)] = t
        return ct

    vjp_tangent = None


# ---------------------------------------------------------------------------------------- elementwise
@primitive
class exp:
    """y = eˣ.  vjp: x̄ = ȳ y;  jvp: ẏ = y ẋ;  2nd: d(ȳ eˣ) = ȳ y ẋ."""

    def forward(x): return np.exp(x)
    def vjp(i, g, out, inputs): return g * out
    def jvp(i, t, out, inputs): return t * out
    def vjp_tangent(i, g, out, out_tangent, inputs, input_tangents): return g * out_tangent


@primitive
class log:
    """y = ln x.  vjp: x̄ = ȳ / x;  jvp: ẏ = ẋ / x;  2nd: d(ȳ/x) = −ȳ ẋ / x²."""

    def forward(x): return np.log(x)
    def vjp(i, g, out, inputs): return g / inputs[0]
    def jvp(i, t, out, inputs): return t / inputs[0]

    def vjp_tangent(i, g, out, out_tangent, inputs, input_tangents):
        x = inputs[0]
        return -g * input_tangents[0] / (x * x)


@primitive
class tanh:
    """y = tanh x.  vjp: x̄ = ȳ (1 − y²);  jvp: ẏ = (1 − y²) ẋ;  2nd: d(ȳ(1 − y²)) = −2 ȳ y ẏ."""

    def forward(x): return np.tanh(x)
    def vjp(i, g, out, inputs): return g * (1.0 - out * out)
    def jvp(i, t, out, inputs): return t * (1.0 - out * out)
    def vjp_tangent(i, g, out, out_tangent, inputs, input_tangents): return -2.0 * g * out * out_tangent


@primitive
class relu:
    """y = max(x, 0).  vjp: x̄ = ȳ [x > 0];  jvp: ẏ = [x > 0] ẋ;  2nd: d[x > 0]/dx = 0 away from the kink.

    At x = 0 the derivative is taken as 0 (the convention of PyTorch and JAX). The mask is read from the
    output, [y > 0] = [x > 0], so a recorded step keeps y (the next layer's input anyway) and not x.
    """

    saves = ("out",)
    def forward(x): return np.maximum(x, 0)
    def vjp(i, g, out, inputs): return g * (out > 0)
    def jvp(i, t, out, inputs): return t * (out > 0)
    def vjp_tangent(i, g, out, out_tangent, inputs, input_tangents): return None
    piecewise_linear = True


@primitive
class sigmoid:
    """y = σ(x) = 1/(1 + e⁻ˣ).  vjp: x̄ = ȳ y(1 − y);  jvp: ẏ = y(1 − y) ẋ;
    2nd: d(ȳ y(1 − y)) = ȳ (1 − 2y) ẏ."""

    def forward(x):
        # two branches so that neither exp overflows
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    def vjp(i, g, out, inputs): return g * out * (1.0 - out)
    def jvp(i, t, out, inputs): return t * out * (1.0 - out)
    def vjp_tangent(i, g, out, out_tangent, inputs, input_tangents): return g * (1.0 - 2.0 * out) * out_tangent


@primitive
class softplus:
    """y = ln(1 + eˣ).  y' = σ(x), y'' = σ(x)(1 − σ(x)).
    vjp: x̄ = ȳ σ(x);  jvp: ẏ = σ(x) ẋ;  2nd: d(ȳ σ(x)) = ȳ σ(x)(1 − σ(x)) ẋ."""

    def forward(x): return np.logaddexp(0.0, x)
    def vjp(i, g, out, inputs): return g * sigmoid.forward(inputs[0])
    def jvp(i, t, out, inputs): return t * sigmoid.forward(inputs[0])

    def vjp_tangent(i, g, out, out_tangent, inputs, input_tangents):
        s = sigmoid.forward(inputs[0])
        return g * s * (1.0 - s) * input_tangents[0]


@primitive
class sqrt:
    """y = √x (x ≥ 0).  y' = 1/(2y), y'' = −1/(4y³).
    vjp: x̄ = ȳ / (2y);  jvp: ẏ = ẋ / (2y);  2nd: d(ȳ/(2y)) = −ȳ ẏ / (2y²)  (= −ȳ ẋ / (4y³)).
    At x = 0 the derivative is +inf, its true value (add a small ε inside, as the norm layers do)."""

    def forward(x): return np.sqrt(x)
    def vjp(i, g, out, inputs): return g / (2.0 * out)
    def jvp(i, t, out, inputs): return t / (2.0 * out)
    def vjp_tangent(i, g, out, out_tangent, inputs, input_tangents): return -g * out_tangent / (2.0 * out * out)


def _max_weight(first, second, dtype):
    """∂ max(a, b)/∂a as an array: 1 where a > b, 0 where a < b and ½ at ties (see ``maximum``)."""
    w = np.asarray(np.greater(first, second)).astype(dtype)
    ties = np.asarray(np.equal(first, second))
    if ties.any():
        w[ties] = 0.5
    return w


@primitive
class maximum:
    """y = max(a, b) elementwise, with broadcasting (np.maximum).

    Away from ties y is a or b, so with wₐ = [a > b], w_b = [b > a]:
    vjp: ā = ȳ wₐ,  b̄ = ȳ w_b;  jvp: ẏ = wₐ ȧ + w_b ḃ;  2nd: none — the rule's weights are piecewise
    constant in (a, b), so their derivative is 0 wherever it exists (vjp_tangent returns None).

    Ties (a == b) are a kink; the subgradient chosen splits ȳ evenly, wₐ = w_b = ½, as PyTorch and JAX do
    (ā + b̄ = ȳ, and max(x, x) gets the derivative 1 of the identity). So maximum(x, 0) at x = 0 gives ½,
    where ``relu`` gives 0. The jvp uses the same weights (½(ȧ + ḃ) at a tie, not max(ȧ, ḃ)).
    """

    def forward(a, b): return np.maximum(a, b)

    def vjp(i, g, out, inputs):
        a, b = inputs
        return g * (_max_weight(a, b, g.dtype) if i == 0 else _max_weight(b, a, g.dtype))

    def jvp(i, t, out, inputs):
        a, b = inputs
        return t * (_max_weight(a, b, t.dtype) if i == 0 else _max_weight(b, a, t.dtype))

    def vjp_tangent(i, g, out, out_tangent, inputs, input_tangents): return None


@primitive
class where:
    """y = a where ``cond`` else b, elementwise with broadcasting (np.where). ``cond`` is a constant boolean
    mask (a setting, not differentiated: a comparison has derivative 0 wherever it is defined). Call it in
    NumPy's order, ``ops.where(cond, a, b)``.

    Linear in (a, b) for a fixed mask:  vjp  ā = ȳ ⊙ cond,  b̄ = ȳ ⊙ ¬cond;  jvp  ẏ = cond ⊙ ȧ + ¬cond ⊙ ḃ;
    no second-order term.
    """

    def check(a, b, *, cond):
        if not isinstance(cond, (np.ndarray, np.bool_, bool)) or np.asarray(cond).dtype != bool:
            got = type(cond).__name__ if not isinstance(cond, np.ndarray) else f"an array of dtype {cond.dtype}"
            raise TypeError(f"where: cond must be a boolean mask (np.ndarray of bool, e.g. x.value > 0 or x > 0 on a "
                            f"traced x), got {got}")

    def forward(a, b, *, cond): return np.where(cond, a, b)
    def vjp(i, g, out, inputs, cond): return np.where(cond, g, 0) if i == 0 else np.where(cond, 0, g)
    def jvp(i, t, out, inputs, cond): return np.where(cond, t, 0) if i == 0 else np.where(cond, 0, t)
    vjp_tangent = None


def _shifted_exp(x, axis):
    """(e, s) with e = e^(x − m) and s = Σ_axis e (keepdims), m the max along axis (0 where not finite).

    softmax = e / s is computed from x − m, which is exact in floating point, never from x − logsumexp(x):
    the logsumexp of logits of size 1000 carries an absolute rounding error of ~1e-4 in float32 (its ulp),
    which would become a relative error of 1e-4 in every softmax probability."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(x - m)
    return e, np.sum(e, axis=axis, keepdims=True), m


@primitive
class logsumexp:
    """y = ln Σ_axis eˣ, computed stably as m + ln Σ e^(x − m) with m = max x. With p = softmax(x):
    vjp: x̄ = ȳ p;  jvp: ẏ = Σ_axis p ẋ;  2nd: d(ȳ p) = ȳ p ⊙ (ẋ − ẏ)  (since dp = p ⊙ (ẋ − ẏ)).

    p is evaluated as e^(x − m) / Σ e^(x − m) (see ``_shifted_exp``), not as e^(x − y): accurate to the
    unit roundoff at any size of x, also in float32."""

    def check(x, *, axis=None, keepdims=False):
        _normalize_axis(axis, np.ndim(x))

    def forward(x, *, axis=None, keepdims=False):
        _, s, m = _shifted_exp(x, axis)
        y = np.log(s) + m
        return y if keepdims else np.squeeze(y, axis=_normalize_axis(axis, np.ndim(x)))

    def vjp(i, g, out, inputs, axis, keepdims):
        x = inputs[0]
        e, s, _ = _shifted_exp(x, axis)
        return _expand_back(g, np.shape(x), axis, keepdims) * (e / s)

    def jvp(i, t, out, inputs, axis, keepdims):
        e, s, _ = _shifted_exp(inputs[0], axis)
        return np.sum((e / s) * t, axis=axis, keepdims=keepdims)

    def vjp_tangent(i, g, out, out_tangent, inputs, input_tangents, axis, keepdims):
        x = inputs[0]
        shape = np.shape(x)
        e, s, _ = _shifted_exp(x, axis)
        return (_expand_back(g, shape, axis, keepdims) * (e / s)
                * (input_tangents[0] - _expand_back(out_tangent, shape, axis, keepdims)))


@primitive
class log_softmax:
    """z = x − logsumexp_axis(x), one primitive so that it is stable in float32 (z = (x − m) − ln Σ e^(x − m),
    both parts exact or O(1); the composite x − logsumexp(x) subtracts a rounded logsumexp of size |x|).
    With p = softmax(x) = e^z (an O(1) exponent, accurate):

    vjp:  x̄ = ȳ − p Σ_axis ȳ                      (∂zⱼ/∂xₖ = δⱼₖ − pₖ)
    jvp:  ż = ẋ − Σ_axis p ẋ
    2nd:  d(ȳ − p Σȳ) = −ṗ Σȳ with ṗ = p ⊙ ż:  R{x̄} − vjp(R{ȳ}) = −p ⊙ ż ⊙ Σ_axis ȳ
    """

    def check(x, *, axis=-1):
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise TypeError(f"log_softmax: axis must be one int, got {axis!r}")
        _normalize_axis(axis, np.ndim(x))

    def forward(x, *, axis=-1):
        m = np.max(x, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        shifted = x - m
        return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))

    def vjp(i, g, out, inputs, axis):
        return g - np.exp(out) * np.sum(g, axis=axis, keepdims=True)

    def jvp(i, t, out, inputs, axis):
        return t - np.sum(np.exp(out) * t, axis=axis, keepdims=True)

    def vjp_tangent(i, g, out, out_tangent, inputs, input_tangents, axis):
        return -np.exp(out) * out_tangent * np.sum(g, axis=axis, keepdims=True)


# ---------------------------------------------------------------------------------------- composites
def swapaxes(x, axis1, axis2):
    """Exchange two axes (a transpose)."""
    axes = list(range(np.ndim(x.value if hasattr(x, "value") else x)))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose(x, tuple(axes))


_where_primitive = where


def where(cond, a, b):
    """a where ``cond`` else b (NumPy's argument order); records the ``where`` primitive (PRIMITIVES["where"])."""
    if isinstance(cond, Var):
        raise TypeError("where: cond is a traced Var; a mask is a constant — build it from values, e.g. "
                        "x > 0 on a traced x gives a plain boolean array")
    return _where_primitive(a, b, cond=np.asarray(cond) if isinstance(cond, (list, bool)) else cond)


def minimum(a, b):
    """min(a, b) = −max(−a, −b): a composite, with ``maximum``'s tie rule (½ to each at a == b)."""
    return neg(maximum(neg(a), neg(b)))


def clip(x, low, high):
    """x limited to [low, high] elementwise (np.clip), as ``where`` on masks computed from the values.

    Derivative: 1 with respect to x where low ≤ x ≤ high (bounds included, as PyTorch's clamp), else 1 with
    respect to the bound that applies. ``low``/``high`` may be constants or traced values.
    """
    xv, lo, hi = value_of(x), value_of(low), value_of(high)
    if np.any(np.asarray(lo) > np.asarray(hi)):
        raise ValueError("clip: low must not exceed high")
    return where(xv < lo, low, where(xv > hi, high, x))


# ---------------------------------------------------------------------------------------- Var's operators
# Each operator of a traced Var records one of the primitives above. They are attached here rather than
# written in core.Var so that the tape (core) needs nothing from this module: ops imports core, never back.
class _VarOperators:
    def __add__(self, other): return add(self, other)
    def __radd__(self, other): return add(other, self)
    def __sub__(self, other): return sub(self, other)
    def __rsub__(self, other): return sub(other, self)
    def __mul__(self, other): return mul(self, other)
    def __rmul__(self, other): return mul(other, self)
    def __truediv__(self, other): return div(self, other)
    def __rtruediv__(self, other): return div(other, self)
    def __matmul__(self, other): return matmul(self, other)
    def __rmatmul__(self, other): return matmul(other, self)
    def __neg__(self): return neg(self)
    def __pow__(self, exponent): return power(self, exponent)
    def __getitem__(self, key): return getitem(self, key)
    # comparisons give plain boolean arrays (masks for ops.where): their derivative is 0 wherever defined.
    # == and != are left alone so that a Var stays hashable and comparable by identity.
    def __lt__(self, other): return np.less(self.value, value_of(other))
    def __le__(self, other): return np.less_equal(self.value, value_of(other))
    def __gt__(self, other): return np.greater(self.value, value_of(other))
    def __ge__(self, other): return np.greater_equal(self.value, value_of(other))

    @property
    def T(self):
        return transpose(self)

    def sum(self, axis=None, keepdims=False): return sum(self, axis=axis, keepdims=keepdims)
    def mean(self, axis=None, keepdims=False): return mean(self, axis=axis, keepdims=keepdims)
    def reshape(self, *shape): return reshape(self, shape[0] if len(shape) == 1 else shape)
    def swapaxes(self, a, b): return swapaxes(self, a, b)


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
              "__matmul__", "__rmatmul__", "__neg__", "__pow__", "__getitem__", "__lt__", "__le__", "__gt__",
              "__ge__", "T", "sum", "mean", "reshape", "swapaxes"):
    setattr(Var, _name, vars(_VarOperators)[_name])
del _name
Var.ops_names = frozenset(__all__)
