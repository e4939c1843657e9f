"""Inference with another batch size (keras #2064, #10231, #2322, #5714), measured on a run.

A stateful layer's state is a variable of shape (B, units), made when the model is built, so
the trained model only takes batches of exactly B. To stream one sequence, copy the trained
weights into a batch-1 stateful model (the weights have no batch axis) and feed it one step at
a time; its state is that one stream's state.

Everything here uses the real Keras layers (engine.build_model) and the run's final weights
(RunResult.weights: model.get_weights() after the last trained batch, the weights a user
would save and copy). The replay_* weights in a trace are those before a recorded chunk, for
the carry check; they are not the trained model.

Measured (Keras 3.15, TensorFlow):
- `predict(x)` on the trained batch-B model fails even with exactly B samples: predict's
  default batch_size is 32, and a stateful layer refuses any batch but B (ValueError "the
  batch size of the input sequences must be the same as the batch size of the initial
  state"). A single sample fails the same way. `predict(x, batch_size=B)` works.
- `predict`, `predict_on_batch` and `evaluate` run the layer, so they move its stored state.
"""
from __future__ import annotations

import re

import numpy as np

from models import cells
from models.config import RunConfig

# The batch-1 one-step copy and the batch-B model fed the same stream in slot 0 compute the same
# float32 equations, but matrix products over a different batch (and the whole chunk at once
# vs one step per call) may sum in another order: rounding differences of a few float32 ulps
# (~1e-7 relative) that the recurrence carries along. 1e-5 bounds that over the sequences the
# app streams; a wrong weight or a lost state differs by orders of magnitude more.
STREAM_TOLERANCE = 1e-5


def _shape_of(weights) -> tuple[int, int]:
    """(features, outputs) from the weights: kernel (F, G*U) first, Dense kernel (U, n_out)
    and bias last (stacked layers sit between)."""
    return int(np.shape(weights[0])[0]), int(np.shape(weights[-2])[1])


def build(cfg: RunConfig, weights, kind: str, batch_size: int, sample_len: int,
          stateful: bool = True):
    """A model of the run's cell with the run's weights (stateful unless told):
    (model, recurrent layer)."""
    from models.engine import build_model
    F, n_out = _shape_of(weights)
    c = cfg.replace(batch_size=batch_size, layout="chunks", length=sample_len, stateful=stateful)
    model, layer, _, _ = build_model(c, F, n_out, kind)
    model.set_weights([np.asarray(w, np.float32) for w in weights])
    return model, layer


def per_call(cfg: RunConfig) -> int:
    """Steps fed to the batch-1 copy per call: one, except for a Bidirectional layer, whose
    backward direction reads a whole sample from its last step to its first, so it can only be
    streamed a whole sample (cfg.sample_len steps) per call, as it was trained."""
    return cfg.sample_len if cfg.bidirectional else 1


def state_keys(cfg: RunConfig) -> tuple[str, ...]:
    """The state tensors streamed, in the order the model's recurrent layers hold them
    (engine.rnn_layers): per layer, the cell's (h, c for an LSTM), then, for a Bidirectional
    layer, the backward direction's (h_bw, c_bw); layer N > 1's suffixed _lN (h_l2, c_bw_l2),
    as the trace names them (models/bidir.py). One layer: (h, c) or (h, c, h_bw, c_bw)."""
    from models import bidir
    names = cells.state_names(cfg.cell)
    dirs = bidir.DIRECTIONS[:2 if cfg.bidirectional else 1]
    return tuple(bidir.key(n, d, L) for L in range(1, cfg.layers + 1) for d in dirs
                 for n in names)


def _states(model) -> list[np.ndarray]:
    """The stored state of every recurrent layer (forward before backward), empty for a
    stateless model: it stores none."""
    from models.engine import rnn_layers
    return [np.array(v.numpy()) for la in rnn_layers(model) if la.stateful for v in la.states]


def _reset(model) -> None:
    from models.engine import rnn_layers
    for la in rnn_layers(model):  # both directions of a Bidirectional layer
        if la.stateful:
            la.reset_state()


