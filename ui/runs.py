"""Background training: start, stop, poll and collect the runs of this browser session.

st.session_state.runs:    slot -> {"job": id, "cfg": RunConfig}   (slot: "run", or
                          "stateful"/"stateless" for Compare)
st.session_state.results: slot -> result dict (trace, epochs, weights, notes, ...)
A finished run replaces the previous result of its slot only when it is collected, so nothing
already computed is lost while a new run trains.
"""
from __future__ import annotations

import atexit
import functools
import logging
import os
import sys
import threading
import time

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from models import hosting, jobs, limits
from models.tasks import make_task
from models.config import ConfigError, RunConfig
from models.store import library_versions, run_key
# The job itself lives in models/ (it also runs in RQ workers); these names stay importable here.
from models.training import (BUILDING, COMPILING, LIVE_BATCHES, PUBLISH_EVERY,  # noqa: F401
                             _compile_unless_cancelled, load_result, save_result, train_job)

LIVE_POLL = 0.5  # seconds between live-panel reruns while a job of this page trains
QUEUE_POLL = float(os.environ.get("LSTM_QUEUE_POLL", 1.5))  # ... while all its jobs are queued
QUICK_RUN = 0.8  # seconds the Train click's own script run waits for a fast job
FIRST_STATES_WAIT = 2.0  # ... and for the first states of a job still building its model
# Seconds after the first page before compiling the presets' nets (LSTM_PREWARM_DELAY), at
# most: they start as soon as a page has painted its views (page_painted()), so TensorFlow is
# imported and the default shape compiling before most first Trains, yet not during that paint.
PREWARM_DELAY = float(os.environ.get("LSTM_PREWARM_DELAY", 8.0))
_PAINTED = threading.Event()


def page_painted() -> None:
    """A page's views were drawn (its browser had painted the sidebar): the prewarm may start."""
    _PAINTED.set()


def _keep_keras_state_across_reruns() -> None:
    """Stop Streamlit from calling keras.backend.clear_session() after every script run.

    Streamlit does that to reset notebook-style apps, but here models train in background
    threads across reruns, and the live panel reruns every half second: each call cleared
    TensorFlow's kernel cache and Keras's global state under the running jobs (measured: a
    0.2 s run took 18 s in the server). Streamlit's other cleanup (matplotlib) is kept.
    """
    from streamlit.runtime.scriptrunner import script_runner

    def clean_problem_modules() -> None:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            plt.close("all")

    script_runner._clean_problem_modules = clean_problem_modules


_keep_keras_state_across_reruns()


def session_id() -> str:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "local"


def _is_alive(sid: str) -> bool:
    """Is this browser session still connected? (asked by the job manager's watcher)"""
    from streamlit.runtime import Runtime
    if not Runtime.exists():
        return True  # no server runtime (tests, bare mode): never cancel on a guess
    return Runtime.instance().is_active_session(sid)


def _import_shared_modules() -> None:
    """Imported once, before any job or prewarm thread exists: a first import racing between
    a job thread (TensorFlow, Keras) and the page thread (plotly, Streamlit's images) leaves the
    module half-initialised ("partially initialized module 'PIL.Image'", seen in a test run).
    Not at import time: pandas alone took ~0.8 s of the first page's run before the sidebar
    (its Train button) could show."""
    import pandas  # noqa: F401
    import PIL.Image  # noqa: F401


@st.cache_resource
def manager() -> jobs.Jobs:
    """The configured job backend (models/hosting): this process's JobManager, or RQ."""
    _import_shared_modules()  # every thread that trains here is started through the manager
    m = hosting.get_jobs()
    m.watch_sessions(_is_alive)
    stop = _start_prewarm(m) if hosting.backend() == "local" else None  # workers prewarm
    atexit.register(_exit_quickly, m, stop)  # registered last: runs before the manager's own
    return m


EXIT_SECONDS = 0.5  # SIGTERM -> process gone: jobs and prewarm get this long to stop (Streamlit's own stop takes ~0.5 s more)


