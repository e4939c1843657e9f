"""The State-flow tab: where every slot's state came from, batch after batch (viz/flow.py), what
it carries (colour), where the gradient stops (viz/gradient_view.py) and one sequence's path."""
from __future__ import annotations

import streamlit as st

import viz
from ui import text
from ui.views import _chart

FLOW_PAGE = 20  # batches per page of the finished run's flow figure: one window, drawn in ~0.3 s
PHONE_PAGE = 8  # fewer, larger batches on a phone (a user agent that says Mobile)
PAGE_SIZES = (5, 8, 10, 20)
COLOUR_KEYS = list(viz.COLOUR_MODES)


def _default_page() -> int:
    try:
        ua = st.context.headers.get("User-Agent", "") or ""
    except Exception:  # noqa: BLE001  (no request headers, e.g. in AppTest)
        ua = ""
    return PHONE_PAGE if "Mobile" in ua else FLOW_PAGE


def flow_tab(res: dict | None) -> None:
    st.caption(text.CAPTIONS["flow"])
    if res is None:
        st.info("Train to see where every slot's state comes from. Until then, the "
                "**Data layout** tab shows how the batches will be arranged.")
        return
    trace = res["trace"]
    st.markdown(f"**{viz.carry_summary(trace)}**")
    layer = _layer_control(trace)
    trace = trace.layer_view(layer)  # what the views below draw: that layer's states
    as_table = st.toggle("Show as a table (screen-reader friendly)", key="flow_table")
    if as_table:
        st.dataframe(viz.flow_table(trace, max_rows=2000), hide_index=True, height=400)
        return
    c1, c2, c3 = st.columns([3, 2, 2])
    colour = c1.radio("Colour cells by", COLOUR_KEYS, key="flow_colour", horizontal=True,
                      format_func=lambda k: viz.COLOUR_MODES[k],
                      help="sequence: which sequence sits in the slot. readout from h0 vs "
                           "target: what the model would answer from the carried state alone, "
                           "before it sees the batch (its Dense layer applied to h0), with the "
                           "true target in the corner. |h0|: the size of the carried state. "
                           "One unit: that unit of h0.")
    unit = 0
    if colour == "unit" and trace.units:
        unit = int(c2.number_input("Unit", 0, max(trace.units - 1, 0), 0, key="flow_unit"))
    per_page = int(c3.selectbox("Batches per page", PAGE_SIZES,
                                index=PAGE_SIZES.index(_default_page()), key="flow_per_page",
                                help="Fewer batches: larger cells (a phone shows 8)."))
    c4, c5 = st.columns(2)
    grads = c4.toggle("Where the gradient stops", key="flow_gradients",
                      help="How far back inside each batch the loss gradient reaches, and the "
                           "gradient cut at every boundary (measured with the train step's tape).")
    large = c5.toggle("Large type (projector)", key="flow_large")
    first = 0
    if trace.n > per_page:  # page through long runs: each page is one quick browser draw
        pages = list(range(0, trace.n, per_page))
        if st.session_state.get("flow_first") not in pages:
            st.session_state.pop("flow_first", None)
        first = st.select_slider(
            "Recorded batches shown", pages, key="flow_first",
            format_func=lambda i: f"{i + 1}–{min(i + per_page, trace.n)} (epoch {trace.epoch[i]})")
    if colour != "sequence" and trace.n and trace.epoch[first] == 1 and trace.epoch[-1] > 1:
        # The first epoch's states come from a model that has barely trained: say where to look.
        st.caption(f"This page is from epoch 1, the start of training. Move **Recorded batches "
                   f"shown** to epoch {int(trace.epoch[-1])} to see what the trained state carries.")
    follow = _follow_control(trace, first, per_page)
    reduced = bool(st.session_state.get("reduced_motion"))
    opts = dict(first=first, per_page=per_page, colour=colour, unit=unit, follow=follow,
                large=large, reduced=reduced)
    if res.get("run_id"):  # a stored run: every session showing it shares one figure
        rid = res["run_id"] if layer == 1 else f"{res['run_id']}#layer{layer}"
        fig = _shared_flow_figure(rid, tuple(sorted(opts.items())), trace)
    else:
        fig = _flow_figure(trace, **opts)
    if reduced:
        st.caption("Reduced motion: no animation. Pick later batches with "
                   "**Recorded batches shown**." if trace.n > per_page else
                   "Reduced motion: no animation.")
    else:
        st.caption("▶ play reveals the batches one by one: cells fill and carry arrows appear "
                   "as each state is handed on. Click a cell to follow its sequence.")
    event = st.plotly_chart(fig, width="stretch", key="flow_fig", on_select="rerun",
                            selection_mode="points", config={"displaylogo": False})
    _follow_from_click(event, trace, first, per_page)
    if grads:
        _chart(viz.gradient_figure(trace, first=first, max_batches=per_page, large=large),
               key="grad_fig")


