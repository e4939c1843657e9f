"""Stacked recurrent layers (the `layers` setting, 1-3): names and seeds shared by the engine,
the trace and the generated script.

Layer 1 reads the input; layer N > 1 reads layer N-1's whole output sequence
(return_sequences=True); the Dense layer reads the last layer's final h. Each layer keeps its own
per-slot state (its own `layer.states`), carried, reset and recorded separately.

Trace keys: layer 1's arrays keep the one-layer names (h0, c0, hT, cT, grad_h0, grad_c0,
replay_kernel, replay_recurrent, replay_bias), so a one-layer trace is exactly as before and a
stacked trace's layer 1 reads as one. Layer N > 1 adds the suffix `_lN` (h0_l2, hT_l2, ...).
"""
from __future__ import annotations

import re

from models import cells

LAYER_KEY = re.compile(r"^(.+)_l([2-9])$")
PER_LAYER = ("h0", "c0", "hT", "cT", "grad_h0", "grad_c0")
REPLAY_PER_LAYER = ("replay_kernel", "replay_recurrent", "replay_bias")


def suffix(layer: int) -> str:
    return "" if layer == 1 else f"_l{layer}"


def state_keys(cell: str, layer: int) -> tuple[str, ...]:
    """h0, hT (and c0, cT for an LSTM) of one layer, named as the trace stores them."""
    names = cells.state_names(cell)
    return tuple(f"{n}{e}{suffix(layer)}" for e in "0T" for n in names)


def replay_keys(layer: int) -> tuple[str, ...]:
    return tuple(k + suffix(layer) for k in REPLAY_PER_LAYER)


def layer_of(key: str) -> int:
    """The layer a trace key belongs to (1 for the unsuffixed, one-layer names)."""
    m = LAYER_KEY.match(key)
    return int(m.group(2)) if m else 1


def seeds(seed: int, layer: int) -> tuple[int, int]:
    """(kernel, recurrent) initialiser seeds of one layer: layer 1 seed, seed+1 (Dense has
    seed+2, as in a one-layer run), layer N > 1 seed+2N-1, seed+2N."""
    return (seed, seed + 1) if layer == 1 else (seed + 2 * layer - 1, seed + 2 * layer)
