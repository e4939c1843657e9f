"""Training curves: per batch (raw and smoothed), per epoch (train vs validation), and runs
compared. Empty input gives an empty figure that says what it is waiting for."""
from __future__ import annotations

import csv
import io

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from models.trace import EPOCH_COLUMNS, Trace
from viz.flow import empty_figure

TRAIN, VAL = "#1f77b4", "#ff7f0e"
MAX_GAP_LABELS = 4  # unrecorded ranges labelled in the per-batch curves (more: bands only)
# Runs differ by colour AND dash AND marker, so they stay apart without colour vision.
RUN_STYLES = (("#1f77b4", "solid", "circle"), ("#d62728", "dash", "square"),
              ("#2ca02c", "dot", "diamond"), ("#9467bd", "dashdot", "triangle-up"),
              ("#8c564b", "longdash", "x"))


def ema(values, smooth: float = 0.9) -> np.ndarray:
    """Exponential moving average, debiased so the first points are not pulled to zero."""
    v = np.asarray(values, float)
    out, acc, w = np.empty_like(v), 0.0, 0.0
    for i, x in enumerate(v):
        if np.isfinite(x):
            acc, w = smooth * acc + (1 - smooth) * x, smooth * w + (1 - smooth)
        out[i] = acc / w if w else np.nan
    return out


def _with_gaps(x: np.ndarray, *ys: np.ndarray) -> tuple:
    """Insert one NaN point after every jump in x (unrecorded batches), so lines break there
    instead of drawing a straight segment across batches nobody recorded."""
    jumps = np.nonzero(np.diff(x) > 1)[0]
    if not len(jumps):
        return (x, *ys)
    gx = np.insert(x.astype(float), jumps + 1, x[jumps] + 1)
    return (gx, *(np.insert(y.astype(float), jumps + 1, np.nan) for y in ys))


def _segment_ema(v: np.ndarray, x: np.ndarray, smooth: float) -> np.ndarray:
    """EMA restarted after every gap: epoch 10's curve is not pulled towards epoch 1's."""
    out = np.empty_like(v, dtype=float)
    bounds = [0, *(np.nonzero(np.diff(x) > 1)[0] + 1), len(v)]
    for a, b in zip(bounds[:-1], bounds[1:]):
        out[a:b] = ema(v[a:b], smooth)
    return out


def unrecorded_ranges(x, total: int | None = None) -> list[tuple[int, int]]:
    """(first, last) global indices of the batches trained but not recorded: before the first
    recorded one, between recorded neighbours that are not consecutive, and after the last
    recorded one up to total - 1."""
    x = np.asarray(x)
    out = [(0, int(x[0]) - 1)] if x.size and x[0] > 0 else []
    out += [(int(a) + 1, int(b) - 1) for a, b in zip(x[:-1], x[1:]) if b > a + 1]
    if total is not None and x.size and int(x[-1]) < total - 1:
        out.append((int(x[-1]) + 1, int(total) - 1))
    return out


def batch_curves(loss, accuracy, metric_name: str = "accuracy", smooth: float = 0.9,
                 x=None, total: int | None = None) -> go.Figure:
    """Per-batch loss (top) and metric (bottom): thin faded raw values, bold smoothed line.
    x: global batch index of each value (default 0..n-1; pass trace.index for thinned runs).
    total: batches the run trained (or will train); the title counts recorded of total.
    Lines break where x jumps, and unrecorded batches are shaded grey: no straight line is
    drawn across batches that were trained but not recorded."""
    loss, acc = np.asarray(loss, float), np.asarray(accuracy, float)
    if loss.size == 0:
        return empty_figure("Waiting for the first batch…")
    x = np.arange(loss.size) if x is None else np.asarray(x)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=("loss", metric_name))
    for row, (name, v, colour) in enumerate((("loss", loss, TRAIN), (metric_name, acc, VAL)), 1):
        gx, raw, sm = _with_gaps(x, v, _segment_ema(v, x, smooth))
        fig.add_trace(go.Scatter(x=gx, y=raw.astype(np.float32), mode="lines", name=f"{name} (batch)",
                                 line=dict(color=colour, width=1), opacity=0.3,
                                 hovertemplate="batch #%{x}: %{y:.4f}<extra></extra>"), row=row, col=1)
        fig.add_trace(go.Scatter(x=gx, y=sm.astype(np.float32), mode="lines",
                                 name=f"{name} (smoothed {smooth:g})", line=dict(color=colour, width=2.5),
                                 hovertemplate="batch #%{x}: %{y:.4f} smoothed<extra></extra>"),
                      row=row, col=1)
    gaps = unrecorded_ranges(x, total)
    # One layout update for all bands (add_vrect per band re-validates every shape: 70 gaps
    # took 18 s); labels only while few enough to read.
    band = dict(type="rect", fillcolor="#888", opacity=0.15, line_width=0, layer="below")
    fig.update_layout(shapes=[dict(band, x0=a - 0.5, x1=b + 0.5, xref=xr, yref=f"{yr} domain",
                                   y0=0, y1=1)
                              for a, b in gaps for xr, yr in (("x", "y"), ("x2", "y2"))])
    if len(gaps) <= MAX_GAP_LABELS:  # inside the band of the top plot, clear of its title
        for a, b in gaps:
            fig.add_annotation(x=(a + b) / 2, y=0.5, xref="x", yref="y domain",
                               text=f"not recorded<br>#{a:,}–#{b:,}" if b > a else
                               f"not recorded<br>#{a:,}", showarrow=False,
                               font=dict(size=10, color="#555"))
    n = int(loss.size)
    run = total if total is not None else int(x[-1]) + 1
    title = f"<b>Per batch</b><br><sup>all {n:,} batches recorded</sup>" if n >= run and not gaps \
        else (f"<b>Per batch</b><br><sup>{n:,} of {run:,} batches recorded · grey: trained, "
              "not recorded</sup>")
    fig.update_xaxes(title_text="batch (global index)", row=2, col=1)
    fig.update_xaxes(range=[-0.5, max(run, int(x[-1]) + 1) - 0.5])
    fig.update_layout(height=500, margin=dict(l=60, r=20, t=80, b=50), template="plotly_white",
                      title=dict(text=title, x=0, font=dict(size=14)),
                      legend=dict(orientation="h", y=-0.18))
    return fig


