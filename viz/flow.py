"""The flow view: where each slot's state comes from, batch after batch.

Grid: recorded batches left to right, slots top to bottom (slot 0 at the top). A cell is one
sample, labelled "s12·p3" (sequence 12, part 3) and coloured by its sequence, so a correct
stateful layout reads as unbroken rows of one colour. Between neighbouring batches, each slot's
carry is one of trace.carry_kinds (the same function the carry check counts with):
  continuation   solid dark arrow          same sequence, the next part (h0[k+1, i] = hT[k, i])
  broken         orange dotted line, ring  same sequence, not the next part (skipped, repeated,
                                           overlapping window)
  contaminated   red dashed line, ✕        the carried state lands on a different sequence
  wrong end      purple dash-dot line, ◀   a Bidirectional layer's backward direction: the state
                                           at the previous chunk's FIRST step enters this chunk
                                           at its LAST step (trace.WRONG_END; direction_view)
  reset          dotted bar                states were zeroed before the batch
  gap            dash-dot bar              batches in between were not recorded (thinned trace)
Line style and marker tell the kinds apart, not colour alone.

Colour (`colour=`): by sequence (above), or by what the state carries, read from the trace:
  readout   the model's answer from h0 alone (trace.readout_h0: its Dense layer applied to the
            state the batch starts from), against the slot's true target (corner square, or the
            label for classes); on the first-element task the first value's colour rides along a
            row, turns neutral at a reset and stays in its row when the sequences change rows
  norm      |h0| (root mean square over units: 0 at a reset, up to 1)
  unit      one unit of h0, chosen by the user
`follow=seq` outlines one sequence's cells and joins them in order, and says where the state it
started from came from and where the state it ended with went.

Size budget (200 batches x 32 slots: <= 1 MB JSON, <= 300 ms): one static figure holds every
cell; animation frames only move the x range, a one-column cursor and a white cover over the
batches not yet revealed (Play reveals batch by batch), never repeat the cells.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from models import trace as trace_mod
from models.tasks import LETTERS
from models.trace import (BROKEN, CONTAMINATED, CONTINUATION, PADDING, WRONG_END, Trace,
                          carry_kinds)
from viz.slot_resets import slot_reset_traces  # per-slot resets (layout "packed")

# ColorBrewer Set3 without its grey (grey means padding): pastel, so black labels stay readable.
PALETTE = ("#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462",
           "#b3de69", "#fccde5", "#bc80bd", "#ccebc5", "#ffed6f")
PADDING_COLOUR = "#e6e6e6"
CARRY_COLOUR = "#505050"
CONTAMINATION_COLOUR = "#d62728"
BROKEN_COLOUR = "#e67e00"
WRONG_END_COLOUR = "#6a3d9a"
# Legend entries, read as words (tests and the page's caption use these).
LEGEND = {"continuation": "→ continues the same sequence",
          "broken": "⋯ same sequence, wrong part",
          "contaminated": "✕ another sequence",
          "wrong_end": "◀ backward: start of chunk → end of next",
          "reset": "┆ reset to zero",
          "gap": "⋮ batches not recorded"}
HOVER_UNITS = 16  # h units shown on hover: the JSON budget pays for every cell's vector
# Above this many cells (a figure of every batch: 200 x 32 = 6,400) the hover shows 8 units,
# which keeps such a figure under 1 MB; the app's pages (20 batches) always show 16.
HOVER_CELLS_FULL = 3200
SEGMENT = 0.06  # arrows span boundary +- this (cell widths), clear of the centred labels
# (0.1 put the arrowhead 2 px onto an "s12·p3" label in a 43 px cell: 20 batches at 1400 px)
# The slider sits this far (px) below the x axis, under the row of play and speed buttons;
# large type makes the buttons taller.
SLIDER_PAD, LARGE_ROW = 95, 55
LARGE_EXTRA = LARGE_ROW + 25

# ---- shared by the layout view -------------------------------------------------------------


def seq_colour_index(seq_id: np.ndarray) -> np.ndarray:
    """Palette index per cell: cycles by sequence id; padding (-1) gets the last index."""
    seq_id = np.asarray(seq_id)
    return np.where(seq_id >= 0, seq_id % len(PALETTE), len(PALETTE)).astype(np.int8)


def seq_colourscale() -> list:
    """Stepped colourscale so integer z = palette index maps to exactly one colour."""
    colours = list(PALETTE) + [PADDING_COLOUR]
    m = len(colours)
    return [stop for i, c in enumerate(colours) for stop in ([i / m, c], [(i + 1) / m, c])]


def cell_labels(seq_id: np.ndarray, part: np.ndarray) -> np.ndarray:
    """'s12·p3' per cell, 'pad' for padding; same shape as the inputs."""
    seq_id, part = np.asarray(seq_id), np.asarray(part)
    flat = [f"s{s}·p{p}" if s >= 0 else "pad" for s, p in zip(seq_id.ravel().tolist(),
                                                                part.ravel().tolist())]
    return np.array(flat, dtype=object).reshape(seq_id.shape)


def colour_grid(seq_id: np.ndarray) -> go.Heatmap:
    """Cells coloured by sequence: seq_id is (batches, slots), drawn slots (y) x batches (x)."""
    return go.Heatmap(z=seq_colour_index(seq_id).T, colorscale=seq_colourscale(),
                      # integer i lands mid-band in stop band [i/m, (i+1)/m] of the scale
                      zmin=-0.5, zmax=len(PALETTE) + 0.5, showscale=False, xgap=2, ygap=2,
                      hoverinfo="skip", name="samples", showlegend=False)


def labelled_grid(seq_id: np.ndarray, part: np.ndarray) -> go.Heatmap:
    """colour_grid with 's12·p3' labels and hover (small grids: one string per cell)."""
    grid = colour_grid(seq_id)
    grid.update(text=cell_labels(seq_id, part).T, texttemplate="%{text}",
                textfont=dict(size=10, color="#222"), hoverinfo=None,
                hovertemplate="<b>%{text}</b> · %{y} · %{x}<extra></extra>")
    return grid


def grid_axes(fig: go.Figure, n_slots: int, ticktext: list[str]) -> None:
    """Slots top to bottom (slot 0 at top), one tick per batch column."""
    fig.update_yaxes(range=[n_slots - 0.5, -0.5], tickvals=list(range(n_slots)),
                     ticktext=[f"slot {i}" for i in range(n_slots)], showgrid=False,
                     zeroline=False, fixedrange=True, tickfont=dict(size=10))
    fig.update_xaxes(tickvals=list(range(len(ticktext))), ticktext=ticktext, showgrid=False,
                     zeroline=False, tickfont=dict(size=10))
    # Dragging pans along the batches (slots are fixed): "drag sideways" in the captions.
    fig.update_layout(height=int(170 + 22 * max(n_slots, 4)), plot_bgcolor="white",
                      paper_bgcolor="white", dragmode="pan")


def empty_figure(message: str, height: int = 320) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper",
                       showarrow=False, font=dict(size=16, color="#666"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=height, plot_bgcolor="white", paper_bgcolor="white")
    return fig


# ---- what the state carries, as colour -------------------------------------------------------
COLOUR_MODES = {"sequence": "sequence", "readout": "readout from h0 vs target",
                "norm": "|h0|", "unit": "one unit of h0"}
# Light ends, so black labels stay readable on every cell.
DIVERGING = [[0.0, "#5e9fd8"], [0.5, "#f7f7f7"], [1.0, "#ef8a47"]]
SEQUENTIAL = [[0.0, "#ffffff"], [1.0, "#b39ddb"]]
TARGET_WORDS = "▪ corner: the true target"


def _task(trace: Trace) -> str:
    return str(trace.config_dict().get("task", ""))


def _probs(trace: Trace) -> np.ndarray | None:
    return None if trace.readout_h0 is None else np.asarray(trace.readout_h0, np.float32)


def colour_values(trace: Trace, mode: str, cols: np.ndarray, S: int, unit: int = 0) -> dict | None:
    """What colours the cells in `mode` (None: by sequence). Returns z (len(cols), S) float32,
    zmin, zmax, a colourscale, per-cell label strings, the colour bar's title and, for binary and
    regression readouts, the target per cell (drawn as a corner square on the same scale)."""
    if mode == "sequence":
        return None
    seq = trace.seq_id[cols, :S]
    if mode in ("norm", "unit"):
        h0 = trace.h0[cols, :S]
        if mode == "norm":
            z = np.sqrt(np.mean(np.square(h0), axis=2)) if trace.units else np.zeros(seq.shape)
            lab, lo, hi, scale, title = _num_labels(z, False), 0.0, 1.0, SEQUENTIAL, "|h0| (rms)"
        else:
            u = int(min(max(unit, 0), max(trace.units - 1, 0)))
            z = h0[:, :, u] if trace.units else np.zeros(seq.shape)
            lab, lo, hi, scale, title = _num_labels(z, True), -1.0, 1.0, DIVERGING, f"h0 unit {u}"
        return dict(z=z.astype(np.float32), zmin=lo, zmax=hi, scale=scale, text=lab, title=title,
                    target=None)
    p = _probs(trace)
    if p is None or trace.target is None:
        return None
    r, y = p[cols, :S], trace.target[cols, :S]
    if r.shape[-1] > 1:  # classes: colour = probability the state gives the right class
        yi = np.clip(y.astype(np.int64), 0, r.shape[-1] - 1)
        z = np.take_along_axis(r, yi[..., None], axis=-1)[..., 0]
        guess = r.argmax(axis=-1)
        name = (lambda i: LETTERS[i] if i < 26 else str(i)) if _task(trace) == "alphabet" else str
        lab = np.array([f"{name(int(g))}/{name(int(t))}" for g, t in zip(guess.ravel().tolist(),
                                                                          yi.ravel().tolist())],
                       dtype=object).reshape(z.shape)
        return dict(z=z.astype(np.float32), zmin=0.0, zmax=1.0, scale=SEQUENTIAL, text=lab,
                    title="P(target) from h0<br>label: h0 says / target", target=None)
    z = r[..., 0]
    if _task(trace) in ("sine", "user"):  # regression: same symmetric scale for both
        m = float(max(np.abs(y).max(initial=0.0), np.abs(z).max(initial=0.0), 1e-6))
        return dict(z=z, zmin=-m, zmax=m, scale=DIVERGING, text=_num_labels(z, True),
                    title="readout from h0<br>▪ target", target=y)
    return dict(z=z, zmin=0.0, zmax=1.0, scale=DIVERGING, text=_num_labels(z, False),
                title="P(1) read from h0<br>▪ target (0 or 1)", target=y)


def _num_labels(z: np.ndarray, signed: bool) -> np.ndarray:
    """Two decimals, no leading zero ('.93', '-.41'), via the lookup table of _fmt_units."""
    q = np.rint(np.clip(z, -1, 1) * 100).astype(np.int64)
    table = _Q2S if signed else _Q2
    return table[q + 100]


def _colour_grid(values: dict) -> go.Heatmap:
    return go.Heatmap(z=values["z"].T, zmin=values["zmin"], zmax=values["zmax"],
                      colorscale=values["scale"], xgap=2, ygap=2, hoverinfo="skip",
                      name="samples", showlegend=False, text=values["text"].T,
                      texttemplate="%{text}", textfont=dict(size=10, color="#222"),
                      colorbar=dict(title=dict(text=values["title"], side="top",
                                               font=dict(size=11)),
                                    thickness=10, len=0.5, x=1.0, xanchor="left", y=1,
                                    yanchor="top", tickfont=dict(size=10)))


def _target_marks(values: dict, S: int) -> go.Scatter:
    """The true target as a small square in each cell's upper-right corner, same colour scale
    (the upper left is where the carry arrowhead enters the cell)."""
    xs, slots = np.nonzero(np.ones(values["target"].shape, bool))
    return go.Scatter(x=(xs + 0.32).astype(np.float32), y=(slots - 0.25).astype(np.float32),
                      mode="markers", name=TARGET_WORDS, hoverinfo="skip",
                      marker=dict(symbol="square", size=7, color=values["target"].ravel(),
                                  cmin=values["zmin"], cmax=values["zmax"],
                                  colorscale=values["scale"], line=dict(width=1, color="#222")))


def alphabet_labels(trace: Trace, cols: np.ndarray, S: int) -> np.ndarray | None:
    """'A→B' per cell on the alphabet task: the letter fed (the task feeds the letter before
    its target) and the target letter, read from the recorded targets."""
    if _task(trace) != "alphabet" or trace.target is None:
        return None
    y = np.clip(trace.target[cols, :S].astype(np.int64), 1, 25)
    return np.array([f"{LETTERS[t - 1]}→{LETTERS[t]}" for t in y.ravel().tolist()],
                    dtype=object).reshape(y.shape)


# ---- following one sequence ------------------------------------------------------------------


def follow_traces(trace: Trace, seq: int, cols: np.ndarray, S: int) -> tuple[list, str]:
    """Outline every drawn cell of sequence `seq`, joined in batch order, and one sentence: where
    the state it started from came from, where the state it ended with went."""
    sub = trace.seq_id[cols, :S]
    xs, slots = np.nonzero(sub == seq)
    if not len(xs):
        return [], f"sequence {seq} is not in the batches and slots shown"
    order = np.lexsort((slots, xs))
    xs, slots = xs[order], slots[order]
    kinds = carry_kinds(trace)
    k0, i0 = int(cols[xs[0]]), int(slots[0])
    kd = int(kinds[k0, i0])
    if kd == trace_mod.NOT_CARRIED:
        came = "from zeros" if (trace.reset_before[k0] or not trace.stateful() or k0 == 0) \
            else "from a batch not shown"
    else:
        came = f"from s{int(trace.seq_id[k0 - 1, i0])} (slot {i0}, batch {int(trace.batch[k0 - 1])})"
    k1, i1 = int(cols[xs[-1]]), int(slots[-1])
    if k1 + 1 < trace.n and int(kinds[k1 + 1, i1]) != trace_mod.NOT_CARRIED:
        went = f"into s{int(trace.seq_id[k1 + 1, i1])} (slot {i1}, batch {int(trace.batch[k1 + 1])})"
    elif k1 + 1 < trace.n and trace.stateful():
        went = "nowhere: the slot was reset" if trace.reset_before[k1 + 1] else "out of the record"
    else:
        went = "nowhere (stateless)" if not trace.stateful() else "past the last batch shown"
    jumps = int((np.diff(slots) != 0).sum())
    words = (f"following s{seq}: {len(xs)} cells, its state started {came} and went {went}"
             + (f"; it changes slot {jumps} time{'s' if jumps != 1 else ''}" if jumps else
                "; it stays in slot %d" % i0))
    path = go.Scatter(x=xs.astype(np.float32), y=slots.astype(np.int16), mode="lines+markers",
                      name=f"◻ following s{seq}", hoverinfo="skip",
                      line=dict(color="#000", width=2),
                      marker=dict(symbol="square-open", size=26, color="#000", line=dict(width=3)))
    return [path], words


# ---- where each batch's state came from ----------------------------------------------------


def transitions(trace: Trace) -> dict[str, np.ndarray]:
    """Per recorded batch: fresh, carried, gap (trace.transitions, which carry_check uses)."""
    return trace_mod.transitions(trace)


def contamination(trace: Trace, carried: np.ndarray | None = None) -> np.ndarray:
    """(n, B) bool: carried state lands on another sequence (trace.carry_kinds; padding
    excluded). `carried` (n,) optionally restricts it to some transitions."""
    out = carry_kinds(trace) == CONTAMINATED
    return out if carried is None else out & np.asarray(carried, bool)[:, None]


def _start_texts(trace: Trace, tr: dict) -> list[str]:
    """Where batch k's initial state came from, one string per recorded batch."""
    out, stateful = [], trace.stateful()
    for k in range(trace.n):
        if not stateful:
            out.append("zeros (stateless)")
        elif trace.reset_before[k]:
            out.append("reset to 0")
        elif tr["fresh"][k]:
            out.append("zeros (start of run)")
        else:
            prev = int(trace.index[k]) - 1
            e_prev = int(trace.epoch[k - 1]) if tr["carried"][k] else None
            b_prev = int(trace.batch[k - 1]) if tr["carried"][k] else None
            if tr["carried"][k]:
                where = f"batch {b_prev}" + (f" (epoch {e_prev})" if e_prev != trace.epoch[k] else "")
                out.append(f"carried from {where}")
            else:
                out.append(f"carried from batch #{prev} (not recorded)")
    return out


