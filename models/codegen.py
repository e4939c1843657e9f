"""A standalone Keras 3 script equivalent to a RunConfig (the app's "Keras code" view).

The script needs only numpy and keras (TensorFlow backend). It generates the same data as
models/tasks.py, cuts and batches it like models/layouts.py, and trains with `model.fit`:
- stateful: `keras.Input(batch_shape=(B, L, F))`, `shuffle=False`, resets by a callback that
  calls `rnn.reset_state()` before the right batches; shuffling (if chosen) is done by the
  script per epoch, the way fit would, so the reset schedule can follow the shuffled order;
- validation by hand, saving and restoring the training state (fit's `validation_data` would
  overwrite it).
It prints one line per epoch; a stateful script then streams a held-out sequence through a
batch-1 copy of the trained model, one step at a time (a Bidirectional one: one sample at a
time), and checks it against slot 0 of the trained model; last, `val_accuracy X` (or `val_mae X`).

`generate(cfg, quick=True)`: one epoch of at most a few batches (a smoke test).
"""
from __future__ import annotations

import textwrap

from models import bidir, cells
from models.config import RunConfig

QUICK_BATCHES = 8

_TASKS = {
    "first_element": '''
def make_data(rng):
    """All zeros but the first value (0 or 1, half each); the target is that first value."""
    n_val = max(1, SEQUENCES // 6)
    def balanced(n):
        return rng.permutation(np.arange(n) % 2)
    bits = np.concatenate([balanced(SEQUENCES - n_val), balanced(n_val)])
    x = np.zeros((SEQUENCES, SEQ_LEN, 1), np.float32)
    x[:, 0, 0] = bits
    y = np.repeat(bits[:, None], SEQ_LEN, axis=1).astype(np.int32)   # a target at every step
    return x, y
''',
    "long_memory": '''
def make_data(rng):
    """A cue (+1 or -1) at step 0, then noise; recall the cue at every later step."""
    n_val = max(1, SEQUENCES // 6)
    def balanced(n):
        return rng.permutation(np.arange(n) % 2)
    bits = np.concatenate([balanced(SEQUENCES - n_val), balanced(n_val)])
    x = rng.normal(0.0, 0.3, (SEQUENCES, SEQ_LEN, 1)).astype(np.float32)
    x[:, 0, 0] = 2.0 * bits - 1.0
    y = np.repeat(bits[:, None], SEQ_LEN, axis=1).astype(np.int32)
    return x, y
''',
    "alphabet": '''
def make_data(rng):
    """Each letter -> the next (A->B ... Y->Z); letters scaled to [0, 1], every sequence from A."""
    idx = np.arange(SEQ_LEN)
    x = np.tile((idx / 25.0)[None, :, None], (SEQUENCES, 1, 1)).astype(np.float32)
    y = np.tile((idx + 1)[None, :], (SEQUENCES, 1)).astype(np.int32)
    return x, y
''',
    "sine": '''
def make_data(rng):
    """Noisy sines, each with its own frequency and phase: forecast the next clean value."""
    f = rng.uniform(0.02, 0.1, (SEQUENCES, 1))
    phase = rng.uniform(0, 2 * np.pi, (SEQUENCES, 1))
    t = np.arange(SEQ_LEN + 1)[None, :]
    clean = np.sin(2 * np.pi * f * t + phase)
    noisy = clean + rng.normal(0, 0.1, clean.shape)
    return noisy[:, :SEQ_LEN, None].astype(np.float32), clean[:, 1:].astype(np.float32)
''',
    "user": '''
def make_data(rng):
    """Your series (one number a line in series.csv), z-scored, cut into back-to-back sequences."""
    global SEQUENCES
    s = np.loadtxt("series.csv", delimiter=",", ndmin=1).astype(np.float64)
    n = (len(s) - 1) // SEQ_LEN
    SEQUENCES = n
    z = (s - s.mean()) / (s.std() or 1.0)
    x = np.stack([z[i * SEQ_LEN:(i + 1) * SEQ_LEN] for i in range(n)])[:, :, None]
    y = np.stack([z[i * SEQ_LEN + 1:(i + 1) * SEQ_LEN + 1] for i in range(n)])
    return x.astype(np.float32), y.astype(np.float32)
''',
}

_KIND = {"first_element": "binary", "long_memory": "binary", "alphabet": "classes",
         "sine": "regression", "user": "regression"}

