"""`Jobs` on Redis + RQ: web processes enqueue, worker processes (`python -m models worker`)
train. Same interface as `models/jobs.JobManager`, so the app does not know which it uses.

The job's state lives in a Redis hash `lstm:job:<id>` that every process reads: state,
progress and info, error, stopped reason, the cancel flag and the worker's heartbeat. RQ is
the queue and the worker loop (`SimpleWorker`: the job runs in the worker's own process, so
its pool of compiled nets stays warm; forking a work horse per job would recompile every run).

- Dedup across processes: `lstm:key:<run key>` names the active job of that config; a second
  submit (any web process) joins it as another owner (`lstm:job:<id>:owners`).
- Stop: the web sets the cancel flag; the worker's context thread polls it every
  `POLL` s and sets the `cancelled` event the engine checks between chunks. A queued job is
  taken off the RQ queue at once.
- Live values (`ctx.publish`) are pickled into `lstm:job:<id>:live` by the same thread,
  at most every `POLL` s, so the engine never waits for Redis.
- A worker killed mid-job stops its heartbeat: whoever reads the job's status after
  `DEAD_AFTER` s queues it again at the head of the queue (once: a replaced worker trains it
  from the start); lost a second time, it is marked failed with a sentence for the user. It
  is never left "running".
- Redis unreachable in a worker: it keeps training, and retries writing the outcome for up to
  `FINAL_RETRY` s, so a Redis restart mid-run loses nothing (Redis needs its AOF/RDB on).
- Fairness: the lanes and turns of `models/jobs.py` across processes. A job's lane is its
  client (else its owner); its turn is one more than its lane's last queued job, never earlier
  than the turn now starting (`lstm:turn`, raised by each start). `ORDER` (one Lua script, so
  two web processes never interleave) places the job in RQ's list before the first queued job
  of a later turn: workers pop the list's head as usual, so one client's 30 jobs hold one place
  per turn and a newcomer starts within one turn. Queued jobs by lane: `lstm:lane:<lane>`
  (score: turn); in start order: `lstm:order` (score: turn, then submission).
- Wait estimates as the in-process manager's: each queued job's own estimate (`models/cost`)
  scaled by the median of duration/estimate of recent runs, running jobs' time left from
  their progress, played through the workers (`jobs.play_through`).

Values are pickled: Redis must only be reachable by this app's processes (it is their shared
memory, as the in-process manager's dicts are for one process).
"""
from __future__ import annotations

import functools
import json
import logging
import os
import pickle
import threading
import time
import uuid
from dataclasses import replace
from typing import Any, Callable

import redis
from rq import Queue, get_current_job

from models import jobs, limits
from models.jobs import (CANCELLED, DONE, FAILED, FINISHED, KEEP_SECONDS, QUEUED, RUNNING,
                         ClientLimit, JobStatus, QueueFull, SessionLimit, short_error)

log = logging.getLogger(__name__)

QUEUE = "lstm"
P = "lstm:"
POLL = 0.2          # s between the worker's cancel checks, heartbeats and live writes
DEAD_AFTER = 15.0   # s without a heartbeat before a running job counts as lost
FINAL_RETRY = 120.0 # s a worker retries writing a job's outcome while Redis is down
DURATIONS = 50
SEQ = 1 << 20       # `lstm:order` score: turn * SEQ + submission number (ties: first come)
UNREACHABLE = "waiting for the job queue (Redis is unreachable)"
LOST = ("The worker training this run stopped (killed, crashed or restarted) before it "
        "finished, twice; press Train to run it again.")
REQUEUED = "its worker stopped; queued again to start over"

