"""The record of a run: every slot's state before and after every recorded batch.

Format (DESIGN.md, read by other tools): h0, c0, hT, cT (n, B, units) float32; seq_id, part
(n, B) int32; epoch, batch (n,) int32; reset_before (n,) bool; loss, accuracy (n,) float32;
config (0-d str). The cell type is the config's `cell` (LSTM when absent: traces from before
the setting). Only the state tensors the cell really has are stored (models/cells.py): an LSTM
trace has h0, c0, hT, cT exactly as above; a GRU or SimpleRNN trace has h0 and hT and NO
c0/cT (not zeros: the keys are absent, and `Trace.c0`/`Trace.cT` are None). A thinned trace adds `recorded` (n,) int32: the global index of each recorded
batch. Also stored, for the views: `val_epochs` (E, 6) float32 epoch metrics.

Replay data (optional; a trace without it loads and simply has nothing to replay). For m
sampled batches, the first S = min(B, REPLAY_SLOTS) slots:
  replay_batch      int32   (m,)          position of the batch in this trace (0..n-1)
  replay_x          float32 (m, S, L, F)  that batch's inputs, slots 0..S-1
  replay_kernel     float32 (m, F, G*U)   the cell's kernel as that batch's step used it (read
  replay_recurrent  float32 (m, U, G*U)     before the step's optimizer update), recurrent
  replay_bias       float32 (m, G*U)        kernel and bias, gate blocks in Keras's order:
                                            LSTM G=4 (i, f, c, o); GRU G=3 (z, r, h) with bias
                                            (m, 2, 3U) (input and recurrent bias, reset_after);
                                            SimpleRNN G=1
  replay_dense_kernel float32 (m, U, n_out) the Dense layer's kernel and bias at that step
  replay_dense_bias   float32 (m, n_out)      (optional: lets readout_h0 be recomputed)
The carry check recomputes hT (and cT) of those slots from the recorded h0 (and c0) with the
cell's equations in NumPy (`cells.run_numpy`; `replay_errors`; it matches when within REPLAY_TOLERANCE):
the identity h0[k+1] == hT[k] compares two reads of one state variable, the replay shows the
layer actually started from the recorded h0 (from zeros, for a stateless run).

What the state says and where the gradient stops (optional; older traces load without them):
  readout_h0  float32 (n, B, n_out)  the model's own Dense layer, with the weights of that batch's
                                     step, applied to h0: what the model would answer from the
                                     carried state alone, before it sees the batch (sigmoid
                                     probability of 1, softmax over classes, or the regression
                                     value). The model answers Dense(h_L) after the batch, so
                                     Dense(h0) is that answer read from the state it starts from.
  target      float32 (n, B)         the slot's true target for that batch (label or value)
  grad_h0     float32 (n, B)         |dL/dh0| per slot: the gradient of the batch's loss (the mean
  grad_c0     float32 (n, B)           the optimizer minimised; grad_c0 for an LSTM only) with respect to the state it
                                       started from; the gradient that would flow into the
                                       previous batch and is cut at the boundary (real TF tape)
  grad_x      float32 (n, L)         |dL/dx_t| over the whole batch, per timestep t of the batch:
                                       how much of the loss gradient reaches each step inside it

Stacked layers (config `layers` 2-3; models/stacked.py): h0, c0, hT, cT, grad_h0, grad_c0 and
replay_kernel, replay_recurrent, replay_bias keep meaning LAYER 1 (the layer that reads the
input; a one-layer trace is unchanged and a stacked trace's layer 1 reads as one). Layer N > 1
adds the same arrays with the suffix `_lN`: h0_l2, hT_l2 (c0_l2, cT_l2 for an LSTM) (n, B, U),
grad_h0_l2 (grad_c0_l2) (n, B) when gradients are recorded, and with replay data
replay_kernel_l2 (m, U, G*U), replay_recurrent_l2, replay_bias_l2. readout_h0 is the Dense layer
applied to the LAST layer's h0 (the layer it reads). The carry identity is checked on every
layer's states; the replay recomputes the layers in order, layer N's input being layer N-1's
output sequence recomputed (NumPy) from layer N-1's recorded h0, so a wrong state of any layer
fails it. `Trace.layer_view(N)` is a trace whose h0, hT... are layer N's (what the flow draws).

Bidirectional (config `bidirectional`; one layer here, stacked below; models/bidir.py): h0, c0, hT, cT, grad_h0,
grad_c0 and replay_kernel, replay_recurrent, replay_bias keep meaning the FORWARD direction (a
one-direction trace is unchanged; the forward direction reads as a plain layer). The backward
layer adds the same arrays with the suffix `_bw`: h0_bw, hT_bw (c0_bw, cT_bw for an LSTM)
(n, B, U) read from `backward_layer.states` (stateful) or returned by the layer (stateless),
grad_h0_bw (grad_c0_bw) (n, B), and with replay data replay_kernel_bw (m, F, G*U),
replay_recurrent_bw, replay_bias_bw. readout_h0 is the Dense layer applied to [h0, h0_bw] side
by side (the Dense kernel is (2U, n_out)). The carry identity is checked per direction. The
backward replay runs the cell over the batch's inputs REVERSED in time from the recorded h0_bw
and must give hT_bw: the backward layer starts a chunk at its last step from h0_bw and stores
the state at the chunk's first step. So a backward carry hands the state at chunk k's first
step to chunk k+1's last step: `carry_kinds` of the backward direction calls that WRONG_END,
not a continuation (with samples of one step, reading backwards is reading forwards: then a
continuation). `Trace.direction_view("backward")` is a trace whose h0, hT... and replay are
the backward layer's (what the flow draws for that direction).

Stacked Bidirectional (both settings): every layer is Bidirectional, and every per-layer key is
named name + direction suffix + layer suffix (models/bidir.py): layer N > 1's backward arrays
are h0_bw_lN, hT_bw_lN (c0_bw_lN, cT_bw_lN), grad_h0_bw_lN (grad_c0_bw_lN) and
replay_kernel_bw_lN, replay_recurrent_bw_lN, replay_bias_bw_lN; layer N > 1's kernels of both
directions are (m, 2U, G*U): it reads layer N-1's two output sequences side by side (forward,
then backward flipped back into time order). The replay recomputes, layer by layer, the forward
direction over that input and the backward one over it reversed, each from its own recorded
h0. carry_check's `layers` rows cover both directions of each layer and its `directions` rows
are per (layer, direction), each naming its `layer`. `Trace.layer_view(N)` holds layer N's
forward arrays in h0, hT... and its backward ones as h0_bw, ..., so
`layer_view(N).direction_view("backward")` is that layer's backward direction.

Per-slot resets (layout "packed": sequences of different lengths, optional key):
  reset_slots  bool (n, B)  the slots that started the batch from zeros. A packed run resets
                            only the slot whose sequence ended; reset_before is then True only
                            where every slot was reset. The carry check works per slot: a
                            reset slot must start from zeros, every other slot of the same batch
                            from exactly its own hT of the batch before.

Memory is bounded by `limits.MAX_RECORDED_BATCHES` (see `recorded_epochs`): when a run has
more batches, whole epochs are kept: all that fit; else the first, the last and evenly spaced
ones between; when only one fits, the last. When one epoch alone is longer than the cap, the
first cap/2 batches of the first and of the last epoch are kept (the first cap batches of a
one-epoch run). Recorded neighbours inside an epoch stay neighbours, so the carry identity can
still be checked on them.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field

import numpy as np

from models import bidir, cells, stacked

STATE_KEYS = ("h0", "c0", "hT", "cT")  # an LSTM's; a GRU or SimpleRNN has H_KEYS only
H_KEYS = ("h0", "hT")
C_KEYS = ("c0", "cT")
ROW_KEYS = ("seq_id", "part")
STEP_KEYS = ("epoch", "batch", "reset_before", "loss", "accuracy")
EXTRA_KEYS = ("readout_h0", "target", "grad_h0", "grad_c0", "grad_x")  # optional, per batch
EPOCH_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")
REPLAY_KEYS = ("replay_batch", "replay_x", "replay_kernel", "replay_recurrent", "replay_bias")
REPLAY_DENSE_KEYS = ("replay_dense_kernel", "replay_dense_bias")  # optional: (m, U, n_out), (m, n_out)
REPLAY_SLOTS = 32      # slots replayed per sampled batch
REPLAY_BATCHES = 16    # sampled batches per run (the first batch of up to this many chunks)
# float32 XLA vs float64 NumPy: measured <= 1e-6 on every preset and on 200-step, 64-unit runs
REPLAY_TOLERANCE = 1e-4

# What happened to the state of one slot between two recorded neighbouring batches.
NOT_CARRIED = 0    # fresh start (reset, stateless, start of run) or previous batch not recorded
CONTINUATION = 1   # same sequence, and the sample starts right after the previous one ends
BROKEN = 2         # same sequence, not the next part: skipped, repeated or overlapping
CONTAMINATED = 3   # another sequence
PADDING = 4        # carried into or out of a padding slot (no sequence): neither
WRONG_END = 5      # backward direction, same sequence, next chunk: the state at chunk k's first
                   # step enters chunk k+1 at its last step (models/bidir.py)


@dataclass
class Trace:
    h0: np.ndarray
    c0: np.ndarray | None  # None: the cell has no c (GRU, SimpleRNN)
    hT: np.ndarray
    cT: np.ndarray | None
    seq_id: np.ndarray
    part: np.ndarray
    epoch: np.ndarray
    batch: np.ndarray
    reset_before: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    config: str
    recorded: np.ndarray | None = None  # None: every batch was recorded
    epochs: list[dict] = field(default_factory=list)  # per-epoch train/val metrics
    replay: dict[str, np.ndarray] | None = None  # REPLAY_KEYS (module docstring), or None
    _replay_memo: tuple | None = field(default=None, repr=False, compare=False)
    readout_h0: np.ndarray | None = None  # EXTRA_KEYS (module docstring): None when not recorded
    target: np.ndarray | None = None
    grad_h0: np.ndarray | None = None
    grad_c0: np.ndarray | None = None
    grad_x: np.ndarray | None = None
    upper: dict[str, np.ndarray] = field(default_factory=dict)  # layers 2..N: h0_l2, hT_l2, ...
    reset_slots: np.ndarray | None = None  # (n, B) bool: per-slot resets (packed layout)
    direction: str = "forward"  # whose states h0, hT... are (direction_view)
    layer: int = 1  # which stacked layer's states h0, hT... are (layer_view)

    @property
    def n(self) -> int:
        return int(self.epoch.shape[0])

    @property
    def batch_size(self) -> int:
        return int(self.seq_id.shape[1]) if self.seq_id.ndim == 2 else 0

    @property
    def units(self) -> int:
        return int(self.h0.shape[2]) if self.h0.ndim == 3 else 0

    @property
    def thinned(self) -> bool:
        return self.recorded is not None

    @property
    def index(self) -> np.ndarray:
        """Global batch index of each recorded batch."""
        return self.recorded if self.recorded is not None else np.arange(self.n, dtype=np.int32)

    def config_dict(self) -> dict:
        return json.loads(self.config)

    def stateful(self) -> bool:
        return bool(self.config_dict().get("stateful", False))

    @property
    def cell(self) -> str:
        """LSTM, GRU or SimpleRNN (LSTM for traces from before the setting)."""
        return _cell_of(self.config)

    def state_keys(self) -> tuple[str, ...]:
        """The state arrays this trace holds: h0, c0, hT, cT (LSTM) or h0, hT (layer 1)."""
        return STATE_KEYS if self.c0 is not None else H_KEYS

    @property
    def layers(self) -> int:
        """Stacked recurrent layers (config `layers`; 1 for traces from before the setting)."""
        return _layers_of(self.config)

    @property
    def bidirectional(self) -> bool:
        """Config `bidirectional` (False for traces from before the setting)."""
        return _bidirectional_of(self.config)

    def direction_array(self, key: str, direction: str):
        """A per-direction array (h0, hT, c0, cT, grad_h0, grad_c0) of layer 1 (of the layer
        shown, in a layer_view), or None."""
        if direction == self.direction:
            return getattr(self, key)
        return self.upper.get(key + bidir.suffix(direction))

    def state_array(self, key: str, layer: int, direction: str = "forward"):
        """A per-layer, per-direction array (h0, hT, c0, cT, grad_h0, grad_c0), or None:
        stored as key + direction's suffix + layer's suffix (h0_bw_l2; models/bidir.py)."""
        if layer == self.layer:
            return self.direction_array(key, direction)
        if self.layer != 1 or self.direction != "forward":
            return None  # a view holds its own layer and direction only
        return self.upper.get(bidir.key(key, direction, layer))

    def direction_view(self, direction: str) -> "Trace":
        """This trace with the `direction` layer's states (and state gradients) in h0, c0, hT,
        cT, and its replay data in the replay keys, inputs reversed in time for the backward
        layer (it reads them last step first): what the flow draws for that direction, and a
        carry check that replays it as a plain layer. Of a stacked trace, the view holds the
        layer shown's direction (layer 1's, or layer_view(N)'s) and no replay (the full
        trace's carry check replays every layer and direction)."""
        if direction == self.direction or not self.bidirectional:
            return self
        if direction not in bidir.DIRECTIONS:
            raise ValueError(f"no direction {direction!r}: forward or backward")
        import dataclasses
        arrays = {k: self.direction_array(k, direction) for k in bidir.PER_DIRECTION}
        replay = None
        if (self.replay is not None and self.layers == 1
                and all(k in self.replay for k in bidir.replay_keys())):
            replay = {k: v for k, v in self.replay.items() if k not in REPLAY_DENSE_KEYS}
            replay.update({k: self.replay[k + bidir.BW] for k in stacked.REPLAY_PER_LAYER})
            replay = {k: v for k, v in replay.items() if not bidir.is_backward(k)}
            replay["replay_x"] = np.ascontiguousarray(self.replay["replay_x"][:, :, ::-1])
        return dataclasses.replace(self, **arrays, upper={}, replay=replay, _replay_memo=None,
                                   direction=direction)

    def layer_array(self, key: str, layer: int):
        """A per-layer array (h0, hT, c0, cT, grad_h0, grad_c0) of one layer, or None."""
        if layer == 1:
            return getattr(self, key)
        return self.upper.get(key + stacked.suffix(layer))

    def layer_view(self, layer: int) -> "Trace":
        """This trace with layer `layer`'s states (and state gradients) in h0, c0, hT, cT: what
        the flow draws for that layer. Rows, steps and readout_h0 are shared; no replay (a
        layer above the first can only be replayed from the layers below it). Of a
        bidirectional stack, the layer's backward arrays stay beside them as h0_bw, ... (as a
        one-layer bidirectional trace holds them): `.direction_view("backward")` gives them."""
        if layer == self.layer or layer > self.layers:
            return self
        if self.layer != 1 or self.direction != "forward":
            raise ValueError("a layer or direction view holds one layer: take layer_view of "
                             "the whole trace")
        if layer == 1:
            return self
        import dataclasses
        arrays = {k: self.layer_array(k, layer) for k in stacked.PER_LAYER}
        upper = {}
        if self.bidirectional:
            upper = {k + bidir.BW: self.upper[bidir.key(k, "backward", layer)]
                     for k in stacked.PER_LAYER if bidir.key(k, "backward", layer) in self.upper}
        return dataclasses.replace(self, **arrays, upper=upper, replay=None, _replay_memo=None,
                                   layer=layer)

    # ---- save / load ------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {k: getattr(self, k) for k in self.state_keys() + ROW_KEYS + STEP_KEYS}
        out["config"] = np.array(self.config)
        if self.recorded is not None:
            out["recorded"] = self.recorded
        if self.replay is not None:
            out.update(self.replay)
        out.update({k: getattr(self, k) for k in EXTRA_KEYS if getattr(self, k) is not None})
        out.update(self.upper)
        if self.reset_slots is not None:
            out["reset_slots"] = self.reset_slots
        out["val_epochs"] = np.array([[e.get(c, np.nan) if e.get(c) is not None else np.nan
                                       for c in EPOCH_COLUMNS] for e in self.epochs],
                                     dtype=np.float32).reshape(-1, len(EPOCH_COLUMNS))
        return out

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, **self.to_arrays())
        return buf.getvalue()

    def save(self, path) -> None:
        with open(path, "wb") as fh:
            fh.write(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> "Trace":
        # allow_pickle=False: a trace file is never code.
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return cls.from_arrays(arrays)

    @classmethod
    def load(cls, path) -> "Trace":
        with open(path, "rb") as fh:
            return cls.from_bytes(fh.read())

    @classmethod
    def from_arrays(cls, a: dict) -> "Trace":
        missing = [k for k in H_KEYS + ROW_KEYS + STEP_KEYS + ("config",) if k not in a]
        if missing:
            raise ValueError(f"not a trace: missing {', '.join(missing)}")
        cell = _cell_of(str(a["config"]))
        c_keys = [k for k in C_KEYS if k in a]
        if cells.has_c(cell) and len(c_keys) != 2:
            raise ValueError(f"not a trace: an {cell} trace needs c0 and cT")
        if not cells.has_c(cell) and c_keys:
            raise ValueError(f"not a trace: a {cell} has no c state, yet the file holds "
                             f"{', '.join(c_keys)}")
        keys = STATE_KEYS if c_keys else H_KEYS
        epochs = []
        for row in a.get("val_epochs", np.zeros((0, len(EPOCH_COLUMNS)))):
            e = {c: (None if np.isnan(v) else float(v)) for c, v in zip(EPOCH_COLUMNS, row)}
            e["epoch"] = int(e["epoch"])
            epochs.append(e)
        t = cls(
            **{k: np.asarray(a[k], np.float32) if k in a else None for k in STATE_KEYS},
            **{k: np.asarray(a[k], np.int32) for k in ROW_KEYS},
            epoch=np.asarray(a["epoch"], np.int32), batch=np.asarray(a["batch"], np.int32),
            reset_before=np.asarray(a["reset_before"], bool),
            loss=np.asarray(a["loss"], np.float32), accuracy=np.asarray(a["accuracy"], np.float32),
            config=str(a["config"]),
            recorded=np.asarray(a["recorded"], np.int32) if "recorded" in a else None,
            epochs=epochs,
        )
        for k in EXTRA_KEYS:
            if k in a:
                setattr(t, k, np.asarray(a[k], np.float32))
        n = t.n
        if any(getattr(t, k).shape[0] != n for k in keys + ROW_KEYS + STEP_KEYS
               + tuple(k for k in EXTRA_KEYS if k in a)):
            raise ValueError("not a trace: arrays disagree on the number of batches")
        present = [k for k in REPLAY_KEYS if k in a]
        if present:
            if len(present) != len(REPLAY_KEYS):
                missing = sorted(set(REPLAY_KEYS) - set(present))
                raise ValueError(f"not a trace: replay data without {', '.join(missing)}")
            t.replay = {"replay_batch": np.asarray(a["replay_batch"], np.int32),
                        **{k: np.asarray(a[k], np.float32) for k in REPLAY_KEYS[1:]
                           + tuple(d for d in REPLAY_DENSE_KEYS if d in a)}}
        t.upper = {**_upper_layers(t, a), **_backward_arrays(t, a)}
        if "reset_slots" in a:
            t.reset_slots = np.asarray(a["reset_slots"], bool)
            if t.reset_slots.shape != t.seq_id.shape:
                raise ValueError("not a trace: reset_slots does not match seq_id's shape")
        if present:
            t.replay.update({k: np.asarray(a[k], np.float32) for L in range(2, t.layers + 1)
                             for k in stacked.replay_keys(L) if k in a})
            if t.bidirectional:
                t.replay.update({k: np.asarray(a[k], np.float32) for L in range(1, t.layers + 1)
                                 for k in bidir.replay_keys("backward", L) if k in a})
            problem = _replay_problem(t)
            if problem:
                raise ValueError(f"not a trace: replay data {problem}")
        return t

    # ---- the carry identity ------------------------------------------------------------------
    def carry_check(self) -> dict:
        return carry_check(self)


def transitions(t: Trace) -> dict[str, np.ndarray]:
    """Per recorded batch (n,) bool: `fresh` (starts from zeros: stateless, reset, or the run's
    first batch), `carried` (from the recorded batch before), `gap` (carried from a batch that
    was not recorded)."""
    n, idx = t.n, t.index
    fresh = ~np.full(n, t.stateful()) | np.asarray(t.reset_before, bool)
    if n and idx[0] == 0:
        fresh[0] = True  # nothing came before the run's first batch
    neighbours = np.zeros(n, bool)
    neighbours[1:] = idx[1:] == idx[:-1] + 1
    return {"fresh": fresh, "carried": neighbours & ~fresh, "gap": ~neighbours & ~fresh}


def slot_transitions(t: Trace) -> tuple[np.ndarray, np.ndarray]:
    """(fresh, carried), each (n, B) bool: per slot, started from zeros, or carried from the
    recorded batch before. Without reset_slots every slot of a batch shares its batch's."""
    tr = transitions(t)
    fresh = np.repeat(tr["fresh"][:, None], t.batch_size, axis=1)
    carried = np.repeat(tr["carried"][:, None], t.batch_size, axis=1)
    if t.reset_slots is not None:
        fresh |= t.reset_slots
        carried &= ~t.reset_slots
    return fresh, carried


def sample_geometry(t: Trace) -> tuple[str, int, int]:
    """(layout, sample_len, stride): sample p of a sequence starts at timestep p * stride."""
    from models.config import FIELDS, RunConfig
    d = t.config_dict()
    names = {f.name for f in FIELDS}
    try:  # RunConfig.from_json would also apply this server's limits: a stored trace may exceed them
        cfg = RunConfig(**{k: v for k, v in d.items() if k in names})
        L = int(cfg.sample_len)
    except (TypeError, ValueError):
        cfg, L = RunConfig(), RunConfig().sample_len
    stride = 1 if cfg.layout == "windows" else L
    return cfg.layout, L, stride


def carry_kinds(t: Trace) -> np.ndarray:
    """(n, B) int8: per slot, what the state it started from was (NOT_CARRIED, CONTINUATION,
    BROKEN, CONTAMINATED, PADDING, or for a backward direction view WRONG_END). Only transitions from the recorded batch right before count;
    the flow view draws exactly these, so its arrows and the carry check's counts agree."""
    kinds = np.zeros(t.seq_id.shape, np.int8)
    if t.n < 2:
        return kinds
    carried = slot_transitions(t)[1]
    layout, L, stride = sample_geometry(t)
    prev_seq, cur_seq = t.seq_id[:-1], t.seq_id[1:]
    prev_start = t.part[:-1].astype(np.int64) * stride
    cur_start = t.part[1:].astype(np.int64) * stride
    follows = cur_start == prev_start + L
    if layout == "full":  # every sample is the whole sequence: carrying into it repeats it
        follows[:] = False
    # The backward layer reads each chunk last step first: what it carries is the state at the
    # previous chunk's first step, and it enters this chunk at its last (one step: no difference).
    cont = WRONG_END if t.direction == "backward" and L > 1 else CONTINUATION
    k = np.where(prev_seq != cur_seq, CONTAMINATED, np.where(follows, cont, BROKEN))
    k = np.where((prev_seq < 0) | (cur_seq < 0), PADDING, k)
    kinds[1:] = np.where(carried[1:], k, NOT_CARRIED)
    return kinds


def _upper_layers(t: Trace, a: dict) -> dict[str, np.ndarray]:
    """Layers 2..N's arrays from a file: every state key of every layer must be there."""
    out = {}
    for L in range(2, t.layers + 1):
        keys = stacked.state_keys(t.cell, L)
        missing = [k for k in keys if k not in a]
        if missing:
            raise ValueError(f"not a trace: a {t.layers}-layer trace needs {', '.join(missing)}")
        grads = [f"grad_{n}0{stacked.suffix(L)}" for n in cells.state_names(t.cell)]
        for k in keys + tuple(g for g in grads if g in a):
            out[k] = np.asarray(a[k], np.float32)
            want = t.h0.shape if k in keys else t.h0.shape[:2]
            if out[k].shape != want:
                raise ValueError(f"not a trace: {k} does not match h0's shape")
    extra = [k for k in a if stacked.layer_of(k) > t.layers]
    if extra:
        raise ValueError(f"not a trace: a {t.layers}-layer trace holds {', '.join(sorted(extra))}")
    return out


def _backward_arrays(t: Trace, a: dict) -> dict[str, np.ndarray]:
    """The backward direction's arrays from a file: all of them for a bidirectional trace,
    none for any other."""
    bw = [k for k in a if bidir.is_backward(k) and not k.startswith("replay_")]
    if not t.bidirectional:
        if bw or any(bidir.is_backward(k) for k in a):
            raise ValueError("not a trace: a one-direction trace holds "
                             f"{', '.join(sorted(k for k in a if bidir.is_backward(k)))}")
        return {}
    keys = tuple(k for L in range(1, t.layers + 1) for k in bidir.state_keys(t.cell, "backward", L))
    missing = [k for k in keys if k not in a]
    if missing:
        raise ValueError(f"not a trace: a bidirectional trace needs {', '.join(missing)}")
    out = {}
    for k in bw:
        out[k] = np.asarray(a[k], np.float32)
        want = t.h0.shape if k in keys else t.h0.shape[:2]
        if out[k].shape != want:
            raise ValueError(f"not a trace: {k} does not match h0's shape")
    return out


def _bidirectional_of(config_json: str) -> bool:
    try:
        return json.loads(config_json).get("bidirectional", False) is True
    except (ValueError, AttributeError):
        return False


def _layers_of(config_json: str) -> int:
    try:
        n = json.loads(config_json).get("layers", 1)
    except (ValueError, AttributeError):
        return 1
    return n if isinstance(n, int) and 1 <= n <= 9 else 1


def _cell_of(config_json: str) -> str:
    try:
        cell = json.loads(config_json).get("cell", "LSTM")
    except (ValueError, AttributeError):
        return "LSTM"
    return cell if cell in cells.STATES else "LSTM"


def _lstm_numpy(x, h, c, kernel, recurrent, bias):
    """Keras's LSTM equations in float64 NumPy (cells.run_numpy). Returns the final h, c."""
    return cells.run_numpy("LSTM", x, (h, c), kernel, recurrent, bias)


def _replay_problem(t: Trace) -> str | None:
    r = t.replay
    m = r["replay_batch"].shape[0]
    if r["replay_batch"].ndim != 1 or any(r[k].shape[:1] != (m,) for k in REPLAY_KEYS):
        return "arrays disagree on the number of replayed batches"
    if m and (r["replay_batch"].min() < 0 or r["replay_batch"].max() >= t.n):
        return "points outside the recorded batches"
    if r["replay_x"].ndim != 4 or r["replay_x"].shape[1] > t.batch_size:
        return "has inputs of the wrong shape"
    F, U = r["replay_x"].shape[3], t.units
    kernel, recurrent, bias = cells.weight_shapes(t.cell, F, U)
    if (r["replay_kernel"].shape[1:] != kernel or r["replay_recurrent"].shape[1:] != recurrent
            or r["replay_bias"].shape[1:] != bias):
        return f"has {t.cell} weights that do not fit {U} units and {F} features"
    if t.bidirectional:
        keys = bidir.replay_keys()
        if any(k not in r for k in keys):
            return f"without the backward layer's weights ({', '.join(k for k in keys if k not in r)})"
        if tuple(r[k].shape[1:] for k in keys) != (kernel, recurrent, bias):
            return f"has backward {t.cell} weights that do not fit {U} units and {F} features"
    # layer L reads layer L-1's U outputs (2U: both directions' side by side)
    n_in = U * (2 if t.bidirectional else 1)
    for L in range(2, t.layers + 1):
        for d in bidir.DIRECTIONS[:2 if t.bidirectional else 1]:
            keys = bidir.replay_keys(d, L)
            which = f"layer {L}" + (f" {d}" if t.bidirectional else "")
            if any(k not in r for k in keys):
                return f"without {which}'s weights ({', '.join(k for k in keys if k not in r)})"
            if tuple(r[k].shape for k in keys) != tuple((m,) + w for w in
                                                       cells.weight_shapes(t.cell, n_in, U)):
                return f"has {which} {t.cell} weights that do not fit {U} units"
    return None


def replay_errors(t: Trace) -> np.ndarray:
    """Per replayed batch, (m,) float (empty: nothing to replay): the largest difference
    between the recorded hT, cT and the ones recomputed from the recorded h0, c0. h is
    compared as is (|h| < 1); c relative to its size where |c| > 1 (c is unbounded: float32
    keeps ~7 significant digits, so a c of 40 differs by 1e-5 where h differs by 1e-7).

    Remembered on the trace (a page shows it on every rerun) until any array it reads changes.
    """
    by_layer = replay_errors_by_layer(t)
    return by_layer.max(axis=0) if len(by_layer) else np.zeros(0)


def replay_errors_by_layer(t: Trace) -> np.ndarray:
    """(rows, m): replay_errors per layer and direction, layer 1 first, forward before
    backward (one row per layer without the bidirectional setting). Layer 1 replays from the
    recorded inputs; layer N > 1 from layer N-1's output sequence (both directions' side by
    side), itself recomputed from layer N-1's recorded h0, c0 (h0_bw, c0_bw).
    (0, 0) when there is nothing to replay."""
    if t.replay is None or not len(t.replay["replay_batch"]):
        return np.zeros((0, 0))
    r = t.replay
    k = r["replay_batch"]
    S = r["replay_x"].shape[1]
    used = (tuple(getattr(t, n)[k, :S] for n in t.state_keys())
            + tuple(v[k, :S] for n, v in sorted(t.upper.items()) if not n.startswith("grad"))
            + tuple(r[n] for n in sorted(r)))
    digest = hashlib.blake2b(digest_size=16)
    for a in used:
        digest.update(np.ascontiguousarray(a).tobytes())
    key = digest.hexdigest()
    if t._replay_memo is not None and t._replay_memo[0] == key:
        return t._replay_memo[1].copy()
    x, rows = r["replay_x"], []
    names = cells.state_names(t.cell)
    both = t.bidirectional and t.direction == "forward" and "replay_kernel_bw" in r

    def error(new, get):
        dh = np.abs(new[0] - get("hT")[k, :S]).reshape(len(k), -1)
        out = dh.max(axis=1, initial=0.0)
        if len(new) > 1:  # an LSTM's c
            cT = get("cT")[k, :S].astype(np.float64)
            dc = (np.abs(new[1] - cT) / np.maximum(1.0, np.abs(cT))).reshape(len(k), -1)
            out = np.maximum(out, dc.max(axis=1, initial=0.0))
        return out
    for L in range(1, t.layers + 1):
        s0 = tuple(t.layer_array(f"{n}0", L)[k, :S] for n in names)
        *new, seq = cells.run_numpy(t.cell, x, s0, *(r[w] for w in stacked.replay_keys(L)),
                                    sequence=True)
        rows.append(error(new, lambda key: t.layer_array(key, L)))
        if both:
            # the backward layer reads the batch last step first, from the recorded h0_bw
            s0 = tuple(t.state_array(f"{n}0", L, "backward")[k, :S] for n in names)
            *new, back = cells.run_numpy(t.cell, x[:, :, ::-1], s0,
                                         *(r[w] for w in bidir.replay_keys("backward", L)),
                                         sequence=True)
            rows.append(error(new, lambda key: t.state_array(key, L, "backward")))
            # the next layer reads both output sequences side by side, the backward one
            # flipped back into time order (Bidirectional, merge_mode "concat")
            seq = np.concatenate([seq, back[:, :, ::-1]], axis=-1)
        x = seq
    out = np.stack(rows)
    t._replay_memo = (key, out)
    return out.copy()


def carry_check(t: Trace) -> dict:
    """Measure the carry identity on the recorded batches, and replay sampled batches.

    stateful and no reset before k+1: h0[k+1] == hT[k] (and c for an LSTM); that pair is *carried*, and each
    carried slot is a continuation, broken, contaminated or padding (`carry_kinds`).
    stateless, or a reset: h0 == 0; that batch is a *fresh start* (each slot counts).
    Replay: hT/cT recomputed from the recorded h0/c0, inputs and weights (`replay_errors`);
    `max_replay_error` is None when the trace holds no replay data.
    Returns counts per slot transition and the largest deviations (0.0 means exact), over
    every layer and direction the trace holds. A stacked trace adds `layers` (one row per
    layer, both directions in it), a bidirectional one `directions` (one row per direction,
    of every layer: with stacked layers each row also names its `layer`).
    """
    fresh, carried = slot_transitions(t)  # (n, B): a packed run resets slots on their own
    names = cells.state_names(t.cell)
    units = _checked_units(t)
    reps = replay_errors_by_layer(t)
    if len(reps) != len(units):  # a view of one layer and direction: nothing replayed
        reps = np.zeros((0, 0))
    rows = []
    for i, (L, d, v) in enumerate(units):
        pairs = [(getattr(v, f"{n}0"), getattr(v, f"{n}T")) for n in names]
        err = fresh_abs = 0.0
        if carried.any():
            k, j = np.nonzero(carried)
            err = float(max(np.abs(a[k, j] - b[k - 1, j]).max() for a, b in pairs))
        if fresh.any():
            fresh_abs = float(max(np.abs(a[fresh]).max() for a, _ in pairs))
        rep = reps[i] if len(reps) else None
        rows.append({"layer": L, "direction": d, "view": v, "max_carry_error": err,
                     "max_fresh_abs": fresh_abs,
                     "max_replay_error": float(rep.max()) if rep is not None and len(rep) else None})
    err = max(r["max_carry_error"] for r in rows)
    fresh_abs = max(r["max_fresh_abs"] for r in rows)
    kinds = carry_kinds(t)
    rep = reps.max(axis=0) if len(reps) else np.zeros(0)
    stack = {}
    layers = sorted({r["layer"] for r in rows})
    if len(layers) > 1:  # per layer, so a wrong layer is named (a one-layer check is unchanged)
        by_layer = []
        for L in layers:
            mine = [r for r in rows if r["layer"] == L]
            e = [r["max_replay_error"] for r in mine if r["max_replay_error"] is not None]
            by_layer.append({"layer": L,
                             "max_carry_error": max(r["max_carry_error"] for r in mine),
                             "max_fresh_abs": max(r["max_fresh_abs"] for r in mine),
                             "max_replay_error": max(e) if e else None})
        stack = {"layers": by_layer}
    if len({r["direction"] for r in rows}) > 1:
        stack["directions"] = [_direction_row(r, t.layers > 1) for r in rows]
    return {**stack,
        "carried": int(carried.sum()),
        "max_carry_error": err,
        "fresh_starts": int(fresh.sum()),
        "max_fresh_abs": fresh_abs,
        "contaminated": int((kinds == CONTAMINATED).sum()),
        "continuation": int((kinds == CONTINUATION).sum()),
        "broken": int((kinds == BROKEN).sum()),
        **({"wrong_end": int((kinds == WRONG_END).sum())} if t.direction == "backward" else {}),
        "replayed": int(len(rep)),
        "max_replay_error": float(rep.max()) if len(rep) else None,
    }


def _checked_units(t: Trace) -> list[tuple[int, str, Trace]]:
    """(layer, direction, view whose h0, hT... are that one's) of every layer and direction the
    trace holds, in replay_errors_by_layer's row order: layer 1 first, forward before backward.
    A layer_view holds its own layer (both directions), a direction_view only itself."""
    if t.direction != "forward":
        return [(t.layer, t.direction, t)]
    out = []
    for L in ([t.layer] if t.layer != 1 else range(1, t.layers + 1)):
        v = t if L == t.layer else t.layer_view(L)
        if v.h0 is None:  # not held (a layer the trace lacks)
            continue
        out.append((L, "forward", v))
        if t.bidirectional and v.direction_array("h0", "backward") is not None:
            out.append((L, "backward", v.direction_view("backward")))
    return out


def _direction_row(row: dict, stacked_: bool) -> dict:
    """One direction's carry check (a bidirectional trace's): carry and fresh errors, carry
    kinds, and its replay (the backward replay runs over the inputs reversed in time)."""
    kinds = carry_kinds(row["view"])
    return {**({"layer": row["layer"]} if stacked_ else {}),
            "direction": row["direction"], "max_carry_error": row["max_carry_error"],
            "max_fresh_abs": row["max_fresh_abs"],
            "continuation": int((kinds == CONTINUATION).sum()),
            "wrong_end": int((kinds == WRONG_END).sum()),
            "contaminated": int((kinds == CONTAMINATED).sum()),
            "max_replay_error": row["max_replay_error"]}


def empty_trace(config_json: str, batch_size: int, units: int) -> Trace:
    z3 = np.zeros((0, batch_size, units), np.float32)
    cell = _cell_of(config_json)
    c = z3 if cells.has_c(cell) else None
    z2 = np.zeros((0, batch_size), np.int32)
    z1 = np.zeros((0,), np.int32)
    upper = {k: z3 for L in range(2, _layers_of(config_json) + 1)
             for k in stacked.state_keys(cell, L)}
    if _bidirectional_of(config_json):
        upper.update({k: z3 for L in range(1, _layers_of(config_json) + 1)
                      for k in bidir.state_keys(cell, "backward", L)})
    return Trace(z3, c, z3, c, z2, z2, z1, z1, np.zeros(0, bool),
                 np.zeros(0, np.float32), np.zeros(0, np.float32), config_json, upper=upper)


def concat(config_json: str, parts: list[dict], total_batches: int, epochs: list[dict],
           batch_size: int, units: int) -> Trace:
    """Build a Trace from recorded chunks (dicts of arrays with a global `index`)."""
    if not parts:
        t = empty_trace(config_json, batch_size, units)
        t.epochs = list(epochs)
        return t
    cat, idx, replay = _stack(parts)
    full = len(idx) == total_batches and (idx == np.arange(total_batches)).all()
    return Trace(**cat, config=config_json, recorded=None if full else idx, epochs=list(epochs),
                 replay=replay)


def _stack(parts: list[dict], last: int | None = None) -> tuple[dict, np.ndarray, dict | None]:
    """Concatenate recorded chunks (keeping only the `last` batches if given): the arrays, the
    global index, and the replay data. A chunk's optional "replay" (REPLAY_KEYS but
    replay_batch) is for its first batch."""
    keys = [k for k in parts[0] if k != "replay"]
    cat = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    total = len(cat["index"])
    drop = 0 if last is None else max(0, total - last)
    cat = {k: v[drop:] for k, v in cat.items()}
    idx = cat.pop("index").astype(np.int32)
    cat = {"c0": None, "cT": None, **cat}  # GRU, SimpleRNN record no c
    cat["upper"] = {k: cat.pop(k) for k in list(cat)
                    if stacked.layer_of(k) > 1 or bidir.is_backward(k)}
    if "reset_slots" in cat:
        cat["reset_slots"] = cat["reset_slots"].astype(bool)
    offsets = np.cumsum([0] + [len(p["index"]) for p in parts[:-1]]) - drop
    rep = [(int(o), p["replay"]) for o, p in zip(offsets, parts)
           if p.get("replay") is not None and o >= 0]
    replay = None
    if rep:
        more = tuple(k for k in rep[0][1] if k not in REPLAY_KEYS and all(k in r for _, r in rep))
        replay = {"replay_batch": np.array([o for o, _ in rep], np.int32),
                  **{k: np.stack([r[k] for _, r in rep]) for k in REPLAY_KEYS[1:] + more}}
    return cat, idx, replay


def recorded_epochs(n_epochs: int, batches_per_epoch: int, cap: int) -> tuple[set[int], int]:
    """Which epochs (from 1) to keep, and how many batches of each (a prefix), within `cap`.

    All epochs when they fit; else whole epochs: the first, the last and evenly spaced ones
    between; when only one whole epoch fits, the last (what training ended with). When one epoch
    alone is longer than the cap: the first cap // 2 batches of the first and of the last epoch
    (the first `cap` batches of a one-epoch run, or when cap is 1 the last epoch's first batch).
    """
    cap = max(1, cap)
    if batches_per_epoch > cap:
        if n_epochs == 1:
            return {1}, cap
        if cap < 2:
            return {n_epochs}, cap
        return {1, n_epochs}, cap // 2
    per = max(batches_per_epoch, 1)
    k = cap // per
    if k >= n_epochs:
        return set(range(1, n_epochs + 1)), per
    if k == 1:
        return {n_epochs}, per
    return {int(round(x)) for x in np.linspace(1, n_epochs, k)}, per


def gradient_summary(t: Trace, epoch: int | None = None) -> dict | None:
    """Where the gradient stops, from the recorded gradients (None when the trace has none).

    steps: timesteps per batch (the gradient reaches at most this far back); carried: batches
    whose state was carried in (stateful, no reset, not the run's first); grad_h0_median /
    grad_c0_median: median |dL/dh0|, |dL/dc0| over the slots of carried batches of `epoch` (the
    first recorded epoch by default: while the model learns); reach: mean |dL/dx_t| per step
    over those batches, step 0 first; carried_accuracy / fresh_accuracy: mean training accuracy of
    the carried and of the fresh batches in the last recorded epoch. grad_h0_median is the
    trace's own h0's (layer 1 forward, or a view's layer and direction); a trace holding more
    than one layer or direction adds `per_state`: one row per (layer, direction) with its own
    grad_h0_median (grad_c0_median), in carry_check's order."""
    if t.grad_h0 is None or t.n == 0:
        return None
    tr = transitions(t)
    carried = ~tr["fresh"]
    first = int(t.epoch.min()) if epoch is None else int(epoch)
    sel = carried & (t.epoch == first)
    last = t.epoch == t.epoch.max()
    mean = lambda a: float(a.mean()) if a.size else None  # noqa: E731
    med = lambda a: float(np.median(a[sel])) if a is not None and sel.any() else None  # noqa: E731
    units = _checked_units(t)
    per = ({"per_state": [{"layer": L, "direction": d, "grad_h0_median": med(v.grad_h0),
                           "grad_c0_median": med(v.grad_c0)} for L, d, v in units]}
           if len(units) > 1 else {})
    return {
        **per,
        "steps": int(t.grad_x.shape[1]), "epoch": first,
        "carried": int(carried.sum()), "fresh": int((~carried).sum()),
        "grad_h0_median": float(np.median(t.grad_h0[sel])) if sel.any() else None,
        "grad_c0_median": (float(np.median(t.grad_c0[sel])) if sel.any() and t.grad_c0 is not None
                           else None),  # None too for a cell without c
        "reach": t.grad_x[sel].mean(axis=0).tolist() if sel.any() else [],
        "carried_accuracy": mean(t.accuracy[last & carried]),
        "fresh_accuracy": mean(t.accuracy[last & ~carried]),
        "last_epoch": int(t.epoch.max()),
    }
