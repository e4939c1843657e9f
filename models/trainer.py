"""Training in a child process of the web server, so that the server's memory stays bounded.

Each new net shape leaves ~35 MB inside TensorFlow (XLA's compile caches) that no API gives
back, and training threads share the web process's cores and GIL with the page scripts. So in
the default deployment (no Redis) the `JobManager` (models/jobs.py, still the one owner of the
queue, lanes, limits, ETA, dedup, cancel and time budgets) hands each training job
(`training.train_job` partials: picklable, as RQ needs too) to one long-lived child process.
The child runs them in threads exactly as the web process did, with its own pool of compiled
nets and its own preset prewarm. The web process then never imports TensorFlow for training.

- Relay: the child sends each job's progress (at most every PROGRESS_EVERY s), its published
  live values ("trace", "recent", "epochs"), store notes, and its result or error; the web
  side's job thread applies them to the job's own context. Stop, a closed tab or the time
  budget reach the child within CANCEL_POLL s.
- Memory bound: after a job, a child over `limits.TRAINER_MAX_RSS_MB` is retired: new jobs go
  to a fresh child (started at once; it prewarms the presets while idle, if the server asked
  for that), and the old one exits as soon as its running jobs end. Nobody's run is cut.
- No orphans: the child exits when its pipe to the server closes (the server exited, or was
  killed), and ignores Ctrl-C (the server's own shutdown ends it).
- The child is a fresh interpreter (`python -m models.trainer FD`): TensorFlow is never forked,
  and the server's main module (streamlit, pytest) is not imported again in it.
"""
from __future__ import annotations

import functools
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from models import limits

log = logging.getLogger(__name__)

PROGRESS_EVERY = 0.1  # s between progress messages of one job (phase changes go at once)
CANCEL_POLL = 0.1     # s between the web side's checks of a job's cancel event
LOST = ("The training process stopped (killed, or out of memory) before this run finished; "
        "press Train to run it again.")
ROOT = Path(__file__).resolve().parent.parent


def trains_in_child(fn) -> bool:
    """Is `fn` a job the child can run (the picklable training job)?"""
    from models.training import train_job
    return isinstance(fn, functools.partial) and fn.func is train_job


def preset_configs() -> list:
    """The presets' configs, the default (streams) first: what a prewarm compiles."""
    from models.config import RunConfig
    from models.presets import PRESETS
    return sorted((p.config for p in PRESETS.values()), key=lambda c: c != RunConfig())


