"""The recurrent cells a run can use, what state each really carries, and their equations in
NumPy (the replay check's independent implementation).

LSTM carries two state tensors (h, c); GRU and SimpleRNN carry one (h). A trace stores exactly
the tensors of its cell: `h0`/`hT` always, `c0`/`cT` only for LSTM (no fake zeros).

Weights, as Keras 3 stores them (gate blocks side by side, each `units` wide):
  LSTM       kernel (F, 4U), recurrent (U, 4U), bias (4U,)    gates i, f, c, o
  GRU        kernel (F, 3U), recurrent (U, 3U), bias (2, 3U)  gates z, r, h; reset_after=True
             (Keras's default): bias[0] is added to x W, bias[1] to h U, and r multiplies h U
  SimpleRNN  kernel (F, U),  recurrent (U, U),  bias (U,)
"""
from __future__ import annotations

import numpy as np

from models.config import CELLS  # noqa: F401  (the setting's choices)

STATES = {"LSTM": ("h", "c"), "GRU": ("h",), "SimpleRNN": ("h",)}  # Keras's order in layer.states
GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}


def state_names(cell: str) -> tuple[str, ...]:
    return STATES[cell]


def has_c(cell: str) -> bool:
    return "c" in STATES[cell]


def weight_shapes(cell: str, n_features: int, units: int) -> tuple[tuple, tuple, tuple]:
    """(kernel, recurrent kernel, bias) shapes of one cell, as Keras builds them."""
    g = GATES[cell] * units
    bias = (2, g) if cell == "GRU" else (g,)
    return (n_features, g), (units, g), bias


def unroll(cell: str, sample_len: int) -> bool:
    """Build the layer with `unroll=True`? Only a GRU or SimpleRNN reading samples of one
    timestep (the steps layout). Keras's default (unroll=False) runs even one timestep as a
    symbolic while loop, and its gradient as another: the engine's compiled chunk (a while loop
    over batches) held 3 while loops, the layer's two inside the chunk's, for one step of
    arithmetic; unrolled it holds 1 (counted in the chunk's XLA HLO; speed: `python -m models
    bench --before`). Same equations: engine vs `fit` built either way stays within the tests'
    bound (tests/test_cells.py). Not the LSTM: unrolled, its one-step engine run stopped being
    bit-identical to `fit`. The engine, the generated script and the tests build it this way."""
    return cell in ("GRU", "SimpleRNN") and sample_len <= 1


def layer(cell: str, units: int, seed: int, **kw):
    """The real Keras layer; kernel and recurrent initialisers seeded as the app seeds them.
    Pass unroll=unroll(cell, sample_len) for the build the engine uses."""
    import keras
    cls = {"LSTM": keras.layers.LSTM, "GRU": keras.layers.GRU,
           "SimpleRNN": keras.layers.SimpleRNN}[cell]
    return cls(units, kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
               recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 1), **kw)


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def run_numpy(cell: str, x, states, kernel, recurrent, bias,
              sequence: bool = False) -> tuple[np.ndarray, ...]:
    """The cell's equations in float64 NumPy, batched over m replayed batches, each with its
    own weights: x (m, S, L, F); states a tuple of (m, S, U) in STATES order; kernel
    (m, F, G*U), recurrent (m, U, G*U), bias (m, G*U) or, for GRU, (m, 2, 3U).
    Returns the final states, in the same order; with `sequence`, also h at every step
    (m, S, L, U) last: the output sequence a stacked layer feeds the next one."""
    W, R, b = (np.asarray(a, np.float64) for a in (kernel, recurrent, bias))
    x = np.asarray(x, np.float64)
    s = [np.asarray(a, np.float64) for a in states]
    h = s[0]
    u = h.shape[-1]
    seq = []
    for step in range(x.shape[2]):
        xt = x[:, :, step] @ W
        if cell == "LSTM":
            z = xt + h @ R + b[:, None, :]
            i, f, o = _sig(z[..., :u]), _sig(z[..., u:2 * u]), _sig(z[..., 3 * u:])
            c = f * s[1] + i * np.tanh(z[..., 2 * u:3 * u])
            h = o * np.tanh(c)
            s = [h, c]
        elif cell == "GRU":
            xz = xt + b[:, None, 0, :]
            hz = h @ R + b[:, None, 1, :]
            z, r = _sig(xz[..., :u] + hz[..., :u]), _sig(xz[..., u:2 * u] + hz[..., u:2 * u])
            hh = np.tanh(xz[..., 2 * u:] + r * hz[..., 2 * u:])
            h = z * h + (1 - z) * hh
            s = [h]
        elif cell == "SimpleRNN":
            h = np.tanh(xt + h @ R + b[:, None, :])
            s = [h]
        else:
            raise ValueError(f"unknown cell {cell!r}")
        if sequence:
            seq.append(h)
    if sequence:
        return (*s, np.stack(seq, axis=2))
    return tuple(s)