# ---- the cells: labels and hover ------------------------------------------------------------

_Q = np.array([f"{v / 1000:.3f}".replace("0.", ".", 1) for v in range(-1000, 1001)], dtype=object)
_Q2 = np.array([f"{v / 100:.2f}".replace("0.", ".", 1).replace("1.00", "1").replace(".00", "0")
                if v >= 0 else "" for v in range(-100, 101)], dtype=object)
_Q2S = np.array([f"{v / 100:+.2f}".replace("0.", ".", 1).replace("+.00", "0").replace("-.00", "0")
                 .replace("1.00", "1")
                 for v in range(-100, 101)], dtype=object)


def _fmt_units(h: np.ndarray, lo: int = 0, hi: int = HOVER_UNITS) -> np.ndarray:
    """(..., units) floats -> (...) strings of units lo..hi-1, 3 decimals, no leading zero."""
    h = h[..., lo:hi]
    q = np.rint(h * 1000)
    if np.all(np.abs(q) <= 1000):  # h is tanh-bounded: a lookup is 10x faster than format()
        strs = _Q[q.astype(np.int64) + 1000]
    else:
        strs = np.vectorize(lambda v: f"{v:.3f}", otypes=[object])(h)
    joined = [" ".join(r) for r in strs.reshape(-1, strs.shape[-1]).tolist()]
    return np.array(joined, dtype=object).reshape(strs.shape[:-1])


