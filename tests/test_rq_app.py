"""The page (AppTest, real Keras) on the Redis + RQ backend: a real redis-server and a real
worker process train; Redis stopped: stored runs still open, Train says why it cannot."""
from __future__ import annotations

import functools

import pytest
import redis

from models import hosting
from tests.test_app import app, texts, wait_until_idle
from tests.test_rq import RedisServer, Worker, redis_server  # noqa: F401  (fixture)


@pytest.fixture
def rq_app(redis_server, tmp_path, monkeypatch):  # noqa: F811
    """The app's backend switched to RQ for this test (process-wide caches reset around it)."""
    from ui import runs
    redis.Redis.from_url(redis_server.url).flushall()
    monkeypatch.setenv("LSTM_REDIS_URL", redis_server.url)
    monkeypatch.setattr(hosting, "_jobs", None)
    monkeypatch.setattr(hosting, "_store", None)
    runs.manager.clear()
    worker = Worker(redis_server.url, str(tmp_path))
    redis_server.worker = worker
    try:
        yield redis_server
    finally:
        worker.kill()
        runs.manager.clear()  # undo: later tests get the in-process manager again
        if not _pings(redis_server):
            redis_server.start()


def _pings(server) -> bool:
    try:
        return redis.Redis.from_url(server.url).ping()
    except redis.RedisError:
        return False


def test_the_page_trains_on_a_worker_and_survives_redis_going_away(rq_app):
    at = app(preset="chunks-stateful", epochs="3")
    assert hosting.backend() == "rq"
    at.sidebar.button(key="btn_train").click().run()
    wait_until_idle(at, 240)
    res = at.session_state["results"]["run"]
    assert not res["cancelled"] and len(res["epochs"]) == 3
    run_id = res["run_id"]
    assert run_id and at.query_params["run"] == run_id
    assert any("Carry check:" in m for m in texts(at, "markdown"))
    assert any("worker(s)" in c for c in texts(at, "caption"))
    rq_app.stop()  # Redis goes away
    linked = app(run=run_id)  # this process's copy still opens the stored run
    assert linked.session_state["results"]["run"]["run_id"] == run_id
    assert any("unreachable" in w for w in texts(linked, "warning"))
    other = app(preset="chunks-stateful", epochs="4")
    other.sidebar.button(key="btn_train").click().run()
    assert not other.exception
    said = texts(other, "error") + texts(other, "warning")
    assert any("Redis" in m and "unreachable" in m for m in said), said


def test_a_run_whose_worker_was_killed_is_named_when_its_student_returns(rq_app, monkeypatch):
    """As in the default deployment (tests/test_app.py): the address kept the student's
    settings, and the page says their run was cut short."""
    from models.hosting import rq_jobs
    from models.presets import PRESETS
    from models.store import run_key
    from tests import rq_jobfns
    from tests.test_rq import until
    from ui import runs
    monkeypatch.setattr(rq_jobs, "DEAD_AFTER", 2.0)  # the reader's patience, not the worker's
    cfg = PRESETS["chunks-stateful"].config.replace(seed=77)
    key = run_key(cfg.to_json(), runs._versions())
    m = hosting.get_jobs()
    jid = m.submit(functools.partial(rq_jobfns.in_flight, run_id=key), owner="gone", key=key)
    assert until(lambda: m.r.exists(f"lstm:inflight:{key}"), 90)
    rq_app.worker.kill()
    assert until(lambda: m.status(jid).state == "queued", 30)  # queued again, once
    m.cancel_owner("gone")  # what the session watcher does: the student's tab had closed
    at = app(preset="chunks-stateful", seed="77")
    assert any("interrupted by a server restart" in i for i in texts(at, "info"))
    other = app(preset="chunks-stateful", seed="78")
    assert not any("interrupted" in i for i in texts(other, "info"))
