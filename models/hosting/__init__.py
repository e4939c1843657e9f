"""Where jobs run and finished runs are kept, chosen by configuration.

- `LSTM_REDIS_URL` unset (the embedded default): jobs run in this process (`models/jobs.py`,
  `JobManager`) and finished runs go to the SQLite store (`models/store.py`). Nothing to start.
- `LSTM_REDIS_URL=redis://host:6379/0`: jobs are enqueued on RQ and trained by worker
  processes (`python -m models worker`) on any machine that reaches Redis; finished runs are
  kept in Redis (`redis_store.RedisStore`), so every web process and worker sees them.

The app only uses `get_jobs()` (the `jobs.Jobs` interface) and `get_store()`, so its code is
the same with either backend. Imports of `redis`/`rq` happen only when the URL is set.
"""
from __future__ import annotations

import os
import threading

_lock = threading.Lock()
_jobs = None
_store = None


def redis_url() -> str | None:
    url = os.environ.get("LSTM_REDIS_URL", "").strip()
    return url or None


def backend() -> str:
    """'rq' when LSTM_REDIS_URL is set, else 'local'."""
    return "rq" if redis_url() else "local"


def get_jobs():
    """The process-wide `Jobs` implementation for the configured backend."""
    global _jobs
    with _lock:
        if _jobs is None:
            if backend() == "rq":
                from models.hosting.rq_jobs import RQJobs
                _jobs = RQJobs(redis_url())
            else:
                from models import jobs
                _jobs = jobs.get_manager()
        return _jobs


def get_store(local_copy: bool = True):
    """The process-wide result store: SQLite, or Redis (with a local SQLite copy of the runs
    this process wrote or read, so stored runs still open while Redis is unreachable)."""
    global _store
    with _lock:
        if _store is None:
            from models.store import ResultStore
            if backend() == "rq":
                from models.hosting.redis_store import RedisStore
                _store = RedisStore(redis_url(), local=ResultStore() if local_copy else None)
            else:
                _store = ResultStore()
        return _store
