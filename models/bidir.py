"""The `bidirectional` setting: names, seeds and the layer, shared by the engine, the trace and
the generated script (the plain-Keras measurement is models/bidirectional.py).

keras.layers.Bidirectional holds two layers of the cell: `forward_layer` reads the sample from
its first step to its last, `backward_layer` (go_backwards=True) from its last step to its
first. Each keeps its own per-slot state (`.states`), carried, reset and recorded separately.
Dense reads both final h side by side (merge_mode "concat": 2 x units).

What a stateful backward layer carries (measured: models/bidirectional.py, and every run's
replay): it reads chunk k from its last step down to its first, so the state it stores is the
state at chunk k's FIRST step; chunk k+1 is then read from ITS last step, starting from that
state. The backward carry hands the start of one chunk to the end of the next: it is the
backward layer continuing the stream "chunk 1 reversed, chunk 2 reversed, ...", neither the
sequence read forwards nor the sequence read backwards (trace.WRONG_END). With samples of one
step the backward layer reads each step as the forward one does, and its carry is an ordinary
continuation.

Trace keys: the forward direction keeps the plain names (h0, c0, hT, cT, grad_h0, grad_c0,
replay_kernel, replay_recurrent, replay_bias), so a one-direction trace is exactly as before
and a bidirectional trace's forward direction reads as one. The backward direction adds the
suffix `_bw` (h0_bw, hT_bw, ..., replay_kernel_bw, ...).

Stacked Bidirectional layers (config `layers` 2-3): every layer is a Bidirectional layer; layer
N > 1 reads layer N-1's two output sequences side by side (merge_mode "concat": 2 x units per
step, the backward one flipped back into time order by Bidirectional). One composition for every
key: the name, then the direction's suffix, then the layer's (models/stacked.py): h0_bw_l2,
grad_c0_bw_l3, replay_kernel_bw_l2. So `stacked.layer_of` reads the layer from the end and
`is_backward` the direction before it; layer 1's keys are exactly the one-layer ones.
"""
from __future__ import annotations

import re

from models import cells, stacked

DIRECTIONS = ("forward", "backward")
BW = "_bw"
PER_DIRECTION = stacked.PER_LAYER  # h0, c0, hT, cT, grad_h0, grad_c0
# Backward initialiser seeds sit after every stacked layer's (models/stacked.py): layer L's
# backward direction uses the seeds layer L + BACKWARD_OFFSET would have.
BACKWARD_OFFSET = 3


def suffix(direction: str) -> str:
    return BW if direction == "backward" else ""


_BACKWARD_KEY = re.compile(r"_bw(_l[2-9])?$")


def is_backward(key: str) -> bool:
    """A backward direction's key, of any layer: h0_bw, replay_kernel_bw, h0_bw_l2."""
    return _BACKWARD_KEY.search(key) is not None


def key(name: str, direction: str = "forward", layer: int = 1) -> str:
    """A per-layer, per-direction trace key: the name, the direction's suffix, the layer's."""
    return name + suffix(direction) + stacked.suffix(layer)


def state_keys(cell: str, direction: str = "backward", layer: int = 1) -> tuple[str, ...]:
    """h0, hT (and c0, cT for an LSTM) of one direction of one layer, named as the trace
    stores them."""
    names = cells.state_names(cell)
    return tuple(key(f"{n}{e}", direction, layer) for e in "0T" for n in names)


def replay_keys(direction: str = "backward", layer: int = 1) -> tuple[str, ...]:
    return tuple(key(k, direction, layer) for k in stacked.REPLAY_PER_LAYER)


def seeds(seed: int, layer: int, direction: str) -> tuple[int, int]:
    """(kernel, recurrent) initialiser seeds of one direction of one layer. The forward
    direction's are a plain layer's, so a bidirectional run's forward layer starts exactly
    where the same run without the setting starts."""
    return stacked.seeds(seed, layer + (BACKWARD_OFFSET if direction == "backward" else 0))


def wrap(forward, backward):
    """The real keras.layers.Bidirectional around two built-to-match layers.

    supports_masking=False: Keras 3.15's Bidirectional.compute_mask multiplies a generator
    (`(None for _ in self.states) * 2`) as soon as a stateful layer returns its states, a
    TypeError at model building. We pass no masks, so no mask is lost."""
    import keras
    bi = keras.layers.Bidirectional(forward, backward_layer=backward)
    bi.supports_masking = False
    return bi


def problems(cfg) -> list[str]:
    """Combinations the bidirectional setting refuses, said as what to change. None now:
    stacked layers are each wrapped in Bidirectional (the module docstring)."""
    return []