_LAYOUT_DOC = {
    "full": "one sample per sequence (the whole sequence)",
    "windows": "every window of LENGTH steps, labelled like its last step",
    "chunks": "chunks of LENGTH steps; batch k holds the next chunk of the same B sequences, so "
              "slot i continues sequence i",
    "naive_chunks": "chunks of LENGTH steps in sequence order: the chunks of one sequence sit "
                    "side by side in a batch (the common mistake)",
    "steps": "one timestep per sample: B sequences streamed side by side, one step per batch",
    "packed": "sequences of different lengths packed one after another into B streams; when "
              "a slot's sequence ends, only that slot is reset",
}

_ROWS = '''
def rows(n, pad, what):
    """0..n-1 in rows of BATCH_SIZE: a partial last row is padded with -1, or trimmed."""
    B = BATCH_SIZE
    full, rest = divmod(n, B)
    if rest and pad:
        full += 1
    elif rest:
        remainder(rest, n, what)
    flat = np.full(full * B, -1)
    flat[:min(n, full * B)] = np.arange(min(n, full * B))
    return flat.reshape(full, B)
'''

_GROUPED = _ROWS + '''
def arrange(x, y, pad=False):
    """(n_batches, B) sample indices: row g holds sequences g*B..g*B+B-1, batch p of the
    row holds part p of each, so slot i always continues its own sequence. -1: padding."""
    xs, ys, last, P = cut(x, y)
    seqs = rows(len(x), pad, "sequences")
    order = np.where(seqs[:, None, :] >= 0,
                     seqs[:, None, :] * P + np.arange(P)[None, :, None], -1)
    return xs, ys, last, order.reshape(-1, BATCH_SIZE)
'''

_FLAT = _ROWS + '''
def arrange(x, y, pad=False):
    """(n_batches, B) sample indices, samples in sequence order, B per batch. -1: padding."""
    xs, ys, last, P = cut(x, y)
    return xs, ys, last, rows(len(xs), pad, "samples")
'''


_PACKED = '''
PARTS = SEQ_LEN // SAMPLE_LEN   # chunks in a whole sequence


def arrange(x, y, pad=False):
    """(n_batches, B) sample indices. Sequences of DIFFERENT lengths (1..PARTS chunks each, the
    rest dropped) are packed one after another into B streams: each slot takes the next
    sequence as soon as its own ends. The streams end at different batches: cut to the
    shortest, or padded with -1 to the longest (pad=True, validation)."""
    import heapq
    xs, ys, _, P = cut(x, y)
    n = len(x)
    lens = np.random.default_rng([SEED, n, 7]).integers(1, P + 1, n)
    streams, ends = [[] for _ in range(BATCH_SIZE)], [(0, i) for i in range(BATCH_SIZE)]
    for j in range(n):
        total, i = heapq.heappop(ends)
        streams[i] += range(j * P, j * P + int(lens[j]))
        heapq.heappush(ends, (total + int(lens[j]), i))
    T = max(map(len, streams)) if pad else min(map(len, streams))
    order = np.full((T, BATCH_SIZE), -1)
    for i, s in enumerate(streams):
        order[:min(T, len(s)), i] = s[:T]
    sample = np.arange(len(xs))
    last = sample % P == lens[sample // P] - 1   # each sequence ends at its own length
    return xs, ys, last, order


def reset_slots(rows):
    """Keras has no per-slot reset (reset_state() zeroes every slot): assign zeros to the rows
    of the slots whose sequence ended, in every state variable; the other rows stay as they
    are, exactly."""
    for v in rnn.states:
        v.assign(np.where(rows[:, None], 0.0, v.numpy()).astype("float32"))
'''

_PACKED_RESETS = '''
def reset_before(order, last, first_epoch):
    """(n_batches, B): which slots start each batch from zeros. RESET "sequence": a slot is
    reset when a new sequence starts in it (its part 0), and only that slot."""
    r = np.zeros(order.shape, bool)
    r[0] = first_epoch or RESET in ("epoch", "sequence")
    if RESET == "sequence":
        r |= (order >= 0) & (np.maximum(order, 0) % PARTS == 0)
    return r
'''