def _hover_rows(h: np.ndarray, units: int = HOVER_UNITS) -> tuple:
    """Two hover lines of up to 8 units: two per-point fields, because a '<br>' inside a
    per-cell string costs 18 bytes of JSON in every cell (to_json escapes "<" and ">")."""
    return _fmt_units(h, 0, 8), (_fmt_units(h, 8, units) if h.shape[-1] > 8 and units > 8 else None)


# Where h0 came from, one hover line per kind of cell. Each kind is its own scatter trace, so
# the line is written once per trace instead of once per cell (the JSON budget).
_KINDS = {
    "continued": "h0 = hT of batch %{customdata[4]} (carried: → continues the same sequence)",
    "wrong_end": "h0 = hT of batch %{customdata[4]}: <b>◀ the backward state at that chunk's "
                 "FIRST step, entering this chunk at its LAST step</b>",
    "broken": "h0 = hT of the batch before: <b>⋯ the state of p%{customdata[4]} lands on "
              "p%{customdata[3]} of the same sequence: not the next part</b>",
    "contaminated": "h0 = hT of the batch before: <b>✕ the state of s%{customdata[4]} "
                    "lands on s%{customdata[2]}</b>",
    "from_padding": "h0 = hT of batch %{customdata[4]}: a padding slot, no sequence",
    "reset": "h0 = 0 (reset before this batch)",
    "stateless": "h0 = 0 (stateless: every sample starts from zeros)",
    "start": "h0 = 0 (start of run)",
    "other": "h0: (below)",  # h0 not implied by the carry identity: spelled out per cell
    "padding": "padding, no sequence",
}


