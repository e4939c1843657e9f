"""Stacked layers: one sentence per run saying what the carry check measured on each layer
(models/trace.py carry_check's per-layer rows). The flow itself draws one layer at a time
(Trace.layer_view)."""
from __future__ import annotations

from models.trace import REPLAY_TOLERANCE, Trace


def _g(x: float) -> str:
    return "0 (exact)" if x == 0 else f"{x:.2g}"


def layer_summary(trace: Trace) -> str:
    """'Each of the 2 layers keeps its own state per slot: layer 1 carried exactly, replay
    matches to 1e-07; ...' ('' for a one-layer run). A layer whose check fails is named."""
    if trace.n == 0 or trace.layers < 2:
        return ""
    rows = trace.carry_check().get("layers") or []
    parts = []
    for r in rows:
        p = f"layer {r['layer']}: largest |h0[k+1]−hT[k]| = {_g(r['max_carry_error'])}"
        e = r.get("max_replay_error")
        if e is not None:
            p += (f", replay matches to {e:.0e}" if e <= REPLAY_TOLERANCE
                  else f", replay does NOT match (off by up to {_g(e)})")
        parts.append(p)
    return (f"Each of the {trace.layers} stacked layers keeps its own state per slot, checked "
            f"separately ({'; '.join(parts)}). Layer 1 reads the input, layer "
            f"{trace.layers} feeds the Dense layer; the readout colour reads layer "
            f"{trace.layers}'s h0.")