def _packed(src: str) -> str:
    """The packed layout's per-slot resets in place of whole-batch ones."""
    start = src.index("def reset_before(")
    end = src.index("xs, ys, last, order = arrange(")
    src = src[:start] + _PACKED_RESETS.lstrip("\n") + "\n\n" + src[end:]
    return (src.replace("        if STATEFUL and self.flags[batch]:\n            rnn.reset_state()",
                        "        if STATEFUL and self.flags[batch].any():\n"
                        "            reset_slots(self.flags[batch])   # only the slots that ended")
            .replace("        if STATEFUL and flags[k]:\n            rnn.reset_state()",
                     "        if STATEFUL and flags[k].any():\n            reset_slots(flags[k])"))


def _cell_comment(cell: str) -> str:
    """What the recurrent layer carries from batch to batch (models/cells.py)."""
    if cells.has_c(cell):
        return "# The LSTM carries two state tensors per slot: rnn.states = [h, c]."
    return f"# A {cell} carries one state tensor per slot: rnn.states = [h] (no c)."


def _unroll(cfg: RunConfig, indent: str = "    ") -> str:
    """The unroll argument line, where the app builds the layer unrolled (cells.unroll)."""
    if not cells.unroll(cfg.cell, cfg.sample_len):
        return indent
    return f"{indent}unroll=True,  # one-step samples: no loop to run (faster, same equations)\n{indent}"


def _rnn_block(cfg: RunConfig) -> str:
    u, u8 = _unroll(cfg), _unroll(cfg, " " * 8)
    if cfg.bidirectional and cfg.layers > 1:
        return _bidi_stack_block(cfg)
    if cfg.bidirectional:  # one layer
        return f'''# Bidirectional: a forward {cfg.cell} reads each sample first step to last, a backward one
# (go_backwards=True) last step to first. Each keeps its OWN state per slot:
# rnn.states = forward_layer.states + backward_layer.states, and rnn.reset_state() zeroes both.
# A stateful backward layer stores the state at a sample's FIRST step (it reads it last) and
# starts the next batch's sample at its LAST step from it: the wrong end of the next chunk.
# Dense reads both final h side by side (2 x UNITS). Seeds as the app's (models/bidir.py).
rnn = keras.layers.Bidirectional(
    keras.layers.{cfg.cell}(
        UNITS, stateful=STATEFUL,
{u8}kernel_initializer=keras.initializers.GlorotUniform(seed=SEED),
        recurrent_initializer=keras.initializers.Orthogonal(seed=SEED + 1)),
    backward_layer=keras.layers.{cfg.cell}(
        UNITS, stateful=STATEFUL, go_backwards=True,
{u8}kernel_initializer=keras.initializers.GlorotUniform(seed=SEED + 7),
        recurrent_initializer=keras.initializers.Orthogonal(seed=SEED + 8)))'''
    if cfg.layers == 1:
        return f'''rnn = keras.layers.{cfg.cell}(
    UNITS, stateful=STATEFUL,
{u}kernel_initializer=keras.initializers.GlorotUniform(seed=SEED),
    recurrent_initializer=keras.initializers.Orthogonal(seed=SEED + 1))'''
    return f'''# {cfg.layers} stacked layers. Each keeps its OWN state per slot (rnns[i].states): a reset
# must reach every layer, and every layer carries its state to the next batch. Layers below
# the top hand on their whole output sequence (return_sequences=True); Dense reads the top h.
LAYERS = {cfg.layers}


def seeds(i):
    """Initialiser seeds of layer i (0 first), as the app seeds them (models/stacked.py)."""
    return (SEED, SEED + 1) if i == 0 else (SEED + 2 * i + 1, SEED + 2 * i + 2)


rnns = [keras.layers.{cfg.cell}(
    UNITS, stateful=STATEFUL, return_sequences=i < LAYERS - 1,
{u}kernel_initializer=keras.initializers.GlorotUniform(seed=seeds(i)[0]),
    recurrent_initializer=keras.initializers.Orthogonal(seed=seeds(i)[1]))
    for i in range(LAYERS)]


def reset_all():
    """Keras resets one layer at a time: zero every layer's state."""
    for r in rnns:
        r.reset_state()


def all_states():
    """Every layer's state variables, layer 1's first."""
    return [v for r in rnns for v in r.states]


h = inputs
for r in rnns:
    h = r(h)'''


