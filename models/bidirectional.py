"""A stateful Bidirectional LSTM, measured in plain Keras (no engine, no streamlit).

`keras.layers.Bidirectional(keras.layers.LSTM(U, stateful=True))` on a fixed batch size is fed
two consecutive chunks of the same sequences: chunk 1 = steps 1..L, chunk 2 = steps L+1..2L. We
read the real state variables of `layer.forward_layer` and `layer.backward_layer` (`.states`)
after each chunk and compare the layer's outputs with an independent computation: a plain,
stateless LSTM given each direction's weights, run over the chunks (reversed by hand for the
backward direction) from an initial state we choose.

- forward: the state after chunk 1 is the state at step L, and chunk 2 starts from it: the
  same as one pass over steps 1..2L.
- backward: chunk 1 is read from step L down to step 1, so the state it stores is the state at
  step 1, the START of chunk 1. Chunk 2 is read from step 2L down to L+1 and starts from that
  state: step 1's state is handed to step 2L, the wrong end. A backward pass over the whole
  sequence 1..2L would start fresh at step 2L; the distance to it is measured.
- reset: which reset methods exist (Keras 3 models have none) and what each one zeroes.
"""
from __future__ import annotations

import numpy as np

import models  # noqa: F401  (pins KERAS_BACKEND before keras is imported)

B, L, F, UNITS = 2, 5, 1, 3  # small: the whole demo is a handful of calls
EQUAL = 1e-5   # float32: "the same computation" within this
APART = 1e-3   # "a different state": further apart than this


def _max(a, b) -> float:
    return float(max(np.abs(np.asarray(x) - np.asarray(y)).max() for x, y in zip(a, b)))


def _states(layer) -> list[np.ndarray] | None:
    return None if layer.states is None else [np.array(v.numpy()) for v in layer.states]


def _largest(states) -> float | None:
    return None if states is None else float(max(np.abs(s).max() for s in states))


