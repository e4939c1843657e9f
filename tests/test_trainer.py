"""Training in the trainer process (models/trainer.py): real child processes, real Keras.

One trainer (one child) serves the module; the memory-bound test lowers its bound for a job.
Durations are printed, never asserted."""
from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models import hosting, jobs, training
from models.jobs import JobManager
from models.trainer import Trainer

from tests.engine_runs import SMALL

ROOT = Path(__file__).resolve().parent.parent


def until(cond, timeout: float) -> bool:
    """Poll `cond` for at most `timeout` s (a bound against hanging, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is gone too
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def manager():
    m = JobManager(trainer=Trainer())
    yield m
    m.shutdown(timeout=5)
    assert m.trainer.pids() == []


def train(m: JobManager, cfg, run_id=None, owner="a") -> str:
    return m.submit(functools.partial(training.train_job, cfg, None, run_id=run_id), owner=owner)


def test_a_job_trains_in_the_child_and_its_progress_live_values_and_result_reach_the_server(manager):
    run_id = "c0ffee" + "0" * 10
    jid = train(manager, SMALL.replace(epochs=3, seed=11), run_id=run_id)
    phases, live = set(), set()
    while (s := manager.status(jid)).state not in jobs.FINISHED:
        phases.add(s.info.get("phase"))
        live |= {n for n in ("trace", "recent", "epochs") if manager.live(jid, n) is not None}
        time.sleep(0.01)
    res = manager.result(jid)
    assert s.state == jobs.DONE, s.error
    assert manager.trainer.pids() and manager.trainer.pids()[0] != os.getpid()
    per = res["batches_per_epoch"]
    assert res["trace"].n == res["batches_trained"] == 3 * per and len(res["epochs"]) == 3
    assert res["run_id"] == run_id and hosting.get_store().has(run_id)  # stored by the child
    assert hosting.get_store().interrupted(run_id) is None  # ended: not "interrupted"
    assert "training" in phases and s.progress == 1.0
    print(f"phases seen {phases}; live values seen {live}")


def test_stop_reaches_the_child_while_it_compiles_and_while_it_trains(manager):
    new_shape = SMALL.replace(units=7, batch_size=12, seed=1)  # no other test compiles it
    jid = train(manager, new_shape)
    assert until(lambda: manager.status(jid).info.get("phase") == training.COMPILING, 120)
    t0 = time.perf_counter()
    manager.cancel(jid)
    s = manager.wait(jid, 60)
    print(f"stopped while compiling after {time.perf_counter() - t0:.2f} s")
    assert s.state == jobs.CANCELLED and manager.result(jid) is None

    long = SMALL.replace(epochs=400, seed=2)  # the first test's shape: compiled, trains long
    jid = train(manager, long)
    assert until(lambda: manager.status(jid).info.get("done", 0) > 0, 120)
    t0 = time.perf_counter()
    manager.cancel(jid)
    s = manager.wait(jid, 60)
    print(f"stopped while training after {time.perf_counter() - t0:.2f} s")
    res = manager.result(jid)
    assert s.state == jobs.CANCELLED and res["cancelled"]
    assert 0 < res["batches_trained"] < 400 * res["batches_per_epoch"]  # it kept what it trained until the Stop


def test_a_failing_job_reports_its_own_error(manager):
    jid = train(manager, SMALL.replace(task="user"))  # no series uploaded
    s = manager.wait(jid, 60)
    assert s.state == jobs.FAILED
    assert s.error == "ConfigError: The user-series task needs a series: upload a CSV first."


def test_the_child_store_notes_reach_the_server_pages(manager):
    jid = train(manager, SMALL.replace(seed=12), run_id="not-a-run-id")
    assert manager.wait(jid, 60).state == jobs.DONE
    assert any("not-a-run-id" in p for p in hosting.get_store().problems)  # the sidebar's notes


def test_a_child_over_its_memory_bound_is_replaced_and_the_next_job_still_runs(manager):
    tr = manager.trainer
    old = tr.pids()
    tr._max_rss_mb = 1  # any trainer is over 1 MB: replaced after this job
    try:
        assert manager.wait(train(manager, SMALL.replace(seed=21)), 120).state == jobs.DONE
    finally:
        tr._max_rss_mb = None
    assert tr.replaced == 1
    assert until(lambda: not any(alive(p) for p in old), 30)  # the old one exited
    new = tr.pids()
    assert new and new[0] not in old
    assert manager.wait(train(manager, SMALL.replace(seed=22)), 120).state == jobs.DONE
    assert tr.pids() == new


def test_the_child_exits_when_the_server_is_killed():
    script = ("import time\nfrom models.trainer import Trainer\n"
              "print(Trainer().start(), flush=True)\ntime.sleep(600)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env=env, cwd=ROOT)
    try:
        child = int(server.stdout.readline())
        assert alive(child)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    assert until(lambda: not alive(child), 60), "the trainer outlived its server"


def test_a_job_publishes_its_first_states_before_it_says_training():
    """The live panel draws the flow once a job's phase is "training" (ui/views.live_panel),
    and the Train click's own script run stops waiting then (ui/runs.wait_briefly): so the
    states must be there before the phase says so (the relay keeps the messages' order), the
    live flow's `recent` before the curves' `trace`. The child's own context, recording."""
    import threading
    from models.trainer import _ChildContext
    sent = []
    ctx = _ChildContext("j", threading.Event(), sent.append)
    training.train_job(SMALL.replace(seed=13), None, ctx)
    ctx.flush()  # as the child does after a job
    said = next(i for i, m in enumerate(sent)
                if m[0] == "progress" and (m[3] or {}).get("phase") == "training")
    assert [m[2] for m in sent[:said] if m[0] == "publish"][:2] == ["recent", "trace"]
    assert sent[-1][0] == "progress" and sent[-1][2] == 1.0
