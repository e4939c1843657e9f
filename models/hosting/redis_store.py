"""The result store in Redis: every web process and worker reads and writes the same runs.

Same interface and guarantees as `models/store.ResultStore` (bounded by LSTM_STORE_MAX_MB,
least recently used evicted, corrupt entries dropped and reported, evicted ids remembered so a
link says why). Why Redis rather than a SQL server: the queue needs Redis anyway, so a
deployment has one service to run and back up; runs are blobs read whole by id, and the size
bound is ours (a Lua script puts and evicts atomically, so two processes never over-evict).
Redis itself must keep `maxmemory-policy noeviction` (RQ's queue must never be evicted) and
room for LSTM_STORE_MAX_MB plus the queue.

Redis unreachable: every call reports it (the sidebar's server line, the log) and returns
what an empty store would; with `local`, a SQLite copy of each run this process stored or
read keeps those runs opening until Redis is back.

Keys (prefix `lstm:`): `run:<id>` hash (trace, meta, sha256, size, created); `runs:lru` and
`runs:created` sorted sets; `runs:bytes`, `runs:clock` counters; `gone` hash id -> reason|at;
`inflight:<id>` {"at": started, "job": the RQ job training it} (expires after the run's
time budget).
"""
from __future__ import annotations

import json
import logging
import time
from collections import deque
from typing import Any, Callable

import redis

from models import limits
from models.store import (MAX_PROBLEMS, StoreError, _decode, _sha, default_max_bytes,
                          valid_run_id)

log = logging.getLogger(__name__)
P = "lstm:"

PUT = """
local p, id, size, max = KEYS[1], ARGV[1], tonumber(ARGV[5]), tonumber(ARGV[7])
local key = p .. 'run:' .. id
local old = redis.call('HGET', key, 'size')
if old then redis.call('DECRBY', p .. 'runs:bytes', old) end
redis.call('HSET', key, 'trace', ARGV[2], 'meta', ARGV[3], 'sha256', ARGV[4], 'size', size,
           'created', ARGV[6])
redis.call('INCRBY', p .. 'runs:bytes', size)
redis.call('ZADD', p .. 'runs:lru', redis.call('INCR', p .. 'runs:clock'), id)
redis.call('ZADD', p .. 'runs:created', ARGV[6], id)
redis.call('HDEL', p .. 'gone', id)
local evicted = {}
while tonumber(redis.call('GET', p .. 'runs:bytes')) > max do
  local oldest = redis.call('ZRANGE', p .. 'runs:lru', 0, 0)[1]
  if (not oldest) or oldest == id then break end
  local s = redis.call('HGET', p .. 'run:' .. oldest, 'size') or 0
  redis.call('DEL', p .. 'run:' .. oldest)
  redis.call('ZREM', p .. 'runs:lru', oldest)
  redis.call('ZREM', p .. 'runs:created', oldest)
  redis.call('DECRBY', p .. 'runs:bytes', s)
  redis.call('HSET', p .. 'gone', oldest, 'evicted|' .. ARGV[6])
  table.insert(evicted, oldest)
end
return evicted
"""


