"""Stacked layers and a Bidirectional layer's directions: one sentence per run saying what the
carry check measured on each layer or direction (models/trace.py carry_check's per-layer and
per-direction rows). The flow itself draws one at a time (Trace.layer_view, direction_view)."""
from __future__ import annotations

from models.trace import REPLAY_TOLERANCE, Trace


def _g(x: float) -> str:
    return "0 (exact)" if x == 0 else f"{x:.2g}"


def _checked(name: str, r: dict) -> str:
    """One layer's or direction's carry identity and replay, from its carry_check row."""
    p = f"{name}: largest |h0[k+1]−hT[k]| = {_g(r['max_carry_error'])}"
    e = r.get("max_replay_error")
    if e is not None:
        p += (f", replay matches to {e:.0e}" if e <= REPLAY_TOLERANCE
              else f", replay does NOT match (off by up to {_g(e)})")
    return p


def layer_summary(trace: Trace) -> str:
    """'Each of the 2 layers keeps its own state per slot: layer 1 carried exactly, replay
    matches to 1e-07; ...' ('' for a one-layer run). A layer whose check fails is named."""
    if trace.n == 0 or trace.layers < 2:
        return ""
    rows = trace.carry_check().get("layers") or []
    parts = [_checked(f"layer {r['layer']}", r) for r in rows]
    return (f"Each of the {trace.layers} stacked layers keeps its own state per slot, checked "
            f"separately ({'; '.join(parts)}). Layer 1 reads the input, layer "
            f"{trace.layers} feeds the Dense layer; the readout colour reads layer "
            f"{trace.layers}'s h0.")


def direction_summary(trace: Trace, layer: int | None = None) -> str:
    """The carry check per direction of a Bidirectional run ('' for any other): each
    direction's carry identity and replay, and what its carries are. Of stacked layers, the
    rows of `layer` (every layer's when None), each named with its layer."""
    if trace.n == 0 or not trace.bidirectional:
        return ""
    rows = [r for r in trace.carry_check().get("directions") or []
            if layer is None or r.get("layer", 1) == layer]
    parts = []
    for r in rows:
        name = r["direction"] if "layer" not in r else f"layer {r['layer']} {r['direction']}"
        p = _checked(name, r)
        if r["direction"] == "backward":
            p += (f", {r['wrong_end']:,} carries enter the next chunk at the wrong end"
                  if r["wrong_end"] else f", {r['continuation']:,} continuations")
        else:
            p += f", {r['continuation']:,} continuations"
        parts.append(p)
    return ("Bidirectional: the forward and the backward layer each keep their own state per "
            f"slot, checked separately ({'; '.join(parts)}). The backward layer reads a chunk "
            "last step first, so the state it carries is its state at the chunk's first step, "
            "and the next chunk starts from it at its last step: the backward replay runs over "
            "the inputs reversed in time. The readout colour reads both h0 side by side.")