def _column(epochs: list[dict], key: str) -> list:
    return [e.get(key) for e in epochs]


def epoch_curves(epochs: list[dict], metric_name: str = "accuracy") -> go.Figure:
    """Train (solid, circles) vs validation (dashed, squares) loss and metric per epoch."""
    if not epochs:
        return empty_figure("Waiting for the first epoch…")
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", metric_name), horizontal_spacing=0.1)
    x = _column(epochs, "epoch")
    for col, key in ((1, "loss"), (2, "accuracy")):
        label = "loss" if key == "loss" else metric_name
        for prefix, colour, dash, symbol in (("", TRAIN, "solid", "circle"),
                                             ("val_", VAL, "dash", "square")):
            fig.add_trace(go.Scatter(
                x=x, y=_column(epochs, prefix + key), mode="lines+markers",
                name=f"{'validation' if prefix else 'train'} {label}",
                line=dict(color=colour, dash=dash), marker=dict(symbol=symbol, size=7),
                hovertemplate=f"epoch %{{x}}: {'validation' if prefix else 'train'} {label} "
                              "%{y:.4f}<extra></extra>"), row=1, col=col)
    fig.update_xaxes(title_text="epoch", dtick=1 if len(x) <= 20 else None)
    fig.update_layout(height=360, margin=dict(l=60, r=20, t=40, b=50), template="plotly_white",
                      legend=dict(orientation="h", y=-0.25))
    return fig


def compare_curves(runs: dict[str, list[dict]], metric_name: str = "accuracy") -> go.Figure:
    """Validation metric per epoch, one line per run (e.g. stateful vs stateless)."""
    if not any(runs.values()):
        return empty_figure("Waiting for the first epoch…")
    fig = go.Figure()
    for i, (name, epochs) in enumerate(runs.items()):
        colour, dash, symbol = RUN_STYLES[i % len(RUN_STYLES)]
        fig.add_trace(go.Scatter(
            x=_column(epochs, "epoch"), y=_column(epochs, "val_accuracy"), mode="lines+markers",
            name=name, line=dict(color=colour, dash=dash, width=2.5),
            marker=dict(symbol=symbol, size=8),
            hovertemplate=f"{name}, epoch %{{x}}: validation {metric_name} %{{y:.4f}}<extra></extra>"))
    longest = max(len(e) for e in runs.values())
    fig.update_xaxes(dtick=1 if longest <= 20 else None)  # epochs are whole numbers
    fig.update_layout(title=f"Validation {metric_name} per epoch", xaxis_title="epoch",
                      yaxis_title=f"validation {metric_name}", height=380, template="plotly_white",
                      margin=dict(l=60, r=20, t=50, b=50))
    return fig


def _csv(header: list[str], rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def metrics_csv(trace: Trace) -> str:
    """One row per recorded batch: index (global), epoch, batch, loss, accuracy."""
    rows = ((int(i), int(e), int(b), _cell(float(l)), _cell(float(a)))
            for i, e, b, l, a in zip(trace.index, trace.epoch, trace.batch, trace.loss,
                                     trace.accuracy))
    return _csv(["index", "epoch", "batch", "loss", "accuracy"], rows)


def epochs_csv(epochs: list[dict]) -> str:
    """One row per epoch: epoch, loss, accuracy, val_loss, val_accuracy, seconds (blank: None)."""
    return _csv(list(EPOCH_COLUMNS), ([_cell(e.get(c)) for c in EPOCH_COLUMNS] for e in epochs))