# Atomic state changes: a queued job either starts or is cancelled, never both.
# KEYS: job hash, its lane's zset, lstm:order, lstm:turn; ARGV: now, worker, job id, RQ id.
START = """
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[4])
if redis.call('HGET', KEYS[1], 'state') ~= 'queued' or redis.call('HGET', KEYS[1], 'cancel') == '1' then
  return 0 end
local turn = tonumber(redis.call('HGET', KEYS[1], 'turn') or '0')
if turn > tonumber(redis.call('GET', KEYS[4]) or '0') then redis.call('SET', KEYS[4], turn) end
redis.call('HSET', KEYS[1], 'state', 'running', 'started', ARGV[1], 'heartbeat', ARGV[1], 'worker', ARGV[2])
return 1
"""
STOP_QUEUED = """
redis.call('HSET', KEYS[1], 'cancel', '1')
if redis.call('HGET', KEYS[1], 'state') ~= 'queued' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished', ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[3])
return 1
"""
# A just-enqueued job's turn and place. KEYS: RQ's list, job hash, lane zset, lstm:order,
# lstm:turn, lstm:seq; ARGV: RQ id, job id, SEQ. Returns the turn.
ORDER = """
if redis.call('HGET', KEYS[2], 'state') ~= 'queued' then return 0 end  -- already taken
local turn = tonumber(redis.call('GET', KEYS[5]) or '0')
local last = redis.call('ZREVRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if last[2] then turn = math.max(turn, tonumber(last[2])) end
turn = turn + 1
local seq = tonumber(ARGV[3])
local score = turn * seq + redis.call('INCR', KEYS[6]) % seq
redis.call('HSET', KEYS[2], 'turn', turn)
redis.call('ZADD', KEYS[3], turn, ARGV[2])
redis.call('ZADD', KEYS[4], score, ARGV[1])
local later = redis.call('ZRANGEBYSCORE', KEYS[4], '(' .. score, '+inf')
if #later == 0 then return turn end  -- RQ pushed it last: its place
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return turn end  -- a worker has it
for _, pivot in ipairs(later) do
  if redis.call('LINSERT', KEYS[1], 'BEFORE', pivot, ARGV[1]) > 0 then return turn end
  redis.call('ZREM', KEYS[4], pivot)  -- left the queue without its entry: drop it
end
redis.call('RPUSH', KEYS[1], ARGV[1])
return turn
"""
# A running job without heartbeat: queued again at the head of RQ's list, once (a worker
# that restarts or is replaced trains it from the start); lost a second time, failed.
# KEYS: job hash, RQ's list, its live hash; ARGV: stale before, LOST, now, RQ id, REQUEUED.
MARK_LOST = """
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'heartbeat') or 0) > tonumber(ARGV[1]) then return 0 end
if redis.call('HGET', KEYS[1], 'requeued') ~= '1' and redis.call('HGET', KEYS[1], 'cancel') ~= '1' then
  redis.call('HSET', KEYS[1], 'state', 'queued', 'requeued', '1', 'progress', 0,
             'info', cjson.encode({phase = ARGV[5]}))
  redis.call('HDEL', KEYS[1], 'started', 'heartbeat', 'worker', 'live_version')
  redis.call('DEL', KEYS[3])
  redis.call('LPUSH', KEYS[2], ARGV[4])
  return 2
end
redis.call('HSET', KEYS[1], 'state', 'failed', 'error', ARGV[2], 'finished', ARGV[3])
return 1
"""


class Unreachable(QueueFull):
    """Redis does not answer: nothing can be queued. The message is written for the user."""


def _job(jid: str) -> str:
    return f"{P}job:{jid}"


def _lane(lane: str) -> str:
    return f"{P}lane:{lane}"


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2,
                                health_check_interval=10)