def stream_batch1(cfg: RunConfig, weights, kind: str, seqs, model=None, n: int | None = None) -> dict:
    """Feed a sequence (T, F), or several (N, T, F), to a batch-1 stateful copy, per_call(cfg)
    steps per call, each from zeros (a reset between sequences). Returns per call the answer
    (calls, n_out), every state tensor (calls, U) with a leading N axis if several were fed,
    and "steps": the last step each call read. `n` overrides per_call(cfg) (to measure what
    another number of steps per call gives)."""
    import tensorflow as tf
    n = n or per_call(cfg)
    model, _ = model or build(cfg, weights, kind, 1, n)
    # One compiled step: eager Keras calls cost tens of ms each on a busy server. The state
    # variables update inside it exactly as in an eager call.
    step = tf.function(lambda x: model(x, training=False)[0])
    seqs = np.asarray(seqs, np.float32)
    many = seqs.ndim == 3
    names = state_keys(cfg)
    runs = []
    for seq in (seqs if many else seqs[None]):
        _reset(model)
        out, states = [], {k: [] for k in names}
        for t in range(0, (len(seq) // n) * n, n):
            out.append(np.asarray(step(seq[None, t:t + n]))[0])
            for k, s in zip(names, _states(model)):
                states[k].append(s[0])
        runs.append({"output": np.array(out), **{k: np.array(v) for k, v in states.items()}})
    steps = np.arange(n - 1, (seqs.shape[-2] // n) * n, n)
    if not many:
        return {**runs[0], "steps": steps}
    return {**{k: np.stack([r[k] for r in runs]) for k in runs[0]}, "steps": steps}


def stream_slot0(cfg: RunConfig, weights, kind: str, seq: np.ndarray, others: np.ndarray) -> dict:
    """The batch-B model with the run's weights, fed `seq` in slot 0 and `others` (B-1, T, F)
    in the other slots, one sample of cfg.sample_len steps per call, from zeros. Returns, after
    each sample, slot 0's answer and states, and the steps at which they were read."""
    B, L = cfg.batch_size, cfg.sample_len
    model, _ = build(cfg, weights, kind, B, L)
    _reset(model)
    x = np.concatenate([seq[None], others[:B - 1]]).astype(np.float32)
    out, states, steps = [], {k: [] for k in state_keys(cfg)}, []
    for a in range(0, (x.shape[1] // L) * L, L):
        p, *_ = model(x[:, a:a + L], training=False)
        out.append(np.asarray(p)[0])
        for k, s in zip(states, _states(model)):
            states[k].append(s[0])
        steps.append(a + L - 1)
    return {"output": np.array(out), "steps": np.array(steps),
            **{k: np.array(v) for k, v in states.items()}}


def compare_streams(one: dict, slot0: dict, names: tuple[str, ...]) -> float:
    """Largest |difference| between the batch-1 copy and slot 0, at the steps slot 0 was read
    (answers and every state tensor)."""
    at = np.searchsorted(one["steps"], slot0["steps"])
    if not np.array_equal(np.asarray(one["steps"])[at], slot0["steps"]):
        raise ValueError("the copy was not read at the steps slot 0 was")
    return float(max(np.abs(one[k][at] - slot0[k]).max() for k in ("output", *names)))


def _error(fn) -> str | None:
    try:
        fn()
        return None
    except Exception as e:  # noqa: BLE001  (what Keras raises is the measurement)
        words = re.sub(r"\x1b\[[0-9;]*m", "", " ".join(str(e).split()))  # no terminal colours
        return f"{type(e).__name__}: {words}"


def predict_batches(cfg: RunConfig, weights, kind: str, x: np.ndarray) -> dict:
    """What Keras does when the trained batch-B model is asked to predict: x holds >= B
    samples of cfg.sample_len steps. Errors are recorded as Keras words them."""
    import keras
    B = cfg.batch_size
    model, _ = build(cfg, weights, kind, B, cfg.sample_len, stateful=cfg.stateful)
    xb = np.asarray(x[:B], np.float32)
    out = {"batch_size": B,
           "default": _error(lambda: model.predict(xb, verbose=0)),
           "one_sample": _error(lambda: model.predict(xb[:1], batch_size=1, verbose=0))}
    rows = []
    out["with_batch_size"] = _error(lambda: rows.append(len(model.predict(xb, batch_size=B,
                                                                          verbose=0)[0])))
    out["rows"] = rows[0] if rows else None
    # predict, predict_on_batch and evaluate, each from the same stored state: did it move?
    _reset(model)
    model(xb, training=False)  # some state to start from
    moved = {}
    head = keras.Model(model.inputs, model.outputs[0])  # the same layers: one output to score
    head.compile(loss={"binary": "binary_crossentropy", "classes": "sparse_categorical_crossentropy",
                       "regression": "mse"}[kind])
    y = np.zeros((B, 1), np.float32) if kind != "classes" else np.zeros((B,), np.int32)
    calls = {"predict": lambda: model.predict(xb, batch_size=B, verbose=0),
             "predict_on_batch": lambda: model.predict_on_batch(xb),
             "evaluate": lambda: head.evaluate(xb, y, batch_size=B, verbose=0)}
    for name, call in calls.items():
        before = _states(model)
        call()
        after = _states(model)
        moved[name] = float(max((np.abs(a - b).max() for a, b in zip(after, before)), default=0.0))
    out["moved"] = moved
    return out


def reset_slot(layer, slot: int) -> None:
    """Zero one slot's state (every state tensor's row `slot`), leaving the others as they are.
    Keras has no per-slot reset (reset_state takes no arguments): assign that row."""
    for v in layer.states:
        keep = (np.arange(v.shape[0]) != slot)[:, None]
        v.assign(np.where(keep, np.asarray(v.numpy()), np.float32(0)))


def measure(cfg: RunConfig, weights, x_val: np.ndarray, kind: str, n_streams: int = 0,
            y_val: np.ndarray | None = None) -> dict:
    """Everything the inference claims and panel read, from a run's config and final weights
    and its validation sequences x_val (N, T, F). With n_streams, also streams that many
    validation sequences through the batch-1 copy and scores its answer after each step."""
    B, L = cfg.batch_size, cfg.sample_len
    names = state_keys(cfg)
    seq, others = x_val[0], x_val[1:B]
    if len(others) < B - 1:  # fewer validation sequences than slots: repeat them
        others = np.resize(x_val, (B - 1,) + x_val.shape[1:])
    copy = build(cfg, weights, kind, 1, per_call(cfg))
    one = stream_batch1(cfg, weights, kind, seq, model=copy)
    slot0 = stream_slot0(cfg, weights, kind, seq, others)
    T = (x_val.shape[1] // L) * L
    samples = np.resize(x_val[:, :L], (B, L, x_val.shape[2]))
    m = {"cell": cfg.cell, "batch_size": B, "sample_len": L, "steps": T, "units": cfg.units,
         "per_call": per_call(cfg), "bidirectional": cfg.bidirectional,
         "stream": one, "slot0": slot0, "max_difference": compare_streams(one, slot0, names),
         "tolerance": STREAM_TOLERANCE, "predict": predict_batches(cfg, weights, kind, samples),
         "weights": "the run's final weights"}
    if n_streams and y_val is not None and kind == "binary":
        n = min(n_streams, len(x_val))
        # scored where the model was trained to answer: the last step of each sample
        streamed = stream_batch1(cfg, weights, kind, x_val[:n], model=copy)
        ends = streamed["steps"] % L == L - 1
        p = streamed["output"][:, ends, 0]
        at = streamed["steps"][ends]
        m["stream_accuracy"] = float(((p > 0.5) == (y_val[:n, at] > 0.5)).mean())
        m["streams"] = n
    return m


def for_run(cfg: RunConfig, weights, series=None, n_streams: int = 20) -> dict:
    """measure() on a finished run: its config, final weights and validation sequences."""
    from models.tasks import make_task
    d = make_task(cfg, series)
    return measure(cfg, weights, d.x_val, d.kind, n_streams=n_streams, y_val=d.y_val)
