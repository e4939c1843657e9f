"""Per-slot resets on the flow grid (layout "packed", trace.reset_slots): a short bar on the
boundary before each cell whose slot alone was reset because its sequence ended there. A batch
reset for every slot keeps the full-height bar of viz/flow.py."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from models.trace import Trace

SLOT_RESET = "╎ this slot reset (its sequence ended; the others carry on)"


def slot_reset_traces(trace: Trace, cols: np.ndarray, S: int) -> list[go.Scatter]:
    """[] unless the trace has slots reset on their own among the drawn columns `cols`
    (positions, as flow_figure draws them: column j at x=j) and slots 0..S-1."""
    if trace.reset_slots is None or not trace.stateful():
        return []
    r = np.asarray(trace.reset_slots, bool)[cols, :S]
    r &= ~np.asarray(trace.reset_before, bool)[cols, None]  # whole-batch resets: the tall bar
    j, i = np.nonzero(r)
    if not len(j):
        return []
    x = np.repeat(j.astype(np.float32) - 0.5, 3).reshape(-1, 3)
    x[:, 2] = np.nan
    y = np.stack([i - 0.45, i + 0.45, np.full(len(i), np.nan)], axis=1).astype(np.float32)
    return [go.Scatter(x=x.ravel(), y=y.ravel(), mode="lines", name=SLOT_RESET,
                       line=dict(color="#111", width=4), hoverinfo="skip")]