class RQJobs:
    """The web side: submit, read, cancel. Thread-safe (redis-py's pool is)."""

    def __init__(self, url: str, max_queued: int | None = None, per_session: int | None = None,
                 per_client: int | None = None):
        self.url = url
        self.r = connect(url)
        self.q = Queue(QUEUE, connection=self.r)
        self._max_queued, self._per_session, self._per_client = max_queued, per_session, per_client
        self._stop_queued = self.r.register_script(STOP_QUEUED)
        self._order = self.r.register_script(ORDER)
        self._mark_lost = self.r.register_script(MARK_LOST)
        self._lock = threading.Lock()
        self._mine: set[str] = set()  # owners (sessions) of this process, for the watcher
        self._is_alive: Callable[[str], bool] | None = None
        self._interval = 0.5
        self._watcher: threading.Thread | None = None
        self._workers = (0.0, 0)
        self._live_cache: dict[tuple, tuple] = {}  # (job, name) -> (version, value)
        self._last: dict[str, JobStatus] = {}  # newest status read, per job (Redis outages)

    # ---- limits ---------------------------------------------------------------------------
    @property
    def max_queued(self) -> int:
        return self._max_queued if self._max_queued is not None else limits.MAX_QUEUED_JOBS

    @property
    def per_session(self) -> int:
        return max(1, self._per_session or limits.MAX_JOBS_PER_SESSION)

    @property
    def per_client(self) -> int:
        return max(1, self._per_client or limits.MAX_JOBS_PER_CLIENT)

    @property
    def max_workers(self) -> int:
        """Runs training at once: the workers listening to the queue now."""
        try:
            return self._worker_count()
        except redis.RedisError:
            return 0

    def ping(self) -> str | None:
        """None if Redis answers, else a sentence saying it does not."""
        try:
            self.r.ping()
            return None
        except redis.RedisError as e:
            return f"The job queue (Redis) is unreachable: {short_error(e)}"

    # ---- submit ---------------------------------------------------------------------------
    def _active_ids(self, index: str) -> list[str]:
        """Active (queued or running, not stopping) job ids in an owner/client index;
        finished ones are dropped from the index on the way."""
        ids = [i.decode() for i in self.r.smembers(index)]
        active = []
        for jid in ids:
            state, cancel = self.r.hmget(_job(jid), "state", "cancel")
            if state in (QUEUED.encode(), RUNNING.encode()) and cancel != b"1" \
                    and self.status(jid).state not in FINISHED:
                active.append(jid)
            elif state is None or state.decode() in FINISHED:
                self.r.srem(index, jid)
        return active

    def submit(self, fn: Callable, *, owner: str, key: str | None = None, label: str = "",
               client: str | None = None, estimate: float | None = None) -> str:
        """Enqueue `fn(ctx)` (it must pickle: a module-level function or a partial of one).
        `estimate` (seconds, any consistent scale) sizes this job in wait estimates.
        Raises QueueFull (SessionLimit, ClientLimit, Unreachable) with a sentence for the user."""
        try:
            return self._submit(fn, owner=owner, key=key, label=label, client=client,
                                estimate=estimate if estimate and estimate > 0 else None)
        except redis.RedisError as e:
            log.error("submit failed, Redis unreachable: %s", short_error(e))
            raise Unreachable("The job queue (Redis) is unreachable, so nothing can train "
                              "right now; stored runs and links still open. Try again in a "
                              "minute.") from e

    def _submit(self, fn: Callable, *, owner: str, key: str | None, label: str,
                client: str | None, estimate: float | None) -> str:
        shared = self._joinable(key)
        if shared is not None:
            self._hold(shared, owner)
            return shared
        mine = self._active_ids(f"{P}owner:{owner}")
        if len(mine) >= self.per_session:
            raise SessionLimit(
                f"This page already has {len(mine)} run{'s' if len(mine) != 1 else ''} "
                f"queued or training (at most {self.per_session} per page on this server): "
                f"stop one, or wait until it finishes.")
        if client is not None:
            theirs = self._active_ids(f"{P}client:{client}")
            if len(theirs) >= self.per_client:
                raise ClientLimit(
                    f"Your browser or network already has {len(theirs)} runs queued or "
                    f"training (at most {self.per_client} on this server): stop one in "
                    f"another tab, or wait until one finishes.")
        waiting = self.q.count
        if waiting >= self.max_queued:
            raise QueueFull(f"The server is busy: {waiting} runs are already waiting. Try "
                            f"again in a minute, or stop one of your runs.")
        jid = uuid.uuid4().hex[:12]
        if key is not None:
            ttl = int(KEEP_SECONDS)
            if not self.r.set(f"{P}key:{key}", jid, nx=True, ex=ttl):
                shared = self._joinable(key, creating_ok=True)
                if shared is not None:  # another process submitted it a moment ago
                    self._hold(shared, owner)
                    return shared
                self.r.set(f"{P}key:{key}", jid, ex=ttl)
        now = repr(time.time())
        lane = f"client:{client}" if client is not None else f"owner:{owner}"
        with self.r.pipeline() as pipe:
            pipe.hset(_job(jid), mapping={"state": QUEUED, "label": label, "key": key or "",
                                          "submitted": now, "progress": 0, "info": "{}",
                                          "submitter": owner, "client": client or "",
                                          "lane": lane, "estimate": repr(estimate or 0.0)})
            if client is not None:
                pipe.sadd(f"{P}client:{client}", jid)
            pipe.execute()
        self._hold(jid, owner)
        budget = int(limits.MAX_RUN_SECONDS)
        self.q.enqueue(perform, jid, fn, job_id=f"lstm-{jid}", result_ttl=0,
                       failure_ttl=int(KEEP_SECONDS), job_timeout=budget * 2 + 600,
                       description=label)
        self._order(keys=[self.q.key, _job(jid), _lane(lane), f"{P}order", f"{P}turn",
                          f"{P}seq"], args=[f"lstm-{jid}", jid, SEQ])
        return jid

    def _joinable(self, key: str | None, creating_ok: bool = False) -> str | None:
        if key is None:
            return None
        jid = self.r.get(f"{P}key:{key}")
        if jid is None:
            return None
        jid = jid.decode()
        state, cancel = self.r.hmget(_job(jid), "state", "cancel")
        if state is None:
            return jid if creating_ok else None  # being written by its submitter right now
        if state.decode() in FINISHED or cancel == b"1" or self.status(jid).state in FINISHED:
            return None
        return jid

    def _hold(self, jid: str, owner: str) -> None:
        with self.r.pipeline() as pipe:
            pipe.sadd(f"{_job(jid)}:owners", owner).sadd(f"{P}owner:{owner}", jid).execute()
        with self._lock:
            self._mine.add(owner)
            self._ensure_watcher()

    # ---- reading --------------------------------------------------------------------------
    def status(self, job_id: str) -> JobStatus | None:
        """As JobManager.status. Redis unreachable: the last status read, still active, with
        the phase saying why nothing moves (the page keeps polling instead of failing)."""
        try:
            s = self._status(job_id)
        except redis.RedisError as e:
            log.warning("status of %s: Redis unreachable: %s", job_id, short_error(e))
            last = self._last.get(job_id) or JobStatus(id=job_id, state=QUEUED)
            return replace(last, info={**last.info, "phase": UNREACHABLE})
        if s is not None:
            self._last[job_id] = s
            while len(self._last) > 1000:
                self._last.pop(next(iter(self._last)))
        return s

    def _status(self, job_id: str) -> JobStatus | None:
        h = self.r.hgetall(_job(job_id))
        if not h:
            return None
        g = {k.decode(): v.decode() for k, v in h.items()}
        state = g["state"]
        now = time.time()
        if state == RUNNING and now - float(g.get("heartbeat") or 0) > DEAD_AFTER:
            lost = self._mark_lost(keys=[_job(job_id), self.q.key, f"{_job(job_id)}:live"],
                                   args=[now - DEAD_AFTER, LOST, now, f"lstm-{job_id}", REQUEUED])
            if lost == 2:
                log.warning("job %s (%s): its worker stopped sending heartbeats; queued again",
                            job_id, g.get("label"))
            elif lost:
                log.warning("job %s (%s): its worker stopped sending heartbeats again; marked "
                            "failed", job_id, g.get("label"))
                self._release_key(job_id, g.get("key"))
            return self._status(job_id)
        pos = 0
        if state == QUEUED:
            p = self.q.get_job_position(f"lstm-{job_id}")
            pos = (p + 1) if p is not None else 1
        f = lambda k: float(g[k]) if g.get(k) else None  # noqa: E731
        return JobStatus(
            id=job_id, state=state, label=g.get("label", ""), queue_position=pos,
            eta_seconds=self._eta(pos) if pos else None, progress=float(g.get("progress") or 0),
            info=json.loads(g.get("info") or "{}"), error=g.get("error") or None,
            submitted=f("submitted") or 0.0, started=f("started"), finished=f("finished"),
            cancel_requested=state == RUNNING and g.get("cancel") == "1",
            stopped_reason=g.get("stopped_reason") or None)

    def _worker_count(self) -> int:
        from rq import Worker
        at, n = self._workers
        if n == 0 or time.monotonic() - at > 5:  # none yet: ask again (a worker is starting)
            n = Worker.count(connection=self.r, queue=self.q)
            self._workers = (time.monotonic(), n)
        return n

    def _eta(self, position: int) -> float | None:
        """As JobManager._eta, across processes: the workers are the slots; 0 when a worker
        is free for it (it starts now), None while no run has finished to measure by."""
        workers = self._worker_count()
        if workers == 0:
            return None
        running = [j.removeprefix("lstm-") for j in self.q.started_job_registry.get_job_ids()]
        if len(running) + position <= workers:
            return 0.0
        durations = [float(d) for d in self.r.lrange(f"{P}durations", 0, -1)]
        if not durations:
            return None
        ratios = [float(x) for x in self.r.lrange(f"{P}ratios", 0, -1)]
        ahead = [i.decode().removeprefix("lstm-") for i in self.r.lrange(self.q.key, 0, position - 1)]
        with self.r.pipeline() as pipe:
            for jid in running:
                pipe.hmget(_job(jid), "started", "progress", "estimate")
            for jid in ahead:
                pipe.hget(_job(jid), "estimate")
            rows = pipe.execute()
        now, num = time.time(), lambda v: float(v) if v else 0.0  # noqa: E731
        left = [jobs.time_left(now - num(st), num(pr), jobs.expected(num(es), ratios, durations))
                for st, pr, es in rows[:len(running)] if st]
        queued = [jobs.expected(num(es), ratios, durations) for es in rows[len(running):]]
        return jobs.play_through(left, queued, workers)

    def result(self, job_id: str) -> Any:
        try:
            raw = self.r.get(f"{_job(job_id)}:result")
        except redis.RedisError:
            return None
        return pickle.loads(raw) if raw is not None else None

    def live(self, job_id: str, name: str) -> Any:
        """The newest published value. Decoded once per version and process: the sessions of
        a class polling one shared job read the same object."""
        try:
            version = self.r.hget(_job(job_id), "live_version")
            if version is None:
                return None
            hit = self._live_cache.get((job_id, name))
            if hit is not None and hit[0] == version:
                return hit[1]
            raw = self.r.hget(f"{_job(job_id)}:live", name)
        except redis.RedisError:
            return None
        value = pickle.loads(raw) if raw is not None else None
        with self._lock:
            self._live_cache[(job_id, name)] = (version, value)
            while len(self._live_cache) > 64:
                self._live_cache.pop(next(iter(self._live_cache)))
        return value

    def wait(self, job_id: str, timeout: float | None = None) -> JobStatus | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            s = self.status(job_id)
            if s is None or s.state in FINISHED:
                return s
            if deadline is not None and time.monotonic() >= deadline:
                return s
            time.sleep(0.02 if deadline is None else max(0.0, min(0.02, deadline - time.monotonic())))

    # ---- cancelling -----------------------------------------------------------------------
    def cancel(self, job_id: str, owner: str | None = None) -> bool:
        try:
            return self._cancel(job_id, owner)
        except redis.RedisError as e:  # the worker's budget still ends it; say so in the log
            log.warning("cancel of %s: Redis unreachable: %s", job_id, short_error(e))
            return False

    def _cancel(self, job_id: str, owner: str | None) -> bool:
        s = self.status(job_id)
        if s is None or s.state in FINISHED:
            return False
        owners = f"{_job(job_id)}:owners"
        if owner is not None and {o.decode() for o in self.r.smembers(owners)} - {owner}:
            self.r.srem(owners, owner)
            self.r.srem(f"{P}owner:{owner}", job_id)
            return False
        return self._stop(job_id)

    def _stop(self, job_id: str) -> bool:
        lane = (self.r.hget(_job(job_id), "lane") or b"").decode()
        if self._stop_queued(keys=[_job(job_id), _lane(lane), f"{P}order"],
                             args=[repr(time.time()), job_id, f"lstm-{job_id}"]):
            self.q.remove(f"lstm-{job_id}")  # never started: off the queue at once
            self._release_key(job_id, (self.r.hget(_job(job_id), "key") or b"").decode())
            self._expire(job_id)
        return True

    def cancel_owner(self, owner: str) -> int:
        stopped = 0
        for jid in [i.decode() for i in self.r.smembers(f"{P}owner:{owner}")]:
            s = self.status(jid)
            self.r.srem(f"{_job(jid)}:owners", owner)
            if s is not None and s.state not in FINISHED and not self.r.scard(f"{_job(jid)}:owners"):
                stopped += self._stop(jid)
        self.r.delete(f"{P}owner:{owner}")
        with self._lock:
            self._mine.discard(owner)
        return stopped

    def collected(self, job_id: str, owner: str) -> None:
        try:
            self._collected(job_id, owner)
        except redis.RedisError:
            pass  # its keys expire after KEEP_SECONDS anyway

    def _collected(self, job_id: str, owner: str) -> None:
        self.r.srem(f"{_job(job_id)}:owners", owner)
        self.r.srem(f"{P}owner:{owner}", job_id)
        if not self.r.scard(f"{_job(job_id)}:owners"):
            self.forget(job_id)

    def forget(self, job_id: str) -> bool:
        s = self.status(job_id)
        if s is None or s.state not in FINISHED:
            return False
        self.r.delete(_job(job_id), f"{_job(job_id)}:result", f"{_job(job_id)}:live",
                      f"{_job(job_id)}:owners")
        return True

    def _release_key(self, job_id: str, key: str | None) -> None:
        if key:
            k = f"{P}key:{key}"
            if self.r.get(k) == job_id.encode():
                self.r.delete(k)

    def _expire(self, job_id: str) -> None:
        for k in ("", ":result", ":live", ":owners"):
            self.r.expire(_job(job_id) + k, int(KEEP_SECONDS))

    def warm(self, cfg_json: str) -> None:
        """Compiling ahead is the single-server trainer's (models.trainer.WarmAhead): a worker
        that would compile is unknown until a job reaches it, so nothing is done here."""

    def counts(self) -> dict[str, int]:
        """Runs training, waiting, and workers; with `error` (a sentence) if Redis is down."""
        try:
            return {"running": self.q.started_job_registry.count, "queued": self.q.count,
                    "workers": self._worker_count()}
        except redis.RedisError as e:
            log.warning("counts: Redis unreachable: %s", short_error(e))
            return {"running": 0, "queued": 0, "workers": 0,
                    "error": "The job queue (Redis) is unreachable: nothing can train until "
                             "it is back; stored runs still open."}

    def active_owners(self) -> set[str]:
        with self._lock:
            return set(self._mine)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Nothing trains here: queued and running jobs outlive a web process's restart."""

    # ---- session watcher (this process's sessions only) ---------------------------------------
    def watch_sessions(self, is_alive: Callable[[str], bool], interval: float = 0.5) -> None:
        with self._lock:
            self._is_alive, self._interval = is_alive, interval
            self._ensure_watcher()

    def _ensure_watcher(self) -> None:
        if self._watcher is None and self._is_alive is not None and self._mine:
            self._watcher = threading.Thread(target=self._watch, name="lstm-session-watch",
                                             daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        missed: dict[str, int] = {}
        while True:
            with self._lock:
                owners, is_alive = set(self._mine), self._is_alive
                if not owners:
                    self._watcher = None
                    return
            try:
                missed = {o: missed.get(o, 0) + 1 for o in owners if not _alive(is_alive, o)}
                for owner in [o for o, n in missed.items() if n >= 2]:
                    log.info("session %s ended: cancelling its jobs", owner)
                    self.cancel_owner(owner)
                    missed.pop(owner)
            except redis.RedisError as e:
                log.warning("session watcher: Redis unreachable (%s); retrying", short_error(e))
            time.sleep(self._interval)


def _alive(is_alive, owner: str) -> bool:
    try:
        return bool(is_alive(owner))
    except Exception:  # noqa: BLE001  (an unsure answer must not cancel a run)
        return True


# ---- the worker side ----------------------------------------------------------------------------
class RedisContext:
    """What a job function sees in a worker: `cancelled` (a threading.Event), `progress`,
    `publish`, as `models.jobs.JobContext`. A thread writes them to Redis every POLL s,
    reads the cancel flag, beats the heartbeat and enforces the time budget."""

    def __init__(self, r: redis.Redis, jid: str, max_seconds: float):
        self.r, self.jid, self.key = r, jid, _job(jid)
        self.cancelled = threading.Event()
        self._max_seconds, self._t0 = max_seconds, time.time()
        self._lock = threading.Lock()
        self._progress: tuple | None = None
        self._live: dict[str, Any] = {}
        self._done = threading.Event()
        self._wake = threading.Event()  # the first values go out at once, not a POLL later
        self.waited = 0.0               # s in the queue (for the worker's log)
        self.first_live: float | None = None  # s from the start to the first values written
        self._down = False
        self._thread = threading.Thread(target=self._loop, name=f"lstm-job-sync-{jid}", daemon=True)
        self._thread.start()

    def progress(self, fraction: float, info: dict | None = None) -> None:
        with self._lock:
            self._progress = (min(1.0, max(0.0, float(fraction))), info)

    def publish(self, name: str, value: Any) -> None:
        with self._lock:
            self._live[name] = value
        if self.first_live is None:
            self._wake.set()

    def _loop(self) -> None:
        while not self._done.is_set():
            self._wake.wait(POLL)
            self._wake.clear()
            self.sync()

    def sync(self) -> None:
        with self._lock:
            progress, self._progress = self._progress, None
            live, self._live = self._live, {}
        try:
            with self.r.pipeline() as pipe:
                pipe.hset(self.key, "heartbeat", repr(time.time()))
                if progress is not None:
                    pipe.hset(self.key, "progress", progress[0])
                    if progress[1] is not None:
                        pipe.hset(self.key, "info", json.dumps(progress[1], default=float))
                if live:
                    pipe.hset(f"{self.key}:live", mapping={
                        k: pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL) for k, v in live.items()})
                    pipe.hincrby(self.key, "live_version", 1)
                pipe.hget(self.key, "cancel")
                cancel = pipe.execute()[-1]
            if live and self.first_live is None:
                self.first_live = time.time() - self._t0
            if self._down:
                log.warning("job %s: Redis reachable again", self.jid)
            self._down = False
        except redis.RedisError as e:
            if not self._down:
                log.warning("job %s: Redis unreachable (%s); training on", self.jid, short_error(e))
            self._down = True
            with self._lock:  # keep the newest values for the next try
                self._live = {**live, **self._live}
            return
        if cancel == b"1":
            self.cancelled.set()
        if self._max_seconds > 0 and time.time() - self._t0 > self._max_seconds \
                and not self.cancelled.is_set():
            reason = (f"Stopped after {self._max_seconds:.3g} s, this server's time budget for "
                      f"one run (LSTM_MAX_RUN_SECONDS); what it recorded until then is kept.")
            try:
                self.r.hset(self.key, "stopped_reason", reason)
            except redis.RedisError:
                pass
            self.cancelled.set()

    def close(self) -> None:
        self._done.set()
        self._wake.set()
        self._thread.join()