def _bidi_stack_block(cfg: RunConfig) -> str:
    """Stacked Bidirectional layers (models/bidir.py): every layer wrapped, layer N > 1 reading
    both directions' output sequences side by side."""
    u = _unroll(cfg, " " * 8)
    return f'''# {cfg.layers} stacked Bidirectional layers. In each, a forward {cfg.cell} reads each sample first
# step to last, a backward one (go_backwards=True) last step to first; each of the
# {2 * cfg.layers} keeps its OWN state per slot (rnns[i].states = forward_layer.states +
# backward_layer.states): a reset must reach every layer, and every layer and direction carries
# its state to the next batch. A stateful backward layer stores the state at a sample's FIRST
# step and starts the next batch's sample at its LAST step from it: the wrong end of the next
# chunk. Layers below the top hand on both output sequences side by side (2 x UNITS per step,
# the backward one flipped back into time order); Dense reads the top layer's two final h.
LAYERS = {cfg.layers}


def seeds(i, backward=False):
    """Initialiser seeds of layer i (0 first), as the app seeds them (models/stacked.py); a
    backward direction uses those of layer i + 3 (models/bidir.py)."""
    i += 3 if backward else 0
    return (SEED, SEED + 1) if i == 0 else (SEED + 2 * i + 1, SEED + 2 * i + 2)


def direction(i, backward):
    return keras.layers.{cfg.cell}(
        UNITS, stateful=STATEFUL, return_sequences=i < LAYERS - 1, go_backwards=backward,
{u}kernel_initializer=keras.initializers.GlorotUniform(seed=seeds(i, backward)[0]),
        recurrent_initializer=keras.initializers.Orthogonal(seed=seeds(i, backward)[1]))


rnns = [keras.layers.Bidirectional(direction(i, False), backward_layer=direction(i, True))
        for i in range(LAYERS)]


def reset_all():
    """Keras resets one layer at a time: zero every layer's state (both directions)."""
    for r in rnns:
        r.reset_state()


def all_states():
    """Every layer's state variables, layer 1's first, forward before backward."""
    return [v for r in rnns for v in r.states]


h = inputs
for r in rnns:
    h = r(h)'''


def _rnn_out(cfg: RunConfig) -> str:
    return "rnn(inputs)" if cfg.layers == 1 else "h"


def _model_block(cfg: RunConfig) -> str:
    kind = _KIND[cfg.task]
    n_out = 26 if kind == "classes" else 1
    act = {"binary": '"sigmoid"', "classes": '"softmax"', "regression": "None"}[kind]
    loss = {"binary": '"binary_crossentropy"', "classes": '"sparse_categorical_crossentropy"',
            "regression": '"mse"'}[kind]
    metric = "mae" if kind == "regression" else "accuracy"
    if cfg.stateful:
        inp = ("# A stateful layer keeps one state row per slot, so it must know B: batch_shape.\n"
               "inputs = keras.Input(batch_shape=(BATCH_SIZE, SAMPLE_LEN, N_FEATURES))")
    else:
        inp = ("# Stateless: every sample starts from zeros, the batch size can stay open.\n"
               "inputs = keras.Input(shape=(SAMPLE_LEN, N_FEATURES))")
    return f'''
{inp}
{_cell_comment(cfg.cell)}
{_rnn_block(cfg)}
outputs = keras.layers.Dense(
    {n_out}, activation={act},
    kernel_initializer=keras.initializers.GlorotUniform(seed=SEED + 2))({_rnn_out(cfg)})
model = keras.Model(inputs, outputs)
model.compile(optimizer=keras.optimizers.Adam(LR), loss={loss}, metrics=["{metric}"])
METRIC = "{metric}"


def score(p, y):
    """Per-sample metric: 1/0 correct for classification, |error| for regression."""
''' + {"binary": "    return ((p[:, 0] > 0.5) == (y > 0.5)).astype(np.float64)\n",
       "classes": "    return (p.argmax(axis=-1) == y).astype(np.float64)\n",
       "regression": "    return np.abs(p[:, 0] - y).astype(np.float64)\n"}[kind]


_LAST = '\nprint(f"val_{METRIC} {val:.4f}")\n'

