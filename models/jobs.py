"""Background jobs shared by every session of the server: bounded concurrency, a fair queue,
progress, live partial values, cancellation, time budgets, and de-duplication of identical runs.

Fair queueing: each job belongs to a lane, its client (an address or browser id passed to
`submit`) or, without one, its owner (session). Lanes take turns: a job's turn is one more
than its lane's previous queued job, and never earlier than the turn now starting, so a
client that queues 30 jobs holds one place per turn and a newcomer starts within one turn.
Per owner and per client at most `limits.MAX_JOBS_PER_SESSION` / `MAX_JOBS_PER_CLIENT` jobs
may be queued or running (a refusal raises a `QueueFull` subclass that says why).

Threads: each *running* job gets its own daemon thread "lstm-job-<id>", which ends when the job
ends (after starting whichever queued jobs now fit). There is no idle pool. The only other
thread is the watcher ("lstm-session-watch"): it stops running jobs that overshoot their time
budget (`limits.MAX_RUN_SECONDS`), cancels the jobs of ended sessions (`watch_sessions`) and
drops the results of finished jobs no live session owns. It lives only while there is such
work, exits when there is none, and is restarted by the next `submit`.

Training jobs (`training.train_job` partials) of the shared manager run in a child process
(models/trainer.py: bounded memory, no GIL shared with the pages); this module still owns
their queue, limits and cancellation; its thread relays. Other callables run in the thread.

`Jobs` is the whole interface the app uses, so a Redis+RQ backend can replace `JobManager`
later (it would need picklable `fn`s and a ctx that talks to Redis).
"""
from __future__ import annotations

import atexit
import bisect
import heapq
import itertools
import logging
import statistics
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from models import limits

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
ERROR_CHARS = 300
# Finished jobs stay readable this long / this many, unless every owner has `collected` the
# result (results can be large: traces).
KEEP_FINISHED = 500
KEEP_SECONDS = 1800.0
DEAD_AFTER_MISSES = 2  # session checks in a row that must find no session before cancelling
DURATION_SAMPLES = 50  # recent durations (and duration/estimate ratios) behind the ETA
MIN_PROGRESS_FOR_RATE = 0.05  # below this a running job's own rate says little (compile, start)
OVERDUE_SHARE = 0.25  # a job at its expected time without a rate: at least this share of it left


class QueueFull(RuntimeError):
    """The server's queue is full. The message is written for the user."""


class SessionLimit(QueueFull):
    """This session already has as many queued or running jobs as one session may."""


class ClientLimit(QueueFull):
    """This client (address or browser) already has as many jobs as one client may."""


@dataclass
class JobStatus:
    id: str
    state: str
    label: str = ""
    queue_position: int = 0           # 1-based while queued, else 0
    eta_seconds: float | None = None  # queued: estimated wait until it starts; None: unknown
    progress: float = 0.0
    info: dict = field(default_factory=dict)
    error: str | None = None
    submitted: float = 0.0
    started: float | None = None
    finished: float | None = None
    cancel_requested: bool = False    # running but asked to stop ("stopping...")
    stopped_reason: str | None = None # why the server stopped it (e.g. its time budget)


class JobContext:
    """What a job function sees: the cancel event and ways to publish progress and values."""

    def __init__(self, job: "_Job"):
        self._job = job
        self.cancelled: threading.Event = job.cancel_event

    def progress(self, fraction: float, info: dict | None = None) -> None:
        self._job.progress = min(1.0, max(0.0, float(fraction)))
        if info is not None:
            self._job.info = dict(info)

    def publish(self, name: str, value: Any) -> None:
        self._job.live[name] = value


class Jobs(Protocol):
    def submit(self, fn: Callable[[JobContext], Any], *, owner: str, key: str | None = None,
               label: str = "", client: str | None = None,
               estimate: float | None = None) -> str: ...
    def status(self, job_id: str) -> JobStatus | None: ...
    def result(self, job_id: str) -> Any: ...
    def live(self, job_id: str, name: str) -> Any: ...
    def cancel(self, job_id: str, owner: str | None = None) -> bool: ...
    def cancel_owner(self, owner: str) -> int: ...
    def collected(self, job_id: str, owner: str) -> None: ...
    def forget(self, job_id: str) -> bool: ...
    def wait(self, job_id: str, timeout: float | None = None) -> JobStatus | None: ...
    def watch_sessions(self, is_alive: Callable[[str], bool], interval: float = 0.5) -> None: ...
    def counts(self) -> dict[str, int]: ...
    def warm(self, cfg_json: str) -> None: ...


