"""The State-flow tab: where every slot's state came from, batch after batch (viz/flow.py)."""
from __future__ import annotations

import streamlit as st

import viz
from ui import text
from ui.views import _chart

FLOW_PAGE = 20  # batches per page of the finished run's flow figure: one window, drawn in ~0.3 s


def flow_tab(res: dict | None) -> None:
    st.caption(text.CAPTIONS["flow"])
    if res is None:
        st.info("Train to see where every slot's state comes from. Until then, the "
                "**Data layout** tab shows how the batches will be arranged.")
        return
    trace = res["trace"]
    st.markdown(f"**{viz.carry_summary(trace)}**")
    as_table = st.toggle("Show as a table (screen-reader friendly)", key="flow_table")
    if as_table:
        st.dataframe(viz.flow_table(trace, max_rows=2000), hide_index=True, height=400)
        return
    first = 0
    if trace.n > FLOW_PAGE:  # page through long runs: each page is one quick browser draw
        pages = list(range(0, trace.n, FLOW_PAGE))
        first = st.select_slider(
            "Recorded batches shown", pages, key="flow_first",
            format_func=lambda i: f"{i + 1}–{min(i + FLOW_PAGE, trace.n)} (epoch {trace.epoch[i]})")
    reduced = bool(st.session_state.get("reduced_motion"))
    if res.get("run_id"):  # a stored run: every session showing it shares one figure
        fig = _shared_flow_figure(res["run_id"], first, reduced, trace)
    else:
        fig = _flow_figure(trace, first, reduced)
    if reduced:
        st.caption("Reduced motion: no animation. Pick later batches with "
                   "**Recorded batches shown**." if trace.n > FLOW_PAGE else
                   "Reduced motion: no animation.")
    _chart(fig, key="flow_fig")


def _flow_figure(trace, first: int, reduced: bool):
    fig = viz.flow_figure(trace, max_batches=FLOW_PAGE, first=first)
    if reduced:
        fig.frames = ()
        fig.update_layout(updatemenus=[], sliders=[])
    return fig


@st.cache_resource(max_entries=8, ttl=600, show_spinner=False)
def _shared_flow_figure(run_id: str, first: int, reduced: bool, _trace):
    """A class opening the same preset gets the same run (same id, same trace): building its
    figure once instead of once per student took ~40 ms x 40 off the server. Never mutated.
    Few entries: a plotly Figure of one page holds ~2.7 MB of Python objects."""
    return _flow_figure(_trace, first, reduced)