def rss_mb(pid: int) -> float:
    """A process's resident memory in MB (Linux /proc; 0 where unknown)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


# ---- the web side ----------------------------------------------------------------------------
class _Pending:
    def __init__(self, ctx):
        self.ctx = ctx
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class _Child:
    """One trainer process and the thread that reads what it sends."""

    def __init__(self):
        ours, theirs = socket.socketpair()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
        self.proc = subprocess.Popen([sys.executable, "-m", "models.trainer", str(theirs.fileno())],
                                     pass_fds=(theirs.fileno(),), env=env,
                                     stdin=subprocess.DEVNULL)
        theirs.close()
        self.conn = Connection(ours.detach())
        self.pending: dict[str, _Pending] = {}
        self.lock = threading.Lock()
        self.send_lock = threading.Lock()
        self.alive = True
        self.ready = threading.Event()  # TensorFlow imported in the child
        self.warmed: dict[str, int] = {}  # compiled-ahead requests done -> nets compiled
        self.warmed_cv = threading.Condition()
        threading.Thread(target=self._read, name="trainer-relay", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, msg) -> None:
        with self.send_lock:
            self.conn.send(msg)

    def run(self, fn, ctx) -> Any:
        """Run `fn` in the child, relaying to `ctx`; returns its result or raises its error."""
        jid, p = uuid.uuid4().hex, _Pending(ctx)
        with self.lock:
            if not self.alive:
                raise RuntimeError(LOST)
            self.pending[jid] = p
        if not self.ready.is_set():  # a fresh child: a few seconds before the job's own phases
            ctx.progress(0.0, {"phase": "loading TensorFlow"})
        try:
            self.send(("run", jid, fn))
        except (OSError, ValueError):
            with self.lock:
                self.pending.pop(jid, None)
            raise RuntimeError(LOST) from None
        cancel_sent = False
        while not p.done.wait(0 if ctx.cancelled.is_set() and not cancel_sent else CANCEL_POLL):
            if ctx.cancelled.is_set() and not cancel_sent:
                cancel_sent = True
                try:
                    self.send(("cancel", jid))
                except (OSError, ValueError):
                    pass  # the child is gone: the reader fails the job
        if p.error is not None:
            raise p.error
        return p.result

    def busy(self) -> bool:
        with self.lock:
            return bool(self.pending)

    def _read(self) -> None:
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                break
            except Exception:  # noqa: BLE001  (one message that did not unpickle)
                log.exception("trainer message could not be read")
                continue
            self._dispatch(msg)
        with self.lock:
            self.alive = False
            lost, self.pending = list(self.pending.values()), {}
        for p in lost:
            p.error = RuntimeError(LOST)
            p.done.set()
        self.conn.close()
        self.proc.wait()  # reap it

    def _dispatch(self, msg) -> None:
        kind = msg[0]
        if kind == "ready":
            self.ready.set()
            return
        if kind == "warmed":
            with self.warmed_cv:
                self.warmed[msg[1]] = msg[2]
                self.warmed_cv.notify_all()
            return
        if kind == "report":  # the child's result store had something to say
            from models.hosting import get_store
            get_store().report(msg[1])
            return
        with self.lock:
            p = self.pending.get(msg[1])
            if p is not None and kind in ("done", "error"):
                del self.pending[msg[1]]
        if p is None:
            return
        if kind == "progress":
            p.ctx.progress(msg[2], msg[3])
        elif kind == "publish":
            p.ctx.publish(msg[2], msg[3])
        elif kind == "done":
            p.result = msg[2]
            p.done.set()
        elif kind == "error":
            p.error = _error_from(msg[2], msg[3])
            p.done.set()

    def close(self, wait: float = 0.0) -> None:
        """Ask the child to exit now (jobs in it end; it never finalises TensorFlow)."""
        try:
            self.send(("quit",))
        except (OSError, ValueError):
            pass
        if wait > 0:
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _error_from(blob: bytes | None, text: str) -> BaseException:
    """The child's exception itself where it unpickles (the page shows it as before)."""
    import pickle
    if blob is not None:
        try:
            e = pickle.loads(blob)
            if isinstance(e, BaseException):
                return e
        except Exception:  # noqa: BLE001
            pass
    return RuntimeError(text)