@dataclass
class _Job:
    id: str
    fn: Callable[[JobContext], Any]
    label: str
    key: str | None
    owners: set[str]
    state: str = QUEUED
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    progress: float = 0.0
    info: dict = field(default_factory=dict)
    live: dict = field(default_factory=dict)
    result: Any = None
    error: str | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    submitter: str = ""             # the owner that submitted it
    client: str | None = None
    lane: str = ""
    turn: int = 0
    seq: int = 0
    stopped_reason: str | None = None
    estimate: float | None = None   # the submitter's guess of its duration (s), e.g. models.cost


class JobManager:
    """In-process implementation of `Jobs`. Thread-safe; one lock guards all bookkeeping."""

    def __init__(self, max_workers: int | None = None, max_queued: int | None = None,
                 keep_finished: int = KEEP_FINISHED, keep_seconds: float = KEEP_SECONDS,
                 max_seconds: float | None = None, per_session: int | None = None,
                 per_client: int | None = None, trainer=None):
        # Runs training jobs in a child process (models/trainer.py); None: all in threads here.
        self.trainer = trainer
        self._max_workers = max_workers    # None: limits.MAX_CONCURRENT_JOBS, read at call time
        self._max_queued = max_queued      # None: limits.MAX_QUEUED_JOBS
        self._max_seconds = max_seconds    # None: limits.MAX_RUN_SECONDS
        self._per_session = per_session    # None: limits.MAX_JOBS_PER_SESSION
        self._per_client = per_client      # None: limits.MAX_JOBS_PER_CLIENT
        self._keep_finished = keep_finished
        self._keep_seconds = keep_seconds
        self._lock = threading.RLock()
        self._queue: list[_Job] = []       # in start order: (turn, seq)
        self._turn = 0                     # the turn of the job started last
        self._lane_turn: dict[str, int] = {}  # lane -> turn of its last queued job
        self._seq = itertools.count()
        self._running: dict[str, _Job] = {}
        self._finished: OrderedDict[str, _Job] = OrderedDict()
        self._durations: deque[float] = deque(maxlen=DURATION_SAMPLES)
        self._ratios: deque[float] = deque(maxlen=DURATION_SAMPLES)  # duration / estimate
        self._is_alive: Callable[[str], bool] | None = None
        self._watch_interval = 0.5
        self._watcher: threading.Thread | None = None
        self._ahead = None  # WarmAhead, in-process only (the trainer child has its own)

    # ---- limits, read at call time so env overrides and tests can patch them ----------------
    @property
    def max_workers(self) -> int:
        return max(1, self._max_workers or limits.MAX_CONCURRENT_JOBS)

    @property
    def max_queued(self) -> int:
        return max(0, self._max_queued if self._max_queued is not None else limits.MAX_QUEUED_JOBS)

    @property
    def max_seconds(self) -> float:
        return float(self._max_seconds if self._max_seconds is not None else limits.MAX_RUN_SECONDS)

    @property
    def per_session(self) -> int:
        return max(1, self._per_session or limits.MAX_JOBS_PER_SESSION)

    @property
    def per_client(self) -> int:
        return max(1, self._per_client or limits.MAX_JOBS_PER_CLIENT)

    # ---- submit -------------------------------------------------------------------------------
    def submit(self, fn: Callable[[JobContext], Any], *, owner: str, key: str | None = None,
               label: str = "", client: str | None = None, estimate: float | None = None) -> str:
        """Queue `fn`; returns the job id. `client` (an address or browser id) groups the
        sessions of one visitor: limits and turns count per client as well as per owner.
        `estimate` (seconds, any consistent scale) sizes this job in queue wait estimates.
        Raises QueueFull (SessionLimit, ClientLimit) with a sentence for the user."""
        with self._lock:
            shared = self._active_with_key(key)
            if shared is not None:
                shared.owners.add(owner)  # the class trains one copy; each owner holds it
                return shared.id
            mine = [j for j in self._active() if owner in j.owners]
            if len(mine) >= self.per_session:
                raise SessionLimit(
                    f"This page already has {len(mine)} run{'s' if len(mine) != 1 else ''} "
                    f"queued or training (at most {self.per_session} per page on this server): "
                    f"stop one, or wait until it finishes.")
            if client is not None:
                theirs = [j for j in self._active() if j.client == client]
                if len(theirs) >= self.per_client:
                    raise ClientLimit(
                        f"Your browser or network already has {len(theirs)} runs queued or "
                        f"training (at most {self.per_client} on this server): stop one in "
                        f"another tab, or wait until one finishes.")
            if len(self._running) >= self.max_workers and len(self._queue) >= self.max_queued:
                raise QueueFull(f"The server is busy: {len(self._queue)} runs are already "
                                f"waiting. Try again in a minute, or stop one of your runs.")
            job = _Job(uuid.uuid4().hex[:12], fn, label, key, {owner}, submitter=owner,
                       client=client, estimate=estimate if estimate and estimate > 0 else None)
            job.lane = f"client:{client}" if client is not None else f"owner:{owner}"
            job.turn = max(self._turn, self._lane_turn.get(job.lane, self._turn)) + 1
            job.seq = next(self._seq)
            self._lane_turn[job.lane] = job.turn
            bisect.insort(self._queue, job, key=lambda j: (j.turn, j.seq))
            self._start_ready()
            self._ensure_watcher()
            return job.id

    def _active(self):
        """Queued and running jobs that are not stopping (caller holds the lock)."""
        return [j for j in itertools.chain(self._running.values(), self._queue)
                if not j.cancel_event.is_set()]

    def _unqueue(self, job: _Job) -> None:
        """Take a queued job out; its lane's next job keeps its place (caller holds the lock)."""
        self._queue.remove(job)
        left = [j.turn for j in self._queue if j.lane == job.lane]
        if left:
            self._lane_turn[job.lane] = max(left)
        else:
            self._lane_turn.pop(job.lane, None)

    def _active_with_key(self, key: str | None) -> _Job | None:
        if key is None:
            return None
        for job in itertools.chain(self._running.values(), self._queue):
            if job.key == key and not job.cancel_event.is_set():
                return job
        return None

    # ---- running ------------------------------------------------------------------------------
    def _start_ready(self) -> None:
        """Move queued jobs to running while there is room (caller holds the lock)."""
        while self._queue and len(self._running) < self.max_workers:
            job = self._queue.pop(0)
            self._turn = max(self._turn, job.turn)
            if not any(j.lane == job.lane for j in self._queue):
                self._lane_turn.pop(job.lane, None)  # an idle lane starts from the current turn
            job.state, job.started = RUNNING, time.time()
            self._running[job.id] = job
            job.thread = threading.Thread(target=self._run, args=(job,),
                                          name=f"lstm-job-{job.id}", daemon=True)
            job.thread.start()

    def _run(self, job: _Job) -> None:
        state, result, error = DONE, None, None
        try:
            ctx, trainer = JobContext(job), self.trainer
            result = trainer.run(job.fn, ctx) if trainer and trainer.takes(job.fn) else job.fn(ctx)
        except BaseException as e:  # reported, never raised: the bookkeeping below must run
            if not job.cancel_event.is_set():
                state, error = FAILED, short_error(e)
                log.exception("job %s (%s) failed", job.id, job.label)
        if job.cancel_event.is_set():
            state = CANCELLED  # a partial result, if fn returned one, is kept
        with self._lock:
            self._running.pop(job.id, None)
            job.result, job.error = result, error
            self._finish(job, state)
            self._ensure_watcher()  # a result now waits for its owners
            if state == DONE:
                took = job.finished - job.started
                self._durations.append(took)
                if job.estimate:
                    self._ratios.append(took / job.estimate)
            self._start_ready()
        job.ended.set()

    def _finish(self, job: _Job, state: str) -> None:
        """Record a job as finished (caller holds the lock; the job is off queue and running)."""
        job.state, job.finished = state, time.time()
        if state == DONE:
            job.live.clear()  # the result supersedes partial values; frees memory
        if not job.owners:
            self._abandon(job)  # cancelled because nobody holds it: nobody will read it
        job.fn = None  # drop closures (data, models) as soon as possible
        self._finished[job.id] = job
        self._prune()

    @staticmethod
    def _abandon(job: _Job) -> None:
        """Drop what a finished job holds (partial values, result): no live session owns it."""
        job.live.clear()
        job.result = None

    def _prune(self) -> None:
        cutoff = time.time() - self._keep_seconds
        while self._finished:
            oldest = next(iter(self._finished.values()))
            if len(self._finished) <= self._keep_finished and oldest.finished >= cutoff:
                break
            self._finished.popitem(last=False)

    # ---- reading ------------------------------------------------------------------------------
    def _get(self, job_id: str) -> _Job | None:
        if job_id in self._running:
            return self._running[job_id]
        if job_id in self._finished:
            return self._finished[job_id]
        return next((j for j in self._queue if j.id == job_id), None)

    def status(self, job_id: str) -> JobStatus | None:
        """None for an unknown (or forgotten, or expired) job id."""
        with self._lock:
            job = self._get(job_id)
            if job is None:
                return None
            pos = self._position(job)
            return JobStatus(
                id=job.id, state=job.state, label=job.label, queue_position=pos,
                eta_seconds=self._eta(pos) if pos else None, progress=job.progress,
                info=dict(job.info), error=job.error, submitted=job.submitted,
                started=job.started, finished=job.finished,
                cancel_requested=job.state == RUNNING and job.cancel_event.is_set(),
                stopped_reason=job.stopped_reason)

    def _position(self, job: _Job) -> int:
        """1-based place in the start order (turns first), 0 unless queued."""
        if job.state != QUEUED:
            return 0
        return next(i for i, j in enumerate(self._queue, 1) if j is job)

    def _eta(self, position: int) -> float | None:
        """Seconds until the job at `position` starts (see `play_through`)."""
        if not self._durations:
            return None
        now = time.time()
        left = [self._time_left(j, now) for j in self._running.values()]
        return play_through(left, [self._expected(j) for j in self._queue[:position]],
                            self.max_workers)

    def queue_starts(self) -> dict[str, tuple[int, float | None]]:
        """Every queued job's (position, seconds until it starts): one pass for the whole
        queue, for a board that shows each waiting page its place (models/queue_board.py)."""
        with self._lock:
            if not self._durations:
                return {j.id: (i, None) for i, j in enumerate(self._queue, 1)}
            now = time.time()
            left = [self._time_left(j, now) for j in self._running.values()]
            starts = start_times(left, [self._expected(j) for j in self._queue], self.max_workers)
            return {j.id: (i, s) for i, (j, s) in enumerate(zip(self._queue, starts), 1)}

    def _expected(self, job: _Job) -> float:
        return expected(job.estimate, self._ratios, self._durations)

    def _time_left(self, job: _Job, now: float) -> float:
        return time_left(now - (job.started or now), job.progress, self._expected(job))

    def result(self, job_id: str) -> Any:
        with self._lock:
            job = self._get(job_id)
            return job.result if job is not None else None

    def live(self, job_id: str, name: str) -> Any:
        with self._lock:
            job = self._get(job_id)
            return job.live.get(name) if job is not None else None

    def wait(self, job_id: str, timeout: float | None = None) -> JobStatus | None:
        """Block until the job has finished and its thread has ended (or timeout)."""
        with self._lock:
            job = self._get(job_id)
        if job is not None:
            job.ended.wait(timeout)
            thread = job.thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout)
        return self.status(job_id)

    # ---- cancelling ---------------------------------------------------------------------------
    def cancel(self, job_id: str, owner: str | None = None) -> bool:
        """Cancel a job; with `owner`, only drop that owner's hold (it stops when none is left).

        The last holder's Stop stops the job and that owner keeps holding it: its partial
        record stays readable until `collected` (a job nobody holds, after `cancel_owner`,
        is abandoned and dropped). Returns True if the job was stopped or asked to stop."""
        with self._lock:
            job = self._get(job_id)
            if job is None or job.state in FINISHED:
                return False
            if owner is not None and job.owners - {owner}:
                job.owners.discard(owner)
                return False
            return self._stop(job)

    def cancel_owner(self, owner: str) -> int:
        """Drop `owner` from all its active jobs; jobs nobody holds any more are cancelled."""
        with self._lock:
            stopped = 0
            for job in list(self._running.values()) + list(self._queue):
                if owner in job.owners:
                    job.owners.discard(owner)
                    if not job.owners:
                        stopped += self._stop(job)
            return stopped

    def _stop(self, job: _Job) -> bool:
        job.cancel_event.set()
        if job.state == QUEUED:  # never started: finished at once, no thread involved
            self._unqueue(job)
            self._finish(job, CANCELLED)
            job.ended.set()
        return True

    def collected(self, job_id: str, owner: str) -> None:
        """`owner` has taken the finished job's result: once every owner has, the manager
        drops it at once instead of holding the trace for KEEP_SECONDS (a class that moves on
        would otherwise keep every student's trace in memory for half an hour)."""
        with self._lock:
            job = self._finished.get(job_id)
            if job is not None:
                job.owners.discard(owner)
                if not job.owners:
                    del self._finished[job_id]

    def forget(self, job_id: str) -> bool:
        """Drop a finished job's record and result. Active jobs are not forgotten."""
        with self._lock:
            return self._finished.pop(job_id, None) is not None

    def warm(self, cfg_json: str) -> None:
        """Compile this config's shape ahead, while no job runs (models.trainer.WarmAhead)."""
        if self.trainer is not None:
            self.trainer.warm(cfg_json)
            return
        with self._lock:
            if self._ahead is None:
                from models.trainer import WarmAhead
                self._ahead = WarmAhead(idle=lambda: not self._running)
        self._ahead.request(cfg_json)

    def counts(self) -> dict[str, int]:
        """How busy the server is: runs training now, and runs waiting."""
        with self._lock:
            return {"running": len(self._running), "queued": len(self._queue)}

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel every job and wait for the workers. Registered at exit for the shared
        manager: a TensorFlow op still running in a daemon thread when the interpreter
        finalises aborts the process ("FATAL: exception not rethrown")."""
        with self._lock:
            jobs = list(self._queue) + list(self._running.values())
            for job in jobs:
                self._stop(job)
        deadline = time.monotonic() + timeout
        for job in jobs:
            if job.thread is not None:
                job.thread.join(max(0.0, deadline - time.monotonic()))
        if self.trainer is not None:
            self.trainer.close(wait=max(0.0, deadline - time.monotonic()))

    def active_owners(self) -> set[str]:
        with self._lock:
            return {o for j in itertools.chain(self._running.values(), self._queue)
                    for o in j.owners}

    # ---- session watcher ----------------------------------------------------------------------
    def watch_sessions(self, is_alive: Callable[[str], bool], interval: float = 0.5) -> None:
        """Cancel the jobs of owners whose session has ended.

        Every `interval` s a daemon thread asks `is_alive(owner)` for each owner with queued or
        running jobs, or with a finished result not yet `collected`, and calls `cancel_owner`
        for the dead ones (their abandoned jobs' partial values and results are dropped).
        Idempotent (a second call only replaces the function and interval). The thread exits
        when no job is active and no result waits for a live owner; the next `submit` starts
        it again, so an idle server runs no thread at all.
        """
        with self._lock:
            self._is_alive, self._watch_interval = is_alive, interval
            self._ensure_watcher()

    def _held(self) -> list[_Job]:
        """Finished jobs still holding a result or live values for some owner (lock held)."""
        return [j for j in self._finished.values()
                if j.owners and (j.result is not None or j.live)]

    def _needs_watch(self) -> bool:
        """Is there work for the watcher (caller holds the lock)?"""
        if self._running and self.max_seconds > 0:
            return True  # time budgets
        if self._is_alive is None:
            return False
        return bool(self._running or self._queue or self._held())

    def _ensure_watcher(self) -> None:
        """Start the watcher if it is needed and not running (caller holds the lock)."""
        if self._watcher is not None or not self._needs_watch():
            return
        self._watcher = threading.Thread(target=self._watch, name="lstm-session-watch",
                                         daemon=True)
        self._watcher.start()

    def _stop_overdue(self) -> None:
        """Stop running jobs past their time budget; they keep what they recorded (lock held)."""
        budget, now = self.max_seconds, time.time()
        if budget <= 0:
            return
        for job in self._running.values():
            if not job.cancel_event.is_set() and now - job.started > budget:
                job.stopped_reason = (
                    f"Stopped after {_seconds(budget)}, this server's time budget for one run "
                    f"(LSTM_MAX_RUN_SECONDS); what it recorded until then is kept.")
                log.info("job %s (%s) over its time budget: stopping", job.id, job.label)
                job.cancel_event.set()

    def _watch(self) -> None:
        missed: dict[str, int] = {}  # owner -> checks in a row that found no session
        while True:
            with self._lock:
                if not self._needs_watch():
                    self._watcher = None  # under the lock, so submit sees it and restarts us
                    return
                self._stop_overdue()
                is_alive, interval = self._is_alive, self._watch_interval
                held = {o for j in self._held() for o in j.owners}
            if is_alive is not None:
                owners = self.active_owners() | held
                missed = {o: missed.get(o, 0) + 1 for o in owners if not _alive(is_alive, o)}
                # Two misses in a row: a websocket that drops and reconnects at once (a busy
                # browser) keeps its run; a closed tab is still stopped within ~2 intervals.
                for owner in [o for o, n in missed.items() if n >= DEAD_AFTER_MISSES]:
                    log.info("session %s ended: cancelling its jobs", owner)
                    self.cancel_owner(owner)
                    self._drop_results_of(owner)
            time.sleep(min(interval, 0.5) if is_alive is not None else 0.25)

    def _drop_results_of(self, owner: str) -> None:
        """An ended session never collects: drop its hold on finished jobs, and a job's record
        with its result once nobody holds it."""
        with self._lock:
            for job in list(self._finished.values()):
                if owner in job.owners:
                    job.owners.discard(owner)
                    if not job.owners:
                        self._abandon(job)
                        del self._finished[job.id]


def play_through(running_left: list[float], queued: list[float], workers: int) -> float:
    """Seconds until the last of `queued` (expected durations, in start order) starts: each
    running job's time left and each queued job's duration played through the worker slots."""
    starts = start_times(running_left, queued, workers)
    return starts[-1] if starts else 0.0


def start_times(running_left: list[float], queued: list[float], workers: int) -> list[float]:
    """Seconds until each of `queued` starts (see `play_through`): one pass for a whole queue."""
    slots = list(running_left[:workers]) + [0.0] * max(0, workers - len(running_left))
    heapq.heapify(slots)
    starts = []
    for duration in queued:
        start = heapq.heappop(slots)
        heapq.heappush(slots, start + duration)
        starts.append(start)
    return starts


def expected(estimate: float | None, ratios, durations) -> float:
    """A job's expected duration: its own estimate scaled by how long estimated jobs really
    took here (runs differ 1000-fold, so one mean fits none), else the mean duration."""
    if estimate and ratios:
        return estimate * statistics.median(ratios)
    return statistics.fmean(durations)


def time_left(elapsed: float, progress: float, expectation: float) -> float:
    """A running job's time left: from its own rate once it has one, else its expectation.
    A job past its expectation with no rate yet (a long compile, a slow machine) is not about
    to end: it gets as long again as it has run, never 0 (0 told the next in line "a worker is
    free: starts now" while it still waited)."""
    if progress >= MIN_PROGRESS_FOR_RATE:
        return elapsed * (1.0 - progress) / progress
    return max(expectation - elapsed, OVERDUE_SHARE * expectation, elapsed - expectation)


def _seconds(s: float) -> str:
    return f"{s:.3g} s" if s < 120 else f"{s / 60:.0f} min"


def _alive(is_alive: Callable[[str], bool], owner: str) -> bool:
    try:
        return bool(is_alive(owner))
    except Exception as e:  # an unsure answer must not cancel someone's run
        log.warning("is_alive(%r) failed: %s", owner, short_error(e))
        return True


def short_error(e: BaseException) -> str:
    """One user-readable line: the exception type and message, no traceback."""
    text = " ".join(f"{type(e).__name__}: {e}".split())
    return text if len(text) <= ERROR_CHARS else text[:ERROR_CHARS - 1] + "…"


_manager: JobManager | None = None
_manager_lock = threading.Lock()


def get_manager() -> JobManager:
    """The process-wide manager shared by every session."""
    global _manager
    with _manager_lock:
        if _manager is None:
            from models.trainer import from_env
            _manager = JobManager(trainer=from_env())
            atexit.register(_manager.shutdown)
        return _manager


def watch_sessions(is_alive: Callable[[str], bool], interval: float = 0.5) -> None:
    """`JobManager.watch_sessions` on the shared manager."""
    get_manager().watch_sessions(is_alive, interval)
