"""A store of finished runs (trace bytes + a small JSON meta), shared by every session.

Embedded default: one SQLite file, `results.sqlite3`, in the data directory: `$LSTM_DATA_DIR`,
else `$XDG_CACHE_HOME/stateful-lstm-explorer`, else `~/.cache/stateful-lstm-explorer`. A cache
directory, not `./.data`: every entry can be recomputed from its config and seed, the app may
run from a read-only checkout, and results must never end up in the repository.

Size is bounded by `LSTM_STORE_MAX_MB` (default 500): after each put, the entries read or
written longest ago are evicted until the total fits (least recently used).

Nothing here crashes the app: a corrupt entry (checksum or meta mismatch) is deleted and
reported, a corrupt database file is moved aside and recreated, other SQLite errors are
reported; each report is a short line in `store.problems`. Run ids are validated against
`^[0-9a-f]{16}$` before any lookup, and no user input is ever used as a path.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections import deque
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

RUN_ID = re.compile(r"^[0-9a-f]{16}\Z")
DB_NAME = "results.sqlite3"
DEFAULT_MAX_MB = 500
MAX_PROBLEMS = 100  # newest kept: a long-lived server must not grow this forever
CORRUPT = ("SQLITE_NOTADB", "SQLITE_CORRUPT")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id   TEXT PRIMARY KEY,
    trace    BLOB NOT NULL,
    meta     TEXT NOT NULL,
    sha256   TEXT NOT NULL,
    size     INTEGER NOT NULL,
    created  REAL NOT NULL,
    accessed INTEGER NOT NULL  -- a logical clock: strictly ordered, unlike wall time
);
CREATE INDEX IF NOT EXISTS runs_accessed ON runs (accessed);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created);
-- Why a run id is no longer here (evicted to make room, or dropped as corrupt): a link to it
-- says so instead of "not on this server". Bounded to the newest GONE_KEEP rows.
CREATE TABLE IF NOT EXISTS gone (
    run_id TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    at     REAL NOT NULL
);
-- Runs training now, by run id, with the process that trains them. Rows of a process that is
-- no longer alive are runs a crash or restart interrupted: the page names them on reconnect.
CREATE TABLE IF NOT EXISTS inflight (
    run_id  TEXT PRIMARY KEY,
    config  TEXT NOT NULL,
    host    TEXT NOT NULL,
    pid     INTEGER NOT NULL,
    process TEXT NOT NULL,  -- this process's random token (a restarted container reuses pids)
    started REAL NOT NULL
);
"""
GONE_KEEP = 10_000


class StoreError(Exception):
    """Something wrong with the store or an entry; reported in `problems`, not raised."""


