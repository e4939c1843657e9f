"""The training engine: a real Keras 3 LSTM -> Dense, trained batch by batch, with the state of
every slot read from the layer before and after every batch.

Speed comes from running K batches per call inside one XLA-compiled tf.function (the Keras
layer, loss and optimizer, called exactly as `fit`'s train step calls them), instead of one
Python round trip per batch. Chunks have a fixed length K (a padded tail is skipped with
tf.cond) so each engine compiles once; a run's first call is cut after FIRST_PIECE batches
(the same loop, its other steps skipped) so its first states come sooner. Cancellation is checked between chunks (each is sized
to take well under a second).

What is recorded and how it is read:
- stateful: h0/c0 are the layer's state variables (`lstm.states`) read right before the train
  step, hT/cT the same variables right after it. A reset assigns zeros to those variables,
  as `lstm.reset_state()` does.
- stateless: the layer is called with an explicit zero initial state and `return_state=True`;
  h0/c0 are what was passed in, hT/cT what the layer returned.
- replay data (trace.REPLAY_KEYS): for the first batch of up to trace.REPLAY_BATCHES recorded
  chunks, spread over the run, that batch's inputs (first trace.REPLAY_SLOTS slots) and the
  LSTM weights read right before the chunk is called. The first step of a chunk uses exactly
  those weights (the optimizer updates them after it), so the carry check can recompute hT/cT
  from the recorded h0/c0 and show the layer used them. The Dense layer's kernel and bias are
  kept with them, so readout_h0 of that batch can be recomputed from h0 as well.
- readout_h0 (every recorded batch): the model's Dense layer applied to h0 inside the step,
  before the optimizer update; target: the slot's label or value.
- gradients (Engine(gradients=True), the default): from the train step's own tape, |dL/dh0|
  and |dL/dc0| per slot and |dL/dx_t| per timestep (trace.EXTRA_KEYS).

Validation runs the same layout and reset policy on the held-out sequences from a zero state,
forward only, and puts the training state back afterwards (Keras's own `evaluate` would
overwrite it), so validation never contaminates the training state.
"""
from __future__ import annotations

import math
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import models  # noqa: F401  (pins KERAS_BACKEND before keras is imported)
from models import bidir, cells, layouts, limits, stacked, trace as trace_mod
from models.config import ConfigError, RunConfig
from models.tasks import TaskData, make_task

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

RECENT_BATCHES = 64  # newest batches kept for the live view (Engine.recent_trace)
# Batches in a run's first compiled call (0: a whole chunk). Its states are the page's first
# frame, so it comes after 8 batches instead of a whole chunk (K, up to 256). The same compiled
# loop runs it (its other steps inactive, as in an epoch's padded tail): nothing is compiled
# again, and every step, record and weight is the same as without it (tests/test_engine.py).
FIRST_PIECE = 8
AUTOGRAPH = False  # for the compiled loops (Net); True only to measure it (models/bench.py)
# GRU/SimpleRNN with one-step samples are built with unroll=True (cells.unroll); False only to
# measure the build without it (models/bench.py). Read by signature(), so nets never mix.
UNROLL = True
_BUILD_LOCK = threading.Lock()  # Keras layer naming/building is not thread-safe

# TensorFlow drops and retakes the GIL constantly while tracing and compiling. Next to a busy
# Python thread (a Streamlit script building figures) each retake waits out the whole switch
# interval (5 ms by default): an XLA compile measured 17 s instead of 3 s. A shorter interval
# restores it (3.7 s measured). Process-wide, set once when the engine is first imported.
sys.setswitchinterval(min(sys.getswitchinterval(), 0.0002))


@dataclass
class Event:
    kind: str            # batches | reset | epoch | done | cancelled
    epoch: int
    done: int            # batches trained so far (all epochs)
    total: int           # batches in the whole run
    data: dict = field(default_factory=dict)


@dataclass
class RunResult:
    trace: trace_mod.Trace
    epochs: list[dict]
    weights: list[np.ndarray]
    notes: list[str]
    seconds: float
    cancelled: bool
    metric: str