def measure(stateful: bool = True, seed: int = 0) -> dict:
    """Feed two consecutive chunks to a Bidirectional LSTM; what each direction carried.

    Returns the errors (largest absolute difference) between the layer and the independent
    computation from each candidate initial state, per direction and chunk, and the reset
    measurements. With stateful=False the same measurement runs on a stateless layer (which
    carries nothing, so the carry claims must fail on it).
    """
    import keras
    keras.utils.set_random_seed(seed)
    inp = keras.Input(batch_shape=(B, L, F))
    bi = keras.layers.Bidirectional(keras.layers.LSTM(UNITS, stateful=stateful,
                                                      return_sequences=False))
    model = keras.Model(inp, bi(inp))
    rng = np.random.default_rng(seed)
    # Weights from our own generator: Keras's unseeded initializers draw from a process-wide
    # generator, so the same call gave other numbers in a server that had built models before.
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    x = rng.normal(size=(B, 2 * L, F)).astype(np.float32)
    c1, c2 = x[:, :L], x[:, L:]
    fw, bw = bi.forward_layer, bi.backward_layer

    y1 = np.array(model(c1, training=False))
    f1, b1 = _states(fw), _states(bw)
    y2 = np.array(model(c2, training=False))
    f2, b2 = _states(fw), _states(bw)

    def plain(weights):
        """A stateless LSTM with one direction's weights: (outputs per step, [h, c]) from h0, c0."""
        lstm = keras.layers.LSTM(UNITS, return_sequences=True, return_state=True)
        lstm.build((B, None, F))
        lstm.set_weights(weights)

        def run(xs, init):
            seq, h, c = lstm(xs, initial_state=[np.asarray(s, np.float32) for s in init])
            return np.array(seq), [np.array(h), np.array(c)]
        return run

    zeros = [np.zeros((B, UNITS), np.float32)] * 2
    pf, pb = plain(fw.get_weights()), plain(bw.get_weights())
    U = UNITS
    yf1, yb1, yf2, yb2 = y1[:, :U], y1[:, U:], y2[:, :U], y2[:, U:]

    # Forward: chunk 1 from zeros, chunk 2 from the state at step L, or from zeros.
    sf1, stf1 = pf(c1, zeros)
    sf2c, _ = pf(c2, stf1)
    sf2z, _ = pf(c2, zeros)
    sfw, _ = pf(x, zeros)  # one forward pass over steps 1..2L
    # Backward: chunk 1 read from step L down to 1 (reversed by hand), from zeros.
    sb1, stb1 = pb(c1[:, ::-1], zeros)  # sb1[:, j] is the state at step L - j; stb1 at step 1
    sb2c, _ = pb(c2[:, ::-1], stb1)     # chunk 2 from 2L down to L+1, from step 1's state
    sb2z, _ = pb(c2[:, ::-1], zeros)
    sbw, _ = pb(x[:, ::-1], zeros)      # the whole sequence backwards: sbw[:, j] at step 2L - j

    out = {"keras": keras.__version__, "stateful": stateful, "batch_size": B, "steps": L,
           "units": U, "state_names": {"forward": [v.path for v in fw.states or []],
                                       "backward": [v.path for v in bw.states or []]}}
    out["forward"] = {
        "chunk1_fresh": _max([yf1], [sf1[:, -1]]),
        # (a) the stored state after chunk 1 is the state at step L ...
        "stored_vs_step_L": None if f1 is None else _max(f1, stf1),
        # ... and chunk 2 starts from it.
        "chunk2_from_stored": None if f1 is None else _max([yf2], [pf(c2, f1)[0][:, -1]]),
        "chunk2_from_step_L": _max([yf2], [sf2c[:, -1]]),
        "chunk2_from_zeros": _max([yf2], [sf2z[:, -1]]),
        "chunk2_vs_whole": _max([yf2], [sfw[:, -1]]),  # one pass over 1..2L ends at step 2L
    }
    out["backward"] = {
        "chunk1_fresh": _max([yb1], [sb1[:, -1]]),
        # (b) the stored state after chunk 1 is the state at step 1 (read last) ...
        "stored_vs_step_1": None if b1 is None else _max(b1, stb1),
        # ... not the state at step L (the end of the chunk, read first).
        "stored_h_vs_step_L": None if b1 is None else _max([b1[0]], [sb1[:, 0]]),
        # Chunk 2's backward output (the state at step L+1), reproduced from each start:
        "chunk2_from_stored": None if b1 is None else _max([yb2], [pb(c2[:, ::-1], b1)[0][:, -1]]),
        "chunk2_from_step_1": _max([yb2], [sb2c[:, -1]]),
        "chunk2_from_zeros": _max([yb2], [sb2z[:, -1]]),
        # The whole sequence read backwards: its state at step L+1 (fresh at 2L) and at step 1.
        "chunk2_vs_whole": _max([yb2], [sbw[:, L - 1]]),
        "chunk1_vs_whole": _max([yb1], [sbw[:, -1]]),
        "state_size": float(np.abs(yb2).max()),
    }
    # (c) resets: Keras 3.15 models have no reset_states(); the Bidirectional layer has both
    # reset_state() and reset_states(); each direction's LSTM has reset_state().
    methods = {name: callable(getattr(obj, m, None)) for name, obj, m in (
        ("model.reset_states", model, "reset_states"), ("model.reset_state", model, "reset_state"),
        ("layer.reset_states", bi, "reset_states"), ("layer.reset_state", bi, "reset_state"),
        ("forward_layer.reset_state", fw, "reset_state"),
        ("backward_layer.reset_state", bw, "reset_state"))}
    reset = {"methods": methods, "before": {"forward": _largest(f2), "backward": _largest(b2)}}
    if stateful:
        for how in ("forward_layer.reset_state", "layer.reset_state", "layer.reset_states"):
            model(c1, training=False)  # move both directions' states away from zero again
            was = _states(bw)
            obj, m = how.rsplit(".", 1)
            getattr({"layer": bi, "forward_layer": fw}[obj], m)()
            reset[how] = {"forward": _largest(_states(fw)), "backward": _largest(_states(bw)),
                          "backward_moved": _max(was, _states(bw))}
    out["reset"] = reset
    return out


def demo() -> dict:
    return {"stateful": measure(True), "stateless": measure(False)}


if __name__ == "__main__":
    import json
    print(json.dumps(demo(), indent=1))
