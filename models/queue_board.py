"""The queue board: one small JSON file that tells every waiting page its place.

A queued page used to learn its position by rerunning its live panel every 1.5 s: a whole
Streamlit script run per waiting page. With 80 pages waiting those reruns were most of the
web process's work, and they cut each other short: half the waiting pages saw their position
change once in 50 s (bench/ws_load.py). Instead the server writes every queued job's place
here once a second, in one pass over the queue (JobManager.queue_starts), and each waiting
page's queue line (ui/queue_line.py) reads the file over HTTP (Streamlit's static serving):
no script run until its job leaves the queue.

The file names no job: each entry's key is a token derived from the job id, which only the
page that holds the job knows.

    {"t": 1733100000.0, "jobs": {"<token>": {"pos": 3, "when": "starts in about 40 s"}}}
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)
EVERY = 1.0  # seconds between writes while anything is queued


def token(job_id: str) -> str:
    """The board's key for a job: not the id itself (the id is what cancel and results use)."""
    return hashlib.sha256(f"queue-board:{job_id}".encode()).hexdigest()[:20]


def snapshot(starts: dict[str, tuple[int, float | None]],
             when: Callable[[float | None], str], t: float) -> dict:
    """The board's content for `starts` (job id -> (position, seconds until it starts)), read
    at or after time `t`: a job queued at `t` and not on the board has left the queue."""
    return {"t": t,
            "jobs": {token(j): {"pos": pos, "when": when(eta)} for j, (pos, eta) in starts.items()}}


def write(path: Path, board: dict) -> None:
    """Replace the file at once (a reader never sees half a board)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(board, separators=(",", ":")))
    os.replace(tmp, path)


class QueueBoard:
    """A daemon thread that rewrites the board every `every` seconds while jobs are queued,
    and once more (empty) when the queue empties. `starts` is JobManager.queue_starts."""

    def __init__(self, starts: Callable[[], dict], path: Path,
                 when: Callable[[float | None], str], every: float = EVERY):
        self.path, self._starts, self._when, self._every = Path(path), starts, when, every
        self._stop = threading.Event()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write(self.path, snapshot({}, when, time.time()))  # no stale board from an earlier server
        self._thread = threading.Thread(target=self._run, name="lstm-queue-board", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        had_jobs = False
        while not self._stop.wait(self._every):
            try:
                t = time.time()  # before reading the queue: see `snapshot`
                starts = self._starts()
                if starts or had_jobs:
                    write(self.path, snapshot(starts, self._when, t))
                had_jobs = bool(starts)
            except Exception as e:  # noqa: BLE001  (pages then fall back to their slow poll)
                log.warning("queue board not written: %s", e)

    def stop(self) -> None:
        self._stop.set()
