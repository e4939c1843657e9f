"""Where the gradient stops: truncated backpropagation through time, measured on the trace.

A companion to the flow grid, on the same batch columns. Inside each batch of L timesteps a bar
per step shows how much of that batch's loss gradient reaches it (trace.grad_x: |dL/dx_t| over
the whole batch, from the train step's own tape). At each boundary a red ✂ marks the cut: its
height is the median over slots of |dL/dh0| (trace.grad_h0), the gradient that would have
flowed into the previous batch and does not. Above, → marks the state carried forward across
the same boundary (or ┆ a reset). State goes forward, the gradient stops.

A Bidirectional run: the figure draws the direction of the trace it is given
(trace.direction_view): the ✂ is that layer's own |dL/dh0| (grad_h0_bw for the backward layer,
whose h0 enters the batch at its last step), and the title names the direction. The bars are
the input's gradient, which reaches each step through both directions: they are the same for
both, and the legend says so.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from models.trace import Trace, transitions
from viz.flow import CONTAMINATION_COLOUR, empty_figure

GRAD_COLOUR = "#3b6fb6"
STATE_COLOUR = "#505050"
LEGEND = {"reach": "▮ gradient reaching each step inside the batch (|dL/dx_t|)",
          "cut": "✂ cut: |dL/dh0| (median over slots) never reaches the batch before",
          "state": "→ state carried forward to the next batch",
          "reset": "┆ reset: nothing carried"}


def gradient_figure(trace: Trace, first: int = 0, max_batches: int = 20,
                    large: bool = False, compact: bool = False) -> go.Figure:
    if trace.n == 0:
        return empty_figure("Waiting for the first batch…", height=260)
    if trace.grad_x is None or trace.grad_h0 is None:
        return empty_figure("This run recorded no gradients (recorded without them, or an "
                            "older trace).", height=260)
    legend = dict(LEGEND)
    who = ""
    if trace.bidirectional:
        bw = trace.direction == "backward"
        who = f" ({trace.direction} layer)"
        lb = "<br>" if compact else " "  # a phone: the legend's lines fit 390 px
        legend["reach"] = LEGEND["reach"][:-1] + f",{lb}through both directions)"
        if bw:
            legend["cut"] = (f"✂ cut: |dL/dh0_bw| of the backward layer{lb}(median over slots) "
                             "never reaches the batch before")
    cols = np.arange(trace.n)[first:first + max_batches]
    n, L = len(cols), int(trace.grad_x.shape[1])
    gx = np.asarray(trace.grad_x[cols], np.float64)
    gh = np.median(np.asarray(trace.grad_h0[cols], np.float64), axis=1)
    tr = transitions(trace)
    carried = tr["carried"][cols].copy()
    carried[0] = False  # the first column's source is off the page
    positive = np.concatenate([gx[gx > 0], gh[gh > 0]])
    lo = float(positive.min()) if positive.size else 1e-8
    hi = float(positive.max()) if positive.size else 1.0
    fig = go.Figure()
    w = 0.8 / L
    x = (np.arange(n)[:, None] - 0.4 + w * (np.arange(L)[None, :] + 0.5)).ravel()
    step = np.tile(np.arange(L), n)
    fig.add_trace(go.Bar(x=x.astype(np.float32), y=gx.ravel().astype(np.float32), width=w * 0.9,
                         marker_color=GRAD_COLOUR, name=legend["reach"],
                         customdata=np.stack([step, np.repeat(trace.batch[cols], L)], 1).astype(np.int32),
                         hovertemplate="batch %{customdata[1]}, step %{customdata[0]}: "
                                       "|dL/dx_t| = %{y:.2e}<extra></extra>"))
    k = np.nonzero(carried)[0]
    fig.add_trace(go.Scatter(x=(k - 0.5).astype(np.float32), y=np.maximum(gh[k], lo).astype(np.float32),
                             mode="markers+text", text=["✂"] * len(k), textposition="top center",
                             textfont=dict(size=16 if not large else 22, color=CONTAMINATION_COLOUR),
                             marker=dict(symbol="line-ns-open", size=18, color=CONTAMINATION_COLOUR,
                                         line=dict(width=3, color=CONTAMINATION_COLOUR)),
                             name=legend["cut"], customdata=gh[k],
                             hovertemplate="|dL/dh0| = %{customdata:.2e}: cut at this boundary, "
                                           "it does not reach the batch before<extra></extra>"))
    top = hi * 8
    fig.add_trace(go.Scatter(x=(k - 0.5).astype(np.float32), y=np.full(len(k), top, np.float32),
                             mode="markers", name=legend["state"], hoverinfo="skip",
                             marker=dict(symbol="triangle-right", size=12, color=STATE_COLOUR)))
    if trace.stateful():
        r = np.nonzero(np.asarray(trace.reset_before, bool)[cols])[0]
        r = r[r > 0]
        if len(r):
            fig.add_trace(go.Scatter(x=(r - 0.5).astype(np.float32), y=np.full(len(r), top, np.float32),
                                     mode="text", text=["┆ reset"] * len(r), name=legend["reset"],
                                     textfont=dict(size=11, color="#111"), hoverinfo="skip",
                                     showlegend=False))
            # the legend shows the boundary's grey dotted line (a text trace's key reads "Aa")
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=legend["reset"],
                                     line=dict(color="#bbb", width=1, dash="dot"),
                                     hoverinfo="skip"))
    for b in range(1, n):  # every boundary: a thin line where the gradient stops
        fig.add_vline(x=b - 0.5, line=dict(color=CONTAMINATION_COLOUR if carried[b] else "#bbb",
                                          width=1, dash="dot"))
    ticks = [f"e{e}·b{b}" for e, b in zip(trace.epoch[cols].tolist(), trace.batch[cols].tolist())]
    fig.update_xaxes(tickvals=list(range(n)), ticktext=ticks, range=[-0.5, n - 0.5],
                     showgrid=False, zeroline=False)
    fig.update_yaxes(type="log", range=[np.log10(lo) - 0.3, np.log10(top) + 0.4],
                     title_text="gradient norm", showgrid=True, gridcolor="#eee")
    steps = f"{L} timestep{'s' if L != 1 else ''}"
    br = "<br>" if compact else " "  # a phone: shorter lines, nothing cut off at the right
    fig.update_layout(
        title=dict(text=f"<b>Where the gradient stops</b>{who}{br if compact else ' · '}it reaches "
                        f"back {steps} inside each batch,{br}then is cut (✂)<br>"
                        f"<sup>the state goes forward (→), the gradient does not:{br}truncated "
                        f"backpropagation through time, one batch long</sup>",
                   x=0, xanchor="left", font=dict(size=15 if not large else 22)),
        legend=dict(orientation="h", x=0, y=-0.25, yanchor="top", font=dict(size=11)),
        height=(380 if not large else 520) + 110 * compact,
        margin=dict(l=60, r=20, t=80 + 110 * compact, b=110),
        plot_bgcolor="white", paper_bgcolor="white", bargap=0, showlegend=True,
        dragmode="pan", font=dict(size=18) if large else None)
    return fig
