"""How samples were placed into batches and slots before training (no states yet)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from viz.flow import empty_figure, grid_axes, labelled_grid


def layout_figure(seq_id: np.ndarray, part: np.ndarray, max_batches: int = 40,
                  max_slots: int = 32, title: str = "", visible: int = 20) -> go.Figure:
    """Grid of batches (x) by slots (y), coloured and labelled like the flow view.
    seq_id, part: int arrays (n_batches, batch_size); -1 marks padding / trimmed samples."""
    seq_id, part = np.asarray(seq_id), np.asarray(part)
    if seq_id.ndim != 2 or seq_id.size == 0:
        return empty_figure("No batches laid out yet.")
    if seq_id.shape != part.shape:
        raise ValueError("seq_id and part must have the same shape")
    n, B = seq_id.shape
    nb, S = min(n, max_batches), min(B, max_slots)
    fig = go.Figure(labelled_grid(seq_id[:nb, :S], part[:nb, :S]))
    grid_axes(fig, S, [f"batch {b}" for b in range(nb)])
    # As many columns as fit their labels; drag sideways (pan) for the rest.
    fig.update_xaxes(range=[-0.5, min(nb, visible) - 0.5])
    notes = [f"showing batches 0–{nb - 1} of {n}"] if nb < n else []
    notes += [f"drag sideways for batches {visible}–{nb - 1}"] if visible < nb else []
    notes += [f"showing slots 0–{S - 1} of {B}"] if S < B else []
    text = title or "<b>Batch layout</b> · one row per slot: a row of one colour is one sequence"
    if notes:
        text += "<br><sup>" + " · ".join(notes) + "</sup>"
    fig.update_layout(title=dict(text=text, x=0, font=dict(size=15)),
                      margin=dict(l=60, r=20, t=70, b=40))
    fig.update_layout(height=int(110 + 22 * max(S, 4)))
    return fig