class RedisStore:
    def __init__(self, url: str, max_bytes: int | None = None, local=None):
        self.url = url
        self.max_bytes = max_bytes if max_bytes is not None else default_max_bytes()
        self.local = local  # a models.store.ResultStore, or None (workers)
        self.r = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2,
                                      health_check_interval=10)
        self._put = self.r.register_script(PUT)
        self._problems: deque[str] = deque(maxlen=MAX_PROBLEMS)
        self.reachable = True

    # ---- problems ---------------------------------------------------------------------------
    @property
    def problems(self) -> list[str]:
        own = list(self._problems)
        return own + (self.local.problems if self.local is not None else [])

    def report(self, message: str) -> None:
        log.warning("result store: %s", message)
        self._problems.append(message)

    def _guard(self, op: Callable[[], Any], default: Any = None) -> Any:
        try:
            out = op()
        except redis.RedisError as e:
            if self.reachable:  # once per outage, not once per call
                self.report(f"Redis is unreachable ({type(e).__name__}): stored runs this "
                            f"server opened before still open; others wait until it is back.")
            self.reachable = False
            return default
        if not self.reachable:
            log.warning("result store: Redis reachable again")
        self.reachable = True
        return out

    # ---- API (as models.store.ResultStore) --------------------------------------------------
    def put(self, run_id: str, trace_bytes: bytes, meta: dict) -> bool:
        if not valid_run_id(run_id):
            self.report(f"Refused run id {str(run_id)[:40]!r}: expected 16 lowercase hex characters.")
            return False
        try:
            meta_json = json.dumps(meta, sort_keys=True)
        except (TypeError, ValueError) as e:
            self.report(f"Run {run_id} not stored: its meta is not JSON ({e}).")
            return False
        trace_bytes = bytes(trace_bytes)
        size = len(trace_bytes) + len(meta_json)
        if size > self.max_bytes:
            self.report(f"Run {run_id} not stored: {size} bytes exceed the store's "
                        f"{self.max_bytes} bytes.")
            return False
        evicted = self._guard(lambda: self._put(
            keys=[P], args=[run_id, trace_bytes, meta_json, _sha(trace_bytes), size,
                            repr(time.time()), self.max_bytes]), None)
        if evicted:
            log.info("result store: evicted %d run(s) to stay within %d bytes", len(evicted),
                     self.max_bytes)
        if self.local is not None:
            self.local.put(run_id, trace_bytes, meta)
        return evicted is not None

    def get(self, run_id: str) -> tuple[bytes, dict] | None:
        if not valid_run_id(run_id):
            return None
        key = P + "run:" + run_id

        def op():
            trace, meta, sha = self.r.hmget(key, "trace", "meta", "sha256")
            if trace is None:
                return None
            try:
                entry = _decode(trace, meta.decode(), sha.decode())
            except (StoreError, AttributeError, UnicodeDecodeError) as e:
                self.report(f"Run {run_id} was corrupt and has been dropped: {e}")
                self._drop(run_id, "corrupt")
                return None
            self.r.zadd(P + "runs:lru", {run_id: self.r.incr(P + "runs:clock")}, xx=True)
            return entry
        hit = self._guard(op, False)
        if hit is False:  # unreachable: the local copy, if this process has one
            return self.local.get(run_id) if self.local is not None else None
        if hit is not None and self.local is not None and not self.local.has(run_id):
            self.local.put(run_id, *hit)
        return hit

    def remember(self, run_id: str) -> None:
        """Keep a local copy of a run a worker stored (this process showed it): its link
        then opens here while Redis is unreachable."""
        if self.local is not None and valid_run_id(run_id) and not self.local.has(run_id):
            self.get(run_id)

    def _drop(self, run_id: str, reason: str) -> None:
        size = self.r.hget(P + "run:" + run_id, "size") or 0
        with self.r.pipeline() as pipe:
            pipe.delete(P + "run:" + run_id).zrem(P + "runs:lru", run_id)
            pipe.zrem(P + "runs:created", run_id).decrby(P + "runs:bytes", int(size))
            pipe.hset(P + "gone", run_id, f"{reason}|{time.time()!r}").execute()

    def has(self, run_id: str) -> bool:
        if not valid_run_id(run_id):
            return False
        found = self._guard(lambda: bool(self.r.exists(P + "run:" + run_id)), None)
        if found is None:
            return self.local is not None and self.local.has(run_id)
        return found

    def why_missing(self, run_id: str) -> str:
        if not valid_run_id(run_id):
            return "That is not a run id of this app."
        raw = self._guard(lambda: self.r.hget(P + "gone", run_id), False)
        if raw is False:
            return "The server's result store (Redis) is unreachable right now; try again shortly."
        if raw is None:
            return ("It is not on this server: stored on another server, or before this "
                    "server's result store was reset.")
        reason, _, at = raw.decode().partition("|")
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(float(at or 0)))
        if reason == "evicted":
            return (f"It was evicted on {when} to make room: this server keeps the most "
                    f"recently used {self.max_bytes / 2**20:.0f} MB of runs (LSTM_STORE_MAX_MB).")
        return f"It was found corrupt on {when} and dropped."

    def recent(self, n: int = 20) -> list[tuple[str, dict]]:
        def op():
            ids = [i.decode() for i in self.r.zrevrange(P + "runs:created", 0, max(0, n) - 1)]
            out = []
            for rid in ids:
                meta = self.r.hget(P + "run:" + rid, "meta")
                try:
                    out.append((rid, json.loads(meta)))
                except (TypeError, ValueError):
                    continue
            return out
        return self._guard(op, [])

    def total_bytes(self) -> int:
        return int(self._guard(lambda: self.r.get(P + "runs:bytes") or 0, 0))

    # ---- runs in flight: a marker that outlives its run only if the run's worker died ------
    def started(self, run_id: str, config_json: str) -> None:
        """A run with this id is training in this process: inside an RQ job, the marker names
        the job, whose heartbeat (`rq_jobs`) says later whether its worker still lives."""
        if valid_run_id(run_id):
            from rq import get_current_job
            job = get_current_job()
            mark = json.dumps({"at": time.time(),
                               "job": job.id.removeprefix("lstm-") if job is not None else ""})
            ttl = int(limits.MAX_RUN_SECONDS) + 120  # a run longer than its budget is stopped
            self._guard(lambda: self.r.set(P + "inflight:" + run_id, mark, ex=ttl))

    def ended(self, run_id: str) -> None:
        if valid_run_id(run_id):
            self._guard(lambda: self.r.delete(P + "inflight:" + run_id))

    def interrupted(self, run_id: str) -> float | None:
        """When a run with this id started, if the worker training it died before it ended
        (killed, crashed, restarted); else None. Its marker (`started`) names its job, and a
        run that ends removes it (`ended`): a marker whose job is running without a heartbeat
        for `rq_jobs.DEAD_AFTER` s, failed, was cancelled (its tab closed) or is gone, is a
        run cut short. A job queued again (`rq_jobs.MARK_LOST`) or still beating is not."""
        if not valid_run_id(run_id):
            return None
        return self._guard(lambda: self._interrupted(run_id))

    def _interrupted(self, run_id: str) -> float | None:
        from models.hosting import rq_jobs
        try:
            mark = json.loads(self.r.get(P + "inflight:" + run_id) or "null")
            at, jid = float(mark["at"]), str(mark["job"])
        except (TypeError, ValueError, KeyError):
            return None  # no marker (or not ours): nothing to say
        if not jid:
            return None  # trained outside a job: no heartbeat to tell by
        state, beat = self.r.hmget(rq_jobs._job(jid), "state", "heartbeat")
        state = state.decode() if state is not None else None
        if state == rq_jobs.RUNNING and time.time() - float(beat or 0) <= rq_jobs.DEAD_AFTER:
            return None  # still training
        return None if state in (rq_jobs.QUEUED, rq_jobs.DONE) else at

    def forget_interrupted(self, run_id: str) -> None:
        self.ended(run_id)

    def close(self) -> None:
        self.r.close()
        if self.local is not None:
            self.local.close()