class Trainer:
    """The web side: which child trains, when to replace it, and the prewarm request."""

    def __init__(self, max_rss_mb: float | None = None):
        self._max_rss_mb = max_rss_mb  # None: limits.TRAINER_MAX_RSS_MB, read at call time
        self._lock = threading.Lock()
        self._child: _Child | None = None
        self._retired: list[_Child] = []
        self._prewarm = False
        self._closed = False
        self.replaced = 0  # children retired for their memory (for tests and benches)

    @property
    def max_rss_mb(self) -> float:
        return float(self._max_rss_mb if self._max_rss_mb is not None
                     else limits.TRAINER_MAX_RSS_MB)

    def takes(self, fn) -> bool:
        return not self._closed and trains_in_child(fn)

    def _current(self) -> _Child:
        with self._lock:
            if self._child is None or not self._child.alive:
                self._child = _Child()
                if self._prewarm:
                    self._child.send(("prewarm",))
            return self._child

    def pids(self) -> list[int]:
        """The trainer processes now alive (current and retiring)."""
        with self._lock:
            kids = ([self._child] if self._child else []) + self._retired
            return [c.pid for c in kids if c.alive]

    def start(self) -> int:
        """Start the child now (it imports TensorFlow while the server is idle); its pid."""
        return self._current().pid

    def run(self, fn, ctx) -> Any:
        child = self._current()
        try:
            return child.run(fn, ctx)
        finally:
            self._after_job(child)

    def prewarm(self) -> None:
        """Compile the presets' nets in the child while it is idle, and in every later child."""
        with self._lock:
            self._prewarm = True
        self._current().send(("prewarm",))

    def warm(self, cfg_json: str) -> None:
        """Compile this config's shape in the child while it is idle (warm_ahead): the newest
        request replaces one not started yet."""
        self._current().send(("warm", cfg_json))

    def wait_warmed(self, cfg_json: str, timeout: float) -> int | None:
        """Nets the current child compiled ahead for this request (0: its shape was pooled),
        once it is done; None if not done within `timeout` s (tests, benches)."""
        child = self._current()
        with child.warmed_cv:
            child.warmed_cv.wait_for(lambda: cfg_json in child.warmed, timeout)
            return child.warmed.get(cfg_json)

    def _after_job(self, child: _Child) -> None:
        """Retire a child over the memory bound; close retired children once they are idle."""
        retire = False
        with self._lock:
            rss = rss_mb(child.pid) if child is self._child and child.alive else 0.0
            if rss > self.max_rss_mb:
                log.warning("trainer memory %.0f MB is over %.0f MB (LSTM_TRAINER_MAX_RSS_MB): "
                            "a fresh trainer takes over", rss, self.max_rss_mb)
                self._retired.append(child)
                self._child, retire = None, True
                self.replaced += 1
            done = [c for c in self._retired if not c.busy()]
            self._retired = [c for c in self._retired if c.busy()]
        if retire and not self._closed:
            self._current()  # the fresh one first: it imports TensorFlow (and prewarms) now
        for c in done:
            c.close()

    def close(self, wait: float = 0.5) -> None:
        """Stop every child (server exit)."""
        with self._lock:
            self._closed = True
            kids = ([self._child] if self._child else []) + self._retired
            self._child, self._retired = None, []
        for c in kids:
            c.close()
        deadline = time.monotonic() + wait
        for c in kids:
            try:
                c.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                c.proc.kill()


def from_env() -> Trainer | None:
    """The default: a child trainer; LSTM_TRAINER_PROCESS=0 trains in the web process."""
    if os.environ.get("LSTM_TRAINER_PROCESS", "1") == "0":
        return None
    return Trainer()


class WarmAhead:
    """Compile the shape a page is about to train (its settings just changed) while no job
    runs, so that its Train does not wait for XLA: one at a time, the newest request first
    (one not started yet is replaced). Used in the trainer child, or in the web process with
    LSTM_TRAINER_PROCESS=0. The nets go to the pool's places for non-preset shapes."""

    def __init__(self, idle, stop: threading.Event | None = None, poll: float = 0.1,
                 on_done=lambda cfg_json, compiled: None):
        self._idle, self._stop, self._poll = idle, stop or threading.Event(), poll
        self._on_done = on_done  # (the request, nets compiled: 0 if its shape was pooled)
        self._wanted: str | None = None
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def request(self, cfg_json: str) -> None:
        with self._lock:
            self._wanted = cfg_json
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="lstm-warm-ahead",
                                                daemon=True)
                self._thread.start()
        self._wake.set()

    def _loop(self) -> None:
        from models.config import RunConfig
        from models.engine import prewarm as compile_nets
        while not self._stop.is_set():
            self._wake.wait()
            while not self._idle() and not self._stop.is_set():
                self._stop.wait(self._poll)  # a running job keeps the cores
            with self._lock:
                self._wake.clear()
                cfg_json, self._wanted = self._wanted, None
            if cfg_json is None:
                continue
            try:
                n = compile_nets([RunConfig.from_json(cfg_json)], idle=self._idle,
                                 stop=self._stop, pin=False)
            except Exception:  # noqa: BLE001  (an optimisation: never a crash)
                log.exception("compiling ahead failed; the run compiles on Train")
                n = 0
            self._on_done(cfg_json, n)