def _exit_quickly(m: jobs.JobManager, prewarm_stop: threading.Event | None) -> None:
    """At exit (SIGTERM or Ctrl-C): stop the prewarm and every job at their next chunk
    boundary and wait for them at most EXIT_SECONDS. An XLA compile cannot be interrupted
    (3-5 s), and letting the interpreter finalise under it aborts the process or prints a
    traceback from half-torn-down Keras modules; so if TensorFlow is still busy then, the
    process ends there (results of runs in flight are lost either way; finished runs are
    in the store already, committed)."""
    deadline = time.monotonic() + EXIT_SECONDS
    if prewarm_stop is not None:
        prewarm_stop.set()
    m.shutdown(timeout=EXIT_SECONDS)
    busy = [t for t in threading.enumerate() if t.name.startswith(("lstm-job", "lstm-prewarm"))]
    for t in busy:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in busy) and _serving():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _serving() -> bool:
    """Is this process `streamlit run` itself? Only then may exit skip finalisation: in pytest
    (AppTest) os._exit(0) would replace the test run's own exit code. (Not sys.argv[0]: streamlit
    run replaces it with the script's path, so that test never held in a server.)"""
    from ui.first_paint import serving
    return serving()


def _start_prewarm(m: jobs.JobManager) -> threading.Event | None:
    """On a real server, compile the presets' nets in the background while no one is training
    (up to LSTM_MAX_POOLED_NETS), so a preset's first frame comes in about a second: in the
    trainer process (models/trainer.py), or here with LSTM_TRAINER_PROCESS=0.
    The thread ends when done; LSTM_PREWARM=0 turns it off. Returns its stop event."""
    from streamlit.runtime import Runtime
    if os.environ.get("LSTM_PREWARM", "1") == "0" or not Runtime.exists():
        return None

    stop = threading.Event()

    def work():
        deadline = time.monotonic() + PREWARM_DELAY  # keep TensorFlow's import off the paint
        while not _PAINTED.wait(0.1) and time.monotonic() < deadline and not stop.is_set():
            pass
        if stop.is_set():
            return
        if getattr(m, "trainer", None) is not None:
            m.trainer.prewarm()  # the trainer process compiles them (and each fresh one again)
            return
        from models.engine import prewarm
        from models.trainer import preset_configs
        try:  # presets first, the default at the front; the pool's size bounds memory
            prewarm(preset_configs(), idle=lambda: not m.active_owners(), stop=stop)
        except Exception:  # noqa: BLE001  (a warm-up is an optimisation: never a crash)
            if not stop.is_set():
                logging.getLogger(__name__).exception("prewarm failed; presets compile on first use")

    threading.Thread(target=work, name="lstm-prewarm", daemon=True).start()
    return stop


@st.cache_resource
def _versions() -> dict:
    return library_versions("stateful-lstm-explorer")


def store():
    """Finished runs, shared by every session and kept across restarts (SQLite, models/store.py;
    or Redis, models/hosting/redis_store.py, with LSTM_REDIS_URL)."""
    return hosting.get_store()


def check(cfg: RunConfig, series) -> str | None:
    """Cheap checks the engine would fail on, as a sentence (None: fine). No TensorFlow, and
    nothing arranged: batches are counted from the sizes (models/layouts.count_batches)."""
    from models import cost, layouts
    problems = cfg.problems()
    if problems:
        return " ".join(problems)
    try:
        n = None
        if cfg.task == "user":
            if series is None:
                return "The user-series task needs a series: upload a CSV first."
            errs = cost.upload_problems(cfg, len(series))
            if errs:
                return " ".join(errs)
            make_task(cfg, series)  # its own checks (too short, not finite), in its words
            n = cost.upload_sequences(cfg, len(series))
        per_epoch = layouts.count_batches(cfg, cost.sequence_counts(cfg, n)[0])
        if per_epoch * cfg.epochs > limits.MAX_TOTAL_BATCHES:
            return (f"This run would train {per_epoch * cfg.epochs:,} batches; this server allows "
                    f"{limits.MAX_TOTAL_BATCHES:,}. Use fewer epochs or a larger batch.")
    except ConfigError as e:
        return str(e)
    return None


