import json
import sqlite3
import threading

import numpy as np
import pytest

from models import store
from models.store import ResultStore, run_key
from models.trace import Trace

VERSIONS = {"keras": "3.15.1", "tensorflow": "2.21.0", "numpy": "2.4.0", "app": "0.1"}


def make_trace(n=3, batch=2, units=4, seed=0) -> Trace:
    rng = np.random.default_rng(seed)
    states = [rng.standard_normal((n, batch, units)).astype(np.float32) for _ in range(4)]
    return Trace(
        *states,
        seq_id=np.arange(n * batch, dtype=np.int32).reshape(n, batch),
        part=np.zeros((n, batch), np.int32),
        epoch=np.ones(n, np.int32), batch=np.arange(n, dtype=np.int32),
        reset_before=np.array([True] + [False] * (n - 1)),
        loss=rng.random(n).astype(np.float32), accuracy=rng.random(n).astype(np.float32),
        config=json.dumps({"seed": seed, "stateful": True}),
        epochs=[{"epoch": 1, "loss": 0.5, "accuracy": 0.75, "val_loss": None,
                 "val_accuracy": None, "seconds": 1.0}],
    )


def rid(i: int) -> str:
    return f"{i:016x}"


@pytest.fixture
def db(tmp_path):
    return tmp_path / "runs.sqlite3"


def test_run_key_is_stable_and_sensitive():
    cfg = json.dumps({"seed": 4, "units": 10})
    same = json.dumps({"units": 10, "seed": 4}, indent=2)  # other order and spacing
    key = run_key(cfg, VERSIONS)
    assert key == run_key(same, VERSIONS)
    assert store.valid_run_id(key)
    assert run_key(json.dumps({"seed": 5, "units": 10}), VERSIONS) != key
    assert run_key(cfg, {**VERSIONS, "keras": "3.16.0"}) != key


def test_round_trip_of_a_real_trace(db):
    t = make_trace()
    s = ResultStore(db)
    key = run_key(t.config, VERSIONS)
    assert not s.has(key)
    assert s.put(key, t.to_bytes(), {"preset": "demo", "seconds": 1.5})
    assert s.has(key)
    data, meta = s.get(key)
    back = Trace.from_bytes(data)
    assert meta == {"preset": "demo", "seconds": 1.5}
    for name in ("h0", "c0", "hT", "cT", "seq_id", "part", "epoch", "reset_before", "loss"):
        np.testing.assert_array_equal(getattr(back, name), getattr(t, name))
    assert back.config == t.config and back.epochs == t.epochs
    assert s.problems == []


def test_survives_restart(db):
    ResultStore(db).put(rid(1), b"abc", {"n": 1})
    again = ResultStore(db)
    assert again.get(rid(1)) == (b"abc", {"n": 1})
    assert [r for r, _ in again.recent(5)] == [rid(1)]


def test_recent_is_newest_first(db):
    s = ResultStore(db)
    for i in range(4):
        s.put(rid(i), b"x", {"i": i})
    assert [m["i"] for _, m in s.recent(3)] == [3, 2, 1]


def test_evicts_least_recently_used(db):
    s = ResultStore(db, max_bytes=300)
    meta = {}
    entry = 100 - len(json.dumps(meta))  # each run takes exactly 100 bytes
    for i in range(3):
        assert s.put(rid(i), b"x" * entry, meta)
    assert s.total_bytes() == 300
    s.get(rid(0))  # touch the oldest: run 1 is now least recently used
    s.put(rid(3), b"y" * entry, meta)
    assert [s.has(rid(i)) for i in range(4)] == [True, False, True, True]
    s.put(rid(4), b"z" * entry, meta)
    assert [s.has(rid(i)) for i in range(5)] == [True, False, False, True, True]
    assert s.total_bytes() <= 300


def test_refuses_an_entry_larger_than_the_store(db):
    s = ResultStore(db, max_bytes=50)
    assert not s.put(rid(1), b"x" * 100, {})
    assert not s.has(rid(1))
    assert "exceed" in s.problems[-1]


def test_max_bytes_from_env(monkeypatch, db):
    monkeypatch.setenv("LSTM_STORE_MAX_MB", "2")
    assert ResultStore(db).max_bytes == 2 * 1024 * 1024


def test_data_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LSTM_DATA_DIR", str(tmp_path / "data"))
    s = ResultStore()
    assert s.path == tmp_path / "data" / "results.sqlite3"
    s.put(rid(7), b"q", {})
    assert s.path.exists()


@pytest.mark.parametrize("bad", ["", "abc", "../../etc/passwd", "0123456789ABCDEF",
                                 "0123456789abcdef0", "0123456789abcdeg", "0123456789abcde\n",
                                 None, 12])
def test_invalid_ids_are_refused(db, bad):
    s = ResultStore(db)
    assert s.get(bad) is None
    assert not s.put(bad, b"x", {})
    assert not s.has(bad)
    assert any("Refused run id" in p for p in s.problems)


def corrupt(db, run_id, **columns):
    conn = sqlite3.connect(db)
    with conn:
        for col, value in columns.items():
            conn.execute(f"UPDATE runs SET {col} = ? WHERE run_id = ?", (value, run_id))
    conn.close()


