"""A new page's first script run paints the sidebar and text only; the views follow.

Measured (new tabs on a running server, 2 loaded cores, headless Chromium): the whole first
run reaches the browser within ~0.1 s of its websocket opening, yet the Train button showed
2.3-7 s later, because the browser first loads and parses plotly.js for the Data layout
figure. Without a figure in that first paint, Train was clickable ~3 s sooner (median).
So on a session's first run the views' area is a placeholder fragment whose timer the
browser fires a second later; that tick reruns the whole app, which draws them.
"""
from __future__ import annotations

import streamlit as st

# Seconds until the browser asks for the views. The timer starts when the first run's messages
# arrive, while the sidebar's own element scripts still load: at 0.05 s plotly.js loaded beside
# them and nothing was gained (median 4.6 s to Train clickable over 6 tabs); 0.5 s: 2.7 s;
# 1.0 s: 2.2 s, but every new page's figure a second later (bench/startup.py measures 0.5 s).
TICK = 0.5


def serving() -> bool:
    """`streamlit run` (a browser paints): AppTest, which has a Runtime too but no timers,
    draws everything at once. (Not sys.argv: streamlit run sets argv[0] to the script.)"""
    import sys
    return "streamlit.web.bootstrap" in sys.modules


def deferred() -> bool:
    """Should this run leave the views for the next one? (a session's first run only)"""
    if st.session_state.get("painted") or not serving():
        return False
    st.session_state.painted = True  # whatever happens next, one deferral per session
    return True


def _tick() -> None:
    if st.session_state.pop("paint_armed", False):  # the browser's tick, not the first run
        st.rerun(scope="app")
    st.session_state.paint_armed = True
    st.caption("Loading the views…")


def placeholder() -> None:
    st.fragment(run_every=TICK)(_tick)()
