"""The State-flow tab: where every slot's state came from, batch after batch (viz/flow.py), what
it carries (colour), where the gradient stops (viz/gradient_view.py) and one sequence's path."""
from __future__ import annotations

import numpy as np
import streamlit as st

import viz
from ui import text
from ui.views import _chart, direction_control, layer_control

FLOW_PAGE = 20  # batches per page of the finished run's flow figure: one window, drawn in ~0.3 s
# Fewer, larger batches on a phone: at 390 px five columns leave ~60 px per cell, room for a
# label like "s52·p1" with the carry arrows clear of it (eight left ~38 px: arrows on the label).
PHONE_PAGE = 5
PAGE_SIZES = (5, 8, 10, 20)
COLOUR_KEYS = list(viz.COLOUR_MODES)


def is_phone() -> bool:
    """The server never learns the viewport's width; a phone's browser says "Mobile" in its
    user agent (iPhone, Android phones; tablets do not). The Phone layout toggle overrides it."""
    try:
        ua = st.context.headers.get("User-Agent", "") or ""
    except Exception:  # noqa: BLE001  (no request headers, e.g. in AppTest)
        ua = ""
    return "Mobile" in ua


LARGE_PAGE = 8  # large type: 15 px labels need ~3x the width of a 20-batch page's cells


def _page_size() -> int:
    if st.session_state.get("flow_compact"):
        return PHONE_PAGE
    return LARGE_PAGE if st.session_state.get("flow_large") else FLOW_PAGE


def _layout_changed() -> None:
    """Flipping the phone layout or large type also picks a page size that fits its cells'
    labels (the user can still change it)."""
    st.session_state["flow_per_page"] = _page_size()


# Streamlit's sidebar overlays the page below its "md" breakpoint (768 px). On a phone the user
# opens it to press Train, and Streamlit then remembers "open" in localStorage, which outranks
# st.set_page_config(initial_sidebar_state="collapsed") (tried: no effect). So the page presses
# the sidebar's own collapse button, as the user would, and only on a narrow screen.
_COLLAPSE_JS = """<script>
(() => {
  if (window.innerWidth > 768) return;
  const b = document.querySelector('[data-testid="stSidebarCollapseButton"] button');
  if (b && document.querySelector('[data-testid="stSidebar"][data-collapsed="false"]')) b.click();
})();
</script>"""


def sidebar_out_of_the_way() -> None:
    """After Train on a phone: close the sidebar so the run's progress and flow are in view."""
    st.html(_COLLAPSE_JS, unsafe_allow_javascript=True)


def opening_page(trace, per_page: int) -> int:
    """The page holding the first recorded batch of the last recorded epoch: the flow opens on
    the trained state (epoch 1 starts from an untrained model); the slider goes back."""
    k = int(np.argmax(trace.epoch == trace.epoch[-1]))
    return k // per_page * per_page


def flow_tab(res: dict | None) -> None:
    st.caption(text.CAPTIONS["flow"])
    if res is None:
        st.info("Train to see where every slot's state comes from. Until then, the "
                "**Data layout** tab shows how the batches will be arranged.")
        return
    trace = res["trace"]
    # a Bidirectional run's summary is the shown layer's and direction's (the captions below
    # cover every layer and both directions)
    head = st.empty()
    if trace.layers > 1:
        st.caption(viz.layer_summary(trace))
    layer = layer_control(trace)
    direction = direction_control(trace, layer=layer)
    # what the views below draw: that layer's states, and that direction's
    trace = trace.layer_view(layer).direction_view(direction)
    if not res["trace"].bidirectional:  # every layer's check in one sentence
        head.markdown(f"**{viz.carry_summary(res['trace'])}**")
    else:  # the shown direction's (of the shown layer: its replay from the whole run's check)
        head.markdown(f"**{viz.carry_summary(trace, whole=res['trace'])}**")
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
    phone = is_phone()
    per_page = int(c3.selectbox("Batches per page", PAGE_SIZES,
                                index=PAGE_SIZES.index(PHONE_PAGE if phone else FLOW_PAGE),
                                key="flow_per_page",
                                help=f"Fewer batches: larger cells (a phone shows {PHONE_PAGE})."))
    c4, c5, c6 = st.columns(3)
    grads = c4.toggle("Where the gradient stops", key="flow_gradients",
                      help="How far back inside each batch the loss gradient reaches, and the "
                           "gradient cut at every boundary (measured with the train step's tape).")
    large = c5.toggle("Large type (projector)", key="flow_large", on_change=_layout_changed,
                      help=f"Larger type for a classroom; shows {LARGE_PAGE} batches a page.")
    compact = c6.toggle("Phone layout", value=phone, key="flow_compact", on_change=_layout_changed,
                        help="For a narrow screen: fewer batches, slot numbers only, the colour "
                             "bar on top, the play buttons above the slider. On by itself on a "
                             "phone.")
    first = 0
    if trace.n > per_page:  # page through long runs: each page is one quick browser draw
        pages = list(range(0, trace.n, per_page))
        shown_run = (res.get("run_id") or id(trace), per_page)
        if st.session_state.get("flow_first_for") != shown_run:  # a new run or page size
            st.session_state["flow_first_for"] = shown_run
            st.session_state["flow_first"] = opening_page(trace, per_page)
        elif st.session_state.get("flow_first") not in pages:
            st.session_state.pop("flow_first", None)
        first = st.select_slider(
            "Recorded batches shown", pages, key="flow_first",
            format_func=lambda i: f"{i + 1}–{min(i + per_page, trace.n)} (epoch {trace.epoch[i]})")
    if colour != "sequence" and trace.n and trace.epoch[first] == 1 and trace.epoch[-1] > 1:
        # The first epoch's states come from a model that has barely trained: say where to look.
        st.caption(f"This page is from epoch 1, the start of training. Move **Recorded batches "
                   f"shown** to epoch {int(trace.epoch[-1])} to see what the trained state carries.")
    elif trace.n > per_page and trace.epoch[first] == trace.epoch[-1] > 1:
        st.caption(f"This page is from epoch {int(trace.epoch[-1])}, the last recorded: the "
                   f"trained model. Move **Recorded batches shown** back for earlier epochs.")
    follow = _follow_control(trace, first, per_page)
    reduced = bool(st.session_state.get("reduced_motion"))
    opts = dict(first=first, per_page=per_page, colour=colour, unit=unit, follow=follow,
                large=large, reduced=reduced, compact=compact)
    if res.get("run_id"):  # a stored run: every session showing it shares one figure
        rid = res["run_id"] if layer == 1 else f"{res['run_id']}#layer{layer}"
        rid += "" if direction == "forward" else f"#{direction}"
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
        _chart(viz.gradient_figure(trace, first=first, max_batches=per_page, large=large,
                                   compact=compact),
               key="grad_fig")


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
                 reduced: bool, compact: bool = False):
    fig = viz.flow_figure(trace, window=per_page, max_batches=per_page, first=first,
                          colour=colour, unit=unit, follow=follow, large=large, compact=compact)
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