def build_model(cfg: RunConfig, n_features: int, n_out: int, kind: str,
                unroll: bool | None = None):
    """The Keras model: [Dense output, *final states of each layer] (h, c for LSTM; h for GRU,
    SimpleRNN; layer 1's first; a Bidirectional layer's forward states, then its backward
    ones). Returns the first recurrent layer (a keras.layers.Bidirectional with the setting);
    `rnn_layers(model)` gives every recurrent layer holding a state, stacked in order
    (models/stacked.py), forward before backward (models/bidir.py). Stateful layers get their
    batch size from Input(batch_shape=...). The recurrent layers are unrolled as
    cells.unroll says (GRU, SimpleRNN with one-step samples), unless `unroll` says otherwise."""
    B, L = cfg.batch_size, cfg.sample_len
    if unroll is None:
        unroll = cells.unroll(cfg.cell, L)
    s = cfg.seed
    n_states = len(cells.state_names(cfg.cell)) * (2 if cfg.bidirectional else 1)
    with _BUILD_LOCK:
        inp = keras.Input(batch_shape=(B, L, n_features))
        out, states, rnns = inp, [], []
        for layer in range(1, cfg.layers + 1):  # layer N < top hands its whole sequence on
            def one(direction):
                return cells.layer(cfg.cell, cfg.units, bidir.seeds(s, layer, direction)[0],
                                   stateful=cfg.stateful, return_state=True,
                                   return_sequences=layer < cfg.layers,
                                   go_backwards=direction == "backward",
                                   unroll=unroll)
            rnn = bidir.wrap(one("forward"), one("backward")) if cfg.bidirectional else one("forward")
            if cfg.stateful:
                out, *st = rnn(out)
            else:
                zeros = [keras.ops.zeros((B, cfg.units))] * n_states
                out, *st = rnn(out, initial_state=zeros)
            states += st
            rnns.append(rnn)
        lstm = rnns[0]
        act = {"binary": "sigmoid", "classes": "softmax", "regression": None}[kind]
        dense = keras.layers.Dense(n_out, activation=act,
                                   kernel_initializer=keras.initializers.GlorotUniform(seed=s + 2))
        model = keras.Model(inp, [dense(out), *states])
        loss = {"binary": keras.losses.BinaryCrossentropy(),
                "classes": keras.losses.SparseCategoricalCrossentropy(),
                "regression": keras.losses.MeanSquaredError()}[kind]
        opt = keras.optimizers.Adam(cfg.lr)
        opt.build(model.trainable_variables)
    return model, lstm, loss, opt


def rnn_layers(model) -> list:
    """The model's recurrent layers, layer 1 first; a Bidirectional layer's forward_layer,
    then its backward_layer (each holds its own states)."""
    out = []
    for la in model.layers:
        if isinstance(la, keras.layers.Bidirectional):
            out += [la.forward_layer, la.backward_layer]
        elif isinstance(la, keras.layers.RNN):
            out.append(la)
    return out


def stack_layers(model) -> list:
    """The recurrent layers as the model calls them (a Bidirectional layer as one)."""
    return [la for la in model.layers
            if isinstance(la, (keras.layers.RNN, keras.layers.Bidirectional))]


def _metric(kind: str, y, p):
    """Per-sample metric: correct (1/0) for classification, |error| for regression."""
    if kind == "binary":
        return tf.cast(tf.equal(tf.cast(p[:, 0] > 0.5, tf.float32), tf.cast(y, tf.float32)), tf.float32)
    if kind == "classes":
        return tf.cast(tf.equal(tf.argmax(p, -1, output_type=tf.int32), tf.cast(y, tf.int32)), tf.float32)
    return tf.abs(p[:, 0] - tf.cast(y, tf.float32))


def _target(kind: str, y):
    return tf.cast(y, tf.float32)[:, None] if kind in ("binary", "regression") else y


