"""Stateful LSTM Explorer: watch what `stateful=True` does to a Keras LSTM, batch by batch.

The page is a short story: read the URL -> draw the controls -> start/stop background jobs ->
show the live run -> show the views of the last finished run. Everything that computes lives in
models/ (and viz/ for figures); ui/ holds the Streamlit pieces.
"""
import streamlit as st

# Only what the sidebar needs comes before it: the Train button is sent (and clickable) while
# the views' modules (plotly figures) still load on a server's first page.
from ui import first_paint, runs, settings
from ui.safe import lines, plain

st.set_page_config(page_title="Stateful LSTM Explorer", page_icon="🔁", layout="wide")

if "lesson" in st.query_params or "teacher" in st.query_params:  # ui/lesson.py wanted()
    from ui import lesson  # ?lesson=NAME&step=N (a student) or ?teacher=KEY
    lesson.page()
    st.stop()

# 1. Settings: from the URL (first run only), then the sidebar (back into the URL in step 3).
settings.read_url_once()
cfg, pressed = settings.sidebar()

from ui import answers, flow, views  # noqa: E402  (after the sidebar: see the imports above)

st.title("Stateful LSTM Explorer")
st.caption(f"What does `stateful=True` actually carry from one batch to the next in a Keras "
           f"{cfg.cell} layer? Pick a preset in the sidebar, press **Train**, and watch every "
           "slot's state.")
if st.session_state.url_problems:
    # These quote the link's own words: shown as plain text, never as Markdown (ui/safe.py).
    st.warning("Some settings in the link could not be used:\n\n"
               + lines(st.session_state.url_problems))
for n in st.session_state.get("url_notices", []):
    st.info(n)
if st.session_state.train_blocked and not (cfg.task == "user" and st.session_state.upload_series is None):
    st.error(plain(st.session_state.train_blocked))  # the settings' problems, or why it cannot train
for n in cfg.notes():
    st.info(n)

# 2. Data for the "user" task: an uploaded CSV of one numeric column.
series = st.session_state.upload_series  # read in the sidebar, before Train could be pressed

# 3. Jobs: buttons start or stop background runs; the live panel polls them.
if pressed["train"] or pressed["compare"]:
    slots = ({"run": cfg} if pressed["train"] else
             {"stateful": cfg.replace(stateful=True), "stateless": cfg.replace(stateful=False)})
    err = runs.start(slots, series)
    if err:
        st.error(plain(err))
    else:
        flow.sidebar_out_of_the_way()  # on a phone the sidebar covers the page
        runs.wait_briefly()
if pressed["stop"]:
    runs.stop_all()

for slot, err in st.session_state.get("errors", {}).items():
    st.error(plain(f"{views.SLOT_NAMES.get(slot, slot)} did not finish: {err}"))
runs.collect()
settings.write_url(cfg)  # after collecting: a run that just finished adds its run= id
# The live panel exists only while a job runs. Registered on an idle page, its leftover
# 0.5 s reruns still counted as live and could replace the run that draws a result before
# that run's messages were sent (seen under load: a result without its flow figure).
if runs.any_active():
    # A queued page only updates its position line, and that line reads the queue itself
    # (ui/queue_line.py): its reruns would take the CPU from the pages that draw live states
    # (80 sessions polling every 0.5 s, then 1.5 s, cut each other's reruns short).
    every = runs.poll_every()
    st.session_state.live_every = every
    st.fragment(run_every=every)(views.live_panel)()

# 4. Views of the last finished run (the Data layout and Keras code follow the settings,
#    and say whether those are the run's).
slot, res = views.shown_result()
if res is not None:
    views.mismatch_notice(res, cfg)  # the sidebar changed since: say which run is shown
    views.result_header(res, cfg)
# Lazy tabs: only the open one is computed and sent (on_change="rerun" + tab.open).
if st.session_state.pop("new_result", False) and st.session_state.get("view") in (None, "Data layout"):
    st.session_state.view = "State flow"  # the first result: show where its state went
VIEWS = {
    "State flow": lambda: flow.flow_tab(res),
    "Hidden state": lambda: views.hidden_tab(res),
    "Data layout": lambda: views.layout_tab(cfg, series),
    "Curves": lambda: views.curves_tab(res),
    "Answers": lambda: answers.answers_tab(res),
    "Keras code": lambda: views.code_tab(cfg),
}
if first_paint.deferred():  # a new page: Train first, the figures a tick later (ui/first_paint.py)
    first_paint.placeholder()
else:
    runs.page_painted()  # the presets' prewarm may start (ui/runs.py)
    tabs = st.tabs(list(VIEWS), key="view", on_change="rerun",
                   default="State flow" if res is not None else "Data layout")
    for tab, draw in zip(tabs, VIEWS.values()):
        if tab.open:
            with tab:
                draw()
    st.divider()
    views.exports(cfg, res)
views.server_status()