@pytest.mark.parametrize("columns", [{"trace": b"flipped bytes"}, {"meta": "{not json"},
                                     {"meta": "[1, 2]"}])
def test_corrupt_entry_is_skipped_and_dropped(db, columns):
    s = ResultStore(db)
    s.put(rid(1), b"good bytes", {"ok": True})
    s.put(rid(2), b"other", {"ok": True})
    corrupt(db, rid(1), **columns)
    assert s.get(rid(1)) is None
    assert "corrupt" in s.problems[-1] and rid(1) in s.problems[-1]
    assert not s.has(rid(1))  # dropped, so it will be recomputed
    assert s.get(rid(2)) == (b"other", {"ok": True})


def test_recent_skips_bad_meta(db):
    s = ResultStore(db)
    s.put(rid(1), b"a", {"i": 1})
    s.put(rid(2), b"b", {"i": 2})
    corrupt(db, rid(2), meta="garbage")
    assert s.recent(5) == [(rid(1), {"i": 1})]
    assert s.problems


def test_garbage_database_file_is_moved_aside(db):
    db.write_bytes(b"this is not a database" * 100)
    s = ResultStore(db)
    assert "corrupt" in s.problems[0]
    aside = list(db.parent.glob("runs.sqlite3.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")
    assert s.put(rid(1), b"x", {}) and s.get(rid(1)) == (b"x", {})


def test_database_corrupted_while_open_is_recovered(db):
    s = ResultStore(db)
    for i in range(50):
        s.put(rid(i), bytes(range(256)) * 20, {"i": i})
    s.close()
    raw = bytearray(db.read_bytes())
    raw[4096 * 2:] = b"\xff" * (len(raw) - 4096 * 2)  # keep the header, smash the pages
    db.write_bytes(raw)
    s = ResultStore(db)
    for i in range(50):
        assert s.get(rid(i)) is None  # never raises
    assert any("corrupt" in p for p in s.problems)
    assert s.put(rid(1), b"fresh", {}) and s.get(rid(1)) == (b"fresh", {})


def test_unusable_location_falls_back_to_memory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be")
    s = ResultStore(blocker / "sub" / "runs.sqlite3")
    assert "memory" in s.problems[0]
    assert s.put(rid(1), b"x", {}) and s.get(rid(1)) == (b"x", {})


def test_problems_are_bounded(db):
    s = ResultStore(db)
    for _ in range(store.MAX_PROBLEMS + 20):
        s.get("bad")
    assert len(s.problems) == store.MAX_PROBLEMS


def test_concurrent_puts_and_gets(db):
    s = ResultStore(db)
    errors = []

    def worker(w):
        try:
            for i in range(25):
                key = rid(w * 1000 + i)
                payload = f"{w}-{i}".encode() * 50
                assert s.put(key, payload, {"w": w, "i": i})
                assert s.get(key) == (payload, {"w": w, "i": i})
                s.get(rid(((w + 1) % 8) * 1000 + i))  # another thread's run, maybe not yet there
                s.recent(3)
        except Exception as e:  # collected: an assert in a thread would otherwise vanish
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(s.recent(1000)) == 200
    assert s.problems == []


# ---- what a link to a missing run, and a restarted server, can tell the user ------------------

def test_report_reaches_problems(db):
    s = ResultStore(db)
    s.report("Stored run 0000000000000001 could not be read (KeyError); skipped.")
    assert s.problems[-1].startswith("Stored run 0000000000000001")


def test_a_missing_run_says_whether_it_was_evicted_dropped_or_never_here(db):
    s = ResultStore(db, max_bytes=200)
    entry = 100 - len(json.dumps({}))
    for i in range(3):
        s.put(rid(i), b"x" * entry, {})  # the third evicts the first
    assert not s.has(rid(0))
    assert "evicted" in s.why_missing(rid(0)) and "LSTM_STORE_MAX_MB" in s.why_missing(rid(0))
    assert "not on this server" in s.why_missing(rid(9))
    with sqlite3.connect(db) as conn:  # break run 2's bytes behind the store's back
        conn.execute("UPDATE runs SET trace = ? WHERE run_id = ?", (b"broken", rid(2)))
    assert s.get(rid(2)) is None
    assert "corrupt" in s.why_missing(rid(2))
    assert ResultStore(db, max_bytes=200).why_missing(rid(0)).startswith("It was evicted")  # kept


_CRASH = """
import os, sys
from models.store import ResultStore
s = ResultStore(sys.argv[1])
s.started(sys.argv[2], '{"task": "first_element"}')
os._exit(0)  # dies in flight: no ended()
"""


def test_a_run_whose_process_died_is_interrupted_and_a_live_one_is_not(db):
    import subprocess
    import sys
    s = ResultStore(db)
    s.started(rid(1), "{}")
    assert s.interrupted(rid(1)) is None  # ours, still training
    subprocess.run([sys.executable, "-c", _CRASH, str(db), rid(2)], check=True)
    started = s.interrupted(rid(2))
    assert started is not None and started <= __import__("time").time()
    s.ended(rid(1))
    assert s.interrupted(rid(1)) is None
    s.started(rid(2), "{}")  # trained again here: no longer interrupted
    assert s.interrupted(rid(2)) is None
