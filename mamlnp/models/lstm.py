"""A long short-term memory (LSTM) network built from the engine's primitives, as pure functions.

One LSTM cell (Hochreiter & Schmidhuber 1997, with a forget gate, Gers et al. 2000) maps an input x and the
previous state (h, c) to a new state. Every gate is a sigmoid (a number in (0, 1) that scales a signal) of an
affine function of x and h; the candidate g is a tanh of another one:

    i = σ(x W_xi + h W_hi + b_i)      input gate:  how much of the candidate enters the memory
    f = σ(x W_xf + h W_hf + b_f)      forget gate: how much of the old memory is kept
    o = σ(x W_xo + h W_ho + b_o)      output gate: how much of the memory is shown
    g = tanh(x W_xg + h W_hg + b_g)   candidate memory
    c' = f ⊙ c + i ⊙ g                the cell state (the memory) is a gated running sum
    h' = o ⊙ tanh(c')                 the hidden state (the output)

Each gate has its own two weight matrices, so a gate's pre-activation is a *sum of two matmuls*
(``ops.affine(x, W_x, b) + ops.matmul(h, W_h)``) instead of one matmul of the concatenation [x, h]: the two are
equal ([x, h] [W_x; W_h] = x W_x + h W_h) and this form needs no concatenate primitive. All the primitives used
(affine, matmul, add, mul, sigmoid, tanh) carry second-order rules, so ``grad`` *and* ``hvp`` of anything built
from this cell work, and the tests check both against finite differences.

Shapes: x (…, n, d_in), h and c (…, n, H); any leading axes (tasks) and n rows (coordinates) are batched.
Parameters: ``{"layers": [layer_0, layer_1, …], "out": {"w": (H, d_out), "b": (d_out,)}}`` with
``layer = {"w_x": {gate: (d_in, H)}, "w_h": {gate: (H, H)}, "b": {gate: (H,)}}`` for gate in i, f, o, g.
"""
from __future__ import annotations

import numpy as np

from ..engine import ops
from ..engine.core import value_of

__all__ = ["GATES", "init_lstm", "lstm_cell", "lstm_step", "zero_state", "lstm_hidden_sizes"]

GATES = ("i", "f", "o", "g")


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def init_lstm(input_size, hidden_sizes, output_size, rng, *, forget_bias=1.0, output_scale=1.0, dtype=np.float64):
    """Parameters of a stacked LSTM (widths ``hidden_sizes``, e.g. ``(20, 20)``) with a linear read-out.

    Weights are uniform in ±1/√fan_in (fan_in = d_in + H for a gate, as for one matmul of [x, h]); biases are
    zero except the forget gate's, ``forget_bias`` = 1 by default, so a fresh cell keeps its memory (Gers et
    al. 2000; Jozefowicz et al. 2015). The read-out weights are multiplied by ``output_scale``.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    _positive_int(input_size, "input_size")
    _positive_int(output_size, "output_size")
    hidden_sizes = tuple(hidden_sizes) if isinstance(hidden_sizes, (list, tuple)) else (hidden_sizes,)
    if not hidden_sizes:
        raise ValueError("hidden_sizes must name at least one layer width, got ()")
    for h in hidden_sizes:
        _positive_int(h, "each of hidden_sizes")
    layers, d_in = [], input_size
    for hidden in hidden_sizes:
        bound = 1.0 / np.sqrt(d_in + hidden)
        layer = {"w_x": {}, "w_h": {}, "b": {}}
        for gate in GATES:
            layer["w_x"][gate] = rng.uniform(-bound, bound, (d_in, hidden)).astype(dtype)
            layer["w_h"][gate] = rng.uniform(-bound, bound, (hidden, hidden)).astype(dtype)
            layer["b"][gate] = np.full(hidden, forget_bias if gate == "f" else 0.0, dtype=dtype)
        layers.append(layer)
        d_in = hidden
    bound = output_scale / np.sqrt(d_in)
    out = {"w": rng.uniform(-bound, bound, (d_in, output_size)).astype(dtype), "b": np.zeros(output_size, dtype=dtype)}
    return {"layers": layers, "out": out}


def lstm_hidden_sizes(params):
    """The widths H of the layers of ``params``."""
    return tuple(int(np.shape(value_of(layer["w_h"]["i"]))[-1]) for layer in params["layers"])


def zero_state(params, batch_shape, dtype=np.float64):
    """(h, c) = (0, 0) for every layer, each of shape ``batch_shape + (H,)``."""
    return [(np.zeros(tuple(batch_shape) + (h,), dtype=dtype), np.zeros(tuple(batch_shape) + (h,), dtype=dtype))
            for h in lstm_hidden_sizes(params)]


def _gate(layer, gate, x, h):
    # x W_x + b + h W_h: the concatenation [x, h] [W_x; W_h] written as a sum of two matmuls
    return ops.add(ops.affine(x, layer["w_x"][gate], layer["b"][gate]), ops.matmul(h, layer["w_h"][gate]))


def lstm_cell(layer, x, state):
    """One LSTM cell: ``(h, c) -> (h', c')`` for input x (see the module docstring for the equations)."""
    h, c = state
    i = ops.sigmoid(_gate(layer, "i", x, h))
    f = ops.sigmoid(_gate(layer, "f", x, h))
    o = ops.sigmoid(_gate(layer, "o", x, h))
    g = ops.tanh(_gate(layer, "g", x, h))
    c_new = ops.add(ops.mul(f, c), ops.mul(i, g))
    h_new = ops.mul(o, ops.tanh(c_new))
    return h_new, c_new


def lstm_step(params, x, states):
    """One time step of the stacked LSTM: ``(x, states) -> (y, new_states)`` with the read-out y = h_top W + b."""
    if len(states) != len(params["layers"]):
        raise ValueError(f"states has {len(states)} (h, c) pairs but the LSTM has {len(params['layers'])} layers")
    new_states, inp = [], x
    for layer, state in zip(params["layers"], states):
        h, c = lstm_cell(layer, inp, state)
        new_states.append((h, c))
        inp = h
    y = ops.affine(inp, params["out"]["w"], params["out"]["b"])
    return y, new_states