def warm_ahead(cfg: RunConfig) -> None:
    """Settings no preset has, and that can run: compile their net shape now, while the
    student looks at them, so that Train starts without waiting for XLA (the trainer does it
    only while no job runs; models.trainer.WarmAhead). Once per settings per page, only on a
    real server (like the presets' prewarm)."""
    from streamlit.runtime import Runtime
    from models.presets import PRESETS
    key = cfg.to_json()
    if st.session_state.get("_warm_sent") == key:
        return
    st.session_state["_warm_sent"] = key
    if (os.environ.get("LSTM_PREWARM", "1") == "0" or not Runtime.exists()
            or any(p.config == cfg for p in PRESETS.values())):  # the presets are prewarmed
        return
    manager().warm(key)


def _estimate(cfg: RunConfig, series) -> float | None:
    """The cost model's duration, so queue waits weigh each run ahead by its own size."""
    from models import cost
    try:
        n = cost.upload_sequences(cfg, len(series)) if series is not None else None
        return cost.estimate(cfg, n).seconds
    except Exception:  # an estimate only sizes the wait shown; the run itself was checked
        return None


def client_id() -> str | None:
    """Who is asking, across tabs: the browser (its XSRF cookie, shared by its tabs, hashed),
    else its address. Not the address first: a class behind one school router or a proxy
    would be one client, and limited like one."""
    import hashlib
    try:
        cookie = st.context.cookies.get("_streamlit_xsrf")
        addr = st.context.ip_address
    except Exception:  # noqa: BLE001  (no browser context: AppTest, bare mode)
        return None
    who = f"browser:{cookie}" if cookie else (f"address:{addr}" if addr else None)
    return hashlib.sha256(who.encode()).hexdigest()[:16] if who else None


def start(slots: dict[str, RunConfig], series=None) -> str | None:
    """Start one job per slot (after stopping this session's running ones). Error text or None."""
    for cfg in slots.values():
        err = check(cfg, series)
        if err:
            return err
    stop_all()
    sid, m = session_id(), manager()
    runs, results = {}, st.session_state.setdefault("results", {})
    st.session_state.mode = "compare" if len(slots) > 1 else "run"
    try:
        for slot, cfg in slots.items():
            # Uploaded series are private: never shared through the store or a job key.
            k = None if series is not None else run_key(cfg.to_json(), _versions())
            stored = load_result(k) if k else None
            if stored is not None:  # trained before (by anyone): answered from the store
                results[slot] = stored
                st.session_state.new_result = True
                continue
            label = f"{slot}: {cfg.task}/{cfg.layout}"
            fn = functools.partial(train_job, cfg, series, run_id=k)  # pickles for RQ
            jid = m.submit(fn, owner=sid, key=k, label=label, client=client_id(),
                           estimate=_estimate(cfg, series))
            runs[slot] = {"job": jid, "cfg": cfg}
    except jobs.QueueFull as e:
        for r in runs.values():
            m.cancel(r["job"], owner=sid)
        return str(e)
    st.session_state.runs = runs
    st.session_state.pop("errors", None)
    if not runs:  # every slot came from the store: drop the other mode's results now
        for old in (("stateful", "stateless") if "run" in slots else ("run",)):
            results.pop(old, None)
    return None


def wait_briefly(limit: float = QUICK_RUN, first_states: float = FIRST_STATES_WAIT,
                 poll: float = 0.03) -> None:
    """Most presets train in well under a second on a warm server: give the jobs just
    started up to `limit`, so this very script run can show the result (no extra round trip).
    Stop waiting as soon as a job cannot finish in time (queued, compiling, or its own
    estimate of time left overshoots): the live panel then shows its first states at once
    (they are published before the phase says "training"). A run still building its model
    (a pooled net: a fraction of a second, longer on a loaded machine) is waited for up to
    `first_states` for those first states, so this run draws them rather than the live
    panel's next tick, up to LIVE_POLL later."""
    m, t0 = manager(), time.monotonic()
    for r in st.session_state.get("runs", {}).values():
        while True:
            s = m.wait(r["job"], timeout=poll)
            if s is None or s.state in jobs.FINISHED:
                break
            now = time.monotonic()
            if _building(s):
                if now - t0 >= max(limit, first_states):
                    return
            elif now - t0 >= limit or not _may_finish_within(s, t0 + limit - now):
                return