# ---- the child -------------------------------------------------------------------------------
class _ChildContext:
    """What a job sees in the child: the same interface as jobs.JobContext."""

    def __init__(self, jid: str, cancelled: threading.Event, send):
        self.cancelled, self._jid, self._send = cancelled, jid, send
        self._last, self._phase, self._held = 0.0, None, None

    def progress(self, fraction: float, info: dict | None = None) -> None:
        now, phase = time.monotonic(), (info or {}).get("phase")
        self._held = (float(fraction), info)
        if phase != self._phase or now - self._last >= PROGRESS_EVERY:
            self._phase, self._last = phase, now
            self.flush()

    def flush(self) -> None:
        if self._held is not None:
            self._send(("progress", self._jid, *self._held))
            self._held = None

    def publish(self, name: str, value: Any) -> None:
        self._send(("publish", self._jid, name, value))


def _child_main(fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which ends us
    logging.basicConfig(level=logging.WARNING, format="trainer: %(levelname)s %(name)s: %(message)s")
    from models.memory import fix_mmap_threshold
    fix_mmap_threshold()
    conn, send_lock = Connection(fd), threading.Lock()

    def send(msg) -> None:
        with send_lock:
            try:
                conn.send(msg)
            except (OSError, ValueError):
                os._exit(0)  # the server is gone

    _relay_store_reports(send)
    jobs: dict[str, threading.Event] = {}
    stop_prewarm = threading.Event()
    prewarming = [False]
    import models.training  # noqa: F401  (what job messages unpickle into, before any thread)

    def load_tensorflow() -> None:  # now, while the server is idle; messages are read meanwhile
        import models.engine  # noqa: F401
        send(("ready",))
    threading.Thread(target=load_tensorflow, name="lstm-load-tf", daemon=True).start()

    def run(jid: str, fn, cancelled: threading.Event) -> None:
        ctx = _ChildContext(jid, cancelled, send)
        try:
            result = fn(ctx)
            ctx.flush()
            send(("done", jid, result))
        except BaseException as e:  # noqa: BLE001  (sent to the server, which reports it)
            if not cancelled.is_set():
                log.exception("training job failed")
            send(("error", jid, _pickled(e), _text(e)))
        finally:
            jobs.pop(jid, None)

    def prewarm() -> None:
        from models.engine import prewarm as compile_presets
        try:
            compile_presets(preset_configs(), idle=lambda: not jobs, stop=stop_prewarm)
        except Exception:  # noqa: BLE001  (a warm-up is an optimisation: never a crash)
            if not stop_prewarm.is_set():
                log.exception("prewarm failed; presets compile on first use")

    ahead = WarmAhead(idle=lambda: not jobs, stop=stop_prewarm,
                      on_done=lambda cfg_json, n: send(("warmed", cfg_json, n)))

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            os._exit(0)  # the server exited or was killed: no orphan
        if msg[0] == "run":
            jid, fn = msg[1], msg[2]
            jobs[jid] = threading.Event()
            threading.Thread(target=run, args=(jid, fn, jobs[jid]), name=f"lstm-job-{jid[:12]}",
                             daemon=True).start()
        elif msg[0] == "cancel":
            ev = jobs.get(msg[1])
            if ev is not None:
                ev.set()
        elif msg[0] == "prewarm" and not prewarming[0]:
            prewarming[0] = True
            threading.Thread(target=prewarm, name="lstm-prewarm", daemon=True).start()
        elif msg[0] == "warm":
            ahead.request(msg[1])
        elif msg[0] == "quit":
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)  # never finalise under a running XLA compile (it aborts the process)


def _relay_store_reports(send) -> None:
    """Store notes (a run too big to keep, a corrupt database) show on the server's pages."""
    from models.hosting import get_store
    store = get_store()
    report = store.report

    def relayed(message: str) -> None:
        report(message)
        send(("report", message))
    store.report = store._report = relayed


def _pickled(e: BaseException) -> bytes | None:
    import pickle
    try:
        blob = pickle.dumps(e)
        pickle.loads(blob)
        return blob
    except Exception:  # noqa: BLE001
        return None


def _text(e: BaseException) -> str:
    from models.jobs import short_error
    return short_error(e)


if __name__ == "__main__":
    _child_main(int(sys.argv[1]))
