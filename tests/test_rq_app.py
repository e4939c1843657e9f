"""The page (AppTest, real Keras) on the Redis + RQ backend: a real redis-server and a real
worker process train; Redis stopped: stored runs still open, Train says why it cannot."""
from __future__ import annotations

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