_STREAM = '''

# Inference with another batch size (keras #2322, #5714). The trained model takes batches of
# exactly BATCH_SIZE: each stateful layer's state is a (BATCH_SIZE, UNITS) variable. To stream
# ONE new sequence, copy the weights (they have no batch axis) into a batch-1 stateful copy and
# feed it PER_CALL_WORDS per call: its state is that one stream's state, carried from call to call.
COPY_BUILD_HERE
copy.set_weights(model.get_weights())
STATE_NAMES = STATE_NAMES_HERE   # rnn.states of the copy, in this order
PER_CALL = PER_CALL_HERE   # steps fed per call


def copy_states():
    return [v for layer in copy.layers if getattr(layer, "stateful", False) for v in layer.states]


def show(v, digits=4):
    return " ".join(f"{a:+.{digits}f}" for a in np.ravel(v))


def line(who, t, p, states):
    """One step's answer and every state tensor of that slot."""
    return (f"{who} step {t:3d}: output {show(p, 6)} | "
            + " | ".join(f"{n} {show(s)}" for n, s in zip(STATE_NAMES, states)))


stream = x_val[0]   # a held-out sequence, new to the model
print(f"Batch-1 copy streaming validation sequence 0, {PER_CALL} step(s) per call (state after each call):")
for v in copy_states():
    v.assign(np.zeros(v.shape, "float32"))   # a new stream starts from zeros
one = {}
for a in range(0, (SEQ_LEN // PER_CALL) * PER_CALL, PER_CALL):
    p = np.asarray(copy(stream[None, a:a + PER_CALL], training=False))[0]
    states = [np.array(v.numpy()[0]) for v in copy_states()]
    t = a + PER_CALL - 1   # the step the copy has read up to
    one[t] = (p, states)
    print(line("copy", t, p, states))

# The check: the trained batch-B model fed the same sequence in slot 0 (the other slots hold
# other sequences), SAMPLE_LEN steps per call, from zeros, must say the same after each call.
# (Calling the model runs the layer, so this moves the trained model's stored state.)
others = np.resize(x_val[1:] if len(x_val) > 1 else x_val, (BATCH_SIZE - 1,) + x_val.shape[1:])
batch = np.concatenate([stream[None], others]).astype("float32")
print(f"Slot 0 of the trained batch-{BATCH_SIZE} model, fed the same sequence:")
rnn.reset_state()
worst = 0.0
for a in range(0, (SEQ_LEN // SAMPLE_LEN) * SAMPLE_LEN, SAMPLE_LEN):
    p = np.asarray(model(batch[:, a:a + SAMPLE_LEN], training=False))[0]
    states = [np.array(v.numpy()[0]) for v in rnn.states]
    t = a + SAMPLE_LEN - 1
    print(line("slot0", t, p, states))
    copy_t = [one[t][0]] + one[t][1]   # the copy's answer and states after the same step
    worst = max([worst] + [float(np.abs(u - w).max()) for u, w in zip(copy_t, [p] + states)])
print(f"batch-1 copy vs slot 0: max |difference| {worst:.1e} (float32 rounding: ~1e-7)")
'''


_CLONE = "copy = keras.models.clone_model(model, input_tensors=keras.Input(batch_shape=(1, 1, N_FEATURES)))"

# Measured (Keras 3.15): clone_model and Bidirectional.from_config keep the trained batch in
# the wrapper's state variables; a wrapper built from its two directions' configs does not.
_BIDI_COPY = '''# A Bidirectional layer's backward direction reads each sample from its LAST step to its first,
# so its answer after a chunk depends on the whole chunk: the copy is fed one whole sample
# (SAMPLE_LEN steps) per call, as the model was trained; one step per call would be another model.
# (clone_model would keep the trained batch in the wrapper's state variables: build it anew.)
cell_type = type(rnn.forward_layer)
copy_rnn = keras.layers.Bidirectional(
    cell_type.from_config(rnn.forward_layer.get_config()),
    backward_layer=cell_type.from_config(rnn.backward_layer.get_config()))
copy_inputs = keras.Input(batch_shape=(1, SAMPLE_LEN, N_FEATURES))
copy_dense = keras.layers.Dense.from_config(model.layers[-1].get_config())
copy = keras.Model(copy_inputs, copy_dense(copy_rnn(copy_inputs)))'''

_BIDI_STACK_COPY = '''# A Bidirectional layer's backward direction reads each sample from its LAST step to its first,
# so its answer after a chunk depends on the whole chunk: the copy is fed one whole sample
# (SAMPLE_LEN steps) per call, as the model was trained; one step per call would be another model.
# (clone_model would keep the trained batch in the wrappers' state variables: build them anew.)
copy_inputs = keras.Input(batch_shape=(1, SAMPLE_LEN, N_FEATURES))
h = copy_inputs
for r in rnns:
    cell_type = type(r.forward_layer)
    h = keras.layers.Bidirectional(
        cell_type.from_config(r.forward_layer.get_config()),
        backward_layer=cell_type.from_config(r.backward_layer.get_config()))(h)
copy_dense = keras.layers.Dense.from_config(model.layers[-1].get_config())
copy = keras.Model(copy_inputs, copy_dense(h))'''