def _building(s: jobs.JobStatus) -> bool:
    """Running, and not training yet: its model is being built (a pooled net: its states
    come within a fraction of a second)."""
    return s.state == jobs.RUNNING and (s.info or {}).get("phase") in (None, BUILDING)


def _may_finish_within(s: jobs.JobStatus, seconds: float) -> bool:
    info = s.info or {}
    if (s.state == jobs.QUEUED and not _starting(s)) or info.get("phase") == COMPILING:
        return False  # seconds at least: no use holding the page back
    left = info.get("left")
    return left is None or left <= seconds


def stop_all() -> None:
    m, sid = manager(), session_id()
    for r in st.session_state.get("runs", {}).values():
        m.cancel(r["job"], owner=sid)


def statuses() -> dict:
    m = manager()
    return {slot: m.status(r["job"]) for slot, r in st.session_state.get("runs", {}).items()}


def all_queued(sts: dict | None = None) -> bool:
    """Is every run of this page waiting for a turn (not one about to start)? `sts`: this
    rerun's `statuses()`, if it has them already."""
    sts = [s for s in (sts if sts is not None else statuses()).values()
           if s is not None and s.state not in jobs.FINISHED]
    return bool(sts) and all(s.state == jobs.QUEUED and not _starting(s) for s in sts)


def _starting(s: jobs.JobStatus) -> bool:
    """Queued with a free worker (eta 0): on Redis + RQ every run is queued until a worker
    takes it, a few ms; the page waits and polls for it as for a running one."""
    return s.state == jobs.QUEUED and s.eta_seconds == 0


def poll_every() -> float:
    """Seconds between the live panel's reruns: the live rate while a run of this page trains
    or is about to; while all wait, the queue line's own reading of the board keeps it current
    (ui/queue_line.py), so the panel reruns only as a safety net; without a board, QUEUE_POLL."""
    if not all_queued():
        return LIVE_POLL
    from ui import queue_line
    return queue_line.SAFETY_POLL if queue_line.board_on() else QUEUE_POLL


def any_active() -> bool:
    """Does this page hold runs it has not collected? Asked after `collect()`: a run that
    finished in between is still here, so the live panel stays and its next tick collects it
    (asking the job's state instead lost such a result until the next click: one session of
    80 in bench/ws_load.py on the RQ backend showed neither the result nor a live panel)."""
    return bool(st.session_state.get("runs"))


def collect() -> bool:
    """Move finished jobs' results into session_state.results. True if anything changed."""
    m, changed = manager(), False
    runs = st.session_state.get("runs", {})
    results = st.session_state.setdefault("results", {})
    errors = st.session_state.setdefault("errors", {})
    for slot, r in list(runs.items()):
        s = m.status(r["job"])
        if s is not None and s.state not in jobs.FINISHED:
            continue
        res = m.result(r["job"]) if s is not None else None
        if st.session_state.get("mode") == "run" and slot == "run":
            for old in ("stateful", "stateless"):
                results.pop(old, None)
        if isinstance(res, dict):
            if res.get("run_id") and hasattr(store(), "remember"):
                store().remember(res["run_id"])  # Redis backend: a local copy for its link
            if s is not None and s.stopped_reason:
                res = {**res, "stopped_reason": s.stopped_reason}  # e.g. its time budget
            results[slot] = res
            st.session_state.new_result = True
        elif s is not None and s.state == jobs.FAILED:
            errors[slot] = s.error or "The run failed."
        elif s is None:
            errors[slot] = "This run's record expired on the server; train again."
        elif s.stopped_reason:  # the server stopped it (its time budget) before a batch
            errors[slot] = s.stopped_reason
        else:  # cancelled before its first batch: say so rather than show nothing
            errors[slot] = "it was stopped before its first batch (Stop, or the connection " \
                           "dropped); press Train to run it again."
        runs.pop(slot)
        if s is not None:
            m.collected(r["job"], session_id())
        changed = True
    if changed:
        for k in ("live_flow_fig", "live_figs"):  # the live figures' data is no longer shown
            st.session_state.pop(k, None)
    if changed and st.session_state.get("mode") == "compare" and not runs:
        results.pop("run", None)
    return changed


def live(slot: str, name: str):
    r = st.session_state.get("runs", {}).get(slot)
    return manager().live(r["job"], name) if r else None