def _cell_kinds(trace: Trace, tr: dict, kinds: np.ndarray, S: int, cols: np.ndarray) -> tuple:
    """For recorded batches `cols` (positions), (len(cols), S) kind names and the number shown
    by the kind's hover line (previous batch; contamination: the previous sequence; broken:
    the previous part). kinds: trace.carry_kinds(trace)."""
    h0 = trace.h0[cols, :S]
    zero = ~np.any(h0 != 0, axis=2)
    before = np.maximum(cols - 1, 0)  # cols[0] may have its source off-screen, still in trace
    same = ~np.any(h0 != trace.hT[before, :S], axis=2) & (cols > 0)[:, None]
    prev = np.broadcast_to(trace.batch[before, None], zero.shape).astype(np.int64)
    reset = np.asarray(trace.reset_before, bool)[cols, None]
    fresh_ok = tr["fresh"][cols, None] & zero
    kind = np.full(zero.shape, "other", dtype=object)
    kind[fresh_ok & reset] = "reset"
    kind[fresh_ok & ~reset] = "start"
    if not trace.stateful():
        kind[fresh_ok] = "stateless"
    carried_ok = tr["carried"][cols, None] & same
    ck = kinds[cols, :S]
    kind[carried_ok & (ck == CONTINUATION)] = "continued"
    kind[carried_ok & (ck == WRONG_END)] = "wrong_end"
    broken = carried_ok & (ck == BROKEN)
    kind[broken] = "broken"
    prev[broken] = trace.part[before, :S][broken]
    kind[carried_ok & (ck == PADDING)] = "from_padding"  # cur padding: overwritten below
    bad = carried_ok & (ck == CONTAMINATED)
    kind[bad] = "contaminated"
    prev[bad] = trace.seq_id[before, :S][bad]
    kind[trace.seq_id[cols, :S] < 0] = "padding"
    return kind, prev


def _other_notes(trace: Trace, tr: dict, ks: np.ndarray, slots: np.ndarray) -> list[str]:
    starts = _start_texts(trace, tr)
    vec = _fmt_units(trace.h0[ks, slots]) if len(ks) else []
    out = []
    for k, v in zip(ks.tolist(), vec):
        why = ("should be 0!" if tr["fresh"][k] else
               "≠ hT of the batch before!" if tr["carried"][k] else "previous batch not recorded")
        out.append(f"{v}<br>    ({starts[k]}; {why})")
    return out