def _stream_tail(cfg: RunConfig) -> str:
    """The batch-1 inference copy, streamed one step (a Bidirectional layer: one sample) per
    call and checked against slot 0."""
    from models import inference
    names = cells.state_names(cfg.cell)
    bidi = cfg.bidirectional
    labels = list(inference.state_keys(cfg)) if cfg.layers == 1 else [
        f"{n}{i}{bidir.suffix(d)}" for i in range(1, cfg.layers + 1)
        for d in bidir.DIRECTIONS[:2 if bidi else 1] for n in names]
    build = (_BIDI_STACK_COPY if cfg.layers > 1 else _BIDI_COPY) if bidi else _CLONE
    return (_STREAM.replace("COPY_BUILD_HERE", build)
            .replace("STATE_NAMES_HERE", repr(labels))
            .replace("PER_CALL_HERE", "SAMPLE_LEN" if bidi else "1")
            .replace("PER_CALL_WORDS", "one whole sample" if bidi else "one step"))


def _tail(cfg: RunConfig) -> str:
    """What follows training: the batch-1 streaming copy of a stateful model."""
    return _stream_tail(cfg) if cfg.stateful else ""


def file_name(cfg: RunConfig) -> str:
    """The script's file name, after the cell it trains: stateful_lstm.py, stateful_gru.py, ..."""
    return f"stateful_{cfg.cell.lower()}.py"


