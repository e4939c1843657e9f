"""The Redis + RQ backend (models/hosting) against a real redis-server and real worker
processes (`python -m models worker`). Missing redis-server fails in CI (`.ci/run` installs
it) and skips locally."""
from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import redis  # noqa: E402

from bench._server import free_port, quiet_env  # noqa: E402
from models import jobs  # noqa: E402
from tests import rq_jobfns  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


def until(cond, timeout=30.0, poll=0.05):
    """Poll `cond` for at most `timeout` s (a generous bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(poll)
    return cond()


class RedisServer:
    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="lstm-redis-")
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        # AOF on: a restart mid-run must keep the queue and the jobs' state, as in compose.yaml.
        self.proc = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        r = redis.Redis(port=self.port)
        assert until(lambda: _pings(r), 10), "redis-server did not answer"

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _pings(r) -> bool:
    try:
        return r.ping()
    except redis.RedisError:
        return False


@pytest.fixture(scope="module")
def redis_server():
    if not os.path.exists(REDIS):
        msg = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture
def rq(redis_server):
    """A fresh RQJobs on an emptied Redis."""
    from models.hosting.rq_jobs import RQJobs
    r = redis.Redis.from_url(redis_server.url)
    r.flushall()
    m = RQJobs(redis_server.url, per_session=100, per_client=100)
    yield m
    r.flushall()


class Worker:
    def __init__(self, url: str, tmp: str, *args: str):
        self.log = Path(tmp) / f"worker-{time.monotonic_ns()}.log"
        self._fh = open(self.log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "models", "worker", "--url", url, "--no-prewarm", *args],
            cwd=ROOT, stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True,
            env=quiet_env({"LSTM_DATA_DIR": tmp}))

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(20)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def workers(redis_server, tmp_path):
    started = []

    def start(n=1, *args):
        ws = [Worker(redis_server.url, str(tmp_path), *args) for _ in range(n)]
        started.extend(ws)
        return ws
    yield start
    for w in started:
        w.kill()


def wait_state(m, jid, states, timeout=60.0):
    return until(lambda: (s := m.status(jid)) is not None and s.state in states and s, timeout)


def test_submit_progress_live_and_cancel_in_a_worker(rq, workers):
    workers(1)
    jid = rq.submit(functools.partial(rq_jobfns.count_until_cancelled), owner="a", label="count")
    assert rq.status(jid).state in (jobs.QUEUED, jobs.RUNNING)
    assert wait_state(rq, jid, {jobs.RUNNING}, 90)
    # Progress and the live values cross processes.
    assert until(lambda: (rq.live(jid, "seen") or []) and len(rq.live(jid, "seen")) >= 5)
    s = rq.status(jid)
    assert s.info.get("phase") == "training" and s.progress > 0
    t = time.monotonic()
    assert rq.cancel(jid, owner="a")
    s = wait_state(rq, jid, jobs.FINISHED, 30)
    stop_seconds = time.monotonic() - t
    assert s.state == jobs.CANCELLED
    res = rq.result(jid)
    assert res["cancelled"] is True and res["seen"] >= 5  # the partial result is kept
    print(f"stop reached the worker's job in {stop_seconds:.2f} s")


def test_a_worker_over_its_memory_bound_quits_between_jobs_and_loses_nothing(rq, workers):
    """TensorFlow keeps ~35 MB per new shape: a worker over --max-rss-mb finishes its job, then
    quits (its supervisor starts a fresh one); the next job waits in the queue for it."""
    (w,) = workers(1, "--max-rss-mb", "1")  # any real process is over 1 MB
    fn = functools.partial(rq_jobfns.count_until_cancelled, limit=0.3)
    first, second = rq.submit(fn, owner="a"), rq.submit(fn, owner="b")
    assert wait_state(rq, first, jobs.FINISHED, 90).state == jobs.DONE
    assert until(lambda: w.proc.poll() is not None, 30), "the worker did not quit"
    assert w.proc.returncode == 0 and "quitting between jobs" in w.text()
    assert rq.status(second).state == jobs.QUEUED  # not lost, not taken
    workers(1)  # what systemd's Restart=always / compose's restart policy does
    assert wait_state(rq, second, jobs.FINISHED, 90).state == jobs.DONE


def test_a_worker_under_its_memory_bound_keeps_working(rq, workers):
    (w,) = workers(1, "--max-rss-mb", "100000")
    fn = functools.partial(rq_jobfns.count_until_cancelled, limit=0.3)
    for owner in ("a", "b"):
        assert wait_state(rq, rq.submit(fn, owner=owner), jobs.FINISHED, 90).state == jobs.DONE
    assert w.proc.poll() is None and "quitting between jobs" not in w.text()


def test_failure_message_reaches_the_web_side(rq, workers):
    workers(1)
    jid = rq.submit(rq_jobfns.fail, owner="a")
    s = wait_state(rq, jid, jobs.FINISHED, 90)
    assert s.state == jobs.FAILED and "bad input, said the job" in s.error


def test_queue_position_and_cancel_while_queued(rq):
    ids = [rq.submit(functools.partial(rq_jobfns.count_until_cancelled), owner=f"o{i}")
           for i in range(3)]  # no worker yet: all wait
    assert [rq.status(j).queue_position for j in ids] == [1, 2, 3]
    assert rq.cancel(ids[0], owner="o0")
    assert rq.status(ids[0]).state == jobs.CANCELLED
    assert [rq.status(j).queue_position for j in ids[1:]] == [1, 2]
    assert rq.counts()["queued"] == 2


def test_same_key_from_two_web_side_clients_trains_once(rq, redis_server, workers):
    from models.hosting.rq_jobs import RQJobs
    other = RQJobs(redis_server.url, per_session=100, per_client=100)  # a second web process
    fn = functools.partial(rq_jobfns.count_until_cancelled, limit=1.0)
    a = rq.submit(fn, owner="s1", key="k" * 16)
    b = other.submit(fn, owner="s2", key="k" * 16)
    assert a == b
    assert rq.counts()["queued"] == 1
    # One owner's Stop leaves the job to the other.
    assert rq.cancel(a, owner="s1") is False
    assert other.status(a).state == jobs.QUEUED
    workers(1)
    s = wait_state(other, a, jobs.FINISHED, 90)
    assert s.state == jobs.DONE and other.result(a)["cancelled"] is False
    # Finished: the next submit of that key is a new job (the store answers it in the app).
    assert rq.submit(fn, owner="s3", key="k" * 16) != a


def test_session_limit_across_web_processes(redis_server, rq):
    from models.hosting.rq_jobs import RQJobs
    m1 = RQJobs(redis_server.url, per_session=2, per_client=3)
    m2 = RQJobs(redis_server.url, per_session=2, per_client=3)
    fn = functools.partial(rq_jobfns.count_until_cancelled)
    m1.submit(fn, owner="tab1", client="c")
    m2.submit(fn, owner="tab1", client="c")
    with pytest.raises(jobs.SessionLimit):
        m1.submit(fn, owner="tab1", client="c")
    m2.submit(fn, owner="tab2", client="c")
    with pytest.raises(jobs.ClientLimit):
        m1.submit(fn, owner="tab3", client="c")


def test_closed_session_cancels_its_job(rq, workers):
    alive = {"a": True}
    rq.watch_sessions(lambda o: alive.get(o, False), interval=0.1)
    workers(1)
    jid = rq.submit(functools.partial(rq_jobfns.count_until_cancelled), owner="a")
    assert wait_state(rq, jid, {jobs.RUNNING}, 90)
    alive["a"] = False  # the tab closed
    s = wait_state(rq, jid, jobs.FINISHED, 30)
    assert s.state == jobs.CANCELLED


def test_worker_killed_mid_job_is_queued_again_once_then_failed_and_named_interrupted(
        rq, redis_server, workers, monkeypatch):
    """Killed once: the run is queued again, first in line, and a new worker trains it; killed
    twice: failed, with a sentence. RedisStore.interrupted (the page's reconnect notice) names
    a run only while it is cut short, not while it beats, ends normally or waits to rerun."""
    from models.hosting import rq_jobs
    from models.hosting.redis_store import RedisStore
    monkeypatch.setattr(rq_jobs, "DEAD_AFTER", 2.0)  # the reader's patience, not the worker's
    store = RedisStore(redis_server.url)
    marked = lambda run_id: store.r.exists(f"lstm:inflight:{run_id}")  # noqa: E731
    (w,) = workers(1)
    ends, cut = "cd" * 8, "ab" * 8
    jid = rq.submit(functools.partial(rq_jobfns.in_flight, run_id=ends), owner="a")
    assert wait_state(rq, jid, {jobs.RUNNING}, 90) and until(lambda: marked(ends), 30)
    assert store.interrupted(ends) is None  # its worker beats: still training
    rq.cancel(jid)
    assert wait_state(rq, jid, jobs.FINISHED, 30)
    assert store.interrupted(ends) is None and not marked(ends)  # ended: nothing to say
    jid = rq.submit(functools.partial(rq_jobfns.in_flight, run_id=cut), owner="b")
    assert wait_state(rq, jid, {jobs.RUNNING}, 30) and until(lambda: marked(cut), 30)
    t = time.time()
    w.kill()
    assert until(lambda: store.interrupted(cut) is not None, 30)  # no heartbeat: cut short
    assert store.interrupted(cut) <= t
    s = wait_state(rq, jid, {jobs.QUEUED}, 30)  # a reader queues it again, first in line ...
    assert s.queue_position == 1 and s.progress == 0 and "queued again" in s.info["phase"]
    assert store.interrupted(cut) is None  # ... so it will run: nothing to say
    (w,) = workers(1)  # what systemd's Restart=always / compose's restart policy does
    assert wait_state(rq, jid, {jobs.RUNNING}, 90)  # trained again, from the start
    assert until(lambda: rq.status(jid).started > t, 30)
    w.kill()
    s = wait_state(rq, jid, jobs.FINISHED, 30)
    assert s.state == jobs.FAILED and "worker" in s.error and "Train" in s.error
    assert store.interrupted(cut) is not None


def test_redis_restarted_mid_run_loses_nothing(rq, redis_server, workers):
    workers(1)
    jid = rq.submit(functools.partial(rq_jobfns.count_until_cancelled, limit=6.0), owner="a")
    assert wait_state(rq, jid, {jobs.RUNNING}, 90)
    redis_server.stop()
    time.sleep(1.0)  # the worker trains on without Redis
    redis_server.start()
    s = until(lambda: _status_or_none(rq, jid), 60)
    assert s is not None
    s = wait_state(rq, jid, jobs.FINISHED, 90)
    assert s.state == jobs.DONE
    assert rq.result(jid)["seen"] > 0


def _status_or_none(m, jid):
    try:
        return m.status(jid)
    except redis.RedisError:
        return None


def test_redis_store_round_trip_eviction_and_outage(redis_server, tmp_path):
    from models.hosting.redis_store import RedisStore
    from models.store import ResultStore
    redis.Redis.from_url(redis_server.url).flushall()
    local = ResultStore(tmp_path / "copy.sqlite3")
    s = RedisStore(redis_server.url, max_bytes=2500, local=local)
    other = RedisStore(redis_server.url, max_bytes=2500)  # another process, no copy
    ids = [f"{i:016x}" for i in range(3)]
    assert s.put(ids[0], b"x" * 1000, {"n": 0})
    assert other.get(ids[0]) == (b"x" * 1000, {"n": 0})
    assert s.put(ids[1], b"y" * 1000, {"n": 1})
    assert other.get(ids[0]) is not None  # 0 is now the most recently used
    assert other.put(ids[2], b"z" * 1000, {"n": 2})  # over 2500 bytes: 1 is evicted
    assert not s.has(ids[1]) and s.has(ids[0]) and s.has(ids[2])
    assert "evicted" in s.why_missing(ids[1])
    assert s.total_bytes() <= 2500
    # Corrupt bytes are dropped and reported, not served.
    redis.Redis.from_url(redis_server.url).hset(f"lstm:run:{ids[2]}", "trace", b"broken")
    assert other.get(ids[2]) is None and "corrupt" in other.why_missing(ids[2])
    # Redis down: this process's copy still opens the runs it stored; the page gets a sentence.
    redis_server.stop()
    try:
        assert s.get(ids[0]) == (b"x" * 1000, {"n": 0})
        assert other.get(ids[0]) is None
        assert any("unreachable" in p for p in other.problems)
        assert "unreachable" in other.why_missing(ids[0])
    finally:
        redis_server.start()


def test_real_training_job_through_a_worker_stores_the_run(rq, redis_server, workers, monkeypatch):
    """The app's own job (models/training.train_job, real Keras) trained by a worker: the
    live trace streams from Redis, and the finished run is in the Redis store for any process."""
    from models import hosting, training
    from models.hosting.redis_store import RedisStore
    from models.presets import PRESETS
    from models.store import library_versions, run_key
    from models.trace import Trace
    cfg = PRESETS["chunks-stateful"].config.replace(epochs=30)
    key = run_key(cfg.to_json(), library_versions("stateful-lstm-explorer"))
    workers(1)
    jid = rq.submit(functools.partial(training.train_job, cfg, None, run_id=key), owner="a",
                    key=key, label="chunks")
    live = until(lambda: rq.live(jid, "trace") or rq.status(jid).state in jobs.FINISHED, 180)
    s = wait_state(rq, jid, jobs.FINISHED, 180)
    assert s.state == jobs.DONE, s.error
    if isinstance(live, Trace):
        assert live.units == cfg.units  # a partial trace crossed processes
    res = rq.result(jid)
    assert res["trace"].n > 0 and res["run_id"] == key and len(res["epochs"]) == 30
    data, meta = RedisStore(redis_server.url).get(key)  # another process reads it
    assert Trace.from_bytes(data).n == res["trace"].n and meta["config"] == cfg.to_json()
    monkeypatch.setenv("LSTM_REDIS_URL", redis_server.url)
    monkeypatch.setattr(hosting, "_store", None)
    assert training.load_result(key)["trace"].n == res["trace"].n
    monkeypatch.setattr(hosting, "_store", None)


def test_worker_command_says_what_is_missing():
    env = quiet_env()
    env.pop("LSTM_REDIS_URL", None)
    p = subprocess.run([sys.executable, "-m", "models", "worker"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "error: no Redis to work for: set LSTM_REDIS_URL" in p.stderr
    closed = free_port()  # nothing listens there
    p = subprocess.run([sys.executable, "-m", "models", "worker", "--url",
                        f"redis://:secret@127.0.0.1:{closed}/0"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "error: cannot reach Redis at redis://127.0.0.1" in p.stderr
    assert "secret" not in p.stdout + p.stderr and "Traceback" not in p.stdout + p.stderr


def test_a_restarted_web_process_finds_queued_and_running_jobs(redis_server, rq, workers):
    from models.hosting.rq_jobs import RQJobs
    workers(1)
    first = RQJobs(redis_server.url, per_session=100, per_client=100)
    quick = functools.partial(rq_jobfns.count_until_cancelled, limit=0.3)
    assert wait_state(first, first.submit(quick, owner="a"), {jobs.DONE}, 120)  # a duration
    running = first.submit(functools.partial(rq_jobfns.count_until_cancelled), owner="b")
    assert wait_state(first, running, {jobs.RUNNING}, 60)
    queued = first.submit(quick, owner="c")
    del first  # the web process restarts: nothing of the jobs lived in it
    second = RQJobs(redis_server.url, per_session=100, per_client=100)
    assert second.status(running).state == jobs.RUNNING
    s = second.status(queued)
    assert s.state == jobs.QUEUED and s.queue_position == 1 and s.eta_seconds is not None
    assert second.counts()["workers"] == 1
    assert second.cancel(running, owner="b")
    assert wait_state(second, queued, {jobs.DONE}, 60)


def test_the_queue_interleaves_clients_across_web_processes(rq, redis_server, workers):
    """As the in-process manager's lanes: client A's jobs hold one place per turn, so client
    B's job, submitted later through another web process, starts within one turn."""
    from models.hosting.rq_jobs import RQJobs
    other = RQJobs(redis_server.url, per_session=100, per_client=100)
    fn = functools.partial(rq_jobfns.count_until_cancelled, limit=0.05)
    flood = [rq.submit(fn, owner=f"a{i}", client="A") for i in range(4)]  # no worker yet
    newcomer = other.submit(fn, owner="b", client="B")
    late = rq.submit(fn, owner="c", client="C")
    assert [rq.status(j).queue_position for j in flood] == [1, 4, 5, 6]
    assert other.status(newcomer).queue_position == 2 and rq.status(late).queue_position == 3
    workers(1)
    for j in flood + [newcomer, late]:
        assert wait_state(rq, j, {jobs.DONE}, 90)
    order = sorted(flood + [newcomer, late], key=lambda j: rq.status(j).started)
    assert order == [flood[0], newcomer, late, flood[1], flood[2], flood[3]]
    # The turns moved on with the starts: a new client waits behind nobody's backlog.
    assert rq.status(rq.submit(fn, owner="d", client="D")).queue_position == 1


def test_a_cancelled_queued_job_gives_its_turn_back_across_processes(rq):
    fn = functools.partial(rq_jobfns.count_until_cancelled)
    first = rq.submit(fn, owner="z", client="Z")
    a = [rq.submit(fn, owner=f"a{i}", client="A") for i in range(3)]
    for j in a:
        rq.cancel(j)
    b = rq.submit(fn, owner="b", client="B")
    again = rq.submit(fn, owner="a9", client="A")
    assert [rq.status(j).queue_position for j in (first, b, again)] == [1, 2, 3]


def test_wait_estimates_weigh_each_run_by_its_estimate_and_the_measured_ratio(rq, workers):
    """As JobManager._eta: the workers measure duration / estimate; a queued run waits for
    the running one's scaled estimate, and the next one for the first's too."""
    workers(1)
    quick = functools.partial(rq_jobfns.count_until_cancelled, limit=0.3)
    assert wait_state(rq, rq.submit(quick, owner="a", estimate=0.1), {jobs.DONE}, 90)
    ratio = float(rq.r.lindex("lstm:ratios", 0))
    assert ratio > 2  # it ran at least 0.3 s for an estimate of 0.1 s
    running = rq.submit(rq_jobfns.wait_until_cancelled, owner="b", estimate=100.0)
    assert wait_state(rq, running, {jobs.RUNNING}, 30)
    big = rq.submit(rq_jobfns.wait_until_cancelled, owner="c", estimate=50.0)
    small = rq.submit(rq_jobfns.wait_until_cancelled, owner="d", estimate=1.0)
    elapsed = time.time() - rq.status(running).started
    assert rq.status(big).eta_seconds == pytest.approx(100 * ratio - elapsed, abs=2)
    assert rq.status(small).eta_seconds == pytest.approx(150 * ratio - elapsed, abs=2)
    rq.cancel(running)


def test_a_free_worker_means_a_queued_run_starts_now(rq):
    """Every RQ run is queued until a worker takes it: with a worker free its wait is 0 (the
    page then waits for its first values as for a running run), with none free it is not."""
    from rq import Queue, Worker
    idle = Worker([Queue("lstm", connection=rq.r)], connection=rq.r)
    first = rq.submit(rq_jobfns.wait_until_cancelled, owner="a")
    assert rq.status(first).eta_seconds is None  # no worker at all: unknown
    idle.register_birth()  # a registered worker that takes nothing while we look
    try:
        second = rq.submit(rq_jobfns.wait_until_cancelled, owner="b")
        assert rq.status(first).state == jobs.QUEUED and rq.status(first).eta_seconds == 0
        assert rq.status(second).eta_seconds != 0  # one worker for two: the second waits
    finally:
        idle.register_death()
