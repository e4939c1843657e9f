"""The batch-1 inference copy streaming one sequence: its state h at every step (heatmap) and
its answer at every step (line), with the trained batch-B model's slot 0 at each chunk end
(markers) on top. Input: models/inference.measure's dict (plain arrays)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.hidden import H_SCALE


def stream_figure(m: dict) -> go.Figure:
    one, slot0 = m["stream"], m["slot0"]
    h = np.asarray(one["h"])
    steps = np.asarray(one.get("steps", np.arange(len(h))))
    n = m.get("per_call", 1)
    units = [str(u) for u in range(h.shape[1])]
    if "h_bw" in one:  # a Bidirectional copy: the backward direction's h under the forward's
        h = np.concatenate([h, np.asarray(one["h_bw"])], axis=1)
        units = [f"fw {u}" for u in units] + [f"bw {u}" for u in units]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4],
                        vertical_spacing=0.08)
    fig.add_trace(go.Heatmap(z=h.T.astype(np.float32), x=steps, y=units, zmin=-1, zmax=1, zmid=0,
                             colorscale=H_SCALE, colorbar=dict(title="h", thickness=12, len=0.55, y=0.75),
                             hovertemplate="step %{x} · unit %{y}: %{z:.3f}<extra></extra>"),
                  row=1, col=1)
    out = np.asarray(one["output"])[:, 0]
    fig.add_trace(go.Scatter(x=steps, y=out, mode="lines+markers",
                             name="batch-1 copy, every step" if n == 1 else "batch-1 copy, every call",
                             line=dict(color="#1f77b4"), marker=dict(size=5)), row=2, col=1)
    fig.add_trace(go.Scatter(x=slot0["steps"], y=np.asarray(slot0["output"])[:, 0], mode="markers",
                             name=f"trained batch-{m['batch_size']} model, slot 0, each chunk end",
                             marker=dict(symbol="circle-open", size=13, color="#d62728",
                                         line=dict(width=2))), row=2, col=1)
    fig.update_yaxes(title_text="unit", row=1, col=1)
    fig.update_yaxes(title_text="answer", row=2, col=1)
    fig.update_xaxes(title_text="timestep of the streamed sequence", row=2, col=1)
    fig.update_layout(
        # Short lines: the subtitle is not wrapped by plotly and a phone shows ~50 characters.
        title=dict(text=f"<b>A batch-1 copy streams one sequence</b><br><sup>{m['cell']}, the "
                        f"run's weights, {'one step' if n == 1 else f'one sample of {n} steps'} "
                        f"per call</sup><br><sup>top: its h · bottom: its answer · rings: the "
                        f"trained model, slot 0</sup>"),
        height=450, margin=dict(l=50, r=20, t=90, b=40),
        legend=dict(orientation="h", yanchor="top", y=-0.18, x=0))
    return fig
