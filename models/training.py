"""Training one run as a job: build, compile, train, publish partial results, store it.

Runs wherever the configured backend runs jobs (models/hosting): a thread of the web process,
or an RQ worker process. Never imports streamlit. `train_job` is a module-level function, so
`functools.partial(train_job, cfg, series, run_id=key)` pickles onto the RQ queue.
"""
from __future__ import annotations

import threading
import time

from models.config import ConfigError, RunConfig
from models.hosting import get_store as store
from models.trace import Trace

PUBLISH_EVERY = 0.3  # seconds between partial traces
BUILDING = "building the model"  # phase of a run getting its net (pooled: milliseconds)
COMPILING = "compiling (XLA)"  # phase of a run whose net is new: seconds, not milliseconds
LIVE_BATCHES = 24  # newest trained batches in the live state-flow figure

def save_result(run_id: str, res: dict) -> bool:
    """Store a finished run; False if the store refused it (too big, or an error: reported)."""
    meta = {"config": res["cfg"].to_json(), "epochs": res["epochs"], "notes": res["notes"],
            "seconds": res["seconds"], "metric": res["metric"],
            "batches_per_epoch": res["batches_per_epoch"], "batches_trained": res["batches_trained"],
            "weights": [w.tolist() for w in res["weights"]]}
    return store().put(run_id, res["trace"].to_bytes(), meta)


def load_result(run_id: str) -> dict | None:
    """A stored run as a result dict, or None (missing, or corrupt: the store reports it)."""
    import numpy as np
    hit = store().get(run_id)
    if hit is None:
        return None
    try:
        data, meta = hit
        cfg = RunConfig.from_json(meta["config"])
        return {"trace": Trace.from_bytes(data), "epochs": meta["epochs"],
                "weights": [np.asarray(w, np.float32) for w in meta["weights"]],
                "notes": meta["notes"], "seconds": meta["seconds"], "cancelled": False,
                "metric": meta["metric"], "cfg": cfg, "run_id": run_id, "stored": True,
                **_batch_counts(meta, cfg)}
    except (ValueError, KeyError, TypeError, ConfigError) as e:
        store().report(f"Stored run {run_id} could not be read ({type(e).__name__}); skipped.")
        return None


def _batch_counts(meta: dict, cfg: RunConfig) -> dict:
    """Batches per epoch and batches trained of a stored run. Runs stored before these were
    kept are counted from their config (stored runs are finished, never uploaded series)."""
    if "batches_per_epoch" in meta:
        return {"batches_per_epoch": int(meta["batches_per_epoch"]),
                "batches_trained": int(meta["batches_trained"])}
    from models import layouts
    from models.tasks import make_task
    d = make_task(cfg, None)
    per = layouts.arrange(d.x_train, d.y_train, cfg).n_batches
    return {"batches_per_epoch": per, "batches_trained": per * len(meta["epochs"])}


def train_job(cfg: RunConfig, series, ctx, run_id: str | None = None):
    """Runs in a worker thread: build, compile, train, publishing partial results."""
    ctx.progress(0.0, {"phase": "loading TensorFlow"})
    from models.engine import Engine  # TensorFlow loads here, never on the first paint
    ctx.progress(0.0, {"phase": BUILDING})
    eng = Engine(cfg, series, on_wait=lambda: ctx.progress(0.0, {"phase": COMPILING}))
    if run_id:
        store().started(run_id, cfg.to_json())  # named on reconnect if this process dies
    try:
        if not eng.compiled:
            ctx.progress(0.0, {"phase": COMPILING})
            if not _compile_unless_cancelled(eng, ctx.cancelled):
                return None  # the compile finishes on its own and gives the net to the pool
        try:
            return _train(eng, cfg, ctx, run_id)
        finally:
            eng.close()  # back to the pool: the next run of this shape skips the XLA compile
    finally:
        if run_id:
            store().ended(run_id)


def _compile_unless_cancelled(eng, cancelled: threading.Event, poll: float = 0.1) -> bool:
    """Compile a new shape (3-5 s of XLA that cannot be interrupted) in its own thread, so
    that Stop or a closed tab ends the job within `poll` instead of after the compile.
    False: cancelled; the compile goes on and then returns the net to the pool (a later run
    of this shape starts at once). An error in the compile is raised here, as before."""
    state = {"done": threading.Event(), "error": None, "abandoned": False}
    lock = threading.Lock()

    def work():
        try:
            eng.warm_up()
        except BaseException as e:  # noqa: BLE001  (re-raised in the job thread)
            state["error"] = e
        with lock:
            state["done"].set()
            abandoned = state["abandoned"]
        if abandoned:
            eng.close()

    threading.Thread(target=work, name="lstm-job-compile", daemon=True).start()
    while not state["done"].wait(poll):
        if cancelled.is_set():
            with lock:
                if not state["done"].is_set():
                    state["abandoned"] = True
                    return False
            break
    if state["error"] is not None:
        eng.close()
        raise state["error"]
    if cancelled.is_set():
        eng.close()
        return False
    return True


def _train(eng, cfg: RunConfig, ctx, run_id: str | None):
    if ctx.cancelled.is_set():
        return None
    t0, last, epochs, done = time.perf_counter(), [0.0], [], [0]

    def on_event(ev):
        now = time.perf_counter()
        done[0] = ev.done
        el = now - t0
        left = el * (ev.total - ev.done) / ev.done if ev.done else None
        # Values first, then the progress that says "training": a page that sees the phase
        # finds the states to draw (the relay keeps the order). Before, the first live flow
        # could miss the Train click's own script run by a few ms and wait for the live
        # panel's next tick (LIVE_POLL). The live flow's states go before the curves' record.
        if ev.kind == "epoch":
            epochs.append(dict(ev.data))
            ctx.publish("epochs", list(epochs))
        if ev.kind == "epoch" or now - last[0] >= PUBLISH_EVERY:
            last[0] = now
            # The newest trained batches, recorded or not: the live flow shows these, so a
            # thinned long run's live view moves on with the progress bar.
            ctx.publish("recent", eng.recent_trace(LIVE_BATCHES))
            ctx.publish("trace", eng.snapshot(list(epochs)))
        ctx.progress(ev.done / max(1, ev.total),
                     {"phase": "training", "done": ev.done, "total": ev.total, "epoch": ev.epoch,
                      "epochs": cfg.epochs, "elapsed": el, "left": left})

    res = eng.run(on_event, ctx.cancelled)
    trace = res.trace
    if res.cancelled and trace.n == 0 and done[0]:
        # Stopped before any epoch the thinned record keeps (e.g. a long run keeping only its
        # last epoch): keep the newest batches it trained, so Stop keeps what it promised.
        from models.engine import RECENT_BATCHES
        trace = eng.recent_trace(RECENT_BATCHES)
        trace.epochs = list(res.epochs)
    out = {"trace": trace, "epochs": res.epochs, "weights": res.weights, "notes": res.notes,
           "seconds": res.seconds, "cancelled": res.cancelled, "metric": res.metric, "cfg": cfg,
           "run_id": None, "batches_per_epoch": eng.train.n_batches, "batches_trained": done[0]}
    if run_id and not res.cancelled:
        if save_result(run_id, out):
            out["run_id"] = run_id  # only a stored run gets a link
        else:
            out["not_stored"] = ("This run could not be stored on the server (see the server "
                                 "notes in the sidebar), so no link can reopen it.")
    return out