busy = threading.Event()  # set while this worker process trains a job (its prewarm waits)


def perform(jid: str, fn: Callable) -> None:
    """The RQ job: run `fn(ctx)` for our job `jid` and write its outcome to Redis."""
    r = get_current_job().connection
    start = r.register_script(START)
    lane, submitted = r.hmget(_job(jid), "lane", "submitted")
    now = time.time()
    if not start(keys=[_job(jid), _lane((lane or b"").decode()), f"{P}order", f"{P}turn"],
                 args=[repr(now), f"{os.uname().nodename}:{os.getpid()}", jid, f"lstm-{jid}"]):
        return  # cancelled while queued (or taken by another worker): nothing to do
    busy.set()
    ctx = RedisContext(r, jid, float(limits.MAX_RUN_SECONDS))
    ctx.waited = now - float(submitted or now)
    state, result, error = DONE, None, None
    try:
        result = fn(ctx)
    except BaseException as e:  # noqa: BLE001  (a worker shutdown too: never left "running")
        state, error = FAILED, short_error(e)
        if isinstance(e, (SystemExit, KeyboardInterrupt)):
            error = LOST
        log.exception("job %s failed", jid)
    finally:
        ctx.close()
        busy.clear()
    if ctx.cancelled.is_set() and state == DONE:
        state = CANCELLED
    _finish(r, jid, state, result, error, ctx)


