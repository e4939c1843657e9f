"""The partial-batch trap, measured in plain Keras (no engine, no streamlit).

A stateful LSTM declared with keras.Input(batch_shape=(B, L, F)) is fed by
model.fit(x, y, batch_size=B, shuffle=False) with a sample count that is not a multiple of B,
so fit's last batch is partial. We read the layer's state variables (lstm.states) before and
after that batch and compare them with the same model fed the leftover row copied into every
slot:

- leftover == 1: fit trains without a word; every one of the B slots' states is advanced with
  that one row (each from its own previous state), i.e. the row is broadcast over all slots.
- leftover >= 2: fit raises (TensorFlow's "Incompatible shapes" error); we keep its first line.
"""
from __future__ import annotations

import numpy as np

import models  # noqa: F401  (pins KERAS_BACKEND before keras is imported)

B, L, F, UNITS = 4, 3, 1, 3  # small: the whole demo trains a few batches


def _model(seed: int):
    import keras
    keras.utils.set_random_seed(seed)
    inp = keras.Input(batch_shape=(B, L, F))
    lstm = keras.layers.LSTM(UNITS, stateful=True)
    out = keras.layers.Dense(1)(lstm(inp))
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    return model, lstm


def partial_batch(leftover: int, full_batches: int = 2, seed: int = 0) -> dict:
    """fit on full_batches * B + leftover samples; what happened to the states and the run.

    Returns: samples, batch_size, leftover, trained (bool), error (first line or None),
    slots_fed_leftover (how many slots' new state equals "old state + the leftover row"),
    max_broadcast_error, distinct_rows_before / distinct_rows_after (how many different rows
    h held right before / after the partial batch), slots_changed (slots whose h moved in it).
    """
    import keras
    if not 1 <= leftover < B:
        raise ValueError(f"leftover must be between 1 and {B - 1}")
    rng = np.random.default_rng(seed)
    n = full_batches * B + leftover
    x = rng.normal(size=(n, L, F)).astype(np.float32)
    y = rng.normal(size=(n, 1)).astype(np.float32)
    model, lstm = _model(seed)
    seen: dict = {}

    class Spy(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == full_batches:  # the partial batch: what the layer holds right before it
                seen["weights"] = [w.copy() for w in model.get_weights()]
                seen["states"] = [np.array(s.numpy()) for s in lstm.states]

    out = {"samples": n, "batch_size": B, "leftover": leftover, "trained": False, "error": None,
           "slots_fed_leftover": 0, "max_broadcast_error": None, "distinct_rows_before": None,
           "distinct_rows_after": None, "slots_changed": 0}
    try:
        model.fit(x, y, batch_size=B, shuffle=False, epochs=1, verbose=0, callbacks=[Spy()])
    except Exception as e:  # noqa: BLE001  (TensorFlow raises InvalidArgumentError and kin)
        msg = str(e).strip().splitlines()
        out["error"] = next((m for m in msg if "Incompatible shapes" in m), msg[0] if msg else type(e).__name__)
        return out
    out["trained"] = True
    after = [np.array(s.numpy()) for s in lstm.states]
    before = seen["states"]
    # The same layer, the pre-step weights and states, the leftover row copied into every slot.
    model.set_weights(seen["weights"])
    for v, s in zip(lstm.states, before):
        v.assign(s)
    model(np.repeat(x[-leftover:][:1], B, axis=0), training=False)
    expect = [np.array(s.numpy()) for s in lstm.states]
    err = np.maximum(np.abs(after[0] - expect[0]).max(axis=1), np.abs(after[1] - expect[1]).max(axis=1))
    out["max_broadcast_error"] = float(err.max())
    out["slots_fed_leftover"] = int((err <= 1e-5).sum())
    out["distinct_rows_before"] = int(len(np.unique(before[0].round(6), axis=0)))
    out["distinct_rows_after"] = int(len(np.unique(after[0].round(6), axis=0)))
    out["slots_changed"] = int((np.abs(after[0] - before[0]).max(axis=1) > 1e-7).sum())
    return out


def demo() -> dict:
    """Both traps: one leftover sample (silent broadcast) and two (an error)."""
    return {"one": partial_batch(1), "two": partial_batch(2)}


if __name__ == "__main__":
    import json
    print(json.dumps(demo(), indent=1))