def _cell_traces(trace: Trace, tr: dict, kinds: np.ndarray, S: int,
                 cols: np.ndarray) -> list[go.Scatter]:
    """One scatter of invisible markers per kind of cell: carries the hover (the labels are
    the heatmap's text: a browser draws those about twice as fast as scatter text).
    tr, kinds: for the whole trace; cols: the recorded positions drawn (x = 0..len(cols)-1)."""
    kind, prev = _cell_kinds(trace, tr, kinds, S, cols)
    units = HOVER_UNITS if len(cols) * S <= HOVER_CELLS_FULL else 8
    more = f" (+{trace.units - units} units)" if trace.units > units else ""
    head = ("<b>s%{customdata[2]}·p%{customdata[3]}</b> · %{y}<br>"
            "epoch %{customdata[0]}, batch %{customdata[1]}<br>")
    big = max(int(trace.batch.max(initial=0)), int(trace.epoch.max(initial=0)),
              int(trace.seq_id.max(initial=0)), int(trace.part.max(initial=0))) > 32000
    itype = np.int32 if big else np.int16  # int16 base64 is half the bytes
    out = []
    for name, h0_line in _KINDS.items():
        xs, slots = np.nonzero(kind == name)
        if not len(xs):
            continue
        ks = cols[xs]
        data = np.stack([trace.epoch[ks], trace.batch[ks], trace.seq_id[ks, slots],
                         trace.part[ks, slots], prev[xs, slots]], axis=1).astype(itype)
        text, text2 = _hover_rows(trace.hT[ks, slots], units)
        hT_lines = "hT: %{text}" + ("<br>    %{hovertext}" if text2 is not None else "")
        if name == "other":  # rare: the extra per-cell bytes are fine
            notes = _other_notes(trace, tr, ks, slots)
            text2 = np.array([f"{t}<br>h0: {h}" for t, h in zip(text2 if text2 is not None
                                                               else [""] * len(ks), notes)],
                             dtype=object)
            hT_lines = "hT: %{text}<br>    %{hovertext}"
        out.append(go.Scatter(
            x=xs.astype(np.int16), y=slots.astype(np.int16), customdata=data, text=text,
            hovertext=text2, mode="markers", marker=dict(size=1, opacity=0),
            name=name, showlegend=False,
            hovertemplate=(f"{head if name != 'padding' else '<b>pad</b> · %{y}<br>'}"
                           f"{h0_line}<br>{hT_lines}{more}<extra></extra>")))
    return out


# ---- the figure ----------------------------------------------------------------------------


def _segments(ks: np.ndarray, slots: np.ndarray, points: tuple[float, ...]) -> tuple:
    """NaN-separated polyline: one segment per (k, slot) across the boundary before column k.
    Typed arrays serialise as compact base64; a NaN x breaks the line, so y can be int16."""
    m = len(points) + 1
    x = np.full((len(ks), m), np.nan, np.float32)
    x[:, :-1] = ks[:, None] - 0.5 + np.array(points, np.float32)
    y = np.repeat(np.asarray(slots, np.int16), m)
    return x.ravel(), y


def _bars(ks: np.ndarray, S: int) -> tuple:
    """Vertical bars on the boundary before each column in ks, spanning all drawn slots."""
    x = np.repeat(np.asarray(ks, np.float32) - 0.5, 3).reshape(-1, 3)
    x[:, 2] = np.nan
    return x.ravel(), np.tile(np.array([-0.5, S - 0.5, np.nan], np.float32), len(ks))


def _crossing(k: np.ndarray, slots: np.ndarray, name: str, colour: str, dash: str,
              symbol: str) -> go.Scatter:
    """A line across the boundary before column k in each slot, a marker at its middle."""
    x, y = _segments(k, slots, (-SEGMENT, 0.0, SEGMENT))
    size = np.tile(np.array([0, 10, 0, 0], np.int8), len(k))  # 12 reached onto 43 px cells' labels
    return go.Scatter(x=x, y=y, mode="lines+markers", name=name,
                      line=dict(color=colour, width=3, dash=dash),
                      marker=dict(symbol=symbol, size=size, color=colour,
                                  line=dict(width=2, color=colour if symbol.endswith("-open")
                                            else "white")),
                      hoverinfo="skip")


def _carry_traces(kinds: np.ndarray, S: int) -> list[go.Scatter]:
    """kinds: (n, S) carry kinds of the drawn columns (NOT_CARRIED where no arrow is drawn).
    Continuation: an arrowhead past the boundary with a tail drawn as a one-sided error bar
    (one point per transition, no per-point line data). Broken: dotted orange line and a ring.
    Contamination: dashed red line and ✕. Padding slots: nothing (no sequence to continue)."""
    k_car, s_car = np.nonzero(kinds[:, :S] == CONTINUATION)
    carried = go.Scatter(
        x=(k_car - 0.5 + SEGMENT).astype(np.float32), y=s_car.astype(np.int16), mode="markers",
        name=LEGEND["continuation"],
        marker=dict(symbol="triangle-right", size=6, color=CARRY_COLOUR),
        error_x=dict(type="constant", value=0, valueminus=2 * SEGMENT, symmetric=False, width=0,
                     thickness=1.5, color=CARRY_COLOUR),
        hoverinfo="skip")
    out = [carried]
    k_we, s_we = np.nonzero(kinds[:, :S] == WRONG_END)
    if len(k_we):  # a backward direction's carry: not a continuation (models/bidir.py)
        out.append(_crossing(k_we, s_we, LEGEND["wrong_end"], WRONG_END_COLOUR, "dashdot",
                             "triangle-left"))
    k_brk, s_brk = np.nonzero(kinds[:, :S] == BROKEN)
    if len(k_brk):
        out.append(_crossing(k_brk, s_brk, LEGEND["broken"], BROKEN_COLOUR, "dot", "circle-open"))
    k_bad, s_bad = np.nonzero(kinds[:, :S] == CONTAMINATED)
    out.append(_crossing(k_bad, s_bad, LEGEND["contaminated"], CONTAMINATION_COLOUR, "dash", "x"))
    return out