def _finish(r: redis.Redis, jid: str, state: str, result, error, ctx: RedisContext) -> None:
    payload = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL) if result is not None else None
    deadline = time.monotonic() + FINAL_RETRY
    while True:
        try:
            ctx.sync()  # the last progress and values
            now = time.time()
            key, started, estimate = r.hmget(_job(jid), "key", "started", "estimate")
            key, started = (key or b"").decode(), float(started or now)
            estimate = float(estimate or 0)
            with r.pipeline() as pipe:
                if payload is not None:
                    pipe.set(f"{_job(jid)}:result", payload, ex=int(KEEP_SECONDS))
                if state == DONE:
                    pipe.delete(f"{_job(jid)}:live")  # the result supersedes partial values
                    pipe.lpush(f"{P}durations", now - started).ltrim(f"{P}durations", 0, DURATIONS - 1)
                    if estimate > 0:  # how long estimated runs really take on these workers
                        pipe.lpush(f"{P}ratios", (now - started) / estimate)
                        pipe.ltrim(f"{P}ratios", 0, DURATIONS - 1)
                fields = {"state": state, "finished": repr(now)}
                if error:
                    fields["error"] = error
                pipe.hset(_job(jid), mapping=fields)
                for k in ("", ":live", ":owners"):
                    pipe.expire(_job(jid) + k, int(KEEP_SECONDS))
                pipe.execute()
            if key and r.get(f"{P}key:{key}") == jid.encode():
                r.delete(f"{P}key:{key}")  # later submits are answered by the result store
            log.info("job %s timings: waited %.3f s in the queue, first live values %s after "
                     "its start, %s: %.3f s in all", jid, ctx.waited,
                     "-" if ctx.first_live is None else f"{ctx.first_live:.3f} s", state,
                     now - started)
            return
        except redis.RedisError as e:
            if time.monotonic() > deadline:
                log.error("job %s: outcome lost, Redis unreachable for %.0f s: %s", jid,
                          FINAL_RETRY, short_error(e))
                return
            time.sleep(1.0)


