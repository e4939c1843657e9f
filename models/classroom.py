"""A class taking a lesson together: session codes, anonymous answers per step, counts for the
teacher's page. SQLite, in the result store's database file (models/store.py finds it:
`$LSTM_DATA_DIR/results.sqlite3`), in tables of its own. No streamlit here.

- A teacher starts a class for a lesson and gets a short code for the students (6 characters
  from 32 unambiguous ones: 32^6 ~ 1.07e9 codes, so guessing one of the few open classes takes
  ~10^7 tries) and a long secret teacher key (only its hash is stored) for the teacher's page.
- A class expires `LSTM_CLASS_HOURS` (default 3) after it started; an expired code says so for
  a day, then it is deleted.
- A student is a session (an opaque id, stored hashed): no names. One answer per student per
  step (answering again replaces it); `RATE` answers a minute per student at most.
- Bounded: at most `MAX_OPEN` open classes on a server and `MAX_STUDENTS` students a class.
- Everything is read by code: a class's counts never include another class's answers.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import secrets
import sqlite3
import threading
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from models.store import DB_NAME, data_dir

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
CODE_LEN = 6
CODE = re.compile(rf"^[{ALPHABET}]{{{CODE_LEN}}}\Z")
KEY = re.compile(r"^[A-Za-z0-9_-]{20,64}\Z")
MAX_OPEN = 200
MAX_STUDENTS = 300
RATE = 20           # answers per student per RATE_WINDOW seconds
RATE_WINDOW = 60.0
KEEP_EXPIRED = 86400.0  # an expired code says "expired" for a day, then it is forgotten
MAX_ANSWER = 40     # characters of a stored answer (a choice number or a number)

SCHEMA = """
CREATE TABLE IF NOT EXISTS class_sessions (
    code      TEXT PRIMARY KEY,
    lesson    TEXT NOT NULL,
    key_hash  TEXT NOT NULL UNIQUE,
    created   REAL NOT NULL,
    expires   REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS class_answers (
    code      TEXT NOT NULL,
    step      INTEGER NOT NULL,
    student   TEXT NOT NULL,
    answer    TEXT NOT NULL,
    measured  TEXT,
    value     REAL,
    holds     INTEGER,
    at        REAL NOT NULL,
    PRIMARY KEY (code, step, student)
);
"""


def hours() -> float:
    try:
        h = float(os.environ.get("LSTM_CLASS_HOURS", 3))
    except ValueError:
        h = 3.0
    return h if math.isfinite(h) and 0 < h <= 48 else 3.0


class ClassError(ValueError):
    """A code, key or answer that cannot be used; the message is for the user."""


@dataclass(frozen=True)
class ClassInfo:
    code: str
    lesson: str
    created: float
    expires: float


def _hash(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def normalise(code: object) -> str:
    """What a student typed, as a code: upper case, spaces and dashes dropped (not checked)."""
    return re.sub(r"[\s-]", "", str(code)).upper()[:40]


class Classroom:
    """Thread-safe: one connection behind one lock (as the result store)."""

    def __init__(self, path: str | os.PathLike | None = None, now: Callable[[], float] = time.time):
        self.path = Path(path) if path is not None else data_dir() / DB_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.now = now
        self._lock = threading.RLock()
        self._rate: dict[tuple[str, str], deque] = {}
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=10,
                                     isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ---- the teacher ----------------------------------------------------------------------
    def create(self, lesson: str) -> tuple[ClassInfo, str]:
        """Start a class: (its info with the students' code, the teacher's secret key)."""
        now = self.now()
        with self._lock:
            self._purge(now)
            n_open = self._conn.execute("SELECT COUNT(*) FROM class_sessions WHERE expires > ?",
                                        (now,)).fetchone()[0]
            if n_open >= MAX_OPEN:
                raise ClassError(f"This server has {n_open} classes open, its limit: try again "
                                 f"when one has expired.")
            key = secrets.token_urlsafe(24)
            for _ in range(20):
                code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LEN))
                try:
                    self._conn.execute("INSERT INTO class_sessions VALUES (?,?,?,?,?)",
                                       (code, lesson, _hash(key), now, now + hours() * 3600))
                    break
                except sqlite3.IntegrityError:
                    continue
            else:  # pragma: no cover  (1e9 codes, at most MAX_OPEN + a day's expired in use)
                raise ClassError("Could not find a free class code; try again.")
        return ClassInfo(code, lesson, now, now + hours() * 3600), key

    def for_teacher(self, key: object) -> ClassInfo:
        """The class whose teacher holds `key`, or a ClassError (unknown or expired)."""
        if not isinstance(key, str) or not KEY.match(key):
            raise ClassError("This teacher link is not valid: start a new class.")
        with self._lock:
            row = self._conn.execute("SELECT code, lesson, created, expires FROM class_sessions "
                                     "WHERE key_hash = ?", (_hash(key),)).fetchone()
        if row is None:
            raise ClassError("This teacher link does not open a class on this server (it may "
                             "have expired and been removed): start a new class.")
        info = ClassInfo(*row)
        if info.expires <= self.now():
            raise ClassError(f"This class (code {info.code}) has expired: start a new class.")
        return info

    # ---- the students ---------------------------------------------------------------------
    def join(self, code: object) -> ClassInfo:
        """The open class with this code, or a ClassError saying wrong or expired."""
        c = normalise(code)
        if not CODE.match(c):
            raise ClassError(f"{str(code)[:40]!r} is not a class code: a code has {CODE_LEN} "
                             f"letters and digits, like K7WQ3M. Check it with your teacher.")
        with self._lock:
            row = self._conn.execute("SELECT code, lesson, created, expires FROM class_sessions "
                                     "WHERE code = ?", (c,)).fetchone()
        if row is None:
            raise ClassError(f"No class has the code {c}: check it with your teacher.")
        info = ClassInfo(*row)
        if info.expires <= self.now():
            raise ClassError(f"The class {c} has ended (its code expired): ask your teacher for "
                             f"a new code.")
        return info

    def answer(self, code: str, student: str, step: int, answer: object) -> None:
        """Record (or replace) a student's prediction for a step. Raises ClassError."""
        info = self.join(code)
        text = str(answer)[:MAX_ANSWER]
        who = _hash(f"{info.code}:{student}")
        now = self.now()
        with self._lock:
            q = self._rate.setdefault((info.code, who), deque())
            while q and q[0] <= now - RATE_WINDOW:
                q.popleft()
            if len(q) >= RATE:
                raise ClassError(f"Too many answers in a minute (at most {RATE}): wait a moment.")
            known = self._conn.execute("SELECT 1 FROM class_answers WHERE code = ? AND student = ? "
                                       "LIMIT 1", (info.code, who)).fetchone()
            if known is None:
                n = self._conn.execute("SELECT COUNT(DISTINCT student) FROM class_answers "
                                       "WHERE code = ?", (info.code,)).fetchone()[0]
                if n >= MAX_STUDENTS:
                    raise ClassError(f"This class has {n} students, the limit: your answer was "
                                     f"not collected.")
            q.append(now)
            self._conn.execute(
                "INSERT INTO class_answers (code, step, student, answer, at) VALUES (?,?,?,?,?) "
                "ON CONFLICT (code, step, student) DO UPDATE SET answer = excluded.answer, "
                "measured = NULL, value = NULL, holds = NULL, at = excluded.at",
                (info.code, int(step), who, text, now))
            if len(self._rate) > 10 * MAX_STUDENTS * 4:  # bound the limiter's memory
                for k in [k for k, d in self._rate.items() if not d or d[-1] <= now - RATE_WINDOW]:
                    del self._rate[k]

    def measured(self, code: str, student: str, step: int, measured: str | None,
                 value: float | None, holds: bool | None) -> None:
        """What the student's run measured for a step they answered (else nothing)."""
        info = self.join(code)
        who = _hash(f"{info.code}:{student}")
        with self._lock:
            self._conn.execute("UPDATE class_answers SET measured = ?, value = ?, holds = ? "
                               "WHERE code = ? AND step = ? AND student = ?",
                               (None if measured is None else str(measured)[:2000],
                                None if value is None else float(value),
                                None if holds is None else int(bool(holds)),
                                info.code, int(step), who))

    # ---- the teacher's page ---------------------------------------------------------------
    def summary(self, code: str) -> dict[int, dict]:
        """Per step: {"answers": Counter(answer -> students), "n": students who answered,
        "runs": students whose run measured it, "measured": Counter(measured text -> runs),
        "holds": Counter(True/False -> runs), "values": [measured values]}. Only this code's."""
        with self._lock:
            rows = self._conn.execute("SELECT step, answer, measured, value, holds FROM "
                                      "class_answers WHERE code = ?", (code,)).fetchall()
        out: dict[int, dict] = defaultdict(lambda: {"answers": Counter(), "n": 0, "runs": 0,
                                                    "measured": Counter(), "holds": Counter(),
                                                    "values": []})
        for step, ans, meas, value, holds in rows:
            s = out[step]
            s["answers"][ans] += 1
            s["n"] += 1
            if meas is not None or value is not None:
                s["runs"] += 1
                if meas is not None:
                    s["measured"][meas] += 1
                if holds is not None:
                    s["holds"][bool(holds)] += 1
                if value is not None:
                    s["values"].append(value)
        return dict(out)

    def _purge(self, now: float) -> None:
        old = [r[0] for r in self._conn.execute(
            "SELECT code FROM class_sessions WHERE expires <= ?", (now - KEEP_EXPIRED,))]
        for c in old:
            self._conn.execute("DELETE FROM class_answers WHERE code = ?", (c,))
            self._conn.execute("DELETE FROM class_sessions WHERE code = ?", (c,))
        for k in [k for k in self._rate if k[0] in old]:
            del self._rate[k]


__all__ = ["ClassError", "ClassInfo", "Classroom", "normalise", "CODE_LEN", "MAX_OPEN",
           "MAX_STUDENTS", "RATE"]