def _layer_control(trace) -> int:
    """Which stacked layer the flow draws (only offered when there is more than one)."""
    if trace.layers < 2:
        return 1
    st.caption(viz.layer_summary(trace))
    options = list(range(1, trace.layers + 1))
    if st.session_state.get("flow_layer") not in options:
        st.session_state["flow_layer"] = trace.layers
    return int(st.radio("Layer shown", options, key="flow_layer", horizontal=True,
                        format_func=lambda k: f"layer {k}" + (" (input)" if k == 1 else
                                                              " (top, read by Dense)"
                                                              if k == trace.layers else ""),
                        help="Each stacked layer keeps its own state per slot. The flow shows "
                             "the chosen layer's h0 and hT; the carry check above covers all."))


def _follow_control(trace, first: int, per_page: int) -> int | None:
    """A sequence to follow: set by clicking a cell, or picked here (keyboard and phones)."""
    seqs = sorted({int(s) for s in trace.seq_id[first:first + per_page].ravel().tolist() if s >= 0})
    options = [None] + seqs
    clicked = st.session_state.pop("flow_follow_click", None)  # set by a click, last run
    if clicked is not None and clicked in options:
        st.session_state["flow_follow"] = clicked
    if st.session_state.get("flow_follow") not in options:
        st.session_state["flow_follow"] = None
    return st.selectbox("Follow a sequence", options, key="flow_follow",
                        format_func=lambda s: "none" if s is None else f"sequence {s}",
                        help="Outlines its cells and says where its state came from and where "
                             "it went. Clicking a cell picks its sequence.")


def _follow_from_click(event, trace, first: int, per_page: int) -> None:
    """A click on a cell selects its hover marker: follow that cell's sequence."""
    try:
        points = event.selection.points if event else []
    except AttributeError:
        points = []
    if not points:
        return
    p = points[0]
    x, y = p.get("x"), p.get("y")
    if x is None or y is None:
        return
    k, slot = first + int(round(float(x))), int(round(float(y)))
    if not (0 <= k < min(trace.n, first + per_page) and 0 <= slot < trace.batch_size):
        return
    seq = int(trace.seq_id[k, slot])
    if seq >= 0 and st.session_state.get("flow_follow") != seq:
        # the selectbox exists already in this run: hand the choice to the next run
        st.session_state["flow_follow_click"] = seq
        st.rerun()


def _flow_figure(trace, first: int, per_page: int, colour: str, unit: int, follow, large: bool,
                 reduced: bool):
    fig = viz.flow_figure(trace, window=per_page, max_batches=per_page, first=first,
                          colour=colour, unit=unit, follow=follow, large=large)
    if reduced:
        fig.frames = ()
        fig.update_layout(updatemenus=[], sliders=[])
    return fig


@st.cache_resource(max_entries=8, ttl=600, show_spinner=False)
def _shared_flow_figure(run_id: str, opts: tuple, _trace):
    """A class opening the same preset gets the same run (same id, same trace): building its
    figure once instead of once per student took ~40 ms x 40 off the server. Never mutated.
    Few entries: a plotly Figure of one page holds ~2.7 MB of Python objects."""
    return _flow_figure(_trace, **dict(opts))
