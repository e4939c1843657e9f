import logging
import threading
import time

import pytest

from models import jobs, limits
from models.jobs import JobManager, QueueFull


def job_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("lstm-job-")]


def until(cond, timeout=2.0) -> bool:
    """Poll `cond` for at most `timeout` s (a generous bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


def blocker(gate: threading.Event, started: list | None = None, name=None):
    """A job that records its start and waits for `gate` (or a cancel)."""
    def fn(ctx):
        if started is not None:
            started.append(name)
        while not gate.is_set() and not ctx.cancelled.is_set():
            gate.wait(0.01)
        return name
    return fn


def looper(ctx):
    while not ctx.cancelled.is_set():
        ctx.cancelled.wait(0.01)
    return "partial"


@pytest.fixture(autouse=True)
def roomy_limits(monkeypatch):
    """Most tests queue many jobs for one owner: the per-session and per-client limits are
    tested on their own below (with explicit JobManager arguments)."""
    monkeypatch.setattr(limits, "MAX_JOBS_PER_SESSION", 1000)
    monkeypatch.setattr(limits, "MAX_JOBS_PER_CLIENT", 1000)


@pytest.fixture
def gate():
    g = threading.Event()
    yield g
    g.set()  # releases any job a failing test left waiting


def test_fifo_order_with_one_worker(gate):
    m = JobManager(max_workers=1)
    started = []
    ids = [m.submit(blocker(gate, started, i), owner="a") for i in range(5)]
    assert until(lambda: started == [0])
    gate.set()
    for jid in ids:
        assert m.wait(jid, 2).state == "done"
    assert started == [0, 1, 2, 3, 4]
    assert [m.result(j) for j in ids] == [0, 1, 2, 3, 4]


def test_queue_positions_and_eta(gate):
    m = JobManager(max_workers=1)
    m.wait(m.submit(lambda ctx: None, owner="a"), 2)  # one finished job gives a mean duration
    ids = [m.submit(blocker(gate), owner="a") for _ in range(3)]
    s = [m.status(j) for j in ids]
    assert [x.state for x in s] == ["running", "queued", "queued"]
    assert [x.queue_position for x in s] == [0, 1, 2]
    assert s[0].eta_seconds is None
    assert s[1].eta_seconds is not None and s[2].eta_seconds is not None
    assert s[2].eta_seconds >= s[1].eta_seconds >= 0


def test_eta_unknown_without_history(gate):
    m = JobManager(max_workers=1)
    m.submit(blocker(gate), owner="a")
    queued = m.submit(blocker(gate), owner="a")
    assert m.status(queued).queue_position == 1
    assert m.status(queued).eta_seconds is None


def test_eta_grows_with_position_and_shrinks_with_workers(gate):
    def eta(workers):
        m = JobManager(max_workers=workers)
        m._durations.append(10.0)  # a known history: every job takes 10 s
        for _ in range(workers):
            m.submit(blocker(gate), owner="a")
        ids = [m.submit(blocker(gate), owner="a") for _ in range(4)]
        return [m.status(j).eta_seconds for j in ids]
    one, two = eta(1), eta(2)
    assert one == pytest.approx([10, 20, 30, 40], abs=1)
    assert two == pytest.approx([10, 10, 20, 20], abs=1)


def test_eta_weighs_each_queued_run_by_its_own_estimate(gate):
    """Runs differ 1000-fold in size: a small run queued behind a large one waits for the large
    one, and the estimates are scaled by how long estimated runs really took on this server."""
    m = JobManager(max_workers=1)
    m.wait(m.submit(lambda ctx: time.sleep(0.05), owner="a", estimate=0.025), 2)  # took ~2x
    ratio = m._ratios[0]
    assert ratio > 1.5  # it took at least the 0.05 s it slept: twice its estimate, or more
    m.submit(blocker(gate), owner="a", estimate=5.0)  # running, no progress yet
    big = m.submit(blocker(gate), owner="a", estimate=50.0)
    small = m.submit(blocker(gate), owner="a", estimate=1.0)
    assert m.status(big).eta_seconds == pytest.approx(5.0 * ratio, rel=0.05)
    assert m.status(small).eta_seconds == pytest.approx(55.0 * ratio, rel=0.05)


def test_eta_of_a_running_run_follows_its_own_progress(gate):
    """Once a running job reports progress, its time left comes from its own rate, not from
    the estimate: half done after t seconds leaves about t seconds."""
    m = JobManager(max_workers=1)
    m._durations.append(1000.0)  # a history that would say: wait 1000 s

    def half_done(ctx):
        ctx.progress(0.5)
        return blocker(gate)(ctx)
    m.submit(half_done, owner="a")
    queued = m.submit(blocker(gate), owner="a")
    assert until(lambda: m.status(queued).eta_seconds < 100)
    elapsed = time.time() - m._running[next(iter(m._running))].started
    assert m.status(queued).eta_seconds == pytest.approx(elapsed, abs=1.0)


def test_concurrency_never_exceeds_bound():
    m = JobManager(max_workers=3)
    lock, now, peak = threading.Lock(), [0], [0]

    def fn(ctx):
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        time.sleep(0.01)
        with lock:
            now[0] -= 1

    ids = [m.submit(fn, owner=f"s{i}") for i in range(20)]
    for j in ids:
        assert m.wait(j, 5).state == "done"
    assert peak[0] == 3


def test_default_concurrency_reads_limits_at_call_time(monkeypatch, gate):
    monkeypatch.setattr(limits, "MAX_CONCURRENT_JOBS", 2)
    m = JobManager()
    ids = [m.submit(blocker(gate), owner="a") for _ in range(3)]
    assert [m.status(j).state for j in ids] == ["running", "running", "queued"]


def test_queue_full(monkeypatch, gate):
    monkeypatch.setattr(limits, "MAX_QUEUED_JOBS", 2)
    m = JobManager(max_workers=1)
    for _ in range(3):  # one running, two queued
        m.submit(blocker(gate), owner="a")
    with pytest.raises(QueueFull, match="busy"):
        m.submit(blocker(gate), owner="b")


def test_cancel_queued_job_never_starts(gate):
    m = JobManager(max_workers=1)
    started = []
    first = m.submit(blocker(gate, started, "first"), owner="a")
    second = m.submit(blocker(gate, started, "second"), owner="a")
    assert m.cancel(second)
    assert m.status(second).state == "cancelled"
    gate.set()
    m.wait(first, 2)
    assert started == ["first"]
    assert m.status(second).state == "cancelled"


def test_cancel_running_job():
    m = JobManager(max_workers=1)
    jid = m.submit(looper, owner="a")
    assert until(lambda: m.status(jid).state == "running")
    assert m.cancel(jid)
    assert until(lambda: m.status(jid).state == "cancelled")
    assert m.result(jid) == "partial"  # a partial result is kept
    assert until(lambda: not job_threads())


def test_cancel_requested_is_reported_while_stopping():
    m = JobManager(max_workers=1)
    release = threading.Event()

    def slow_to_stop(ctx):
        ctx.cancelled.wait(2)
        release.wait(2)

    jid = m.submit(slow_to_stop, owner="a")
    m.cancel(jid)
    s = m.status(jid)
    assert s.state == "running" and s.cancel_requested
    release.set()
    assert m.wait(jid, 2).state == "cancelled"


def test_cancel_owner_only_touches_that_owner(gate):
    m = JobManager(max_workers=1)
    a1 = m.submit(blocker(gate), owner="a")
    b1 = m.submit(blocker(gate), owner="b")
    a2 = m.submit(blocker(gate), owner="a")
    assert m.cancel_owner("a") == 2
    assert m.status(a2).state == "cancelled"  # queued: removed at once
    assert until(lambda: m.status(a1).state == "cancelled")
    assert until(lambda: m.status(b1).state == "running")  # b moves up
    gate.set()
    assert m.wait(b1, 2).state == "done"


def test_shared_key_runs_once_and_refcounts_owners(gate):
    m = JobManager(max_workers=2)
    runs = []
    first = m.submit(blocker(gate, runs, "x"), owner="a", key="preset-1")
    again = m.submit(blocker(gate, runs, "x"), owner="b", key="preset-1")
    assert again == first
    assert until(lambda: runs == ["x"])
    m.cancel_owner("a")
    assert m.status(first).state == "running"  # b still wants it
    assert not m.status(first).cancel_requested
    m.cancel_owner("b")
    assert until(lambda: m.status(first).state == "cancelled")
    assert runs == ["x"]


def test_shared_key_after_cancel_starts_fresh(gate):
    m = JobManager(max_workers=2)
    first = m.submit(blocker(gate), owner="a", key="k")
    m.cancel(first)
    second = m.submit(blocker(gate), owner="a", key="k")
    assert second != first


def test_cancel_with_owner_drops_only_that_hold(gate):
    m = JobManager(max_workers=1)
    jid = m.submit(blocker(gate), owner="a", key="k")
    m.submit(blocker(gate), owner="b", key="k")
    assert not m.cancel(jid, owner="a")
    assert m.status(jid).state == "running"
    assert m.cancel(jid, owner="b")
    assert until(lambda: m.status(jid).state == "cancelled")


def test_failure_is_short_and_has_no_traceback(caplog):
    m = JobManager(max_workers=1)

    def boom(ctx):
        raise ValueError("bad value " + "x" * 1000)

    with caplog.at_level(logging.ERROR, logger="models.jobs"):
        s = m.wait(m.submit(boom, owner="a"), 2)
    assert s.state == "failed"
    assert s.error.startswith("ValueError: bad value")
    assert len(s.error) <= 300
    assert "Traceback" not in s.error and "\n" not in s.error
    assert "Traceback" in caplog.text  # the full story goes to the log


def test_progress_info_and_live_values():
    m = JobManager(max_workers=1)
    step, go_on = threading.Event(), threading.Event()

    def fn(ctx):
        ctx.progress(0.5, {"epoch": 3})
        ctx.publish("trace", [1, 2])
        step.set()
        go_on.wait(2)
        return "final"

    jid = m.submit(fn, owner="a", label="demo")
    assert step.wait(2)
    s = m.status(jid)
    assert (s.progress, s.info, s.label) == (0.5, {"epoch": 3}, "demo")
    assert m.live(jid, "trace") == [1, 2]
    assert m.live(jid, "other") is None
    go_on.set()
    assert m.wait(jid, 2).state == "done"
    assert m.result(jid) == "final"


def test_forget_and_unknown_ids(gate):
    m = JobManager(max_workers=1)
    done = m.submit(lambda ctx: 42, owner="a")
    m.wait(done, 2)
    running = m.submit(blocker(gate), owner="a")
    assert not m.forget(running)  # active jobs are not forgotten
    assert m.forget(done)
    assert m.status(done) is None and m.result(done) is None
    assert m.status("nope") is None and not m.cancel("nope")


def test_finished_jobs_are_bounded():
    m = JobManager(max_workers=1, keep_finished=3)
    ids = [m.submit(lambda ctx, i=i: i, owner="a") for i in range(6)]
    for j in ids:
        m.wait(j, 2)
    assert [m.result(j) for j in ids] == [None, None, None, 3, 4, 5]


def test_no_leaked_threads_after_many_cycles():
    # other tests' jobs end when their gates open at teardown: let them go first
    assert until(lambda: not [t for t in threading.enumerate() if t.name.startswith("lstm-")])
    baseline = threading.active_count()
    m = JobManager(max_workers=2)
    ids = []
    for i in range(100):
        jid = m.submit(looper, owner=f"s{i % 7}")
        ids.append(jid)
        m.cancel(jid)
    for j in ids:
        assert m.wait(j, 2).state == "cancelled"
    assert job_threads() == []
    assert until(lambda: threading.active_count() == baseline)  # the watcher leaves when idle


def test_watch_sessions_cancels_dead_owners_and_exits_when_idle(gate):
    m = JobManager(max_workers=2)
    dead = set()
    m.watch_sessions(lambda owner: owner not in dead, interval=0.02)
    assert not [t for t in threading.enumerate() if t.name == "lstm-session-watch"]  # idle
    a = m.submit(looper, owner="a")
    b = m.submit(blocker(gate), owner="b")
    m.watch_sessions(lambda owner: owner not in dead, interval=0.02)  # idempotent
    watchers = lambda: [t for t in threading.enumerate() if t.name == "lstm-session-watch"]
    assert len(watchers()) == 1
    dead.add("a")
    assert until(lambda: m.status(a).state == "cancelled")
    assert m.status(b).state == "running"
    gate.set()
    m.wait(b, 2)
    assert until(lambda: not watchers())
    m.wait(m.submit(lambda ctx: None, owner="c"), 2)  # next submit restarts it...
    assert until(lambda: not watchers())  # ...and it leaves again


def test_watch_sessions_keeps_a_run_whose_session_blips_once(gate):
    """A websocket that drops for one check and comes back (a busy browser) keeps its run."""
    m = JobManager(max_workers=1)
    checks = {"a": 0}

    def alive(owner):
        checks[owner] += 1
        return checks[owner] != 2  # missing at exactly one check
    m.watch_sessions(alive, interval=0.02)
    jid = m.submit(blocker(gate), owner="a")
    assert until(lambda: checks["a"] >= 6)
    assert m.status(jid).state == "running"
    gate.set()
    m.wait(jid, 2)


def test_watch_sessions_treats_errors_as_alive(gate):
    m = JobManager(max_workers=1)

    def broken(owner):
        raise RuntimeError("runtime unavailable")

    m.watch_sessions(broken, interval=0.01)
    jid = m.submit(blocker(gate), owner="a")
    time.sleep(0.1)
    assert m.status(jid).state == "running"


def test_get_manager_is_a_singleton():
    assert jobs.get_manager() is jobs.get_manager()


def test_shutdown_cancels_running_and_queued_jobs_and_joins_their_threads():
    """Registered at exit for the shared manager: no job thread may still be running
    TensorFlow when the interpreter finalises (that aborts the process)."""
    m = JobManager(max_workers=1)
    running, queued = m.submit(looper, owner="a"), m.submit(looper, owner="b")
    assert until(lambda: m.status(running).state == "running")
    m.shutdown(timeout=5)
    assert m.status(running).state == "cancelled" and m.result(running) == "partial"
    assert m.status(queued).state == "cancelled"
    assert not [t for t in job_threads() if t.name.endswith(running)]


def test_prewarm_waits_while_busy_and_stops_when_asked():
    from models.config import RunConfig
    from models.engine import prewarm
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    t = time.monotonic()
    # the server stays busy: prewarm waits (compiling nothing) until told to stop
    assert prewarm([RunConfig()] * 3, idle=lambda: False, poll=0.02, stop=stop) == 0
    assert stop.is_set() and time.monotonic() - t < 30


def test_a_finished_job_is_dropped_once_every_owner_has_collected_it(gate):
    m = JobManager(max_workers=1)
    j = m.submit(blocker(gate, name="trace"), owner="alice", key="k")
    assert m.submit(blocker(gate), owner="bob", key="k") == j  # one shared run
    gate.set()
    assert m.wait(j, 2).state == "done"
    m.collected(j, "alice")
    assert m.result(j) == "trace"  # bob has not taken it yet
    m.collected(j, "bob")
    assert m.status(j) is None and m.result(j) is None  # nothing held for KEEP_SECONDS


# ---- fair queueing, per-session / per-client limits, time budget, abandoned results ------------

def test_one_session_may_hold_only_so_many_jobs_and_is_told_why(gate):
    m = JobManager(max_workers=1, per_session=2, per_client=100)
    first = m.submit(blocker(gate), owner="a")
    m.submit(blocker(gate), owner="a")
    with pytest.raises(jobs.SessionLimit, match="already has 2 runs queued or training") as e:
        m.submit(blocker(gate), owner="a")
    assert isinstance(e.value, QueueFull)  # the app's existing handler catches it
    m.submit(blocker(gate), owner="b")  # another session is not affected
    m.cancel(first)  # a job asked to stop no longer counts: Stop then Train works at once
    m.submit(blocker(gate), owner="a")
    with pytest.raises(jobs.SessionLimit):
        m.submit(blocker(gate), owner="a")


def test_a_session_holding_shared_jobs_counts_them(gate):
    m = JobManager(max_workers=1, per_session=1)
    k = m.submit(blocker(gate), owner="b", key="k")
    assert m.submit(blocker(gate), owner="a", key="k") == k  # joining a copy is allowed...
    with pytest.raises(jobs.SessionLimit, match="at most 1 per page"):
        m.submit(blocker(gate), owner="a")  # ...and counts: a holds one run
    m.cancel(k, owner="a")  # a lets go; b still holds (and trains) it
    assert m.status(k).state == "running"
    m.submit(blocker(gate), owner="a")  # so it no longer counts for a


def test_one_client_may_hold_only_so_many_jobs_across_its_sessions(gate):
    m = JobManager(max_workers=1, per_session=100, per_client=3)
    for i in range(3):
        m.submit(blocker(gate), owner=f"tab{i}", client="10.0.0.9")
    with pytest.raises(jobs.ClientLimit, match="at most 3 on this server"):
        m.submit(blocker(gate), owner="tab3", client="10.0.0.9")
    m.submit(blocker(gate), owner="student", client="10.0.0.7")


def test_the_queue_interleaves_clients_so_a_newcomer_waits_one_turn(gate):
    """30 jobs from one client (30 sessions) do not stand in front of everyone else."""
    m = JobManager(max_workers=1, per_session=100, per_client=100)
    m._durations.append(10.0)  # a known history: every job takes 10 s
    started = []
    m.submit(blocker(gate, started, "running"), owner="x0", client="abuser")
    flood = [m.submit(blocker(gate, started, f"x{i}"), owner=f"x{i}", client="abuser")
             for i in range(1, 31)]
    victim = m.submit(blocker(gate, started, "victim"), owner="v", client="student")
    s = m.status(victim)
    assert s.queue_position == 2  # behind the abuser's job of this turn, not behind all 30
    assert s.eta_seconds == pytest.approx(20, abs=1)  # one job ahead of it, one running
    assert m.status(flood[-1]).eta_seconds > s.eta_seconds
    assert [m.status(j).queue_position for j in flood[:3]] == [1, 3, 4]
    gate.set()
    for j in flood + [victim]:
        m.wait(j, 5)
    assert started.index("victim") == 2  # the running job, one abuser job, then the victim


def test_two_busy_clients_take_turns_in_submission_order(gate):
    m = JobManager(max_workers=1, per_session=100, per_client=100)
    started = []
    m.submit(blocker(gate, started, "first"), owner="z")
    ids = [m.submit(blocker(gate, started, f"A{i}"), owner="a") for i in range(3)]
    ids += [m.submit(blocker(gate, started, f"B{i}"), owner="b") for i in range(3)]
    ids += [m.submit(blocker(gate, started, "C0"), owner="c")]
    gate.set()
    for j in ids:
        m.wait(j, 5)
    assert started == ["first", "A0", "B0", "C0", "A1", "B1", "A2", "B2"]


def test_a_cancelled_queued_job_gives_its_turn_back(gate):
    m = JobManager(max_workers=1, per_session=100)
    m.submit(blocker(gate), owner="z")
    a = [m.submit(blocker(gate), owner="a") for _ in range(3)]
    for j in a:
        m.cancel(j)
    b = m.submit(blocker(gate), owner="b")
    again = m.submit(blocker(gate), owner="a")
    # a's cancelled jobs do not push its next one back behind later turns
    assert m.status(again).queue_position == 2 and m.status(b).queue_position == 1


def test_a_job_over_its_time_budget_is_stopped_keeps_its_record_and_says_so():
    m = JobManager(max_workers=1, max_seconds=0.2)

    def long_run(ctx):
        n = 0
        while not ctx.cancelled.is_set():
            n += 1
            ctx.publish("trace", n)
            ctx.cancelled.wait(0.01)
        return f"recorded {n}"

    jid = m.submit(long_run, owner="a")
    assert until(lambda: m.status(jid).state == "cancelled", timeout=10)
    s = m.status(jid)
    assert "time budget" in s.stopped_reason and "LSTM_MAX_RUN_SECONDS" in s.stopped_reason
    assert m.result(jid).startswith("recorded ")  # what it recorded is kept for its owner
    # the control: the same job on a server with a long budget runs on until its user stops it
    m2 = JobManager(max_workers=1, max_seconds=1000)
    ok = m2.submit(long_run, owner="b")
    assert until(lambda: (m2.live(ok, "trace") or 0) > 30)  # well past 0.2 s of running
    assert m2.status(ok).state == "running" and m2.status(ok).stopped_reason is None
    m2.cancel(ok)
    assert m2.wait(ok, 2).stopped_reason is None  # a user's Stop is not a time stop


def test_an_abandoned_jobs_partial_results_are_dropped(gate):
    """A closed tab's run: cancelled because nobody holds it, so nobody will read it."""
    m = JobManager(max_workers=1)

    def publisher(ctx):
        ctx.publish("trace", "big partial trace")
        while not ctx.cancelled.is_set():
            ctx.cancelled.wait(0.01)
        return "partial"

    for how in ({}, {"owner": "a"}):  # the user's own Stop: the session wants the partial run
        kept = m.submit(publisher, owner="a")
        assert until(lambda: m.live(kept, "trace") is not None)
        m.cancel(kept, **how)
        assert m.wait(kept, 2).state == "cancelled" and m.result(kept) == "partial"
        assert m.live(kept, "trace") == "big partial trace"
        m.collected(kept, "a")
        assert m.status(kept) is None  # taken: gone
    gone = m.submit(publisher, owner="b")
    assert until(lambda: m.live(gone, "trace") is not None)
    m.cancel_owner("b")  # the session ended
    assert m.wait(gone, 2).state == "cancelled"
    assert m.live(gone, "trace") is None and m.result(gone) is None