def _bar_traces(trace: Trace, tr: dict, S: int, cols: np.ndarray) -> list[go.Scatter]:
    """Reset bars (stateful runs only: stateless starts every cell from zero anyway) and gaps.
    tr: for the whole trace; cols: the recorded positions drawn."""
    out = []
    if trace.stateful():
        k = np.nonzero(np.asarray(trace.reset_before, bool)[cols])[0]
        x, y = _bars(k, S)
        out.append(go.Scatter(x=x, y=y, mode="lines", name=LEGEND["reset"],
                              line=dict(color="#111", width=3, dash="dot"), hoverinfo="skip"))
        out.append(go.Scatter(x=k - 0.5, y=np.full(len(k), -0.5), mode="text",
                              text=["reset"] * len(k), textposition="top center",
                              textfont=dict(size=10, color="#111"),
                              cliponaxis=False, showlegend=False, hoverinfo="skip"))
    k = np.nonzero(tr["gap"][cols])[0]
    if len(k):
        x, y = _bars(k, S)
        out.append(go.Scatter(x=x, y=y, mode="lines", name=LEGEND["gap"],
                              line=dict(color="#999", width=2, dash="dashdot"), hoverinfo="skip"))
    return out


def _batches_per_epoch(trace: Trace) -> int | None:
    """The run's batches per epoch, from a recorded batch after epoch 1 (index = (epoch - 1) x
    batches per epoch + batch); None when only epoch 1 was recorded."""
    later = np.nonzero(trace.epoch > 1)[0]
    if not len(later):
        return None
    k = int(later[0])
    return int((int(trace.index[k]) - int(trace.batch[k])) // (int(trace.epoch[k]) - 1))


def _kept_epochs(trace: Trace, cfg: dict) -> str:
    kept = sorted(set(trace.epoch.tolist()))
    of = f" of {cfg['epochs']}" if "epochs" in cfg else ""
    per, nb = int((trace.epoch == kept[0]).sum()), _batches_per_epoch(trace)
    # An epoch longer than the recording cap is kept as its first batches (recorded_epochs).
    head = f"the first {per} batches of " if nb is not None and per < nb else ""
    if len(kept) == 1:
        return f"from {head}epoch {kept[0]}{of}"
    if len(kept) <= 4:
        return f"from {head}epochs {', '.join(map(str, kept))}{of}"
    return f"from {head}{len(kept)}{of} epochs"


def _title(trace: Trace, B: int, S: int, n: int, contaminated: int, broken: int) -> str:
    cfg = trace.config_dict()
    if trace.stateful():
        head = f"<b>State flow</b> · stateful, reset: {cfg.get('reset', '?')}"
        if trace.bidirectional:
            head += f" · {trace.direction} layer"
    else:
        head = "<b>State flow</b> · stateless: every sample starts from zeros, nothing is carried"
    notes = []
    if trace.thinned:  # say what was kept; the run's batch count is not in the trace
        notes.append(f"thinned: {trace.n} batches recorded, {_kept_epochs(trace, cfg)}")
    if n < trace.n:
        notes.append(f"showing {n} of the {trace.n} recorded batches")
    if S < B:
        notes.append(f"showing slots 0–{S - 1} of {B}")
    if broken:
        notes.append(f"⋯ {broken} carried states land on the wrong part of their sequence")
    if contaminated:
        notes.append(f"✕ {contaminated} carried states land on another sequence")
    return head + ("<br><sup>" + " · ".join(notes) + "</sup>" if notes else "")


def _view_range(k: int, n: int, window: int) -> list[float]:
    """x range of the window ending at column k (the first window until k reaches it)."""
    hi = max(k, min(window, n) - 1)
    return [hi - window + 0.5, hi + 0.5]


def _cursor(k: int, S: int) -> dict:
    return dict(x=[k - 0.5, k + 0.5, k + 0.5, k - 0.5, k - 0.5],
                y=[-0.5, -0.5, S - 0.5, S - 0.5, -0.5])


def _cover(k: int, n: int, S: int) -> dict:
    """A white sheet over the columns after k (the batches Play has not revealed yet); k >= n-1:
    nothing covered. Above the cells and arrows, below the cursor."""
    if k >= n - 1:
        return dict(x=[np.nan], y=[np.nan])
    lo, hi = k + 0.5, n + 0.5
    return dict(x=[lo, hi, hi, lo, lo], y=[-0.6, -0.6, S - 0.4, S - 0.4, -0.6])


def _play(ms: int) -> dict:
    return dict(frame=dict(duration=ms, redraw=True), fromcurrent=True, mode="immediate",
                transition=dict(duration=0))


def _controls(fig: go.Figure, epoch: np.ndarray, batch: np.ndarray, frame_ms: int,
              large: bool = False) -> None:
    """Play/pause, three speeds and a slider over recorded batches. Plotly buttons cannot step
    to a relative frame, so stepping is done with the slider. Never autoplays. The buttons
    share one row (play left, the worded speeds right) and the slider has its own full-width
    row below: buttons are sized in pixels, the figure's width is not known here, and side by
    side they covered the slider's label (and the word "speed:") on narrow screens."""
    pause = dict(frame=dict(duration=0, redraw=True), mode="immediate", transition=dict(duration=0))
    play = dict(type="buttons", direction="left", x=0, y=0, xanchor="left", yanchor="top",
                pad=dict(t=45, r=10), showactive=False, buttons=[
                    dict(label="▶ play", method="animate", args=[None, _play(frame_ms)]),
                    dict(label="❚❚ pause", method="animate", args=[[None], pause])])
    speeds = dict(type="buttons", direction="left", x=1, y=0, xanchor="right", yanchor="top",
                  pad=dict(t=45), showactive=True, active=1, buttons=[
                      dict(label=lbl, method="animate", args=[None, _play(int(frame_ms * f))])
                      for lbl, f in (("slow", 3.0), ("normal", 1.0), ("fast", 0.3))])
    steps = [dict(method="animate", label=f"epoch {e} · batch {b}",
                  args=[[str(k)], dict(frame=dict(duration=0, redraw=True), mode="immediate",
                                       transition=dict(duration=0))])
             for k, (e, b) in enumerate(zip(epoch.tolist(), batch.tolist()))]
    slider = dict(active=0, steps=steps, x=0, len=1, y=0, yanchor="top",
                  pad=dict(t=SLIDER_PAD + (LARGE_EXTRA if large else 0)),
                  currentvalue=dict(prefix="showing up to ", font=dict(size=12, color="#222")),
                  font=dict(size=1, color="rgba(0,0,0,0)"), ticklen=0, minorticklen=0)
    if large:  # large buttons do not fit one row on a phone: the speeds get their own
        play.update(pad=dict(t=55, r=10))  # below the larger tick labels
        speeds.update(x=0, xanchor="left", pad=dict(t=55 + LARGE_ROW))
    fig.update_layout(updatemenus=[play, speeds], sliders=[slider])


def flow_figure(trace: Trace, window: int = 20, max_slots: int = 32, frame_ms: int = 400,
                max_batches: int = 200, first: int = 0, colour: str = "sequence", unit: int = 0,
                follow: int | None = None, large: bool = False,
                compact: bool = False) -> go.Figure:
    """The animated flow grid: recorded batches first..first+max_batches-1 (every batch of a run
    within the size budget), slots 0..max_slots-1, one frame per batch; never autoplays.
    colour: a COLOUR_MODES key (unit: which unit for "unit"); follow: a sequence id to outline;
    large: projector type (bigger labels and ticks); compact: a phone's narrow screen (slot
    numbers without the word, the colour bar across the top). Play reveals batch by batch: frame k
    covers the columns after k, so cells fill and carry arrows appear as the state is handed
    on; the figure as sent shows every batch (reduced motion drops the frames)."""
    if trace.n == 0:
        return empty_figure("Waiting for the first batch…")
    tr = transitions(trace)
    kinds = carry_kinds(trace)
    B, S = trace.batch_size, min(trace.batch_size, max_slots)
    cols = np.arange(trace.n)[first:first + max_batches]
    n, window = len(cols), max(1, window)
    # Arrows only between drawn columns: the first column's source may be off-screen.
    shown = kinds[cols, :S].copy()
    shown[:1] = trace_mod.NOT_CARRIED
    values = colour_values(trace, colour, cols, S, unit)
    missing = colour != "sequence" and values is None
    if values is None:
        grid = labelled_grid(trace.seq_id[cols, :S], trace.part[cols, :S])
        letters = alphabet_labels(trace, cols, S)
        if letters is not None:
            grid.update(text=letters.T)
    else:
        grid = _colour_grid(values)
    grid.update(hoverinfo="skip", hovertemplate=None)  # the cell markers carry the hover
    if large:
        grid.update(textfont=dict(size=15, color="#222"))
    fig = go.Figure(grid)
    extra = [_target_marks(values, S)] if values is not None and values["target"] is not None else []
    followed, follow_words = (follow_traces(trace, int(follow), cols, S) if follow is not None
                              else ([], ""))
    for t in (_cell_traces(trace, tr, kinds, S, cols) + extra + _carry_traces(shown, S)
              + _bar_traces(trace, tr, S, cols) + slot_reset_traces(trace, cols, S) + followed):
        fig.add_trace(t)
    fig.add_trace(go.Scatter(**_cover(n, n, S), mode="lines", fill="toself", fillcolor="white",
                             line=dict(width=0, color="white"), hoverinfo="skip",
                             hoveron="points", showlegend=False, name="not revealed yet"))
    cover = len(fig.data) - 1
    fig.add_trace(go.Scatter(**_cursor(0, S), mode="lines", line=dict(color="#000", width=2),
                             hoverinfo="skip", showlegend=False, name="current batch"))
    cursor = len(fig.data) - 1
    epoch, batch = trace.epoch[cols], trace.batch[cols]
    grid_axes(fig, S, [f"e{e}·b{b}" for e, b in zip(epoch.tolist(), batch.tolist())])
    fig.update_xaxes(range=_view_range(0, n, window))
    # Frames hold only the window's x range and the cursor: the cells are drawn once.
    # (The range only moves when there are more columns than the window: the app's pages are
    # one window wide, so their frames move the cursor alone and skip a relayout each.)
    scrolls = n > window
    fig.frames = [go.Frame(name=str(k), data=[go.Scatter(**_cursor(k, S)),
                                              go.Scatter(**_cover(k, n, S))],
                           traces=[cursor, cover],
                           layout=dict(xaxis=dict(range=_view_range(k, n, window)))
                           if scrolls else None)
                  for k in range(n)]
    _controls(fig, epoch, batch, frame_ms, large)
    title = _title(trace, B, S, n, int((shown == CONTAMINATED).sum()),
                   int((shown == BROKEN).sum()))
    if values is not None:
        title += f"<br><sup>colour: {COLOUR_MODES[colour]}" + (
            f" (unit {values['title'].rsplit(' ', 1)[-1]})" if colour == "unit" else "") + "</sup>"
    elif missing:
        title += "<br><sup>this trace has no recorded readout: coloured by sequence</sup>"
    if follow_words:
        title += f"<br><sup>{follow_words}</sup>"
    fig.update_layout(
        title=dict(text=title, x=0, xanchor="left", font=dict(size=15)),
        legend=dict(orientation="h", x=0, xanchor="left", y=4, yref="container",
                    yanchor="bottom", font=dict(size=11)),
        margin=dict(l=60, r=90 if values is not None else 20,
                    t=90 + 18 * ((values is not None or missing) + bool(follow_words)), b=185),
        hoverlabel=dict(font_family="monospace"),
        hovermode="closest", hoverdistance=-1,
        height=275 + (24 if S > 8 else 34) * max(S, 3)  # 275: title, controls, legend
        + 18 * ((values is not None or missing) + bool(follow_words)))
    if large:  # projector: larger type everywhere, taller rows
        fig.update_layout(font=dict(size=18), title_font=dict(size=22), legend_font=dict(size=16),
                          height=340 + 40 * max(S, 3), margin_b=185 + LARGE_EXTRA)
        fig.update_xaxes(tickfont=dict(size=15))
        fig.update_yaxes(tickfont=dict(size=15))
    if compact:
        _compact(fig, S, values is not None)
    return fig


def _compact(fig: go.Figure, S: int, coloured: bool) -> None:
    """A phone's layout: every pixel of width to the cells. Slot ticks are bare numbers (the
    axis says "slot"), the colour bar lies across the top under the title instead of taking a
    column on the right, and the bottom margin holds the play row, the slider and a legend
    that wraps to several rows."""
    fig.update_yaxes(ticktext=[str(i) for i in range(S)], title=dict(text="slot", standoff=2))
    m = fig.layout.margin
    top = m.t + (62 if coloured else 0)
    fig.update_layout(margin=dict(l=44, r=8, t=top, b=m.b + 30),
                      height=fig.layout.height + (62 if coloured else 0) + 30)
    if coloured:
        fig.update_traces(selector=dict(type="heatmap"), colorbar=dict(
            orientation="h", x=0, xanchor="left", len=1, y=1, yanchor="bottom", ypad=22,
            thickness=8, title=dict(side="top")))


# ---- text views ----------------------------------------------------------------------------


CARRY_WORDS = {trace_mod.NOT_CARRIED: "", CONTINUATION: "continues its sequence",
               BROKEN: "same sequence, wrong part", CONTAMINATED: "another sequence",
               PADDING: "padding",
               WRONG_END: "backward: the previous chunk's first step enters this one's last"}


def flow_table(trace: Trace, max_rows: int = 2000) -> list[dict]:
    """The flow as rows (screen-reader view): one per (batch, slot), batch-major."""
    tr = transitions(trace)
    kinds = carry_kinds(trace)
    starts = _start_texts(trace, tr)
    h0max = np.abs(trace.h0).max(axis=2) if trace.units else np.zeros(trace.seq_id.shape)
    rows = []
    for k in range(trace.n):
        for i in range(trace.batch_size):
            if len(rows) >= max_rows:
                return rows
            rows.append({"epoch": int(trace.epoch[k]), "batch": int(trace.batch[k]), "slot": i,
                         "seq": int(trace.seq_id[k, i]), "part": int(trace.part[k, i]),
                         "start": starts[k], "carry": CARRY_WORDS[int(kinds[k, i])],
                         "contaminated": bool(kinds[k, i] == CONTAMINATED),
                         "|h0| max": round(float(h0max[k, i]), 3)})
    return rows


def _num(x: float) -> str:
    return "0 (exact)" if x == 0 else f"{x:.2g}"


def carry_summary(trace: Trace, whole: Trace | None = None) -> str:
    """One sentence from trace.carry_check(): the three kinds of carry and the carry identity,
    the replay, the fresh starts. Each clause is what the check measured; a failed identity or
    replay says so. `whole`: the run's trace when `trace` is a view of one layer and direction
    of a stacked Bidirectional run (it holds no replay of its own): the replay clause is that
    layer's and direction's row of the whole trace's check (models/trace.py)."""
    if trace.n == 0:
        return "Carry check: no batches recorded yet."
    c = trace.carry_check()
    if whole is not None and c["max_replay_error"] is None:
        full = whole.carry_check()
        row = next((r for r in full.get("directions") or []
                    if r.get("layer", 1) == trace.layer and r["direction"] == trace.direction),
                   None)
        if row is not None and row["max_replay_error"] is not None:
            c = {**c, "replayed": full["replayed"], "max_replay_error": row["max_replay_error"]}
    out = f"Carry check: {c['carried']:,} carried transitions"
    if c["carried"]:
        we = c.get("wrong_end", 0)  # a backward direction view (models/bidir.py)
        pad = c["carried"] - c["continuation"] - c["broken"] - c["contaminated"] - we
        out += (": " + (f"{we:,} backward carries enter the next chunk at the wrong end (the "
                        f"state at a chunk's first step starts the next chunk's last step), "
                        if "wrong_end" in c else "")
                + f"{c['continuation']:,} continue their sequence, {c['broken']:,} broken "
                f"(same sequence, wrong part), {c['contaminated']:,} contaminated (another "
                f"sequence)" + (f", {pad:,} padding" if pad else "")
                + f"; largest |h0[k+1]−hT[k]| = {_num(c['max_carry_error'])}")
    err = c["max_replay_error"]
    m = f"{c['replayed']:,} batch{'es' if c['replayed'] != 1 else ''}"
    start = "the recorded h0" if trace.stateful() else "zeros (the recorded h0)"
    if err is None:
        out += " · no replay data in this trace"
    elif err <= trace_mod.REPLAY_TOLERANCE:
        out += (f" · replay of {m} from {start} matches "
                + ("exactly" if err == 0 else f"to {err:.0e}"))
    else:
        out += f" · replay of {m} from {start} does NOT match: off by up to {_num(err)}"
    out += f" · {c['fresh_starts']:,} fresh starts"
    if c["fresh_starts"]:
        out += f", largest |h0| = {_num(c['max_fresh_abs'])}"
    if trace.c0 is None:  # GRU, SimpleRNN: h is the whole state; an LSTM's c is checked too
        out += f" · a {trace.cell} carries h only (no c)"
    return out + "."


def flow_html(trace: Trace, autoplay: bool = False, **kwargs) -> str:
    """Standalone HTML of the flow animation (plotly.js inlined: works offline)."""
    return flow_figure(trace, **kwargs).to_html(include_plotlyjs=True, full_html=True,
                                                auto_play=autoplay)