def chunk_batches(B: int, L: int) -> int:
    """Batches per compiled call: enough to amortise the call, few enough to cancel fast."""
    return int(max(4, min(256, 32768 // (B * L))))


def chunk_bounds(n_batches: int, K: int, piece: int = 0) -> list[tuple[int, int]]:
    """(start, stop) of each compiled call over an epoch of n_batches: chunks of K batches,
    the last one shorter; with 0 < piece, the first chunk is cut after `piece` batches
    ((0, piece), (piece, K), (K, 2K), ...), so its results come sooner. Later chunks start
    where they would without the cut."""
    bounds = [(a, min(a + K, n_batches)) for a in range(0, n_batches, K)]
    if bounds and 0 < piece < bounds[0][1]:
        bounds[:1] = [(0, piece), (piece, bounds[0][1])]
    return bounds


class Net:
    """A built Keras model plus its two compiled loops, for one shape signature.

    XLA compilation costs seconds, so nets are pooled by signature and reused: `reset_to`
    gives a pooled net exactly the weights, optimizer state and zero states a fresh build
    with that seed would have (tests check pooled == fresh).
    """

    def __init__(self, sig: tuple):
        self.sig, self.warm = sig, False
        B, L, F, U, n_out, kind, stateful, rec = sig[:8]
        self.cell = sig[8]  # LSTM | GRU | SimpleRNN (models/cells.py)
        self.layers = sig[9]  # stacked recurrent layers (models/stacked.py)
        self.bidirectional = sig[10]  # forward and backward layers (models/bidir.py)
        self.unroll = sig[11]  # the recurrent layers built with unroll=True (cells.unroll)
        self.dirs = 2 if self.bidirectional else 1
        self.n_states = len(cells.state_names(self.cell))  # 2 for LSTM (h, c), else 1 (h)
        # state tensors of all layers, layer 1's first, forward before backward
        self.n_all = self.n_states * self.layers * self.dirs
        # rec: 0 nothing recorded; 1 states and readout; 2 also the gradients (signature())
        self.record, self.gradients = int(rec) >= 1, int(rec) >= 2
        self.B, self.L, self.U, self.n_out, self.kind, self.stateful = B, L, U, n_out, kind, stateful
        self.K = chunk_batches(B, L)
        cfg = RunConfig(batch_size=B, length=L, units=U, stateful=stateful, layout="windows",
                        seq_len=max(L, 2), cell=self.cell, layers=self.layers,
                        bidirectional=self.bidirectional)
        self.model, self.lstm, self.loss_fn, self.opt = build_model(cfg, F, n_out, kind,
                                                                    unroll=self.unroll)
        self.rnns = rnn_layers(self.model)  # every layer holding a state (both directions)
        self.stack = stack_layers(self.model)  # as the model calls them
        self.dense = next(la for la in self.model.layers if isinstance(la, keras.layers.Dense))
        self._bias = [w.copy() for w in self.model.get_weights()]  # seed-independent parts
        # The loops are written as tf.while_loop/tf.cond, so autograph has nothing to convert:
        # with it on, tracing a new shape spent seconds transforming the source of every
        # function called (Keras's included). Results are bit-identical (tests/test_engine.py).
        self.train_chunk = tf.function(self._train_chunk_py, jit_compile=True,
                                       reduce_retracing=True, autograph=AUTOGRAPH)
        self.val_chunk = tf.function(self._val_chunk_py, jit_compile=True,
                                     reduce_retracing=True, autograph=AUTOGRAPH)
        for f in (self.train_chunk, self.val_chunk):
            # TF counts traces per Python code object, so every new Net's one trace counted
            # as "retracing" of the same function (a false warning in server logs once five
            # nets were built). Each Net traces each loop once per input signature.
            f._omit_frequent_tracing_warning = True

    def reset_to(self, seed: int, lr: float) -> None:
        """Weights as a fresh build with this seed; optimizer and states zeroed."""
        w = list(self._bias)
        # kernel, recurrent kernel, bias per layer (forward, then backward), then Dense
        for i, (layer, direction) in enumerate(self.directions()):
            ks, rs = bidir.seeds(seed, layer, direction)
            w[3 * i] = np.asarray(keras.initializers.GlorotUniform(seed=ks)(w[3 * i].shape))
            w[3 * i + 1] = np.asarray(keras.initializers.Orthogonal(seed=rs)(w[3 * i + 1].shape))
        d = 3 * len(self.rnns)
        w[d] = np.asarray(keras.initializers.GlorotUniform(seed=seed + 2)(w[d].shape))
        self.model.set_weights(w)
        for v in self.opt.variables:
            v.assign(np.zeros(v.shape, v.dtype))
        self.opt.learning_rate.assign(lr)
        if self.stateful:
            for rnn in self.rnns:
                rnn.reset_state()

    def directions(self) -> list[tuple[int, str]]:
        """(layer, direction) of each of self.rnns, in order."""
        return [(layer, d) for layer in range(1, self.layers + 1)
                for d in bidir.DIRECTIONS[:self.dirs]]

    def state_vars(self) -> list:
        """Every layer's state variables, layer 1's first (stateful nets only)."""
        return [v for rnn in self.rnns for v in rnn.states]

    # ---- the compiled loops -------------------------------------------------------------
    def _zero_state(self) -> tuple:
        return tuple(tf.zeros((self.B, self.U)) for _ in range(self.n_all))

    def read_state(self) -> tuple:
        """Every state tensor the cell has, in Keras's order: (h, c) for LSTM, (h,) else; for
        stacked layers, layer 1's then layer 2's..."""
        if self.stateful:
            return tuple(tf.identity(v) for v in self.state_vars())
        return self._zero_state()

    def _reset_if(self, flag):
        """flag (B,): zero the rows of the slots that start from zeros, leave the others
        exactly as they are (a per-slot reset is that row's assignment)."""
        if self.stateful:
            for v in self.state_vars():
                v.assign(tf.where(flag[:, None], tf.zeros_like(v), v))

    def _readout(self, h):
        """What the model would answer from state h: its own Dense layer (the weights of this
        step, read before the optimizer updates them) applied to h, as the model applies it to
        the LSTM's last h. From h0 that is the answer the carried state alone gives."""
        return self.dense(h)

    def _step(self, x, y):
        """One train step, as Model.fit's train_step does it, plus the states around it.
        Recording also returns the readout from h0 and, with gradients, from the same tape:
        per slot |dL/dh0|, |dL/dc0| (the gradient that would flow into the previous batch: the
        carried state enters as a read of the state variables, a constant for the tape) and per
        timestep |dL/dx_t| over the whole batch (how far back inside the batch it reaches)."""
        n = self.n_all
        s0 = self.read_state()
        extra = []
        if self.record:  # the Dense layer reads the last layer's h (both directions' side by side)
            top = n - self.n_states * self.dirs
            # Bidirectional: this op in the step's XLA program moves fit's float32 rounding by
            # a few ulps (tests/test_bidir.py; without recording the two are bit-identical)
            extra.append(self._readout(tf.concat(s0[top::self.n_states], axis=-1)))
        if not self.gradients:
            with tf.GradientTape() as tape:
                p, *sT = self.model(x, training=True)
                loss = self.loss_fn(_target(self.kind, y), p)
            grads = tape.gradient(loss, self.model.trainable_variables)
        else:
            x = tf.convert_to_tensor(x)
            with tf.GradientTape() as tape:
                tape.watch(x)
                if self.stateful:  # the layer reads its state variables: watch those
                    w0 = [v.value for v in self.state_vars()]
                    tape.watch(w0)
                    p, *sT = self.model(x, training=True)
                else:  # the model's zero initial state is a constant inside it: pass it in
                    w0 = list(self._zero_state())
                    tape.watch(w0)
                    out, sT, ns = x, [], self.n_states * self.dirs
                    for i, rnn in enumerate(self.stack):
                        out, *st = rnn(out, initial_state=w0[i * ns:(i + 1) * ns], training=True)
                        sT += st
                    p = self.dense(out, training=True)
                loss = self.loss_fn(_target(self.kind, y), p)
            g = tape.gradient(loss, self.model.trainable_variables + [x] + w0)
            grads, gx, gs0 = g[:-n - 1], g[-n - 1], g[-n:]
            extra += [tf.norm(gs, axis=-1) for gs in gs0]  # |dL/dh0| (and |dL/dc0|)
            extra.append(tf.sqrt(tf.reduce_sum(tf.square(gx), axis=[0, 2])))
        self.opt.apply(grads, self.model.trainable_variables)
        sT = self.read_state() if self.stateful else tuple(sT)
        return (*s0, *sT, *extra, loss, tf.reduce_mean(_metric(self.kind, y, p)))

    def _outputs(self) -> list:
        """Zeros shaped like what _step returns (an inactive batch writes these)."""
        B, U = self.B, self.U
        if not self.record:
            return [tf.constant(0.0), tf.constant(0.0)]
        out = [tf.zeros((B, U))] * (2 * self.n_all) + [tf.zeros((B, self.n_out))]
        if self.gradients:
            out += [tf.zeros((B,))] * self.n_all + [tf.zeros((self.L,))]
        return out + [tf.constant(0.0), tf.constant(0.0)]

    def _train_chunk_py(self, xs, ys, active, reset):
        K = self.K
        # Without recording only loss and metric leave the loop (the bench compares the two).
        blank = tuple(self._outputs())
        n_out = len(blank)
        arrays = tuple(tf.TensorArray(tf.float32, size=K) for _ in range(n_out))

        def body(k, arrays):
            def run():
                self._reset_if(reset[k])
                return tuple(self._step(xs[k], ys[k])[-n_out:])
            out = tf.cond(active[k], run, lambda: blank)
            return k + 1, tuple(a.write(k, o) for a, o in zip(arrays, out))
        _, arrays = tf.while_loop(lambda k, _: k < K, body, (tf.constant(0), arrays))
        return [a.stack() for a in arrays]

    def _val_chunk_py(self, xs, ys, w, reset):
        """Forward only over all validation batches; the training state is put back after."""
        saved = self.read_state()
        if self.stateful:
            for v in self.state_vars():
                v.assign(tf.zeros_like(v))

        def body(k, loss_sum, metric_sum):
            self._reset_if(reset[k])
            p = self.model(xs[k], training=False)[0]
            return (k + 1, loss_sum + tf.reduce_sum(_per_sample_loss(self.kind, ys[k], p) * w[k]),
                    metric_sum + tf.reduce_sum(_metric(self.kind, ys[k], p) * w[k]))
        n = tf.shape(xs)[0]
        _, loss_sum, metric_sum = tf.while_loop(lambda k, *_: k < n, body,
                                                (tf.constant(0), tf.constant(0.0), tf.constant(0.0)))
        if self.stateful:
            for v, s in zip(self.state_vars(), saved):
                v.assign(s)
        return loss_sum / tf.reduce_sum(w), metric_sum / tf.reduce_sum(w)


def _per_sample_loss(kind: str, y, p):
    if kind == "binary":
        return keras.losses.binary_crossentropy(_target(kind, y), p)
    if kind == "classes":
        return keras.losses.sparse_categorical_crossentropy(y, p)
    return keras.losses.mean_squared_error(_target(kind, y), p)


_POOL: dict[tuple, list[Net]] = {}
_POOL_LOCK = threading.Lock()
# Shapes the presets' prewarm compiled: never evicted by other shapes (release_net).
_PINNED: set[tuple] = set()


def signature(cfg: RunConfig, data: TaskData, record: bool = True,
              gradients: bool = True) -> tuple:
    """What a compiled net depends on: runs with equal signatures share one (pooled) net.
    Entry 7 is what the net records: 0 nothing, 1 states and readout, 2 also gradients; then
    the cell type, the number of stacked layers, the bidirectional setting and whether the
    layers are unrolled (cells.unroll: GRU, SimpleRNN with one-step samples; see UNROLL)."""
    return (cfg.batch_size, cfg.sample_len, data.x_train.shape[2], cfg.units, data.n_out,
            data.kind, cfg.stateful, (2 if gradients else 1) if record else 0, cfg.cell,
            cfg.layers, cfg.bidirectional, UNROLL and cells.unroll(cfg.cell, cfg.sample_len))


# Shapes the prewarm is compiling right now -> set when its net is in the pool.
_WARMING: dict[tuple, threading.Event] = {}


def acquire_net(sig: tuple, seed: int, lr: float,
                on_wait: Callable[[], None] = lambda: None, claim: bool = False) -> Net:
    """A pooled net of this shape, else a new (uncompiled) one. If the prewarm is compiling
    this very shape, wait for its net (`on_wait()` first): a second compile of it beside the
    first would take the same seconds and share the cores with it. `claim` (the prewarm): a
    new net is one this caller compiles for the pool, so later callers wait for it from now
    on, not only once it is built (see prewarm, which ends the claim)."""
    with _POOL_LOCK:
        idle = _POOL.get(sig)
        net = idle.pop() if idle else None
        warming = _WARMING.get(sig) if net is None else None
        claimed = claim and net is None and warming is None
        if claimed:
            _WARMING[sig] = threading.Event()
    if warming is not None:
        on_wait()
        warming.wait()
        with _POOL_LOCK:
            idle = _POOL.get(sig)
            net = idle.pop() if idle else None
    try:
        net = net or Net(sig)
        net.reset_to(seed, lr)
    except BaseException:
        if claimed:  # nobody may wait for a net that will never come
            with _POOL_LOCK:
                ev = _WARMING.pop(sig, None)
            if ev is not None:
                ev.set()
        raise
    return net


def release_net(net: Net) -> None:
    """Keep the net for the next run of its shape. The pool holds at most
    MAX_POOLED_NETS + MAX_EXTRA_NETS nets: when full, the least recently used net of a shape
    the presets' prewarm did not pin goes (a student's own shapes take turns in the extra
    places; the presets' nets stay); if every net is pinned, this one is dropped."""
    with _POOL_LOCK:
        nets = _POOL.pop(net.sig, [])  # re-inserted last: dict order is least recent first
        nets.append(net)
        _POOL[net.sig] = nets
        while sum(map(len, _POOL.values())) > limits.MAX_POOLED_NETS + limits.MAX_EXTRA_NETS:
            sig = next((s for s in _POOL if s not in _PINNED), net.sig)
            _POOL[sig].pop(0)
            if not _POOL[sig]:
                del _POOL[sig]


class Engine:
    """One run: data, arrangement, a pooled net, and the loop that drives it.

    Safe to use several in parallel threads (one engine per thread).
    """

    def __init__(self, cfg: RunConfig, series: np.ndarray | None = None, record: bool = True,
                 gradients: bool = True, on_wait: Callable[[], None] = lambda: None,
                 claim: bool = False):
        self.cfg = cfg.check()
        self.record = record
        self.gradients = bool(record and gradients)
        self.data: TaskData = make_task(cfg, series)
        d = self.data
        self.train = layouts.arrange(d.x_train, d.y_train, cfg)
        self.val = layouts.arrange(d.x_val, d.y_val, cfg.replace(shuffle="off"), pad=True)
        self.total = layouts.check_budget(self.train, cfg)
        # on_wait: this shape is being compiled (prewarm, warm_ahead): its net is waited for
        self.net = acquire_net(signature(cfg, d, record, gradients), cfg.seed, cfg.lr, on_wait,
                               claim)
        self.K = self.net.K
        self.model, self.lstm = self.net.model, self.net.lstm
        self.initial_weights = [w.copy() for w in self.model.get_weights()]
        self.parts: list[dict] = []
        # The newest trained batches, whatever thinning keeps: the live panel shows these, so a
        # long run's live view moves on with training (thinned records may skip epochs).
        self.recent: deque[dict] = deque()

    def close(self) -> None:
        """Give the net back to the pool (the engine must not be used afterwards)."""
        if self.net is not None:
            release_net(self.net)
            self.net = None

    # ---- driving it ----------------------------------------------------------------------
    def _epoch_arrays(self, epoch: int):
        s = self.train
        order = layouts.epoch_order(s, self.cfg, epoch)
        reset = layouts.slot_resets(s, order, self.cfg, first_epoch=epoch == 1)  # (n, B)
        return order, reset

    @property
    def compiled(self) -> bool:
        """Are this net's loops compiled already (a pooled net)? Else warm_up takes seconds."""
        return self.net.warm

    def _blank_chunk(self) -> tuple:
        """An all-inactive chunk: the train loop runs none of its steps, so nothing changes."""
        B, L, F, K = self.cfg.batch_size, self.cfg.sample_len, self.data.x_train.shape[2], self.K
        return (np.zeros((K, B, L, F), np.float32), np.zeros((K, B), self.data.y_train.dtype),
                np.zeros(K, bool), np.zeros((K, B), bool))  # reset: per slot

    def _val_args(self) -> tuple:
        v = self.val
        idx = np.maximum(v.order, 0)
        w = (v.order >= 0).astype(np.float32)
        reset = layouts.slot_resets(v, v.order, self.cfg, first_epoch=True)
        return v.x[idx], v.y[idx], w, reset

    def warm_up(self) -> None:
        """Compile both loops without training (an all-inactive chunk changes nothing).
        One after the other: compiling them side by side measured no faster on the 2 shared
        cores (`python -m models bench`, compile rows)."""
        self.net.train_chunk(*self._blank_chunk())
        self._validate()
        self.net.warm = True

    def _validate(self) -> tuple[float, float]:
        loss, metric = self.net.val_chunk(*self._val_args())
        return float(loss), float(metric)

    def run(self, on_event: Callable[[Event], None] | None = None,
            cancel: threading.Event | None = None, validate: bool = True) -> RunResult:
        cfg, s, K = self.cfg, self.train, self.K
        emit = on_event or (lambda e: None)
        cancel = cancel or threading.Event()
        keep, per = trace_mod.recorded_epochs(
            cfg.epochs, s.n_batches, max(1, min(limits.MAX_RECORDED_BATCHES,
                                                limits.MAX_RECORDED_SLOTS // cfg.batch_size)))
        parts, epochs, done, t_run = self.parts, [], 0, time.perf_counter()
        cancelled = False
        replay_at = self._replay_chunks(keep, per) if self.record else set()
        last_live_replay = -1.0
        for epoch in range(1, cfg.epochs + 1):
            t_ep = time.perf_counter()
            order, reset = self._epoch_arrays(epoch)
            losses, metrics = [], []
            # The run's first call trains FIRST_PIECE batches: its states are the first frame.
            for start, stop in chunk_bounds(s.n_batches, K, FIRST_PIECE if epoch == 1 else 0):
                if cancel.is_set():
                    cancelled = True
                    break
                o = order[start:stop]
                n = len(o)
                pad = K - n
                xs = s.x[o]
                ys = s.y[o]
                act = np.ones(K, bool)
                rs = reset[start:stop]
                if pad:
                    xs = np.concatenate([xs, np.zeros((pad,) + xs.shape[1:], xs.dtype)])
                    ys = np.concatenate([ys, np.zeros((pad,) + ys.shape[1:], ys.dtype)])
                    act[n:] = False
                    rs = np.concatenate([rs, np.zeros((pad,) + rs.shape[1:], bool)])
                replay = None
                # Weights before this chunk's first update, read back from TensorFlow only for
                # the chunks whose replay the trace keeps, and for the live view a few times a
                # second (it publishes every 0.3 s): five reads on every chunk cost ~0.7 ms,
                # ~10% of a batch-1 run.
                now = time.perf_counter()
                if self.record and ((epoch, start) in replay_at or now - last_live_replay >= 0.25):
                    last_live_replay = now
                    S = min(cfg.batch_size, trace_mod.REPLAY_SLOTS)
                    replay = {"replay_x": np.array(xs[0, :S], np.float32),
                              **self._layer_weights(),
                              "replay_dense_kernel": np.array(self.net.dense.kernel.numpy(), np.float32),
                              "replay_dense_bias": np.array(self.net.dense.bias.numpy(), np.float32)}
                out = [a.numpy()[:n] for a in self.net.train_chunk(xs, ys, act, rs)]
                loss, met = out[-2], out[-1]
                losses.append(loss)
                metrics.append(met)
                if self.record:
                    chunk = self._state_arrays(out)
                    chunk.update({
                        "readout_h0": out[2 * self.net.n_all], "target": ys[:n].astype(np.float32),
                        "seq_id": s.seq_id[o].astype(np.int32), "part": s.part[o].astype(np.int32),
                        "epoch": np.full(n, epoch, np.int32),
                        "batch": np.arange(start, start + n, dtype=np.int32),
                        "reset_before": rs[:n].all(axis=1), "loss": loss, "accuracy": met,
                        "index": (epoch - 1) * s.n_batches + np.arange(start, start + n),
                    })
                    if self.gradients:
                        chunk.update(self._grad_arrays(out))
                    if cfg.layout == "packed":  # slots reset on their own (trace: reset_slots)
                        chunk["reset_slots"] = rs[:n].copy()
                    # The live view gets the replays read for it; the trace keeps them for up to
                    # REPLAY_BATCHES chunks spread over the run.
                    self._keep_recent({**chunk, "replay": replay})
                    if epoch in keep and start < per:
                        m = min(n, per - start)
                        parts.append({**{k: v[:m] for k, v in chunk.items()},
                                      "replay": replay if (epoch, start) in replay_at else None})
                done += n
                if rs[:n].any():
                    emit(Event("reset", epoch, done, self.total,
                               {"count": int(rs[:n].any(axis=1).sum())}))
                emit(Event("batches", epoch, done, self.total, {"loss": float(loss.mean()),
                                                                 self.data.metric: float(met.mean())}))
            if cancelled:
                break
            row = {"epoch": epoch, "loss": float(np.concatenate(losses).mean()),
                   "accuracy": float(np.concatenate(metrics).mean()), "val_loss": None,
                   "val_accuracy": None, "seconds": 0.0}
            if validate:
                row["val_loss"], row["val_accuracy"] = self._validate()
            row["seconds"] = time.perf_counter() - t_ep
            epochs.append(row)
            emit(Event("epoch", epoch, done, self.total, dict(row)))
        tr = self.snapshot(epochs)
        emit(Event("cancelled" if cancelled else "done", len(epochs), done, self.total, {}))
        return RunResult(tr, epochs, self.model.get_weights(), self.notes(), time.perf_counter() - t_run,
                         cancelled, self.data.metric)

    def _state_names(self) -> list[tuple[str, str]]:
        """(state, suffix) in the net's order: h, c (LSTM) or h per layer, layer 1 first (its
        suffix is empty: the one-layer names; models/stacked.py), forward before backward (the
        backward direction's suffix _bw: models/bidir.py)."""
        return [(n, bidir.suffix(d) + stacked.suffix(L)) for L, d in self.net.directions()
                for n in cells.state_names(self.cfg.cell)]

    def _state_arrays(self, out: list) -> dict:
        """h0, hT (and c0, cT for an LSTM) of every layer from a chunk's outputs: only the
        cell's own states; layer N > 1 suffixed _lN."""
        names = self._state_names()
        n = len(names)
        return {**{f"{s}0{L}": out[i] for i, (s, L) in enumerate(names)},
                **{f"{s}T{L}": out[n + i] for i, (s, L) in enumerate(names)}}

    def _grad_arrays(self, out: list) -> dict:
        """grad_h0 (and grad_c0 for an LSTM) of every layer, grad_x from a chunk's outputs."""
        names = self._state_names()
        at = 2 * len(names) + 1  # after the states and the readout
        return {**{f"grad_{s}0{L}": out[at + i] for i, (s, L) in enumerate(names)},
                "grad_x": out[at + len(names)]}

    def _layer_weights(self) -> dict:
        """Each layer's kernel, recurrent kernel and bias now (replay data, models/stacked.py)."""
        out = {}
        for (L, d), rnn in zip(self.net.directions(), self.net.rnns):
            c = rnn.cell
            keys = bidir.replay_keys(d, L)  # replay_kernel_bw_l2: models/bidir.py
            out.update({k: np.array(v.numpy(), np.float32) for k, v in
                        zip(keys, (c.kernel, c.recurrent_kernel, c.bias))})
        return out

    def _replay_chunks(self, keep: set[int], per: int) -> set[tuple[int, int]]:
        """(epoch, chunk start) of up to REPLAY_BATCHES recorded chunks, evenly spread."""
        starts = [(e, st) for e in sorted(keep)
                  for st in range(0, min(per, self.train.n_batches), self.K)]
        if len(starts) <= trace_mod.REPLAY_BATCHES:
            return set(starts)
        pick = np.linspace(0, len(starts) - 1, trace_mod.REPLAY_BATCHES).round().astype(int)
        return {starts[i] for i in pick.tolist()}

    def snapshot(self, epochs: list[dict] | None = None) -> trace_mod.Trace:
        """The trace recorded so far (safe to call from another thread between chunks)."""
        parts = list(self.parts)
        return trace_mod.concat(self.cfg.to_json(), parts, self.total, epochs or [],
                                self.cfg.batch_size, self.cfg.units)

    def _keep_recent(self, chunk: dict) -> None:
        self.recent.append(chunk)
        while sum(len(c["epoch"]) for c in self.recent) - len(self.recent[0]["epoch"]) >= RECENT_BATCHES:
            self.recent.popleft()

    def recent_trace(self, n: int = 24) -> trace_mod.Trace:
        """The newest <= n trained batches (global indices in `recorded`), thinned or not."""
        parts = list(self.recent)
        if not parts:
            return trace_mod.empty_trace(self.cfg.to_json(), self.cfg.batch_size, self.cfg.units)
        cat, idx, replay = trace_mod._stack(parts, last=n)
        return trace_mod.Trace(**cat, config=self.cfg.to_json(), recorded=idx, replay=replay)

    def notes(self) -> list[str]:
        return self.data.notes + self.train.notes + self.cfg.notes()

    def final_state(self) -> tuple[np.ndarray, ...]:
        """The layer's states now: (h, c) for an LSTM, (h,) for GRU and SimpleRNN."""
        return tuple(v.numpy() for v in self.net.read_state())


def train(cfg: RunConfig, series=None, on_event=None, cancel=None) -> RunResult:
    """Build (or reuse) a net, warm it, run, and give the net back."""
    eng = Engine(cfg, series)
    try:
        return eng.run(on_event, cancel)
    finally:
        eng.close()


def probe_alphabet(weights: list[np.ndarray], cfg: RunConfig, start: str, n: int = 5) -> list[str]:
    """Feed `start` to the trained model from a fresh state, then feed its answers back.

    A stateful batch-1 model trained on the alphabet from A answers B, C, D... whatever the
    start letter: it counts steps since the reset instead of reading its input.
    """
    from models.tasks import LETTERS, letter_value
    probe_cfg = cfg.replace(batch_size=1, layout="steps", stateful=True)
    model, lstm, _, _ = build_model(probe_cfg, 1, 26, "classes")
    model.set_weights(weights)
    letter, out = start.upper(), []
    for _ in range(n):
        p = model(np.full((1, 1, 1), letter_value(letter), np.float32), training=False)[0]
        letter = LETTERS[int(np.argmax(np.asarray(p)[0]))]
        out.append(letter)
    return out


def prewarm(configs, idle: Callable[[], bool] = lambda: True, poll: float = 0.5,
            stop: threading.Event | None = None, pin: bool = True) -> int:
    """Compile a net for each config's shape ahead of time, so that a first Train of a
    preset starts in milliseconds. Runs only while `idle()` (no user jobs): it yields the CPU
    to real runs and resumes afterwards. `stop` ends it between nets. `pin`: the pool keeps
    these nets (the presets'); else they are a student's shape compiled ahead (warm_ahead),
    kept while recently used. Returns how many nets were compiled (configs of one shape share
    a net)."""
    stop = stop or threading.Event()
    done = 0
    for cfg in configs:
        if done >= limits.MAX_POOLED_NETS:
            break  # the pool would drop what we compile next
        while not idle() and not stop.is_set():
            stop.wait(poll)
        if stop.is_set():
            break
        try:
            eng = Engine(cfg, claim=True)  # a Train of this shape waits for this net from now
        except ConfigError:
            continue
        sig = eng.net.sig
        if pin:
            with _POOL_LOCK:
                _PINNED.add(sig)
        if eng.compiled:  # presets sharing a shape share one net
            eng.close()
            continue
        try:
            eng.warm_up()
            done += 1
        finally:
            eng.close()  # into the pool first, then wake whoever waits for it
            with _POOL_LOCK:
                warmed = _WARMING.pop(sig, None)
            if warmed is not None:
                warmed.set()
    return done