def test_a_finished_result_nobody_collects_is_dropped_when_its_session_ends():
    m = JobManager(max_workers=1)
    dead = set()
    m.watch_sessions(lambda o: o not in dead, interval=0.02)
    jid = m.submit(lambda ctx: "trace", owner="a")
    assert m.wait(jid, 2).state == "done" and m.result(jid) == "trace"
    time.sleep(0.1)
    assert m.result(jid) == "trace"  # a live session may still collect it
    dead.add("a")  # the tab closed without collecting
    assert until(lambda: m.status(jid) is None)
    assert until(lambda: not [t for t in threading.enumerate() if t.name == "lstm-session-watch"])


def test_an_overdue_run_without_a_rate_is_not_about_to_end():
    """A running job past its expected time with no rate yet (a slow compile) used to count
    as 0 s left: the next in line read "a worker is free: starts now" and waited on."""
    assert jobs.time_left(elapsed=2.0, progress=0.0, expectation=10.0) == 8.0
    assert jobs.time_left(elapsed=10.0, progress=0.01, expectation=10.0) > 0
    assert jobs.time_left(elapsed=30.0, progress=0.0, expectation=10.0) >= 20.0
    assert jobs.time_left(elapsed=5.0, progress=0.5, expectation=100.0) == pytest.approx(5.0)


def test_queue_starts_agree_with_each_status(gate):
    """The board's one pass over the queue gives each job the place and wait its own status
    gives (models/queue_board.py reads it for every waiting page at once)."""
    m = JobManager(max_workers=2)
    m._durations.append(4.0)
    m.submit(blocker(gate), owner="a", estimate=3.0)
    ids = [m.submit(blocker(gate), owner=o, estimate=e)
           for o, e in (("a", 1.0), ("b", 5.0), ("c", 2.0), ("d", 1.0))]
    m._ratios.append(1.0)
    starts = m.queue_starts()
    assert set(starts) == {j for j in ids if m.status(j).queue_position}
    for j, (pos, eta) in starts.items():
        s = m.status(j)
        assert pos == s.queue_position
        assert eta == pytest.approx(s.eta_seconds, abs=0.05)
    assert [starts[j][0] for j in sorted(starts, key=lambda j: starts[j][0])] == \
        list(range(1, len(starts) + 1))