def generate(cfg: RunConfig, quick: bool = False) -> str:
    """The script. quick=True: 1 epoch, at most QUICK_BATCHES batches (train and validation)."""
    cfg.check()
    epochs = 1 if quick else cfg.epochs
    max_batches = QUICK_BATCHES if quick else None
    grouped = cfg.layout in ("chunks", "steps")
    arrange = _PACKED if cfg.layout == "packed" else _GROUPED if grouped else _FLAT
    query = "&".join(f"{k}={v}" for k, v in cfg.to_query().items()) or "(defaults)"
    shuffle_doc = {
        "off": "off: batches in order (fit(shuffle=False))",
        "samples": "samples: all samples permuted every epoch, as fit(shuffle=True) does",
        "batch": "batch: samples permuted inside each batch, as Keras 3's shuffle='batch' does",
    }[cfg.shuffle]
    head = f'''"""Stateful LSTM Explorer, as a standalone Keras 3 script.

Settings: {query}
Task {cfg.task}; layout {cfg.layout}: {_LAYOUT_DOC[cfg.layout]}.
Run it with:  python {file_name(cfg)}   (needs numpy, keras 3 and tensorflow)
"""
import os

os.environ["KERAS_BACKEND"] = "tensorflow"  # on JAX, stateful=True has no effect in fit
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import keras  # noqa: E402

SEED = {cfg.seed}
SEQUENCES, SEQ_LEN = {cfg.sequences}, {cfg.seq_len}
LAYOUT, SAMPLE_LEN = "{cfg.layout}", {cfg.sample_len}   # timesteps per sample
STATEFUL = {cfg.stateful}
SHUFFLE = "{cfg.shuffle}"      # {shuffle_doc}
RESET = "{cfg.reset}"  # when states are zeroed: never | epoch | sequence (after a sequence ends)
BATCH_SIZE, UNITS, EPOCHS, LR = {cfg.batch_size}, {cfg.units}, {epochs}, {cfg.lr!r}
REMAINDER = "{cfg.remainder}"      # a partial final batch: trim it or refuse
MAX_BATCHES = {max_batches}     # None: every batch (a number: a quick smoke test)

keras.utils.set_random_seed(SEED)
'''
    data = _TASKS[cfg.task] + '''

x, y = make_data(np.random.default_rng(SEED))
n_val = max(1, SEQUENCES // 6)   # the last sixth is held out for validation
x_train, y_train, x_val, y_val = x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]
N_FEATURES = x.shape[2]
'''
    layout = '''

def cut(x, y):
    """Cut sequences into samples of SAMPLE_LEN steps, labelled like their last step."""
    N, T, F = x.shape
    L = SAMPLE_LEN
    starts = np.arange(T - L + 1) if LAYOUT == "windows" else np.arange(0, T, L)
    P = len(starts)
    win = starts[:, None] + np.arange(L)[None, :]
    xs = x[:, win, :].reshape(N * P, L, F)
    ys = y[:, starts + L - 1].reshape(N * P)
    last = np.tile(np.arange(P) == P - 1, N)   # the sample ends its sequence
    return xs, ys, last, P


def remainder(rest, total, what):
    """Never feed a partial final batch: Keras broadcasts 1 leftover row over every slot's
    state (silently) and fails on 2 or more."""
    if REMAINDER == "refuse":
        raise SystemExit(f"{total} {what} do not fill batches of {BATCH_SIZE}: {rest} left over.")
    print(f"Trimmed {rest} of {total} {what} so that every batch is full.")

''' + arrange + '''

def epoch_order(order, epoch):
    """The batches of one epoch after shuffling (done here so the resets can follow it)."""
    if SHUFFLE == "off":
        return order
    rng = np.random.default_rng([SEED, epoch])
    if SHUFFLE == "samples":
        return rng.permutation(order.reshape(-1)).reshape(order.shape)
    return rng.permuted(order, axis=1)


def reset_before(order, last, first_epoch):
    """Which batches start from zeroed states, under the RESET policy."""
    r = np.zeros(len(order), bool)
    r[0] = first_epoch or RESET in ("epoch", "sequence")
    if RESET == "sequence":
        ends = np.where(order >= 0, last[np.maximum(order, 0)], False).any(axis=1)
        r[1:] |= ends[:-1]   # a sequence ended in the previous batch
    return r


xs, ys, last, order = arrange(x_train, y_train)
xv, yv, last_v, order_v = arrange(x_val, y_val, pad=True)
order, order_v = order[:MAX_BATCHES], order_v[:MAX_BATCHES]
print(f"{len(order)} batches of {BATCH_SIZE} per epoch, samples of {SAMPLE_LEN} step(s).")
'''
    train = _model_block(cfg) + '''

class ResetStates(keras.callbacks.Callback):
    """fit never resets states by itself (not between batches, epochs or fit calls)."""

    def __init__(self):
        super().__init__()
        self.flags = None

    def on_train_batch_begin(self, batch, logs=None):
        # Seen for every batch because steps_per_execution is 1 (the default).
        if STATEFUL and self.flags[batch]:
            rnn.reset_state()


def validate():
    """Forward over the held-out batches from zeros, then put the training state back:
    evaluate/predict would overwrite the state the next epoch continues from."""
    saved = [v.numpy() for v in rnn.states] if STATEFUL else None
    flags = reset_before(order_v, last_v, True)
    total, count = 0.0, 0
    for k, row in enumerate(order_v):
        if STATEFUL and flags[k]:
            rnn.reset_state()
        keep = row >= 0                      # padding slots count in no metric
        p = model.predict_on_batch(xv[np.maximum(row, 0)])
        total += score(np.asarray(p)[keep], yv[row[keep]]).sum()
        count += int(keep.sum())
    if STATEFUL:
        for v, s in zip(rnn.states, saved):
            v.assign(s)
    return total / max(count, 1)


resets = ResetStates()
for epoch in range(1, EPOCHS + 1):
    o = epoch_order(order, epoch)
    resets.flags = reset_before(o, last, epoch == 1)
    idx = o.reshape(-1)
    # Batches are laid out already: fit must not shuffle, or slot i stops continuing slot i.
    hist = model.fit(xs[idx], ys[idx], batch_size=BATCH_SIZE, epochs=epoch,
                     initial_epoch=epoch - 1, shuffle=False, callbacks=[resets], verbose=0)
    val = validate()
    print(f"epoch {epoch}: loss {hist.history['loss'][-1]:.4f} "
          f"{METRIC} {hist.history[METRIC][-1]:.4f} val_{METRIC} {val:.4f}")
'''
    body = layout + train + _tail(cfg) + _LAST
    if cfg.layout == "packed":
        body = _packed(body)
    if cfg.layers > 1:  # the stacked model's resets and states reach every layer
        body = (body.replace("rnn.reset_state()", "reset_all()")
                .replace("rnn.states", "all_states()")
                .replace("all_states() = [", "each layer's .states = ["))
    return textwrap.dedent(head) + data + body