def data_dir() -> Path:
    env = os.environ.get("LSTM_DATA_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "stateful-lstm-explorer"


def default_max_bytes() -> int:
    try:
        mb = float(os.environ.get("LSTM_STORE_MAX_MB", DEFAULT_MAX_MB))
    except ValueError:
        mb = DEFAULT_MAX_MB
    return int(max(1.0, mb) * 1024 * 1024)


def run_key(config_json: str, versions: dict) -> str:
    """Stable id of a run: sha256 of the canonical config (which includes the seed) and the
    library versions that produced it, as 16 hex chars. Key order and spacing do not matter."""
    canonical = json.dumps({"config": json.loads(config_json), "versions": versions},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def library_versions(app: str) -> dict:
    """The `versions` dict for run_key, read from package metadata (imports nothing heavy)."""
    def v(dist):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None
    tf = v("tensorflow") or v("tensorflow-cpu")
    return {"keras": v("keras"), "tensorflow": tf, "numpy": v("numpy"), "app": app}


def valid_run_id(run_id: Any) -> bool:
    return isinstance(run_id, str) and bool(RUN_ID.match(run_id))


class ResultStore:
    """Thread-safe: one connection (check_same_thread=False) behind one lock, WAL mode."""

    def __init__(self, path: str | os.PathLike | None = None, max_bytes: int | None = None):
        self.path = Path(path) if path is not None else data_dir() / DB_NAME
        self.max_bytes = max_bytes if max_bytes is not None else default_max_bytes()
        self._problems: deque[str] = deque(maxlen=MAX_PROBLEMS)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        with self._lock:
            self._open()

    @property
    def problems(self) -> list[str]:
        """A copy of the newest reports (use `report` to add one)."""
        with self._lock:
            return list(self._problems)

    def report(self, message: str) -> None:
        """Add a problem for the page and the server log."""
        log.warning("result store: %s", message)
        with self._lock:
            self._problems.append(message)

    _report = report

    # ---- opening and recovery ---------------------------------------------------------------
    def _open(self) -> None:
        try:
            self._conn = self._connect(self.path)
        except sqlite3.DatabaseError as e:
            if not _is_corrupt(e):
                return self._fallback_to_memory(e)
            self._move_aside(e)
            try:
                self._conn = self._connect(self.path)
            except (sqlite3.Error, OSError) as e2:
                self._fallback_to_memory(e2)
        except OSError as e:
            self._fallback_to_memory(e)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL: durable enough for a cache
            conn.executescript(SCHEMA)
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    def _move_aside(self, err: Exception) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.time_ns()}")
        self._report(f"The result database was corrupt ({err}); moved it to {aside.name} "
                     f"and started an empty one. Runs will be recomputed.")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                os.replace(src, Path(str(aside) + suffix))

    def _fallback_to_memory(self, err: Exception) -> None:
        self._report(f"Could not open the result database at {self.path} ({err}); "
                     f"keeping results in memory only.")
        self.path = Path(":memory:")
        self._conn = self._connect(self.path)

    def _guard(self, op: Callable[[sqlite3.Connection], Any], default: Any = None) -> Any:
        """Run `op` under the lock; SQLite errors are reported (and corruption repaired)."""
        with self._lock:
            try:
                if self._conn is None:  # closed, or a recovery failed: try again
                    self._open()
                return op(self._conn)
            except sqlite3.Error as e:
                if _is_corrupt(e) and str(self.path) != ":memory:":
                    self._move_aside(e)
                    self._open()
                else:
                    self._report(f"Result store error: {e}")
                return default

    def _check_id(self, run_id: Any) -> bool:
        if valid_run_id(run_id):
            return True
        self._report(f"Refused run id {str(run_id)[:40]!r}: expected 16 lowercase hex characters.")
        return False

    # ---- API ------------------------------------------------------------------------------
    def put(self, run_id: str, trace_bytes: bytes, meta: dict) -> bool:
        """Store (or replace) a run; then evict least recently used runs to fit. False: refused."""
        if not self._check_id(run_id):
            return False
        try:
            meta_json = json.dumps(meta, sort_keys=True)  # NaN allowed: a diverged run's loss
        except (TypeError, ValueError) as e:
            self._report(f"Run {run_id} not stored: its meta is not JSON ({e}).")
            return False
        trace_bytes = bytes(trace_bytes)
        size = len(trace_bytes) + len(meta_json)
        if size > self.max_bytes:
            self._report(f"Run {run_id} not stored: {size} bytes exceed the store's "
                         f"{self.max_bytes} bytes.")
            return False

        def op(conn):
            with conn:
                conn.execute(
                    "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, "
                    "(SELECT COALESCE(MAX(accessed), 0) + 1 FROM runs))",
                    (run_id, trace_bytes, meta_json, _sha(trace_bytes), size, time.time()))
                self._evict(conn, keep=run_id)
            return True
        return bool(self._guard(op, False))

    def _evict(self, conn: sqlite3.Connection, keep: str) -> None:
        total = conn.execute("SELECT COALESCE(SUM(size), 0) FROM runs").fetchone()[0]
        rows = conn.execute("SELECT run_id, size FROM runs WHERE run_id != ? "
                            "ORDER BY accessed", (keep,)).fetchall()
        doomed = []
        for rid, size in rows:
            if total <= self.max_bytes:
                break
            doomed.append((rid,))
            total -= size
        conn.executemany("DELETE FROM runs WHERE run_id = ?", doomed)
        if doomed:
            self._gone(conn, [d[0] for d in doomed], "evicted")
            log.info("result store: evicted %d run(s) to stay within %d bytes", len(doomed),
                     self.max_bytes)

    @staticmethod
    def _gone(conn: sqlite3.Connection, run_ids: list[str], reason: str) -> None:
        now = time.time()
        conn.executemany("INSERT OR REPLACE INTO gone VALUES (?, ?, ?)",
                         [(r, reason, now) for r in run_ids])
        conn.execute("DELETE FROM gone WHERE run_id NOT IN "
                     "(SELECT run_id FROM gone ORDER BY at DESC LIMIT ?)", (GONE_KEEP,))

    def get(self, run_id: str) -> tuple[bytes, dict] | None:
        """The run's bytes and meta, or None (unknown, invalid id, or corrupt: see problems)."""
        if not self._check_id(run_id):
            return None

        def op(conn):
            row = conn.execute("SELECT trace, meta, sha256 FROM runs WHERE run_id = ?",
                               (run_id,)).fetchone()
            if row is None:
                return None
            try:
                entry = _decode(*row)
            except StoreError as e:
                self._report(f"Run {run_id} was corrupt and has been dropped: {e}")
                with conn:
                    conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
                    self._gone(conn, [run_id], "corrupt")
                return None
            with conn:
                conn.execute("UPDATE runs SET accessed = (SELECT MAX(accessed) + 1 FROM runs) "
                             "WHERE run_id = ?", (run_id,))
            return entry
        return self._guard(op)

    def why_missing(self, run_id: str) -> str:
        """Why `run_id` is not here, as a sentence for whoever follows a link to it."""
        if not valid_run_id(run_id):
            return "That is not a run id of this app."
        row = self._guard(lambda conn: conn.execute(
            "SELECT reason, at FROM gone WHERE run_id = ?", (run_id,)).fetchone(), None)
        if row is None:
            return ("It is not on this server: stored on another server, or before this "
                    "server's result store was reset.")
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(row[1]))
        if row[0] == "evicted":
            return (f"It was evicted on {when} to make room: this server keeps the most "
                    f"recently used {self.max_bytes / 2**20:.0f} MB of runs (LSTM_STORE_MAX_MB).")
        return f"It was found corrupt on {when} and dropped."

    # ---- runs in flight ---------------------------------------------------------------------
    def started(self, run_id: str, config_json: str) -> None:
        """A run with this id is training in this process (see `interrupted`)."""
        if valid_run_id(run_id):
            self._guard(lambda conn: _write(conn, "INSERT OR REPLACE INTO inflight VALUES "
                                            "(?, ?, ?, ?, ?, ?)", (run_id, config_json, _HOST,
                                                                   os.getpid(), _PROCESS, time.time())))

    def ended(self, run_id: str) -> None:
        """The run finished, failed or was stopped: it is no longer in flight."""
        if valid_run_id(run_id):
            self._guard(lambda conn: _write(conn, "DELETE FROM inflight WHERE run_id = ? "
                                            "AND process = ?", (run_id, _PROCESS)))

    def interrupted(self, run_id: str) -> float | None:
        """When a run with this id started, if the process training it died before it ended
        (a crash or a restart); else None. A row of a live process is a run still training."""
        if not valid_run_id(run_id):
            return None
        row = self._guard(lambda conn: conn.execute(
            "SELECT host, pid, process, started FROM inflight WHERE run_id = ?",
            (run_id,)).fetchone(), None)
        if row is None:
            return None
        host, pid, process, started = row
        if process == _PROCESS:
            return None  # ours: still training
        if host != _HOST:
            return None  # another machine's process: cannot tell; it may still be training
        if pid != os.getpid() and _alive(pid):
            return None  # another live process here (a second web process) trains it
        return float(started)

    def forget_interrupted(self, run_id: str) -> None:
        if valid_run_id(run_id):
            self._guard(lambda conn: _write(conn, "DELETE FROM inflight WHERE run_id = ?", (run_id,)))

    def has(self, run_id: str) -> bool:
        if not valid_run_id(run_id):
            return False
        return bool(self._guard(lambda conn: conn.execute(
            "SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone(), None))

    def recent(self, n: int = 20) -> list[tuple[str, dict]]:
        """The n most recently stored runs, newest first, as (run_id, meta)."""
        def op(conn):
            rows = conn.execute("SELECT run_id, meta FROM runs ORDER BY created DESC, "
                                "accessed DESC LIMIT ?", (max(0, int(n)),)).fetchall()
            out = []
            for rid, meta_json in rows:
                meta = _meta(meta_json)
                if meta is None:
                    self._report(f"Run {rid} has unreadable meta; skipped.")
                    continue
                out.append((rid, meta))
            return out
        return self._guard(op, [])

    def total_bytes(self) -> int:
        return self._guard(lambda conn: conn.execute(
            "SELECT COALESCE(SUM(size), 0) FROM runs").fetchone()[0], 0)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


_HOST = os.uname().nodename if hasattr(os, "uname") else "localhost"
_PROCESS = os.urandom(8).hex()  # this process, as opposed to an earlier one with the same pid


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # exists (another user's), or cannot tell: assume alive
    return True


def _write(conn: sqlite3.Connection, sql: str, args: tuple) -> None:
    with conn:
        conn.execute(sql, args)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _meta(text: Any) -> dict | None:
    try:
        meta = json.loads(text)
    except (TypeError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _decode(trace: Any, meta_json: Any, sha: str) -> tuple[bytes, dict]:
    if not isinstance(trace, bytes) or _sha(trace) != sha:
        raise StoreError("its bytes do not match their checksum")
    meta = _meta(meta_json)
    if meta is None:
        raise StoreError("its meta is not a JSON object")
    return trace, meta


def _is_corrupt(e: Exception) -> bool:
    name = getattr(e, "sqlite_errorname", "") or ""
    text = str(e)
    return name.startswith(CORRUPT) or "not a database" in text or "malformed" in text
