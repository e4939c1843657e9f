"""Hidden state as heatmaps: one slot across batches, or one batch across timesteps.

h is tanh-bounded, so the colour range is fixed to [-1, 1] with white at 0: a state that
snaps back to zero after a reset shows as a white column, and colours mean the same in
every figure."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from models.trace import BROKEN, CONTAMINATED, WRONG_END, Trace, carry_kinds
from viz.flow import (BROKEN_COLOUR, CONTAMINATION_COLOUR, LEGEND, WRONG_END_COLOUR, empty_figure,
                      transitions)

H_SCALE = "RdBu_r"  # diverging: blue negative, white zero, red positive


def _heatmap(z: np.ndarray, x, xlabel: str) -> go.Heatmap:
    return go.Heatmap(z=z.astype(np.float32), x=x, zmin=-1, zmax=1, zmid=0, colorscale=H_SCALE,
                      colorbar=dict(title="h", thickness=12),
                      hovertemplate=f"unit %{{y}} · {xlabel} %{{x}}: %{{z:.3f}}<extra></extra>")


def hidden_heatmap(trace: Trace, slot: int, which: str = "hT", total: int | None = None,
                   layer: int = 1, compact: bool = False) -> go.Figure:
    """Units (y) x recorded batches (x) of one slot's h0 or hT (of `layer`, for a stacked
    run: pass trace.layer_view(layer) and the layer, for the title; for a Bidirectional run,
    trace.direction_view(direction): the title names trace.direction). A marker row above the
    units: '0' where the batch started from zeros, orange ring where a carried state landed on
    the wrong part of its sequence, red ✕ where it changed sequence, purple ◀ where the
    backward direction's carry entered the next chunk at its last step (trace.WRONG_END)."""
    if which not in ("h0", "hT"):
        raise ValueError("which must be 'h0' or 'hT'")
    if trace.n == 0:
        return empty_figure("Waiting for the first batch…")
    if not 0 <= slot < trace.batch_size:
        raise ValueError(f"slot must be in 0..{trace.batch_size - 1}")
    h = getattr(trace, which)[:, slot, :]
    # x = recorded position (a thinned trace leaves no stretched cells over unrecorded batches);
    # ticks and hover name the global batch index.
    x = np.arange(trace.n)
    heat = _heatmap(h.T, x, "batch")
    heat.update(customdata=np.broadcast_to(trace.index, h.T.shape).astype(np.int32),
                hovertemplate="unit %{y} · batch #%{customdata}: %{z:.3f}<extra></extra>")
    fig = go.Figure(heat)
    tr = transitions(trace)
    kinds = carry_kinds(trace)[:, slot]  # the flow view and the carry check use the same kinds
    marks = (("starts from zeros", tr["fresh"], dict(symbol="line-ns-open", size=12, color="#111",
                                                     line=dict(width=2))),
             ("batches not recorded before", tr["gap"], dict(symbol="line-ns-open", size=12,
                                                             color="#999", line=dict(width=2))),
             (LEGEND["broken"], kinds == BROKEN,
              dict(symbol="circle-open", size=10, color=BROKEN_COLOUR, line=dict(width=2))),
             (LEGEND["contaminated"], kinds == CONTAMINATED,
              dict(symbol="x", size=11, color=CONTAMINATION_COLOUR)),
             (LEGEND["wrong_end"], kinds == WRONG_END,
              dict(symbol="triangle-left", size=10, color=WRONG_END_COLOUR)))
    for name, flag, marker in marks:
        k = np.nonzero(flag)[0]
        if len(k) or name == "starts from zeros":
            fig.add_trace(go.Scatter(x=k, y=np.full(len(k), -1.2), mode="markers", marker=marker,
                                     name=name, customdata=trace.index[k],
                                     hovertemplate=f"batch #%{{customdata}}: {name}<extra></extra>"))
    step = max(1, trace.n // 12)
    fig.update_xaxes(tickvals=x[::step], ticktext=[str(i) for i in trace.index[::step]])
    mode = "stateless: every batch starts from zeros" if not trace.stateful() else "stateful"
    if trace.c0 is None:  # h is all a GRU or SimpleRNN carries: say so where only h is drawn
        mode += f"; {trace.cell}: h is its whole state"
    # total: batches the run trained (a stopped run trained past its last recorded batch).
    run = total if total is not None else int(trace.index[-1]) + 1
    thin = f" · thinned: {trace.n:,} of {run:,} batches recorded" if trace.thinned else ""
    who = f"Slot {slot}" + (f", layer {layer} of {trace.layers}" if trace.layers > 1 else "")
    if trace.bidirectional:  # which of Bidirectional's two layers: forward_layer, backward_layer
        who += f", {trace.direction} direction"
        which_name = which + ("_bw" if trace.direction == "backward" else "")
        if compact:  # a phone (390 px): one short line each
            who += ":<br>"
            mode = mode.replace("; ", "<br>")
            thin = thin.replace(" · ", "<br>")
    else:
        which_name = which
    who = who if who.endswith("<br>") else who + ": "
    fig.update_layout(
        title=dict(text=f"{who}{which_name} after each batch ({mode}){thin}" if which == "hT"
                   else f"{who}{which_name} before each batch ({mode}){thin}", x=0,
                   font=dict(size=14)),
        yaxis=dict(title="unit", range=[trace.units - 0.5, -1.9], zeroline=False),
        xaxis=dict(title="batch (global index)", zeroline=False, showgrid=False),
        height=max(260, 140 + 14 * trace.units) + 85 * ("<br>" in who), template="plotly_white",
        legend=dict(orientation="h", y=-0.3 - 0.25 * ("<br>" in who)),
        margin=dict(l=60, r=20, t=50 + 45 * ("<br>" in who), b=60 + 40 * ("<br>" in who)))
    return fig


def timestep_heatmap(h_seq: np.ndarray, title: str = "") -> go.Figure:
    """Units (y) x timesteps (x) of h inside one sample; h_seq is (timesteps, units)."""
    h_seq = np.asarray(h_seq, float)
    if h_seq.size == 0:
        return empty_figure("No timesteps to show yet.")
    if h_seq.ndim != 2:
        raise ValueError("h_seq must be (timesteps, units)")
    fig = go.Figure(_heatmap(h_seq.T, np.arange(h_seq.shape[0]), "timestep"))
    fig.update_layout(title=dict(text=title, x=0, font=dict(size=14)), template="plotly_white",
                      yaxis=dict(title="unit", autorange="reversed"),
                      xaxis=dict(title="timestep"), height=max(240, 120 + 14 * h_seq.shape[1]),
                      margin=dict(l=60, r=20, t=50 if title else 20, b=50))
    return fig