def _rss_mb() -> float:
    """This process's resident memory (Linux /proc), MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _bounded_worker_class(max_rss_mb: float | None):
    """SimpleWorker that quits between jobs once its memory passes `max_rss_mb`: every new
    shape leaves ~35 MB inside TensorFlow's runtime that no API gives back, so a long-lived
    worker grows; quitting after a finished job (never during one) lets systemd or compose
    start a fresh one, and nobody's run is cut."""
    from rq import SimpleWorker

    class BoundedWorker(SimpleWorker):
        def execute_job(self, job, queue):
            super().execute_job(job, queue)
            rss = _rss_mb()
            if max_rss_mb and rss > max_rss_mb:
                log.warning("worker memory %.0f MB is over %.0f MB: quitting between jobs so "
                            "a fresh worker takes over", rss, max_rss_mb)
                self._stop_requested = True
    return BoundedWorker


def run_worker(url: str, burst: bool = False, prewarm: bool = True, name: str | None = None,
               max_rss_mb: float | None = None) -> int:
    """A worker process: one job at a time, in this process (its compiled nets stay warm);
    compiles the presets' shapes while idle; quits between jobs once over `max_rss_mb` (its
    supervisor restarts it). Returns an exit code."""

    r = connect(url)
    try:
        r.ping()
    except redis.RedisError as e:
        import sys
        print(f"error: cannot reach Redis at {_safe(url)}: {short_error(e)}", file=sys.stderr,
              flush=True)
        return 2
    import models.engine  # noqa: F401  (TensorFlow loads once, before the first job)
    stop = threading.Event()
    if prewarm and os.environ.get("LSTM_PREWARM", "1") != "0":
        threading.Thread(target=_prewarm, args=(stop,), name="lstm-prewarm", daemon=True).start()
    worker = _bounded_worker_class(max_rss_mb)([Queue(QUEUE, connection=r)], connection=r,
                                               name=name)
    try:
        worker.work(burst=burst, with_scheduler=False)
    finally:
        stop.set()
    return 0


def _prewarm(stop: threading.Event) -> None:
    from models.config import RunConfig
    from models.engine import prewarm
    from models.presets import PRESETS
    configs = sorted((p.config for p in PRESETS.values()), key=lambda c: c != RunConfig())
    try:
        n = prewarm(configs, idle=lambda: not busy.is_set(), stop=stop)
        log.info("worker prewarm: compiled %d nets", n)
    except Exception:  # noqa: BLE001  (an optimisation: never a crash)
        log.exception("prewarm failed; presets compile on first use")


def _safe(url: str) -> str:
    """The URL without a password, for messages and logs."""
    from urllib.parse import urlsplit
    u = urlsplit(url)
    return f"{u.scheme}://{u.hostname}:{u.port or 6379}{u.path}"


def job_fn(f: Callable, *args, **kwargs) -> Callable:
    """A picklable job function: `f` must be a module-level function."""
    return functools.partial(f, *args, **kwargs)
